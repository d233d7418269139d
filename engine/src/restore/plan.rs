//! What a restore does, decided once from its [`RestoreOptions`].
//!
//! Input: the options as the caller gave them (flags that only mean something together, such
//! as `--delete` without `--delta`, are dropped here). Output: a [`RestorePlan`] of three
//! independent choices — what to do with what is already at the target, whether the disk is
//! changed at all, and what damage in the repository does — that the restore matches on
//! instead of testing flags.

use super::RestoreOptions;

/// How a restore treats what the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetMode {
    /// The target is empty or missing: nothing in it is in the way.
    Fresh,
    /// Whatever is in the way of an entry is replaced (`--overwrite`).
    Overwrite,
    /// An existing tree is brought to the snapshot, rewriting only what differs (`--delta`).
    Delta(Delta),
}

/// The choices of a delta restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub compare: Compare,
    pub extra: Extra,
}

/// How a delta restore decides that an existing file already is the snapshot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Equal size and mtime are enough; the file is not read.
    SizeAndMtime,
    /// Its content is hashed too (`--verify-existing`).
    Content,
}

/// What a delta restore does with entries the snapshot does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    Keep,
    /// Removed (`--delete`), within the `--include` patterns.
    Delete,
}

/// Whether the restore changes the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes {
    /// Everything is written.
    Make,
    /// Nothing on disk changes; what would be done is counted (`--dry-run`).
    Count { content: ContentCheck },
}

/// In a dry run, whether the content a restore would write is read from the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCheck {
    Skip,
    /// Every chunk read and checked (`--verify`).
    Read,
}

/// What damage in the repository does to a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDamage {
    /// The restore fails.
    Fail,
    /// The file or directory that cannot be read whole is left out and reported
    /// (`--keep-going`).
    LeaveOut,
}

/// A restore's mode, decided once: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestorePlan {
    pub target: TargetMode,
    pub changes: Changes,
    pub on_damage: OnDamage,
}

impl RestorePlan {
    pub fn new(options: &RestoreOptions) -> Self {
        let target = if options.delta {
            TargetMode::Delta(Delta {
                compare: if options.verify_existing {
                    Compare::Content
                } else {
                    Compare::SizeAndMtime
                },
                extra: if options.delete {
                    Extra::Delete
                } else {
                    Extra::Keep
                },
            })
        } else if options.overwrite {
            TargetMode::Overwrite
        } else {
            TargetMode::Fresh
        };
        let changes = if options.dry_run {
            Changes::Count {
                content: if options.verify {
                    ContentCheck::Read
                } else {
                    ContentCheck::Skip
                },
            }
        } else {
            Changes::Make
        };
        let on_damage = if options.keep_going {
            OnDamage::LeaveOut
        } else {
            OnDamage::Fail
        };
        RestorePlan {
            target,
            changes,
            on_damage,
        }
    }

    /// Whether something already at an entry's name is replaced (else it is an error).
    pub fn replaces(&self) -> bool {
        !matches!(self.target, TargetMode::Fresh)
    }

    /// The delta restore's choices, if this is one.
    pub fn delta(&self) -> Option<Delta> {
        match self.target {
            TargetMode::Delta(delta) => Some(delta),
            _ => None,
        }
    }

    /// Whether the disk is changed (not a dry run).
    pub fn makes_changes(&self) -> bool {
        self.changes == Changes::Make
    }
}
