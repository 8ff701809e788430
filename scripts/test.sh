#!/usr/bin/env bash
# The project's test command (README + .ci/run).
#
#   bash scripts/test.sh
#
# On a clean Debian bookworm machine (as root, Rust installed) it installs the
# Prometheus-stack servers the integration tests start (prometheus-pushgateway,
# prometheus + promtool, prometheus-alertmanager + amtool, victoria-metrics),
# then runs rustfmt, clippy and all tests. Idempotent: apt is only touched when
# a binary is missing. The tests bind 127.0.0.1 on free ports, so services that
# a package install may have started on the default ports do not matter.
#
# Environment:
#   PTC_SKIP_INSTALL=1   never call apt-get (fail in the tests instead)
#   CARGO_TEST_ARGS      extra args after `cargo test --all-targets` (e.g. "-- --nocapture")
#   CARGO_INCREMENTAL    left as set; under CI (CI set) 0 when unset
#   RUST_TEST_THREADS    test threads per binary (default: max(4, nproc); the
#                        server tests mostly wait, e.g. ~5 s for Prometheus' first scrape)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)

SECTION=""
SECTION_START=$SECONDS
section() {
    SECTION="$1"
    SECTION_START=$SECONDS
    printf '\n==== %s ====\n' "$SECTION"
}
section_done() {
    printf -- '---- ok: %s (%ss)\n' "$SECTION" "$((SECONDS - SECTION_START))"
}
skip() {
    printf -- '---- skipped: %s (%s)\n' "$SECTION" "$1"
}
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '\n==== FAILED (exit %s) in section: %s ====\n' "$rc" "${SECTION:-setup}" >&2
    else
        printf '\n==== ALL CHECKS PASSED (%ss) ====\n' "$SECONDS"
        # The closing line CI reads: the sum over every cargo test binary.
        [ -z "${SUMMARY:-}" ] || printf '%s\n' "$SUMMARY"
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------------------
section "server packages (Debian)"
# binary -> Debian package
declare -A PKG_OF=(
    [prometheus-pushgateway]=prometheus-pushgateway
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
    [amtool]=prometheus-alertmanager
    [victoria-metrics]=victoria-metrics
    [systemd-analyze]=systemd
    [node]=nodejs
    [npm]=npm
)
have_bin() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }
missing_pkgs=()
for bin in "${!PKG_OF[@]}"; do
    if ! have_bin "$bin"; then
        pkg=${PKG_OF[$bin]}
        echo "missing binary: $bin (package $pkg)"
        [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
    fi
done
# The alert/example tests read YAML with Debian's python3 (python3-yaml).
if ! /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "missing python module: yaml (package python3-yaml)"
    missing_pkgs+=(python3-yaml)
fi
if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    if [ "${PTC_SKIP_INSTALL:-0}" = 1 ]; then
        echo "PTC_SKIP_INSTALL=1: not installing ${missing_pkgs[*]}" >&2
        exit 1
    fi
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            echo "need root (or sudo) to run: apt-get install -y --no-install-recommends ${missing_pkgs[*]}" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "+ apt-get update"
    "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=300
    echo "+ apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
    "${SUDO[@]}" apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing_pkgs[@]}"
    for bin in "${!PKG_OF[@]}"; do
        have_bin "$bin" || { echo "still missing after install: $bin" >&2; exit 1; }
    done
else
    echo "all server binaries present"
fi
dpkg-query -W -f='${Package} ${Version}\n' prometheus-pushgateway prometheus prometheus-alertmanager victoria-metrics 2>/dev/null || true
section_done

# ---------------------------------------------------------------------------
section "rust toolchain"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        echo "+ rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    else
        echo "cargo fmt / cargo clippy not available and no rustup to install them" >&2
        exit 1
    fi
fi
cargo --version
rustc --version
cargo fmt --version
cargo clippy --version
# A fresh clone gains nothing from incremental compilation but its disk (about 0.5 GB).
if [ -n "${CI:-}" ] && [ -z "${CARGO_INCREMENTAL:-}" ]; then
    export CARGO_INCREMENTAL=0
    echo "CI: CARGO_INCREMENTAL=0"
fi
# The build needs about 2.5 GB (clippy's and the tests' builds); say so
# up front instead of failing mid-link with "No space left on device".
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
echo "free disk at $REPO_ROOT: $((free_kb / 1024)) MB"
if [ "${free_kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
    echo "warning: less than 3 GB free at $REPO_ROOT; the build may run out of disk" >&2
fi
section_done

# ---------------------------------------------------------------------------
section "cargo fmt --all -- --check"
cargo fmt --all -- --check
section_done

# ---------------------------------------------------------------------------
section "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
section_done

# ---------------------------------------------------------------------------
# Grafana's dashboard types (@grafana/schema + typescript, pinned in
# dashboards/check/package-lock.json) for tests/dashboards.rs.
section "dashboard type-check dependencies: npm ci (dashboards/check/)"
if [ -d dashboards/check ]; then
    (cd dashboards/check && npm ci --no-audit --no-fund)
    section_done
else
    skip "dashboards/check/ not present"
fi

# ---------------------------------------------------------------------------
section "cargo test --all-targets --locked"
if [ -z "${RUST_TEST_THREADS:-}" ]; then
    n=$(nproc 2>/dev/null || echo 2)
    RUST_TEST_THREADS=$((n > 4 ? n : 4))
    export RUST_TEST_THREADS
fi
echo "RUST_TEST_THREADS=$RUST_TEST_THREADS"
TEST_LOG=$(mktemp)
# shellcheck disable=SC2086 # CARGO_TEST_ARGS is intentionally word-split
cargo test --all-targets --locked ${CARGO_TEST_ARGS:-} 2>&1 | tee "$TEST_LOG"
section_done

# ---------------------------------------------------------------------------
section "cargo test --doc --locked"
# --all-targets does not include doctests; run them separately.
cargo test --doc --locked 2>&1 | tee -a "$TEST_LOG"
section_done

# ---------------------------------------------------------------------------
# HOOK: fixture drift check (owner: fixtures). Runs only once the script exists.
section "fixture drift check: python3 fixtures/check_drift.py"
if [ -f fixtures/check_drift.py ]; then
    # Both pinned pytest versions: the plugin behaves differently under 9.1 and 9.2.
    python3 fixtures/check_drift.py --version 9.2
    python3 fixtures/check_drift.py --version 9.1
    section_done
else
    skip "fixtures/check_drift.py not present"
fi

# ---------------------------------------------------------------------------
# HOOK: extra steps. Every executable-or-not scripts/test.d/*.sh is run with
# bash from the repo root, in name order (add files there instead of editing
# this script). Each must exit non-zero on failure.
section "extra steps: scripts/test.d/*.sh"
shopt -s nullglob
extra=(scripts/test.d/*.sh)
shopt -u nullglob
if [ "${#extra[@]}" -gt 0 ]; then
    for f in "${extra[@]}"; do
        printf -- '-- %s\n' "$f"
        (cd "$REPO_ROOT" && bash "$f")
    done
    section_done
else
    skip "no scripts/test.d/*.sh"
fi

# One closing line for the whole run: the sum over every cargo test binary.
read -r passed failed < <(awk '/^test result: /{p+=$4; f+=$6} END{print p+0, f+0}' "$TEST_LOG")
rm -f "$TEST_LOG"
SUMMARY="tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

SECTION=""
