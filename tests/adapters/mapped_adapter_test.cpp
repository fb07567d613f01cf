// Config-only partners: the shipped Stung Treng mapping (config/adapters/kh-stt.json) decodes and
// encodes through the registry like a built-in adapter; every refusal is located; mapping files
// with mistakes are refused at load naming file and entry.
#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <cctype>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/mapped/mapped.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/names.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::adapters {
namespace {

using test::source_dir;

std::filesystem::path golden_dir() {
  return source_dir() / "tests" / "adapters" / "golden" / "kh-stt";
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text.substr(0, 200);
  return doc;
}

std::string describe(const std::vector<field_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += "[" + e.pointer + "] " + e.reason + "\n";
  }
  return out;
}

bool has_error(const std::vector<field_error>& errors, std::string_view pointer,
               std::string_view words = "") {
  return std::any_of(errors.begin(), errors.end(), [&](const field_error& e) {
    return e.pointer == pointer && e.reason.find(words) != std::string::npos;
  });
}

std::string example_text() {
  return test::read_file(source_dir() / "config" / "examples" / "partners" /
                         "kh-stt.victim-referral.json");
}

class MappedAdapter : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<pipeline::config_problem> problems;
    checker_ = std::make_unique<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    translit_ = std::make_unique<pipeline::transliterators>(
        pipeline::transliterators::load(source_dir() / "config" / "translit", problems));
    mappings_ = std::make_unique<mapped::mapping_set>(mapped::mapping_set::load(
        source_dir() / "config" / "adapters", checker_->tables(), checker_->schemas(), problems));
    mapped::install(*mappings_, problems);
    problems_ = problems;
  }
  static void TearDownTestSuite() {
    checker_.reset();
    translit_.reset();
    mappings_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(problems_.empty()) << problems_.front().file << ": " << problems_.front().field
                                   << ": " << problems_.front().reason;
    ASSERT_NE(stt(), nullptr) << "kh-stt is not registered";
  }

  static const adapter* stt() { return find_adapter("kh-stt"); }

  static adapter_context ctx(bool carry = false) {
    return {.tables = &checker_->tables(),
            .sender = "kh-sesan",
            .carry_unmapped = carry,
            .transliterators = translit_.get()};
  }

  static pipeline::check_result check(const rapidjson::Value& message, std::string_view sender) {
    rapidjson::Document parsed;
    return checker_->check(json::to_string(message), sender, parsed);
  }

  // The example with one member changed (pointer into the partner document), or removed.
  static std::string example_with(const char* pointer, const char* json_value) {
    auto doc = parse(example_text());
    if (json_value == nullptr) {
      rapidjson::Pointer(pointer).Erase(doc);
    } else {
      rapidjson::Document v;
      v.Parse(json_value);
      rapidjson::Value copy(v, doc.GetAllocator());
      rapidjson::Pointer(pointer).Set(doc, copy);
    }
    return json::to_string(doc);
  }

  static inline std::unique_ptr<pipeline::canonical_checker> checker_;
  static inline std::unique_ptr<pipeline::transliterators> translit_;
  static inline std::unique_ptr<mapped::mapping_set> mappings_;
  static inline std::vector<pipeline::config_problem> problems_;
};

TEST_F(MappedAdapter, IsRegisteredUnderTheFilesIdAndInstallingAgainIsNoClash) {
  const auto ids = adapter_ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), "kh-stt"), ids.end());
  EXPECT_EQ(stt()->id(), "kh-stt");
  EXPECT_EQ(stt()->content_type(), "application/json");
  std::vector<pipeline::config_problem> problems;
  mapped::install(*mappings_, problems);  // a second gateway in the same process
  EXPECT_TRUE(problems.empty());
  EXPECT_TRUE(std::find(registry_problems().begin(), registry_problems().end(), "kh-stt") ==
              registry_problems().end());
}

