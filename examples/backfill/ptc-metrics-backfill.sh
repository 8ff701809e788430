#!/usr/bin/env bash
# Catch-up ("backfill") of archived test runs into the Pushgateway.
#
# CI jobs push with --soft-fail, so a run whose push failed (gateway down, network) is lost
# unless its reports are archived. This script pushes every archived run that has not been
# pushed yet, oldest first, and marks it done. Run it from cron or the systemd timer next to it.
#
# Archive layout (one directory per run, written by the CI job or an artifact sync):
#   $PTC_ARCHIVE_DIR/<anything>/<run>/junit*.xml        one or more JUnit files (required)
#   $PTC_ARCHIVE_DIR/<anything>/<run>/size-report.json  the plugin's JSON report (optional)
#   $PTC_ARCHIVE_DIR/<anything>/<run>/coverage.xml      Cobertura report (optional)
#   $PTC_ARCHIVE_DIR/<anything>/<run>/run.env           PROJECT=…, BRANCH=…, LABELS="k=v k=v" (required)
# A pushed run gets a `.pushed` marker; a run the gateway rejected (exit 2: bad input) gets
# `.rejected` and is not retried.
#
# Caveat: the Pushgateway has no timestamps. Pushing old runs oldest-first brings the
# cumulative families (runs, tests, durations, failures) up to date and leaves the newest run
# as the group's per-run values, but Prometheus records the samples at scrape time.
#
# Environment: PTC_ARCHIVE_DIR (required), PTC_METRICS_GATEWAY (required), and optionally
# PTC_METRICS_BASIC_AUTH_USER / PTC_METRICS_BASIC_AUTH_PASSWORD, PTC_METRICS_BIN.
set -euo pipefail

: "${PTC_ARCHIVE_DIR:?set PTC_ARCHIVE_DIR to the archive of test runs}"
: "${PTC_METRICS_GATEWAY:?set PTC_METRICS_GATEWAY to the Pushgateway URL}"
PTC_METRICS_BIN=${PTC_METRICS_BIN:-ptc-metrics}

# One backfill at a time.
exec 9>"${PTC_ARCHIVE_DIR}/.ptc-metrics-backfill.lock"
flock -n 9 || { echo "another backfill is running" >&2; exit 0; }

# Reads KEY=value from run.env without executing it.
env_value() {
    sed -n "s/^$2=//p" "$1" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

pushed=0
failed=0
# Oldest run first (by the modification time of run.env).
while IFS= read -r -d '' envfile; do
    run=$(dirname "$envfile")
    [ -e "$run/.pushed" ] || [ -e "$run/.rejected" ] && continue
    project=$(env_value "$envfile" PROJECT)
    branch=$(env_value "$envfile" BRANCH)
    labels=$(env_value "$envfile" LABELS)
    if [ -z "$project" ] || [ -z "$branch" ]; then
        echo "skip $run: run.env lacks PROJECT or BRANCH" >&2
        continue
    fi
    shopt -s nullglob
    junit=("$run"/junit*.xml)
    shopt -u nullglob
    if [ ${#junit[@]} -eq 0 ]; then
        echo "skip $run: no junit*.xml" >&2
        continue
    fi
    args=(push "${junit[@]}" --project "$project" --branch "$branch" --no-ci-detect)
    [ -f "$run/size-report.json" ] && args+=(--size-report "$run/size-report.json")
    [ -f "$run/coverage.xml" ] && args+=(--coverage "$run/coverage.xml")
    for kv in $labels; do
        args+=(--label "$kv")
    done
    set +e
    "$PTC_METRICS_BIN" "${args[@]}"
    rc=$?
    set -e
    case $rc in
        0) touch "$run/.pushed"; pushed=$((pushed + 1)) ;;
        2) echo "rejected $run (bad input)" >&2; touch "$run/.rejected" ;;
        *) echo "push of $run failed (exit $rc); stopping, will retry next time" >&2
           failed=1; break ;;
    esac
done < <(find "$PTC_ARCHIVE_DIR" -name run.env -type f -printf '%T@ %p\0' | sort -z -n | cut -z -d' ' -f2-)

echo "backfill: pushed $pushed run(s)"
exit "$failed"
