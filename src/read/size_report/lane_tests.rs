//! The JSON lane (`fast::lane`) against the streaming serde_json reader.

use std::io::Write;

use rand::{Rng, SeedableRng};

use super::*;

type Owned = (String, Option<Size>, Option<u64>, bool, [u32; 5]);

fn own(e: &SizeEntry<'_>) -> Owned {
    (
        e.name.to_string(),
        e.size,
        e.duration.map(f64::to_bits),
        e.timing,
        e.hermeticity,
    )
}

/// Everything a reader hands on, and how it ends (`Ok` bits of the timestamp, or the
/// error as printed).
type Outcome = (Vec<Owned>, Result<Option<u64>, String>);

fn via_read_json(path: &Path) -> (Outcome, usize) {
    let before = fast::LANE_TAKEN.with(|n| n.get());
    let mut got = Vec::new();
    let end = read_json(path, &mut |e| got.push(own(e)))
        .map(|t| t.map(f64::to_bits))
        .map_err(|e| e.to_string());
    let taken = fast::LANE_TAKEN.with(|n| n.get()) - before;
    ((got, end), taken)
}

/// The streaming serde_json reader alone, as `read_json` runs it.
fn via_serde(path: &Path) -> Outcome {
    let mut got = Vec::new();
    let end = read_json_streaming(path, &mut |e| got.push(own(e)))
        .map(|t| t.map(f64::to_bits))
        .map_err(|e| e.to_string());
    (got, end)
}

struct Doc(tempfile::NamedTempFile);

impl Doc {
    fn new() -> Self {
        Doc(tempfile::NamedTempFile::new().unwrap())
    }
    /// Both readers on `bytes`; asserts they agree. The entries the lane took.
    fn check(&mut self, bytes: &[u8]) -> usize {
        self.check_ok(bytes).0
    }

    /// [`check`](Self::check), and whether the read succeeded.
    fn check_ok(&mut self, bytes: &[u8]) -> (usize, bool) {
        let f = self.0.as_file_mut();
        f.set_len(0).unwrap();
        std::io::Seek::rewind(f).unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        let (fast, taken) = via_read_json(self.0.path());
        let slow = via_serde(self.0.path());
        assert_eq!(fast, slow, "on {:?}", String::from_utf8_lossy(bytes));
        (taken, fast.1.is_ok())
    }
}

const NORMAL: &str = r#"{
      "name": "tests/unit/pkg_0/test_mod_0.py::TestCreate::test_merges_ledger_entry_1",
      "size": "small",
      "duration": 0.4141274800290968,
      "status": "passed",
      "violations": []
    }"#;

