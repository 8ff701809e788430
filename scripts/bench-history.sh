#!/usr/bin/env bash
# `ptc-metrics history` on a generated archive (docs/performance.md, "History"). Builds
# release, generates HISTORY_RUNS runs of HISTORY_TESTS tests into target/bench-data (never
# committed; 10,000 × 1,000 is 2.2 GB) with scripts/gen-history-archive.py, and measures the
# whole report (JSON to /dev/null) with /usr/bin/time: wall, CPU and peak RSS, for
# --jobs 1 and 2 and for the newest 1,000 runs of the same archive.
#
#   bash scripts/bench-history.sh
#   HISTORY_RUNS=1000 bash scripts/bench-history.sh      # quick
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${HISTORY_RUNS:-10000}
TESTS=${HISTORY_TESTS:-1000}
DIR=target/bench-data/history-$RUNS
if [ ! -x /usr/bin/time ]; then
    echo "+ apt-get install -y time (for peak RSS)"
    apt-get update -qq && apt-get install -y -qq time
fi
echo "+ cargo build --release"
cargo build --release --quiet
if [ ! -f "$DIR/run-$(printf %06d "$RUNS")/run.json" ]; then
    echo "+ generating $RUNS runs of $TESTS tests into $DIR"
    rm -rf "$DIR"
    python3 scripts/gen-history-archive.py --runs "$RUNS" --tests "$TESTS" --out "$DIR"
fi
echo "archive: $(du -sh "$DIR" | cut -f1), $RUNS runs × $TESTS tests; $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
measure() {
    /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB peak RSS" \
        ./target/release/ptc-metrics history "$DIR" --format json "$@" > /dev/null
}
for jobs in 1 2; do
    echo -n "history, --jobs $jobs: "
    measure --jobs "$jobs" 2>&1 | tail -1
done
echo -n "history --last 1000, --jobs 2: "
measure --jobs 2 --last 1000 2>&1 | tail -1
