// The partners file and the rule that maps a verified certificate to exactly one enabled partner,
// including the facts read from a real certificate.
#include "gateway/identity/partner_registry.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/peer_identity.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::identity {
namespace {

using test::temp_dir;
using test::write_file;

// 64 hex digits each; pin_a_colons is pin_a written the way `openssl x509 -fingerprint` prints it.
const std::string pin_a = "3b1e4c0f9a7d2e6b8c5a1f0e9d8c7b6a5f4e3d2c1b0a99887766554433221100";
const std::string pin_b = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const std::string pin_a_colons =
    "3B:1E:4C:0F:9A:7D:2E:6B:8C:5A:1F:0E:9D:8C:7B:6A:5F:4E:3D:2C:1B:0A:99:88:77:66:55:44:33:22:11:"
    "00";

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += "\n  " + p.file + ": " + p.field + ": " + p.reason;
  }
  return out;
}

class PartnerRegistryLoad : public ::testing::Test {
 protected:
  partner_registry load(const std::string& text) {
    write_file(file(), text);
    return partner_registry::load(file(), problems_);
  }

  /// Loads a file with the valid partner kh-ratanakiri first and `entry` second.
  partner_registry load_second(const std::string& entry) {
    return load(R"({"partners": [
      {"id": "kh-ratanakiri", "name": "Ratanakiri Provincial Police", "country": "KH"},)" +
                entry + "]}");
  }

  /// Expects exactly one problem, naming the file and `field`.
  void expect_only_problem_at(const std::string& field) {
    ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
    EXPECT_EQ(problems_[0].file, file().string());
    EXPECT_EQ(problems_[0].field, field) << problems_[0].reason;
    EXPECT_FALSE(problems_[0].reason.empty());
  }

  /// For each case, a partner kh-stungtreng with those `members` (its JSON object's members)
  /// after kh-ratanakiri: exactly one problem, at its `field`, and only kh-stungtreng left out.
  void expect_each_refused_alone(const std::vector<std::pair<std::string, std::string>>& cases) {
    for (const auto& [members, field] : cases) {
      SCOPED_TRACE(members);
      problems_.clear();
      const auto registry =
          load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", )" + members + "}");
      expect_only_problem_at("/partners/1" + field);
      EXPECT_EQ(registry.find("kh-stungtreng"), nullptr);
      EXPECT_NE(registry.find("kh-ratanakiri"), nullptr);
    }
  }

  std::filesystem::path file() const { return dir_ / "partners.json"; }

  temp_dir dir_;
  std::vector<config_problem> problems_;
};

TEST_F(PartnerRegistryLoad, ValidFileLoadsWithDefaults) {
  const auto registry = load(R"({"partners": [
    {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN", "adapter": "mx",
     "description": "free text"},
    {"id": "la-houaphanh", "name": "Houaphanh Provincial Police", "country": "LA",
     "enabled": false, "pinnedSha256": [")" +
                             pin_a + R"("]}]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(registry.size(), 2u);
  const partner* gialai = registry.find("vn-gialai");
  ASSERT_NE(gialai, nullptr);
  EXPECT_EQ(gialai->name, "Gia Lai Provincial Police");
  EXPECT_EQ(gialai->country, "VN");
  EXPECT_EQ(gialai->adapter, "mx");
  EXPECT_TRUE(gialai->enabled) << "enabled unless disabled";
  EXPECT_TRUE(gialai->pinned_sha256.empty());
  const partner* houaphanh = registry.find("la-houaphanh");
  ASSERT_NE(houaphanh, nullptr);
  EXPECT_FALSE(houaphanh->enabled);
  EXPECT_EQ(houaphanh->pinned_sha256, std::vector<std::string>{pin_a});
  EXPECT_EQ(registry.find("kh-ratanakiri"), nullptr);
}

TEST_F(PartnerRegistryLoad, RepositoryPartnersFileLoads) {
  std::vector<config_problem> problems;
  const auto registry =
      partner_registry::load(test::source_dir() / "config" / "partners.json", problems);
  EXPECT_TRUE(problems.empty()) << describe(problems);
  EXPECT_GE(registry.size(), 3u);
  EXPECT_NE(registry.find("vn-gialai"), nullptr);
  EXPECT_NE(registry.find("kh-ratanakiri"), nullptr);
}

TEST_F(PartnerRegistryLoad, UnknownMember) {
  const auto registry =
      load_second(R"({"id": "vn-gialai", "name": "Gia Lai", "country": "VN", "pinnedSha265": []})");
  expect_only_problem_at("/partners/1/pinnedSha265");
  EXPECT_EQ(registry.find("vn-gialai"), nullptr) << "an entry with a problem is not kept";
  EXPECT_NE(registry.find("kh-ratanakiri"), nullptr) << "valid entries are kept";
}

TEST_F(PartnerRegistryLoad, InvalidIds) {
  for (const char* id : {"KH-ratanakiri", "kh_ratanakiri", "-kh", "k", "kh ratanakiri", ""}) {
    SCOPED_TRACE(id);
    problems_.clear();
    load_second(R"({"id": ")" + std::string(id) + R"(", "name": "X", "country": "KH"})");
    expect_only_problem_at("/partners/1/id");
  }
  problems_.clear();
  load_second(R"({"id": 7, "name": "X", "country": "KH"})");
  expect_only_problem_at("/partners/1/id");
  problems_.clear();
  load_second(R"({"name": "X", "country": "KH"})");
  expect_only_problem_at("/partners/1/id");
}

TEST_F(PartnerRegistryLoad, DuplicateId) {
  const auto registry =
      load_second(R"({"id": "kh-ratanakiri", "name": "Someone else", "country": "KH"})");
  expect_only_problem_at("/partners/1/id");
  ASSERT_NE(registry.find("kh-ratanakiri"), nullptr);
  EXPECT_EQ(registry.find("kh-ratanakiri")->name, "Ratanakiri Provincial Police")
      << "the first definition stands";
}

TEST_F(PartnerRegistryLoad, BadCountry) {
  for (const char* country : {"kh", "KHM", "K", "", "K1"}) {
    SCOPED_TRACE(country);
    problems_.clear();
    load_second(R"({"id": "kh-stungtreng", "name": "X", "country": ")" + std::string(country) +
                R"("})");
    expect_only_problem_at("/partners/1/country");
  }
}

TEST_F(PartnerRegistryLoad, MissingName) {
  load_second(R"({"id": "kh-stungtreng", "country": "KH"})");
  expect_only_problem_at("/partners/1/name");
}

