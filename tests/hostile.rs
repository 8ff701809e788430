//! Hostile inputs: each one gets a clear error (exit 2 and a message naming the file and
//! what is wrong), in bounded time and memory, with nothing printed on stdout and nothing
//! pushed. Big inputs are generated here, at test time (nothing large is committed).
//! The minimized fuzzer findings in `tests/hostile/` run through the same checks.
//!
//! Bounds are for the debug build the tests run: 30 s wall, 150 MB peak RSS (sampled from
//! `/proc/PID/status` `VmHWM` every few milliseconds: `wait4`'s figure would include this
//! test process, which the child is forked from) and a hard 1 GiB address-space limit
//! (`RLIMIT_AS`), so a run that tried to buffer a huge input would fail, not pass. The
//! release build's figures are in docs/performance.md.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const WALL: Duration = Duration::from_secs(30);
const RSS_KB: i64 = 150 * 1024;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pytest-9.2")
        .join(name)
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
    max_rss_kb: i64,
}

fn vm_hwm_kb(pid: libc::pid_t) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary under a 1 GiB address-space limit, killing it at [`WALL`], sampling
/// its peak RSS.
fn run(args: &[&str]) -> Ran {
    use std::os::unix::process::CommandExt;
    let t = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .args(args)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ptc-metrics");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let e = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = done.clone();
    let watchdog = thread::spawn(move || {
        let mut hwm = 0;
        while t.elapsed() < WALL {
            if done2.load(Ordering::SeqCst) == 1 {
                return hwm;
            }
            if let Some(k) = vm_hwm_kb(pid) {
                hwm = hwm.max(k);
            }
            thread::sleep(Duration::from_millis(3));
        }
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        hwm
    });
    // Wait without reaping, so that the last VmHWM sample races nothing.
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `info` is valid for writes.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid");
    let wall = t.elapsed();
    done.store(1, Ordering::SeqCst);
    let max_rss_kb = watchdog.join().unwrap();
    let mut status = 0;
    // SAFETY: reaps our own child; `status` is valid for writes.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid");
    std::mem::forget(child); // reaped by wait4 above
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ran {
        code,
        stdout: String::from_utf8_lossy(&o.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&e.join().unwrap()).into_owned(),
        wall,
        max_rss_kb,
    }
}

/// Asserts exit 2, an error starting `error: {path}{tail}` (tail is a prefix when it ends
/// with `…`), nothing on stdout, and the bounds.
fn refused(r: &Ran, path: &Path, tail: &str) {
    let want = format!("error: {}{}", path.display(), tail.trim_end_matches('…'));
    assert_eq!(r.code, Some(2), "exit code; stderr: {}", r.stderr);
    if tail.ends_with('…') {
        assert!(
            r.stderr.starts_with(&want),
            "stderr {:?}\n want prefix {want:?}",
            r.stderr
        );
    } else {
        assert_eq!(r.stderr, format!("{want}\n"));
    }
    assert_eq!(r.stdout, "", "a refused input prints no metrics");
    bounded(r);
}

fn bounded(r: &Ran) {
    assert!(r.wall < WALL, "took {:?}", r.wall);
    assert!(r.max_rss_kb < RSS_KB, "peak RSS {} KB", r.max_rss_kb);
}

fn dry(p: &Path) -> Ran {
    run(&["push", p.to_str().unwrap(), "--dry-run"])
}

fn dry_with_report(junit: &Path, report: &Path) -> Ran {
    run(&[
        "push",
        junit.to_str().unwrap(),
        "--size-report",
        report.to_str().unwrap(),
        "--dry-run",
    ])
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A valid JUnit document with `prefix` (a DTD) before the root and `body` (raw) after a
/// first test padded past what the content sniffer reads, so the reader meets `body`.
fn doc_with(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut d = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>".to_vec();
    d.extend_from_slice(prefix);
    d.extend_from_slice(b"<testsuites><testsuite name=\"s\" time=\"1\">");
    d.extend_from_slice(b"<testcase classname=\"c\" name=\"pad\" time=\"0.1\"><system-out>");
    d.extend(std::iter::repeat_n(b'.', 300 * 1024));
    d.extend_from_slice(b"</system-out></testcase>");
    d.extend_from_slice(body);
    d.extend_from_slice(b"</testsuite></testsuites>\n");
    d
}

#[test]
fn truncated_and_malformed_xml() {
    let d = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture("junit-xunit2.xml")).unwrap();
    let p = write(&d, "cut.xml", &full[..full.len() / 2]);
    refused(&dry(&p), &p, ":…");
    let r = dry(&p);
    assert!(
        r.stderr.contains("truncated") || r.stderr.contains("malformed XML"),
        "{}",
        r.stderr
    );
    let p = write(
        &d,
        "bad.xml",
        b"<testsuites><testsuite><testcase name=\"a\"></testsuite></testsuites>",
    );
    refused(
        &dry(&p),
        &p,
        ":1:43: malformed XML: ill-formed document: expected `</testcase>`, but `</testsuite>` was found",
    );
    let p = write(
        &d,
        "attr.xml",
        b"<testsuites><testsuite><testcase name=a/></testsuite></testsuites>",
    );
    refused(
        &dry(&p),
        &p,
        ":1:24: malformed attribute \"name=a\": the value is not quoted",
    );
}

