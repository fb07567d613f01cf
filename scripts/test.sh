#!/usr/bin/env bash
# The README's test command: install, build, run the whole test suite (real TLS over loopback,
# real SQLite files, a throwaway PostgreSQL cluster started for the run, certificates made by the
# tests). Fails when PostgreSQL cannot be started: the PostgreSQL store's tests are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/pg_test_cluster.sh ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
