// A resend of a stored message gets the first answer even when the sender's permissions or the
// code tables changed since (docs/api.md, "Idempotency"): it is not refused, and no refusal is
// recorded. A new message, other bytes under the id, or another sender's id are refused as before.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>

#include "gateway/common/json.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/store/store_test_helpers.hpp"

namespace mxgw::test {
namespace {

constexpr const char* other_id = "5d0a7c2e-1b3f-4e6a-8c9d-2e4f6a8b0c1d";
constexpr const char* third_id = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";

void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(
      from, to,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

// Removes the entry `code` from the code table `file`.
void remove_code(const std::filesystem::path& file, const std::string& code) {
  auto doc = json::parse_file(file.string());
  auto& entries = doc["entries"];
  bool removed = false;
  for (auto entry = entries.Begin(); entry != entries.End(); ++entry) {
    if (json::get_string(*entry, "code") == code) {
      entries.Erase(entry);
      removed = true;
      break;
    }
  }
  ASSERT_TRUE(removed) << code;
  write_file(file, json::to_string(doc));
}

class ResendAfterRefusal : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    enable_admin(c);
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"vn-thanhhoa","name":"Thanh Hoa","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH"},
      {"id":"kh-sesan","name":"Sesan district, Stung Treng","country":"KH","adapter":"kh-stt"}]})");
    copy_dir(source_dir() / "config" / "mappings", dir_ / "mappings");
    copy_dir(source_dir() / "config" / "adapters", dir_ / "adapters");
    copy_dir(source_dir() / "config" / "translit", dir_ / "translit");
    c.mappings_dir = dir_ / "mappings";
    c.adapters_dir = dir_ / "adapters";
    c.translit_dir = dir_ / "translit";
    c.delivery.enabled = false;
  }

  // An administrator lets vn-gialai send case updates only.
  void allow_gialai_case_status_only() {
    const auto client = admin_client();
    const auto current = admin(client, "GET", "/admin/v1/partners/vn-gialai");
    ASSERT_EQ(current.status, 200) << current.body;
    const auto updated =
        admin(client, "PUT", "/admin/v1/partners/vn-gialai",
              R"({"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)"
              R"("sends":["case.status"]})",
              {{"If-Match", current.headers.at("etag")}});
    ASSERT_EQ(updated.status, 200) << updated.body;
  }

  // The example hotline tip as `sender` sends it.
  static std::string tip_from(const std::string& sender, const std::string& id) {
    return std::regex_replace(example("hotline.tip", id), std::regex(R"("sender": "vn-gialai")"),
                              "\"sender\": \"" + sender + "\"");
  }

  // The audit's message.refused entries for message `id` (after stop()).
  std::string refusals_of(const std::string& id) const {
    store::test_helpers::raw_db db(config_.store.path);
    return db.text("SELECT count(*) FROM audit WHERE event = 'message.refused' AND message_id = '" +
                   id + "'");
  }
};

TEST_F(ResendAfterRefusal, ResendAfterSendsChangedGetsTheFirstAnswer) {
  const auto gialai = partner_client("vn-gialai");
  const std::string body = example("hotline.tip");
  const auto first = post(gialai, body);
  ASSERT_EQ(first.status, 202) << first.body;
  const std::string id = first.body.substr(7, 36);  // {"id":"<36>",...
  allow_gialai_case_status_only();

  const auto again = post(gialai, body);
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.headers.at("location"), first.headers.at("location"));

  // A new message of that type is refused, as before.
  const auto fresh = post(gialai, example("hotline.tip", other_id));
  EXPECT_EQ(fresh.status, 403) << fresh.body;
  EXPECT_NE(fresh.body.find("not-permitted"), std::string::npos) << fresh.body;
  const std::size_t stored = stored_messages();
  stop();
  EXPECT_EQ(stored, 1U);
  EXPECT_EQ(refusals_of(id), "0") << "a resend of an accepted message is no refusal";
  EXPECT_EQ(refusals_of(other_id), "1");
}

