//! Generates pytest-shaped reports of any size for benchmarks and stress tests:
//! a JUnit XML file as pytest 9.2 writes it (`junit_family=xunit2`) and the matching
//! pytest-test-categories 1.2.2 JSON size report.
//!
//! ```text
//! cargo run --release --example gen_reports -- --tests 1000000 --out target/bench-data/1m
//! cargo run --release --example gen_reports -- --tests 1000 --huge-output 1G --out target/bench-data/huge
//! ```
//!
//! Options:
//! * `--tests N` test functions (items) to generate (default 10000);
//! * `--out DIR` writes `DIR/junit.xml` and `DIR/size.json` (created if missing);
//! * `--seed S` (default 1): the same seed gives the same bytes;
//! * `--huge-output BYTES` gives one test in the middle a `<system-out>` of that many bytes
//!   (suffixes K, M, G), written in chunks, so any size can be generated;
//! * `--logging` writes a small `<system-out>` on every test (pytest's `junit_logging=all`);
//! * `--labels` writes pytest 9.1.x names with the plugin's ` [SIZE]` label;
//! * `--runs K` writes K runs instead, `DIR/run-00001/…` (seeds S, S+1, …; one run every
//!   ten minutes), an archive for `ptc-metrics backfill`.
//!
//! The mix follows the shapes of real pytest output (fixtures/): modules in packages, tests in classes (some
//! nested), parametrized ids (some with XML-special characters), outcomes passed /
//! failed (assertion tracebacks, TC006 timing texts) / setup errors / skips / xfails,
//! teardown errors after a failed call (two elements), reruns (an empty element before
//! the final attempt), and sizes 75% small, 15% medium, 4% large, 1% xlarge, 5% unsized.
//! The generator prints a one-line summary (tests, elements, bytes) on stderr.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

struct Rng(u64);

impl Rng {
    /// splitmix64: tiny, deterministic on every platform.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const AREAS: [&str; 6] = ["unit", "integration", "api", "storage", "billing", "search"];
const VERBS: [&str; 12] = [
    "creates", "rejects", "parses", "renders", "retries", "merges", "sorts", "loads", "saves",
    "handles", "returns", "raises",
];
const NOUNS: [&str; 12] = [
    "invoice",
    "ledger_entry",
    "account",
    "user",
    "payload",
    "timeout",
    "empty_input",
    "unicode_name",
    "large_batch",
    "missing_field",
    "config",
    "token",
];
const CLASSES: [&str; 8] = [
    "TestCreate",
    "TestValidation",
    "TestSerialization",
    "TestRetry",
    "TestPermissions",
    "TestMigration",
    "TestCache",
    "TestEdgeCases",
];

#[derive(Clone, Copy, PartialEq)]
enum Size {
    Small,
    Medium,
    Large,
    Xlarge,
    Unsized,
}

impl Size {
    fn json(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
            Size::Xlarge => "xlarge",
            Size::Unsized => "unsized",
        }
    }
    fn label(self) -> Option<&'static str> {
        match self {
            Size::Small => Some("SMALL"),
            Size::Medium => Some("MEDIUM"),
            Size::Large => Some("LARGE"),
            Size::Xlarge => Some("XLARGE"),
            Size::Unsized => None,
        }
    }
    fn limit(self) -> f64 {
        match self {
            Size::Small => 1.0,
            Size::Medium => 300.0,
            Size::Large | Size::Xlarge => 900.0,
            Size::Unsized => f64::INFINITY,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pass,
    Fail,
    Timing,
    SetupError,
    FailThenTeardownError,
    Skip,
    Xfail,
    Flaky,
}

/// What to generate (the command-line options).
pub struct Opts {
    pub tests: u64,
    pub out: PathBuf,
    pub seed: u64,
    pub huge_output: u64,
    pub logging: bool,
    pub labels: bool,
    /// Start of the run, Unix seconds.
    pub start: u64,
}

fn parse_bytes(s: &str) -> u64 {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().expect("a byte count like 1G") * mult
}

fn opts() -> (Opts, u64) {
    let mut runs = 0u64;
    let mut o = Opts {
        tests: 10_000,
        out: PathBuf::from("target/bench-data/gen"),
        seed: 1,
        huge_output: 0,
        logging: false,
        labels: false,
        start: 1_795_703_214,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--tests" => o.tests = val().replace('_', "").parse().expect("--tests N"),
            "--out" => o.out = PathBuf::from(val()),
            "--seed" => o.seed = val().parse().expect("--seed S"),
            "--huge-output" => o.huge_output = parse_bytes(&val()),
            "--logging" => o.logging = true,
            "--labels" => o.labels = true,
            "--runs" => runs = val().parse().expect("--runs K"),
            "-h" | "--help" => {
                eprintln!("usage: gen_reports [--tests N] [--out DIR] [--seed S] [--huge-output BYTES] [--logging] [--labels]");
                std::process::exit(0);
            }
            other => panic!("unknown option {other}"),
        }
    }
    (o, runs)
}

