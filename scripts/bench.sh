#!/usr/bin/env bash
# Whole-process benchmark (docs/performance.md). Builds release, generates pytest-shaped
# inputs into target/bench-data (never committed), and measures on this machine, in one run:
#
#   ptc      ptc-metrics push --dry-run              (JUnit alone, and JUnit + size report)
#   floor    a bare quick-xml loop counting <testcase> and summing time (bench/floor.rs),
#            plus a bare serde_json pass over the size report for the "both" rows
#   python   junitparser + prometheus_client doing the same derivation (bench/baseline.py)
#   codecov  codecov's Rust parser, PyPI test-results-parser parse_junit_xml (bench/codecov.py)
#
# Each figure is the fastest of BENCH_RUNS runs (wall time) and the largest peak RSS, from
# /usr/bin/time. Prints a Markdown table (also written to target/bench-data/results.md).
#
#   bash scripts/bench.sh                       # 10k, 100k, 1M test cases and a 1 GiB system-out
#   BENCH_SIZES="10000" BENCH_HUGE= bash scripts/bench.sh   # quick
#
# Environment:
#   BENCH_SIZES    test-case counts (default "10000 100000 1000000")
#   BENCH_HUGE     size of the one huge <system-out> case (default 1G; empty to skip)
#   BENCH_RUNS     runs per measurement (default 3; the Python baseline runs once at >=1M)
#   BENCH_PYTHON   0 to skip the Python baseline and codecov
#   BENCH_BACKFILL number of archived runs for the backfill runs/s figure (default 10000; 0 skips)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZES=${BENCH_SIZES-"10000 100000 1000000"}
HUGE=${BENCH_HUGE-1G}
RUNS=${BENCH_RUNS:-3}
PY=${BENCH_PYTHON:-1}
BACKFILL=${BENCH_BACKFILL:-10000}
DATA=target/bench-data
OUT=$DATA/results.md
mkdir -p "$DATA"

if [ ! -x /usr/bin/time ]; then
    echo "+ apt-get install -y time (for peak RSS)"
    apt-get update -qq && apt-get install -y -qq time
fi

echo "+ cargo build --release (ptc-metrics, gen_reports, floor)"
cargo build --release --quiet --bin ptc-metrics --example gen_reports --example floor
BIN=target/release/ptc-metrics
GEN=target/release/examples/gen_reports
FLOOR=target/release/examples/floor

