#!/usr/bin/env python3
"""codecov's Rust JUnit parser (PyPI `test-results-parser`) on the same bytes.

    python bench/codecov.py junit.xml

`parse_junit_xml` takes the whole file as bytes and returns every test run; this is
what codecov's test-results processing does with an upload. Used by scripts/bench.sh.
"""

import sys

from test_results_parser import parse_junit_xml

with open(sys.argv[1], "rb") as f:
    data = f.read()
info = parse_junit_xml(data)
runs = info.testruns
print(f"codecov: {len(runs)} test runs, {sum(r.duration for r in runs):.3f} s")
