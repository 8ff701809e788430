#!/usr/bin/env bash
# A push on a big Pushgateway (docs/performance.md, "A push on a big Pushgateway").
#
# For each number of groups N, a loopback prometheus-pushgateway holding N other groups (each
# the exposition of the bundled pytest 9.2 fixture, ~270 series, under its own project) and:
#
#   curl   GET /metrics with and without Accept-Encoding: gzip (what a push reads)
#   PUT    a bare curl PUT of the same exposition to a fresh group (the gateway's own cost
#          of a write with its consistency check on)
#   read   ptc-metrics delete of a group that is not there: one GET /metrics through the
#          same streaming reader a push uses
#   push   ptc-metrics push of the fixture to a fresh group (project appR, branch main):
#          wall time, peak RSS and CPU (/usr/bin/time); and once with the default --timeout
#          and --deadline. The first push of the run also reports the writes it made, as the
#          gateway counts them (pushgateway_http_requests_total; reads are not counted).
#
# Times are interleaved (curl, read, PUT, push, 3 times) and shown as best / median. The
# gateway's peak RSS (VmHWM) is read before it is stopped.
#
# Filling: the groups are PUT by a gateway started with --push.disable-consistency-check (with
# the check on, every PUT re-checks the whole gateway: filling 10,000 groups would be
# quadratic). That gateway is stopped with SIGTERM (it applies its queued writes and writes the
# persistence file), the file is copied, and the measurements run on a gateway started on the
# copy WITHOUT the flag: ptc-metrics' exact accumulation needs the check on (with it off the
# gateway answers 202 before applying a write). The group count is verified after the restart.
# Fills are incremental (N=2000 adds to the file of N=200).
#
#   bash scripts/bench-gateway.sh                           # 0 200 2000 10000 groups
#   BENCH_GW_GROUPS="0 200" BENCH_GW_RUNS=1 bash scripts/bench-gateway.sh   # quick
#
# Environment:
#   BENCH_GW_GROUPS  group counts, ascending (default "0 200 2000 10000")
#   BENCH_GW_RUNS    repetitions of each measurement (default 3): best and median are shown
#
# Generated data (persistence files, results.md) goes to target/bench-data/gateway.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNTS=${BENCH_GW_GROUPS-"0 200 2000 10000"}
RUNS=${BENCH_GW_RUNS:-3}
DATA=target/bench-data/gateway
OUT=$DATA/results.md
GW=$(command -v prometheus-pushgateway || true)
mkdir -p "$DATA"

if [ -z "$GW" ]; then
    echo "+ apt-get install -y prometheus-pushgateway"
    apt-get update -qq && apt-get install -y -qq prometheus-pushgateway
    GW=$(command -v prometheus-pushgateway)
fi
if [ ! -x /usr/bin/time ]; then
    echo "+ apt-get install -y time (for peak RSS)"
    apt-get update -qq && apt-get install -y -qq time
fi

echo "+ cargo build --release"
cargo build --release --quiet
BIN=target/release/ptc-metrics
FIX=fixtures/pytest-9.2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-gateway.XXXXXX")
GW_PID=""

stop_gateway() { # SIGTERM: the gateway applies queued writes and writes its persistence file
    if [ -n "$GW_PID" ]; then
        kill -TERM "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
        GW_PID=""
    fi
}
cleanup() {
    stop_gateway
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_gateway PERSISTENCE_FILE [EXTRA FLAGS...]: sets GW_PID and URL, waits until ready.
start_gateway() {
    local file=$1; shift
    local port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    # A long persistence interval: no background persist of a big store during a measurement
    # (the file is still written on SIGTERM).
    "$GW" --web.listen-address="127.0.0.1:$port" --persistence.file="$file" \
        --persistence.interval=1h --log.level=warn "$@" >>"$TMP/gateway.log" 2>&1 &
    GW_PID=$!
    local i
    for i in $(seq 1200); do
        if curl -sf -o /dev/null "$URL/-/ready"; then return 0; fi
        if ! kill -0 "$GW_PID" 2>/dev/null; then
            echo "the gateway exited; its log:" >&2
            cat "$TMP/gateway.log" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "the gateway did not become ready within 5 minutes" >&2
    exit 1
}

# The groups on the gateway (one push_time_seconds per group).
count_groups() {
    curl -sf "$URL/metrics" | grep -c '^push_time_seconds{' || true
}

# The exposition one group holds: the fixture as ptc-metrics renders it, project "P".
TEMPLATE=$DATA/group.prom
"$BIN" push "$FIX/junit-xunit2.xml" --size-report "$FIX/size-report.json" --dry-run \
    --project P --branch main --no-ci-detect >"$TEMPLATE" 2>/dev/null

# fill FROM TO: PUTs groups otherFROM…other(TO-1), 8 keep-alive connections in parallel.
fill() {
    python3 - "$URL" "$TEMPLATE" "$1" "$2" <<'PY'
import http.client, sys, threading, urllib.parse
url, template, lo, hi = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3]), int(sys.argv[4])
assert template.count(b'project="P"') > 0
u = urllib.parse.urlsplit(url)
todo = iter(range(lo, hi))
lock = threading.Lock()
errors = []
def work():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    while True:
        with lock:
            i = next(todo, None)
        if i is None or errors:
            return
        body = template.replace(b'project="P"', b'project="other%d"' % i)
        c.request("PUT", "/metrics/job/pytest/project/other%d/branch/main" % i, body,
                  {"Content-Type": "text/plain; version=0.0.4"})
        r = c.getresponse()
        r.read()
        if r.status not in (200, 202):
            errors.append("PUT other%d: %d" % (i, r.status))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(errors[0])