/// `entry` between two usual entries, in a pretty-printed report.
fn doc(entry: &[u8]) -> Vec<u8> {
    let mut d = br#"{
  "version": "1.2.2",
  "timestamp": "2026-11-26T14:36:58.962184Z",
  "summary": {"total_tests": 3, "violations": {"timing": 1}},
  "tests": [
    "#
    .to_vec();
    d.extend_from_slice(NORMAL.as_bytes());
    d.extend_from_slice(b",\n    ");
    d.extend_from_slice(entry);
    d.extend_from_slice(b",\n    ");
    d.extend_from_slice(NORMAL.replace("_1\"", "_2\"").as_bytes());
    d.extend_from_slice(b"\n  ]\n}\n");
    d
}

#[test]
fn the_lane_takes_the_usual_shapes_and_agrees() {
    let taken: &[&str] = &[
        NORMAL,
        r#"{"name":"a","size":"small","duration":0.5,"status":"passed","violations":[]}"#,
        "{\t\"name\" :\r\n\"a\" , \"size\":\"medium\"}",
        r#"{"violations": ["timing"], "status": "failed", "duration": 1e-5, "size": "large", "name": "b"}"#,
        r#"{"name": "c", "size": "small", "duration": null}"#,
        r#"{"name": "c", "size": "xlarge", "extra": 1, "x": true, "y": false, "z": null}"#,
        r#"{"name": "c", "size": "small", "extra": "1", "extra": -2.5E+3, "status": 7}"#,
        // Skipped numbers are only checked against the grammar, as by serde_json.
        r#"{"name": "c", "size": "small", "other": 1e999, "status": -0.0e-0}"#,
        r#"{"name": "d", "size": "unsized", "violations": ["timing", "hermeticity:network",
                "hermeticity:network", "hermeticity:sleep", "hermeticity:bogus", "other", "",
                "hermeticity:", "Timing"]}"#,
        r#"{"name": "e", "size": "small", "duration": -0.0}"#,
        r#"{"name": "e", "size": "small", "duration": 0}"#,
        r#"{"name": "e", "size": "small", "duration": 5}"#,
        r#"{"name": "e", "size": "small", "duration": 12345678901234567890123}"#,
        r#"{"name": "e", "size": "small", "duration": 0.1e1}"#,
        r#"{"name": "e", "size": "small", "duration": 1E+2}"#,
        r#"{"name": "e", "size": "small", "duration": 1e-400}"#,
        r#"{"name": "e", "size": "small", "duration": 4.9e-324}"#,
        r#"{"name": "e", "size": "small", "duration": 1.7976931348623157e308}"#,
        r#"{"name": "e", "size": "small", "duration": 9007199254740993}"#,
        r#"{"name": "é ü 中 🦀", "size": "small", "clé": "värde"}"#,
        r#"{"name": "", "size": "small"}"#,
    ];
    // Taken, then refused by `emit`: the streaming reader's error.
    let refused: &[&str] = &[
        r#"{"name": "f", "size": "huge"}"#,
        r#"{"name": "f", "size": "unknown"}"#,
        r#"{"name": "f", "size": "small", "duration": -1.5}"#,
        r#"{"name": "f", "size": "small", "duration": -1e-300}"#,
    ];
    let mut d = Doc::new();
    for e in taken {
        assert_eq!(d.check_ok(&doc(e.as_bytes())), (3, true), "{e}");
    }
    for e in refused {
        assert_eq!(d.check_ok(&doc(e.as_bytes())), (2, false), "{e}");
    }
    // The committed fixtures (and one of the benchmark's shape) go all through it.
    for dir in ["fixtures/pytest-9.2", "fixtures/pytest-9.1"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(&p).unwrap();
                let n = d.check(&bytes);
                assert!(n > 0, "{}", p.display());
            }
        }
    }
}

