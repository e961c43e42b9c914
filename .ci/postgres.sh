#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests and benches.
#
#   .ci/postgres.sh start   # install Debian's postgresql if missing, start it on 127.0.0.1, print the URI
#   .ci/postgres.sh stop    # stop it and delete its data
#   .ci/postgres.sh uri     # print the URI of the running server
#
# After `start`, "$STATE/env" holds `export AGENT_TOKRED_POSTGRES_URI=...` (source it) and
# "$STATE/uri" the bare URI; "$STATE/pgvector" says whether the vector extension could be created
# (Debian's packages here have no pgvector; the store then searches vectors in Python anyway).
# STATE is $AGENT_TOKRED_PG_DIR or ${TMPDIR:-/tmp}/agent-tokred-pg.
set -euo pipefail

STATE="${AGENT_TOKRED_PG_DIR:-${TMPDIR:-/tmp}/agent-tokred-pg}"
DB="${AGENT_TOKRED_PG_DB:-tokred}"

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

as_pg() {
  # PostgreSQL refuses to run as root: run its programs as the `postgres` user when we are root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_if_missing() {
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
  local bin port uri
  bin="$(pg_bin)"
  rm -rf "$STATE"
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
  as_pg "$bin/initdb" -D "$STATE/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log"
  port="$(free_port)"
  as_pg "$bin/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $STATE -c fsync=off -c full_page_writes=off" start >/dev/null
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
  if as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -qtAc "CREATE EXTENSION IF NOT EXISTS vector" \
      >/dev/null 2>&1; then
    echo yes >"$STATE/pgvector"
  else
    echo no >"$STATE/pgvector"
  fi
  uri="postgresql://postgres@127.0.0.1:$port/$DB"
  echo "$uri" >"$STATE/uri"
  echo "export AGENT_TOKRED_POSTGRES_URI=$uri" >"$STATE/env"
  echo "$uri"
}

stop() {
  local bin
  bin="$(pg_bin || true)"
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
