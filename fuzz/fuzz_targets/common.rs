//! The readers read files: each input is written to one scratch file per process.

use std::path::PathBuf;

pub fn scratch(data: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ptc-fuzz-{}", std::process::id()));
    std::fs::write(&p, data).expect("write the scratch file");
    p
}
