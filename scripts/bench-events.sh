#!/usr/bin/env bash
# Events throughput (docs/performance.md, "Events"): one generated run of N tests
# (default 1,000,000, with its size report), measured as
#
#   metrics only        push --textfile                       (the baseline)
#   notable events      push --textfile --events FILE         (failures, violations, flaky, near limit)
#   every test          push --textfile --events FILE --events-all
#   every test, no disk push --textfile --events /dev/null --events-all (production alone)
#
# Each figure is the fastest of BENCH_RUNS runs (wall) and the largest peak RSS, from
# /usr/bin/time; the events rate is the NDJSON bytes written over the time the events added
# to the metrics-only run, and over the whole run. Inputs and outputs go to
# target/bench-data (never committed).
#
#   bash scripts/bench-events.sh
#   BENCH_TESTS=100000 BENCH_RUNS=1 bash scripts/bench-events.sh     # quick
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${BENCH_TESTS:-1000000}
RUNS=${BENCH_RUNS:-3}
DATA=target/bench-data
DIR=$DATA/events-$N
mkdir -p "$DIR"

if [ ! -x /usr/bin/time ]; then
    echo "+ apt-get install -y time (for peak RSS)"
    apt-get update -qq && apt-get install -y -qq time
fi
echo "+ cargo build --release (ptc-metrics, gen_reports)"
cargo build --release --quiet --bin ptc-metrics --example gen_reports
BIN=target/release/ptc-metrics
[ -f "$DIR/junit.xml" ] || target/release/examples/gen_reports --tests "$N" --out "$DIR"
SIZE=$DIR/size.json
[ -f "$SIZE" ] || { echo "no $SIZE from gen_reports" >&2; exit 1; }

# run LABEL ARGS... -> "wall_seconds peak_rss_kb bytes" (fastest wall of RUNS, largest RSS)
run() {
    local best="" rss=0 bytes=0 out="$DIR/events.ndjson" tmp
    tmp=$(mktemp)
    for _ in $(seq "$RUNS"); do
        rm -f "$out" "$DIR/m.prom"
        /usr/bin/time -f "%e %M" -o "$tmp" "$BIN" push "$DIR/junit.xml" --size-report "$SIZE" \
            --no-ci-detect --project bench --no-accumulate --textfile "$DIR/m.prom" "$@" \
            >/dev/null 2>"$DIR/stderr.txt" || { cat "$DIR/stderr.txt" >&2; exit 1; }
        read -r e m <"$tmp"
        if [ -z "$best" ] || awk "BEGIN{exit !($e < $best)}"; then best=$e; fi
        [ "$m" -gt "$rss" ] && rss=$m
        bytes=$( [ -f "$out" ] && stat -c %s "$out" || echo 0 )
    done
    rm -f "$tmp"
    echo "$best $rss $bytes"
}

read -r t0 r0 _ < <(run)
read -r t1 r1 b1 < <(run --events "$DIR/events.ndjson")
read -r t2 r2 b2 < <(run --events "$DIR/events.ndjson" --events-all)
lines2=$(wc -l <"$DIR/events.ndjson")
read -r t3 r3 _ < <(run --events /dev/null --events-all)

rate() { awk -v b="$1" -v t="$2" 'BEGIN{ if (t <= 0) print "-"; else printf "%.0f", b / 1e6 / t }'; }
echo
echo "| $N tests, push --textfile | wall s | peak RSS MB | events | NDJSON MB | MB/s over the added time | MB/s over the whole run |"
echo "|---|---|---|---|---|---|---|"
printf "| metrics only | %s | %.0f | | | | |\n" "$t0" "$(awk -v r="$r0" 'BEGIN{print r/1024}')"
printf "| + \`--events FILE\` | %s | %.0f | notable | %.1f | %s | %s |\n" "$t1" "$(awk -v r="$r1" 'BEGIN{print r/1024}')" "$(awk -v b="$b1" 'BEGIN{print b/1e6}')" "$(rate "$b1" "$(awk -v a="$t1" -v b="$t0" 'BEGIN{print a-b}')")" "$(rate "$b1" "$t1")"
printf "| + \`--events FILE --events-all\` | %s | %.0f | %s | %.1f | %s | %s |\n" "$t2" "$(awk -v r="$r2" 'BEGIN{print r/1024}')" "$lines2" "$(awk -v b="$b2" 'BEGIN{print b/1e6}')" "$(rate "$b2" "$(awk -v a="$t2" -v b="$t0" 'BEGIN{print a-b}')")" "$(rate "$b2" "$t2")"
printf "| + \`--events /dev/null --events-all\` | %s | %.0f | %s | (%.1f) | %s | %s |\n" "$t3" "$(awk -v r="$r3" 'BEGIN{print r/1024}')" "$lines2" "$(awk -v b="$b2" 'BEGIN{print b/1e6}')" "$(rate "$b2" "$(awk -v a="$t3" -v b="$t0" 'BEGIN{print a-b}')")" "$(rate "$b2" "$t3")"
