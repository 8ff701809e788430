#!/usr/bin/env python3
"""The script a user would write instead of ptc-metrics: junitparser + prometheus_client.

    python bench/baseline.py junit.xml [size.json]   # prints the exposition on stdout

It does the same derivation as `ptc-metrics push --dry-run` (METRICS.md §1-3), in plain
Python: collapse reruns by (classname, name), join the size report by node id (pytest 9.2
mangling), count tests per size and outcome, the duration histogram, flaky tests, timing
violations, and render text 0.0.4 with prometheus_client. Used by scripts/bench.sh only.
"""

import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LABELS = (" [SMALL]", " [MEDIUM]", " [LARGE]", " [XLARGE]")
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


def strip_label(name):
    for suffix in LABELS:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix.strip(" []").lower()
    return name, None


def cases(xml):
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    while suites:
        s = suites.pop(0)
        for child in s:
            if isinstance(child, TestSuite):
                suites.append(child)
            else:
                yield child


def mangle_9_2(node_id):
    path, sep, tail = node_id.partition("::")
    module = path.replace("/", ".")
    if module.endswith(".py"):
        module = module[:-3]
    if not sep:
        return "", module
    name_part, bracket, params = tail.partition("[")
    names = [module] + name_part.split("::")
    if bracket:
        names[-1] += "[" + params
    return ".".join(names[:-1]), names[-1]


def main():
    tests = {}
    for case in cases(JUnitXml.fromfile(sys.argv[1])):
        name, label = strip_label(case.name or "")
        key = (case.classname or "", name)
        results = case.result
        failure = any(isinstance(r, Failure) for r in results)
        error = any(isinstance(r, Error) for r in results)
        xfail = any(isinstance(r, Skipped) and r.type == "pytest.xfail" for r in results)
        skipped = any(isinstance(r, Skipped) for r in results) and not xfail
        teardown = (
            len(results) == 1
            and error
            and (results[0].message or "").startswith("failed on teardown")
        )
        text = "".join((r.text or "") for r in results if isinstance(r, Failure))
        timing = "[TC006] Timing Violation" in text.splitlines()
        outcome = (
            "failed" if failure else "error" if error else "xfailed" if xfail
            else "skipped" if skipped else "passed"
        )
        rec = tests.get(key)
        if rec is None:
            tests[key] = rec = {"label": label, "reruns": 0, "report": None}
        elif teardown:
            # A teardown error folds into the attempt before (a failure stays a failure).
            if rec["outcome"] != "failed":
                rec["outcome"] = "error"
            rec["time"] += case.time or 0.0
            continue
        else:
            rec["reruns"] += 1
        rec.update(outcome=outcome, time=case.time or 0.0, timing=timing)

    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            report = json.load(f)
        for e in report["tests"]:
            node_id, _ = strip_label(e["name"])
            rec = tests.get(mangle_9_2(node_id))
            if rec is not None:
                rec["report"] = e

    reg = CollectorRegistry()
    by = Gauge("pytest_tests_last_run", "Tests by size and outcome.", ["size", "outcome"], registry=reg)
    total = Counter("pytest_tests", "Tests, cumulative.", ["size", "outcome"], registry=reg)
    hist = Histogram(
        "pytest_test_duration_seconds", "Durations.", ["size", "outcome"],
        buckets=BUCKETS, registry=reg,
    )
    flaky = Gauge("pytest_flaky_tests", "Flaky tests.", ["size"], registry=reg)
    timing = Gauge("pytest_timing_violations", "Timing violations.", ["size"], registry=reg)
    for rec in tests.values():
        rep = rec["report"]
        size = (rep or {}).get("size") or rec["label"] or ("unsized" if len(sys.argv) > 2 else "unknown")
        duration = (rep or {}).get("duration")
        duration = rec["time"] if duration is None else duration
        by.labels(size, rec["outcome"]).inc()
        total.labels(size, rec["outcome"]).inc()
        hist.labels(size, rec["outcome"]).observe(duration)
        if rec["reruns"] and rec["outcome"] == "passed":
            flaky.labels(size).inc()
        if rec["timing"] or "timing" in ((rep or {}).get("violations") or []):
            timing.labels(size).inc()
    sys.stdout.write(generate_latest(reg).decode())
    sys.stderr.write(f"baseline: {len(tests)} tests\n")


if __name__ == "__main__":
    main()