/// `2026-11-26T14:26:54.051599+00:00` for Unix seconds (UTC).
fn iso(t: u64) -> String {
    let (days, secs) = (t / 86400, t % 86400);
    let (y, m, d) = ptc_metrics::civil::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.051599+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            _ => out.push(c),
        }
    }
}

fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
}

/// One test item: where it lives and what happened to it.
struct Item {
    node_id: String,
    classname: String,
    name: String,
    size: Size,
    kind: Kind,
    /// JUnit time of the final attempt (setup + call + teardown).
    time: f64,
    /// Call-phase duration for the JSON (None without a call phase).
    call: Option<f64>,
    hermeticity: Option<&'static str>,
}

fn duration(rng: &mut Rng, size: Size) -> f64 {
    // Log-uniform between a floor and a cap that depend on the size.
    let (lo, hi): (f64, f64) = match size {
        Size::Small => (1e-4, 0.9),
        Size::Medium => (1e-2, 60.0),
        Size::Large | Size::Xlarge => (0.1, 300.0),
        Size::Unsized => (1e-4, 5.0),
    };
    let u = rng.unit();
    // Bias to the fast end: most tests are quick.
    let u = u * u;
    (lo.ln() + u * (hi.ln() - lo.ln())).exp()
}

fn item(rng: &mut Rng, i: u64) -> Item {
    let module = i / 40;
    let area = AREAS[(module % AREAS.len() as u64) as usize];
    let path = format!("tests/{area}/pkg_{}/test_mod_{module}.py", module % 97);
    let dotted = path.trim_end_matches(".py").replace('/', ".");
    let mut classes = Vec::new();
    if rng.below(10) < 4 {
        classes.push(CLASSES[(i / 8 % CLASSES.len() as u64) as usize].to_string());
        if rng.below(10) == 0 {
            classes.push("TestNested".to_string());
        }
    }
    let mut func = format!("test_{}_{}", rng.pick(&VERBS), rng.pick(&NOUNS));
    func.push_str(&format!("_{i}"));
    let params = match rng.below(100) {
        0..=19 => format!("[case-{}]", rng.below(50)),
        20..=27 => format!("[{}-{}]", rng.pick(&NOUNS), rng.below(1000)),
        28 => "[<xml & amp>]".to_string(),
        29 => "[a::b]".to_string(),
        _ => String::new(),
    };
    let name = format!("{func}{params}");
    let mut node_id = path.clone();
    for c in &classes {
        node_id.push_str("::");
        node_id.push_str(c);
    }
    node_id.push_str("::");
    node_id.push_str(&name);
    let mut classname = dotted;
    for c in &classes {
        classname.push('.');
        classname.push_str(c);
    }
    let size = match rng.below(100) {
        0..=74 => Size::Small,
        75..=89 => Size::Medium,
        90..=93 => Size::Large,
        94 => Size::Xlarge,
        _ => Size::Unsized,
    };
    let kind = match rng.below(1000) {
        0..=37 => Kind::Fail,
        38..=47 => Kind::Timing,
        48..=57 => Kind::SetupError,
        58..=59 => Kind::FailThenTeardownError,
        60..=89 => Kind::Skip,
        90..=109 => Kind::Xfail,
        110..=119 => Kind::Flaky,
        _ => Kind::Pass,
    };
    let mut call = duration(rng, size);
    if kind == Kind::Timing {
        call = size.limit().min(900.0) * (1.05 + rng.unit());
    }
    let setup = rng.unit() * 0.002;
    let time = match kind {
        Kind::SetupError | Kind::Skip => setup,
        Kind::Xfail => call.min(0.01),
        _ => setup + call,
    };
    let call = match kind {
        Kind::SetupError | Kind::Skip => None,
        _ => Some(call),
    };
    let hermeticity = if rng.below(500) == 0 && size != Size::Unsized {
        Some(["network", "filesystem", "process", "database", "sleep"][rng.below(5) as usize])
    } else {
        None
    };
    Item {
        node_id,
        classname,
        name,
        size,
        kind,
        time,
        call,
        hermeticity,
    }
}

