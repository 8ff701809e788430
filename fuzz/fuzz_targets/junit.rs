//! The JUnit reader, the run builder (collapse, size-label split) and the derivation on
//! arbitrary bytes; and the reader's passed-test lane against quick-xml alone: both must
//! hand out the same elements and end with the same result or the same error.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ptc_metrics::model::CaseElement;
use ptc_metrics::read::{junit, ReadOptions, RunBuilder};

/// Everything the reader says about an element.
fn seen(c: &CaseElement<'_>) -> String {
    format!(
        "{:?} {:?} {:?} {} {:?} {:?} {} {}",
        c.classname,
        c.name,
        c.file,
        c.time.to_bits(),
        c.result,
        c.marks,
        c.teardown_error_only,
        c.rerun_children
    )
}

fuzz_target!(|data: &[u8]| {
    let p = common::scratch(data);
    let mut b = RunBuilder::with_options("PFX", ReadOptions { test_ids: true, messages: true });
    if b.read_junit(&p).is_ok() {
        let run = b.finish();
        let mut n = 0usize;
        let s = ptc_metrics::derive::summarize(&run, &Default::default(), Some(&mut |_| n += 1));
        assert_eq!(n, run.tests.len());
        assert_eq!(s.total_tests(), run.tests.len() as u64);
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let a = junit::read(&p, |c| with.push(seen(c)));
    let b = junit::read_without_lane(&p, |c| without.push(seen(c)));
    assert_eq!(with, without, "the lane hands out other elements");
    assert_eq!(
        a.map(|s| format!("{s:?}")).map_err(|e| e.to_string()),
        b.map(|s| format!("{s:?}")).map_err(|e| e.to_string()),
        "the lane ends otherwise"
    );
});
