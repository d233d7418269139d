//! `vault mount`: mounts, says so (or prints the mount report with --json), and serves until
//! unmounted by SIGINT, SIGTERM, SIGHUP or `fusermount3 -u`.

use std::path::PathBuf;

use anyhow::Result;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vault_engine::mount::{self, MountOptions};

use crate::args::{Cli, MountArgs};
use crate::convert;
use crate::exit;
use crate::output::errln;

/// Where the FUSE device is looked for; only tests point it elsewhere (a machine without FUSE).
const DEVICE_VARIABLE: &str = "VAULT_FUSE_DEVICE";

pub fn run(cli: &Cli, args: &MountArgs) -> Result<i32> {
    // Before any thread of the mount exists: from here on these signals are queued for the
    // iterator below instead of ending the process with the mount left behind.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let repo = super::open(cli, false)?;
    let options = MountOptions {
        mountpoint: args.mountpoint.clone(),
        filter: convert::filter(&args.filter),
        snapshots: args.snapshots.clone(),
        cache_bytes: args.cache_size.into(),
        device: std::env::var_os(DEVICE_VARIABLE)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/fuse")),
        ..MountOptions::default()
    };
    let mounted = mount::mount(repo, &options)?;
    if cli.json {
        crate::output::print_report(&mounted.report)?;
    } else if !cli.quiet {
        errln!(
            "vault: {} mounted at {} ({} snapshots); unmount with Ctrl-C or `fusermount3 -u {}`",
            mounted.report.repository,
            mounted.report.mountpoint.display(),
            mounted.report.snapshots,
            mounted.report.mountpoint.display()
        );
    }
    let unmounter = mounted.unmounter();
    let handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if let Err(e) = unmounter.unmount() {
                errln!("vault: {e}");
            }
        }
    });
    let result = mounted.wait();
    // Unmounted from outside (fusermount3 -u): the watcher has nothing left to do.
    handle.close();
    let _ = watcher.join();
    result?;
    Ok(exit::OK)
}
