// A config-only partner end to end: the Stung Treng district posts its KH-CNP variant (described
// only by config/adapters/kh-stt.json) over mutual TLS to /v1/inbound/kh-stt; the gateway
// decodes it, adds a Latin transliteration, stores it, answers with a receipt in the variant's
// own style, and refuses bad messages in that style without storing anything. Canonical senders
// must send NFC text.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>

#include "adapters/common/dates.hpp"
#include "gateway/common/json.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class MappedPartner : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH","adapter":"kh-cnp"},
      {"id":"kh-sesan","name":"Sesan district, Stung Treng","country":"KH","adapter":"kh-stt"}]})");
    c.adapters_dir = source_dir() / "config" / "adapters";
    c.translit_dir = source_dir() / "config" / "translit";
    c.delivery.enabled = false;
  }

  static std::string stt_example() {
    return read_file(source_dir() / "config" / "examples" / "partners" /
                     "kh-stt.victim-referral.json");
  }
};

TEST_F(MappedPartner, PostsOverMutualTlsAndGetsItsOwnReceipt) {
  const auto sesan = partner_client("kh-sesan");
  auto r = post(sesan, stt_example(), "/v1/inbound/kh-stt");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  rapidjson::Document receipt;
  receipt.Parse(r.body.c_str());
  ASSERT_TRUE(receipt.IsObject()) << r.body;
  EXPECT_EQ(std::string(receipt["format"].GetString()), "KH-CNP-XCHG/2-STT");
  EXPECT_EQ(std::string(receipt["kind"].GetString()), "RECEIPT");
  EXPECT_EQ(std::string(receipt["status"].GetString()), "RECEIVED");
  EXPECT_EQ(std::string(receipt["reply_to"].GetString()), "STT-2569-000045");
  // Buddhist-Era local time in the receipt too.
  EXPECT_NE(std::string(receipt["sent"].GetString()).find("/25"), std::string::npos) << r.body;

  // Stored as canonical, with the gateway's transliteration beside the Khmer name.
  const auto id = derived_id("kh-sesan", "STT-2569-000045");
  rapidjson::Document stored;
  stored.Parse(stored_body(id).c_str());
  ASSERT_TRUE(stored.IsObject());
  EXPECT_EQ(std::string(stored["sender"].GetString()), "kh-sesan");
  EXPECT_EQ(std::string(stored["body"]["person"]["birthDate"].GetString()), "2007-05");
  const auto& names = stored["body"]["person"]["names"];
  ASSERT_EQ(names.Size(), 2u);
  EXPECT_EQ(std::string(names[1]["kind"].GetString()), "transliteration");
  EXPECT_EQ(std::string(names[1]["family"][0].GetString()), "SOK");
  EXPECT_EQ(std::string(names[1]["given"][0].GetString()), "CHANTHA");

  // Its own status page, and a resend is the same message.
  EXPECT_EQ(get(sesan, "/v1/messages/" + id).status, 200);
  auto again = post(sesan, stt_example(), "/v1/inbound/kh-stt");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, r.body);
  EXPECT_EQ(stored_messages(), 1u);
  // Nothing personal in the log.
  EXPECT_EQ(log_text().find("ចាន់ថា"), std::string::npos);
  EXPECT_EQ(log_text().find("CHANTHA"), std::string::npos);
}

TEST_F(MappedPartner, RefusalsComeInTheVariantsStyleAndStoreNothing) {
  const auto sesan = partner_client("kh-sesan");
  std::string body = stt_example();
  body.replace(body.find("\"SCAM_COMPOUND\""), 15, "\"DEBT_SLAVERY\"");
  auto r = post(sesan, body, "/v1/inbound/kh-stt");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body,
            "{\"error\":\"Message cannot be translated: /case/exploitation/0 unknown code "
            "'DEBT_SLAVERY' (table exploitation)\"}");

  std::string be = stt_example();
  be.replace(be.find("19/11/2569"), 10, "31/02/2569");
  r = post(sesan, be, "/v1/inbound/kh-stt");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("/case/found_on"), std::string::npos) << r.body;

  r = post(sesan, "{\"format\": \"KH-CNP-XCHG/2\"}", "/v1/inbound/kh-stt");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("/format must be"), std::string::npos) << r.body;

  // Another partner may not use this format; an unknown format is not found.
  r = post(partner_client("kh-ratanakiri"), stt_example(), "/v1/inbound/kh-stt");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(post(sesan, stt_example(), "/v1/inbound/kh-nowhere").status, 404);
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(MappedPartner, CanonicalSendersMustSendNfc) {
  const auto gialai = partner_client("vn-gialai");
  std::string message = example("victim.identification", "5b0c4a1e-2f3d-4c5b-8a6e-7d8f9a0b1c2d");
  // Some name in the example, written with a combining acute accent instead of a composed letter.
  const auto at = message.find("\"given\": [");
  ASSERT_NE(at, std::string::npos);
  message.insert(at + 11, "A\xCC\x81");  // "Á" decomposed, prefixed to the first given name
  auto r = post(gialai, message);
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_NE(r.body.find("Normalization Form C"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("/body/person/names/0/given/0"), std::string::npos) << r.body;
  EXPECT_EQ(stored_messages(), 0u);
}

TEST_F(MappedPartner, CanonicalMessagesNamedOnlyInKhmerGetATransliterationToo) {
  const std::string id = "6c1d5b2f-3a4e-4d6c-9b7f-8e9a0b1c2d3e";
  rapidjson::Document doc;
  doc.Parse(example("victim.identification", id).c_str());
  ASSERT_TRUE(doc.IsObject());
  auto& names = doc["body"]["person"]["names"];
  names.Erase(names.Begin() + 1, names.End());  // only the Khmer name is left
  const std::string body = json::to_string(doc);
  const auto gialai = partner_client("vn-gialai");
  auto r = post(gialai, body);
  ASSERT_EQ(r.status, 202) << r.body;
  rapidjson::Document stored;
  stored.Parse(stored_body(id).c_str());
  ASSERT_TRUE(stored.IsObject());
  const auto& kept = stored["body"]["person"]["names"];
  ASSERT_EQ(kept.Size(), 2u);
  EXPECT_EQ(
      json::to_string(kept[1]),
      R"({"family":["KUMROU"],"given":["SOPHEA"],"script":"Latn","kind":"transliteration","order":"family-first"})");
  // The same bytes again are the same message.
  EXPECT_EQ(post(gialai, body).status, 202);
  EXPECT_EQ(stored_messages(), 1u);
}

// Case updates between a config-only partner and a canonical one: each names the message it is
// about as the other side knows it. Delivery is off: a recipient's copy is read from the store,
// as it would leave.
class MappedCaseUpdates : public MappedPartner {
 protected:
  void configure(config::gateway_config& c) override {
    MappedPartner::configure(c);
    const std::string common = R"("endpoint":"https://127.0.0.1:9/v1/messages",
        "agreements":["victim-data"],
        "purposes":["identity-verification","victim-protection","repatriation"])";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)" +
                                           common + R"(},
      {"id":"kh-sesan","name":"Sesan district, Stung Treng","country":"KH","adapter":"kh-stt",)" +
                                           common + R"(}]})");
    write_file(dir_ / "routing.json", R"({"rules":[{"id":"sesan-victims",
        "match":{"types":["victim.identification"],"senders":["kh-sesan"]},
        "add":["vn-gialai"]}]})");
    c.routing_file = dir_ / "routing.json";
  }

  // The recipients' rows of message `id` in its sender's status view.
  rapidjson::Document status_of(const cli::client_tls& sender, const std::string& id) {
    const auto r = get(sender, "/v1/messages/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    EXPECT_TRUE(doc.IsObject()) << r.body;
    return doc;
  }
};

