#!/usr/bin/env bash
# Runs each fuzz target for FUZZ_SECONDS (default 240) from a corpus seeded with the
# committed fixtures. Needs cargo-fuzz; on a stable toolchain RUSTC_BOOTSTRAP=1 lets it use
# the nightly flags it needs. New crashes land in fuzz/artifacts/<target>/; minimize them
# (`cargo fuzz tmin <target> <file>`) and commit the result under tests/hostile/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${FUZZ_SECONDS:-240}
mkdir -p corpus/junit corpus/size_report corpus/coverage
cp ../fixtures/pytest-9.*/junit-*.xml corpus/junit/ 2>/dev/null || true
cp ../fixtures/pytest-9.2/size-report*.json ../fixtures/pytest-9.2/terminal-size-report-*.txt corpus/size_report/
cp ../fixtures/pytest-9.*/coverage.xml corpus/coverage/ 2>/dev/null || true
cp ../tests/hostile/*.xml corpus/junit/
cp ../tests/hostile/*.json corpus/size_report/
for t in ${FUZZ_TARGETS:-junit size_report coverage}; do
    echo "== $t (${secs}s)"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -max_len=262144
done
