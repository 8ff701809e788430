//! The Cobertura coverage reader on arbitrary bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch(data);
    if let Ok(c) = ptc_metrics::read::coverage::read(&p) {
        assert!(c.lines_covered <= c.lines_valid);
        let pct = c.percentage();
        assert!((0.0..=100.0).contains(&pct), "{pct}");
    }
});
