// The ids the gateway derives for partners' messages (KH-CNP msg_no, LA-MPS ref, ...) are keyed
// with a gateway secret (config message_ids.key): another partner cannot post first under the id a
// partner's next message will get, nor learn from a 409 that a message exists.
#include <gtest/gtest.h>

#include <string>

#include "adapters/common/dates.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class MessageIds : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp"}]})");
    c.delivery.enabled = false;  // this suite is about accepting
  }

  /// The shipped KH-CNP victim referral under Ratanakiri's number `msg_no`.
  static std::string kh_referral(const std::string& msg_no) {
    std::string body =
        read_file(source_dir() / "tests" / "adapters" / "golden" / "kh-cnp" /
                  "victim-referral.kh.json");
    const std::string shipped = "\"RTK-2026-000123\"";
    const auto at = body.find(shipped);
    EXPECT_NE(at, std::string::npos);
    return body.replace(at, shipped.size(), "\"" + msg_no + "\"");
  }
};

TEST_F(MessageIds, APartnerCannotTakeTheIdOfAnotherPartnersNextMessage) {
  // Ratanakiri numbers its messages in sequence; Gia Lai (or anyone who reads the gateway's
  // source) computes the public derivation of the next number and posts first under that id.
  const std::string next = "RTK-2026-000124";
  const std::string guessed = adapters::message_uuid("kh-ratanakiri", next);
  auto r = post(partner_client("vn-gialai"), example("hotline.tip", guessed));
  ASSERT_EQ(r.status, 202) << r.body << r.error;

  // Ratanakiri's real message is still taken, under its own keyed id.
  const auto ratanakiri = partner_client("kh-ratanakiri");
  r = post(ratanakiri, kh_referral(next), "/v1/inbound/kh-cnp");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const std::string id = derived_id("kh-ratanakiri", next);
  EXPECT_NE(id, guessed);
  EXPECT_EQ(get(ratanakiri, "/v1/messages/" + id).status, 200);
  EXPECT_EQ(stored_messages(), 2u);
  // And sent again, it is the same message (the key does not change between requests).
  r = post(ratanakiri, kh_referral(next), "/v1/inbound/kh-cnp");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(stored_messages(), 2u);
}

TEST_F(MessageIds, AnIdGuessedFromAnotherPartnersNumberTellsNothingOfItsMessage) {
  // Ratanakiri's message is in; Gia Lai probes with the public derivation of its number. The
  // probe is simply a new message of Gia Lai's (202), as with any unused id: no 409 says that
  // Ratanakiri sent something under that number.
  ASSERT_EQ(post(partner_client("kh-ratanakiri"), kh_referral("RTK-2026-000125"),
                 "/v1/inbound/kh-cnp")
                .status,
            200);
  const auto probe = post(partner_client("vn-gialai"),
                          example("hotline.tip", adapters::message_uuid("kh-ratanakiri",
                                                                        "RTK-2026-000125")));
  EXPECT_EQ(probe.status, 202) << probe.body;
  EXPECT_EQ(log_text().find("message_ids.unkeyed"), std::string::npos);
}

class MessageIdsWithoutKey : public MessageIds {
 protected:
  void configure(config::gateway_config& c) override {
    MessageIds::configure(c);
    c.message_ids = {};
  }
};

TEST_F(MessageIdsWithoutKey, TheGatewayWarnsThatIdsCanBeComputedAndDerivesThePublicOnes) {
  // Without a key, the ids are the public derivation (what gateways before the key gave), and
  // the start says so: the operator learns the exchange is open to the attack above.
  stop();
  EXPECT_NE(log_text().find("message_ids.unkeyed"), std::string::npos) << log_text();
  restart();
  ASSERT_EQ(post(partner_client("kh-ratanakiri"), kh_referral("RTK-2026-000126"),
                 "/v1/inbound/kh-cnp")
                .status,
            200);
  EXPECT_EQ(derived_id("kh-ratanakiri", "RTK-2026-000126"),
            adapters::message_uuid("kh-ratanakiri", "RTK-2026-000126"));
  EXPECT_EQ(get(partner_client("kh-ratanakiri"),
                "/v1/messages/" + adapters::message_uuid("kh-ratanakiri", "RTK-2026-000126"))
                .status,
            200);
}

}  // namespace
}  // namespace mxgw::test