TEST_F(MappedCaseUpdates, AnUpdateAboutTheInspectoratesReferralNamesItsNumber) {
  const auto sesan = partner_client("kh-sesan");
  ASSERT_EQ(post(sesan, stt_example(), "/v1/inbound/kh-stt").status, 200);
  const auto referral = derived_id("kh-sesan", "STT-2569-000045");

  // Gia Lai tells Se San the girl it referred is back home, naming the referral by the gateway
  // id, the only name Gia Lai has for it.
  rapidjson::Document update;
  update.Parse(example("case.status", "7a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b").c_str());
  ASSERT_TRUE(update.IsObject());
  update["body"]["about"]["messageId"].SetString(referral.c_str(), update.GetAllocator());
  update["recipients"].SetArray().PushBack("kh-sesan", update.GetAllocator());
  const auto r = post(partner_client("vn-gialai"), json::to_string(update));
  ASSERT_EQ(r.status, 202) << r.body;

  rapidjson::Document copy;
  const std::string bytes = stored_copy("7a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", "kh-sesan");
  copy.Parse(bytes.c_str());
  ASSERT_TRUE(copy.IsObject()) << bytes;
  EXPECT_STREQ(copy["kind"].GetString(), "CASE_UPDATE");
  EXPECT_STREQ(copy["about"].GetString(), "STT-2569-000045")
      << "the inspectorate was given an id it never learned";
}

TEST_F(MappedCaseUpdates, TheInspectorateWithdrawsItsReferralByItsOwnNumber) {
  const auto sesan = partner_client("kh-sesan");
  ASSERT_EQ(post(sesan, stt_example(), "/v1/inbound/kh-stt").status, 200);
  const auto referral = derived_id("kh-sesan", "STT-2569-000045");
  const auto before = status_of(sesan, referral);
  ASSERT_TRUE(before.HasMember("recipients") && before["recipients"].Size() == 1u);
  ASSERT_STREQ(before["recipients"][0]["partner"].GetString(), "vn-gialai");
  ASSERT_STREQ(before["recipients"][0]["state"].GetString(), "pending");

  const std::string withdrawal =
      R"({"format": "KH-CNP-XCHG/2-STT", "kind": "CASE_UPDATE", "number": "STT-2569-000052",
          "sent": "23/11/2569 10:05:00 +07:00", "secrecy": "CONFIDENTIAL",
          "about": "STT-2569-000045", "case": {"status": "WITHDRAWN"}})";
  const auto r = post(sesan, withdrawal, "/v1/inbound/kh-stt");
  ASSERT_EQ(r.status, 200) << r.body;

  // Stored about the referral, and taken to the referral's recipient as an earlier recipient.
  const auto id = derived_id("kh-sesan", "STT-2569-000052");
  rapidjson::Document stored;
  stored.Parse(stored_body(id).c_str());
  ASSERT_TRUE(stored.IsObject());
  EXPECT_EQ(std::string(stored["body"]["about"]["messageId"].GetString()), referral);
  const auto told = status_of(sesan, id);
  ASSERT_TRUE(told.HasMember("recipients") && told["recipients"].Size() == 1u);
  EXPECT_STREQ(told["recipients"][0]["partner"].GetString(), "vn-gialai");
  EXPECT_STREQ(told["recipients"][0]["decidedBy"].GetString(), "earlier-recipient");
  // The referral's queued copy is not sent any more.
  const auto original = status_of(sesan, referral);
  ASSERT_TRUE(original.HasMember("recipients") && original["recipients"].Size() == 1u);
  EXPECT_STREQ(original["recipients"][0]["state"].GetString(), "withdrawn");
}

}  // namespace
}  // namespace mxgw::test
