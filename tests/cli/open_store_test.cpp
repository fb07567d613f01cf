// The store gateway.json configures: its settings reach the store that is opened.
#include "gateway/cli/open_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::cli {
namespace {

using store::test_helpers::fingerprint;
using store::test_helpers::make_id;

/// The size of the write-ahead log after 300 accepts of 8 KiB bodies, one at a time, through the
/// store `settings` open (measured while it is open: closing removes the log).
std::uintmax_t wal_bytes_after_accepts(config::store_settings settings) {
  test::temp_dir dir;
  settings.path = dir / "store.db";
  auto opened = open_configured_store(settings);
  for (int n = 0; n < 300; ++n) {
    std::string body(8 * 1024, 'x');
    body.replace(0, std::to_string(n).size(), std::to_string(n));
    store::message_record record{make_id(n),        "kh-cnp", "hotline.tip", "2026-12-07T00:00:00Z",
                                 fingerprint(body), body};
    std::promise<store::accept_outcome> done;
    opened->accept(std::move(record),
                   [&done](store::accept_result r) { done.set_value(r.outcome); });
    EXPECT_EQ(done.get_future().get(), store::accept_outcome::stored) << n;
  }
  const auto wal = std::filesystem::path(settings.path.string() + "-wal");
  const auto bytes = std::filesystem::exists(wal) ? std::filesystem::file_size(wal) : 0;
  opened->stop();
  return bytes;
}

TEST(OpenConfiguredStore, TheWriteAheadLogSettingsReachTheSqliteStore) {
  constexpr std::uintmax_t page = 4096 + 24;  // a WAL frame
  // As shipped (a checkpoint every 4,096 pages): nothing is copied back yet, the log holds all.
  EXPECT_GT(wal_bytes_after_accepts({}), 600 * page);
  // A small bound: the log starts over again and again and stays near twice the bound.
  config::store_settings small;
  small.checkpoint_pages = 8;
  small.wal_limit_pages = 32;
  EXPECT_LT(wal_bytes_after_accepts(small), 100 * page);
}

TEST(ProblemsThatStop, OnlyTheAbsenceOfAPartNotReadIsLeftOut) {
  const std::vector<config::config_problem> problems = {
      {"g.json", "/listener", "is required"},
      {"g.json", "/listener/tls/partner_ca", "needs at least one trust anchor"},
      {"g.json", "/partners", "names /x/partners.json, which does not exist"},
      {"g.json", "/log/level", "must be one of debug, info, warn, error"},
      {"g.json", "/stroe", "is not a known setting"},
      {"g.json", "/store/path", "is required"},
      {"g.json", "/storage/path", "names /x/y, which does not exist"},
      {"g.json", "", "invalid JSON at byte offset 0"},
  };
  const auto stopping = problems_that_stop(problems, {"/store"});
  std::vector<std::string> fields;
  for (const auto& p : stopping) {
    fields.push_back(p.field);
  }
  // A wrong value or a misspelling anywhere, anything about the store (not "/storage": a
  // pointer's tokens are whole), the file itself.
  EXPECT_EQ(fields, (std::vector<std::string>{"/log/level", "/stroe", "/store/path", ""}));
  EXPECT_TRUE(problems_that_stop({problems[0], problems[1], problems[2]}, {"/store"}).empty());
  EXPECT_EQ(problems_that_stop({problems[0]}, {"/listener"}).size(), 1U);
}

}  // namespace
}  // namespace mxgw::cli