const TRACEBACK: &str = "    def test_it(ledger):
        entry = ledger.post(amount=10)
&gt;       assert entry.balance == expected_balance(ledger)
E       AssertionError: assert 10 == 20
E        +  where 10 = &lt;Entry id=42&gt;.balance
E        +  and   20 = expected_balance(&lt;Ledger accounts=3&gt;)

tests/unit/test_ledger.py:42: AssertionError";

fn timing_text(node_id: &str, size: Size, took: f64) -> String {
    let bar = "=".repeat(70);
    let up = size.label().unwrap_or("SMALL");
    let mut id = String::new();
    xml_escape(node_id, &mut id);
    format!(
        "\n{bar}\n[TC006] Timing Violation\n{bar}\nTest: {id}\nCategory: {up}\n\nWhat happened:\n  {up} test exceeded time limit of {:.1} seconds (took {took:.1} seconds)\n\nWhy it matters:\n  Tests have time limits based on their size category. Fast tests give fast feedback.\n\nTo fix this (choose one):\n  \u{2022} Optimize the test to run faster (reduce setup, use fixtures)\n  \u{2022} Mock slow dependencies (network, filesystem, database)\n  \u{2022} Split the test into smaller, focused tests\n  \u{2022} Change test category to @pytest.mark.medium (if more time is genuinely needed)\n\nSee: https://pytest-test-categories.readthedocs.io/en/latest/errors/timing-limits.html\n{bar}",
        size.limit().min(900.0)
    )
}

fn main() -> std::io::Result<()> {
    let (o, runs) = opts();
    if runs == 0 {
        return generate(&o);
    }
    for k in 0..runs {
        let run = Opts {
            out: o.out.join(format!("run-{:05}", k + 1)),
            seed: o.seed + k,
            start: o.start - (runs - k) * 600,
            ..o
        };
        generate(&run)?;
    }
    Ok(())
}

