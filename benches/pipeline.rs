//! Criterion benchmarks of the parser and the derivation (docs/performance.md):
//! `cargo bench --bench pipeline`. Inputs come from the report generator
//! (bench/gen_reports.rs) into target/bench-data/criterion-*, made on the first run.
//!
//! * `junit/read`: the JUnit reader alone (a no-op callback) — compare with `junit/floor`,
//!   a bare quick-xml loop that counts `<testcase>` and sums `time` over the same bytes;
//! * `junit/build`: reader + collapsing into the run table (no test ids);
//! * `size_report/read_json`: the JSON size report visitor alone;
//! * `run/read_run`: JUnit + size report + join, as `push` reads them;
//! * `derive/summarize`: the derivation over a read run.
//!
//! Performance goals live here and in scripts/bench.sh, never in timed unit tests.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ptc_metrics::derive::{summarize, DeriveConfig};
use ptc_metrics::read::{self, Inputs, ReadOptions, RunBuilder};

#[allow(dead_code)]
#[path = "../bench/gen_reports.rs"]
mod gen_reports;

fn data(n: u64) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-data/criterion-{n}"));
    if !dir.join("size.json").exists() {
        gen_reports::generate(&gen_reports::Opts {
            tests: n,
            out: dir.clone(),
            seed: 1,
            huge_output: 0,
            logging: false,
            labels: false,
            start: 1_795_703_214,
        })
        .expect("generate the benchmark inputs");
    }
    dir
}

fn floor(path: &Path) -> (u64, f64) {
    use quick_xml::events::Event;
    let file = std::fs::File::open(path).unwrap();
    let mut r = quick_xml::Reader::from_reader(std::io::BufReader::with_capacity(256 * 1024, file));
    let mut buf = Vec::with_capacity(4096);
    let (mut n, mut t) = (0u64, 0.0);
    loop {
        buf.clear();
        match r.read_event_into(&mut buf).unwrap() {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                n += 1;
                for a in e.attributes().with_checks(false).flatten() {
                    if a.key.as_ref() == b"time" {
                        t += std::str::from_utf8(&a.value)
                            .ok()
                            .and_then(|s| s.parse::<f64>().ok())
                            .unwrap_or(0.0);
                    }
                }
            }
            Event::Eof => return (n, t),
            _ => {}
        }
    }
}

fn benches(c: &mut Criterion) {
    for n in [10_000u64, 100_000] {
        let dir = data(n);
        let (xml, json) = (dir.join("junit.xml"), dir.join("size.json"));
        let xml_len = std::fs::metadata(&xml).unwrap().len();
        let json_len = std::fs::metadata(&json).unwrap().len();

        let mut g = c.benchmark_group("junit");
        g.sample_size(if n >= 100_000 { 10 } else { 30 });
        g.throughput(Throughput::Bytes(xml_len));
        g.bench_with_input(BenchmarkId::new("floor", n), &xml, |b, p| {
            b.iter(|| black_box(floor(p)))
        });
        g.bench_with_input(BenchmarkId::new("read", n), &xml, |b, p| {
            b.iter(|| {
                let mut k = 0u64;
                read::junit::read(p, |c| k += c.time as u64).unwrap();
                black_box(k)
            })
        });
        g.bench_with_input(BenchmarkId::new("build", n), &xml, |b, p| {
            b.iter(|| {
                let mut rb = RunBuilder::with_options(
                    "",
                    ReadOptions {
                        test_ids: false,
                        messages: false,
                    },
                );
                rb.read_junit(p).unwrap();
                black_box(rb.finish().tests.len())
            })
        });
        g.finish();

        let mut g = c.benchmark_group("size_report");
        g.sample_size(if n >= 100_000 { 10 } else { 30 });
        g.throughput(Throughput::Bytes(json_len));
        g.bench_with_input(BenchmarkId::new("read_json", n), &json, |b, p| {
            b.iter(|| {
                let mut k = 0usize;
                read::size_report::read_json(p, &mut |e| k += e.name.len()).unwrap();
                black_box(k)
            })
        });
        g.finish();

        let inputs = Inputs {
            reports: vec![xml.clone()],
            size_reports: vec![json.clone()],
            coverage: vec![],
            junit_prefix: String::new(),
        };
        let mut g = c.benchmark_group("run");
        g.sample_size(10);
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("read_run", n), &inputs, |b, i| {
            b.iter(|| {
                let run = read::read_run_with(
                    i,
                    ReadOptions {
                        test_ids: false,
                        messages: false,
                    },
                )
                .unwrap();
                black_box(run.tests.len())
            })
        });
        g.finish();

        let run = read::read_run_with(
            &inputs,
            ReadOptions {
                test_ids: false,
                messages: false,
            },
        )
        .unwrap();
        let cfg = DeriveConfig::default();
        let mut g = c.benchmark_group("derive");
        g.sample_size(20);
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("summarize", n), &run, |b, r| {
            b.iter(|| black_box(summarize(r, &cfg, None).total_tests()))
        });
        g.finish();
    }
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
