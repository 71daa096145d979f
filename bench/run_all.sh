#!/usr/bin/env bash
# Run every bench/ script that exists and print its figures (see bench/README.md).
#   bash bench/run_all.sh                       all of them, in the order of bench/README.md
#   bash bench/run_all.sh quota_sim load_web    only these (names without .py)
# Each script's output is also kept in artifacts/bench/<name>.txt. Exit status is non-zero when a
# script fails or runs past HUB_BENCH_TIMEOUT seconds (default 900); a missing script is only noted.
# HUB_BENCH_SKIP_SETUP=1 skips the installs and services (.venv, Docker, PostgreSQL's hub_bench).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$HUB_ROOT"

KNOWN=(leaderboard_bench scoring_bench eval_overhead upload_memory quota_sim sandbox_overhead load_web)

if [ "${HUB_BENCH_SKIP_SETUP:-0}" != 1 ]; then
    set -e
    ensure_apt "${HUB_TEST_PACKAGES[@]}" wrk   # wrk: the load generator of load_web.py
    ensure_venv test
    ensure_docker
    ensure_postgres      # exports BENCH_DATABASE_URL (postgresql://hub:hub@127.0.0.1:5432/hub_bench)
    set +e
fi
venv_works || die ".venv is missing: run without HUB_BENCH_SKIP_SETUP=1 first"
# `python bench/x.py` puts bench/ first on sys.path; app.py lives at the root and is not installed.
export PYTHONPATH="$HUB_ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=("${KNOWN[@]}")
    # Scripts added later but not yet listed in KNOWN run too, after the known ones.
    for f in bench/*.py; do
        [ -e "$f" ] || continue
        n="$(basename "$f" .py)"
        case " ${KNOWN[*]} " in *" $n "*) ;; *) names+=("$n") ;; esac
    done
fi

out_dir="${HUB_ARTIFACTS:-$HUB_ROOT/artifacts}/bench"
mkdir -p "$out_dir"
status=0
results=()
for n in "${names[@]}"; do
    script="bench/$n.py"
    if [ ! -f "$script" ]; then
        results+=("$(printf '%-18s missing (not written yet)' "$n")")
        continue
    fi
    echo "==> $script"
    started=$SECONDS
    timeout "${HUB_BENCH_TIMEOUT:-900}" "$HUB_VENV/bin/python" "$script" 2>&1 | tee "$out_dir/$n.txt"
    rc=${PIPESTATUS[0]}
    took=$((SECONDS - started))
    case "$rc" in
        0)   verdict="ok" ;;
        124) verdict="TIMED OUT after ${HUB_BENCH_TIMEOUT:-900}s"; status=1 ;;
        *)   verdict="FAILED (exit $rc)"; status=1 ;;
    esac
    results+=("$(printf '%-18s %s in %ds' "$n" "$verdict" "$took")")
    echo
done

echo "==> bench summary (outputs in $out_dir)"
printf '  %s\n' "${results[@]}"
exit "$status"
