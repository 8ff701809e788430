//! The floor the benchmark compares `ptc-metrics push --dry-run` with: the least work any
//! tool must do on the same bytes.
//!
//! * `floor junit FILE`: a bare quick-xml pull loop (256 KiB buffer, like ptc-metrics)
//!   that only counts `<testcase>` elements and sums their `time`;
//! * `floor json FILE`: a bare serde_json pass over the size report (`IgnoredAny` from
//!   a 256 KiB buffered reader);
//! * `floor both JUNIT JSON`: one after the other.
//!
//! Prints what it found on stdout, so the work cannot be optimised away.

use std::fs::File;
use std::io::BufReader;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::IgnoredAny;

fn junit(path: &str) -> (u64, f64) {
    let file = File::open(path).expect("open the JUnit file");
    let mut r = Reader::from_reader(BufReader::with_capacity(256 * 1024, file));
    let mut buf = Vec::with_capacity(4096);
    let (mut n, mut time) = (0u64, 0.0f64);
    loop {
        buf.clear();
        match r.read_event_into(&mut buf).expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                n += 1;
                for a in e.attributes().with_checks(false).flatten() {
                    if a.key.as_ref() == b"time" {
                        if let Some(t) = std::str::from_utf8(&a.value)
                            .ok()
                            .and_then(|s| s.parse::<f64>().ok())
                        {
                            time += t;
                        }
                    }
                }
            }
            Event::Eof => return (n, time),
            _ => {}
        }
    }
}

fn json(path: &str) {
    let file = File::open(path).expect("open the JSON file");
    let r = BufReader::with_capacity(256 * 1024, file);
    let _: IgnoredAny = serde_json::from_reader(r).expect("valid JSON");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["junit", f] => {
            let (n, t) = junit(f);
            println!("testcases {n} time {t:.3}");
        }
        ["json", f] => {
            json(f);
            println!("json ok");
        }
        ["both", x, j] => {
            let (n, t) = junit(x);
            json(j);
            println!("testcases {n} time {t:.3}; json ok");
        }
        _ => {
            eprintln!("usage: floor junit FILE | floor json FILE | floor both JUNIT JSON");
            std::process::exit(2);
        }
    }
}