#[test]
fn invalid_utf8_and_nul_bytes() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        &d,
        "latin1.xml",
        &doc_with(
            b"",
            b"<testcase classname=\"c\" name=\"caf\xE9\" time=\"1\"/>",
        ),
    );
    refused(&dry(&p), &p, ":1:…");
    assert!(
        dry(&p)
            .stderr
            .ends_with(": not UTF-8 (byte 0xE9): reports must be UTF-8 encoded\n"),
        "{}",
        dry(&p).stderr
    );
    // In captured output, which is otherwise never looked at.
    let p = write(
        &d,
        "out.xml",
        &doc_with(
            b"",
            b"<testcase classname=\"c\" name=\"n\"><system-out>\xC3\x28</system-out></testcase>",
        ),
    );
    refused(&dry(&p), &p, ":1:…");
    let p = write(
        &d,
        "nul.xml",
        &doc_with(
            b"",
            b"<testcase classname=\"c\" name=\"n\"><system-out>a\0b</system-out></testcase>",
        ),
    );
    refused(&dry(&p), &p, ":1:…");
    assert!(dry(&p)
        .stderr
        .ends_with(": a NUL byte, which XML does not allow (a binary or damaged file?)\n"));
    // A NUL within the first 64 KiB: the sniffer already says binary.
    let p = write(&d, "bin.xml", b"<testsuites>\0</testsuites>");
    refused(
        &dry(&p),
        &p,
        ": is a binary file, not text; expected a JUnit XML report",
    );
}

#[test]
fn dtd_entity_expansion_and_external_entities() {
    let d = tempfile::tempdir().unwrap();
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>");
    // Billion laughs in a value that is read: never expanded, an error.
    let p = write(
        &d,
        "laughs.xml",
        &doc_with(
            dtd.as_bytes(),
            b"<testcase classname=\"c\" name=\"&lol9;\" time=\"1\"/>",
        ),
    );
    refused(&dry(&p), &p, ":1:…");
    assert!(dry(&p).stderr.ends_with(": bad value of attribute name: unrecognized entity `lol9` (entities declared in a DTD are never expanded)\n"));
    // An external entity: no file is read.
    let p = write(
        &d,
        "xxe.xml",
        &doc_with(
            dtd.as_bytes(),
            b"<testcase classname=\"&xxe;\" name=\"n\" time=\"1\"/>",
        ),
    );
    let r = dry(&p);
    refused(&r, &p, ":1:…");
    assert!(!r.stderr.contains("root:"), "{}", r.stderr);
    // In text that is never read, a reference is skipped, not expanded: bounded, accepted.
    let p = write(
        &d,
        "text.xml",
        &doc_with(
            dtd.as_bytes(),
            b"<testcase classname=\"c\" name=\"n\"><system-out>&lol9;&xxe;</system-out></testcase>",
        ),
    );
    let r = dry(&p);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    bounded(&r);
}

