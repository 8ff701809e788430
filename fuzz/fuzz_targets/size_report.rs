//! The size-report readers (JSON, and a terminal log holding JSON or the detailed table)
//! joined onto a fixed small run.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ptc_metrics::read::size_report;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch(data);
    let mut n = 0usize;
    let _ = size_report::read_json(&p, &mut |e| n += e.name.len());
    let _ = size_report::read_terminal_log(&p, &mut |e| n += e.name.len());
    std::hint::black_box(n);
});
