// Scenario (f) of the benchmarks (docs/performance.md): the KH-CNP adapter's conversion alone,
// KH-CNP JSON -> canonical mx/1, with Google Benchmark; items/s is messages per second on one
// core. Also the canonical checks the gateway runs after decoding, and on a canonical message,
// to show where the CPU of scenarios (a) and (b) goes.
// Run: build/mxgw-adapters-bench [--benchmark_repetitions=5] (MXGW_SOURCE_DIR overrides where
// config/ and the golden files are read from).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "adapters/adapter.hpp"
#include "bench/bench_support.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"

namespace {

using namespace mxgw;
using bench::checker;
using bench::read_file;
using bench::source_dir;

std::string kh_golden(const char* name) {
  return read_file(source_dir() / "tests" / "adapters" / "golden" / "kh-cnp" / name);
}

const adapters::adapter& kh_cnp() {
  const auto* a = adapters::find_adapter("kh-cnp");
  if (a == nullptr) {
    throw std::runtime_error("kh-cnp is not registered");
  }
  return *a;
}

// KH-CNP bytes -> canonical document: the conversion alone (target: >= 150,000 messages/s).
void kh_cnp_decode(benchmark::State& state, const char* file) {
  const std::string bytes = kh_golden(file);
  const adapters::adapter_context ctx{.tables = &checker().tables(), .sender = "kh-ratanakiri"};
  for (auto _ : state) {
    auto result = kh_cnp().decode(bytes, ctx);
    if (result.status != 0) {
      state.SkipWithError("decode refused the golden message");
      break;
    }
    benchmark::DoNotOptimize(result.message);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}

// What POST /v1/inbound/kh-cnp does before the store: decode, serialise, canonical checks.
void kh_cnp_decode_and_check(benchmark::State& state, const char* file) {
  const std::string bytes = kh_golden(file);
  const adapters::adapter_context ctx{.tables = &checker().tables(), .sender = "kh-ratanakiri"};
  for (auto _ : state) {
    auto result = kh_cnp().decode(bytes, ctx);
    const std::string canonical = json::to_string(result.message);
    rapidjson::Document doc;
    auto verdict = checker().check(canonical, "kh-ratanakiri", doc);
    if (result.status != 0 || verdict.status != 0) {
      state.SkipWithError("the golden message was refused");
      break;
    }
    benchmark::DoNotOptimize(doc);
  }
  state.SetItemsProcessed(state.iterations());
}

// What POST /v1/messages does before the store: parse and check a canonical message.
void canonical_check(benchmark::State& state, const char* file) {
  const std::string bytes = read_file(source_dir() / "config" / "examples" / file);
  for (auto _ : state) {
    rapidjson::Document doc;
    auto verdict = checker().check(bytes, "vn-gialai", doc);
    if (verdict.status != 0) {
      state.SkipWithError("the example was refused");
      break;
    }
    benchmark::DoNotOptimize(doc);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(kh_cnp_decode, victim_referral, "victim-referral.kh.json");
BENCHMARK_CAPTURE(kh_cnp_decode, wanted_person, "wanted-person.kh.json");
BENCHMARK_CAPTURE(kh_cnp_decode_and_check, victim_referral, "victim-referral.kh.json");
BENCHMARK_CAPTURE(canonical_check, hotline_tip, "hotline.tip.json");
BENCHMARK_CAPTURE(canonical_check, victim_identification, "victim.identification.json");

}  // namespace

BENCHMARK_MAIN();