#[test]
fn deep_nesting() {
    let d = tempfile::tempdir().unwrap();
    let mut doc = b"<testsuites><testsuite name=\"s\">".to_vec();
    doc.extend(std::iter::repeat_n(&b"<a>"[..], 100_000).flatten());
    let p = write(&d, "deep.xml", &doc);
    refused(&dry(&p), &p, ":1:…");
    assert!(dry(&p)
        .stderr
        .ends_with(": elements nested more than 256 deep: not a JUnit report\n"));
    let mut cov = b"<coverage>".to_vec();
    cov.extend(std::iter::repeat_n(&b"<p>"[..], 100_000).flatten());
    let p = write(&d, "deep-coverage.xml", &cov);
    let r = run(&[
        "push",
        fixture("junit-xunit2.xml").to_str().unwrap(),
        "--coverage",
        p.to_str().unwrap(),
        "--dry-run",
    ]);
    refused(&r, &p, ":1:…");
    // JSON: skipped with a constant-size stack, in bounded time.
    let mut json = b"{\"summary\": ".to_vec();
    json.extend(std::iter::repeat_n(b'[', 100_000));
    json.extend(std::iter::repeat_n(b']', 100_000));
    json.push(b'}');
    let p = write(&d, "deep.json", &json);
    let junit = fixture("junit-xunit2.xml");
    let r = dry_with_report(&junit, &p);
    refused(&r, &p, ":1:200013: not a pytest-test-categories size report: no \"tests\" list (write it with --test-size-report=json)");
    // Nested where a test's field is expected.
    let mut json = b"{\"tests\": [{\"name\": \"a\", \"size\": \"small\", \"x\": ".to_vec();
    json.extend(std::iter::repeat_n(b'{', 100_000));
    let p = write(&d, "deep-entry.json", &json);
    let r = dry_with_report(&junit, &p);
    refused(&r, &p, ":1:…");
}

#[test]
fn ten_megabyte_attribute_values_and_names() {
    let d = tempfile::tempdir().unwrap();
    let big = vec![b'a'; 10 << 20];
    let mut body = b"<testcase classname=\"c\" name=\"".to_vec();
    body.extend_from_slice(&big);
    body.extend_from_slice(b"\" time=\"1\"/>");
    let p = write(&d, "value.xml", &doc_with(b"", &body));
    refused(&dry(&p), &p, ":1:…");
    assert!(dry(&p).stderr.ends_with(": a tag longer than 4 MiB (an element with its attributes); ptc-metrics reads tags up to that size\n"));
    let mut body = b"<testcase ".to_vec();
    body.extend_from_slice(&big);
    body.extend_from_slice(b"=\"x\" name=\"n\"/>");
    let p = write(&d, "name.xml", &doc_with(b"", &body));
    refused(&dry(&p), &p, ":1:…");
    // In JSON: a 10 MB test name.
    let mut json = b"{\"tests\": [{\"name\": \"".to_vec();
    json.extend_from_slice(&big);
    json.extend_from_slice(b"\", \"size\": \"small\", \"duration\": 1.0}]}");
    let p = write(&d, "name.json", &json);
    let r = dry_with_report(&fixture("junit-xunit2.xml"), &p);
    refused(&r, &p, ":1:…");
    assert!(r.stderr.ends_with(": a single JSON value longer than 4 MiB without a quote; a size report never has one\n"), "{}", r.stderr);
}

#[test]
fn json_wrong_types_and_huge_numbers() {
    let d = tempfile::tempdir().unwrap();
    let junit = fixture("junit-xunit2.xml");
    let cases: [(&str, &[u8], &str); 4] = [
        ("types.json", b"{\"tests\": [{\"name\": 1, \"size\": \"small\"}]}", ":1:22: not a pytest-test-categories size report: invalid type: integer `1`, expected a string"),
        ("list.json", b"{\"tests\": {\"name\": \"a\"}}", ":1:11: not a pytest-test-categories size report: invalid type: map, expected a list of tests"),
        ("huge.json", b"{\"tests\": [{\"name\": \"a\", \"size\": \"small\", \"duration\": 1e999}]}", ":1:…"),
        ("neg.json", b"{\"tests\": [{\"name\": \"a\", \"size\": \"small\", \"duration\": -1}]}", ":1:…"),
    ];
    for (name, body, tail) in cases {
        let p = write(&d, name, body);
        let r = dry_with_report(&junit, &p);
        refused(&r, &p, tail);
    }
    // Ten million digits: one token over the limit, not buffered.
    let mut json = b"{\"tests\": [], \"x\": ".to_vec();
    json.extend(std::iter::repeat_n(b'7', 10_000_000));
    json.extend_from_slice(b"}");
    let p = write(&d, "digits.json", &json);
    let r = dry_with_report(&junit, &p);
    refused(&r, &p, ":1:…");
}

