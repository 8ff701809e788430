//! Atomic replacement of a file, shared by every sink that writes files (the textfile for
//! node_exporter, the OpenMetrics file for promtool) and by the backfill state file.
//!
//! The content goes to a temporary file beside the target (same file system), is flushed to
//! disk (`fsync`), and is renamed over the target (rename(2) is atomic within a file system);
//! then the directory is fsynced so the rename itself survives a crash. A reader sees the
//! old file or the whole new one, never a torn one. On any failure the temporary file is
//! removed and the target is untouched; only a process killed mid-write leaves its
//! temporary file behind (the next writer with the same process id replaces it).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The step that failed, so each caller can word its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Permissions,
    Write,
    Rename,
}

#[derive(Debug)]
pub struct AtomicError {
    pub step: Step,
    pub error: io::Error,
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The directory that `err`, from opening or creating `path`, says is missing: `path`'s
/// parent, when the error is "not found" and that directory is not there (`None` for a bare
/// file name).
pub fn missing_dir<'a>(path: &'a Path, err: &io::Error) -> Option<&'a Path> {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .filter(|d| err.kind() == io::ErrorKind::NotFound && !d.is_dir())
}

/// The temporary name used while writing `path`: `.NAME.PID.tmp` beside it. Hidden, unique
/// per process, and without the target's extension, so collectors (`*.prom`) and backfill
/// discovery skip it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent_dir(path).join(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replaces `path` with what `fill` writes, through the temporary file `temp` (which must be
/// beside `path`). `mode` sets the new file's permission bits (Unix).
pub fn replace(
    path: &Path,
    temp: &Path,
    mode: Option<u32>,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), AtomicError> {
    let fail = |step: Step, error: io::Error, created: bool| {
        if created {
            let _ = fs::remove_file(temp);
        }
        AtomicError { step, error }
    };
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
    };
    let file = match open() {
        Ok(f) => f,
        // Left by a crashed run whose process id this one now has: ours to replace.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(temp);
            open().map_err(|e| fail(Step::Create, e, false))?
        }
        Err(e) => return Err(fail(Step::Create, e, false)),
    };
    if let Some(mode) = mode {
        set_mode(&file, mode).map_err(|e| fail(Step::Permissions, e, true))?;
    }
    let mut w = BufWriter::with_capacity(256 * 1024, file);
    fill(&mut w)
        .and_then(|()| w.flush())
        .and_then(|()| w.get_ref().sync_all())
        .map_err(|e| fail(Step::Write, e, true))?;
    drop(w);
    fs::rename(temp, path).map_err(|e| fail(Step::Rename, e, true))?;
    // Make the rename durable; not every file system can fsync a directory.
    if let Ok(d) = File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(f: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &File, _: u32) -> io::Result<()> {
    Ok(())
}

/// An exclusive advisory lock (`flock`) on a hidden file beside `path`
/// (`.NAME.lock`), held until dropped; the kernel releases it when the process ends, so a
/// killed writer never leaves it taken.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// The lock file of `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent_dir(path).join(format!(".{name}.lock"))
}

impl FileLock {
    /// Takes the lock of `path`, waiting at most `wait` for another holder.
    #[cfg(unix)]
    pub fn acquire(path: &Path, wait: std::time::Duration) -> io::Result<FileLock> {
        use std::os::unix::io::AsRawFd;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(path))?;
        let start = std::time::Instant::now();
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: f });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e);
            }
            if start.elapsed() >= wait {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another process held {} for {}s",
                        lock_path(path).display(),
                        wait.as_secs()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[cfg(not(unix))]
    pub fn acquire(path: &Path, _wait: std::time::Duration) -> io::Result<FileLock> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(path))?;
        Ok(FileLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt");
        let t = d.path().join(".f.txt.tmp");
        fs::write(&p, "old").unwrap();
        // A stale temporary file of a crashed run is replaced.
        fs::write(&t, "stale").unwrap();
        replace(&p, &t, Some(0o640), |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert!(!t.exists());
        let e = replace(&p, &t, None, |_| Err(io::Error::other("boom"))).unwrap_err();
        assert_eq!(e.step, Step::Write);
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert!(!t.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o640
            );
        }
    }
}
