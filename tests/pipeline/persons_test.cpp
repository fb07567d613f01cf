// Persons across messages: the comparison forms of names and document numbers, and the keyed
// digests taken from a canonical message (docs/persons.md).
#include "gateway/pipeline/persons.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>

#include <set>

#include "gateway/pipeline/names.hpp"
#include "tests/pipeline/shipped_translit.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

std::optional<std::string> form(const std::string& name_json) {
  return name_form(parse(name_json), &shipped());
}

match_key key_of(unsigned char fill) {
  match_key k;
  k.bytes.fill(fill);
  return k;
}

// A message whose body has the given members (persons at /body/person etc.).
std::vector<person_digest> digests(const std::string& body, const match_key& key = key_of(1)) {
  return person_digests_of(parse(R"({"type": "victim.identification", "body": )" + body + "}"), key,
                           &shipped());
}

std::set<std::string> kinds_at(const std::vector<person_digest>& ds, const std::string& pointer) {
  std::set<std::string> out;
  for (const auto& d : ds) {
    if (d.pointer == pointer) {
      out.insert(d.kind);
    }
  }
  return out;
}

// The digests two messages share (same kind and bytes).
std::size_t shared(const std::vector<person_digest>& a, const std::vector<person_digest>& b) {
  std::size_t n = 0;
  for (const auto& x : a) {
    for (const auto& y : b) {
      n += x.kind == y.kind && x.digest == y.digest ? 1 : 0;
    }
  }
  return n;
}

TEST(PersonForms, TheOrderAndSplitOfANameDoNotMatter) {
  const auto sok = form(R"({"family": ["Sok"], "given": ["Chantha"], "script": "Latn",
                            "kind": "primary"})");
  ASSERT_TRUE(sok);
  EXPECT_EQ(*sok, "CHANTHA SOK");
  EXPECT_EQ(form(R"({"given": ["CHANTHA", "SOK"], "script": "Latn", "kind": "alias"})"), sok);
  EXPECT_EQ(form(R"({"family": ["Chantha"], "given": ["sok"], "script": "Latn",
                     "kind": "primary", "order": "given-first"})"),
            sok);
}

TEST(PersonForms, KhmerLaoAndVietnameseNamesMeetTheirLatinSpellings) {
  EXPECT_EQ(
      form(R"({"family": ["សុខ"], "given": ["ចាន់ថា"], "script": "Khmr", "kind": "primary"})"),
      form(R"({"family": ["SOK"], "given": ["CHANTHA"], "script": "Latn", "kind": "primary"})"));
  // French-era Lao spellings fold as comparison_key does.
  EXPECT_EQ(form(R"({"given": ["ສົມພອນ"], "script": "Laoo", "kind": "primary"})"),
            form(R"({"given": ["Somphone"], "script": "Latn", "kind": "primary"})"));
  EXPECT_EQ(form(R"({"family": ["Đặng"], "given": ["Thị", "Ngọc", "Hân"], "script": "Latn",
                     "kind": "primary"})"),
            std::optional<std::string>("DANG HAN NGOC THI"));
  // Different people stay apart.
  EXPECT_NE(
      form(R"({"family": ["Sok"], "given": ["Chantha"], "script": "Latn", "kind": "primary"})"),
      form(R"({"family": ["Sak"], "given": ["Chantha"], "script": "Latn", "kind": "primary"})"));
}

TEST(PersonForms, ANameThatCannotBePutIntoLatinHasNoForm) {
  EXPECT_FALSE(form(R"({"given": ["สมชาย"], "script": "Thai", "kind": "primary"})"));  // no rules
  EXPECT_FALSE(name_form(parse(R"({"given": ["ສົມພອນ"], "script": "Laoo", "kind": "primary"})"),
                         nullptr));  // rules not loaded
  EXPECT_FALSE(form(R"({"given": [], "script": "Latn", "kind": "primary"})"));
  EXPECT_FALSE(form(R"({"given": ["--"], "script": "Latn", "kind": "primary"})"));
  EXPECT_FALSE(form(R"({"given": [7], "script": "Latn", "kind": "primary"})"));
  EXPECT_FALSE(form(R"({"given": ["Sok"]})"));  // no script
  // Letters of another script marked as Latin are not put into Latin.
  EXPECT_FALSE(form(R"({"given": ["Сок", "Chantha"], "script": "Latn", "kind": "primary"})"));
}

