#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer at $DATABASE_URL and $REDIS_URL.
#
#   scripts/ensure-services.sh          ensure both services (default; same as "start")
#   scripts/ensure-services.sh stop     stop the project-local servers this script started
#
# If a server already answers at the URL's host:port it is used as is (for PostgreSQL the
# database named in the URL is created if missing). Otherwise, for a loopback host only,
# a project-local server is started (installing the packages with apt-get if needed):
#   PostgreSQL: cluster in .local/postgres/data (or /var/tmp/cafeflow-<hash>/postgres/data
#               when running as root and the postgres user cannot reach the repo),
#               trust auth, listening on the loopback address only, log .local/postgres/server.log
#   Redis:      redis-server --daemonize yes with its files in .local/redis, no persistence
# "stop" only ever stops those project-local servers, never the machine's own.
set -euo pipefail

PROG=ensure-services
say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LOCAL_DIR=$ROOT/.local
REDIS_DIR=$LOCAL_DIR/redis
ROOT_HASH=$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
# Used for the PostgreSQL cluster only when root runs us and the postgres user cannot traverse $ROOT.
FALLBACK_DIR=/var/tmp/cafeflow-$ROOT_HASH
ME=$(id -un)

TMP_FILES=()
cleanup() { if [ "${#TMP_FILES[@]}" -gt 0 ]; then rm -f -- "${TMP_FILES[@]}"; fi; }
trap cleanup EXIT
new_tmp() { local f; f=$(mktemp "${TMPDIR:-/tmp}/ensure-services.XXXXXX"); TMP_FILES+=("$f"); printf '%s\n' "$f"; }

# Print the last lines of a log file to stderr (used right before die).
show_tail() { if [ -s "$1" ]; then tail -n "${2:-15}" "$1" | sed 's/^/    /' >&2; fi; }

# ---------------------------------------------------------------------------- URLs
parse_urls() {
    local out
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    out=$(python3 - "${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/cafeflow}" \
        "${REDIS_URL:-redis://127.0.0.1:6379/0}" <<'PY'
import getpass, os, shlex, sys
from urllib.parse import unquote, urlsplit

def fail(msg):
    print(f"ensure-services: error: {msg}", file=sys.stderr)
    sys.exit(2)

def emit(name, value):
    print(f"{name}={shlex.quote(str(value))}")

db_url, redis_url = sys.argv[1], sys.argv[2]
try:
    u = urlsplit(db_url)
    port = u.port
except ValueError as exc:
    fail(f"cannot parse DATABASE_URL: {exc}")
if u.scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
    fail(f"DATABASE_URL must look like postgresql://user@host:port/dbname (got scheme {u.scheme!r})")
user = unquote(u.username) if u.username else (os.environ.get("PGUSER") or getpass.getuser())
emit("PG_HOST", u.hostname or "127.0.0.1")
emit("PG_PORT", port or 5432)
emit("PG_USER", user)
emit("PG_PASSWORD", unquote(u.password) if u.password else "")
emit("PG_DB", unquote(u.path.lstrip("/")) or user)

try:
    r = urlsplit(redis_url)
    port = r.port
except ValueError as exc:
    fail(f"cannot parse REDIS_URL: {exc}")
if r.scheme not in ("redis", "rediss"):
    fail(f"REDIS_URL must look like redis://[:password@]host:port/db (got scheme {r.scheme!r})")
emit("REDIS_TLS", 1 if r.scheme == "rediss" else 0)
emit("REDIS_HOST", r.hostname or "127.0.0.1")
emit("REDIS_PORT", port or 6379)
emit("REDIS_PASSWORD", unquote(r.password) if r.password else "")
PY
    ) || exit 1   # the parser printed the reason
    eval "$out"
}

is_loopback() {
    [[ $1 == localhost || $1 == ::1 || $1 == 0:0:0:0:0:0:0:1 || $1 =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]]
}
# Address a project-local server binds to: the URL's loopback literal, 127.0.0.1 for "localhost".
listen_addr() { if [ "$1" = localhost ]; then echo 127.0.0.1; else echo "$1"; fi; }
hostport() { if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }

tcp_open() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

