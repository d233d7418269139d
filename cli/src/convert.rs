//! Argument values -> engine types.

use vault_engine::SnapshotFilter;

use crate::args::SnapshotFilterArgs;

pub fn filter(args: &SnapshotFilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        host: args.host.clone(),
        tags: args.tags.clone(),
        labels: args.labels.clone(),
    }
}
