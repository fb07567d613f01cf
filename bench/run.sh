#!/usr/bin/env bash
# The benchmark (docs/performance.md): mxgw against nginx on the same machine, cores and
# certificates, in one run. Installs nginx if missing, builds mxgw and the bench tools, makes
# certificates in a temporary directory, then measures with build/mxgw-loadgen:
#   nginx (i) mTLS terminator answering a fixed small JSON body, (ii) mTLS reverse proxy to an
#   mTLS upstream (mxgw partner-sim), handshakes/s and memory per idle connection;
#   mxgw (a) canonical accept, durable, (b) KH-CNP inbound, (c) end to end delivered/s to the same
#   partner-sim, (d) handshakes/s, (e) memory per idle TLS connection, (f) adapter conversion
#   (Google Benchmark); and (a) and (c) again on the PostgreSQL store (a throwaway cluster started
#   by scripts/pg_test_cluster.sh, its server processes on the server core beside mxgw).
# Servers are pinned to one core, the load (and the stand-in partner) to another; every figure is
# the median of several repetitions. Everything binds 127.0.0.1 only and is stopped on exit.
#
# Settings (environment): BENCH_REPS (3), BENCH_SECONDS per repetition (6), BENCH_CONNECTIONS
# (64), BENCH_HANDSHAKE_CONNECTIONS (16), BENCH_IDLE (10000), BENCH_SERVER_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_PORT_BASE (18400), BENCH_OUT (var/bench: results are kept there),
# BENCH_POSTGRES (1; 0 leaves out the PostgreSQL store's scenarios), BENCH_PROFILE (0; 1 samples
# the servers with `perf record` during the first repetition of each figure, and keeps the data
# and a flat report beside the raw results).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# With the PostgreSQL scenarios, the whole run happens inside a throwaway cluster (its server
# processes are moved to the server core before they are measured).
if [ "${BENCH_POSTGRES:-1}" != "0" ] && [ -z "${MXGW_TEST_PG_DSN:-}" ]; then
  exec scripts/pg_test_cluster.sh "$0" "$@"
fi
postgres=${BENCH_POSTGRES:-1}

reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-6}
conns=${BENCH_CONNECTIONS:-64}
hs_conns=${BENCH_HANDSHAKE_CONNECTIONS:-16}
idle_conns=${BENCH_IDLE:-10000}
server_cpu=${BENCH_SERVER_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
base=${BENCH_PORT_BASE:-18400}
out=${BENCH_OUT:-var/bench}
profile=${BENCH_PROFILE:-0}
if [ "$profile" != "0" ] && ! command -v perf > /dev/null; then
  echo "bench: BENCH_PROFILE needs perf (Debian linux-perf)" >&2
  exit 1
fi

port_fixed=$((base + 1))  # nginx: fixed response
port_proxy=$((base + 2))  # nginx: reverse proxy to the partner-sim
port_mxgw=$((base + 3))   # mxgw
port_sim=$((base + 4))    # partner-sim (upstream of the proxy, recipient of mxgw's deliveries)

# --- Packages: nginx for the comparison (bench only, not in scripts/setup.sh) -------------------
bench_packages=(nginx)
missing=()
for package in "${bench_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  # The Debian package would start a system-wide nginx on port 80; policy-rc.d may stop that,
  # and we never use it: our nginx runs from its own configuration below.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# --- Build ------------------------------------------------------------------------------------
if [ ! -f build/build.ninja ]; then
  scripts/setup.sh
fi
cmake --build build --target mxgw mxgw-loadgen mxgw-adapters-bench > /dev/null
mxgw=$root/build/mxgw
loadgen=$root/build/mxgw-loadgen

# --- Temporary directory, certificates, process bookkeeping -----------------------------------
tmp=$(mktemp -d /tmp/mxgw-bench.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((idle_conns + 1000)) ]; then
  echo "bench: ulimit -n is $(ulimit -n); (e) needs more than $idle_conns" >&2
  exit 1
fi

# Certificates, the data key and the request bodies ($tmp/canonical.json, $tmp/kh-cnp.json).
# shellcheck source=bench/inputs.sh
. bench/inputs.sh
bench_inputs "$mxgw" "$tmp"
certs=$tmp/certs

fixed_body='{"id":"c41e6f0b-52a9-4d7e-b3c8-2f9a7e1d5c60","status":"accepted","acceptedAt":"2026-11-23T13:05:42.123Z"}'

# --- Helpers ----------------------------------------------------------------------------------
# Only with `&` or inside $(...): exec makes $! the pid of the program itself, not of a subshell.
on_server() { exec taskset -c "$server_cpu" "$@"; }
on_load() { exec taskset -c "$load_cpu" "$@"; }

# cpu_ticks PID...: user+system clock ticks of the processes (all their threads).
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# json_num, median, client and wait_https: bench/inputs.sh.

results=$tmp/results
mkdir -p "$results"
# profile_start NAME REP PIDS...: with BENCH_PROFILE, records those processes (all their threads)
# for the measured seconds of the first repetition; profile_end writes the flat report.
profile_pid=
profile_start() {
  local name=$1 rep=$2
  shift 2
  profile_pid=
  if [ "$profile" = "0" ] || [ "$rep" != 1 ]; then
    return 0
  fi
  (sleep 1; exec perf record -q -F 499 -p "$(echo "$@" | tr ' ' ',')"     -o "$results/$name.perf.data" -- sleep $((seconds - 1))) > /dev/null 2>&1 &
  profile_pid=$!
}
profile_end() {  # profile_end NAME
  if [ -z "$profile_pid" ]; then
    return 0
  fi
  wait "$profile_pid" 2> /dev/null || true
  perf report -q -i "$results/$1.perf.data" --stdio --percent-limit 0.5 \
    --sort dso,symbol > "$results/$1.perf.txt" 2> /dev/null || true
  profile_pid=
}
# measure NAME SERVER_PIDS -- LOADGEN_ARGS...: BENCH_REPS runs; keeps each run's JSON (with the
# servers' CPU use added) in $results/NAME.N.json.
measure() {
  local name=$1 server_pids=$2 rep
  shift 3
  for rep in $(seq 1 "$reps"); do
    local before after json
    before=$(cpu_ticks $server_pids)
    profile_start "$name" "$rep" $server_pids
    json=$(on_load "$loadgen" --duration "$seconds" --warmup 1 --json "$@" 2> "$results/$name.$rep.log")
    profile_end "$name"
    after=$(cpu_ticks $server_pids)
    local cpu_pct=$(((after - before) * 100 / $(getconf CLK_TCK) * 100 / (seconds * 100)))
    echo "${json%\}},\"server_cpu_pct\":$cpu_pct}" > "$results/$name.$rep.json"
    printf '  %-22s run %d: %8.0f ok/s  p99 %7.2f ms  server CPU %3d%%  %s\n' "$name" "$rep" \
      "$(json_num rps < "$results/$name.$rep.json")" \
      "$(grep -o '"p99":[0-9.]*' "$results/$name.$rep.json" | cut -d: -f2)" "$cpu_pct" \
      "$(grep -o '"errors":{[^}]*}' "$results/$name.$rep.json")"
  done
}
med() {  # med NAME FIELD: the median of FIELD over the repetitions of NAME, rounded
  local f
  for f in "$results/$1".*.json; do json_num "$2" < "$f"; done | median | awk '{printf "%.0f", $1}'
}
# med_eff NAME FIELD: the median of FIELD per second of server CPU (FIELD / server CPU share):
# what the server gets done per core-second, which stays comparable when the load generator, not
# the server, is what limits the rate (a busy machine, or handshakes that cost the client as
# much as the server).
med_eff() {
  local f
  for f in "$results/$1".*.json; do
    awk -v v="$(json_num "$2" < "$f")" -v c="$(json_num server_cpu_pct < "$f")" \
      'BEGIN {if (c > 0) printf "%.0f\n", v * 100 / c; else print 0}'
  done | median
}
med_p99() {
  local f
  for f in "$results/$1".*.json; do grep -o '"p99":[0-9.]*' "$f" | cut -d: -f2; done | median |
    awk '{printf "%.1f", $1}'
}

# --- nginx ------------------------------------------------------------------------------------
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<EOF
# One worker on the server core; TLS 1.3 with mutual TLS and the same certificates as mxgw;
# no session tickets, no session cache: every connection is a full handshake.
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  ssl_protocols TLSv1.3;
  ssl_ecdh_curve X25519:prime256v1:secp384r1;
  ssl_session_tickets off;
  ssl_session_cache off;
  ssl_certificate $certs/server.pem;
  ssl_certificate_key $certs/server.key;
  ssl_client_certificate $certs/ca.pem;
  ssl_crl $certs/crl.pem;
  ssl_verify_client on;
  ssl_verify_depth 4;

  server {  # (i) mTLS terminator answering a fixed small JSON body
    listen 127.0.0.1:$port_fixed ssl;
    location / {
      default_type application/json;
      return 202 '$fixed_body';
    }
  }

  upstream partner_sim {
    server 127.0.0.1:$port_sim;
    keepalive 64;
  }
  server {  # (ii) mTLS reverse proxy to an mTLS upstream (the same partner-sim mxgw delivers to)
    listen 127.0.0.1:$port_proxy ssl;
    location / {
      proxy_pass https://partner_sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate $certs/server.pem;
      proxy_ssl_certificate_key $certs/server.key;
      proxy_ssl_trusted_certificate $certs/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse off;
    }
  }
}
EOF
# The CRL: mxgw certs init writes one (empty); nginx refuses a missing file.
test -f "$certs/crl.pem"