TEST_F(PartnerRegistryLoad, UnknownAdapter) {
  write_file(file(), R"({"partners": [
      {"id": "kh-ratanakiri", "name": "Ratanakiri Provincial Police", "country": "KH"},
      {"id": "kh-cnp", "name": "X", "country": "KH", "adapter": "kh-cnp-xml"}]})");
  const std::vector<std::string> known = {"kh-cnp", "mx"};
  const auto registry = partner_registry::load(file(), problems_, &known);
  expect_only_problem_at("/partners/1/adapter");
  EXPECT_NE(problems_[0].reason.find("known: kh-cnp, mx"), std::string::npos);
  EXPECT_EQ(registry.find("kh-cnp"), nullptr);
}

TEST_F(PartnerRegistryLoad, AdapterMustAtLeastBeAnIdWithoutTheRegistry) {
  load_second(R"({"id": "kh-cnp", "name": "X", "country": "KH", "adapter": "KH CNP"})");
  expect_only_problem_at("/partners/1/adapter");
}

TEST_F(PartnerRegistryLoad, EnabledMustBeABoolean) {
  for (const char* value : {R"("false")", "0", "null"}) {
    SCOPED_TRACE(value);
    problems_.clear();
    const auto registry = load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                                          "enabled": )" +
                                      std::string(value) + "}");
    expect_only_problem_at("/partners/1/enabled");
    EXPECT_EQ(registry.find("kh-stungtreng"), nullptr) << "never served by accident";
  }
}

TEST_F(PartnerRegistryLoad, BadFingerprint) {
  for (const std::string& pin :
       {pin_a.substr(1), pin_a + "0", "zz" + pin_a.substr(2), std::string("sha256:") + pin_a}) {
    SCOPED_TRACE(pin);
    problems_.clear();
    load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "pinnedSha256": [")" +
                pin_b + R"(", ")" + pin + R"("]})");
    expect_only_problem_at("/partners/1/pinnedSha256/1");
  }
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "pinnedSha256": [1]})");
  expect_only_problem_at("/partners/1/pinnedSha256/0");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "pinnedSha256": ")" + pin_a +
              R"("})");
  expect_only_problem_at("/partners/1/pinnedSha256");
}

TEST_F(PartnerRegistryLoad, SamePinForTwoPartners) {
  const auto registry = load(R"({"partners": [
    {"id": "kh-ratanakiri", "name": "A", "country": "KH", "pinnedSha256": [")" +
                             pin_a + R"("]},
    {"id": "kh-stungtreng", "name": "B", "country": "KH", "pinnedSha256": [")" +
                             pin_a_colons + R"("]}]})");
  expect_only_problem_at("/partners/1/pinnedSha256/0");
  EXPECT_EQ(registry.find("kh-stungtreng"), nullptr);
  // The pin still names the first partner only.
  EXPECT_EQ(registry.identify({{}, pin_a}).partner_id, "kh-ratanakiri");
}

TEST_F(PartnerRegistryLoad, RevokedFingerprintsAreRefusedWhateverTheyName) {
  // As GET /admin/v1/export writes them: a revoked certificate stays refused in files rebuilt
  // from the export, by its SAN or by a pin of any partner.
  const auto registry = load(R"({"partners": [
    {"id": "kh-ratanakiri", "name": "A", "country": "KH", "revokedSha256": [")" +
                             pin_a_colons + R"("]},
    {"id": "kh-stungtreng", "name": "B", "country": "KH", "pinnedSha256": [")" +
                             pin_a + R"("]}]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(registry.find("kh-ratanakiri")->revoked_sha256, std::vector<std::string>{pin_a});
  EXPECT_EQ(registry.identify({{"kh-ratanakiri"}, pin_a}).refusal,
            identity_refusal::revoked_certificate);
  EXPECT_EQ(registry.identify({{}, pin_a}).refusal, identity_refusal::revoked_certificate);
  EXPECT_EQ(registry.identify({{"kh-ratanakiri"}, pin_b}).partner_id, "kh-ratanakiri");
  // Written back as read.
  EXPECT_NE(to_json(*registry.find("kh-ratanakiri")).find(R"("revokedSha256":[")" + pin_a),
            std::string::npos);
}

TEST_F(PartnerRegistryLoad, BadRevokedFingerprints) {
  for (const std::string& entry :
       {R"("revokedSha256": ")" + pin_a + R"(")", std::string(R"("revokedSha256": [1])"),
        R"("revokedSha256": [")" + pin_a.substr(1) + R"("])",
        R"("revokedSha256": [")" + pin_a + R"(", ")" + pin_a_colons + R"("])"}) {
    SCOPED_TRACE(entry);
    problems_.clear();
    load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", )" + entry + "}");
    ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
    EXPECT_EQ(problems_[0].field.rfind("/partners/1/revokedSha256", 0), 0u) << problems_[0].field;
  }
  // A fingerprint both pinned and revoked is a mistake.
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "pinnedSha256": [")" +
              pin_b + R"("], "revokedSha256": [")" + pin_b + R"("]})");
  expect_only_problem_at("/partners/1/pinnedSha256/0");
}

// As GET /admin/v1/export writes a rotated partner: the rotation's cut-offs and the recorded
// certificates still in its overlap.
const std::string rotated_members = R"("rotationCutoffs": [
      {"cutOff": "2026-12-01T10:00:00.000Z", "retiringUntil": "2026-12-15T10:00:00.000Z",
       "replacedBy": ")" + pin_b + R"(", "pinnedBefore": [")" +
                                    pin_a_colons + R"("]}],
    "retiringSha256": [{"sha256": ")" +
                                    pin_a + R"(", "retiringUntil": "2026-12-15T10:00:00.000Z"}])";

TEST_F(PartnerRegistryLoad, RotationCutoffsAndRetiringCertificatesLoadAndWriteBack) {
  const auto registry = load_second(R"({"id": "kh-stungtreng", "name": "B", "country": "KH", )" +
                                    rotated_members + "}");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const partner* p = registry.find("kh-stungtreng");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->rotation_cutoffs.size(), 1u);
  const auto& c = p->rotation_cutoffs[0];
  EXPECT_EQ(c.cut_off, "2026-12-01T10:00:00.000Z");
  EXPECT_EQ(c.retiring_until, "2026-12-15T10:00:00.000Z");
  EXPECT_EQ(c.replaced_by, pin_b);
  EXPECT_EQ(c.pinned_before, std::vector<std::string>{pin_a});  // normalised
  EXPECT_EQ(c.until_at - c.cut_off_at, std::chrono::hours(24 * 14));
  ASSERT_EQ(p->retiring_sha256.size(), 1u);
  EXPECT_EQ(p->retiring_sha256[0].sha256, pin_a);
  EXPECT_EQ(p->retiring_sha256[0].retiring_until, "2026-12-15T10:00:00.000Z");

  // Written back as read, and read again the same.
  rapidjson::Document doc;
  doc.Parse(to_json(*p).c_str());
  ASSERT_FALSE(doc.HasParseError());
  std::vector<config_problem> again;
  const auto back = partner_registry::parse_partner(doc, "", again, "export", nullptr);
  ASSERT_TRUE(back) << describe(again);
  EXPECT_EQ(to_json(*back), to_json(*p));
  ASSERT_EQ(back->rotation_cutoffs.size(), 1u);
  EXPECT_EQ(back->rotation_cutoffs[0].cut_off_at, c.cut_off_at);
  EXPECT_EQ(back->retiring_sha256[0].sha256, pin_a);
  // A partner without them writes neither member.
  EXPECT_EQ(to_json(*registry.find("kh-ratanakiri")).find("rotationCutoffs"), std::string::npos);
  EXPECT_EQ(to_json(*registry.find("kh-ratanakiri")).find("retiringSha256"), std::string::npos);
}

