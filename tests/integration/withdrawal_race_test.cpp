// A withdrawal whose original committed between the withdrawal's look-up of it and the
// withdrawal's own commit (the original's copies may already be out) is routed again, so it still
// reaches every recipient of the original. The partner API over a real SQLite store; the race is
// made certain by a store that answers the first look-up of the original as it stood before its
// commit (not found), and passes everything else through.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "adapters/adapter.hpp"
#include "gateway/common/live.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/forwarding_store.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using store::message_store;

/// Forwards everything to a real store, except that the first find() of `hidden` answers "not
/// found", as it would have a moment before that message committed.
class late_original_store final : public forwarding_store {
 public:
  late_original_store(std::shared_ptr<message_store> inner, std::string hidden)
      : forwarding_store(std::move(inner)), hidden_(std::move(hidden)) {}

  std::atomic<int> finds_of_hidden{0};

  void find(std::string id, find_handler handler) override {
    if (id == hidden_ && finds_of_hidden.fetch_add(1) == 0) {
      handler(std::nullopt, true);
      return;
    }
    forwarding_store::find(std::move(id), std::move(handler));
  }

 private:
  std::string hidden_;
};

TEST(WithdrawalRace, AnOriginalCommittedAfterTheLookUpIsSeenOnASecondRouting) {
  temp_dir dir;
  const std::string agreed =
      R"("agreements":["victim-data"],"purposes":["investigation","victim-protection"],)"
      R"("endpoint":"https://127.0.0.1:9/v1/messages")";
  write_file(dir / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison desk","country":"VN",)" + agreed + R"(},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)" + agreed + R"(}]})");
  std::vector<identity::config_problem> problems;
  const auto formats = adapters::adapter_ids();
  auto partners = std::make_shared<identity::partner_registry>(
      identity::partner_registry::load(dir / "partners.json", problems, &formats));
  auto checker = std::make_shared<pipeline::canonical_checker>(pipeline::canonical_checker::load(
      source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
  ASSERT_TRUE(problems.empty()) << problems.front().file << ": " << problems.front().reason;
  const std::string original = "d0000000-0000-4000-8000-000000000021";
  auto real = std::shared_ptr<message_store>(store::open_sqlite_store({.path = dir / "s.db"}));
  auto racy = std::make_shared<late_original_store>(real, original);
  auto seed = std::make_shared<identity::trust_state>();
  seed->partners = *partners;
  auto api = std::make_shared<http::partner_api>(
      checker, std::make_shared<identity::trust_store>(seed),
      std::make_shared<live<pipeline::routing_rules>>(std::make_shared<pipeline::routing_rules>()),
      racy);
  const auto post = [&api](const std::string& body) {
    std::promise<http::response> answered;
    api->handle({.method = "POST",
                 .target = "/v1/messages",
                 .content_type = "application/json",
                 .body = body,
                 .partner = "vn-gialai",
                 .peer = "127.0.0.1:1"},
                [&answered](http::response r) { answered.set_value(std::move(r)); });
    return answered.get_future().get();
  };
  const auto examples = source_dir() / "config" / "examples";
  std::string tip = read_file(examples / "hotline.tip.json");
  tip = std::regex_replace(tip, std::regex(R"("id": "[0-9a-f-]+")"), "\"id\": \"" + original + "\"",
                           std::regex_constants::format_first_only);
  tip = std::regex_replace(tip, std::regex(R"("recipients": \[[^\]]*\])"),
                           R"("recipients": ["kh-ratanakiri", "vn-thanhhoa"])");
  ASSERT_EQ(post(tip).status, 202);

  // The withdrawal names Ratanakiri only; its first look-up of the tip finds nothing.
  const std::string withdrawal = "d0000000-0000-4000-8000-000000000022";
  std::string status = read_file(examples / "case.status.json");
  status = std::regex_replace(status, std::regex(R"("id": "[0-9a-f-]+")"),
                              "\"id\": \"" + withdrawal + "\"",
                              std::regex_constants::format_first_only);
  status = std::regex_replace(status, std::regex(R"("recipients": \[[^\]]*\])"),
                              R"("recipients": ["kh-ratanakiri"])");
  status = std::regex_replace(status, std::regex(R"("messageId": "[0-9a-f-]+")"),
                              "\"messageId\": \"" + original + "\"");
  status = std::regex_replace(status, std::regex(R"("status": "repatriated")"),
                              R"("status": "withdrawn")");
  const auto answer = post(status);
  ASSERT_EQ(answer.status, 202) << answer.body;
  EXPECT_EQ(racy->finds_of_hidden.load(), 2);  // looked up again after the store said so

  std::promise<std::optional<store::message_status>> found;
  real->find(withdrawal, [&found](std::optional<store::message_status> s, bool) {
    found.set_value(std::move(s));
  });
  const auto stored = found.get_future().get();
  ASSERT_TRUE(stored.has_value());
  std::map<std::string, std::string> decided_by;
  for (const auto& r : stored->recipients) {
    decided_by[r.recipient] = r.decided_by;
  }
  EXPECT_EQ(decided_by, (std::map<std::string, std::string>{{"kh-ratanakiri", "explicit"},
                                                            {"vn-thanhhoa", "earlier-recipient"}}));
  real->stop();
}

}  // namespace
}  // namespace mxgw::test
