//! The JUnit reader, the run builder (collapse, size-label split) and the derivation on
//! arbitrary bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ptc_metrics::read::{ReadOptions, RunBuilder};

fuzz_target!(|data: &[u8]| {
    let p = common::scratch(data);
    let mut b = RunBuilder::with_options("PFX", ReadOptions { test_ids: true });
    if b.read_junit(&p).is_ok() {
        let run = b.finish();
        let mut n = 0usize;
        let s = ptc_metrics::derive::summarize(&run, &Default::default(), Some(&mut |_| n += 1));
        assert_eq!(n, run.tests.len());
        assert_eq!(s.total_tests(), run.tests.len() as u64);
    }
});