TEST_F(PartnerRegistryLoad, BadRotationCutoffsAreNamedAndThePartnerIsLeftOut) {
  const std::string times =
      R"("cutOff": "2026-12-01T10:00:00Z", "retiringUntil": "2026-12-15T10:00:00Z")";
  const std::string good =
      "{" + times + R"(, "replacedBy": ")" + pin_b + R"(", "pinnedBefore": []})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("rotationCutoffs": {})", "/rotationCutoffs"},
      {R"("rotationCutoffs": [7])", "/rotationCutoffs/0"},
      {R"("rotationCutoffs": [{"cutOff": "yesterday", "retiringUntil": "2026-12-15T10:00:00Z", "replacedBy": ")" +
           pin_b + R"("}])",
       "/rotationCutoffs/0/cutOff"},
      {R"("rotationCutoffs": [{"cutOff": "2026-12-01T10:00:00Z", "replacedBy": ")" + pin_b +
           R"("}])",
       "/rotationCutoffs/0/retiringUntil"},
      {R"("rotationCutoffs": [{"cutOff": "2026-12-15T10:00:00Z", "retiringUntil": "2026-12-01T10:00:00Z", "replacedBy": ")" +
           pin_b + R"("}])",
       "/rotationCutoffs/0/retiringUntil"},
      {R"("rotationCutoffs": [{)" + times + R"(}])", "/rotationCutoffs/0/replacedBy"},
      {R"("rotationCutoffs": [{)" + times + R"(, "replacedBy": "abc"}])",
       "/rotationCutoffs/0/replacedBy"},
      {R"("rotationCutoffs": [{)" + times + R"(, "replacedBy": ")" + pin_b +
           R"(", "pinnedBefore": "x"}])",
       "/rotationCutoffs/0/pinnedBefore"},
      {R"("rotationCutoffs": [{)" + times + R"(, "replacedBy": ")" + pin_b +
           R"(", "pinnedBefore": [")" + pin_a + R"(", ")" + pin_a_colons + R"("]}])",
       "/rotationCutoffs/0/pinnedBefore/1"},
      {R"("rotationCutoffs": [{)" + times + R"(, "replacedBy": ")" + pin_b + R"(", "extra": 1}])",
       "/rotationCutoffs/0/extra"},
      {R"("rotationCutoffs": [)" + good + "," + good + "]", "/rotationCutoffs/1/replacedBy"},
  };
  expect_each_refused_alone(cases);
  // A rotation without overlap ends it on the cut-off's whole second, a moment before it.
  problems_.clear();
  const auto registry = load_second(
      R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "rotationCutoffs": [{"cutOff": "2026-12-01T10:00:00.750Z", "retiringUntil": "2026-12-01T10:00:00.000Z", "replacedBy": ")" +
      pin_b + R"("}]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_NE(registry.find("kh-stungtreng"), nullptr);
}

// A pin from before the rotation that the exporting gateway recorded again since (its
// recordedSince): read, written back as read; an export without the member reads as before.
TEST_F(PartnerRegistryLoad, CertificatesRecordedSinceACutOffLoadAndWriteBack) {
  const std::string members = R"("pinnedSha256": [")" + pin_a + R"("], "rotationCutoffs": [
      {"cutOff": "2026-12-01T10:00:00.000Z", "retiringUntil": "2026-12-15T10:00:00.000Z",
       "replacedBy": ")" + pin_b +
                              R"(", "pinnedBefore": [")" + pin_a + R"("], "recordedSince": [")" +
                              pin_a_colons + R"("]}])";
  const auto registry =
      load_second(R"({"id": "kh-stungtreng", "name": "B", "country": "KH", )" + members + "}");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const partner* p = registry.find("kh-stungtreng");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->rotation_cutoffs.size(), 1u);
  EXPECT_EQ(p->rotation_cutoffs[0].recorded_since, std::vector<std::string>{pin_a});  // normalised
  EXPECT_NE(to_json(*p).find(R"("recordedSince":[")" + pin_a + R"("])"), std::string::npos)
      << to_json(*p);
  rapidjson::Document doc;
  doc.Parse(to_json(*p).c_str());
  ASSERT_FALSE(doc.HasParseError());
  std::vector<config_problem> again;
  const auto back = partner_registry::parse_partner(doc, "", again, "export", nullptr);
  ASSERT_TRUE(back) << describe(again);
  EXPECT_EQ(back->rotation_cutoffs[0].recorded_since, std::vector<std::string>{pin_a});

  // Without it (an export older than the member, or nothing recorded since): an empty list, and
  // nothing written.
  problems_.clear();
  const auto older = load_second(R"({"id": "kh-stungtreng", "name": "B", "country": "KH", )" +
                                 rotated_members + "}");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_NE(older.find("kh-stungtreng"), nullptr);
  EXPECT_TRUE(older.find("kh-stungtreng")->rotation_cutoffs[0].recorded_since.empty());
  EXPECT_EQ(to_json(*older.find("kh-stungtreng")).find("recordedSince"), std::string::npos);
}

