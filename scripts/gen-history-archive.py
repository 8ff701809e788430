#!/usr/bin/env python3
"""Generates an archive for `ptc-metrics history` (docs/performance.md, docs/history.md).

    python3 scripts/gen-history-archive.py --runs 10000 --tests 1000 --out target/bench-data/history

RUNS run directories `OUT/run-000001/ …`, one group (project bench, branch main), one run an
hour, each as `ptc-metrics push --archive` writes it: a pytest 9.2-shaped `junit.xml`, the
plugin's `size-report.json` and a `run.json` (timestamp, commit; every 7th run re-runs the
commit before it). The same TESTS tests every run (75 % small, 20 % medium, 5 % large), with
durations that vary by up to ±10 % around their own value, and a few patterns so that every
section of the report has work: one test fails in every 97th run (a flake, on a re-run commit
now and then), one test gets 30 % slower for the last 10 % of the runs, one small test
crosses its 1 s limit in every other run of the last 10, and 1 % of the tests are renamed
halfway. Deterministic: the same arguments give the same bytes.
"""

import argparse
import hashlib
import json
import os
import random

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def iso(t):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--tests", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rnd = random.Random(1)
    tests = []
    for k in range(a.tests):
        r = rnd.random()
        size = "small" if r < 0.75 else "medium" if r < 0.95 else "large"
        base = {"small": 0.05, "medium": 2.0, "large": 20.0}[size] * (0.2 + rnd.random())
        module = f"tests/area{k % 37:02d}/test_mod{k % 11:02d}.py"
        tests.append([module, f"test_case_{k:05d}", size, base])
    flaky, slow, limit = 3, 5, 0
    tests[limit][2], tests[limit][3] = "small", 0.9
    renamed = set(range(10, a.tests, 100))
    os.makedirs(a.out, exist_ok=True)
    for i in range(1, a.runs + 1):
        t = T0 + i * 3600
        commit = hashlib.sha1(b"%d" % (i - 1 if i % 7 == 0 else i)).hexdigest()
        d = os.path.join(a.out, f"run-{i:06d}")
        os.makedirs(d, exist_ok=True)
        rr = random.Random(i)
        cases, entries = [], []
        suite = 0.0
        for k, (module, name, size, base) in enumerate(tests):
            if k in renamed and i > a.runs // 2:
                name += "_v2"
            dur = base * (0.9 + 0.2 * rr.random())
            if k == slow and i > a.runs * 9 // 10:
                dur *= 1.3
            violations = []
            if k == limit:
                dur = 1.1 if i > a.runs - 10 and i % 2 == 0 else 0.9
                if dur > 1.0:
                    violations = ["timing"]
            failed = k == flaky and i % 97 == 0
            suite += dur
            classname = module[:-3].replace("/", ".")
            tag = f'<testcase classname="{classname}" name="{name}" time="{dur:.3f}"'
            if failed:
                cases.append(tag + '><failure message="AssertionError: flaky">assert False</failure></testcase>')
            else:
                cases.append(tag + " />")
            entries.append(
                '{"name": "%s::%s", "size": "%s", "duration": %.6f, "status": "%s", "violations": %s}'
                % (module, name, size, dur, "failed" if failed else "passed", json.dumps(violations))
            )
        with open(os.path.join(d, "junit.xml"), "w") as f:
            f.write(
                '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
                f'errors="0" failures="0" skipped="0" tests="{len(tests)}" time="{suite:.3f}" '
                f'timestamp="{iso(t)}" hostname="ci">'
            )
            f.write("".join(cases))
            f.write("</testsuite></testsuites>")
        with open(os.path.join(d, "size-report.json"), "w") as f:
            f.write('{"version": "1.2.2", "timestamp": "%s", "summary": {}, "tests": [' % iso(t + 60))
            f.write(",\n".join(entries))
            f.write("]}")
        meta = {
            "version": 1,
            "job": "pytest",
            "project": "bench",
            "branch": "main",
            "timestamp": iso(t),
            "commit": commit,
            "run_id": str(i),
            "files": {"junit": ["junit.xml"], "size_report": ["size-report.json"]},
        }
        with open(os.path.join(d, "run.json"), "w") as f:
            json.dump(meta, f)


if __name__ == "__main__":
    main()
