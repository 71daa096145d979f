# Shared helpers for scripts/*.sh (sourced, not run). Debian 12 (bookworm), run as root.
#
# Every helper is idempotent: it checks first and only acts (apt-get, pip, starting a service) when
# something is missing, so running a script twice costs a few seconds the second time.
# Output stays quiet on success; on failure the captured log of the failing step is printed.

HUB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HUB_VENV="${HUB_VENV:-$HUB_ROOT/.venv}"
HUB_LOG_DIR="${HUB_LOG_DIR:-$HUB_ROOT/instance/setup-logs}"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian packages, by purpose.
HUB_RUN_PACKAGES=(redis-server busybox-static docker-registry)
HUB_TEST_PACKAGES=(redis-server busybox-static postgresql chromium fonts-noto-cjk docker-registry nginx)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# run_logged NAME CMD...: run CMD with its output in a log file; print the log's tail if it fails.
run_logged() {
    local name="$1"; shift
    mkdir -p "$HUB_LOG_DIR"
    local log="$HUB_LOG_DIR/$name.log"
    if ! "$@" >"$log" 2>&1; then
        printf 'ERROR: %s failed; the last lines of %s:\n' "$name" "$log" >&2
        tail -n 60 "$log" >&2
        return 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_apt PKG...: install the Debian packages that are missing; `apt-get update` only then.
ensure_apt() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    # Another apt run (a colleague's, unattended upgrades) may hold the lock: wait for it.
    local opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    run_logged apt-update as_root apt-get "${opts[@]}" update -q || return 1
    # Packages with a daemon (nginx, postgresql, redis) would start it on install; nothing here needs that
    # (the scripts start what they use, on ports of their own), and a taken port 80 would fail nginx's
    # install. policy-rc.d answering 101 ("not allowed") is Debian's way to say so, for this install only.
    local policy=/usr/sbin/policy-rc.d placed=0 rc=0
    if [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && placed=1
    fi
    run_logged apt-install as_root apt-get "${opts[@]}" install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ "$placed" = 1 ] && rm -f "$policy"
    return "$rc"
}