#[test]
fn a_directory_and_a_fifo() {
    let d = tempfile::tempdir().unwrap();
    let r = dry(d.path());
    refused(
        &r,
        d.path(),
        ": is a directory: give the report file inside it",
    );
    let fifo = d.path().join("report.xml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Nobody writes to it: opening it for reading would block forever.
    let r = dry(&fifo);
    refused(
        &r,
        &fifo,
        ": is not a regular file (a FIFO, socket or device?): save the report to a file first",
    );
}

#[test]
fn a_report_that_changes_while_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("growing.xml");
    let mut doc =
        b"<testsuites><testsuite name=\"s\"><testcase classname=\"c\" name=\"n\"><system-out>"
            .to_vec();
    doc.extend(std::iter::repeat_n(b'x', 48 << 20));
    doc.extend_from_slice(b"</system-out></testcase></testsuite></testsuites>\n");
    std::fs::write(&p, &doc).unwrap();
    drop(doc);
    // pytest still writing: the file grows the whole time it is read.
    let stop = Arc::new(AtomicUsize::new(0));
    let (stop2, p2) = (stop.clone(), p.clone());
    let writer = thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(&p2).unwrap();
        while stop2.load(Ordering::SeqCst) == 0 {
            f.write_all(b" ").unwrap();
            thread::sleep(Duration::from_millis(2));
        }
    });
    let r = dry(&p);
    stop.store(1, Ordering::SeqCst);
    writer.join().unwrap();
    refused(
        &r,
        &p,
        ": changed while it was read (is pytest still writing it?); read it once it is complete",
    );
}

#[test]
fn huge_captured_output_costs_no_memory() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.xml");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    f.write_all(b"<testsuites><testsuite name=\"s\" time=\"1\"><testcase classname=\"c\" name=\"n\" time=\"1\"><system-out>").unwrap();
    let line = [b"INFO processed batch of 1000 records in 0.01s &amp; no errors\n".as_slice();
        1024]
        .concat();
    for _ in 0..(200 << 20) / line.len() {
        f.write_all(&line).unwrap();
    }
    f.write_all(b"</system-out></testcase></testsuite></testsuites>\n")
        .unwrap();
    drop(f);
    let r = dry(&p);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    bounded(&r);
    // 200 MB of output, a few MB of memory.
    assert!(r.max_rss_kb < 40 * 1024, "peak RSS {} KB", r.max_rss_kb);
}

/// A gateway that counts connections and answers nothing useful.
fn counting_gateway() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    thread::spawn(move || {
        for c in l.incoming() {
            n2.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    (url, n)
}

#[test]
fn nothing_is_pushed_when_an_input_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (url, seen) = counting_gateway();
    let full = std::fs::read(fixture("junit-xunit2.xml")).unwrap();
    let bad = [
        write(&d, "cut.xml", &full[..full.len() - 40]),
        write(
            &d,
            "deep.xml",
            &[b"<testsuites>".as_slice(), &b"<x>".repeat(1000)].concat(),
        ),
        write(
            &d,
            "bad-utf8.xml",
            &doc_with(b"", b"<testcase name=\"\xFF\"/>"),
        ),
    ];
    for p in &bad {
        // The size report is fine; the JUnit file is not: the run is refused whole.
        let r = run(&[
            "push",
            fixture("junit-xunit2.xml").to_str().unwrap(),
            p.to_str().unwrap(),
            "--size-report",
            fixture("size-report.json").to_str().unwrap(),
            "--gateway",
            &url,
            "--retries",
            "0",
        ]);
        refused(&r, p, ":…");
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the gateway was contacted");
}

/// Minimized fuzzer findings and other small hostile files, committed under
/// `tests/hostile/`: each must give exit 0 or 2 (never a crash, a hang or exit 1), in
/// bounds, as a JUnit report, a size report and a coverage report.
#[test]
fn committed_regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let junit = fixture("junit-xunit2.xml");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            continue;
        }
        n += 1;
        for args in [
            vec!["push", p.to_str().unwrap(), "--dry-run"],
            vec![
                "push",
                junit.to_str().unwrap(),
                "--size-report",
                p.to_str().unwrap(),
                "--dry-run",
            ],
            vec![
                "push",
                junit.to_str().unwrap(),
                "--coverage",
                p.to_str().unwrap(),
                "--dry-run",
            ],
        ] {
            let r = run(&args);
            assert!(
                matches!(r.code, Some(0) | Some(2)),
                "{}: {args:?} exit {:?}\n{}",
                p.display(),
                r.code,
                r.stderr
            );
            bounded(&r);
        }
    }
    assert!(n > 0, "no files in {}", dir.display());
}