#[test]
fn the_lane_declines_what_it_does_not_know() {
    let declined: &[&[u8]] = &[
            br#"{"name": "a\"b", "size": "small"}"#,
            br#"{"name": "\u00e9", "size": "small"}"#,
            br#"{"name": "a\nb", "size": "small"}"#,
            br#"{"n\u0061me": "a", "size": "small"}"#,
            b"{\"name\": \"a\tb\", \"size\": \"small\"}",
            b"{\"name\": \"a\x01b\", \"size\": \"small\"}",
            b"{\"name\": \"a\xffb\", \"size\": \"small\"}",
            b"{\"name\": \"a\", \"size\": \"small\", \"status\": \"\xc3\"}",
            b"{\"name\": \"a\", \"size\": \"small\", \"x\xff\": 1}",
            br#"{"name": "a", "name": "b", "size": "small"}"#,
            br#"{"name": "a", "size": "small", "size": "small"}"#,
            br#"{"name": "a", "size": "small", "duration": 1, "duration": 2}"#,
            br#"{"name": "a", "size": "small", "status": "x", "status": "y"}"#,
            br#"{"name": "a", "size": "small", "violations": [], "violations": []}"#,
            br#"{"name": "a", "size": "small", "duration": 1e400}"#,
            br#"{"name": "a", "size": "small", "duration": -1e400}"#,
            br#"{"name": "a", "size": "small", "duration": 1.7976931348623159e308}"#,
            br#"{"name": "a", "size": "small", "duration": 0.000000000000000000000000000000000000000001}"#,
            br#"{"name": "a", "size": "small", "duration": +1}"#,
            br#"{"name": "a", "size": "small", "duration": .5}"#,
            br#"{"name": "a", "size": "small", "duration": 01}"#,
            br#"{"name": "a", "size": "small", "duration": 1.}"#,
            br#"{"name": "a", "size": "small", "duration": 1.e5}"#,
            br#"{"name": "a", "size": "small", "duration": 1e}"#,
            br#"{"name": "a", "size": "small", "duration": 1e+}"#,
            br#"{"name": "a", "size": "small", "duration": -}"#,
            br#"{"name": "a", "size": "small", "duration": --1}"#,
            br#"{"name": "a", "size": "small", "duration": 0x10}"#,
            br#"{"name": "a", "size": "small", "duration": NaN}"#,
            br#"{"name": "a", "size": "small", "duration": Infinity}"#,
            br#"{"name": "a", "size": "small", "duration": 1.5x}"#,
            br#"{"name": "a", "size": "small", "duration": "1.0"}"#,
            br#"{"name": "a", "size": "small", "duration": true}"#,
            br#"{"name": "a", "size": "small", "duration": nul}"#,
            br#"{"name": "a", "size": "small", "duration": nulll}"#,
            br#"{"name": "a", "size": "small", "duration": [1]}"#,
            br#"{"name": "a", "size": "small", "status": True}"#,
            br#"{"name": "a", "size": "small", "status": {"x": 1}}"#,
            br#"{"name": "a", "size": "small", "status": []}"#,
            br#"{"name": "a", "size": "small", "other": {"n": [1, {"m": 2}]}}"#,
            br#"{"name": "a", "size": "small", "other": 01}"#,
            br#"{"name": "a", "size": "small", "more": []}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing", 1]}"#,
            br#"{"name": "a", "size": "small", "violations": [["timing"]]}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing",]}"#,
            br#"{"name": "a", "size": "small", "violations": "timing"}"#,
            br#"{"name": "a", "size": "small", "violations": null}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing" "x"]}"#,
            br#"{"name": "a", "size": 3}"#,
            br#"{"name": null, "size": "small"}"#,
            br#"{"name": ["a"], "size": "small"}"#,
            br#"{"size": "small"}"#,
            br#"{"name": "a"}"#,
            br#"{}"#,
            br#"{"name": "a", "size": "small",}"#,
            br#"{"name": "a", "size": "small" "status": "x"}"#,
            br#"{"name" "a", "size": "small"}"#,
            br#"{"name": "a"; "size": "small"}"#,
            br#"{name: "a", "size": "small"}"#,
            br#"1"#,
            br#""x""#,
            br#"null"#,
            br#"[]"#,
        ];
    let mut d = Doc::new();
    for e in declined {
        // Declined: the lane takes the usual entry after it only if the read goes on.
        let (n, ok) = d.check_ok(&doc(e));
        let want = if ok { 2 } else { 1 };
        assert_eq!(n, want, "{}", String::from_utf8_lossy(e));
    }
    // Taken, but the document is malformed just after it.
    let e = br#"{"name": "a", "size": "small"}}"#;
    assert_eq!(d.check_ok(&doc(e)), (2, false));
    // An entry longer than the lane reads ahead.
    let long = format!(r#"{{"name": "{}", "size": "small"}}"#, "x".repeat(100_000));
    assert_eq!(d.check(&doc(long.as_bytes())), 2);
}

#[test]
fn every_cut_of_a_report_agrees() {
    let full = doc(br#"{"violations": ["timing", "hermeticity:process"], "name": "x", "size": "medium", "duration": 1.25e-3, "status": null, "k": false}"#);
    let mut d = Doc::new();
    assert_eq!(d.check(&full), 3);
    for cut in 0..full.len() {
        d.check(&full[..cut]);
    }
}

/// Random edits of a report: whatever the lane takes, it takes as serde_json would.
#[test]
fn random_edits_agree() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base = doc(br#"{"name": "a.py::t[x]", "size": "large", "duration": 12.5e-1, "status": "passed", "violations": ["timing", "hermeticity:database"], "extra": -0}"#);
    let alphabet = b"{}[]:,\"\\ \n0123456789.eE+-aeflnrstuxz\x01\xc3\xa9";
    let mut d = Doc::new();
    let mut taken = 0;
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..b.len());
            let c = alphabet[rng.random_range(0..alphabet.len())];
            match rng.random_range(0..3) {
                0 => b[i] = c,
                1 => b.insert(i, c),
                _ => {
                    b.remove(i);
                }
            }
        }
        taken += d.check(&b);
    }
    assert!(taken > 3000, "the lane took only {taken} entries");
}

