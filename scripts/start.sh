#!/usr/bin/env bash
# Install and start the whole platform on embedded defaults (README's first command):
#   bash scripts/start.sh            serves on 127.0.0.1:${PORT:-5000}
# Installs Debian's redis-server and busybox-static when missing and a .venv with `pip install -e .`,
# then runs `python app.py`: SQLite under instance/, its own redis-server, a worker, demo data.
# Idempotent and quiet: a second start skips apt and pip and goes straight to the app.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HUB_ROOT"

ensure_apt "${HUB_RUN_PACKAGES[@]}"
ensure_venv ""
if ! docker_answers; then
    say "note: no Docker engine answers, so submissions wait in the queue until one does" \
        "(bash scripts/services.sh docker starts one)"
fi
exec "$HUB_VENV/bin/python" app.py "$@"
