// What the statistics cost (docs/report.md, docs/performance.md), with Google Benchmark: the facts
// taken from each accepted message (on the accept path), the report's aggregation per row, and
// one look of the deadline watch over a real SQLite store sealed at rest, per message in its
// window. items/s is messages per second on one core.
// Run: build/mxgw-report-bench [--benchmark_repetitions=5] (MXGW_SOURCE_DIR overrides where
// config/ is read from; the store is made in a temporary directory and removed).
#include <benchmark/benchmark.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_support.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/facts.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/report/statistics.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"

namespace {

using namespace mxgw;
using bench::checker;
using bench::read_file;
using bench::source_dir;

/// A mix like a liaison office's: victims (some reported twice), tips, requests and answers.
std::vector<store::message_facts> synthetic_rows(std::size_t n) {
  std::vector<store::message_facts> rows;
  rows.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    char id[48];
    std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012zu", i);
    store::message_facts row{.id = id,
                             .sender = i % 3 == 0 ? "vn-gialai" : "kh-ratanakiri",
                             .type = {},
                             .accepted_at = "2026-03-01T10:00:00.000Z",
                             .facts = {}};
    switch (i % 4) {
      case 0:
      case 1:
        row.type = "victim.identification";
        row.facts = R"({"ref":")" + std::to_string(i / 2) +
                    R"(","sex":"F","age":"18--20","minor":false,"nationalities":["KH"],)"
                    R"("exploitation":["forced-criminality"],"region":"VN-30","status":"identified"})";
        break;
      case 2:
        row.type = "hotline.tip";
        row.facts =
            R"({"channel":"hotline-111","urgency":"immediate","reporterType":"family",)"
            R"("exploitation":["sexual"],"possibleVictims":1})";
        break;
      default:
        row.type = "verification.request";
        row.facts = R"({"purpose":"nationality","urgency":"high","deadline":"2026-03-05"})";
        break;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void facts_of_victim(benchmark::State& state) {
  rapidjson::Document doc;
  const std::string text =
      read_file(source_dir() / "config" / "examples" / "victim.identification.json");
  doc.Parse(text.c_str());
  for (auto _ : state) {
    benchmark::DoNotOptimize(pipeline::facts_of(doc, "vn-gialai", checker().tables()));
  }
  state.SetItemsProcessed(state.iterations());
}

void statistics_per_row(benchmark::State& state) {
  const auto rows = synthetic_rows(static_cast<std::size_t>(state.range(0)));
  const auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    report::statistics_builder builder({"2026-01-01", "2026-06-30"});
    for (const auto& row : rows) {
      builder.add(row);
    }
    benchmark::DoNotOptimize(builder.json(now));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

/// One look of the deadline watch over a store of `range(0)` messages, all in its window, their
/// facts sealed (as the shipped configuration stores them).
void deadline_look(benchmark::State& state) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mxgw-report-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    store::data_key key;
    key.id = "bench";
    key.bytes.fill(7);
    auto ring = std::make_shared<store::key_ring>();
    ring->add(key);
    ring->set_active("bench");
    store::sqlite_options options;
    options.path = dir / "store.db";
    std::shared_ptr<store::message_store> sealed =
        store::encrypt_at_rest(store::open_sqlite_store(options), ring);
    const auto rows = synthetic_rows(static_cast<std::size_t>(state.range(0)));
    std::vector<std::future<store::accept_outcome>> pending;
    for (const auto& row : rows) {
      store::message_record r{row.id, row.sender, row.type, "2026-03-01T10:00:00Z", "sha", "{}"};
      r.facts = row.facts;
      auto p = std::make_shared<std::promise<store::accept_outcome>>();
      pending.push_back(p->get_future());
      sealed->accept(std::move(r), [p](store::accept_result a) { p->set_value(a.outcome); });
    }
    for (auto& f : pending) {
      if (f.get() != store::accept_outcome::stored) {
        throw std::runtime_error("accept failed");
      }
    }
    const auto at = *parse_rfc3339("2026-03-02T12:00:00Z");
    report::deadline_watch watch(sealed, {.interval = std::chrono::seconds(3600),
                                          .lookback = std::chrono::hours(24 * 3650),
                                          .actor = "gateway:bench",
                                          .clock = [at] { return at; }});
    watch.sweep_now();  // the escalations exist: what is timed is the steady look
    for (auto _ : state) {
      benchmark::DoNotOptimize(watch.sweep_now());
    }
    sealed->stop();
  }
  std::filesystem::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

}  // namespace

BENCHMARK(facts_of_victim);
BENCHMARK(statistics_per_row)->Arg(100'000)->Unit(benchmark::kMillisecond);
// Real time: the look runs on the store's reader thread as much as on the caller's.
BENCHMARK(deadline_look)->Arg(20'000)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