VENV=target/bench-venv
if [ "$PY" = 1 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        echo "+ python3 -m venv $VENV && pip install -r bench/requirements.txt"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -r bench/requirements.txt
    fi
fi

# measure RUNS CMD... -> "wall_seconds peak_rss_kb exit_code" (fastest wall, largest RSS)
measure() {
    local runs=$1; shift
    local best="" rss=0 rc=0 e m tmp
    tmp=$(mktemp)
    local t0 t1
    for _ in $(seq "$runs"); do
        t0=$EPOCHREALTIME
        /usr/bin/time -o "$tmp" -f "%M %x" "$@" >/dev/null 2>&1 || true
        t1=$EPOCHREALTIME
        read -r m rc <"$tmp"
        e=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
        if [ -z "$best" ] || awk "BEGIN{exit !($e < $best)}"; then best=$e; fi
        [ "$m" -gt "$rss" ] && rss=$m
    done
    rm -f "$tmp"
    echo "$best $rss $rc"
}

row() { # dataset tool mb tests wall rss floor_wall rc
    local mbs tps ratio
    mbs=$(awk "BEGIN{printf \"%.0f\", $3 / ($5 > 0 ? $5 : 0.001)}")
    tps=$(awk "BEGIN{printf \"%.0f\", $4 / ($5 > 0 ? $5 : 0.001)}")
    ratio=$(awk "BEGIN{printf \"%.2f\", $5 / ($7 > 0 ? $7 : 0.001)}")
    local note=""
    [ "$8" != 0 ] && note=" (exit $8)"
    printf '| %s | %s | %.3f | %s | %s | %.1f | %sx%s |\n' "$1" "$2" "$5" "$mbs" "$tps" "$(awk "BEGIN{print $6/1024}")" "$ratio" "$note" | tee -a "$OUT"
}

{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| input | tool | wall s | MB/s | tests/s | peak RSS MB | vs floor |"
    echo "|---|---|---:|---:|---:|---:|---:|"
} | tee "$OUT"

bench_set() { # name dir tests
    local name=$1 dir=$2 n=$3
    local x=$dir/junit.xml j=$dir/size.json
    local xmb jmb r f fb
    xmb=$(awk "BEGIN{print $(stat -c %s "$x")/1048576}")
    jmb=$(awk "BEGIN{print ($(stat -c %s "$x")+$(stat -c %s "$j"))/1048576}")
    local slow=$RUNS
    [ "$n" -ge 1000000 ] && slow=1
    read -r f frss frc <<<"$(measure "$RUNS" "$FLOOR" junit "$x")"
    row "$name JUnit" "floor (quick-xml loop)" "$xmb" "$n" "$f" "$frss" "$f" "$frc"
    local pj pjrss pb pbrss c="" crss=0 py="" pyrss=0
    read -r pj pjrss rc <<<"$(measure "$RUNS" "$BIN" push --dry-run "$x")"
    row "$name JUnit" "ptc-metrics --dry-run" "$xmb" "$n" "$pj" "$pjrss" "$f" "$rc"
    if [ "$PY" = 1 ]; then
        # Fastest of RUNS like ptc-metrics: the target is a ratio against codecov's best.
        read -r c crss rc <<<"$(measure "$RUNS" "$VENV/bin/python" bench/codecov.py "$x")"
        row "$name JUnit" "codecov test-results-parser" "$xmb" "$n" "$c" "$crss" "$f" "$rc"
    fi
    read -r fb fbrss fbrc <<<"$(measure "$RUNS" "$FLOOR" both "$x" "$j")"
    row "$name JUnit+JSON" "floor (quick-xml + serde_json)" "$jmb" "$n" "$fb" "$fbrss" "$fb" "$fbrc"
    read -r pb pbrss rc <<<"$(measure "$RUNS" "$BIN" push --dry-run "$x" --size-report "$j")"
    row "$name JUnit+JSON" "ptc-metrics --dry-run" "$jmb" "$n" "$pb" "$pbrss" "$fb" "$rc"
    if [ "$PY" = 1 ]; then
        read -r py pyrss rc <<<"$(measure "$slow" "$VENV/bin/python" bench/baseline.py "$x" "$j")"
        row "$name JUnit+JSON" "python junitparser+prometheus_client" "$jmb" "$n" "$py" "$pyrss" "$fb" "$rc"
    fi
    # The issue's targets as ratios of this run: ptc-metrics against each.
    local rss=$pjrss
    [ "$pbrss" -gt "$rss" ] && rss=$pbrss
    SUMMARY+=("$(awk -v name="$name" -v f="$f" -v pj="$pj" -v fb="$fb" -v pb="$pb" \
        -v py="$py" -v c="$c" -v rss="$rss" -v crss="$crss" 'BEGIN {
        printf "| %s | %.2fx | %.2fx | %s | %s | %.1f MB%s |", name, pj / f, pb / fb,
            (py == "" ? "-" : sprintf("%.1fx", py / pb)),
            (c == "" ? "-" : sprintf("%.1fx", c / pj)),
            rss / 1024, (crss > 0 ? sprintf(" (%.1f%% of codecov)", 100 * rss / crss) : "")
    }')")
}
SUMMARY=()

for n in $SIZES; do
    d=$DATA/$n
    [ -f "$d/junit.xml" ] || "$GEN" --tests "$n" --out "$d"
    bench_set "$n" "$d" "$n"
done

if [ -n "$HUGE" ]; then
    d=$DATA/huge-$HUGE
    [ -f "$d/junit.xml" ] || "$GEN" --tests 1000 --huge-output "$HUGE" --out "$d"
    bench_set "1000 + $HUGE system-out" "$d" 1000
fi

if [ "$BACKFILL" -gt 0 ]; then
    if "$BIN" backfill --help >/dev/null 2>&1; then
        d=$DATA/archive-$BACKFILL
        [ -d "$d/run-00001" ] || "$GEN" --tests 100 --runs "$BACKFILL" --out "$d"
        {
            echo
            echo "Backfill of $BACKFILL archived runs (100 tests each, JUnit + size report), --dry-run:"
            echo
            echo "| jobs | wall s | runs/s | peak RSS MB |"
            echo "|---:|---:|---:|---:|"
        } | tee -a "$OUT"
        for jobs in 1 "$(nproc)"; do
            read -r r rss rc <<<"$(measure 1 "$BIN" backfill "$d" --dry-run --jobs "$jobs" --progress plain)"
            printf '| %s | %.3f | %.0f | %.1f |\n' "$jobs" "$r" "$(awk "BEGIN{print $BACKFILL/$r}")" "$(awk "BEGIN{print $rss/1024}")" | tee -a "$OUT"
        done
    else
        echo "(ptc-metrics backfill is not built; skipping the backfill figure)" | tee -a "$OUT"
    fi
fi

{
    echo
    echo "Targets (docs/performance.md; at 1M: ≤ 1.5x, ≤ 1.5x, ≥ 30x, ≥ 10x, < 100 MB):"
    echo
    echo "| input | ptc ÷ floor, JUnit | ptc ÷ floor, JUnit+JSON | python ÷ ptc (JUnit+JSON) | codecov ÷ ptc (JUnit) | ptc peak RSS |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${SUMMARY[@]}"
} | tee -a "$OUT"

echo
echo "written to $OUT"
