//! `vault daemon`: the schedules in the foreground.

use anyhow::Result;

use crate::args::{Cli, DaemonArgs};

pub fn run(_cli: &Cli, _args: &DaemonArgs) -> Result<i32> {
    anyhow::bail!("vault daemon: not built yet")
}