# ---------------------------------------------------------------------------- privileges
as_root() {
    if [ "$EUID" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "root privileges needed for: $* (run as root or install sudo)"
    fi
}

# as_user USER CMD...: run CMD as USER (directly if that is us), from / so cwd permissions don't matter.
as_user() {
    local u=$1; shift
    if [ "$u" = "$ME" ]; then (cd / && "$@")
    elif [ "$EUID" -eq 0 ] && command -v runuser >/dev/null 2>&1; then (cd / && runuser -u "$u" -- "$@")
    elif [ "$EUID" -eq 0 ]; then (cd / && su -s /bin/bash "$u" -c "$(printf '%q ' "$@")")
    elif command -v sudo >/dev/null 2>&1; then (cd / && sudo -u "$u" -- "$@")
    else die "need to run commands as user $u: run as root or install sudo"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "$* not installed and apt-get is unavailable; install it manually"
    local log
    log=$(new_tmp)
    say "installing $* with apt-get (this can take a minute)..."
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1 ||
            warn "apt-get update failed; trying the install anyway"
        APT_UPDATED=1
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y --no-install-recommends "$@" >>"$log" 2>&1; then
        show_tail "$log" 20
        die "apt-get install $* failed (output above)"
    fi
}

LOCK_HELD=0
take_lock() {   # serialise concurrent slow paths (e.g. "make up" and "make test" started together)
    [ "$LOCK_HELD" -eq 1 ] && return 0
    ensure_local_dir
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>>"$LOCAL_DIR/.ensure-services.lock"
    flock -w 600 9 || die "another ensure-services run holds $LOCAL_DIR/.ensure-services.lock for over 10 minutes"
    LOCK_HELD=1
}

ensure_local_dir() {
    if [ ! -d "$LOCAL_DIR" ]; then
        mkdir -p "$LOCAL_DIR" || die "cannot create $LOCAL_DIR"
        chmod 755 "$LOCAL_DIR"   # the postgres user must be able to traverse it when we run as root
    fi
}

wait_for() {   # wait_for TENTHS CMD...: retry CMD every 0.1 s
    local n=$1; shift
    while [ "$n" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# ---------------------------------------------------------------------------- PostgreSQL
newest() { local p; p=$(printf '%s\n' "$@" | sort -V | tail -n 1); if [ -x "$p" ]; then echo "$p"; else return 1; fi; }

find_pg_bin() {   # client programs: PATH first (Debian's pg_wrapper), then /usr/lib/postgresql/*/bin
    command -v "$1" 2>/dev/null || newest /usr/lib/postgresql/*/bin/"$1"
}

# Directory holding initdb/pg_ctl/postgres, for major version $1 (or the newest installed if empty).
pg_bindir() {
    local p
    if [ -n "$1" ] && [ -x "/usr/lib/postgresql/$1/bin/pg_ctl" ]; then echo "/usr/lib/postgresql/$1/bin"; return 0; fi
    if [ -z "$1" ] && p=$(newest /usr/lib/postgresql/*/bin/initdb); then dirname "$p"; return 0; fi
    p=$(command -v initdb 2>/dev/null) || return 1
    p=$(dirname "$p")
    [ -x "$p/pg_ctl" ] || return 1
    echo "$p"
}

pg_answers() {   # 0: accepting connections, 1: answering but rejecting (e.g. starting up), 2: nothing
    local isready rc=0
    if isready=$(find_pg_bin pg_isready); then
        "$isready" -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -t 3 || rc=$?
        [ "$rc" -le 1 ] || rc=2
        return "$rc"
    fi
    tcp_open "$PG_HOST" "$PG_PORT" || return 2
}

pg_wait_settled() {   # if the server is starting up / shutting down, give it up to 30 s
    local rc=0
    pg_answers || rc=$?
    if [ "$rc" -eq 1 ]; then
        wait_for 300 pg_answers || true
        rc=0; pg_answers || rc=$?
    fi
    return "$rc"
}

# Project-local cluster: where it is (if it exists), where a new one goes.
pg_existing_base() {
    local b
    for b in "$LOCAL_DIR/postgres" "$FALLBACK_DIR/postgres"; do
        if [ -f "$b/data/PG_VERSION" ]; then echo "$b"; return 0; fi
    done
    return 1
}

ensure_postgres_user() {
    getent passwd postgres >/dev/null 2>&1 && return 0
    say "creating system user postgres (PostgreSQL refuses to run as root)"
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
            --shell /usr/sbin/nologin postgres
    else
        adduser --system --group --no-create-home --home /var/lib/postgresql postgres
    fi
}

pg_new_base() {
    if [ "$EUID" -ne 0 ]; then echo "$LOCAL_DIR/postgres"; return 0; fi
    if as_user postgres test -x "$LOCAL_DIR" 2>/dev/null; then
        echo "$LOCAL_DIR/postgres"
    else
        mkdir -p "$FALLBACK_DIR"
        chmod 755 "$FALLBACK_DIR"
        echo "$FALLBACK_DIR/postgres"
    fi
}

pg_describe_server() {   # "project-local server (data ...)" if the answering server is our cluster
    local base pidfile
    if base=$(pg_existing_base); then
        pidfile=$base/data/postmaster.pid
        if [ -r "$pidfile" ] && [ "$(sed -n 4p "$pidfile" 2>/dev/null)" = "$PG_PORT" ]; then
            echo "project-local PostgreSQL (data $base/data)"
            return 0
        fi
    fi
    echo "existing PostgreSQL"
}

pg_start_local() {
    take_lock
    local rc=0
    pg_wait_settled || rc=$?
    [ "$rc" -eq 0 ] && return 0   # another run started it while we waited for the lock

    local bindir=""
    if ! pg_existing_base >/dev/null && ! bindir=$(pg_bindir ""); then
        write_no_main_cluster_conf
        apt_install postgresql
        bindir=$(pg_bindir "") || die "apt-get installed postgresql but initdb is still not found"
        rc=0; pg_wait_settled || rc=$?
        if [ "$rc" -eq 0 ]; then
            say "PostgreSQL: a server started by the package install now answers at $(hostport "$PG_HOST" "$PG_PORT")"
            return 0
        fi
    fi

    local base data owner log listen sockdir conf version
    if base=$(pg_existing_base); then
        data=$base/data
        version=$(cat "$data/PG_VERSION")
        bindir=$(pg_bindir "$version") ||
            die "cluster $data needs PostgreSQL $version server binaries (apt-get install postgresql-$version), or delete $base to start afresh"
        owner=$(stat -c %U "$data")
    else
        ensure_local_dir
        if [ "$EUID" -eq 0 ]; then ensure_postgres_user; fi
        base=$(pg_new_base)
        data=$base/data
        owner=$ME
        if [ "$EUID" -eq 0 ]; then owner=postgres; fi
        mkdir -p "$base"
        if [ "$owner" != "$ME" ]; then chown "$owner": "$base"; fi
        chmod 700 "$base"
        case $base in "$FALLBACK_DIR"/*)
            say "PostgreSQL: user postgres cannot reach $LOCAL_DIR, so the cluster goes in $base instead" ;;
        esac
        local locale_opt=--locale=C
        if locale -a 2>/dev/null | grep -ix 'c\.utf-\?8' >/dev/null; then locale_opt=--locale=C.UTF-8; fi
        say "PostgreSQL: creating project-local cluster in $data (superuser $PG_USER, trust auth)"
        log=$(new_tmp)
        if ! as_user "$owner" "$bindir/initdb" -D "$data" -U "$PG_USER" --auth-local=trust \
            --auth-host=trust -E UTF8 "$locale_opt" >"$log" 2>&1 9>&-; then
            show_tail "$log"
            die "initdb failed (output above)"
        fi
        printf "\n# Settings managed by scripts/ensure-services.sh\ninclude_if_exists = 'cafeflow.conf'\n" >>"$data/postgresql.conf"
    fi

    # Listen address, port and socket directory follow the current URL on every start.
    listen=$(listen_addr "$PG_HOST")
    sockdir=$base
    if [ $(( ${#sockdir} + 20 )) -gt 100 ]; then sockdir=""; fi   # too long for a Unix socket path: TCP only
    conf=$data/cafeflow.conf
    cat >"$conf" <<EOF
# Written by scripts/ensure-services.sh on every start; edit DATABASE_URL instead.
listen_addresses = '$listen'
port = $PG_PORT
unix_socket_directories = '${sockdir//\'/\'\'}'
EOF
    if [ "$owner" != "$ME" ]; then chown "$owner": "$conf"; fi

    log=$(new_tmp)
    local action=start
    if as_user "$owner" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        action=restart   # ours, but not answering at the URL's port: the port changed
        say "PostgreSQL: restarting project-local server so it listens on $(hostport "$listen" "$PG_PORT")"
    else
        say "PostgreSQL: starting project-local server on $(hostport "$listen" "$PG_PORT") (data $data)"
    fi
    if ! as_user "$owner" "$bindir/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 -m fast "$action" \
        >"$log" 2>&1 9>&-; then
        show_tail "$log" 5
        show_tail "$base/server.log"
        die "could not start PostgreSQL (log: $base/server.log)"
    fi
    if ! wait_for 100 pg_answers; then
        show_tail "$base/server.log"
        die "project-local PostgreSQL started but does not answer at $(hostport "$PG_HOST" "$PG_PORT") (log: $base/server.log)"
    fi
    PG_STARTED=1
}

# Debian's postgresql package otherwise creates and (with systemd) starts a "main" cluster on
# port 5432 with password auth, which would shadow the project-local trust-auth cluster.
write_no_main_cluster_conf() {
    local d=/etc/postgresql-common/createcluster.d
    if [ -e "$d/cafeflow.conf" ] || compgen -G '/etc/postgresql/*/*/postgresql.conf' >/dev/null; then return 0; fi
    say "PostgreSQL: telling the Debian package not to create its own 'main' cluster ($d/cafeflow.conf)"
    as_root mkdir -p "$d"
    printf '# Written by cafeflow scripts/ensure-services.sh: it runs its own project-local cluster.\ncreate_main_cluster = false\n' |
        as_root tee "$d/cafeflow.conf" >/dev/null
}

PSQL=""
pg_psql() {   # pg_psql DBNAME [psql args...], SQL on stdin
    local db=$1; shift
    PGPASSWORD=${PG_PASSWORD:-${PGPASSWORD:-}} PGCONNECT_TIMEOUT=5 \
        "$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" "$@"
}

# Sets PG_DB_STATE to "exists" or "created".
pg_ensure_db() {
    if ! PSQL=$(find_pg_bin psql); then
        apt_install postgresql-client
        PSQL=$(find_pg_bin psql) || die "psql not found even after installing postgresql-client"
    fi
    local err maint="" found="" m
    err=$(new_tmp)
    for m in postgres template1; do
        if found=$(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'db';" |
            pg_psql "$m" -v db="$PG_DB" 2>"$err"); then
            maint=$m
            break
        fi
    done
    if [ -z "$maint" ]; then
        show_tail "$err" 5
        die "PostgreSQL answers at $(hostport "$PG_HOST" "$PG_PORT") but user $PG_USER cannot connect (check the user/password in DATABASE_URL)"
    fi
    if [ "$found" = 1 ]; then PG_DB_STATE=exists; return 0; fi
    if printf '%s\n' 'CREATE DATABASE :"db";' | pg_psql "$maint" -v db="$PG_DB" 2>"$err"; then
        PG_DB_STATE=created
        return 0
    fi
    # A concurrent run may have created it in the meantime.
    found=$(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'db';" | pg_psql "$maint" -v db="$PG_DB" 2>/dev/null || true)
    if [ "$found" = 1 ]; then PG_DB_STATE=exists; return 0; fi
    show_tail "$err" 5
    die "could not create database \"$PG_DB\" as user $PG_USER at $(hostport "$PG_HOST" "$PG_PORT")"
}

PG_STARTED=0
ensure_postgres() {
    local rc=0 where
    where=$(hostport "$PG_HOST" "$PG_PORT")
    pg_wait_settled || rc=$?
    if [ "$rc" -ne 0 ]; then
        is_loopback "$PG_HOST" ||
            die "no PostgreSQL answers at $where and $PG_HOST is not a local address: start that server or fix DATABASE_URL"
        pg_start_local
    fi
    PG_DB_STATE=""
    pg_ensure_db
    local verb=using
    if [ "$PG_STARTED" -eq 1 ]; then verb=started; fi
    say "PostgreSQL: $verb $(pg_describe_server) at $where, database \"$PG_DB\" ($PG_DB_STATE)"
}

# ---------------------------------------------------------------------------- Redis
rcli() {   # redis-cli with the URL's password (if any) and a time limit
    if [ -n "$REDIS_PASSWORD" ]; then
        REDISCLI_AUTH=$REDIS_PASSWORD timeout 5 redis-cli "$@"
    else
        env -u REDISCLI_AUTH timeout 5 redis-cli "$@"
    fi
}

redis_answers() {   # 0: PONG, 3: answers but refuses (e.g. auth), 2: nothing
    local out
    if [ "$REDIS_TLS" = 1 ]; then tcp_open "$REDIS_HOST" "$REDIS_PORT" || return 2; return 0; fi
    # With a password, the Python check below also verifies the AUTH reply (redis-cli ignores AUTH errors).
    if [ -z "$REDIS_PASSWORD" ] && command -v redis-cli >/dev/null 2>&1; then
        out=$(rcli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) || true
        out=${out//$'\r'/}
        if [ "$out" = PONG ]; then return 0; fi
        if [ -n "$out" ]; then REDIS_REPLY=$out; return 3; fi
        return 2
    fi
    local rc=0
    REDIS_REPLY=$(python3 - "$REDIS_HOST" "$REDIS_PORT" "$REDIS_PASSWORD" <<'PY'
import socket, sys
host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
try:
    s = socket.create_connection((host, port), timeout=2)
    payload, want = cmd("PING"), 1
    if password:
        payload, want = cmd("AUTH", password) + payload, 2
    s.sendall(payload)
    buf = b""
    while buf.count(b"\r\n") < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
except OSError:
    sys.exit(2)
lines = buf.decode(errors="replace").split("\r\n")
if len(lines) > want - 1 and lines[want - 1] == "+PONG" and all(not l.startswith("-") for l in lines[:want]):
    sys.exit(0)
print(next((l for l in lines if l.startswith("-")), lines[0] if lines else "")[:200])
sys.exit(3 if buf else 2)
PY
    ) || rc=$?
    return "$rc"
}
redis_ok() { redis_answers; }

redis_our_pid() {   # the live redis-server recorded in our pidfile whose cwd is $REDIS_DIR
    local pid
    [ -f "$REDIS_DIR/redis.pid" ] || return 1
    pid=$(tr -dc 0-9 <"$REDIS_DIR/redis.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$REDIS_DIR" ] || return 1
    echo "$pid"
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

redis_stop_pid() {   # redis_stop_pid PID: SHUTDOWN NOSAVE through the recorded port, SIGTERM otherwise
    local pid=$1 addr="" port="" rpid="" asked=0
    if [ -f "$REDIS_DIR/redis.addr" ]; then read -r addr port <"$REDIS_DIR/redis.addr" || true; fi
    if [ -n "$port" ] && command -v redis-cli >/dev/null 2>&1; then
        rpid=$(rcli -h "$addr" -p "$port" info server 2>/dev/null |
            tr -d '\r' | sed -n 's/^process_id://p' || true)
        if [ "$rpid" = "$pid" ]; then
            rcli -h "$addr" -p "$port" shutdown nosave >/dev/null 2>&1 || true
            asked=1
        fi
    fi
    if [ "$asked" -eq 1 ] && wait_for 50 pid_gone "$pid"; then return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 100 pid_gone "$pid" || die "Redis (pid $pid) did not stop"
}

redis_start_local() {
    take_lock
    local rc=0
    redis_answers || rc=$?
    [ "$rc" -eq 0 ] && return 0
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
        command -v redis-server >/dev/null 2>&1 || die "apt-get installed redis-server but it is still not on PATH"
        rc=0; redis_answers || rc=$?
        if [ "$rc" -eq 0 ]; then
            say "Redis: the server started by the package install now answers at $(hostport "$REDIS_HOST" "$REDIS_PORT")"
            return 0
        fi
    fi
    local pid listen log
    mkdir -p "$REDIS_DIR"
    if pid=$(redis_our_pid); then
        say "Redis: restarting project-local server (pid $pid) so it listens at $(hostport "$REDIS_HOST" "$REDIS_PORT")"
        redis_stop_pid "$pid"
    fi
    rm -f "$REDIS_DIR/redis.pid"
    listen=$(listen_addr "$REDIS_HOST")
    local args=(--daemonize yes --bind "$listen" --port "$REDIS_PORT" --dir "$REDIS_DIR" --save ""
        --appendonly no --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid")
    if [ -n "$REDIS_PASSWORD" ]; then args+=(--requirepass "$REDIS_PASSWORD"); fi
    say "Redis: starting project-local server on $(hostport "$listen" "$REDIS_PORT") (dir $REDIS_DIR)"
    printf '%s %s\n' "$listen" "$REDIS_PORT" >"$REDIS_DIR/redis.addr"
    log=$(new_tmp)
    if ! (cd "$REDIS_DIR" && redis-server "${args[@]}") >"$log" 2>&1 9>&-; then
        show_tail "$log"
        die "redis-server failed to start"
    fi
    if ! wait_for 100 redis_ok; then
        show_tail "$log" 5
        show_tail "$REDIS_DIR/redis.log"
        die "project-local Redis does not answer at $(hostport "$REDIS_HOST" "$REDIS_PORT") (log: $REDIS_DIR/redis.log)"
    fi
    REDIS_STARTED=1
}

REDIS_STARTED=0
ensure_redis() {
    local rc=0 where desc="existing Redis" verb=using pid addr port
    REDIS_REPLY=""
    where=$(hostport "$REDIS_HOST" "$REDIS_PORT")
    redis_answers || rc=$?
    if [ "$rc" -eq 3 ]; then
        die "Redis at $where answers but refuses PING ($REDIS_REPLY): check the password in REDIS_URL"
    fi
    if [ "$rc" -ne 0 ]; then
        is_loopback "$REDIS_HOST" ||
            die "no Redis answers at $where and $REDIS_HOST is not a local address: start that server or fix REDIS_URL"
        [ "$REDIS_TLS" = 0 ] || die "no Redis answers at $where; a local server is only started for redis:// URLs, not rediss://"
        redis_start_local
    fi
    if [ "$REDIS_STARTED" -eq 1 ]; then verb=started; fi
    if pid=$(redis_our_pid) && [ -f "$REDIS_DIR/redis.addr" ] && read -r addr port <"$REDIS_DIR/redis.addr" && [ "$port" = "$REDIS_PORT" ]; then
        desc="project-local Redis (pid $pid, dir $REDIS_DIR)"
    fi
    say "Redis: $verb $desc at $where"
}

# ---------------------------------------------------------------------------- stop
stop_postgres() {
    local base data owner bindir
    if ! base=$(pg_existing_base); then say "PostgreSQL: no project-local cluster to stop"; return 0; fi
    data=$base/data
    owner=$(stat -c %U "$data")
    bindir=$(pg_bindir "$(cat "$data/PG_VERSION")") || die "pg_ctl for cluster $data not found"
    if as_user "$owner" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_user "$owner" "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 9>&- ||
            die "pg_ctl stop failed for $data (log: $base/server.log)"
        say "PostgreSQL: stopped project-local server (data $data)"
    else
        say "PostgreSQL: project-local server (data $data) is not running"
    fi
}

stop_redis() {
    local pid
    if pid=$(redis_our_pid); then
        redis_stop_pid "$pid"
        rm -f "$REDIS_DIR/redis.pid"
        say "Redis: stopped project-local server (pid $pid)"
    else
        if [ -f "$REDIS_DIR/redis.pid" ]; then rm -f "$REDIS_DIR/redis.pid"; fi
        say "Redis: no project-local server running"
    fi
}

# ---------------------------------------------------------------------------- main
case ${1:-start} in
    start | up | "")
        parse_urls
        ensure_postgres
        ensure_redis
        ;;
    stop | down)
        parse_urls
        stop_postgres
        stop_redis
        ;;
    -h | --help | help)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$1' (usage: $0 [start|stop])"
        ;;
esac