TEST_F(MappedAdapter, GoldenDecodeOfTheShippedExample) {
  const auto decoded = stt()->decode(example_text(), ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(
      json::to_string(decoded.message),
      json::to_string(parse(test::read_file(golden_dir() / "victim-referral.expected.json"))));
  const auto verdict = check(decoded.message, "kh-sesan");
  EXPECT_EQ(verdict.status, 0) << describe(verdict.errors);
  // The id comes from the sender and the partner's number.
  EXPECT_EQ(json::get_string(decoded.message, "id"), message_uuid("kh-sesan", "STT-2569-000045"));
}

TEST_F(MappedAdapter, GoldenEncodeOfACanonicalCaseStatus) {
  const auto message =
      parse(test::read_file(source_dir() / "config" / "examples" / "case.status.json"));
  const auto encoded = stt()->encode(message, ctx());
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  EXPECT_EQ(encoded.bytes + "\n", test::read_file(golden_dir() / "encode-case.status.json"));
}

TEST_F(MappedAdapter, RoundTripKeepsEverythingTheFormatCarries) {
  // partner -> canonical -> partner: the same document, except that `number` becomes the
  // canonical id (the gateway's own reference for what it sends).
  const auto decoded = stt()->decode(example_text(), ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  const auto encoded = stt()->encode(decoded.message, ctx());
  ASSERT_EQ(encoded.status, 0) << describe(encoded.errors);
  auto expected = parse(example_text());
  expected["number"].SetString(json::get_string(decoded.message, "id").data(),
                               expected.GetAllocator());
  EXPECT_TRUE(parse(encoded.bytes) == expected) << encoded.bytes;  // member order aside

  // canonical -> partner -> canonical, many generated messages: Khmer and Latin names, partial
  // dates, Buddhist-Era leap days.
  const char* dates[] = {"2024-02-29", "2007-05", "1990", "2000-02-29", "2026-12-31"};
  const char* families[] = {"សុខ", "ចាន់", "ហេង"};
  for (int i = 0; i < 30; ++i) {
    auto message = decoded.message.GetObject();
    rapidjson::Document copy;
    copy.CopyFrom(decoded.message, copy.GetAllocator());
    auto& a = copy.GetAllocator();
    auto& person = copy["body"]["person"];
    person["names"].PopBack();  // the gateway's transliteration is made anew on the way in
    person["birthDate"].SetString(dates[i % 5], a);
    person["names"][0]["family"][0].SetString(families[i % 3], a);
    if (i % 2 == 1) {
      rapidjson::Value latin(rapidjson::kObjectType);
      rapidjson::Value family(rapidjson::kArrayType);
      family.PushBack("SOK", a);
      rapidjson::Value given(rapidjson::kArrayType);
      given.PushBack("CHAN", a).PushBack("THA", a);
      latin.AddMember("script", "Latn", a).AddMember("kind", "primary", a);
      latin.AddMember("family", family, a).AddMember("given", given, a);
      latin.AddMember("order", "family-first", a);
      person["names"].PushBack(latin, a);
    }
    copy["body"]["events"][0]["date"].SetString(dates[(i + 1) % 5], a);
    const auto out = stt()->encode(copy, ctx());
    ASSERT_EQ(out.status, 0) << describe(out.errors);
    auto plain = ctx();
    plain.transliterators = nullptr;
    auto back = stt()->decode(out.bytes, plain);
    ASSERT_EQ(back.status, 0) << describe(back.errors) << out.bytes;
    // Objects compare without regard to member order.
    EXPECT_TRUE(back.message["body"] == copy["body"])
        << i << "\n"
        << json::to_string(back.message["body"]) << "\n"
        << json::to_string(copy["body"]);
    EXPECT_TRUE(back.message["handling"] == copy["handling"]);
    EXPECT_EQ(json::get_string(back.message, "created"), json::get_string(copy, "created"));
    (void)message;
  }
}

TEST_F(MappedAdapter, BuddhistEraDatesAreWrittenAndReadAsSuch) {
  const auto decoded = stt()->decode(example_with("/victim/born", "\"29/02/2567\""), ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(json::get_string(decoded.message["body"]["person"], "birthDate"), "2024-02-29");
  const auto encoded = stt()->encode(decoded.message, ctx());
  ASSERT_EQ(encoded.status, 0);
  EXPECT_NE(encoded.bytes.find("\"born\":\"29/02/2567\""), std::string::npos) << encoded.bytes;
}

TEST_F(MappedAdapter, DecomposedTextComesOutInNfc) {
  // Latin names written with combining marks (as some keyboards send them).
  const auto decoded =
      stt()->decode(example_with("/victim/surname_lat", "\"Nguye\\u0302\\u0303n\""), ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(pipeline::first_non_nfc(decoded.message), std::nullopt);
  const auto& names = decoded.message["body"]["person"]["names"];
  bool found = false;
  for (const auto& n : names.GetArray()) {
    if (json::get_string(n, "script") == "Latn" && json::get_string(n, "kind") == "primary") {
      EXPECT_EQ(std::string(n["family"][0].GetString()), "Nguyễn");
      found = true;
    }
  }
  EXPECT_TRUE(found);
  // A Latin name with diacritics is the partner's own: no transliteration stands in for a
  // plain Latin spelling, but one in ICAO form is added beside it.
  EXPECT_EQ(check(decoded.message, "kh-sesan").status, 0);
}

TEST_F(MappedAdapter, RefusalsNameThePlaceInThePartnersDocument) {
  struct refusal {
    std::string body;
    int status;
    const char* pointer;
    const char* words;
  };
  const std::vector<refusal> refusals = {
      {"{not json", 400, "", "not acceptable JSON"},
      {"[1,2]", 400, "", "must be a JSON object"},
      {"{\"a\":\"\xff\"}", 400, "", "not acceptable JSON"},
      {std::string(100, '[') + std::string(100, ']'), 400, "", "not acceptable JSON"},
      {example_with("/format", "\"KH-CNP-XCHG/2\""), 400, "/format", "must be"},
      {example_with("/kind", "\"WANTED_PERSON\""), 422, "/kind", "unknown message kind"},
      {example_with("/number", nullptr), 422, "/number", "is required"},
      {example_with("/sent", nullptr), 422, "/sent", "is required"},
      {example_with("/sent", "\"21/11/2569 09:42:10\""), 422, "/sent", ""},
      {example_with("/victim/born", "\"31/02/2569\""), 422, "/victim/born", ""},
      {example_with("/case/exploitation/1", "\"DEBT_SLAVERY\""), 422, "/case/exploitation/1",
       "unknown code 'DEBT_SLAVERY' (table exploitation)"},
      {example_with("/victim/home_province", "99"), 422, "/victim/home_province", "(table region)"},
      {example_with("/victim/born_approx", "\"yes\""), 422, "/victim/born_approx",
       "must be true or false"},
      {example_with("/victim/languages", "\"km\""), 422, "/victim/languages", "must be an array"},
      {example_with("/victim/eye_colour", "\"BRO\""), 422, "/victim/eye_colour",
       "is not a field of KH-CNP-XCHG/2-STT"},
      {example_with("/about", "\"3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17\""), 422, "/about",
       "is not used on a VICTIM_REFERRAL message"},
      {example_with("/case/status", nullptr), 422, "/case/status", "is required"},
  };
  for (const auto& r : refusals) {
    const auto result = stt()->decode(r.body, ctx());
    EXPECT_EQ(result.status, r.status) << r.pointer << "\n" << describe(result.errors);
    EXPECT_TRUE(has_error(result.errors, r.pointer, r.words))
        << r.pointer << " / " << r.words << "\n"
        << describe(result.errors);
    EXPECT_FALSE(result.message.IsObject());  // nothing half-translated
  }
}

TEST_F(MappedAdapter, ErrorsNeverEchoNamesOrFreeText) {
  const auto result = stt()->decode(example_with("/victim/eye_colour", "\"BRO\""), ctx());
  const std::string body = stt()->encode_error(422, "Message cannot be translated", result.errors);
  EXPECT_EQ(body,
            "{\"error\":\"Message cannot be translated: /victim/eye_colour is not a field of "
            "KH-CNP-XCHG/2-STT\"}");
  EXPECT_EQ(body.find("ចាន់ថា"), std::string::npos);
}

TEST_F(MappedAdapter, CarryUnmappedKeepsUnknownValuesAside) {
  auto text = example_with("/case/exploitation/1", "\"DEBT_SLAVERY\"");
  auto doc = parse(text);
  rapidjson::Pointer("/victim/eye_colour").Set(doc, "BRO");
  const auto result = stt()->decode(json::to_string(doc), ctx(true));
  ASSERT_EQ(result.status, 0) << describe(result.errors);
  EXPECT_EQ(json::to_string(result.message["unmapped"]),
            R"({"/case/exploitation/1":"DEBT_SLAVERY","/victim/eye_colour":"BRO"})");
  EXPECT_EQ(json::to_string(result.message["body"]["exploitation"]), R"(["forced-criminality"])");
  EXPECT_EQ(check(result.message, "kh-sesan").status, 0);
}

TEST_F(MappedAdapter, EncodeRefusesWhatTheFormatCannotExpress) {
  const auto wanted =
      parse(test::read_file(source_dir() / "config" / "examples" / "person.wanted.json"));
  auto r = stt()->encode(wanted, ctx());
  EXPECT_EQ(r.status, 422);
  EXPECT_TRUE(has_error(r.errors, "/type", "cannot be expressed")) << describe(r.errors);

  auto victim = stt()->decode(example_text(), ctx());
  ASSERT_EQ(victim.status, 0);
  victim.message["body"]["person"]["sex"].SetString("X");  // KH-CNP has no code for X
  victim.message.RemoveMember("created");                  // `sent` is required
  r = stt()->encode(victim.message, ctx());
  EXPECT_EQ(r.status, 422);
  EXPECT_TRUE(has_error(r.errors, "/body/person/sex", "has no KH-CNP-XCHG/2-STT code (table sex)"))
      << describe(r.errors);
  EXPECT_TRUE(has_error(r.errors, "/created", "is required by KH-CNP-XCHG/2-STT (/sent)"))
      << describe(r.errors);
  EXPECT_TRUE(r.bytes.empty());
}

TEST_F(MappedAdapter, ReceiptInThePartnersOwnStyle) {
  const std::string body =
      stt()->encode_receipt({.message_id = "88d03a7a-1d07-547c-bcb5-35f24a45e599",
                             .reference = "STT-2569-000045",
                             .accepted_at = "2026-11-21T02:42:11.250Z",
                             .recipient = "kh-sesan"},
                            ctx());
  EXPECT_EQ(body,
            "{\"format\":\"KH-CNP-XCHG/2-STT\",\"status\":\"RECEIVED\",\"kind\":\"RECEIPT\","
            "\"number\":\"" +
                message_uuid("mxgw-receipt", "88d03a7a-1d07-547c-bcb5-35f24a45e599") +
                "\",\"reply_to\":\"STT-2569-000045\",\"sent\":\"21/11/2569 09:42:11 "
                "+07:00\",\"to_unit\":\"kh-sesan\",\"from_unit\":\"kh-sesan\"}");
}

// --- replies: the message answered, by the partner's own reference ----------------------------

// The shipped mapping (kh-stt names no message answered) with `reply_to` for the envelope's
// `inReplyTo` and an ACK kind, the canonical receipt, whose `reply_to` is its `body.inReplyTo`.
class MappedReplies : public MappedAdapter {
 protected:
  void SetUp() override {
    MappedAdapter::SetUp();
    auto doc = parse(test::read_file(source_dir() / "config" / "adapters" / "kh-stt.json"));
    auto& a = doc.GetAllocator();
    rapidjson::Pointer("/kind/values/ACK").Set(doc, "receipt");
    rapidjson::Pointer("/fields/-")
        .Set(doc, parse(R"({"partner": "/reply_to", "canonical": "/inReplyTo",
                       "types": ["victim.identification", "case.status"]})"),
             a);
    rapidjson::Pointer("/fields/-")
        .Set(doc, parse(R"({"partner": "/reply_to", "canonical": "/body/inReplyTo",
                       "types": ["receipt"]})"),
             a);
    std::vector<pipeline::config_problem> problems;
    ASSERT_TRUE(
        set_.add(doc, "kh-stt-replies.json", checker_->tables(), checker_->schemas(), problems));
    ASSERT_TRUE(problems.empty()) << problems.front().field << ": " << problems.front().reason;
    spec_ = set_.find("kh-stt");
  }

  // Gia Lai's case update answering `answered`, for Se San.
  static rapidjson::Document answer(const std::string& answered) {
    auto m = parse(test::read_file(source_dir() / "config" / "examples" / "case.status.json"));
    m.AddMember("inReplyTo", rapidjson::Value(answered.c_str(), m.GetAllocator()),
                m.GetAllocator());
    return m;
  }

  static adapter_context to_sesan(const std::string& answered_id,
                                  const std::string& answered_reference) {
    auto c = ctx();
    c.sender = "vn-gialai";
    c.recipient = "kh-sesan";
    c.answered_id = answered_id;
    c.answered_reference = answered_reference;
    return c;
  }

  std::string reply_to(const encode_result& sent) const {
    EXPECT_EQ(sent.status, 0) << describe(sent.errors);
    const auto doc = parse(sent.bytes);
    return std::string(json::get_string(doc, "reply_to"));
  }

  mapped::mapping_set set_;
  std::shared_ptr<const mapped::mapping_spec> spec_;
};

// The gateway id of Se San's referral STT-2569-000045 (the shipped example).
std::string sesan_request() {
  return message_uuid("kh-sesan", "STT-2569-000045");
}

TEST_F(MappedReplies, AnAnswerToTheInspectoratesOwnMessageNamesItsNumber) {
  const auto m = answer(sesan_request());
  EXPECT_EQ(reply_to(mapped::encode_with(*spec_, m, to_sesan(sesan_request(), "STT-2569-000045"))),
            "STT-2569-000045");
  // Named in upper case, the same message.
  std::string upper_id = sesan_request();
  std::transform(upper_id.begin(), upper_id.end(), upper_id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  EXPECT_EQ(reply_to(mapped::encode_with(*spec_, m, to_sesan(upper_id, "STT-2569-000045"))),
            "STT-2569-000045");
  // A canonical receipt: its body names the message answered.
  auto receipt = parse(test::read_file(source_dir() / "config" / "examples" / "receipt.json"));
  const std::string received(json::get_string(receipt["body"], "inReplyTo"));
  EXPECT_EQ(reply_to(mapped::encode_with(*spec_, receipt, to_sesan(received, "STT-2569-000046"))),
            "STT-2569-000046");
}

TEST_F(MappedReplies, AnotherAnsweredMessageOrNoReferenceKeepsTheGatewayId) {
  const auto m = answer(sesan_request());
  // The accept path read another message (it answers that one, not this).
  EXPECT_EQ(reply_to(mapped::encode_with(
                *spec_, m, to_sesan("00000000-0000-4000-8000-000000000000", "STT-2569-000045"))),
            sesan_request());
  // The recipient did not send it, or the store no longer has it: no reference of its own.
  EXPECT_EQ(reply_to(mapped::encode_with(*spec_, m, to_sesan(sesan_request(), ""))),
            sesan_request());
  EXPECT_EQ(reply_to(mapped::encode_with(*spec_, m, to_sesan("", ""))), sesan_request());
}

TEST_F(MappedReplies, TheInspectoratesOwnNumberComingBackIsKeptAsTheThreadNotRefused) {
  auto c = ctx();
  // Its own number, as the gateway sent it in an answer: no gateway message to link, no link
  // made up, the number kept verbatim (the referral names its own thread in case_ref), and the
  // message is still good canonical.
  auto decoded = mapped::decode_with(*spec_, example_with("/reply_to", "\"STT-2569-000045\""), c);
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_FALSE(decoded.message.HasMember("inReplyTo"));
  EXPECT_EQ(json::get_string(decoded.message, "caseRef"), "STT-SESAN-2569-0007");
  EXPECT_EQ(json::to_string(decoded.message["unmapped"]), R"({"/reply_to":"STT-2569-000045"})");
  EXPECT_EQ(check(decoded.message, "kh-sesan").status, 0);
  // Without a thread of its own, the number is the thread.
  auto doc = parse(example_with("/reply_to", "\"STT-2569-000045\""));
  doc.RemoveMember("case_ref");
  decoded = mapped::decode_with(*spec_, json::to_string(doc), c);
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(json::get_string(decoded.message, "caseRef"), "STT-2569-000045");
  // A gateway id, in any case, is the link.
  std::string upper_id = sesan_request();
  std::transform(upper_id.begin(), upper_id.end(), upper_id.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  decoded =
      mapped::decode_with(*spec_, example_with("/reply_to", ("\"" + upper_id + "\"").c_str()), c);
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(json::get_string(decoded.message, "inReplyTo"), sesan_request());
  // A damaged gateway id is refused, at its place and without its value.
  std::string damaged = sesan_request();
  damaged[0] = 'x';
  decoded =
      mapped::decode_with(*spec_, example_with("/reply_to", ("\"" + damaged + "\"").c_str()), c);
  EXPECT_EQ(decoded.status, 422);
  EXPECT_TRUE(has_error(decoded.errors, "/reply_to", "is not a reference the gateway wrote"))
      << describe(decoded.errors);
}

TEST_F(MappedReplies, AReceiptForAForeignNumberNamesAPlaceholderAndSendsTheNumberBack) {
  const std::string ack =
      R"({"format": "KH-CNP-XCHG/2-STT", "kind": "ACK", "number": "STT-2569-000050",
          "sent": "21/11/2569 09:50:03 +07:00", "secrecy": "CONFIDENTIAL",
          "reply_to": "STT-2569-000045"})";
  auto decoded = mapped::decode_with(*spec_, ack, ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(json::get_string(decoded.message["body"], "inReplyTo"),
            message_uuid("kh-stt:reply-to", "STT-2569-000045"));
  EXPECT_EQ(json::get_string(decoded.message, "caseRef"), "STT-2569-000045");
  EXPECT_FALSE(decoded.message.HasMember("inReplyTo"));
  const auto sent = mapped::encode_with(*spec_, decoded.message, to_sesan("", ""));
  EXPECT_EQ(reply_to(sent), "STT-2569-000045");
}

// --- case updates: the message they are about, by the partner's own number ---------------------

// A Stung Treng case update (the shipped mapping) about `about`.
std::string case_update(const std::string& about, const char* status = "WITHDRAWN") {
  return R"({"format": "KH-CNP-XCHG/2-STT", "kind": "CASE_UPDATE", "number": "STT-2569-000052",
             "sent": "23/11/2569 10:05:00 +07:00", "secrecy": "CONFIDENTIAL",
             "about": ")" +
         about + R"(", "case": {"status": ")" + status + R"(", "effective": "23/11/2569"}})";
}

std::string about_of(const rapidjson::Value& canonical) {
  return std::string(json::get_string(canonical["body"]["about"], "messageId"));
}

TEST_F(MappedAdapter, ACaseUpdateNamingItsOwnReferralByNumberIsAboutThatReferral) {
  // The inspectorate withdraws its referral STT-2569-000045 by the only name it knows: the
  // number it gave it. The gateway named that referral message_uuid(sender, number).
  auto decoded = stt()->decode(case_update("STT-2569-000045"), ctx());
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(about_of(decoded.message), message_uuid("kh-sesan", "STT-2569-000045"));
  EXPECT_EQ(json::get_string(decoded.message["body"], "status"), "withdrawn");
  EXPECT_FALSE(decoded.message.HasMember("unmapped"));
  EXPECT_EQ(check(decoded.message, "kh-sesan").status, 0);
  // The same number from another partner is another message.
  auto other = ctx();
  other.sender = "kh-other";
  decoded = stt()->decode(case_update("STT-2569-000045"), other);
  ASSERT_EQ(decoded.status, 0) << describe(decoded.errors);
  EXPECT_EQ(about_of(decoded.message), message_uuid("kh-other", "STT-2569-000045"));
}

TEST_F(MappedAdapter, WithTheGatewaysIdKeyACaseUpdateIsAboutTheKeyedIdOfItsReferral) {
  // The referral came in under the keyed id; the update naming it by number must name that id.
  mac_key key{};
  key[0] = 0x5a;
  auto keyed = ctx();
  keyed.message_id_key = &key;
  const auto referral = stt()->decode(example_text(), keyed);
  ASSERT_EQ(referral.status, 0) << describe(referral.errors);
  const std::string id(json::get_string(referral.message, "id"));
  EXPECT_EQ(id, derived_message_id(&key, "kh-sesan", "STT-2569-000045"));
  EXPECT_NE(id, message_uuid("kh-sesan", "STT-2569-000045"));
  const auto update = stt()->decode(case_update("STT-2569-000045"), keyed);
  ASSERT_EQ(update.status, 0) << describe(update.errors);
  EXPECT_EQ(about_of(update.message), id);
}

TEST_F(MappedAdapter, ACaseUpdateNamingAGatewayMessageIsAboutThatMessage) {
  const std::string id = "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17";
  std::string upper = id;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  // As the gateway sent it (the sender's reference, then the id), bare, in either case.
  for (const std::string& named : {"VN30-VI-2026-000118/" + id, id, upper}) {
    const auto decoded = stt()->decode(case_update(named, "LOCATED"), ctx());
    ASSERT_EQ(decoded.status, 0) << named << "\n" << describe(decoded.errors);
    EXPECT_EQ(about_of(decoded.message), id) << named;
    EXPECT_EQ(check(decoded.message, "kh-sesan").status, 0) << named;
  }
  // A damaged gateway id is refused at its place, without its value; nothing is made up.
  std::string damaged = id;
  damaged[3] = 'x';
  const auto refused = stt()->decode(case_update(damaged), ctx());
  EXPECT_EQ(refused.status, 422);
  EXPECT_TRUE(has_error(refused.errors, "/about", "is not a reference the gateway wrote"))
      << describe(refused.errors);
  EXPECT_FALSE(refused.message.IsObject());
  EXPECT_EQ(describe(refused.errors).find(damaged), std::string::npos);
}

TEST_F(MappedAdapter, ACaseUpdateAboutTheInspectoratesReferralNamesItsNumber) {
  // Gia Lai's update about Se San's referral, as the accept path encodes it for Se San (which
  // sent the referral: answered_reference is its number) and for anyone else.
  auto update = parse(test::read_file(source_dir() / "config" / "examples" / "case.status.json"));
  const std::string referral = message_uuid("kh-sesan", "STT-2569-000045");
  rapidjson::Pointer("/body/about/messageId").Set(update, referral.c_str());
  auto c = ctx();
  c.sender = "vn-gialai";
  c.recipient = "kh-sesan";
  const auto about_sent = [&](const std::string& id, const std::string& reference) {
    c.answered_id = id;
    c.answered_reference = reference;
    const auto sent = stt()->encode(update, c);
    EXPECT_EQ(sent.status, 0) << describe(sent.errors);
    return std::string(json::get_string(parse(sent.bytes), "about"));
  };
  EXPECT_EQ(about_sent(referral, "STT-2569-000045"), "STT-2569-000045");
  // The store had another message, or none, or the recipient did not send it: the gateway id.
  EXPECT_EQ(about_sent("00000000-0000-4000-8000-000000000000", "STT-2569-000045"), referral);
  EXPECT_EQ(about_sent(referral, ""), referral);
  EXPECT_EQ(about_sent("", ""), referral);
  // The number it was sent comes back as the same referral.
  const auto again = stt()->decode(case_update("STT-2569-000045", "REPATRIATED"), ctx());
  ASSERT_EQ(again.status, 0) << describe(again.errors);
  EXPECT_EQ(about_of(again.message), referral);
}

// --- mapping files with mistakes ---------------------------------------------------------------

class MappingFiles : public MappedAdapter {
 protected:
  // Loads `text` as the only mapping file of a fresh directory; returns the problems.
  std::vector<pipeline::config_problem> load(const std::string& text,
                                             const std::string& name = "partner.json") {
    write_file(name, text);
    std::vector<pipeline::config_problem> problems;
    mapped::mapping_set::load(dir_.path(), checker_->tables(), checker_->schemas(), problems);
    return problems;
  }

  void write_file(const std::string& name, const std::string& text) {
    test::write_file(dir_.path() / name, text);
  }

  // The shipped file with `pointer` set to `json_value` (or removed).
  static std::string shipped_with(const char* pointer, const char* json_value) {
    auto doc = parse(test::read_file(source_dir() / "config" / "adapters" / "kh-stt.json"));
    if (json_value == nullptr) {
      rapidjson::Pointer(pointer).Erase(doc);
    } else {
      rapidjson::Document v;
      v.Parse(json_value);
      EXPECT_FALSE(v.HasParseError()) << json_value;
      rapidjson::Value copy(v, doc.GetAllocator());
      rapidjson::Pointer(pointer).Set(doc, copy);
    }
    return json::to_string(doc);
  }

  test::temp_dir dir_;
};

TEST_F(MappingFiles, EachMistakeIsAProblemNamingFileAndEntry) {
  struct mistake {
    const char* pointer;
    const char* value;
    const char* field;
    const char* words;
  };
  const mistake mistakes[] = {
      {"/fields/0/partner", "\"sent\"", "/fields/0/partner", "is not a JSON Pointer"},
      {"/fields/0/partner", "\"/list/0\"", "/fields/0/partner", "object members only"},
      {"/fields/1/table", "\"secrecy-levels\"", "/fields/1/table",
       "unknown code table 'secrecy-levels'"},
      {"/fields/1/column", "\"partnerCodes/nowhere\"", "/fields/1/column", "names a column"},
      {"/fields/2/canonical", "\"/caseReference\"", "/fields/2/canonical",
       "unknown canonical field '/caseReference'"},
      {"/fields/9/canonical", "\"/body/person/eyeColour\"", "/fields/9/canonical",
       "unknown canonical field"},
      {"/fields/0/canonical", "\"/sender\"", "/fields/0/canonical", "sets itself"},
      {"/fields/3/select", nullptr, "/fields/3/canonical", "without a `select`"},
      {"/fields/0/transform", "\"timestamp\"", "/fields/0/transform", "must be one of"},
      {"/fields/0/era", "\"lunar\"", "/fields/0/era", "must be"},
      {"/fields/0/colour", "\"red\"", "/fields/0/colour", "is not a member"},
      {"/kind/values/VICTIM_REFERRAL", "\"victim.found\"", "/kind/values/VICTIM_REFERRAL",
       "is not a canonical message type"},
      {"/format", nullptr, "/format", "is required"},
      {"/id", "\"Kh STT\"", "/id", "lower-case"},
      {"/dates/era", "\"gregorian\"", "/dates/era", "must be"},
      {"/constants/0/canonical", "\"/legalGround\"", "/constants/0/canonical",
       "unknown canonical field"},
      {"/fields/22/values/LOCATED", "7", "/fields/22/values/LOCATED", "must be a string"},
  };
  for (const auto& m : mistakes) {
    const auto problems = load(shipped_with(m.pointer, m.value));
    ASSERT_FALSE(problems.empty()) << m.pointer;
    const bool found = std::any_of(problems.begin(), problems.end(), [&](const auto& p) {
      return p.file == (dir_.path() / "partner.json").string() && p.field == m.field &&
             p.reason.find(m.words) != std::string::npos;
    });
    EXPECT_TRUE(found) << m.pointer << ": got " << problems.front().field << ": "
                       << problems.front().reason;
  }
}

TEST_F(MappingFiles, TwoFilesWithOneIdAndAClashWithABuiltInAreProblems) {
  write_file("a.json", shipped_with("/description", "\"first\""));
  auto problems = load(shipped_with("/description", "\"second\""), "b.json");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir_.path() / "b.json").string());
  EXPECT_EQ(problems[0].field, "/id");
  EXPECT_NE(problems[0].reason.find("already the id of " + (dir_.path() / "a.json").string()),
            std::string::npos);

  test::temp_dir other;
  test::write_file(other.path() / "kh-cnp.json", shipped_with("/id", "\"kh-cnp\""));
  std::vector<pipeline::config_problem> clash;
  auto set =
      mapped::mapping_set::load(other.path(), checker_->tables(), checker_->schemas(), clash);
  ASSERT_TRUE(clash.empty());
  mapped::install(set, clash);
  ASSERT_EQ(clash.size(), 1u);
  EXPECT_EQ(clash[0].file, (other.path() / "kh-cnp.json").string());
  EXPECT_NE(clash[0].reason.find("built-in adapter"), std::string::npos);
  EXPECT_EQ(find_adapter("kh-cnp")->content_type(), "application/json");
  EXPECT_NE(find_adapter("kh-cnp")->encode_error(400, "x", {}).find("error"), std::string::npos);
}

TEST_F(MappingFiles, BadJsonAndAMissingDirectoryAreProblems) {
  auto problems = load("{\"id\": ");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir_.path() / "partner.json").string());
  std::vector<pipeline::config_problem> missing;
  mapped::mapping_set::load(dir_.path() / "nope", checker_->tables(), checker_->schemas(), missing);
  EXPECT_EQ(missing.size(), 1u);
}

}  // namespace
}  // namespace mxgw::adapters