TEST_F(PartnerRegistryLoad, BadCertificatesRecordedSinceACutOffAreNamedAndThePartnerIsLeftOut) {
  const std::string cutoff =
      R"("cutOff": "2026-12-01T10:00:00Z", "retiringUntil": "2026-12-15T10:00:00Z", "replacedBy": ")" +
      pin_b + R"(", "pinnedBefore": [")" + pin_a + R"("])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("rotationCutoffs": [{)" + cutoff + R"(, "recordedSince": ")" + pin_a + R"("}])",
       "/rotationCutoffs/0/recordedSince"},
      {R"("rotationCutoffs": [{)" + cutoff + R"(, "recordedSince": [")" + pin_a.substr(2) +
           R"("]}])",
       "/rotationCutoffs/0/recordedSince/0"},
      {R"("rotationCutoffs": [{)" + cutoff + R"(, "recordedSince": [")" + pin_a + R"(", 7]}])",
       "/rotationCutoffs/0/recordedSince/1"},
      {R"("rotationCutoffs": [{)" + cutoff + R"(, "recordedSince": [")" + pin_a + R"(", ")" +
           pin_a_colons + R"("]}])",
       "/rotationCutoffs/0/recordedSince/1"},
      // Recorded since the cut-off and revoked at once is a mistake (the export lists neither
      // a revoked nor a retired record there).
      {R"("revokedSha256": [")" + std::string(64, 'c') + R"("], "rotationCutoffs": [{)" + cutoff +
           R"(, "recordedSince": [")" + std::string(64, 'c') + R"("]}])",
       "/rotationCutoffs/0/recordedSince/0"},
      {R"("rotationCutoffs": [{)" + cutoff + R"(, "recordedSinceAt": "2026-12-02T10:00:00Z"}])",
       "/rotationCutoffs/0/recordedSinceAt"},
  };
  expect_each_refused_alone(cases);
}

TEST_F(PartnerRegistryLoad, BadRetiringCertificatesAreNamedAndThePartnerIsLeftOut) {
  const std::string until = R"("retiringUntil": "2026-12-15T10:00:00Z")";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("retiringSha256": [")" + pin_a + R"("])", "/retiringSha256/0"},
      {R"("retiringSha256": {})", "/retiringSha256"},
      {R"("retiringSha256": [{)" + until + "}]", "/retiringSha256/0/sha256"},
      {R"("retiringSha256": [{"sha256": "12", )" + until + "}]", "/retiringSha256/0/sha256"},
      {R"("retiringSha256": [{"sha256": ")" + pin_a + R"("}])", "/retiringSha256/0/retiringUntil"},
      {R"("retiringSha256": [{"sha256": ")" + pin_a +
           R"(", "retiringUntil": "2026-13-01T00:00:00Z"}])",
       "/retiringSha256/0/retiringUntil"},
      {R"("retiringSha256": [{"sha256": ")" + pin_a + R"(", )" + until + R"(, "state": "x"}])",
       "/retiringSha256/0/state"},
      {R"("retiringSha256": [{"sha256": ")" + pin_a + R"(", )" + until + R"(}, {"sha256": ")" +
           pin_a_colons + R"(", )" + until + "}]",
       "/retiringSha256/1/sha256"},
      // Retiring and revoked at once is a mistake.
      {R"("revokedSha256": [")" + pin_a + R"("], "retiringSha256": [{"sha256": ")" + pin_a +
           R"(", )" + until + "}]",
       "/retiringSha256/0/sha256"},
  };
  expect_each_refused_alone(cases);
  // A retiring certificate names its partner: another partner may not pin it.
  problems_.clear();
  const auto registry = load(R"({"partners": [
    {"id": "kh-ratanakiri", "name": "A", "country": "KH", "pinnedSha256": [")" +
                             pin_a + R"("]},
    {"id": "kh-stungtreng", "name": "B", "country": "KH", "retiringSha256": [{"sha256": ")" +
                             pin_a + R"(", )" + until + "}]}]}");
  expect_only_problem_at("/partners/1/retiringSha256/0/sha256");
  EXPECT_EQ(registry.find("kh-stungtreng"), nullptr);
}

TEST_F(PartnerRegistryLoad, ColonSeparatedUpperCaseFingerprintIsNormalised) {
  const auto registry = load(R"({"partners": [
    {"id": "kh-ratanakiri", "name": "A", "country": "KH", "pinnedSha256": [")" +
                             pin_a_colons + R"("]}]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_NE(registry.find("kh-ratanakiri"), nullptr);
  EXPECT_EQ(registry.find("kh-ratanakiri")->pinned_sha256, std::vector<std::string>{pin_a});
  const auto decision = registry.identify({{}, pin_a});
  EXPECT_EQ(decision.refusal, identity_refusal::none);
  EXPECT_EQ(decision.partner_id, "kh-ratanakiri");
}

TEST_F(PartnerRegistryLoad, EveryProblemInTheFileIsReported) {
  load(R"({"partners": [
    {"id": "KH", "name": "", "country": "kh", "adapter": "x", "enabled": "yes", "extra": 1},
    "not an object",
    {"id": "vn-gialai", "name": "Gia Lai", "country": "VN", "pinnedSha256": ["abc"]}]})");
  std::multiset<std::string> fields;
  for (const auto& p : problems_) {
    EXPECT_EQ(p.file, file().string());
    fields.insert(p.field);
  }
  EXPECT_EQ(fields, (std::multiset<std::string>{"/partners/0/extra", "/partners/0/id",
                                                "/partners/0/name", "/partners/0/country",
                                                "/partners/0/adapter", "/partners/0/enabled",
                                                "/partners/1", "/partners/2/pinnedSha256/0"}))
      << describe(problems_);
}

TEST_F(PartnerRegistryLoad, FileThatIsNotJsonOrHasNoListIsOneProblem) {
  load(R"({"partners": [)");
  ASSERT_EQ(problems_.size(), 1u) << describe(problems_);
  EXPECT_EQ(problems_[0].file, file().string());

  problems_.clear();
  load(R"({"partner": []})");
  expect_only_problem_at("/partners");

  problems_.clear();
  load(R"([])");
  expect_only_problem_at("/partners");

  problems_.clear();
  const auto registry = partner_registry::load(dir_ / "absent.json", problems_);
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_EQ(problems_[0].file, (dir_ / "absent.json").string());
  EXPECT_EQ(registry.size(), 0u);
}

// --- endpoint, message types, agreements, purposes, delivery -----------------------------------

