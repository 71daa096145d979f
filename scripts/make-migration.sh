#!/usr/bin/env bash
# Write a new Alembic revision from the difference between the models and the migrated schema:
#   bash scripts/make-migration.sh "add voucher scheme"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
msg="${1:?usage: make-migration.sh MESSAGE}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python - "$tmp/db.sqlite3" "$msg" <<'PY'
import sys
from alembic import command
from hub.migrate import alembic_config, upgrade

url = f"sqlite:///{sys.argv[1]}"
upgrade(url)
command.revision(alembic_config(url), message=sys.argv[2], autogenerate=True)
PY
