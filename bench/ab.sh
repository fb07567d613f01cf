#!/usr/bin/env bash
# Head to head: scenario (a) or (b) of bench/run.sh for two revisions of mxgw, runs alternating
# between them on the same machine, so that a change of a few per cent shows through the drift of
# a virtual machine's speed (docs/performance.md, "Re-running"). Each revision is built in a git
# worktree of its own (ccache makes the second build of a revision cheap); `.` is the working tree
# as it is, built in build/. Each run starts its gateway on a fresh store and measures accepts/s,
# the p99, and the server CPU per accepted message, in all and per thread (heaviest first: in
# (a) the event loop, the store's writer, the checkpointer).
#
#   bench/ab.sh REV_A REV_B            e.g. bench/ab.sh main~3 .
#
# Settings (environment): AB_SCENARIO (a; or b, KH-CNP inbound), AB_RUNS (3 per revision),
# AB_SECONDS (8 per run, the first not counted), BENCH_CONNECTIONS (64), BENCH_SERVER_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_PORT_BASE (18400). Binds 127.0.0.1 only; stops what it started and
# removes its worktrees and temporary directory on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ $# -ne 2 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
scenario=${AB_SCENARIO:-a}
runs=${AB_RUNS:-3}
seconds=${AB_SECONDS:-8}
conns=${BENCH_CONNECTIONS:-64}
server_cpu=${BENCH_SERVER_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
port_mxgw=$((${BENCH_PORT_BASE:-18400} + 3))
port_sim=$((port_mxgw + 1))  # named in the configuration; no partner-sim runs (delivery is off)
case "$scenario" in
  a | b) ;;
  *) echo "ab: AB_SCENARIO is a or b" >&2; exit 2 ;;
esac

if [ ! -f build/build.ninja ]; then
  scripts/setup.sh
fi
cmake --build build --target mxgw mxgw-loadgen > /dev/null
loadgen=$root/build/mxgw-loadgen
export CCACHE_NOHASHDIR=true

tmp=$(mktemp -d /tmp/mxgw-ab.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  git -C "$root" worktree prune  # forgets the worktrees that were under $tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tree_of REV: the source tree of a revision, built (`.`: this checkout as it is).
tree_of() {
  if [ "$1" = "." ]; then
    echo "$root"
    return
  fi
  local dir
  dir="$tmp/tree-$(git rev-parse --short "$1^{commit}")"
  if [ ! -d "$dir" ]; then
    git worktree add --detach "$dir" "$1" > /dev/null 2>&1
    (cd "$dir" && CCACHE_BASEDIR="$dir" cmake -S . -B build -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMXGW_BUILD_TESTS=OFF -DMXGW_BUILD_BENCH=OFF > /dev/null &&
      CCACHE_BASEDIR="$dir" cmake --build build --target mxgw > /dev/null)
  fi
  echo "$dir"
}
echo "ab: building $1 and $2"
tree_a=$(tree_of "$1")
tree_b=$(tree_of "$2")

# Certificates, the data key and the request bodies, as bench/run.sh makes them.
# shellcheck source=bench/inputs.sh
. bench/inputs.sh
bench_inputs "$root/build/mxgw" "$tmp"
certs=$tmp/certs
if [ "$scenario" = b ]; then
  path=/v1/inbound/kh-cnp partner=kh-stungtreng body=$tmp/kh-cnp.json
else
  path=/v1/messages partner=vn-gialai body=$tmp/canonical.json
fi

# thread_ticks PID: "tid ticks" per thread of the process.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
  done | sort
}
hz=$(getconf CLK_TCK)

# one_run LABEL TREE N: one measured run; appends "rps p99 cpu_us" to $tmp/LABEL.
one_run() {
  local label=$1 tree=$2 n=$3 dir=$tmp/run-$1-$3
  # bench/run.sh's (a) and (b): delivery off, with the revision's own schemas and code tables.
  mxgw=$tree/build/mxgw gateway_config "$dir" false 1024 sqlite "$tree"
  taskset -c "$server_cpu" "$tree/build/mxgw" serve --config "$dir/gateway.json" \
    2> "$dir/gateway.log" &
  server_pid=$!
  if ! mxgw=$root/build/mxgw wait_https "https://localhost:$port_mxgw/healthz" vn-gialai; then
    echo "ab: the end of $label's log:" >&2
    tail -n 5 "$dir/gateway.log" >&2
    exit 1
  fi
  # CPU is read over the measured seconds only: from the end of the warm-up second to the end.
  (sleep 1; thread_ticks "$server_pid" > "$dir/before") &
  local reader=$!
  local json
  json=$(taskset -c "$load_cpu" "$loadgen" --url "https://localhost:$port_mxgw$path" \
    --cert "$certs/$partner.pem" --key "$certs/$partner.key" --ca "$certs/ca.pem" \
    --connections "$conns" --duration "$seconds" --warmup 1 --json --body "$body" 2> /dev/null)
  wait "$reader"
  thread_ticks "$server_pid" > "$dir/after"
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  local ok rps p99 threads total
  ok=$(echo "$json" | json_num ok)
  rps=$(echo "$json" | json_num rps)
  p99=$(echo "$json" | json_num p99)
  # Per thread: microseconds of CPU per accepted message, heaviest first.
  threads=$(join "$dir/before" "$dir/after" |
    awk -v ok="$ok" -v hz="$hz" '{d = $3 - $2; if (d > 0 && ok > 0) printf "%.0f\n", d * 1e6 / hz / ok}' |
    sort -rn | head -n 4 | paste -sd/ -)
  total=$(join "$dir/before" "$dir/after" |
    awk -v ok="$ok" -v hz="$hz" '{d += $3 - $2} END {if (ok > 0) printf "%.0f", d * 1e6 / hz / ok; else print 0}')
  printf '  %-2s run %d: %8.0f accepts/s  p99 %6.2f ms  CPU %4s us/message (threads %s)\n' \
    "$label" "$n" "$rps" "$p99" "$total" "$threads"
  echo "$rps $p99 $total" >> "$tmp/$label"
}

echo "ab: scenario ($scenario), $runs x ${seconds}s per revision, alternating; server on core" \
  "$server_cpu, load on core $load_cpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  A = $1 ($(git -C "$tree_a" describe --always --dirty 2>/dev/null || echo '?'))"
echo "  B = $2 ($(git -C "$tree_b" describe --always --dirty 2>/dev/null || echo '?'))"
for n in $(seq 1 "$runs"); do
  one_run A "$tree_a" "$n"
  one_run B "$tree_b" "$n"
done
for label in A B; do
  printf '%s median: %.0f accepts/s, p99 %.2f ms, %.0f us of server CPU per accepted message\n' \
    "$label" "$(cut -d' ' -f1 "$tmp/$label" | median)" "$(cut -d' ' -f2 "$tmp/$label" | median)" \
    "$(cut -d' ' -f3 "$tmp/$label" | median)"
done
