#!/usr/bin/env bash
# Install what the platform needs: Debian packages and the .venv.
#   bash scripts/setup-system.sh run    redis-server, busybox-static; pip install -e .
#   bash scripts/setup-system.sh test   + postgresql, chromium, fonts-noto-cjk, docker-registry; pip install -e '.[test]'
# Idempotent and quiet: apt-get only runs when a package is missing, pip only when pyproject.toml changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-run}" in
    run)  ensure_apt "${HUB_RUN_PACKAGES[@]}"; ensure_venv "" ;;
    test) ensure_apt "${HUB_TEST_PACKAGES[@]}"; ensure_venv test ;;
    *)    die "usage: bash scripts/setup-system.sh [run|test]" ;;
esac