TEST(PersonForms, DocumentNumbersKeepLettersAndDigitsOnly) {
  EXPECT_EQ(document_form("b 123-456"), "B123456");
  EXPECT_EQ(document_form("N°0012345"), "N0012345");
  EXPECT_EQ(document_form("12-34"), "");  // four characters: too short to tell persons apart
}

TEST(PersonForms, DocumentNumbersInOtherScriptsKeepTheirDigits) {
  EXPECT_EQ(document_form("១២៣៤៥៦៧"), "1234567");  // Khmer digits
  EXPECT_EQ(document_form("໑໒໓໔໕"), "12345");      // Lao digits
  EXPECT_EQ(document_form("KHM-ID ១២៣៤៥៦៧"), "KHMID1234567");
  EXPECT_NE(document_form("KHM-ID ១២៣៤៥៦៧"), document_form("KHM-ID ៩៨៧៦៥៤៣"));
  // A letter of another script stays, so a number written with it stays apart from others.
  EXPECT_EQ(document_form("ក ១២៣៤៥"), "ក12345");
  EXPECT_NE(document_form("ក ១២៣៤៥"), document_form("ខ ១២៣៤៥"));
}

TEST(PersonForms, ADocumentNumberWithoutADigitIsNoNumber) {
  // Each of these would otherwise make everyone who has it one person.
  for (const char* none : {"unknown", "NONE", "KHM-ID", "passport", "N/A N/A"}) {
    EXPECT_EQ(document_form(none), "") << none;
  }
  EXPECT_EQ(document_form("unknown 1"), "UNKNOWN1");
}

TEST(PersonDigests, EachPersonOfTheBodyAtAnyDepthIsKeyed) {
  const auto ds = digests(R"({
    "person": {"names": [{"family": ["Sok"], "given": ["Chantha"], "script": "Latn",
                          "kind": "primary"}],
               "birthDate": "2009-03",
               "documents": [{"type": "passport", "number": "N 0012345"}]},
    "suspects": [{"names": [{"given": ["Bounmy"], "script": "Latn", "kind": "primary"}],
                  "birthDate": "1980"},
                 {"names": [{"given": ["Lee"], "script": "Latn", "kind": "primary"}]}]})");
  EXPECT_EQ(kinds_at(ds, "/body/person"),
            (std::set<std::string>{"document", "name", "name-birth-year"}));
  // One word alone is too common for "name"; with a birth year it is kept.
  EXPECT_EQ(kinds_at(ds, "/body/suspects/0"), (std::set<std::string>{"name-birth-year"}));
  EXPECT_TRUE(kinds_at(ds, "/body/suspects/1").empty());
  for (const auto& d : ds) {
    EXPECT_EQ(d.digest.size(), 32U);
  }
}