TEST_F(PartnerRegistryLoad, RoutingFieldsLoad) {
  const auto registry = load(R"({"partners": [
    {"id": "kh-stungtreng", "name": "Stung Treng", "country": "KH",
     "endpoint": "https://127.0.0.1:9102/v1/messages",
     "sends": ["hotline.tip", "receipt"],
     "receives": ["victim.identification", "person.wanted"],
     "agreements": ["victim-data"],
     "purposes": ["investigation", "victim-protection"],
     "delivery": {"timeout_ms": 5000, "max_attempts": 3, "max_age_s": 3600,
                  "backoff_base_ms": 200, "backoff_cap_ms": 60000, "concurrency": 2}}]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  const partner* p = registry.find("kh-stungtreng");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->endpoint, "https://127.0.0.1:9102/v1/messages");
  ASSERT_TRUE(p->sends.has_value());
  EXPECT_EQ(*p->sends, (std::vector<std::string>{"hotline.tip", "receipt"}));
  EXPECT_TRUE(p->may_send("receipt"));
  EXPECT_FALSE(p->may_send("person.wanted"));
  EXPECT_TRUE(p->may_receive("person.wanted"));
  EXPECT_FALSE(p->may_receive("hotline.tip"));
  EXPECT_TRUE(p->has_agreement("victim-data"));
  EXPECT_FALSE(p->has_agreement("other"));
  EXPECT_EQ(p->purposes, (std::vector<std::string>{"investigation", "victim-protection"}));
  EXPECT_EQ(p->delivery.timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(p->delivery.max_attempts, 3);
  EXPECT_EQ(p->delivery.max_age, std::chrono::seconds(3600));
  EXPECT_EQ(p->delivery.backoff_base, std::chrono::milliseconds(200));
  EXPECT_EQ(p->delivery.backoff_cap, std::chrono::milliseconds(60000));
  EXPECT_EQ(p->delivery.concurrency, 2);
}

TEST_F(PartnerRegistryLoad, RoutingFieldsDefaults) {
  const auto registry = load_second(R"({"id": "vn-gialai", "name": "Gia Lai", "country": "VN",
                                        "delivery": {"max_attempts": 5}})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  for (const char* id : {"kh-ratanakiri", "vn-gialai"}) {
    SCOPED_TRACE(id);
    const partner* p = registry.find(id);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(p->endpoint.empty()) << "no endpoint: can send, cannot be a recipient";
    EXPECT_FALSE(p->sends.has_value());
    EXPECT_FALSE(p->receives.has_value());
    for (auto type : canonical_message_types()) {
      EXPECT_TRUE(p->may_send(type)) << "absent = every type";
      EXPECT_TRUE(p->may_receive(type)) << "absent = every type";
    }
    EXPECT_TRUE(p->agreements.empty());
    EXPECT_TRUE(p->purposes.empty());
    EXPECT_EQ(p->delivery.timeout, std::chrono::milliseconds(10000));
    EXPECT_EQ(p->delivery.max_age, std::chrono::seconds(86400));
    EXPECT_EQ(p->delivery.backoff_base, std::chrono::milliseconds(1000));
    EXPECT_EQ(p->delivery.backoff_cap, std::chrono::milliseconds(300000));
    EXPECT_EQ(p->delivery.concurrency, 4);
  }
  EXPECT_EQ(registry.find("kh-ratanakiri")->delivery.max_attempts, 12);
  EXPECT_EQ(registry.find("vn-gialai")->delivery.max_attempts, 5) << "one setting, others default";
}

TEST_F(PartnerRegistryLoad, EmptyReceivesMeansNothing) {
  const auto registry = load_second(
      R"({"id": "vn-gialai", "name": "Gia Lai", "country": "VN", "receives": [], "sends": []})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_NE(registry.find("vn-gialai"), nullptr);
  EXPECT_FALSE(registry.find("vn-gialai")->may_receive("receipt"));
  EXPECT_FALSE(registry.find("vn-gialai")->may_send("receipt"));
}

TEST_F(PartnerRegistryLoad, EnabledPartnerThatReceivesWithoutEndpointIsFine) {
  const auto registry = load_second(R"({"id": "vn-gialai", "name": "Gia Lai", "country": "VN",
                                        "enabled": true, "receives": ["receipt"]})");
  EXPECT_TRUE(problems_.empty()) << describe(problems_);
  ASSERT_NE(registry.find("vn-gialai"), nullptr);
  EXPECT_TRUE(registry.find("vn-gialai")->endpoint.empty());
}

TEST_F(PartnerRegistryLoad, EndpointMustBeAnHttpsUrl) {
  for (const char* endpoint :
       {R"("http://127.0.0.1:9101/v1/messages")", R"("ftp://example.org/")", R"("not a url")",
        R"("/v1/messages")", R"("127.0.0.1:9101")", R"("https://user:secret@example.org/")",
        R"("https://example.org/v1#part")", R"("https://example.org:99999/")", R"("https:/x")",
        R"("")", "7", "null", R"(["https://example.org/"])"}) {
    SCOPED_TRACE(endpoint);
    problems_.clear();
    const auto registry = load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                                          "endpoint": )" +
                                      std::string(endpoint) + "}");
    expect_only_problem_at("/partners/1/endpoint");
    EXPECT_EQ(registry.find("kh-stungtreng"), nullptr);
  }
  for (const char* endpoint : {"https://127.0.0.1:9101/v1/messages", "HTTPS://example.org",
                               "https://[::1]:8443/v1/messages", "https://kh.example.org/in?x=1"}) {
    SCOPED_TRACE(endpoint);
    problems_.clear();
    const auto registry = load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                                          "endpoint": ")" +
                                      std::string(endpoint) + R"("})");
    EXPECT_TRUE(problems_.empty()) << describe(problems_);
    ASSERT_NE(registry.find("kh-stungtreng"), nullptr);
    EXPECT_EQ(registry.find("kh-stungtreng")->endpoint, endpoint);
  }
}

TEST_F(PartnerRegistryLoad, MessageTypesMustBeCanonical) {
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                  "sends": ["receipt", "victim-identification"]})");
  expect_only_problem_at("/partners/1/sends/1");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                  "receives": ["receipt", "receipt"]})");
  expect_only_problem_at("/partners/1/receives/1");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "receives": "receipt"})");
  expect_only_problem_at("/partners/1/receives");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "sends": [1]})");
  expect_only_problem_at("/partners/1/sends/0");
}

TEST_F(PartnerRegistryLoad, AgreementsAndPurposesMustBeKnown) {
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                  "agreements": ["victim-data", "victim_data"]})");
  expect_only_problem_at("/partners/1/agreements/1");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH",
                  "purposes": ["investigation", "marketing"]})");
  expect_only_problem_at("/partners/1/purposes/1");
  problems_.clear();
  load_second(R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "agreements": {}})");
  expect_only_problem_at("/partners/1/agreements");
}

