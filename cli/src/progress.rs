//! Progress display on stderr: a live line when stderr is a terminal, nothing otherwise.
//! Warnings are printed as they happen unless --quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use vault_engine::Progress;

use crate::output::errln;

pub struct Display {
    bar: Option<ProgressBar>,
    quiet: bool,
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Display {
    pub fn new(quiet: bool, verb: &str) -> Display {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed_precise}]")
                    .expect("valid template"),
            );
            bar.set_prefix(verb.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Display {
            bar,
            quiet,
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            let files = self.files.load(Ordering::Relaxed);
            if bar.length().is_some() {
                bar.set_message(format!("{files} files"));
                return;
            }
            let bytes = self.bytes.load(Ordering::Relaxed);
            let secs = bar.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{files} files, {} ({}/s)",
                HumanBytes(bytes),
                HumanBytes((bytes as f64 / secs) as u64)
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn total(&self, _files: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.refresh();
    }

    fn file_done(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(format!("warning: {message}")),
            None => errln!("warning: {message}"),
        }
    }
}
