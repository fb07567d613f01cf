#!/usr/bin/env bash
# The README's test command: install, build, run the whole test suite (real TLS over loopback,
# real SQLite files, a throwaway PostgreSQL cluster started for the run, certificates made by the
# tests), then the same suite again in a second build under AddressSanitizer +
# UndefinedBehaviorSanitizer (CMake preset "asan", build-asan/). Fails when PostgreSQL cannot be
# started: the PostgreSQL store's tests are never skipped. MXGW_SANITIZERS=0 skips the sanitizer
# run (quicker local iterations; CI always runs it). Extra arguments go to both ctest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export MXGW_JOBS="$(nproc)"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
# shellcheck disable=SC2016 # expanded by the inner shell
exec scripts/pg_test_cluster.sh bash -c '
  set -euo pipefail
  ctest --test-dir build --output-on-failure -j "$MXGW_JOBS" "$@"
  if [ "${MXGW_SANITIZERS:-1}" != "0" ]; then
    echo "test: the same suite under ASan + UBSan (build-asan/)"
    cmake --preset asan > /dev/null
    cmake --build build-asan -j "$MXGW_JOBS"
    # Leaks, overflows and undefined behaviour all fail the test that caused them. A test that
    # fails once and passes on its second run is retried (and named in the output) rather than
    # failing the whole run: the sanitizer build is several times slower, and a rare
    # timing-dependent report is recorded in docs/security.md instead.
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      ctest --test-dir build-asan --output-on-failure -j "$MXGW_JOBS" --repeat until-pass:2 "$@"
  fi
' mxgw-test "$@"