/// Writes `junit.xml` and `size.json` into `o.out`.
pub fn generate(o: &Opts) -> std::io::Result<()> {
    std::fs::create_dir_all(&o.out)?;
    let mut rng = Rng(o.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678);
    let junit_path = o.out.join("junit.xml");
    let json_path = o.out.join("size.json");
    let mut x = BufWriter::with_capacity(1 << 20, File::create(&junit_path)?);
    // The JSON lists small tests first, then medium, large, xlarge, unsized: one buffer each,
    // kept as temp files so that memory stays small for any N.
    let mut parts: Vec<(PathBuf, BufWriter<File>)> = Vec::new();
    for s in ["small", "medium", "large", "xlarge", "unsized"] {
        let p = o.out.join(format!(".size-{s}.part"));
        let f = BufWriter::with_capacity(1 << 20, File::create(&p)?);
        parts.push((p, f));
    }
    let mut first_in_part = [true; 5];

    let huge_at = if o.huge_output > 0 {
        o.tests / 2
    } else {
        u64::MAX
    };
    let mut elements = 0u64;
    let (mut failures, mut errors, mut skipped) = (0u64, 0u64, 0u64);
    let mut total_time = 0.0;
    let mut counts = [0u64; 5];
    let mut timing_count = 0u64;
    let mut herm_counts = [0u64; 5];

    // The suite header needs counts pytest knows only at the end; a fixed-width
    // placeholder is patched afterwards.
    writeln!(x, "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\"><testsuite name=\"pytest\" {:<160}>", "")?;
    let mut s = String::with_capacity(8192);
    let mut j = String::with_capacity(512);
    for i in 0..o.tests {
        let it = item(&mut rng, i);
        s.clear();
        let name = match (o.labels, it.size.label()) {
            (true, Some(l)) => format!("{} [{l}]", it.name),
            _ => it.name.clone(),
        };
        let open = |s: &mut String, time: f64| {
            s.push_str("<testcase classname=\"");
            xml_escape(&it.classname, s);
            s.push_str("\" name=\"");
            xml_escape(&name, s);
            s.push_str(&format!("\" time=\"{time:.3}\""));
        };
        let logging = |s: &mut String, rng: &mut Rng| {
            if o.logging {
                s.push_str("<system-out>--------------------------------- Captured Log ---------------------------------\nINFO     app.module:module.py:42 handled request ");
                s.push_str(&rng.below(100000).to_string());
                s.push_str("\n\n--------------------------------- Captured Out ---------------------------------\n\n</system-out><system-err>--------------------------------- Captured Err ---------------------------------\n\n</system-err>");
            }
        };
        if it.kind == Kind::Flaky {
            // A failed attempt that got rerun: an empty element first.
            open(&mut s, it.time * 1.3);
            s.push_str(" />");
            elements += 1;
            total_time += it.time * 1.3;
        }
        open(&mut s, it.time);
        elements += 1;
        total_time += it.time;
        match it.kind {
            Kind::Pass | Kind::Flaky => {
                if o.logging || i == huge_at {
                    s.push('>');
                    logging(&mut s, &mut rng);
                    if i == huge_at {
                        x.write_all(s.as_bytes())?;
                        s.clear();
                        write_huge(&mut x, o.huge_output)?;
                    }
                    s.push_str("</testcase>");
                } else {
                    s.push_str(" />");
                }
            }
            Kind::Fail | Kind::FailThenTeardownError => {
                failures += 1;
                s.push_str("><failure message=\"AssertionError: assert 10 == 20&#10; +  where 10 = &lt;Entry id=42&gt;.balance\">");
                s.push_str(TRACEBACK);
                s.push_str("</failure>");
                logging(&mut s, &mut rng);
                s.push_str("</testcase>");
                if it.kind == Kind::FailThenTeardownError {
                    errors += 1;
                    open(&mut s, 0.0005);
                    s.push_str("><error message=\"failed on teardown with &quot;PermissionError: could not release lock&quot;\">@pytest.fixture\n    def lock():\n        yield Lock()\n&gt;       raise PermissionError(\"could not release lock\")\nE       PermissionError: could not release lock\n\ntests/conftest.py:22: PermissionError</error></testcase>");
                    elements += 1;
                }
            }
            Kind::Timing => {
                failures += 1;
                let text = timing_text(&it.node_id, it.size, it.call.unwrap_or(0.0));
                s.push_str("><failure message=\"");
                s.push_str(&text.replace('\n', "&#10;"));
                s.push_str("\">");
                s.push_str(&text);
                s.push_str("</failure>");
                logging(&mut s, &mut rng);
                s.push_str("</testcase>");
            }
            Kind::SetupError => {
                errors += 1;
                s.push_str("><error message=\"failed on setup with &quot;ConnectionError: database unavailable&quot;\">@pytest.fixture\n    def db():\n&gt;       raise ConnectionError(\"database unavailable\")\nE       ConnectionError: database unavailable\n\ntests/conftest.py:16: ConnectionError</error>");
                logging(&mut s, &mut rng);
                s.push_str("</testcase>");
            }
            Kind::Skip => {
                skipped += 1;
                s.push_str("><skipped type=\"pytest.skip\" message=\"backend not configured\">/home/ci/repo/");
                s.push_str(&it.node_id[..it.node_id.find("::").unwrap_or(0)]);
                s.push_str(":12: backend not configured</skipped>");
                logging(&mut s, &mut rng);
                s.push_str("</testcase>");
            }
            Kind::Xfail => {
                skipped += 1;
                s.push_str("><skipped type=\"pytest.xfail\" message=\"known bug #123\" />");
                logging(&mut s, &mut rng);
                s.push_str("</testcase>");
            }
        }
        x.write_all(s.as_bytes())?;

        // JSON entry.
        let si = it.size as usize;
        counts[si] += 1;
        let mut violations = Vec::new();
        let timing = it.call.is_some_and(|c| c > it.size.limit());
        if timing {
            violations.push("\"timing\"".to_string());
            timing_count += 1;
        }
        if let Some(h) = it.hermeticity {
            violations.push(format!("\"hermeticity:{h}\""));
            herm_counts[["network", "filesystem", "process", "database", "sleep"]
                .iter()
                .position(|x| *x == h)
                .unwrap()] += 1;
        }
        let status = match it.kind {
            Kind::Fail | Kind::Timing | Kind::FailThenTeardownError => "failed",
            Kind::Xfail | Kind::Skip if it.call.is_some() => "skipped",
            _ => "passed",
        };
        j.clear();
        j.push_str(if first_in_part[si] {
            "    {\n"
        } else {
            ",\n    {\n"
        });
        first_in_part[si] = false;
        j.push_str("      \"name\": \"");
        match (o.labels, it.size.label()) {
            (true, Some(l)) => json_escape(&format!("{} [{l}]", it.node_id), &mut j),
            _ => json_escape(&it.node_id, &mut j),
        }
        j.push_str("\",\n      \"size\": \"");
        j.push_str(it.size.json());
        j.push_str("\",\n      \"duration\": ");
        match it.call {
            Some(c) => j.push_str(&format!("{c:?}")),
            None => j.push_str("null"),
        }
        j.push_str(",\n      \"status\": \"");
        j.push_str(status);
        j.push_str("\",\n      \"violations\": [");
        j.push_str(&violations.join(", "));
        j.push_str("]\n    }");
        parts[si].1.write_all(j.as_bytes())?;
    }
    x.write_all(b"</testsuite></testsuites>\n")?;
    x.flush()?;
    drop(x);

    // Patch the suite header in place (same width).
    let attrs = format!(
        "errors=\"{errors}\" failures=\"{failures}\" skipped=\"{skipped}\" tests=\"{}\" time=\"{total_time:.3}\" timestamp=\"{}\" hostname=\"ci\"",
        o.tests,
        iso(o.start)
    );
    assert!(attrs.len() <= 160, "{attrs}");
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new().write(true).open(&junit_path)?;
        let off = "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\"><testsuite name=\"pytest\" ".len();
        f.seek(SeekFrom::Start(off as u64))?;
        f.write_all(format!("{attrs:<160}").as_bytes())?;
    }

    let sized: u64 = counts[..4].iter().sum();
    let pct = |n: u64| {
        if sized == 0 {
            0.0
        } else {
            (n as f64 * 10000.0 / sized as f64).round() / 100.0
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&json_path)?);
    write!(
        out,
        "{{\n  \"version\": \"1.2.2\",\n  \"timestamp\": \"{}Z\",\n  \"summary\": {{\n    \"total_tests\": {},\n    \"distribution\": {{\n",
        iso(o.start + 60).trim_end_matches("+00:00"),
        o.tests
    )?;
    for (k, (n, t)) in ["small", "medium", "large", "xlarge"].iter().zip([
        (0, 80.0),
        (1, 15.0),
        (2, 4.0),
        (3, 1.0),
    ]) {
        write!(
            out,
            "      \"{k}\": {{\n        \"count\": {},\n        \"percentage\": {},\n        \"target\": {t:?}\n      }}{}\n",
            counts[n],
            pct(counts[n]),
            if n < 3 { "," } else { "" }
        )?;
    }
    write!(
        out,
        "    }},\n    \"violations\": {{\n      \"timing\": {timing_count},\n      \"baseline\": 0,\n      \"hermeticity\": {{\n        \"network\": {},\n        \"filesystem\": {},\n        \"process\": {},\n        \"database\": {},\n        \"sleep\": {},\n        \"total\": {}\n      }}\n    }}\n  }},\n  \"tests\": [\n",
        herm_counts[0],
        herm_counts[1],
        herm_counts[2],
        herm_counts[3],
        herm_counts[4],
        herm_counts.iter().sum::<u64>()
    )?;
    let mut any = false;
    for (p, w) in parts {
        drop(w);
        let mut f = File::open(&p)?;
        if f.metadata()?.len() > 0 {
            if any {
                out.write_all(b",\n")?;
            }
            std::io::copy(&mut f, &mut out)?;
            any = true;
        }
        std::fs::remove_file(&p)?;
    }
    out.write_all(b"\n  ]\n}\n")?;
    out.flush()?;
    let xml_len = std::fs::metadata(&junit_path)?.len();
    let json_len = std::fs::metadata(&json_path)?.len();
    if o.tests < 1000
        && o.out
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
    {
        return Ok(());
    }
    eprintln!(
        "gen_reports: {} tests, {elements} <testcase> elements; {} ({xml_len} bytes), {} ({json_len} bytes)",
        o.tests,
        junit_path.display(),
        json_path.display()
    );
    Ok(())
}

/// A captured output of `n` bytes: log lines, written 1 MiB at a time.
fn write_huge(x: &mut impl Write, n: u64) -> std::io::Result<()> {
    x.write_all(b"<system-out>")?;
    let line = "INFO     app.worker:worker.py:118 processed batch 000000 of 999999 in 0.012s; queue depth 17 &amp; no errors\n";
    let mut block = String::with_capacity((1 << 20) + line.len());
    while block.len() < 1 << 20 {
        block.push_str(line);
    }
    let block = block.as_bytes();
    let mut left = n;
    while left >= block.len() as u64 {
        x.write_all(block)?;
        left -= block.len() as u64;
    }
    // The rest as plain characters, so that no entity is cut in half.
    x.write_all(&vec![b'.'; left as usize])?;
    x.write_all(b"</system-out>")
}