TEST_F(PartnerRegistryLoad, DeliverySettingsAreChecked) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"retries": 3})", "/partners/1/delivery/retries"},
      {R"({"timeout_ms": 0})", "/partners/1/delivery/timeout_ms"},
      {R"({"timeout_ms": "10000"})", "/partners/1/delivery/timeout_ms"},
      {R"({"timeout_ms": 1.5})", "/partners/1/delivery/timeout_ms"},
      {R"({"max_attempts": 0})", "/partners/1/delivery/max_attempts"},
      {R"({"max_age_s": -1})", "/partners/1/delivery/max_age_s"},
      {R"({"backoff_base_ms": 0})", "/partners/1/delivery/backoff_base_ms"},
      {R"({"backoff_cap_ms": 500, "backoff_base_ms": 1000})",
       "/partners/1/delivery/backoff_cap_ms"},
      {R"({"backoff_base_ms": 400000})", "/partners/1/delivery/backoff_base_ms"},
      {R"({"concurrency": 0})", "/partners/1/delivery/concurrency"},
      {R"({"concurrency": true})", "/partners/1/delivery/concurrency"},
      {R"([])", "/partners/1/delivery"},
  };
  for (const auto& [delivery, field] : cases) {
    SCOPED_TRACE(delivery);
    problems_.clear();
    const auto registry = load_second(
        R"({"id": "kh-stungtreng", "name": "X", "country": "KH", "delivery": )" + delivery + "}");
    expect_only_problem_at(field);
    EXPECT_EQ(registry.find("kh-stungtreng"), nullptr);
  }
}

TEST_F(PartnerRegistryLoad, RepositoryPartnersFileHasEndpointsAndAgreements) {
  std::vector<config_problem> problems;
  const auto registry =
      partner_registry::load(test::source_dir() / "config" / "partners.json", problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  const partner* ratanakiri = registry.find("kh-ratanakiri");
  const partner* stungtreng = registry.find("kh-stungtreng");
  const partner* thanhhoa = registry.find("vn-thanhhoa");
  const partner* gialai = registry.find("vn-gialai");
  ASSERT_TRUE(ratanakiri && stungtreng && thanhhoa && gialai);
  EXPECT_EQ(ratanakiri->endpoint, "https://127.0.0.1:9101/v1/messages");
  EXPECT_EQ(stungtreng->endpoint, "https://127.0.0.1:9102/v1/messages");
  EXPECT_EQ(thanhhoa->endpoint, "https://127.0.0.1:9103/v1/messages");
  EXPECT_TRUE(gialai->endpoint.empty()) << "the local sender is never a recipient";
  EXPECT_TRUE(ratanakiri->has_agreement("victim-data"));
  EXPECT_FALSE(stungtreng->has_agreement("victim-data")) << "the demo shows withholding";
  EXPECT_TRUE(thanhhoa->has_agreement("victim-data"));
}

TEST_F(PartnerRegistryLoad, AllListsPartnersById) {
  const auto registry = load_second(R"({"id": "kh-banteay", "name": "X", "country": "KH"})");
  std::vector<std::string> ids;
  for (const partner* p : registry.all()) {
    ids.push_back(p->id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"kh-banteay", "kh-ratanakiri"}));
}

// --- identify() --------------------------------------------------------------------------------

class PartnerIdentify : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(registry_.add({.id = "kh-ratanakiri", .name = "A", .country = "KH"}));
    ASSERT_TRUE(
        registry_.add({.id = "vn-gialai", .name = "B", .country = "VN", .pinned_sha256 = {pin_a}}));
    ASSERT_TRUE(registry_.add({.id = "la-houaphanh",
                               .name = "C",
                               .country = "LA",
                               .enabled = false,
                               .pinned_sha256 = {pin_b}}));
  }

  identity_decision identify(std::vector<std::string> uris, std::string fingerprint = {}) const {
    return registry_.identify({std::move(uris), std::move(fingerprint)});
  }

  partner_registry registry_;
};

TEST_F(PartnerIdentify, SanUriMaps) {
  const auto d = identify({"kh-ratanakiri"}, std::string(64, 'e'));  // fingerprint not pinned
  EXPECT_EQ(d.refusal, identity_refusal::none);
  EXPECT_EQ(d.partner_id, "kh-ratanakiri");
}

TEST_F(PartnerIdentify, PinMaps) {
  const auto d = identify({}, pin_a);
  EXPECT_EQ(d.refusal, identity_refusal::none);
  EXPECT_EQ(d.partner_id, "vn-gialai");
}

TEST_F(PartnerIdentify, SanAndPinAgreeing) {
  const auto d = identify({"vn-gialai"}, pin_a);
  EXPECT_EQ(d.refusal, identity_refusal::none);
  EXPECT_EQ(d.partner_id, "vn-gialai");
}

TEST_F(PartnerIdentify, SanAndPinDisagreeingIsAmbiguous) {
  const auto d = identify({"kh-ratanakiri"}, pin_a);
  EXPECT_EQ(d.refusal, identity_refusal::ambiguous);
  EXPECT_TRUE(d.partner_id.empty());
}

TEST_F(PartnerIdentify, TwoSanUrisAreAmbiguous) {
  EXPECT_EQ(identify({"kh-ratanakiri", "vn-gialai"}).refusal, identity_refusal::ambiguous);
  // Even when one of them names no partner: the certificate claims two identities.
  EXPECT_EQ(identify({"kh-ratanakiri", "kh-unknown"}).refusal, identity_refusal::ambiguous);
}

TEST_F(PartnerIdentify, NoIdentity) {
  EXPECT_EQ(identify({}).refusal, identity_refusal::no_partner_identity);
  EXPECT_EQ(identify({}, std::string(64, 'e')).refusal, identity_refusal::no_partner_identity)
      << "a fingerprint that is not pinned is no identity";
}

TEST_F(PartnerIdentify, UnknownId) {
  EXPECT_EQ(identify({"kh-stungtreng"}).refusal, identity_refusal::unknown_partner);
  EXPECT_EQ(identify({"KH-RATANAKIRI"}).refusal, identity_refusal::unknown_partner)
      << "ids are compared exactly";
  EXPECT_EQ(identify({""}).refusal, identity_refusal::unknown_partner);
}

TEST_F(PartnerIdentify, DisabledPartner) {
  EXPECT_EQ(identify({"la-houaphanh"}).refusal, identity_refusal::disabled_partner);
  EXPECT_EQ(identify({}, pin_b).refusal, identity_refusal::disabled_partner);
  EXPECT_TRUE(identify({"la-houaphanh"}).partner_id.empty());
}

TEST_F(PartnerIdentify, RefusalCodesAreStable) {
  EXPECT_EQ(to_string(identity_refusal::none), "none");
  EXPECT_EQ(to_string(identity_refusal::no_partner_identity), "no-partner-identity");
  EXPECT_EQ(to_string(identity_refusal::ambiguous), "ambiguous-identity");
  EXPECT_EQ(to_string(identity_refusal::unknown_partner), "unknown-partner");
  EXPECT_EQ(to_string(identity_refusal::disabled_partner), "disabled-partner");
}