#[test]
fn eight_digits_at_a_time() {
    assert_eq!(fast::lane_eight_digits(b"12345678"), Some(12_345_678));
    assert_eq!(fast::lane_eight_digits(b"00000000"), Some(0));
    assert_eq!(fast::lane_eight_digits(b"99999999"), Some(99_999_999));
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..100_000 {
        let mut b = [0u8; 8];
        for c in &mut b {
            *c = if rng.random_bool(0.9) {
                b'0' + rng.random_range(0..10u8)
            } else {
                rng.random()
            };
        }
        let want = b
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| b.iter().fold(0u64, |v, c| v * 10 + u64::from(c - b'0')));
        assert_eq!(fast::lane_eight_digits(&b), want, "{b:?}");
    }
}

/// The lane's `duration` is serde_json's, bit for bit, whenever it takes one.
#[test]
fn durations_convert_as_serde_json_does() {
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "0e0",
        "-0e-5",
        "1",
        "-1",
        "5e-324",
        "4.9e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "9007199254740993",
        "9007199254740992.5",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "0.1",
        "0.30000000000000004",
        "1e-5",
        "1E+2",
        "1e400",
        "1e-400",
        "0e400",
        "00",
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "-",
        "1.5e3",
        "123456789012345678901234567890",
        "0.000000000000000000000000000000000000001",
        "0.4141274800290968",
        "0.00013754391097760212",
        "2.0427319893262514",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..100_000 {
        let mut s = String::new();
        if rng.random_bool(0.2) {
            s.push('-');
        }
        let digits = rng.random_range(1..25);
        for k in 0..digits {
            let d = rng.random_range(0..10u8);
            s.push((b'0' + if k == 0 && digits > 1 { d.max(1) } else { d }) as char);
        }
        if rng.random_bool(0.7) {
            s.push('.');
            for _ in 0..rng.random_range(1..20) {
                s.push((b'0' + rng.random_range(0..10u8)) as char);
            }
        }
        if rng.random_bool(0.4) {
            s.push(if rng.random_bool(0.5) { 'e' } else { 'E' });
            match rng.random_range(0..3) {
                0 => s.push('-'),
                1 => s.push('+'),
                _ => {}
            }
            let e = if rng.random_bool(0.5) {
                rng.random_range(0..30)
            } else {
                rng.random_range(0..400)
            };
            s.push_str(&e.to_string());
        }
        cases.push(s);
    }
    let (mut taken, mut exact) = (0, 0);
    for s in &cases {
        let serde = serde_json::from_str::<Option<f64>>(s).ok();
        if let Some(lane) = fast::lane_duration(s.as_bytes()) {
            taken += 1;
            exact += usize::from(fast::lane_exact(s.as_bytes()).is_some());
            assert_eq!(
                lane.map(f64::to_bits),
                serde.flatten().map(f64::to_bits),
                "{s}: serde_json {serde:?}"
            );
            assert!(serde.is_some(), "{s}");
        }
    }
    assert!(taken > cases.len() / 2, "taken {taken}");
    assert!(exact > cases.len() / 5, "exact {exact}");
    assert_eq!(
        fast::lane_exact(b"0.4141274800290968"),
        Some(0.4141274800290968)
    );
    assert_eq!(fast::lane_exact(b"2.0427319893262514"), None);
    assert_eq!(fast::lane_duration(b"null"), Some(None));
    assert_eq!(fast::lane_duration(b"0.5"), Some(Some(0.5)));
}

#[test]
fn whitespace_over_the_token_limit_ends_both_readers_the_same_way() {
    let entry = r#"{"name": "t.py::a", "size": "small", "duration": 0.5, "status": "passed", "violations": []}"#;
    let pad = " ".repeat(MAX_JSON_TOKEN as usize + 10);
    let mut d = Doc::new();
    // Between entries, and before the document's end.
    let (_, ok) = d.check_ok(format!(r#"{{"tests": [{entry},{pad}{entry}]}}"#).as_bytes());
    assert!(!ok, "more than 4 MiB without a quote is refused");
    let (_, ok) = d.check_ok(format!(r#"{{"tests": [{entry}]}}{pad}"#).as_bytes());
    assert!(!ok);
    // Just under the limit is fine.
    let pad = " ".repeat(1 << 20);
    let (taken, ok) = d.check_ok(format!(r#"{{"tests": [{entry},{pad}{entry}]}}"#).as_bytes());
    assert!(ok);
    assert!(taken >= 1);
}