TEST_F(ResendAfterRefusal, OtherBytesOrAnotherSendersIdGetThePlainRefusal) {
  const auto gialai = partner_client("vn-gialai");
  const auto thanhhoa = partner_client("vn-thanhhoa");
  const std::string body = example("hotline.tip");
  const auto first = post(gialai, body);
  ASSERT_EQ(first.status, 202) << first.body;
  ASSERT_EQ(post(thanhhoa, tip_from("vn-thanhhoa", other_id)).status, 202);
  // Before any change, other bytes under the id are a conflict.
  std::string changed = body;
  changed.replace(changed.find("VN30-HL-2026-001203"), 19, "VN30-HL-2026-001204");
  ASSERT_NE(changed, body);
  EXPECT_EQ(post(gialai, changed).status, 409);
  allow_gialai_case_status_only();

  // The resend still gets its first answer (the part that needs the look-up) ...
  const auto again = post(gialai, body);
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.body, first.body);
  // ... other bytes under that id are refused as before, ...
  const auto other_bytes = post(gialai, changed);
  const auto fresh = post(gialai, example("hotline.tip", third_id));
  ASSERT_EQ(fresh.status, 403) << fresh.body;
  EXPECT_EQ(other_bytes.status, 403) << other_bytes.body;
  EXPECT_EQ(other_bytes.body, fresh.body);
  // ... and another sender's id gets exactly the refusal of an unknown id: nothing is revealed.
  const auto squatted = post(gialai, example("hotline.tip", other_id));
  EXPECT_EQ(squatted.status, 403) << squatted.body;
  EXPECT_EQ(squatted.body, fresh.body);
  EXPECT_EQ(squatted.headers.at("content-type"), fresh.headers.at("content-type"));
}

TEST_F(ResendAfterRefusal, ResendAfterReloadRemovedItsCodeGetsTheFirstAnswer) {
  const auto gialai = partner_client("vn-gialai");
  const std::string body = example("hotline.tip");
  const auto first = post(gialai, body);
  ASSERT_EQ(first.status, 202) << first.body;
  const std::string id = first.body.substr(7, 36);
  remove_code(dir_ / "mappings" / "language.json", "jra");
  const auto problems = gateway_->reload();
  ASSERT_TRUE(problems.empty()) << problems.front().file << ": " << problems.front().reason;

  const auto again = post(gialai, body);
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.body, first.body);
  // A new message with the removed code is refused, as before.
  const auto fresh = post(gialai, example("hotline.tip", other_id));
  EXPECT_EQ(fresh.status, 422) << fresh.body;
  EXPECT_NE(fresh.body.find("invalid-message"), std::string::npos) << fresh.body;
  stop();
  EXPECT_EQ(refusals_of(id), "0");
  EXPECT_EQ(refusals_of(other_id), "1");
}

TEST_F(ResendAfterRefusal, InboundResendAfterSendsChangedGetsTheSameReceipt) {
  const auto sesan = partner_client("kh-sesan");
  const std::string body =
      read_file(source_dir() / "config" / "examples" / "partners" / "kh-stt.victim-referral.json");
  const auto first = post(sesan, body, "/v1/inbound/kh-stt");
  ASSERT_EQ(first.status, 200) << first.body;
  const auto client = admin_client();
  const auto current = admin(client, "GET", "/admin/v1/partners/kh-sesan");
  ASSERT_EQ(current.status, 200) << current.body;
  const auto updated = admin(client, "PUT", "/admin/v1/partners/kh-sesan",
                             R"({"id":"kh-sesan","name":"Sesan district, Stung Treng",)"
                             R"("country":"KH","adapter":"kh-stt","sends":["case.status"]})",
                             {{"If-Match", current.headers.at("etag")}});
  ASSERT_EQ(updated.status, 200) << updated.body;

  // The receipt again, in the partner's format (the same bytes: the same acceptance time).
  const auto again = post(sesan, body, "/v1/inbound/kh-stt");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.headers.at("content-type"), first.headers.at("content-type"));
  // Its next message is refused, in its own format.
  std::string next = body;
  next = std::regex_replace(next, std::regex("STT-2569-000045"), "STT-2569-000046");
  ASSERT_NE(next, body);
  const auto fresh = post(sesan, next, "/v1/inbound/kh-stt");
  EXPECT_EQ(fresh.status, 403) << fresh.body;
}

}  // namespace
}  // namespace mxgw::test