start_sim() {  # a fresh partner-sim on the load core (so its counters start at zero)
  on_load "$mxgw" partner-sim --listen "127.0.0.1:$port_sim" --format mx \
    --cert "$certs/server.pem" --key "$certs/server.key" --ca "$certs/ca.pem" \
    > /dev/null 2> "$tmp/sim.log" &
  sim_pid=$!
  pids+=("$sim_pid")
  wait_https "https://localhost:$port_sim/sim/stats" vn-gialai
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

echo "bench: $(nproc) cores, server on core $server_cpu, load on core $load_cpu; $reps x ${seconds}s per figure"
echo "bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///')"
start_sim
on_server "$nginx_bin" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_https "https://localhost:$port_fixed/" vn-gialai
nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"

measure nginx-fixed "$nginx_pids" -- --url "https://localhost:$port_fixed/v1/messages" \
  $(client vn-gialai) --connections "$conns" --body "$tmp/canonical.json"
measure nginx-proxy "$nginx_pids" -- --url "https://localhost:$port_proxy/v1/messages" \
  $(client vn-gialai) --connections "$conns" --body "$tmp/canonical.json"
measure nginx-handshake "$nginx_pids" -- --url "https://localhost:$port_fixed/" \
  $(client vn-gialai) --method GET --connections "$hs_conns" --new-connection

# idle_rss NAME PID URL: resident size before and with BENCH_IDLE idle TLS connections.
idle_rss() {
  local name=$1 pid=$2 url=$3 rss0 rss1 ready=$tmp/ready.$1 open i
  rm -f "$ready"
  rss0=$(rss_kib "$pid")
  on_load "$loadgen" --url "$url" $(client vn-gialai) --method GET --idle \
    --connections "$idle_conns" --duration 120 --ready-file "$ready" --json \
    > "$results/$name.json" 2> "$results/$name.log" &
  local lg=$!
  for i in $(seq 1 1100); do
    [ -f "$ready" ] && break
    sleep 0.1
  done
  sleep 1  # let the server settle (freed handshake buffers) before reading its size
  rss1=$(rss_kib "$pid")
  open=$(cat "$ready" 2>/dev/null || echo 0)
  kill -TERM "$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  echo "{\"rss0_kib\":$rss0,\"rss1_kib\":$rss1,\"open\":${open:-0}}" > "$results/$name.rss.json"
  printf '  %-22s %d idle connections: RSS %d -> %d KiB\n' "$name" "${open:-0}" "$rss0" "$rss1"
}
nginx_worker=$(pgrep -P "$nginx_pid" | head -n 1)
idle_rss nginx-idle "$nginx_worker" "https://localhost:$port_fixed/"
stop_pid "$nginx_pid"
stop_pid "$sim_pid"

# --- mxgw -------------------------------------------------------------------------------------
# gateway_config (bench/inputs.sh) writes each scenario's configuration.
start_mxgw() {  # start_mxgw DIR
  on_server "$mxgw" serve --config "$1/gateway.json" 2> "$1/gateway.log" &
  mxgw_pid=$!
  pids+=("$mxgw_pid")
  wait_https "https://localhost:$port_mxgw/healthz" vn-gialai
}

echo "== mxgw $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
gateway_config "$tmp/accept" false 1024
start_mxgw "$tmp/accept"
measure mxgw-a-accept "$mxgw_pid" -- --url "https://localhost:$port_mxgw/v1/messages" \
  $(client vn-gialai) --connections "$conns" --body "$tmp/canonical.json"
measure mxgw-b-kh-cnp "$mxgw_pid" -- --url "https://localhost:$port_mxgw/v1/inbound/kh-cnp" \
  $(client kh-stungtreng) --connections "$conns" --body "$tmp/kh-cnp.json"
measure mxgw-d-handshake "$mxgw_pid" -- --url "https://localhost:$port_mxgw/healthz" \
  $(client vn-gialai) --method GET --connections "$hs_conns" --new-connection
stop_pid "$mxgw_pid"

# (c) end to end: accepted and delivered to the partner-sim over mTLS; delivered/s is read from
# the sim's own counters over the measured window.
gateway_config "$tmp/e2e-dir" true 1024
sim_stats() {
  "$mxgw" send --method GET --url "https://localhost:$port_sim/sim/stats" $(client vn-gialai) \
    2> /dev/null | grep -o '"uniqueIds":[0-9]*' | cut -d: -f2
}
# end_to_end NAME DIR: accept at full load and count what the partner-sim receives per second.
end_to_end() {
  local name=$1 dir=$2 rep before after lg t0 t1 d0 d1 delivered cpu_pct
  for rep in $(seq 1 "$reps"); do
    rm -rf "$dir/var"  # each repetition starts from an empty store
    if [ -f "$dir/pg-schema" ]; then
      psql -q "$MXGW_TEST_PG_DSN" -c "DROP SCHEMA IF EXISTS $(cat "$dir/pg-schema") CASCADE" \
        > /dev/null 2>&1
    fi
    start_sim
    start_mxgw "$dir"
    before=$(cpu_ticks "$mxgw_pid" $(database_pids))
    on_load "$loadgen" --duration "$seconds" --warmup 1 --json \
      --url "https://localhost:$port_mxgw/v1/messages" $(client vn-gialai) \
      --connections "$conns" --body "$tmp/canonical.json" \
      > "$results/$name-accepted.$rep.json" 2> "$results/$name-accepted.$rep.log" &
    lg=$!
    profile_start "$name" "$rep" "$mxgw_pid" $(database_pids)
    sleep 1
    t0=$(date +%s.%N); d0=$(sim_stats)
    sleep $((seconds - 2))
    t1=$(date +%s.%N); d1=$(sim_stats)
    wait "$lg" || true
    profile_end "$name"
    after=$(cpu_ticks "$mxgw_pid" $(database_pids))
    delivered=$(awk -v a="$d0" -v b="$d1" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.0f", (b - a) / (e - s)}')
    cpu_pct=$(((after - before) * 100 / $(getconf CLK_TCK) * 100 / (seconds * 100)))
    echo "{\"rps\":$delivered,\"server_cpu_pct\":$cpu_pct}" > "$results/$name-delivered.$rep.json"
    printf '  %-22s run %d: %8.0f delivered/s (%.0f accepted/s)  server CPU %3d%%\n' \
      "$name" "$rep" "$delivered" \
      "$(json_num rps < "$results/$name-accepted.$rep.json")" "$cpu_pct"
    stop_pid "$mxgw_pid"
    stop_pid "$sim_pid"
  done
}
# database_pids: the PostgreSQL server's processes while the PostgreSQL scenarios run (their CPU
# is the server's too); none otherwise.
database_pids() {
  if [ "${store_under_test:-sqlite}" = postgres ]; then
    pgrep -d ' ' -x postgres || true
  fi
}
end_to_end mxgw-c "$tmp/e2e-dir"

# (e) memory per idle TLS connection.
gateway_config "$tmp/idle" false $((idle_conns + 1000))
start_mxgw "$tmp/idle"
idle_rss mxgw-e-idle "$mxgw_pid" "https://localhost:$port_mxgw/healthz"
stop_pid "$mxgw_pid"

# (a) and (c) on the PostgreSQL store: the same load; the server's CPU share counts the
# database's processes too.
if [ "$postgres" != "0" ]; then
  echo "== mxgw on PostgreSQL ($MXGW_TEST_PG_DSN)"
  store_under_test=postgres
  # The database is part of the server: its processes (and the backends they fork later) go to
  # the server core.
  for pid in $(pgrep -x postgres); do
    taskset -a -p -c "$server_cpu" "$pid" > /dev/null
  done
  gateway_config "$tmp/pg-accept" false 1024 postgres
  start_mxgw "$tmp/pg-accept"
  measure mxgw-a-accept-pg "$mxgw_pid $(database_pids)" -- \
    --url "https://localhost:$port_mxgw/v1/messages" $(client vn-gialai) \
    --connections "$conns" --body "$tmp/canonical.json"
  stop_pid "$mxgw_pid"
  gateway_config "$tmp/pg-e2e" true 1024 postgres
  end_to_end mxgw-c-pg "$tmp/pg-e2e"
  store_under_test=sqlite
fi

# (f) the KH-CNP adapter's conversion alone, on the server core.
echo "== (f) adapter conversion (Google Benchmark, core $server_cpu)"
taskset -c "$server_cpu" build/mxgw-adapters-bench --benchmark_filter='kh_cnp_decode/' \
  --benchmark_repetitions=$((reps < 3 ? 3 : reps)) --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "$results/adapters.json" 2> /dev/null
kh_decode=$(awk '/"name": "kh_cnp_decode\/victim_referral_median"/ {found = 1}
  found && /"items_per_second"/ {gsub(/,/, "", $2); printf "%.0f", $2; exit}' "$results/adapters.json")
echo "  kh_cnp_decode/victim_referral median: $kh_decode messages/s"

# --- The table --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN {ok = (dir == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED"}'; }
per_conn() {  # per_conn NAME: KiB per idle connection
  local f=$results/$1.rss.json
  awk -v r0="$(json_num rss0_kib < "$f")" -v r1="$(json_num rss1_kib < "$f")" \
    -v n="$(json_num open < "$f")" 'BEGIN {if (n > 0) printf "%.1f", (r1 - r0) / n; else print 0}'
}

nginx_fixed=$(med nginx-fixed rps)
nginx_proxy=$(med nginx-proxy rps)
nginx_hs=$(med nginx-handshake handshakes_per_s)
a=$(med mxgw-a-accept rps)
a_p99=$(med_p99 mxgw-a-accept)
b=$(med mxgw-b-kh-cnp rps)
c=$(med mxgw-c-delivered rps)
if [ "$postgres" != "0" ]; then
  a_pg=$(med mxgw-a-accept-pg rps)
  a_pg_p99=$(med_p99 mxgw-a-accept-pg)
  c_pg=$(med mxgw-c-pg-delivered rps)
fi
d=$(med mxgw-d-handshake handshakes_per_s)
e=$(per_conn mxgw-e-idle)
e_nginx=$(per_conn nginx-idle)

mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
table=$out/results-$stamp.md
{
  echo "mxgw benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$reps x ${seconds}s per figure (median), $conns connections (handshakes: $hs_conns), server on core $server_cpu, load on core $load_cpu"
  echo
  echo "| scenario | mxgw | nginx | ratio | target | |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| (a) durable accept, $conns conns (req/s) | $a | $nginx_fixed (fixed response) | $(ratio "$a" "$nginx_fixed") | >= 0.25 | $(verdict "$(ratio "$a" "$nginx_fixed")" 0.25 '>=') |"
  echo "| (a) p99 latency (ms) | $a_p99 | $(med_p99 nginx-fixed) | | <= 5 | $(verdict "$a_p99" 5 '<=') |"
  echo "| (b) KH-CNP decode + translate + durable accept (req/s) | $b | $nginx_fixed (fixed response) | $(ratio "$b" "$nginx_fixed") | >= 0.2 | $(verdict "$(ratio "$b" "$nginx_fixed")" 0.2 '>=') |"
  echo "| (c) end to end, delivered/s | $c | $nginx_proxy (mTLS proxy) | $(ratio "$c" "$nginx_proxy") | >= 0.7 | $(verdict "$(ratio "$c" "$nginx_proxy")" 0.7 '>=') |"
  echo "| (d) full mTLS handshakes/s | $d | $nginx_hs | $(ratio "$d" "$nginx_hs") | >= 0.9 | $(verdict "$(ratio "$d" "$nginx_hs")" 0.9 '>=') |"
  echo "| (e) KiB per idle TLS connection ($idle_conns) | $e | $e_nginx | | <= 32 | $(verdict "$e" 32 '<=') |"
  echo "| (f) KH-CNP -> canonical, messages/s on one core | $kh_decode | | | >= 150000 | $(verdict "$kh_decode" 150000 '>=') |"
  if [ "$postgres" != "0" ]; then
    echo "| (a) on PostgreSQL, durable accept (req/s) | $a_pg | $nginx_fixed (fixed response) | $(ratio "$a_pg" "$nginx_fixed") | >= 0.25 | $(verdict "$(ratio "$a_pg" "$nginx_fixed")" 0.25 '>=') |"
    echo "| (a) on PostgreSQL, p99 latency (ms) | $a_pg_p99 | | | <= 5 | $(verdict "$a_pg_p99" 5 '<=') |"
    echo "| (c) on PostgreSQL, delivered/s | $c_pg | $nginx_proxy (mTLS proxy) | $(ratio "$c_pg" "$nginx_proxy") | >= 0.7 | $(verdict "$(ratio "$c_pg" "$nginx_proxy")" 0.7 '>=') |"
  fi
  echo
  echo "The same per second of server CPU (the rate divided by the server's CPU share; the fairer"
  echo "comparison when the load generator, not the server, limits the rate):"
  echo
  echo "| scenario | mxgw per CPU-s | nginx per CPU-s | ratio | target |"
  echo "|---|---:|---:|---:|---|"
  ea=$(med_eff mxgw-a-accept rps); eb=$(med_eff mxgw-b-kh-cnp rps); ec=$(med_eff mxgw-c-delivered rps)
  ed=$(med_eff mxgw-d-handshake handshakes_per_s); enf=$(med_eff nginx-fixed rps)
  enp=$(med_eff nginx-proxy rps); enh=$(med_eff nginx-handshake handshakes_per_s)
  echo "| (a) durable accept | $ea | $enf | $(ratio "$ea" "$enf") | >= 0.25 |"
  echo "| (b) KH-CNP inbound | $eb | $enf | $(ratio "$eb" "$enf") | >= 0.2 |"
  echo "| (c) end to end (nginx: proxy) | $ec | $enp | $(ratio "$ec" "$enp") | >= 0.7 |"
  echo "| (d) handshakes | $ed | $enh | $(ratio "$ed" "$enh") | >= 0.9 |"
  if [ "$postgres" != "0" ]; then
    eapg=$(med_eff mxgw-a-accept-pg rps); ecpg=$(med_eff mxgw-c-pg-delivered rps)
    echo "| (a) on PostgreSQL (mxgw + database CPU) | $eapg | $enf | $(ratio "$eapg" "$enf") | >= 0.25 |"
    echo "| (c) on PostgreSQL (mxgw + database CPU) | $ecpg | $enp | $(ratio "$ecpg" "$enp") | >= 0.7 |"
  fi
  echo
  echo "Server CPU use (median %): nginx fixed $(med nginx-fixed server_cpu_pct), proxy $(med nginx-proxy server_cpu_pct), handshakes $(med nginx-handshake server_cpu_pct); mxgw (a) $(med mxgw-a-accept server_cpu_pct), (b) $(med mxgw-b-kh-cnp server_cpu_pct), (c) $(med mxgw-c-delivered server_cpu_pct), (d) $(med mxgw-d-handshake server_cpu_pct)"
} > "$table"
mkdir -p "$out/raw-$stamp"
cp "$results"/* "$out/raw-$stamp/"
echo
cat "$table"
echo
echo "bench: table in $table, raw results in $out/raw-$stamp/"
