//! OpenMetrics file sink: the exposition for `promtool tsdb create-blocks-from openmetrics`,
//! written atomically (temporary file beside the target, fsync, rename, fsync of the
//! directory), so a reader sees the old file or the whole new one, never a torn one.
//!
//! [`write_atomically`] is also how the backfill state file is written.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary file used while writing `path`: hidden, beside it, unique per process.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `path` through `fill` atomically. On any error the target is untouched and the
/// temporary file removed.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), FileError> {
    let temp = temp_path(path);
    let fail = |action: &'static str, e: io::Error| FileError {
        path: path.to_path_buf(),
        action,
        message: e.to_string(),
        kind: e.kind(),
    };
    let file = File::create(&temp).map_err(|e| fail("create a temporary file beside it", e))?;
    let mut w = BufWriter::with_capacity(256 * 1024, file);
    let written = fill(&mut w)
        .and_then(|()| w.flush())
        .and_then(|()| w.get_ref().sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(fail("write it", e));
    }
    drop(w);
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(fail("rename the temporary file over it", e));
    }
    // Make the rename durable; not every file system can fsync a directory.
    if let Ok(d) = File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
    Ok(())
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
