#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests and prints its URL.
#
#   export WAMETER_TEST_POSTGRES="$(scripts/postgres-for-tests.sh)"
#
# Installs PostgreSQL from Debian when it is missing. The cluster lives in a
# temporary directory, listens on 127.0.0.1 only, trusts local connections
# and is never the machine's own cluster. Stop it with
# `pg_ctl -D "$dir" stop` (the directory is printed on stderr).
set -euo pipefail

# The port asked for, else the first free one from 55432 (another cluster,
# say an earlier run's, may hold one).
port="${WAMETER_TEST_POSTGRES_PORT:-}"
if [ -z "$port" ]; then
  for candidate in $(seq 55432 55499); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port="$candidate"; break; fi
  done
  [ -n "$port" ] || { echo "no free port in 55432-55499" >&2; exit 1; }
fi
bin=""
for candidate in /usr/lib/postgresql/*/bin; do
  [ -x "$candidate/initdb" ] && bin="$candidate"
done
if [ -z "$bin" ]; then
  echo "installing PostgreSQL…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bin="$candidate"
  done
fi
[ -n "$bin" ] || { echo "no initdb found" >&2; exit 1; }

dir="$(mktemp -d /tmp/wameter-pg.XXXXXX)"
# initdb refuses to run as root; run the cluster as the postgres user then.
as_owner=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system postgres
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start >/dev/null
echo "PostgreSQL test cluster in $dir on port $port" >&2
echo "postgres://postgres@127.0.0.1:$port/postgres"
