#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests and runs a command with MXGW_TEST_PG_DSN
# pointing at it: `scripts/pg_test_cluster.sh <command...>`. The cluster lives in a temporary
# directory, listens on 127.0.0.1 only (a free port, trust authentication for loopback only), is
# never registered with systemd or pg_ctlcluster, and is stopped and removed on every exit path.
# It fails (exit 1) when PostgreSQL cannot be started: the tests are never silently skipped.
set -euo pipefail

die() {
  echo "pg_test_cluster: $*" >&2
  exit 1
}

pg_bin=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
  pg_bin="$dir"  # the newest installed major version
done
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || die "no PostgreSQL server found (install the Debian package postgresql)"

# initdb refuses to run as root: as root, the cluster belongs to the unprivileged user nobody.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  as_owner=(runuser -u nobody --)
fi

cluster="$(mktemp -d "${TMPDIR:-/tmp}/mxgw-pg.XXXXXX")"
data="$cluster/data"
started=0
cleanup() {
  local rc=$?
  if [ "$started" -eq 1 ]; then
    "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate -w stop > /dev/null 2>&1 || true
  fi
  rm -rf "$cluster"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${#as_owner[@]}" -gt 0 ]; then
  chown nobody "$cluster"
fi
chmod 700 "$cluster"

"${as_owner[@]}" "$pg_bin/initdb" -D "$data" -U mxgw --auth=trust --no-sync -E UTF8 \
  --locale=C > "$cluster/initdb.log" 2>&1 || { cat "$cluster/initdb.log" >&2; die "initdb failed"; }
# Loopback only, trust only there; the Unix socket stays inside the cluster directory.
cat > "$data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA

# A free port: try a few random ones (pg_ctl fails at once when the port is taken).
port=""
for _ in 1 2 3 4 5 6 7 8; do
  candidate=$((20000 + RANDOM % 40000))
  if (exec 3<> "/dev/tcp/127.0.0.1/$candidate") 2> /dev/null; then
    continue  # someone listens there
  fi
  if "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$cluster/server.log" -w -t 60 \
       -o "-c listen_addresses=127.0.0.1 -p $candidate -k $cluster -c max_connections=200" \
       start > /dev/null 2>&1; then
    port="$candidate"
    started=1
    break
  fi
done
[ -n "$port" ] || { cat "$cluster/server.log" >&2 2>/dev/null || true; die "PostgreSQL did not start"; }

export MXGW_TEST_PG_DSN="host=127.0.0.1 port=$port user=mxgw dbname=postgres"
echo "pg_test_cluster: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
set +e
"$@"
rc=$?
set -e
exit "$rc"
