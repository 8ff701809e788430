//! OpenMetrics file sink: the exposition for `promtool tsdb create-blocks-from openmetrics`,
//! written atomically (temporary file beside the target, fsync, rename, fsync of the
//! directory), so a reader sees the old file or the whole new one, never a torn one.
//!
//! [`write_atomically`] is also how the backfill state file is written.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::atomic::{self, parent_dir, temp_path, Step};
use crate::encode::openmetrics::Builder;

/// A file that could not be written. Names the file, the step and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot {action}: {message}{}", path.display(), hint(*kind, path))]
pub struct FileError {
    pub path: PathBuf,
    pub action: &'static str,
    pub message: String,
    kind: io::ErrorKind,
}

fn hint(kind: io::ErrorKind, path: &Path) -> String {
    match kind {
        io::ErrorKind::NotFound => format!(
            " (does the directory {} exist?)",
            parent_dir(path).display()
        ),
        io::ErrorKind::PermissionDenied => format!(
            " (is the directory {} writable for this user?)",
            parent_dir(path).display()
        ),
        _ => String::new(),
    }
}

/// Writes `path` through `fill` atomically (see [`crate::sink::atomic`]).
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), FileError> {
    atomic::replace(path, &temp_path(path), None, fill).map_err(|e| FileError {
        path: path.to_path_buf(),
        action: match e.step {
            Step::Create => "create a temporary file beside it",
            Step::Permissions => "set the permissions of a temporary file beside it",
            Step::Write => "write it",
            Step::Rename => "rename the temporary file over it",
        },
        message: e.error.to_string(),
        kind: e.error.kind(),
    })
}

/// Writes the exposition to `path` atomically.
pub fn write(path: &Path, om: &Builder) -> Result<(), FileError> {
    write_atomically(path, |w| om.write_to(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_cleans_up_on_failure() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.om");
        std::fs::write(&p, "old").unwrap();
        write(&p, &Builder::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# EOF\n");
        let e = write_atomically(&p, |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot write it: disk full", p.display())
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# EOF\n");
        assert!(!temp_path(&p).exists());
        let e = write(&d.path().join("nope/out.om"), &Builder::new()).unwrap_err();
        assert!(e.to_string().contains("does the directory"), "{e}");
    }
}