PY
}

# median and best of numbers on stdin -> "best median"
stats() {
    sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.3f %.3f\n", v[1], m}'
}

# wall CMD...: seconds the command took (its output discarded)
wall() {
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    awk "BEGIN{printf \"%.3f\", $EPOCHREALTIME - $t0}"
}

# The writes the gateway has served, by handler and method (pushgateway_http_requests_total
# counts every request but the scrapes of /metrics), e.g. "push put 2".
writes() {
    curl -sf "$URL/metrics" | sed -n 's/^pushgateway_http_requests_total{code="[0-9]*",handler="\([a-z]*\)",method="\([a-z]*\)"} \([0-9.e+]*\)$/\1 \2 \3/p' | sort
}

{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $("$GW" --version 2>&1 | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "Each group: $(grep -vc '^#' "$TEMPLATE") series ($(stat -c %s "$TEMPLATE") bytes of exposition). Times: best / median of $RUNS."
    echo
    echo "| groups | /metrics plain / gzip | curl plain | curl gzip | one read by ptc-metrics | gateway PUT (curl) | push wall | push ÷ curl gzip | push ÷ 2 curls gzip | push max RSS | push CPU | push, default --timeout | gateway peak RSS |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
} | tee "$OUT"

FILL_DB=$DATA/fill.db
rm -f "$FILL_DB"
filled=0
requests=""
for n in $COUNTS; do
    if [ "$n" -gt "$filled" ]; then
        echo "+ fill $filled -> $n groups (gateway with --push.disable-consistency-check)" >&2
        t0=$EPOCHREALTIME
        start_gateway "$FILL_DB" --push.disable-consistency-check
        fill "$filled" "$n"
        stop_gateway
        filled=$n
        echo "  filled in $(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}") s; persistence file $(du -h "$FILL_DB" | cut -f1)" >&2
    fi
    MEASURE_DB=$TMP/measure.db
    rm -f "$MEASURE_DB"
    [ "$n" -gt 0 ] && cp "$FILL_DB" "$MEASURE_DB"
    t0=$EPOCHREALTIME
    start_gateway "$MEASURE_DB"
    got=$(count_groups)
    echo "+ $n groups: gateway (consistency check on) restarted from the file in $(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}") s, holds $got groups" >&2
    if [ "$got" != "$n" ]; then
        echo "expected $n groups after the restart, found $got" >&2
        exit 1
    fi

    plain_bytes=$(curl -s -o /dev/null -w '%{size_download}' "$URL/metrics")
    gzip_bytes=$(curl -s -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' "$URL/metrics")
    : >"$TMP/plain"; : >"$TMP/gzip"; : >"$TMP/put"; : >"$TMP/push"; : >"$TMP/rss"; : >"$TMP/cpu"; : >"$TMP/read"
    # Interleaved, so that a slow moment of the machine does not fall on one column only.
    for r in $(seq "$RUNS"); do
        wall curl -s -o /dev/null "$URL/metrics" >>"$TMP/plain"; echo >>"$TMP/plain"
        wall curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$URL/metrics" >>"$TMP/gzip"; echo >>"$TMP/gzip"
        sed 's/project="P"/project="put'"$r"'"/' "$TEMPLATE" >"$TMP/put.prom"
        wall curl -sf -o /dev/null -X PUT --data-binary @"$TMP/put.prom" \
            -H 'Content-Type: text/plain; version=0.0.4' \
            "$URL/metrics/job/pytest/project/put$r/branch/main" >>"$TMP/put"; echo >>"$TMP/put"
        # One read through ptc-metrics' streaming reader: delete of a group that is not there.
        wall "$BIN" delete --gateway "$URL" --project "none$r" --branch main --no-ci-detect \
            --timeout 10m --deadline 30m >>"$TMP/read"; echo >>"$TMP/read"
        [ -z "$requests" ] && writes >"$TMP/writes.before"
        t0=$EPOCHREALTIME
        /usr/bin/time -o "$TMP/time" -f '%M %U %S' "$BIN" push "$FIX/junit-xunit2.xml" \
            --size-report "$FIX/size-report.json" --gateway "$URL" --project "app$r" \
            --branch main --no-ci-detect --timeout 10m --deadline 30m \
            >/dev/null 2>"$TMP/push.err" || { cat "$TMP/push.err" >&2; exit 1; }
        awk "BEGIN{printf \"%.3f\n\", $EPOCHREALTIME - $t0}" >>"$TMP/push"
        read -r m u k <"$TMP/time"
        echo "$m" >>"$TMP/rss"
        awk "BEGIN{print $u + $k}" >>"$TMP/cpu"
        if [ -z "$requests" ]; then
            # One uncontended push: the writes it made, as the gateway counted them.
            writes >"$TMP/writes.after"
            requests=$(awk 'NR == FNR { before[$1 " " $2] = $3; next }
                { d = $3 - before[$1 " " $2]; if (d > 0) printf "%s%d %s %s", (n++ ? ", " : ""), d, toupper($2), $1 }' \
                "$TMP/writes.before" "$TMP/writes.after")
        fi
    done
    # Once with the default --timeout (10s) and --deadline (2m).
    t0=$EPOCHREALTIME
    drc=0
    "$BIN" push "$FIX/junit-xunit2.xml" --size-report "$FIX/size-report.json" --gateway "$URL" \
        --project default --branch main --no-ci-detect >/dev/null 2>"$TMP/default.err" || drc=$?
    dwall=$(awk "BEGIN{printf \"%.2f\", $EPOCHREALTIME - $t0}")
    if [ "$drc" = 0 ]; then defaults="ok, $dwall s"; else
        defaults="exit $drc after $dwall s"
        echo "  push with the default --timeout at $n groups: $(tail -1 "$TMP/default.err")" >&2
    fi
    gw_rss=$(awk '/^VmHWM/ {print $2}' "/proc/$GW_PID/status")
    stop_gateway

    read -r rb rm <<<"$(stats <"$TMP/read")"
    read -r pb pm <<<"$(stats <"$TMP/plain")"
    read -r gb gm <<<"$(stats <"$TMP/gzip")"
    read -r ub um <<<"$(stats <"$TMP/put")"
    read -r sb sm <<<"$(stats <"$TMP/push")"
    read -r _ cm <<<"$(stats <"$TMP/cpu")"
    rss=$(sort -n "$TMP/rss" | tail -1)
    awk -v n="$n" -v pbytes="$plain_bytes" -v gbytes="$gzip_bytes" -v pb="$pb" -v pm="$pm" \
        -v gb="$gb" -v gm="$gm" -v ub="$ub" -v um="$um" -v sb="$sb" -v sm="$sm" -v rss="$rss" \
        -v cm="$cm" -v defaults="$defaults" -v rb="$rb" -v rm="$rm" -v gw_rss="$gw_rss" '
        function commas(x,  s) { s = sprintf("%d", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
        function size(b) { return b >= 1048576 ? sprintf("%.1f MB", b / 1048576) : sprintf("%.0f KB", b / 1024) }
        BEGIN {
            printf "| %s | %s / %s | %.3f / %.3f s | %.3f / %.3f s | %.3f / %.3f s | %.3f / %.3f s | %.3f / %.3f s | %.2fx | %.2fx | %.1f MB | %.2f s | %s | %.0f MB |\n",
                commas(n), size(pbytes), size(gbytes), pb, pm, gb, gm, rb, rm, ub, um, sb, sm,
                sm / gm, sm / (2 * gm), rss / 1024, cm, defaults, gw_rss / 1024
        }' | tee -a "$OUT"
done

{
    echo
    echo "Ratios: median push ÷ median curl gzip (ptc-metrics reads /metrics gzip-compressed). Push CPU: median user + sys of the ptc-metrics process. One read by ptc-metrics: \`ptc-metrics delete\` of a group that is not there (one GET /metrics through the streaming reader)."
    echo "Writes of one uncontended push, counted by the gateway (pushgateway_http_requests_total, which leaves out reads of /metrics): $requests"
} | tee -a "$OUT"
echo
echo "written to $OUT"