TEST(PersonDigests, TheSamePersonInTwoScriptsSharesDigests) {
  const auto khmer = digests(R"({"person": {"names": [
      {"family": ["សុខ"], "given": ["ចាន់ថា"], "script": "Khmr", "kind": "primary"}],
      "birthDate": "2009-03-14"}})");
  const auto latin = digests(R"({"person": {"names": [
      {"family": ["SOK"], "given": ["CHANTHA"], "script": "Latn", "kind": "primary"}],
      "birthDate": "2009"}})");
  EXPECT_EQ(shared(khmer, latin), 2U);  // name, and name with the birth year
  const auto other_year = digests(R"({"person": {"names": [
      {"family": ["SOK"], "given": ["CHANTHA"], "script": "Latn", "kind": "primary"}],
      "birthDate": "2001"}})");
  EXPECT_EQ(shared(khmer, other_year), 1U);  // the name only
  const auto approx = digests(R"({"person": {"names": [
      {"family": ["SOK"], "given": ["CHANTHA"], "script": "Latn", "kind": "primary"}],
      "birthDate": "2009", "birthDateApprox": true}})");
  EXPECT_EQ(kinds_at(approx, "/body/person"), (std::set<std::string>{"name"}));
}

TEST(PersonDigests, DigestsDependOnTheKeyAndNeverCarryTheName) {
  const std::string body = R"({"person": {"names": [
      {"family": ["Sok"], "given": ["Chantha"], "script": "Latn", "kind": "primary"}],
      "documents": [{"type": "passport", "number": "N0012345"}]}})";
  const auto one = digests(body, key_of(1));
  const auto two = digests(body, key_of(2));
  ASSERT_EQ(one.size(), 2U);
  EXPECT_EQ(shared(one, two), 0U);
  EXPECT_EQ(shared(one, digests(body, key_of(1))), 2U);
  // That a digest is the HMAC of its kind and form, and nothing else, is the next test's.
}

// The documented construction, checked against OpenSSL's one-shot HMAC: each digest stands alone
// (the MAC restarts for every value and after a change of key).
TEST(PersonDigests, EachDigestIsHmacSha256OfKindNulForm) {
  const auto reference = [](const match_key& key, const std::string& input) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &size);
    return std::string(reinterpret_cast<const char*>(out), size);
  };
  const std::string body = R"({"person": {"names": [
      {"family": ["Sok"], "given": ["Chantha"], "script": "Latn", "kind": "primary"}],
      "birthDate": "2009-03", "documents": [{"type": "passport", "number": "N0012345"}]}})";
  for (const unsigned char fill : {7, 8, 7}) {
    const auto ds = digests(body, key_of(fill));
    ASSERT_EQ(ds.size(), 3U);
    EXPECT_EQ(ds[0].kind, "document");
    EXPECT_EQ(ds[0].digest, reference(key_of(fill), std::string("document\0N0012345", 17)));
    EXPECT_EQ(ds[1].kind, "name-birth-year");
    EXPECT_EQ(ds[1].digest, reference(key_of(fill), std::string("name-birth-year\0CHANTHA SOK\0"
                                                                "2009",
                                                                32)));
    EXPECT_EQ(ds[2].kind, "name");
    EXPECT_EQ(ds[2].digest, reference(key_of(fill), std::string("name\0CHANTHA SOK", 16)));
  }
}

TEST(PersonDigests, OddInputGivesNoDigestsRatherThanAnError) {
  EXPECT_TRUE(digests(R"({"person": {"names": "Sok"}})").empty());
  EXPECT_TRUE(digests(R"({"person": {"names": [1, null, {"script": 5}]}})").empty());
  EXPECT_TRUE(digests(R"({"person": {"names": [], "documents": "N0012345"}})").empty());
  EXPECT_TRUE(digests(R"([])").empty());
  EXPECT_TRUE(person_digests_of(parse(R"({"type": "receipt"})"), key_of(1), &shipped()).empty());
}

TEST(PersonDigests, AMessageGivesAtMostTheCap) {
  std::string persons = "[";
  for (int i = 0; i < 400; ++i) {
    persons += std::string(i == 0 ? "" : ",") + R"({"names": [{"given": ["Person", "N)" +
               std::to_string(i) + R"("], "script": "Latn", "kind": "primary"}]})";
  }
  persons += "]";
  EXPECT_EQ(digests(R"({"persons": )" + persons + "}").size(), max_person_digests);
}

}  // namespace
}  // namespace mxgw::pipeline