# find_python: print a CPython 3.11 or 3.12 (pyproject says >=3.11,<3.13), pyenv's first, then Debian's.
find_python() {
    local c
    for c in "${HUB_PYTHON:-}" python3.11 python3.12 /root/.pyenv/versions/3.11*/bin/python3.11 \
             /usr/bin/python3.11 python3; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

venv_works() {
    [ -x "$HUB_VENV/bin/python" ] && "$HUB_VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

# ensure_venv EXTRA: a working .venv with `pip install -e .[EXTRA] -e ./client` (EXTRA may be empty;
# ./client is the team's `hub-submit`, on PATH for the tests and the demo).
# A stamp holding both pyproject.toml files' hash skips pip when nothing changed; a "test" install also
# satisfies a plain one.
ensure_venv() {
    local extra="${1:-}" py spec stamp_dir hash
    if ! venv_works; then
        py="$(find_python)" || die "no Python 3.11/3.12 found (set HUB_PYTHON)"
        say "creating $HUB_VENV with $py"
        rm -rf "$HUB_VENV"
        if ! "$py" -m venv "$HUB_VENV" >/dev/null 2>&1; then
            # Debian's own python3 lacks ensurepip until python3-venv is installed.
            rm -rf "$HUB_VENV"
            ensure_apt python3-venv || return 1
            run_logged venv "$py" -m venv "$HUB_VENV" || return 1
        fi
    fi
    stamp_dir="$HUB_VENV/.hub-installed"
    hash="$(cat "$HUB_ROOT/pyproject.toml" "$HUB_ROOT/client/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp_dir/${extra:-base}" ] && [ "$(cat "$stamp_dir/${extra:-base}")" = "$hash" ]; then
        return 0
    fi
    if [ -z "$extra" ] && [ -f "$stamp_dir/test" ] && [ "$(cat "$stamp_dir/test")" = "$hash" ]; then
        return 0
    fi
    spec="."; [ -n "$extra" ] && spec=".[$extra]"
    say "installing Python packages into .venv (pip install -e '$spec' -e ./client)"
    run_logged pip-install "$HUB_VENV/bin/python" -m pip install -q --no-input -e "$HUB_ROOT/$spec" || return 1
    # Second, on its own: reinstalling an older root package (which shipped bin/hub-submit) removes that file.
    run_logged pip-install-client "$HUB_VENV/bin/python" -m pip install -q --no-input -e "$HUB_ROOT/client" || return 1
    mkdir -p "$stamp_dir"
    echo "$hash" >"$stamp_dir/${extra:-base}"
}

docker_answers() {
    command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1
}

# ensure_docker: a Docker engine that answers; if none does, Debian's docker.io started by hand
# (no systemd here). Storage: fuse-overlayfs where /dev/fuse exists (as on this kind of machine).
ensure_docker() {
    docker_answers && return 0
    say "no Docker engine answers: installing/starting Debian's docker.io"
    local pkgs=(docker.io)
    [ -e /dev/fuse ] && pkgs+=(fuse-overlayfs)
    ensure_apt "${pkgs[@]}" || return 1
    if [ ! -f /etc/docker/daemon.json ] && [ -e /dev/fuse ]; then
        as_root mkdir -p /etc/docker
        printf '{"storage-driver": "fuse-overlayfs", "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}\n' \
            | as_root tee /etc/docker/daemon.json >/dev/null
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        mkdir -p "$HUB_LOG_DIR"
        # setsid + nohup: the engine must outlive this script (tests and later runs use it).
        as_root setsid nohup dockerd >"$HUB_LOG_DIR/dockerd.log" 2>&1 </dev/null &
    fi
    local i
    for i in $(seq 1 60); do
        docker_answers && { say "Docker engine is up"; return 0; }
        sleep 1
    done
    tail -n 40 "$HUB_LOG_DIR/dockerd.log" >&2 2>/dev/null || true
    die "the Docker engine did not answer within 60 s"
}

# pg_cluster: print "VERSION NAME PORT" of the cluster to use: HUB_PG_CLUSTER ("15/main") if set,
# else the first cluster of the newest installed PostgreSQL, creating "main" if the package left none.
pg_cluster() {
    local ver name="" line
    if [ -n "${HUB_PG_CLUSTER:-}" ]; then
        ver="${HUB_PG_CLUSTER%%/*}"; name="${HUB_PG_CLUSTER#*/}"
    else
        ver="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -n "$ver" ] || die "PostgreSQL is not installed"
    line="$(pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && (n == "" || $2 == n) {print $1, $2, $3; exit}')"
    if [ -z "$line" ]; then
        run_logged pg-createcluster as_root pg_createcluster "$ver" "${name:-main}" || return 1
        line="$(pg_lsclusters -h | awk -v v="$ver" -v n="${name:-main}" '$1 == v && $2 == n {print $1, $2, $3; exit}')"
    fi
    echo "$line"
}

pg_psql() {
    # cd /: psql as postgres cannot read root's working directory and would warn about it.
    (cd / && as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
}

# ensure_postgres: the cluster running, role hub/hub and databases hub_test, hub_bench.
# Sets PG_PORT and exports TEST_DATABASE_URL / BENCH_DATABASE_URL (unless already set).
ensure_postgres() {
    ensure_apt postgresql || return 1
    local ver name i db
    read -r ver name PG_PORT < <(pg_cluster) || return 1
    if ! pg_lsclusters -h | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n {print $4}' | grep -q online; then
        say "starting PostgreSQL $ver/$name on port $PG_PORT"
        run_logged pg-start as_root pg_ctlcluster "$ver" "$name" start || return 1
    fi
    for i in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
        sleep 0.5
    done
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL did not become ready on port $PG_PORT"
    if [ "$(pg_psql -tAc "select 1 from pg_roles where rolname = 'hub'")" != "1" ]; then
        pg_psql -c "create role hub login password 'hub' createdb" || return 1
    fi
    for db in hub_test hub_bench; do
        if [ "$(pg_psql -tAc "select 1 from pg_database where datname = '$db'")" != "1" ]; then
            pg_psql -c "create database $db owner hub" || return 1
        fi
    done
    export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://hub:hub@127.0.0.1:$PG_PORT/hub_test}"
    export BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgresql://hub:hub@127.0.0.1:$PG_PORT/hub_bench}"
}
