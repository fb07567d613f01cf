#!/usr/bin/env bash
# The README's test command: install, build, run the whole test suite (real TLS over loopback,
# real SQLite files, certificates made by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
