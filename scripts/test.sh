#!/usr/bin/env bash
# Install everything the tests need and run the whole suite twice: on SQLite, then on PostgreSQL.
#
#   bash scripts/test.sh [PYTEST ARGS...]      e.g. bash scripts/test.sh -x -q tests/hub
#
# - Debian packages (redis-server, busybox-static, postgresql, chromium, fonts-noto-cjk, docker-registry)
#   and .venv with `pip install -e '.[test]'`; a Docker engine that answers; PostgreSQL with role hub/hub
#   and databases hub_test, hub_bench.
# - Run 1: SQLite (the default). Run 2: `--db postgresql` with TEST_DATABASE_URL, browser tests
#   deselected (`-m "not browser"`) because they exercise the pages, not the database, and are the
#   slowest part; HUB_PG_BROWSER=1 keeps them. Extra args go to both runs, after ours (a `-m` of
#   yours wins).
# - Screenshots and JUnit reports land in artifacts/ (HUB_ARTIFACTS).
# - Exit status: non-zero when any run fails, including pytest's 5 ("no tests collected").
#
# Knobs: HUB_TEST_DBS="sqlite postgresql" (which runs), HUB_TEST_SKIP_SETUP=1 (no installs, no
# services: for a quick re-run), TEST_DATABASE_URL (an existing PostgreSQL instead of the local one),
# HUB_TEST_RUN_TIMEOUT=1500 (seconds one pytest run may take before it is interrupted).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HUB_ROOT"

export HUB_ARTIFACTS="${HUB_ARTIFACTS:-$HUB_ROOT/artifacts}"
mkdir -p "$HUB_ARTIFACTS"
dbs="${HUB_TEST_DBS:-sqlite postgresql}"
run_limit="${HUB_TEST_RUN_TIMEOUT:-1500}"

if [ "${HUB_TEST_SKIP_SETUP:-0}" != 1 ]; then
    set -e
    ensure_apt "${HUB_TEST_PACKAGES[@]}"
    ensure_venv test
    ensure_docker
    # A TEST_DATABASE_URL given from outside names a server someone else runs: leave it be.
    if [ -z "${TEST_DATABASE_URL:-}" ]; then
        case " $dbs " in *" postgresql "*) ensure_postgres ;; esac
    fi
    set +e
fi
venv_works || die ".venv is missing: run without HUB_TEST_SKIP_SETUP=1 first"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://hub:hub@127.0.0.1:5432/hub_test}"

# junit_counts FILE: print "tests failures errors skipped" summed over the report's test suites.
junit_counts() {
    "$HUB_VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
print(*(sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")))
PY
}

status=0
total_passed=0; total_failed=0; total_skipped=0
summary=()
sqlite_ran=0
for db in $dbs; do
    junit="$HUB_ARTIFACTS/junit-$db.xml"
    rm -f "$junit"
    args=(--strict-markers --db "$db" --junitxml "$junit" -o junit_suite_name="hub-$db")
    [ "$db" = postgresql ] && [ "${HUB_PG_BROWSER:-0}" != 1 ] && args+=(-m "not browser")
    say "pytest on $db:$(printf ' %q' "${args[@]}" "$@")"
    started=$SECONDS
    # A hung test must end the run with a traceback, not eat CI's whole time: SIGINT makes pytest
    # print where it was and its summary; KILL follows if that does not end it.
    timeout --signal=INT --kill-after=30 "$run_limit" "$HUB_VENV/bin/python" -m pytest "${args[@]}" "$@"
    rc=$?
    took=$((SECONDS - started))

    counts="$(junit_counts "$junit")" || counts=""
    read -r n_tests n_fail n_err n_skip <<<"${counts:-0 0 0 0}"
    n_failed=$((n_fail + n_err)); n_passed=$((n_tests - n_failed - n_skip))
    total_passed=$((total_passed + n_passed)); total_failed=$((total_failed + n_failed))
    total_skipped=$((total_skipped + n_skip))

    case "$rc" in
        0)  verdict="ok"; [ "$db" = sqlite ] && [ "$n_tests" -gt 0 ] && sqlite_ran=1 ;;
        5)  if [ "$db" = postgresql ] && [ "$sqlite_ran" = 1 ] && [ "${HUB_PG_BROWSER:-0}" != 1 ]; then
                # Everything selected was a browser test, deselected here on purpose; the SQLite
                # run above did execute tests, so the whole run did not come up empty.
                verdict="ok (every selected test is a browser test, run on SQLite only)"
            else
                verdict="FAILED: pytest collected no tests (exit 5)"; status=1
            fi ;;
        124|137) verdict="FAILED: stopped after ${run_limit}s (HUB_TEST_RUN_TIMEOUT)"; status=1 ;;
        *)  verdict="FAILED (pytest exit $rc)"; status=1 ;;
    esac
    summary+=("$(printf '%-10s %4d passed, %d failed, %d skipped in %ds: %s' \
        "$db" "$n_passed" "$n_failed" "$n_skip" "$took" "$verdict")")
done

echo
echo "==> summary (JUnit reports and screenshots in $HUB_ARTIFACTS)"
printf '  %s\n' "${summary[@]}"
[ "$status" -ne 0 ] && echo "==> test run FAILED"
# The last line adds up every run, in the plain form CI reads.
echo "total: $total_passed passed, $total_failed failed, $total_skipped skipped"
exit "$status"
