#!/usr/bin/env bash
# Make sure the services the tests and benches use are there, then print their settings.
#   bash scripts/services.sh [docker|postgres|all]     (default: all)
#   eval "$(bash scripts/services.sh postgres)"        exports TEST_DATABASE_URL and BENCH_DATABASE_URL
# Docker: the running engine, or Debian's docker.io started in the background if none answers.
# PostgreSQL: the installed cluster started, role hub/hub, databases hub_test and hub_bench.
# Redis needs no service: tests and `python app.py` start their own redis-server.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

what="${1:-all}"
case "$what" in
    docker|postgres|all) ;;
    *) die "usage: bash scripts/services.sh [docker|postgres|all]" ;;
esac
if [ "$what" = docker ] || [ "$what" = all ]; then
    ensure_docker
fi
if [ "$what" = postgres ] || [ "$what" = all ]; then
    ensure_postgres
    printf 'export TEST_DATABASE_URL=%q\nexport BENCH_DATABASE_URL=%q\n' "$TEST_DATABASE_URL" "$BENCH_DATABASE_URL"
fi
