//! The size-report readers (JSON, and a terminal log holding JSON or the detailed table);
//! and the fast JSON reader (its lane and slice parsing) against the streaming serde_json
//! reader alone: same entries, same timestamp, or the same error.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ptc_metrics::read::{size_report, SizeEntry};

/// Everything the reader says about an entry.
fn seen(e: &SizeEntry<'_>) -> String {
    format!(
        "{:?} {:?} {:?} {} {:?}",
        e.name,
        e.size,
        e.duration.map(f64::to_bits),
        e.timing,
        e.hermeticity
    )
}

fuzz_target!(|data: &[u8]| {
    let p = common::scratch(data);
    let (mut fast, mut reference) = (Vec::new(), Vec::new());
    let a = size_report::read_json(&p, &mut |e| fast.push(seen(e)));
    let b = size_report::read_json_streaming(&p, &mut |e| reference.push(seen(e)));
    let a = a.map(|t| t.map(f64::to_bits)).map_err(|e| e.to_string());
    let b = b.map(|t| t.map(f64::to_bits)).map_err(|e| e.to_string());
    assert_eq!(a, b, "the fast reader ends otherwise");
    if a.is_ok() {
        assert_eq!(fast, reference, "the fast reader hands out other entries");
    }
    let mut n = 0usize;
    let _ = size_report::read_terminal_log(&p, &mut |e| n += e.name.len());
    std::hint::black_box(n);
});