TEST_F(PartnerIdentify, AddRefusesDuplicateIdsAndPinsWithoutChangingAnything) {
  EXPECT_FALSE(registry_.add({.id = "kh-ratanakiri", .name = "again", .country = "KH"}));
  EXPECT_EQ(registry_.find("kh-ratanakiri")->name, "A");
  EXPECT_FALSE(registry_.add({.id = "kh-stungtreng",
                              .name = "D",
                              .country = "KH",
                              .pinned_sha256 = {pin_b.substr(0, 63) + "0", pin_a}}));
  EXPECT_EQ(registry_.find("kh-stungtreng"), nullptr);
  EXPECT_EQ(registry_.size(), 3u);
  // Neither of its pins was registered.
  EXPECT_EQ(identify({}, pin_b.substr(0, 63) + "0").refusal, identity_refusal::no_partner_identity);
  EXPECT_EQ(identify({}, pin_a).partner_id, "vn-gialai");
}

TEST(PartnerId, Syntax) {
  EXPECT_TRUE(is_valid_partner_id("vn-gialai"));
  EXPECT_TRUE(is_valid_partner_id("ab"));
  EXPECT_TRUE(is_valid_partner_id("0a-"));
  EXPECT_TRUE(is_valid_partner_id(std::string(63, 'a')));
  EXPECT_FALSE(is_valid_partner_id(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_partner_id("a"));
  EXPECT_FALSE(is_valid_partner_id(""));
  EXPECT_FALSE(is_valid_partner_id("-ab"));
  EXPECT_FALSE(is_valid_partner_id("Ab"));
  EXPECT_FALSE(is_valid_partner_id("a_b"));
  EXPECT_FALSE(is_valid_partner_id("a.b"));
  EXPECT_FALSE(is_valid_partner_id(std::string("ab\0c", 4)));
}

// --- facts_of() on real certificates ------------------------------------------------------------

template <auto free_fn>
struct openssl_deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    free_fn(p);
  }
};
using x509_ptr = std::unique_ptr<X509, openssl_deleter<&X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<&BIO_free>>;

x509_ptr parse_cert(const std::string& pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_NE(cert, nullptr) << "not a PEM certificate";
  return cert;
}

class PeerIdentity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto now = std::chrono::system_clock::now();
    ca_ = std::make_unique<cert_authority>(cert_authority::create(
        "mxgw test CA", now - std::chrono::hours(1), now + std::chrono::hours(24)));
  }
  static void TearDownTestSuite() { ca_.reset(); }

  static issued_certificate issue(std::vector<std::string> uris,
                                  std::vector<std::string> dns = {}) {
    certificate_request request;
    request.common_name = "kh-ratanakiri";
    request.san_uris = std::move(uris);
    request.san_dns = std::move(dns);
    return ca_->issue(request);
  }

  static inline std::unique_ptr<cert_authority> ca_;
};

