//! `--events PATH|-`: events as NDJSON, one JSON object per line, for any log shipper
//! (Alloy/Promtail, Filebeat, Fluent Bit, Vector; examples/events/).
//!
//! A file is appended to (created when missing), as shippers expect of a log file: each
//! run adds its lines, and nothing a shipper has not read yet is replaced. Writes are
//! buffered; a run's lines end up whole and in order. `-` writes to stdout.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The events file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("--events {}: {message}", path.display())]
pub struct EventsFileError {
    pub path: PathBuf,
    pub message: String,
}

/// Where `--events` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsTarget {
    Stdout,
    File(PathBuf),
}

/// An open NDJSON destination.
pub struct EventsFile<'w> {
    path: PathBuf,
    out: BufWriter<Box<dyn Write + 'w>>,
    pub lines: u64,
}

impl<'w> EventsFile<'w> {
    /// Opens the target; `stdout` is what `-` writes to.
    pub fn open(target: &EventsTarget, stdout: &'w mut dyn Write) -> Result<Self, EventsFileError> {
        let (path, w): (PathBuf, Box<dyn Write + 'w>) = match target {
            EventsTarget::Stdout => (PathBuf::from("-"), Box::new(stdout)),
            EventsTarget::File(p) => (p.clone(), Box::new(open_append(p)?)),
        };
        Ok(EventsFile {
            path,
            out: BufWriter::with_capacity(1 << 20, w),
            lines: 0,
        })
    }

    /// Writes one event (its JSON, without newline) as a line.
    pub fn line(&mut self, json: &[u8]) -> Result<(), EventsFileError> {
        self.out
            .write_all(json)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| self.fail(&e))?;
        self.lines += 1;
        Ok(())
    }

    /// Flushes everything written.
    pub fn finish(&mut self) -> Result<(), EventsFileError> {
        self.out.flush().map_err(|e| self.fail(&e))
    }

    fn fail(&self, e: &std::io::Error) -> EventsFileError {
        EventsFileError {
            path: self.path.clone(),
            message: format!("cannot write: {e}"),
        }
    }
}

fn open_append(p: &Path) -> Result<File, EventsFileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| EventsFileError {
            path: p.to_path_buf(),
            message: open_advice(p, &e),
        })
}

/// Why `p` cannot be opened, and what to give instead for the two usual slips: a directory
/// named instead of a file in it, a file in a directory that does not exist.
fn open_advice(p: &Path, e: &std::io::Error) -> String {
    if p.is_dir() {
        return format!(
            "is a directory; give a file in it, e.g. --events {}",
            p.join("events.ndjson").display()
        );
    }
    match super::atomic::missing_dir(p, e) {
        Some(d) => format!(
            "cannot open for appending: the directory {} does not exist; create it first",
            d.display()
        ),
        None => format!("cannot open for appending: {e}"),
    }
}
