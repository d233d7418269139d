use std::io::Write;

use anyhow::Result;
use vault_engine::restore::dump;

use crate::args::{Cli, DumpArgs};
use crate::convert;
use crate::exit;

pub fn run(cli: &Cli, args: &DumpArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let snapshot = repo.find_snapshot(&args.snapshot, &convert::filter(&args.filter))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, crate::output::stdout());
    dump::dump(&repo, &snapshot, &args.path, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}