TEST_F(PeerIdentity, PartnerUrisAndFingerprint) {
  const auto issued = issue({"urn:mxgw:partner:kh-ratanakiri", "https://example.org/other"});
  const auto cert = parse_cert(issued.cert_pem);
  ASSERT_NE(cert, nullptr);
  const auto facts = facts_of(cert.get());
  EXPECT_EQ(facts.partner_uris, std::vector<std::string>{"kh-ratanakiri"});
  EXPECT_EQ(facts.sha256_fingerprint, sha256_fingerprint_of_pem(issued.cert_pem));
  EXPECT_EQ(facts.sha256_fingerprint, issued.sha256_fingerprint);
  EXPECT_EQ(facts.sha256_fingerprint.size(), 64u);
  EXPECT_EQ(facts.sha256_fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST_F(PeerIdentity, EveryPartnerUriIsReturnedAsWritten) {
  const auto issued = issue({"urn:mxgw:partner:vn-gialai", "urn:mxgw:partner:kh-ratanakiri",
                             "urn:mxgw:partner:Not_Valid", "urn:mxgw:partnerx:vn-thanhhoa"});
  const auto cert = parse_cert(issued.cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(facts_of(cert.get()).partner_uris,
            (std::vector<std::string>{"vn-gialai", "kh-ratanakiri", "Not_Valid"}));
}

TEST_F(PeerIdentity, CertificateWithoutPartnerUriHasOnlyAFingerprint) {
  const auto issued = issue({}, {"kh-ratanakiri.example.org"});
  const auto cert = parse_cert(issued.cert_pem);
  ASSERT_NE(cert, nullptr);
  const auto facts = facts_of(cert.get());
  EXPECT_TRUE(facts.partner_uris.empty());
  EXPECT_EQ(facts.sha256_fingerprint, issued.sha256_fingerprint);
}

TEST_F(PeerIdentity, FactsOfARealCertificateIdentifyItsPartner) {
  partner_registry registry;
  ASSERT_TRUE(registry.add({.id = "kh-ratanakiri", .name = "A", .country = "KH"}));
  ASSERT_TRUE(registry.add({.id = "vn-gialai", .name = "B", .country = "VN"}));

  const auto by_san = issue({"urn:mxgw:partner:kh-ratanakiri"});
  EXPECT_EQ(registry.identify(facts_of(parse_cert(by_san.cert_pem).get())).partner_id,
            "kh-ratanakiri");

  const auto two = issue({"urn:mxgw:partner:kh-ratanakiri", "urn:mxgw:partner:vn-gialai"});
  EXPECT_EQ(registry.identify(facts_of(parse_cert(two.cert_pem).get())).refusal,
            identity_refusal::ambiguous);

  // A certificate without a partner URI, pinned by its fingerprint.
  const auto pinned = issue({});
  ASSERT_TRUE(registry.add({.id = "la-houaphanh",
                            .name = "C",
                            .country = "LA",
                            .pinned_sha256 = {pinned.sha256_fingerprint}}));
  EXPECT_EQ(registry.identify(facts_of(parse_cert(pinned.cert_pem).get())).partner_id,
            "la-houaphanh");
}

}  // namespace
}  // namespace mxgw::identity

namespace mxgw::identity {
namespace {

class FeedDefinition : public ::testing::Test {
 protected:
  /// Loads one interpol partner whose members after "adapter" are `rest`.
  partner_registry load(const std::string& rest, const std::string& adapter = "interpol") {
    write_file(dir_ / "partners.json", R"({"partners": [{"id": "interpol-feed", "name": "Notices",
      "country": "FR", "adapter": ")" + adapter +
                                           "\", " + rest + "}]}");
    return partner_registry::load(dir_ / "partners.json", problems_);
  }

  bool has_problem(const std::string& field, const std::string& words = "") const {
    return std::any_of(problems_.begin(), problems_.end(), [&](const config_problem& p) {
      return p.field == field && p.reason.find(words) != std::string::npos;
    });
  }

  temp_dir dir_;
  std::vector<config_problem> problems_;
};

TEST_F(FeedDefinition, AValidFeedLoadsWithDefaults) {
  const auto registry =
      load(R"("feed": {"url": "https://127.0.0.1:9201", "notice_types": ["red"]})");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const auto* p = registry.find("interpol-feed");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->feed);
  EXPECT_EQ(p->feed->url, "https://127.0.0.1:9201");
  EXPECT_EQ(p->feed->interval, std::chrono::seconds(3600));
  EXPECT_EQ(p->feed->page_size, 160);
  EXPECT_EQ(p->feed->notice_types, std::vector<std::string>{"red"});
  EXPECT_TRUE(p->feed->token_file.empty());  // mutual TLS
  EXPECT_FALSE(p->feed->max_withdrawals_per_sweep);  // the gateway-wide cap applies
  EXPECT_EQ(to_json(*p).find("max_withdrawals_per_sweep"), std::string::npos);
}

TEST_F(FeedDefinition, AFeedsOwnWithdrawalCapIsReadAndWrittenBack) {
  const auto registry = load(R"("feed": {"url": "https://127.0.0.1:9201", "notice_types": ["red"],
    "max_withdrawals_per_sweep": 2500})");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  const auto* p = registry.find("interpol-feed");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->feed);
  EXPECT_EQ(p->feed->max_withdrawals_per_sweep, 2500u);
  // A stored partner item and an export (partners.json) carry it, and read it back the same.
  EXPECT_NE(to_json(*p).find(R"("max_withdrawals_per_sweep":2500)"), std::string::npos)
      << to_json(*p);
  rapidjson::Document doc;
  doc.Parse(to_json(*p).c_str());
  ASSERT_FALSE(doc.HasParseError());
  std::vector<config_problem> again;
  const auto back = partner_registry::parse_partner(doc, "", again, "stored", nullptr);
  ASSERT_TRUE(back) << describe(again);
  ASSERT_TRUE(back->feed);
  EXPECT_EQ(back->feed->max_withdrawals_per_sweep, 2500u);
  EXPECT_EQ(to_json(*back), to_json(*p));
  write_file(dir_ / "exported.json", to_json(registry));
  const auto exported = partner_registry::load(dir_ / "exported.json", again);
  ASSERT_TRUE(again.empty()) << describe(again);
  ASSERT_NE(exported.find("interpol-feed"), nullptr);
  EXPECT_EQ(exported.find("interpol-feed")->feed->max_withdrawals_per_sweep, 2500u);
  // Both ends of the range.
  for (const auto cap : {1u, 100000u}) {
    problems_.clear();
    const auto edge = load(R"("feed": {"url": "https://feed.example", "notice_types": ["red"],
      "max_withdrawals_per_sweep": )" +
                           std::to_string(cap) + "}");
    ASSERT_TRUE(problems_.empty()) << cap << describe(problems_);
    EXPECT_EQ(edge.find("interpol-feed")->feed->max_withdrawals_per_sweep, cap);
  }
}

TEST_F(FeedDefinition, EachBadWithdrawalCapIsNamedAndThePartnerIsLeftOut) {
  for (const std::string bad :
       {"0", "-5", "2.5", "10.0", "100001", "4294967306", R"("10")", "null", "true", "[10]"}) {
    problems_.clear();
    const auto registry = load(R"("feed": {"url": "https://feed.example", "notice_types": ["red"],
      "max_withdrawals_per_sweep": )" +
                               bad + "}");
    EXPECT_EQ(registry.find("interpol-feed"), nullptr) << bad;
    EXPECT_TRUE(has_problem("/partners/0/feed/max_withdrawals_per_sweep",
                            "must be an integer from 1 to 100000"))
        << bad << ": " << describe(problems_);
    EXPECT_EQ(problems_.size(), 1u) << bad << ": " << describe(problems_);
  }
}

TEST_F(FeedDefinition, ATokenFileIsResolvedNextToThePartnersFile) {
  write_file(dir_ / "feed.token", "secret\n");
  const auto registry = load(R"("feed": {"url": "https://feed.example", "notice_types":
    ["red", "yellow"], "interval_s": 900, "page_size": 100, "auth": "token",
    "token_file": "feed.token"})");
  ASSERT_TRUE(problems_.empty()) << describe(problems_);
  EXPECT_EQ(registry.find("interpol-feed")->feed->token_file, dir_ / "feed.token");
  EXPECT_EQ(registry.find("interpol-feed")->feed->interval, std::chrono::seconds(900));
}

TEST_F(FeedDefinition, EveryProblemIsNamedAndThePartnerIsLeftOut) {
  const auto registry = load(R"("sends": ["person.wanted"], "feed": {"url": "http://feed.example",
    "interval_s": 0, "page_size": 161, "notice_types": ["red", "un", "red"], "auth": "basic",
    "colour": "red"})");
  EXPECT_EQ(registry.find("interpol-feed"), nullptr);
  EXPECT_TRUE(has_problem("/partners/0/feed/url", "https")) << describe(problems_);
  EXPECT_TRUE(has_problem("/partners/0/feed/interval_s", "from 1"));
  EXPECT_TRUE(has_problem("/partners/0/feed/page_size", "to 160"));
  EXPECT_TRUE(has_problem("/partners/0/feed/notice_types/1", "UN notices are not routed"));
  EXPECT_TRUE(has_problem("/partners/0/feed/notice_types/2", "repeats"));
  EXPECT_TRUE(has_problem("/partners/0/feed/auth", "mtls"));
  EXPECT_TRUE(has_problem("/partners/0/feed/colour", "not a known feed setting"));
  EXPECT_TRUE(has_problem("/partners/0/feed", "case.status"));
}

TEST_F(FeedDefinition, MissingPartsAndTheWrongAdapterAreProblems) {
  load(R"("feed": {"auth": "token"})", "mx");
  EXPECT_TRUE(has_problem("/partners/0/feed", "adapter")) << describe(problems_);
  EXPECT_TRUE(has_problem("/partners/0/feed/url", "is required"));
  EXPECT_TRUE(has_problem("/partners/0/feed/notice_types", "is required"));
  EXPECT_TRUE(has_problem("/partners/0/feed/token_file", "is required"));
  problems_.clear();
  load(R"("feed": {"url": "https://feed.example", "notice_types": [], "auth": "token",
    "token_file": "missing.token"})");
  EXPECT_TRUE(has_problem("/partners/0/feed/notice_types", "at least one"));
  EXPECT_TRUE(has_problem("/partners/0/feed/token_file", "not a readable file"));
  problems_.clear();
  load(R"("feed": "https://feed.example")");
  EXPECT_TRUE(has_problem("/partners/0/feed", "must be an object"));
}

}  // namespace
}  // namespace mxgw::identity
