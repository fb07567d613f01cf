#!/usr/bin/env bash
# Installs what mxgw needs from Debian 12 packages (only what is missing) and builds it in build/.
# Called by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config  # toolchain and build cache
  libboost1.81-dev libboost-url1.81-dev                # Asio, Beast, URL
  libssl-dev                                           # OpenSSL 3: TLS and certificates
  rapidjson-dev                                        # JSON parsing and JSON Schema validation
  libsqlite3-dev                                       # the embedded store
  libpq-dev                                            # the PostgreSQL store (libpq)
  postgresql                                           # server for the tests' throwaway cluster
  libspdlog-dev libfmt-dev                             # log sink
  libcli11-dev                                         # command line
  libxml2-dev                                          # LA-MPS XML adapter
  libicu-dev                                           # names: NFC, ICAO Latin, Khmer/Lao rules
  libpcre2-dev                                         # schema patterns (JIT-compiled)
  libgtest-dev libgmock-dev                            # tests
  libbenchmark-dev                                     # adapter benchmark (bench/, docs/performance.md)
  sslscan                                              # TLS profile check (tests/tls)
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  # The postgresql package may create (and, under systemd, start) a default cluster; nothing of
  # mxgw uses it: the tests start their own (scripts/pg_test_cluster.sh).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ccache: paths under the checkout are hashed relative to it, so another clone on this machine
# (a CI run, a second work tree) reuses what this one compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"

build_type="${MXGW_BUILD_TYPE:-RelWithDebInfo}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DMXGW_WERROR=ON > /dev/null
cmake --build build -j "$(nproc)"
