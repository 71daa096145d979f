#!/usr/bin/env bash
# Install and start the whole platform on embedded defaults (README's first command):
#   bash scripts/start.sh            serves on 127.0.0.1:${PORT:-5000}
# Installs Debian's redis-server and busybox-static when missing, a Docker engine when none answers, and a
# .venv with `pip install -e .`,
# then runs `python app.py`: SQLite under instance/, its own redis-server, a worker, demo data.
# Idempotent and quiet: a second start skips apt and pip and goes straight to the app.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HUB_ROOT"

ensure_apt "${HUB_RUN_PACKAGES[@]}"
ensure_venv ""
# The demo evaluates real images: start Debian's dockerd when no engine answers (as the tests do).
ensure_docker
exec "$HUB_VENV/bin/python" app.py "$@"
