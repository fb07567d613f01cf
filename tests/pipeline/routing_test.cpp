// Routing and recipient policy: who receives what, who is excluded and why, which victim fields
// each recipient does not get, and what the rendered copy for one recipient looks like.
#include "gateway/pipeline/routing.hpp"

#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/pipeline/document_edit.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {
namespace {

using identity::partner;
using identity::partner_registry;
using test::source_dir;

const std::string photo_sha256(64, 'a');

// The time the tests route at (injected: route() would read the clock), after every example's
// `created`.
const auto routed_at = *parse_rfc3339("2027-01-15T00:00:00Z");

rapidjson::Document example(const std::string& type) {
  return json::parse_file((source_dir() / "config" / "examples" / (type + ".json")).string());
}

using test::set_json;

void erase(rapidjson::Document& doc, const std::string& pointer) {
  ASSERT_TRUE(rapidjson::Pointer(pointer.c_str()).Erase(doc)) << pointer << " is not there";
}

std::string describe(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += "\n  " + p.file + ": " + p.field + ": " + p.reason;
  }
  return out;
}

std::string describe(const routing_decision& d) {
  return "\n" + to_json(d);
}

using pairs = std::vector<std::pair<std::string, std::string>>;

pairs recipients_of(const routing_decision& d) {
  pairs out;
  for (const auto& r : d.recipients) {
    out.emplace_back(r.partner_id, r.decided_by);
  }
  return out;
}

struct excluded_entry {
  std::string partner;
  std::string considered;
  std::string reason;
  bool operator==(const excluded_entry&) const = default;
};

void PrintTo(const excluded_entry& e, std::ostream* out) {
  *out << e.partner << " (" << e.considered << "): " << e.reason;
}

std::vector<excluded_entry> excluded_of(const routing_decision& d) {
  std::vector<excluded_entry> out;
  for (const auto& e : d.excluded) {
    out.push_back({e.partner_id, e.considered, e.reason});
  }
  return out;
}

pairs withheld_of(const routing_decision& d, const std::string& partner_id) {
  pairs out;
  const recipient_plan* plan = d.find(partner_id);
  EXPECT_NE(plan, nullptr) << partner_id << " is not a recipient" << describe(d);
  if (plan != nullptr) {
    for (const auto& w : plan->withheld) {
      out.emplace_back(w.pointer, w.reason);
    }
  }
  return out;
}

// Partners of the tests: two Cambodian commissariats (one without a victim-data agreement, one
// that does not take verification requests), a Vietnamese peer, a disabled Lao partner, the local
// sender and a local office without an endpoint, and a partner that may only send receipts.
partner_registry test_partners() {
  partner_registry r;
  const std::vector<std::string> all_purposes = {"investigation", "victim-protection",
                                                 "repatriation", "identity-verification"};
  r.add({.id = "vn-gialai", .name = "Gia Lai", .country = "VN", .purposes = all_purposes});
  r.add({.id = "kh-ratanakiri",
         .name = "Ratanakiri",
         .country = "KH",
         .endpoint = "https://127.0.0.1:9101/v1/messages",
         .agreements = {"victim-data"},
         .purposes = all_purposes});
  r.add({.id = "kh-stungtreng",
         .name = "Stung Treng",
         .country = "KH",
         .endpoint = "https://127.0.0.1:9102/v1/messages",
         .receives = std::vector<std::string>{"victim.identification", "person.wanted",
                                              "hotline.tip", "case.status", "receipt"},
         .purposes = {"investigation", "victim-protection"}});
  r.add({.id = "vn-thanhhoa",
         .name = "Thanh Hoa",
         .country = "VN",
         .endpoint = "https://127.0.0.1:9103/v1/messages",
         .agreements = {"victim-data"},
         .purposes = {"investigation"}});
  r.add({.id = "la-houaphanh",
         .name = "Houaphanh",
         .country = "LA",
         .enabled = false,
         .endpoint = "https://127.0.0.1:9104/v1/messages"});
  r.add({.id = "vn-local", .name = "Local desk", .country = "VN"});
  r.add({.id = "kh-kampot",
         .name = "Kampot",
         .country = "KH",
         .endpoint = "https://127.0.0.1:9105/v1/messages",
         .sends = std::vector<std::string>{"receipt"}});
  return r;
}

const char* const test_rules_json = R"({"rules": [
  {"id": "kh-northeast", "match": {"types": ["victim.identification", "hotline.tip"],
                                   "regions": ["KH-16", "KH-19"]},
   "add": ["kh-ratanakiri", "kh-stungtreng"]},
  {"id": "wanted", "match": {"types": ["person.wanted"], "senders": ["vn-gialai"]},
   "add": ["kh-ratanakiri", "kh-stungtreng", "vn-thanhhoa"]},
  {"id": "gialai-units", "match": {"types": ["victim.identification"], "regions": ["VN-30"]},
   "add": ["vn-thanhhoa"]},
  {"id": "laos", "match": {"regions": ["LA-*"]}, "add": ["la-houaphanh"]},
  {"id": "secret", "match": {"confidentiality": ["secret"]}, "add": ["vn-local"]}
]})";

class Routing : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<config_problem> problems;
    checker_ = std::make_unique<canonical_checker>(canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    partners_ = std::make_unique<partner_registry>(test_partners());
    rules_ = std::make_unique<routing_rules>(parse_rules(test_rules_json, problems));
    setup_problems_ = describe(problems);
  }
  static void TearDownTestSuite() {
    checker_.reset();
    partners_.reset();
    rules_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_problems_.empty()) << setup_problems_;
    ASSERT_EQ(rules_->size(), 5u);
  }

  static const code_tables& tables() { return checker_->tables(); }

  static routing_rules parse_rules(const std::string& text, std::vector<config_problem>& problems,
                                   const partner_registry* partners = nullptr) {
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    EXPECT_FALSE(doc.HasParseError()) << text;
    return routing_rules::parse(doc, "routing.json", problems,
                                partners != nullptr ? *partners : *partners_, tables());
  }

  static routing_decision route_as(const rapidjson::Value& message,
                                   std::string_view sender = "vn-gialai",
                                   const routing_rules* rules = nullptr,
                                   const std::vector<std::string>& earlier = {}) {
    return route(message, sender, *partners_, rules != nullptr ? *rules : *rules_, tables(),
                 earlier, routed_at);
  }

  /// The rendered copy for `plan` checked against the schemas and domain rules; returns it parsed.
  static rapidjson::Document rendered_and_valid(const rapidjson::Value& message,
                                                const recipient_plan& plan) {
    const std::string text = render_for(message, plan);
    rapidjson::Document doc;
    const auto result = checker_->check(text, json::get_string(message, "sender"), doc);
    EXPECT_EQ(result.status, 0) << result.detail << [&] {
      std::string out;
      for (const auto& e : result.errors) {
        out += "\n  " + e.pointer + ": " + e.reason;
      }
      return out;
    }();
    return doc;
  }

  static inline std::unique_ptr<canonical_checker> checker_;
  static inline std::unique_ptr<partner_registry> partners_;
  static inline std::unique_ptr<routing_rules> rules_;
  static inline std::string setup_problems_;
};

// --- Who receives what (table) --------------------------------------------------------------

struct routing_case {
  std::string name;
  std::string type;  ///< config/examples/<type>.json
  std::function<void(rapidjson::Document&)> edit;
  pairs recipients;                      ///< {partner, decided_by}, in order
  std::vector<excluded_entry> excluded;  ///< in order
  std::vector<std::string> matched_rules;
  std::string sender = "vn-gialai";
};

void PrintTo(const routing_case& c, std::ostream* out) {
  *out << c.name;
}

// Handling that lets routing rules add recipients: no releasability limit, onward transfer
// allowed, no H2/H3.
void open_handling(rapidjson::Document& doc) {
  set_json(doc, "/handling",
           R"({"confidentiality": "confidential", "codes": ["H0"], "onwardTransfer": "allowed"})");
}

const std::vector<routing_case> routing_cases = {
    {"VictimExampleAsSent",
     "victim.identification",
     {},
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"VictimRoutedByRulesOnly",
     "victim.identification",
     [](auto& doc) {
       erase(doc, "/recipients");
       open_handling(doc);
     },
     {{"kh-ratanakiri", "kh-northeast"},
      {"kh-stungtreng", "kh-northeast"},
      {"vn-thanhhoa", "gialai-units"}},
     {},
     {"kh-northeast", "gialai-units"}},
    {"WantedExampleAwaitsSourceConsentForRuleAdditions",
     "person.wanted",
     {},
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"la-houaphanh", "explicit", "disabled"},
      {"vn-thanhhoa", "wanted", "awaiting-source-consent"}},
     {"wanted"}},
    {"WantedWithOnwardTransferAllowed",
     "person.wanted",
     [](auto& doc) {
       erase(doc, "/recipients");
       set_json(doc, "/handling/onwardTransfer", R"("allowed")");
     },
     {{"kh-ratanakiri", "wanted"}, {"kh-stungtreng", "wanted"}, {"vn-thanhhoa", "wanted"}},
     {},
     {"wanted"}},
    {"TipWithOnwardTransferProhibitedKeepsOnlyExplicit",
     "hotline.tip",
     {},
     {{"kh-ratanakiri", "explicit"}},
     {{"kh-stungtreng", "kh-northeast", "onward-transfer-prohibited"}},
     {"kh-northeast"}},
    {"TipWithH2KeepsOnlyExplicit",
     "hotline.tip",
     [](auto& doc) {
       set_json(doc, "/handling/onwardTransfer", R"("allowed")");
       set_json(doc, "/handling/codes", R"(["H0", "H2"])");
     },
     {{"kh-ratanakiri", "explicit"}},
     {{"kh-stungtreng", "kh-northeast", "handling-restricted"}},
     {"kh-northeast"}},
    {"TipWithH3KeepsOnlyExplicit",
     "hotline.tip",
     [](auto& doc) {
       set_json(doc, "/handling/onwardTransfer", R"("allowed")");
       set_json(doc, "/handling/codes", R"(["H3"])");
       set_json(doc, "/handling/conditions", R"("Not to be used in court.")");
     },
     {{"kh-ratanakiri", "explicit"}},
     {{"kh-stungtreng", "kh-northeast", "handling-restricted"}},
     {"kh-northeast"}},
    {"TipWithOpenHandling",
     "hotline.tip",
     [](auto& doc) { open_handling(doc); },
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "kh-northeast"}},
     {},
     {"kh-northeast"}},
    {"VerificationToAPartnerThatDoesNotReceiveIt",
     "verification.request",
     [](auto& doc) { set_json(doc, "/recipients", R"(["kh-ratanakiri", "kh-stungtreng"])"); },
     {{"kh-ratanakiri", "explicit"}},
     {{"kh-stungtreng", "explicit", "does-not-receive-type"}},
     {}},
    {"ExplicitSenderUnknownAndEndpointless",
     "case.status",
     [](auto& doc) {
       set_json(doc, "/recipients",
                R"(["vn-gialai", "kh-kandal", "vn-local", "kh-ratanakiri", "la-houaphanh"])");
     },
     {{"kh-ratanakiri", "explicit"}},
     {{"vn-gialai", "explicit", "is-sender"},
      {"kh-kandal", "explicit", "unknown-partner"},
      {"vn-local", "explicit", "no-endpoint"},
      {"la-houaphanh", "explicit", "disabled"}},
     {}},
    {"ReleasableToACountry",
     "case.status",
     [](auto& doc) {
       set_json(doc, "/recipients", R"(["kh-ratanakiri", "vn-thanhhoa", "kh-stungtreng"])");
       set_json(doc, "/handling/releasableTo", R"(["KH"])");
     },
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"vn-thanhhoa", "explicit", "not-releasable"}},
     {}},
    {"ReleasableToAPartner",
     "case.status",
     [](auto& doc) {
       set_json(doc, "/recipients", R"(["kh-ratanakiri", "vn-thanhhoa", "kh-stungtreng"])");
       set_json(doc, "/handling/releasableTo", R"(["vn-thanhhoa"])");
     },
     {{"vn-thanhhoa", "explicit"}},
     {{"kh-ratanakiri", "explicit", "not-releasable"},
      {"kh-stungtreng", "explicit", "not-releasable"}},
     {}},
    {"ConsentScopeLimitsRecipients",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       set_json(doc, "/body/consent/scope", R"(["repatriation"])");
     },
     {{"kh-ratanakiri", "explicit"}},
     {{"kh-stungtreng", "explicit", "outside-consent"},
      {"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"ConsentScopeCoveringBoth",
     "victim.identification",
     [](auto& doc) { set_json(doc, "/legalBasis", R"("consent")"); },
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"ConsentNotGiven",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       set_json(doc, "/body/consent/given", "false");
     },
     {},
     {{"kh-ratanakiri", "explicit", "outside-consent"},
      {"kh-stungtreng", "explicit", "outside-consent"},
      {"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"ConsentBasisWithoutConsent",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       erase(doc, "/body/consent");
       open_handling(doc);
     },
     {},
     {{"kh-ratanakiri", "explicit", "outside-consent"},
      {"kh-stungtreng", "explicit", "outside-consent"},
      {"vn-thanhhoa", "gialai-units", "outside-consent"}},
     {"kh-northeast", "gialai-units"}},
    {"AChildsOwnConsentIsNoConsent",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       set_json(doc, "/body/person/birthDate", R"("2012-04")");
       set_json(doc, "/body/person/minor", "true");
     },
     {},
     {{"kh-ratanakiri", "explicit", "outside-consent"},
      {"kh-stungtreng", "explicit", "outside-consent"},
      {"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"AGuardiansConsentForAChildCounts",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       set_json(doc, "/body/person/birthDate", R"("2012-04")");
       set_json(doc, "/body/person/minor", "true");
       set_json(doc, "/body/consent/guardian", "true");
     },
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"AnAgeRangeReachingBelow18NeedsAGuardiansConsent",
     "victim.identification",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       erase(doc, "/body/person/birthDate");
       erase(doc, "/body/person/minor");
       set_json(doc, "/body/person/ageEstimate", R"({"min": 14})");
       set_json(doc, "/recipients", R"(["kh-ratanakiri"])");
     },
     {},
     {{"kh-ratanakiri", "explicit", "outside-consent"},
      {"kh-stungtreng", "kh-northeast", "awaiting-source-consent"},
      {"vn-thanhhoa", "gialai-units", "not-releasable"}},
     {"kh-northeast", "gialai-units"}},
    {"ConsentBasisOnAWantedNotice",
     "person.wanted",
     [](auto& doc) {
       set_json(doc, "/legalBasis", R"("consent")");
       set_json(doc, "/recipients", R"(["kh-ratanakiri"])");
     },
     {},
     {{"kh-ratanakiri", "explicit", "outside-consent"},
      {"kh-stungtreng", "wanted", "awaiting-source-consent"},
      {"vn-thanhhoa", "wanted", "awaiting-source-consent"}},
     {"wanted"}},
    {"CountryWildcardRegion",
     "hotline.tip",
     [](auto& doc) {
       open_handling(doc);
       set_json(doc, "/body/places/0", R"({"country": "LA", "region": {"code": "LA-HO"}})");
     },
     {{"kh-ratanakiri", "explicit"}},
     {{"la-houaphanh", "laos", "disabled"}},
     {"laos"}},
    {"ConfidentialityMatch",
     "case.status",
     [](auto& doc) {
       set_json(doc, "/handling/confidentiality", R"("secret")");
       set_json(doc, "/handling/onwardTransfer", R"("allowed")");
     },
     {{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}},
     {{"vn-local", "secret", "no-endpoint"}},
     {"secret"}},
    {"SendersMatchLimitsARule",
     "person.wanted",
     [](auto& doc) {
       erase(doc, "/recipients");
       set_json(doc, "/sender", R"("vn-thanhhoa")");
       set_json(doc, "/handling/onwardTransfer", R"("allowed")");
     },
     {},
     {},
     {},
     "vn-thanhhoa"},
    {"NoRuleAndNoRecipientRoutesNowhere",
     "receipt",
     [](auto& doc) { erase(doc, "/recipients"); },
     {},
     {},
     {}},
};

class WhoReceivesWhat : public Routing, public ::testing::WithParamInterface<routing_case> {};

TEST_P(WhoReceivesWhat, RecipientsExclusionsAndRules) {
  const auto& c = GetParam();
  auto doc = example(c.type);
  if (c.edit) {
    c.edit(doc);
  }
  const auto decision = route_as(doc, c.sender);
  EXPECT_TRUE(decision.error.empty()) << describe(decision);
  EXPECT_EQ(recipients_of(decision), c.recipients) << describe(decision);
  EXPECT_EQ(excluded_of(decision), c.excluded) << describe(decision);
  EXPECT_EQ(decision.matched_rules, c.matched_rules) << describe(decision);
}

INSTANTIATE_TEST_SUITE_P(Routing, WhoReceivesWhat, ::testing::ValuesIn(routing_cases),
                         [](const ::testing::TestParamInfo<routing_case>& param_info) {
                           return param_info.param.name;
                         });

TEST_F(Routing, RuleProposingTheSenderExcludesItAsSender) {
  // The table case above has the sender vn-thanhhoa, which the "wanted" rule does not match;
  // here a rule for any sender proposes the sender itself.
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [{"id": "all-wanted", "match": {"types": ["person.wanted"]},
                     "add": ["vn-thanhhoa", "kh-ratanakiri"]}]})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  auto doc = example("person.wanted");
  erase(doc, "/recipients");
  set_json(doc, "/sender", R"("vn-thanhhoa")");
  set_json(doc, "/handling/onwardTransfer", R"("allowed")");
  const auto decision = route_as(doc, "vn-thanhhoa", &rules);
  EXPECT_EQ(recipients_of(decision), (pairs{{"kh-ratanakiri", "all-wanted"}}));
  EXPECT_EQ(excluded_of(decision),
            (std::vector<excluded_entry>{{"vn-thanhhoa", "all-wanted", "is-sender"}}));
}

TEST_F(Routing, FirstReasonIsKeptAndExplicitWins) {
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [
        {"id": "first", "match": {"types": ["case.status"]},
         "add": ["kh-ratanakiri", "vn-thanhhoa"]},
        {"id": "second", "match": {"types": ["case.status"]},
         "add": ["vn-thanhhoa", "kh-stungtreng"]}
      ]})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  auto doc = example("case.status");
  set_json(doc, "/recipients", R"(["kh-stungtreng"])");
  set_json(doc, "/handling/onwardTransfer", R"("allowed")");
  const auto decision = route_as(doc, "vn-gialai", &rules);
  EXPECT_EQ(
      recipients_of(decision),
      (pairs{{"kh-stungtreng", "explicit"}, {"kh-ratanakiri", "first"}, {"vn-thanhhoa", "first"}}))
      << describe(decision);
  EXPECT_EQ(decision.matched_rules, (std::vector<std::string>{"first", "second"}));
}

TEST_F(Routing, EarlierRecipientsOfAWithdrawnMessageComeAfterTheNamedOnesBeforeRules) {
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [{"id": "status-to-thanhhoa", "match": {"types": ["case.status"]},
                     "add": ["vn-thanhhoa", "kh-ratanakiri"]}]})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  auto doc = example("case.status");
  set_json(doc, "/recipients", R"(["kh-stungtreng"])");
  // Routing may add no third party; those who had the original are not third parties.
  set_json(doc, "/handling/onwardTransfer", R"("prohibited")");
  const auto decision = route_as(doc, "vn-gialai", &rules,
                                 {"kh-stungtreng", "kh-ratanakiri", "vn-gialai", "la-houaphanh"});
  EXPECT_EQ(recipients_of(decision),
            (pairs{{"kh-stungtreng", "explicit"}, {"kh-ratanakiri", "earlier-recipient"}}))
      << describe(decision);
  // The sender itself and a disabled partner are excluded as ever; the rule adds no one.
  EXPECT_EQ(excluded_of(decision),
            (std::vector<excluded_entry>{
                {"vn-gialai", "earlier-recipient", "is-sender"},
                {"la-houaphanh", "earlier-recipient", "disabled"},
                {"vn-thanhhoa", "status-to-thanhhoa", "onward-transfer-prohibited"}}))
      << describe(decision);
}

TEST_F(Routing, SenderNotEntitledToTheTypeIsAnError) {
  auto doc = example("hotline.tip");
  set_json(doc, "/sender", R"("kh-kampot")");
  const auto decision = route_as(doc, "kh-kampot");
  EXPECT_EQ(decision.error, "sender-may-not-send-type");
  EXPECT_TRUE(decision.recipients.empty());
  EXPECT_TRUE(decision.excluded.empty());

  auto receipt = example("receipt");
  set_json(receipt, "/sender", R"("kh-kampot")");
  EXPECT_TRUE(route_as(receipt, "kh-kampot").error.empty()) << "kh-kampot may send receipts";
}

TEST_F(Routing, UnknownSenderIsAnError) {
  const auto decision = route_as(example("receipt"), "kh-nowhere");
  EXPECT_EQ(decision.error, "unknown-sender");
  EXPECT_TRUE(decision.recipients.empty());
}

TEST_F(Routing, RoutingUsesTheAuthenticatedSenderNotTheMessageMember) {
  // The checker makes them equal; routing itself trusts only its argument.
  auto doc = example("hotline.tip");
  EXPECT_EQ(route_as(doc, "kh-kampot").error, "sender-may-not-send-type");
}

// --- Regions and Vietnam's 2025 merger ------------------------------------------------------

TEST_F(Routing, MessageRegionsCollectsEveryRegionAndCurrentUnits) {
  EXPECT_EQ(message_regions(example("victim.identification"), tables()),
            (std::vector<std::string>{"KH-16", "VN-30"}));
  EXPECT_EQ(message_regions(example("person.wanted"), tables()),
            (std::vector<std::string>{"KH-16", "VN-30"}));
  auto doc = example("hotline.tip");
  set_json(doc, "/body/subjects/0/person/homeRegion", R"({"code": "VN-31"})");
  set_json(doc, "/body/places/1", R"({"region": {"code": "KH-19"}})");
  set_json(doc, "/unmapped", R"({"region": {"code": "LA-HO"}})");
  EXPECT_EQ(message_regions(doc, tables()),
            (std::vector<std::string>{"KH-16", "KH-19", "VN-30", "VN-31"}))
      << "old code and its successor; nothing from unmapped";
}

TEST_F(Routing, OldRegionCodeMatchesARuleNamingTheMergedUnit) {
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [{"id": "gia-lai", "match": {"regions": ["VN-30"]}, "add": ["vn-thanhhoa"]},
                    {"id": "vietnam", "match": {"regions": ["VN-*"]}, "add": ["kh-ratanakiri"]}]})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  auto doc = example("case.status");
  erase(doc, "/recipients");
  set_json(doc, "/handling/onwardTransfer", R"("allowed")");
  EXPECT_TRUE(route_as(doc, "vn-gialai", &rules).recipients.empty()) << "no region, no match";

  // A tip about a place recorded with Binh Dinh's pre-merger code (VN-31, now part of VN-30).
  auto tip = example("hotline.tip");
  open_handling(tip);
  erase(tip, "/recipients");
  set_json(tip, "/body/places", R"([{"country": "VN", "region": {"code": "VN-31"}}])");
  set_json(tip, "/body/subjects/0/person/homeRegion", R"({"asRecorded": "Bình Định"})");
  const auto decision = route_as(tip, "vn-gialai", &rules);
  EXPECT_EQ(recipients_of(decision),
            (pairs{{"vn-thanhhoa", "gia-lai"}, {"kh-ratanakiri", "vietnam"}}))
      << describe(decision);
}

TEST_F(Routing, ANewCodeDoesNotMatchARuleForAnotherUnit) {
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [{"id": "thanh-hoa", "match": {"regions": ["VN-21"]}, "add": ["vn-thanhhoa"]},
                    {"id": "cambodia", "match": {"regions": ["KH-*"]},
                     "add": ["kh-ratanakiri"]}]})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  auto doc = example("person.wanted");
  erase(doc, "/recipients");
  set_json(doc, "/handling/onwardTransfer", R"("allowed")");
  erase(doc, "/body/lastSeen/region");
  EXPECT_TRUE(route_as(doc, "vn-gialai", &rules).recipients.empty());
  set_json(doc, "/body/lastSeen/region", R"({"code": "KH-19"})");
  EXPECT_EQ(recipients_of(route_as(doc, "vn-gialai", &rules)),
            (pairs{{"kh-ratanakiri", "cambodia"}}));
}

// --- Victim-protection withholding ----------------------------------------------------------

const std::string photo_json =
    R"([{"mime": "image/jpeg", "sha256": ")" + photo_sha256 + R"(", "data": "AAAA"}])";

rapidjson::Document victim_with_photo() {
  auto doc = example("victim.identification");
  set_json(doc, "/body/person/photos", photo_json);
  return doc;
}

TEST_F(Routing, VictimFieldsAreWithheldWithoutAgreement) {
  const auto doc = victim_with_photo();
  const auto decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty()) << "victim-data agreement";
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/person/photos", "no-victim-data-agreement"},
                   {"/body/person/documents/0/number", "no-victim-data-agreement"},
                   {"/body/narrative", "no-victim-data-agreement"}}));
}

TEST_F(Routing, OnlyFieldsPresentAreListed) {
  auto doc = example("victim.identification");
  erase(doc, "/body/narrative");
  set_json(doc, "/body/person/documents",
           R"([{"type": "passport", "issuingCountry": "KH"},
               {"type": "border-pass", "number": "EXAMPLE-0002"}])");
  EXPECT_EQ(withheld_of(route_as(doc), "kh-stungtreng"),
            (pairs{{"/body/person/documents/1/number", "no-victim-data-agreement"}}));
}

TEST_F(Routing, MinorVictimFieldsNeedTheSendersMark) {
  auto doc = victim_with_photo();
  set_json(doc, "/body/person/minor", "true");
  auto decision = route_as(doc);
  EXPECT_EQ(withheld_of(decision, "kh-ratanakiri"),
            (pairs{{"/body/person/photos", "minor-data-not-marked-necessary"},
                   {"/body/person/documents/0/number", "minor-data-not-marked-necessary"},
                   {"/body/narrative", "minor-data-not-marked-necessary"}}));
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/person/photos", "no-victim-data-agreement"},
                   {"/body/person/documents/0/number", "no-victim-data-agreement"},
                   {"/body/narrative", "no-victim-data-agreement"}}))
      << "no agreement is the first reason";

  set_json(doc, "/handling/minorDataNecessary", "true");
  decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty());
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng").size(), 3u) << "the mark is not an agreement";

  set_json(doc, "/handling/minorDataNecessary", "false");
  EXPECT_EQ(withheld_of(route_as(doc), "kh-ratanakiri").size(), 3u);
}

// What each copy relies on: delivery sends a copy with a victim field left in only while its
// recipient still holds the agreement it was rendered for.
std::string relies_on_of(const routing_decision& decision, const std::string& partner) {
  const auto* plan = decision.find(partner);
  if (plan == nullptr) {
    return "not a recipient";
  }
  std::string out;
  for (const auto& agreement : plan->relies_on) {
    out += (out.empty() ? "" : ",") + agreement;
  }
  return out;
}

TEST_F(Routing, ACopyWithVictimDataLeftInReliesOnTheAgreement) {
  auto doc = victim_with_photo();
  auto decision = route_as(doc);
  EXPECT_EQ(relies_on_of(decision, "kh-ratanakiri"), "victim-data") << "the full copy";
  EXPECT_EQ(relies_on_of(decision, "kh-stungtreng"), "") << "everything withheld";

  // About a minor without the sender's mark, the holder's copy has no victim field either.
  set_json(doc, "/body/person/minor", "true");
  decision = route_as(doc);
  EXPECT_EQ(relies_on_of(decision, "kh-ratanakiri"), "");
  set_json(doc, "/handling/minorDataNecessary", "true");
  EXPECT_EQ(relies_on_of(route_as(doc), "kh-ratanakiri"), "victim-data");

  // A single field left in is enough; a message without any relies on nothing.
  auto only_unmapped = example("victim.identification");
  erase(only_unmapped, "/body/narrative");
  set_json(only_unmapped, "/body/person/documents", R"([{"type": "passport"}])");
  EXPECT_EQ(relies_on_of(route_as(only_unmapped), "kh-ratanakiri"), "");
  set_json(only_unmapped, "/unmapped", R"({"/x": "y"})");
  EXPECT_EQ(relies_on_of(route_as(only_unmapped), "kh-ratanakiri"), "victim-data");
  EXPECT_EQ(relies_on_of(route_as(example("person.wanted")), "kh-ratanakiri"), "");
}

TEST_F(Routing, ATipReliesOnTheAgreementOnlyWithAPossibleVictim) {
  auto doc = example("hotline.tip");  // possible victim aged 15-16, minor: true
  open_handling(doc);
  EXPECT_EQ(relies_on_of(route_as(doc), "kh-ratanakiri"), "") << "its summary withheld";
  set_json(doc, "/handling/minorDataNecessary", "true");
  EXPECT_EQ(relies_on_of(route_as(doc), "kh-ratanakiri"), "victim-data");
  EXPECT_EQ(relies_on_of(route_as(doc), "kh-stungtreng"), "");
  set_json(
      doc, "/body/subjects",
      R"([{"role": "suspected-trafficker", "description": "A man of about 30 (fictional)."}])");
  EXPECT_EQ(relies_on_of(route_as(doc), "kh-ratanakiri"), "");
}

TEST_F(Routing, AWithdrawalOnAConsentBasisReachesThoseWhoHadTheMessage) {
  // The sender copies the original's legal basis; a case update has no consent record of its
  // own. Those who had the message must still hear that it is withdrawn; no one else is told.
  auto status = example("case.status");
  set_json(status, "/legalBasis", R"("consent")");
  set_json(status, "/body/status", R"("withdrawn")");
  erase(status, "/recipients");
  auto decision = route_as(status, "vn-gialai", nullptr, {"kh-ratanakiri", "kh-stungtreng"});
  EXPECT_EQ(recipients_of(decision),
            (pairs{{"kh-ratanakiri", "earlier-recipient"}, {"kh-stungtreng", "earlier-recipient"}}))
      << describe(decision);
  set_json(status, "/recipients", R"(["vn-thanhhoa"])");
  decision = route_as(status, "vn-gialai", nullptr, {"kh-ratanakiri"});
  EXPECT_EQ(recipients_of(decision), (pairs{{"kh-ratanakiri", "earlier-recipient"}}))
      << describe(decision);
  EXPECT_EQ(excluded_of(decision),
            (std::vector<excluded_entry>{{"vn-thanhhoa", "explicit", "outside-consent"}}));
  // A status that takes nothing back is checked like any message.
  set_json(status, "/body/status", R"("located")");
  decision = route_as(status, "vn-gialai", nullptr, {"kh-ratanakiri"});
  EXPECT_TRUE(recipients_of(decision).empty()) << describe(decision);
}

TEST_F(Routing, MinorFromBirthDateOrAgeEstimate) {
  // created is 2026-11-21T02:42:10Z in the example.
  struct age_case {
    std::string person_edit;  // JSON merged into /body/person
    bool minor;
  };
  const std::vector<age_case> cases = {
      {R"({"birthDate": "2001-03", "minor": false})", false},
      {R"({"birthDate": "2010-05-01", "minor": false})", true},
      {R"({"birthDate": "2008-11-21"})", false},  // 18 that day
      {R"({"birthDate": "2008-11-22"})", true},   // 18 tomorrow
      {R"({"birthDate": "2008-11"})", true},      // could be born 2008-11-30
      {R"({"birthDate": "2008"})", true},         // could be born 2008-12-31
      {R"({"birthDate": "2007"})", false},
      {R"({"ageEstimate": {"min": 15, "max": 17}})", true},
      // A range that reaches below 18 may be a minor's: treated as one.
      {R"({"ageEstimate": {"min": 16, "max": 19}})", true},
      {R"({"ageEstimate": {"min": 12}})", true},
      {R"({"ageEstimate": {"max": 40}})", true},
      {R"({"ageEstimate": {"min": 18, "max": 25}})", false},
      {R"({"ageEstimate": {"min": 30}})", false},
      {R"({"minor": true})", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.person_edit);
    auto doc = victim_with_photo();
    erase(doc, "/body/person/birthDate");
    erase(doc, "/body/person/minor");
    rapidjson::Document edit;
    edit.Parse(c.person_edit.c_str());
    for (auto& m : edit.GetObject()) {
      set_json(doc, "/body/person/" + std::string(m.name.GetString()), json::to_string(m.value));
    }
    EXPECT_EQ(is_possibly_minor(doc["body"]["person"], json::get_string(doc, "created")), c.minor);
    const auto withheld = withheld_of(route_as(doc), "kh-ratanakiri");
    EXPECT_EQ(withheld.size(), c.minor ? 3u : 0u);
  }
}

TEST_F(Routing, LeapDayBirthdayTurns18OnTheFirstOfMarch) {
  rapidjson::Document person;
  person.Parse(R"({"names": [], "birthDate": "2008-02-29"})");
  EXPECT_TRUE(is_possibly_minor(person, "2026-02-28T23:59:59Z"));
  EXPECT_FALSE(is_possibly_minor(person, "2026-03-01T00:00:00Z"));
  EXPECT_TRUE(is_possibly_minor(person, "not a time")) << "cannot tell: stricter default";
  rapidjson::Document adult;
  adult.Parse(R"({"names": []})");
  EXPECT_FALSE(is_possibly_minor(adult, "2026-03-01T00:00:00Z"));
}

TEST_F(Routing, AFutureCreatedDoesNotMakeAChildAnAdult) {
  // Born 2015: a child when routed (2027), an adult at a mistyped created of 2062 (for 2026).
  auto doc = victim_with_photo();
  erase(doc, "/body/person/minor");
  set_json(doc, "/body/person/birthDate", R"("2015-04-10")");
  set_json(doc, "/created", R"("2062-11-21T02:42:10Z")");
  const auto& person = doc["body"]["person"];
  EXPECT_FALSE(is_possibly_minor(person, "2062-11-21T02:42:10Z")) << "judged at created alone";
  EXPECT_TRUE(is_possibly_minor(person, "2062-11-21T02:42:10Z", routed_at));
  EXPECT_EQ(withheld_of(route_as(doc), "kh-ratanakiri"),
            (pairs{{"/body/person/photos", "minor-data-not-marked-necessary"},
                   {"/body/person/documents/0/number", "minor-data-not-marked-necessary"},
                   {"/body/narrative", "minor-data-not-marked-necessary"}}));

  // The same for a tip's possible victim (its summary) and for a release rule about minors.
  auto tip = example("hotline.tip");
  erase(tip, "/body/subjects/0/person/minor");
  erase(tip, "/body/subjects/0/person/ageEstimate");
  set_json(tip, "/body/subjects/0/person/birthDate", R"("2015-04-10")");
  set_json(tip, "/created", R"("2062-11-23T13:05:42Z")");
  EXPECT_EQ(withheld_of(route_as(tip), "kh-ratanakiri"),
            (pairs{{"/body/summary", "minor-data-not-marked-necessary"}}));
  std::vector<config_problem> problems;
  const auto rules = parse_rules(
      R"({"rules": [], "release": {"rules": [{"id": "minors", "match": {"minors": true}}]}})",
      problems);
  ASSERT_TRUE(problems.empty()) << describe(problems);
  const auto decision = route_as(doc, "vn-gialai", &rules);
  ASSERT_NE(decision.find("kh-ratanakiri"), nullptr) << describe(decision);
  EXPECT_EQ(decision.find("kh-ratanakiri")->held_by, "minors");
}

TEST_F(Routing, ACreatedInThePastIsTheDayJudged) {
  // 18 the day after created (2026-11-21), an adult long before the time of routing.
  auto doc = victim_with_photo();
  erase(doc, "/body/person/minor");
  set_json(doc, "/body/person/birthDate", R"("2008-11-22")");
  const auto later = *parse_rfc3339("2030-06-01T00:00:00Z");
  EXPECT_TRUE(is_possibly_minor(doc["body"]["person"], "2026-11-21T02:42:10Z", later));
  EXPECT_EQ(withheld_of(route_as(doc), "kh-ratanakiri").size(), 3u);
  // 18 on created: an adult, judged on that day.
  set_json(doc, "/body/person/birthDate", R"("2008-11-21")");
  EXPECT_FALSE(is_possibly_minor(doc["body"]["person"], "2026-11-21T02:42:10Z", later));
  EXPECT_TRUE(withheld_of(route_as(doc), "kh-ratanakiri").empty());
}

TEST_F(Routing, TipAboutAMinorWithholdsTheSummary) {
  auto doc = example("hotline.tip");  // possible victim aged 15-16, minor: true
  auto decision = route_as(doc);
  EXPECT_EQ(withheld_of(decision, "kh-ratanakiri"),
            (pairs{{"/body/summary", "minor-data-not-marked-necessary"}}));

  set_json(doc, "/handling/minorDataNecessary", "true");
  EXPECT_TRUE(withheld_of(route_as(doc), "kh-ratanakiri").empty());

  // Documents and photos of the possible victim; a suspect's document number is not withheld.
  open_handling(doc);
  set_json(doc, "/handling/minorDataNecessary", "true");
  set_json(doc, "/body/subjects/0/person/documents",
           R"([{"type": "citizen-id", "number": "000000000009"}])");
  set_json(doc, "/body/subjects/0/person/photos", photo_json);
  set_json(doc, "/body/subjects/1/person",
           R"({"names": [{"given": ["Tư"], "script": "Latn", "kind": "alias"}],
               "documents": [{"type": "passport", "number": "EXAMPLE-P-1"}]})");
  decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty());
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/subjects/0/person/photos", "no-victim-data-agreement"},
                   {"/body/subjects/0/person/documents/0/number", "no-victim-data-agreement"},
                   {"/body/summary", "no-victim-data-agreement"}}));
}

TEST_F(Routing, TipWithoutAPossibleVictimWithholdsNothing) {
  auto doc = example("hotline.tip");
  open_handling(doc);
  set_json(
      doc, "/body/subjects",
      R"([{"role": "suspected-trafficker", "description": "A man of about 30 (fictional)."}])");
  const auto decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty());
  EXPECT_TRUE(withheld_of(decision, "kh-stungtreng").empty());
}

TEST_F(Routing, WantedPersonIsNotWithheld) {
  const auto decision = route_as(example("person.wanted"));
  EXPECT_TRUE(withheld_of(decision, "kh-stungtreng").empty())
      << "a suspect's document number is not victim data";
}

// What a KH-CNP adapter with carryUnmapped keeps when it cannot map a value: a document scan
// (the image) and an identity document of an unknown kind, number included.
const std::string doc_scan_base64 = "RE9DVU1FTlQtU0NBTi1GSUNUSU9OQUw=";
const std::string unmapped_json =
    R"({"/attachments/0": {"kind": "DOCUMENT_SCAN", "mime": "image/jpeg", "b64": ")" +
    doc_scan_base64 + R"("}, "/subject/id_docs/1": {"type": "WORK_PERMIT", "no": "WP-0042"}})";

TEST_F(Routing, UnmappedGoesOnlyWhereTheVictimFieldsGo) {
  auto doc = example("victim.identification");
  set_json(doc, "/unmapped", unmapped_json);
  auto decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty()) << "victim-data agreement";
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/person/documents/0/number", "no-victim-data-agreement"},
                   {"/body/narrative", "no-victim-data-agreement"},
                   {"/unmapped", "no-victim-data-agreement"}}));
  const auto kept = rendered_and_valid(doc, *decision.find("kh-ratanakiri"));
  EXPECT_TRUE(kept == doc) << "the agreement's recipient gets it as sent";
  const std::string copy = render_for(doc, *decision.find("kh-stungtreng"));
  EXPECT_EQ(copy.find(doc_scan_base64), std::string::npos) << copy;
  EXPECT_EQ(copy.find("WP-0042"), std::string::npos) << copy;
  const auto rendered = rendered_and_valid(doc, *decision.find("kh-stungtreng"));
  EXPECT_FALSE(rendered.HasMember("unmapped"));
  ASSERT_EQ(rendered["withheld"].Size(), 3u);
  EXPECT_EQ(json::get_string(rendered["withheld"][2], "pointer"), "/unmapped");

  // Withheld even when the victim has no other field to withhold (a KH-CNP referral whose only
  // document is the scan).
  erase(doc, "/body/narrative");
  erase(doc, "/body/person/documents");
  EXPECT_EQ(withheld_of(route_as(doc), "kh-stungtreng"),
            (pairs{{"/unmapped", "no-victim-data-agreement"}}));
}

TEST_F(Routing, UnmappedAboutAMinorNeedsTheSendersMark) {
  auto doc = example("victim.identification");
  set_json(doc, "/body/person/minor", "true");
  set_json(doc, "/unmapped", unmapped_json);
  auto decision = route_as(doc);
  EXPECT_EQ(withheld_of(decision, "kh-ratanakiri"),
            (pairs{{"/body/person/documents/0/number", "minor-data-not-marked-necessary"},
                   {"/body/narrative", "minor-data-not-marked-necessary"},
                   {"/unmapped", "minor-data-not-marked-necessary"}}));
  EXPECT_FALSE(rendered_and_valid(doc, *decision.find("kh-ratanakiri")).HasMember("unmapped"));
  set_json(doc, "/handling/minorDataNecessary", "true");
  decision = route_as(doc);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty());
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng").back(),
            (std::pair<std::string, std::string>{"/unmapped", "no-victim-data-agreement"}));
}

TEST_F(Routing, UnmappedOfATipGoesWithItsPossibleVictimsFields) {
  auto doc = example("hotline.tip");  // possible victim aged 15-16
  open_handling(doc);
  set_json(doc, "/unmapped", unmapped_json);
  auto decision = route_as(doc);
  EXPECT_EQ(withheld_of(decision, "kh-ratanakiri"),
            (pairs{{"/body/summary", "minor-data-not-marked-necessary"},
                   {"/unmapped", "minor-data-not-marked-necessary"}}));
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/summary", "no-victim-data-agreement"},
                   {"/unmapped", "no-victim-data-agreement"}}));
  EXPECT_FALSE(rendered_and_valid(doc, *decision.find("kh-stungtreng")).HasMember("unmapped"));

  // No possible victim, nothing withheld; nor from a wanted notice (no victim data).
  set_json(
      doc, "/body/subjects",
      R"([{"role": "suspected-trafficker", "description": "A man of about 30 (fictional)."}])");
  EXPECT_TRUE(withheld_of(route_as(doc), "kh-stungtreng").empty());
  auto wanted = example("person.wanted");
  set_json(wanted, "/unmapped", unmapped_json);
  EXPECT_TRUE(withheld_of(route_as(wanted), "kh-stungtreng").empty());
}

// --- Rendering ------------------------------------------------------------------------------

TEST_F(Routing, RenderedCopyValidatesAndListsWhatIsWithheld) {
  const auto doc = victim_with_photo();
  const auto decision = route_as(doc);
  const recipient_plan* plan = decision.find("kh-stungtreng");
  ASSERT_NE(plan, nullptr);
  const auto copy = rendered_and_valid(doc, *plan);
  ASSERT_TRUE(copy.IsObject());
  EXPECT_FALSE(copy["body"]["person"].HasMember("photos"));
  EXPECT_FALSE(copy["body"]["person"]["documents"][0].HasMember("number"));
  EXPECT_EQ(json::get_string(copy["body"]["person"]["documents"][0], "type"), "border-pass")
      << "the rest of the document stays";
  EXPECT_FALSE(copy["body"].HasMember("narrative"));
  EXPECT_TRUE(copy["body"].HasMember("needs"));
  ASSERT_TRUE(copy.HasMember("withheld"));
  pairs listed;
  for (const auto& w : copy["withheld"].GetArray()) {
    listed.emplace_back(json::get_string(w, "pointer"), json::get_string(w, "reason"));
  }
  EXPECT_EQ(listed, withheld_of(decision, "kh-stungtreng"));
  // Everything else is unchanged.
  rapidjson::Document expected;
  expected.CopyFrom(doc, expected.GetAllocator());
  for (const auto& w : plan->withheld) {
    rapidjson::Pointer(w.pointer.c_str()).Erase(expected);
  }
  rapidjson::Document without_list;
  without_list.CopyFrom(copy, without_list.GetAllocator());
  without_list.RemoveMember("withheld");
  EXPECT_TRUE(without_list == expected);
}

TEST_F(Routing, RenderedTipKeepsARequiredSummaryAsAMarker) {
  const auto doc = example("hotline.tip");
  const auto decision = route_as(doc);
  const recipient_plan* plan = decision.find("kh-ratanakiri");
  ASSERT_NE(plan, nullptr);
  ASSERT_EQ(plan->withheld.size(), 1u);
  const auto copy = rendered_and_valid(doc, *plan);
  ASSERT_TRUE(copy.IsObject());
  EXPECT_EQ(json::to_string(copy["body"]["summary"]), R"({"text":"[withheld]"})");
  ASSERT_EQ(copy["withheld"].Size(), 1u);
  EXPECT_EQ(json::get_string(copy["withheld"][0], "pointer"), "/body/summary");
  EXPECT_EQ(json::get_string(copy["withheld"][0], "reason"), "minor-data-not-marked-necessary");
}

TEST_F(Routing, RenderedCopyWithNothingWithheldIsTheMessage) {
  for (const char* type :
       {"victim.identification", "hotline.tip", "person.wanted", "verification.request",
        "verification.result", "case.status", "receipt"}) {
    SCOPED_TRACE(type);
    auto doc = example(type);
    set_json(doc, "/handling/minorDataNecessary", "true");
    const auto decision = route_as(doc);
    const recipient_plan* plan = decision.find("kh-ratanakiri");
    ASSERT_NE(plan, nullptr) << describe(decision);
    ASSERT_TRUE(plan->withheld.empty());
    const auto copy = rendered_and_valid(doc, *plan);
    EXPECT_FALSE(copy.HasMember("withheld"));
    EXPECT_TRUE(copy == doc) << render_for(doc, *plan);
  }
}

TEST_F(Routing, RenderedCopyAppendsToAnEarlierWithheldList) {
  auto doc = victim_with_photo();
  set_json(doc, "/withheld",
           R"([{"pointer": "/body/person/parents", "reason": "no-victim-data-agreement"}])");
  rapidjson::Document checked;
  ASSERT_EQ(checker_->check(json::to_string(doc), "vn-gialai", checked).status, 0)
      << "withheld is a valid envelope member";
  const auto decision = route_as(doc);
  const auto copy = rendered_and_valid(doc, *decision.find("kh-stungtreng"));
  ASSERT_TRUE(copy.HasMember("withheld"));
  ASSERT_EQ(copy["withheld"].Size(), 4u);
  EXPECT_EQ(json::get_string(copy["withheld"][0], "pointer"), "/body/person/parents");
  EXPECT_EQ(json::get_string(copy["withheld"][3], "pointer"), "/body/narrative");
}

TEST_F(Routing, WithheldEntriesAreCheckedBySchema) {
  auto doc = example("receipt");
  set_json(doc, "/withheld", R"([{"pointer": "/body/x", "reason": "because"}])");
  rapidjson::Document checked;
  EXPECT_EQ(checker_->check(json::to_string(doc), "vn-gialai", checked).status, 422);
  set_json(doc, "/withheld", R"([{"pointer": "/body/x"}])");
  EXPECT_EQ(checker_->check(json::to_string(doc), "vn-gialai", checked).status, 422);
  set_json(doc, "/handling/minorDataNecessary", R"("yes")");
  erase(doc, "/withheld");
  EXPECT_EQ(checker_->check(json::to_string(doc), "vn-gialai", checked).status, 422);
}

// --- Explainability -------------------------------------------------------------------------

TEST_F(Routing, DecisionAsJson) {
  const auto decision = route_as(victim_with_photo());
  rapidjson::Document doc;
  ASSERT_FALSE(doc.Parse(to_json(decision).c_str()).HasParseError());
  EXPECT_FALSE(doc.HasMember("error"));
  ASSERT_EQ(doc["matchedRules"].Size(), 2u);
  ASSERT_EQ(doc["recipients"].Size(), 2u);
  EXPECT_EQ(json::get_string(doc["recipients"][1], "partner"), "kh-stungtreng");
  EXPECT_EQ(json::get_string(doc["recipients"][1], "decidedBy"), "explicit");
  EXPECT_EQ(doc["recipients"][1]["withheld"].Size(), 3u);
  ASSERT_EQ(doc["excluded"].Size(), 1u);
  EXPECT_EQ(json::get_string(doc["excluded"][0], "partner"), "vn-thanhhoa");
  EXPECT_EQ(json::get_string(doc["excluded"][0], "considered"), "gialai-units");
  EXPECT_EQ(json::get_string(doc["excluded"][0], "reason"), "not-releasable");
  EXPECT_EQ(to_json(decision).find("KUMRU"), std::string::npos) << "metadata only";

  routing_decision refused;
  refused.error = "sender-may-not-send-type";
  ASSERT_FALSE(doc.Parse(to_json(refused).c_str()).HasParseError());
  EXPECT_EQ(json::get_string(doc, "error"), "sender-may-not-send-type");
}

// --- Rules file -----------------------------------------------------------------------------

class RoutingRulesLoad : public Routing {
 protected:
  /// Parses `text` and expects exactly the problems at `fields` (any order).
  routing_rules expect_problems(const std::string& text, std::multiset<std::string> fields) {
    std::vector<config_problem> problems;
    auto rules = parse_rules(text, problems);
    std::multiset<std::string> got;
    for (const auto& p : problems) {
      EXPECT_EQ(p.file, "routing.json");
      EXPECT_FALSE(p.reason.empty());
      got.insert(p.field);
    }
    EXPECT_EQ(got, fields) << describe(problems);
    return rules;
  }

  /// One rule `{"id": "r", "match": <match>, "add": ["kh-ratanakiri"]}`.
  static std::string with_match(const std::string& match) {
    return R"({"rules": [{"id": "r", "match": )" + match + R"(, "add": ["kh-ratanakiri"]}]})";
  }
};

TEST_F(RoutingRulesLoad, RepositoryRulesLoadWithRepositoryPartners) {
  std::vector<config_problem> problems;
  const auto partners = partner_registry::load(source_dir() / "config" / "partners.json", problems);
  const auto rules =
      routing_rules::load(source_dir() / "config" / "routing.json", problems, partners, tables());
  ASSERT_TRUE(problems.empty()) << describe(problems);
  EXPECT_GE(rules.size(), 4u);
  std::set<std::string> ids;
  for (const auto& rule : rules.rules()) {
    EXPECT_FALSE(rule.description.empty()) << rule.id;
    EXPECT_FALSE(rule.add.empty()) << rule.id;
    ids.insert(rule.id);
  }
  EXPECT_EQ(ids.size(), rules.size());
  // The shipped four-eyes release: secret copies leaving the sender's country.
  ASSERT_FALSE(rules.release_rules().empty());
  EXPECT_EQ(rules.release_approvals(), 2u);
  for (const auto& rule : rules.release_rules()) {
    EXPECT_FALSE(rule.description.empty()) << rule.id;
  }
}

TEST_F(RoutingRulesLoad, RepositoryConfigurationRoutesTheIssueDemo) {
  // The victim identification of the demo reaches both Cambodian commissariats; Stung Treng,
  // without a victim-data agreement, does not get the document number or the narrative.
  std::vector<config_problem> problems;
  const auto partners = partner_registry::load(source_dir() / "config" / "partners.json", problems);
  const auto rules =
      routing_rules::load(source_dir() / "config" / "routing.json", problems, partners, tables());
  ASSERT_TRUE(problems.empty()) << describe(problems);
  const auto victim = example("victim.identification");
  auto decision = route(victim, "vn-gialai", partners, rules, tables(), {}, routed_at);
  EXPECT_EQ(recipients_of(decision),
            (pairs{{"kh-ratanakiri", "explicit"}, {"kh-stungtreng", "explicit"}}))
      << describe(decision);
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty());
  EXPECT_EQ(withheld_of(decision, "kh-stungtreng"),
            (pairs{{"/body/person/documents/0/number", "no-victim-data-agreement"},
                   {"/body/narrative", "no-victim-data-agreement"}}));

  // A wanted notice from Vietnam with onward transfer allowed goes to the three peers.
  auto wanted = example("person.wanted");
  erase(wanted, "/recipients");
  set_json(wanted, "/handling/onwardTransfer", R"("allowed")");
  decision = route(wanted, "vn-gialai", partners, rules, tables(), {}, routed_at);
  std::set<std::string> to;
  for (const auto& r : decision.recipients) {
    to.insert(r.partner_id);
  }
  EXPECT_EQ(to, (std::set<std::string>{"kh-ratanakiri", "kh-stungtreng", "vn-thanhhoa"}))
      << describe(decision);
}

TEST_F(RoutingRulesLoad, ValidRuleKeepsEverything) {
  const auto rules = expect_problems(R"({"description": "x", "rules": [
    {"id": "r-1", "description": "d", "match": {"types": ["hotline.tip"], "senders": ["vn-gialai"],
     "regions": ["KH-16", "LA-*"], "confidentiality": ["restricted", "secret"]},
     "add": ["kh-ratanakiri", "la-houaphanh"]},
    {"id": "r-2", "add": ["vn-thanhhoa"]}]})",
                                     {});
  ASSERT_EQ(rules.size(), 2u);
  const auto& r = rules.rules()[0];
  EXPECT_EQ(r.id, "r-1");
  EXPECT_EQ(r.description, "d");
  EXPECT_EQ(r.types, std::vector<std::string>{"hotline.tip"});
  EXPECT_EQ(r.senders, std::vector<std::string>{"vn-gialai"});
  EXPECT_EQ(r.regions, (std::vector<std::string>{"KH-16", "LA-*"}));
  EXPECT_EQ(r.confidentiality, (std::vector<std::string>{"restricted", "secret"}));
  EXPECT_EQ(r.add, (std::vector<std::string>{"kh-ratanakiri", "la-houaphanh"}));
  EXPECT_TRUE(rules.rules()[1].types.empty()) << "no match: matches anything";
}

TEST_F(RoutingRulesLoad, UnknownPartnersTypesRegionsAndLevels) {
  expect_problems(R"({"rules": [{"id": "r", "add": ["kh-ratanakiri", "kh-kandal"]}]})",
                  {"/rules/0/add/1"});
  expect_problems(with_match(R"({"senders": ["kh-kandal"]})"), {"/rules/0/match/senders/0"});
  expect_problems(with_match(R"({"types": ["hotline.tip", "victim"]})"),
                  {"/rules/0/match/types/1"});
  expect_problems(with_match(R"({"regions": ["VN-99", "KH-16", "kh-*", "XX-*", "KH"]})"),
                  {"/rules/0/match/regions/0", "/rules/0/match/regions/2",
                   "/rules/0/match/regions/3", "/rules/0/match/regions/4"});
  expect_problems(with_match(R"({"confidentiality": ["top-secret"]})"),
                  {"/rules/0/match/confidentiality/0"});
}

TEST_F(RoutingRulesLoad, RetiredRegionCodeNamesTheCurrentUnit) {
  std::vector<config_problem> problems;
  parse_rules(with_match(R"({"regions": ["VN-31"]})"), problems);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].field, "/rules/0/match/regions/0");
  EXPECT_NE(problems[0].reason.find("VN-30"), std::string::npos) << problems[0].reason;
}

TEST_F(RoutingRulesLoad, IdsMustBeValidAndUnique) {
  const auto rules =
      expect_problems(R"({"rules": [
    {"id": "same", "add": ["kh-ratanakiri"]},
    {"id": "same", "add": ["kh-stungtreng"]},
    {"add": ["kh-stungtreng"]},
    {"id": "explicit", "add": ["kh-stungtreng"]},
    {"id": "Upper Case", "add": ["kh-stungtreng"]},
    {"id": "earlier-recipient", "add": ["kh-stungtreng"]}]})",
                      {"/rules/1/id", "/rules/2/id", "/rules/3/id", "/rules/4/id", "/rules/5/id"});
  ASSERT_EQ(rules.size(), 1u) << "rules with problems are left out";
  EXPECT_EQ(rules.rules()[0].add, std::vector<std::string>{"kh-ratanakiri"});
}

TEST_F(RoutingRulesLoad, UnknownMembersAndShapes) {
  expect_problems(R"({"rules": [{"id": "r", "add": ["kh-ratanakiri"], "remove": []}]})",
                  {"/rules/0/remove"});
  expect_problems(with_match(R"({"where": ["KH-16"]})"), {"/rules/0/match/where"});
  expect_problems(with_match(R"({"types": []})"), {"/rules/0/match/types"});
  expect_problems(with_match(R"({"types": "hotline.tip"})"), {"/rules/0/match/types"});
  expect_problems(with_match(R"({"types": ["receipt", "receipt"]})"), {"/rules/0/match/types/1"});
  // A case update names no region: a rule matching it by region promises what never happens.
  expect_problems(with_match(R"({"types": ["hotline.tip", "case.status"], "regions": ["VN-21"]})"),
                  {"/rules/0/match/types/1"});
  expect_problems(with_match(R"({"types": ["receipt"], "regions": ["KH-*"]})"),
                  {"/rules/0/match/types/0"});
  expect_problems(with_match(R"(["types"])"), {"/rules/0/match"});
  expect_problems(R"({"rules": [{"id": "r"}]})", {"/rules/0/add"});
  expect_problems(R"({"rules": [{"id": "r", "add": []}]})", {"/rules/0/add"});
  expect_problems(R"({"rules": [{"id": "r", "add": ["kh-ratanakiri"], "description": 1}]})",
                  {"/rules/0/description"});
  expect_problems(R"({"rules": ["r"]})", {"/rules/0"});
  expect_problems(R"({"rules": {}})", {"/rules"});
  expect_problems(R"([])", {"/rules"});
  expect_problems(R"({"rules": [], "rule": []})", {"/rule"});
}

TEST_F(RoutingRulesLoad, FileProblemsNameTheFile) {
  test::temp_dir dir;
  test::write_file(dir / "routing.json", R"({"rules": [)");
  std::vector<config_problem> problems;
  auto rules = routing_rules::load(dir / "routing.json", problems, *partners_, tables());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir / "routing.json").string());
  EXPECT_EQ(rules.size(), 0u);

  problems.clear();
  test::write_file(dir / "routing.json", R"({"rules": [{"id": "r", "add": ["kh-kandal"]}]})");
  rules = routing_rules::load(dir / "routing.json", problems, *partners_, tables());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir / "routing.json").string());
  EXPECT_EQ(problems[0].field, "/rules/0/add/0");

  problems.clear();
  routing_rules::load(dir / "absent.json", problems, *partners_, tables());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, (dir / "absent.json").string());
}

TEST_F(RoutingRulesLoad, AddRefusesADuplicateId) {
  routing_rules rules;
  EXPECT_TRUE(rules.add({.id = "a", .add = {"kh-ratanakiri"}}));
  EXPECT_FALSE(rules.add({.id = "a", .add = {"kh-stungtreng"}}));
  EXPECT_EQ(rules.size(), 1u);
}

// --- four-eyes release ------------------------------------------------------------------------

class Release : public Routing {
 protected:
  static routing_rules with_release(const std::string& release) {
    std::vector<config_problem> problems;
    auto rules = parse_rules(R"({"rules": [], "release": )" + release + "}", problems);
    EXPECT_TRUE(problems.empty()) << describe(problems);
    return rules;
  }

  /// Each recipient and the rule holding its copy ("" when it goes at once).
  static pairs holds_of(const routing_decision& d) {
    pairs out;
    for (const auto& r : d.recipients) {
      out.emplace_back(r.partner_id, r.held_by);
    }
    return out;
  }

  /// The example victim identification sent to both Cambodian commissariats and to Thanh Hoa,
  /// in Vietnam like the sender.
  static rapidjson::Document victim_to_three(const std::string& confidentiality) {
    auto doc = example("victim.identification");
    erase(doc, "/handling/releasableTo");
    set_json(doc, "/recipients", R"(["kh-ratanakiri", "kh-stungtreng", "vn-thanhhoa"])");
    set_json(doc, "/handling/confidentiality", "\"" + confidentiality + "\"");
    return doc;
  }
};

TEST_F(Release, SecretCopiesLeavingTheSendersCountryAreHeld) {
  const auto rules = with_release(R"({"rules": [{"id": "secret-abroad",
      "match": {"confidentiality": ["secret"]}, "to": {"crossBorder": true}}]})");
  EXPECT_EQ(rules.release_approvals(), 2u) << "four eyes by default";
  auto decision = route_as(victim_to_three("secret"), "vn-gialai", &rules);
  EXPECT_EQ(holds_of(decision), (pairs{{"kh-ratanakiri", "secret-abroad"},
                                       {"kh-stungtreng", "secret-abroad"},
                                       {"vn-thanhhoa", ""}}))
      << describe(decision);
  decision = route_as(victim_to_three("confidential"), "vn-gialai", &rules);
  EXPECT_EQ(holds_of(decision),
            (pairs{{"kh-ratanakiri", ""}, {"kh-stungtreng", ""}, {"vn-thanhhoa", ""}}));
  // Without release rules nothing is held, whatever the message.
  decision = route_as(victim_to_three("secret"));
  EXPECT_EQ(holds_of(decision),
            (pairs{{"kh-ratanakiri", ""}, {"kh-stungtreng", ""}, {"vn-thanhhoa", ""}}));
}

TEST_F(Release, TheFirstRuleWhoseRecipientsMatchNamesTheHold) {
  const auto rules = with_release(R"({"approvals": 3, "rules": [
      {"id": "to-stungtreng", "to": {"partners": ["kh-stungtreng"]}},
      {"id": "to-cambodia", "match": {"types": ["victim.identification"]},
       "to": {"countries": ["KH"]}},
      {"id": "tips-only", "match": {"types": ["hotline.tip"]}}]})");
  EXPECT_EQ(rules.release_approvals(), 3u);
  const auto decision = route_as(victim_to_three("restricted"), "vn-gialai", &rules);
  EXPECT_EQ(holds_of(decision), (pairs{{"kh-ratanakiri", "to-cambodia"},
                                       {"kh-stungtreng", "to-stungtreng"},
                                       {"vn-thanhhoa", ""}}))
      << describe(decision);
}

TEST_F(Release, AMinorsRuleHoldsOnlyMessagesAboutAPossibleMinorVictim) {
  const auto rules = with_release(R"({"rules": [{"id": "minors", "match": {"minors": true}}]})");
  auto adult = victim_to_three("restricted");
  set_json(adult, "/body/person/minor", "false");
  erase(adult, "/body/person/birthDate");
  EXPECT_EQ(holds_of(route_as(adult, "vn-gialai", &rules)),
            (pairs{{"kh-ratanakiri", ""}, {"kh-stungtreng", ""}, {"vn-thanhhoa", ""}}));
  auto child = victim_to_three("restricted");
  set_json(child, "/body/person/minor", "true");
  EXPECT_EQ(
      holds_of(route_as(child, "vn-gialai", &rules)),
      (pairs{{"kh-ratanakiri", "minors"}, {"kh-stungtreng", "minors"}, {"vn-thanhhoa", "minors"}}));

  auto tip = example("hotline.tip");  // its possible victim is 15-16
  EXPECT_EQ(holds_of(route_as(tip, "vn-gialai", &rules)), (pairs{{"kh-ratanakiri", "minors"}}));
  // A minor who is only a suspect is not a victim whose data the rule protects.
  set_json(tip, "/body/subjects/0/role", R"("witness")");
  EXPECT_EQ(holds_of(route_as(tip, "vn-gialai", &rules)), (pairs{{"kh-ratanakiri", ""}}));
}

TEST_F(Release, AWithdrawalIsNotHeldFromThoseWhoHadTheMessageButGoesWithoutItsNote) {
  const auto rules = with_release(R"({"rules": [{"id": "everything"}]})");
  auto status = example("case.status");  // with a note
  EXPECT_EQ(holds_of(route_as(status, "vn-gialai", &rules)),
            (pairs{{"kh-ratanakiri", "everything"}, {"kh-stungtreng", "everything"}}))
      << "a status update is held like any message";
  for (const char* taking_back : {R"("withdrawn")", R"("cancelled")"}) {
    SCOPED_TRACE(taking_back);
    set_json(status, "/body/status", taking_back);
    // Those who had the message (the store's earlier recipients) hear of it at once, without
    // the note no administrator reviewed; a partner the sender names that never had it gets the
    // withdrawal as it gets anything: held, note and all.
    const auto decision = route_as(status, "vn-gialai", &rules, {"kh-ratanakiri", "vn-thanhhoa"});
    EXPECT_EQ(holds_of(decision),
              (pairs{{"kh-ratanakiri", ""}, {"kh-stungtreng", "everything"}, {"vn-thanhhoa", ""}}))
        << describe(decision);
    EXPECT_EQ(withheld_of(decision, "kh-ratanakiri"), (pairs{{"/body/note", "not-released"}}));
    EXPECT_EQ(withheld_of(decision, "vn-thanhhoa"), (pairs{{"/body/note", "not-released"}}));
    EXPECT_TRUE(withheld_of(decision, "kh-stungtreng").empty());
    const auto copy = rendered_and_valid(status, *decision.find("kh-ratanakiri"));
    EXPECT_FALSE(copy["body"].HasMember("note"));
    EXPECT_EQ(json::to_string(copy["body"]["about"]), json::to_string(status["body"]["about"]));
    // An unknown message (nobody known to have had it): held for everyone.
    EXPECT_EQ(holds_of(route_as(status, "vn-gialai", &rules)),
              (pairs{{"kh-ratanakiri", "everything"}, {"kh-stungtreng", "everything"}}));
  }
  // Without a note, and where no rule would hold it, nothing is left out.
  erase(status, "/body/note");
  auto decision = route_as(status, "vn-gialai", &rules, {"kh-ratanakiri"});
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty()) << describe(decision);
  set_json(status, "/body/note", R"({"text": "Entered twice.", "lang": "eng"})");
  decision = route_as(status, "vn-gialai", nullptr, {"kh-ratanakiri"});
  EXPECT_TRUE(withheld_of(decision, "kh-ratanakiri").empty()) << describe(decision);
}

TEST_F(Release, TheDecisionAsJsonNamesTheHold) {
  const auto rules = with_release(R"({"rules": [{"id": "hold-kh", "to": {"countries": ["KH"]}}]})");
  const auto decision = route_as(victim_to_three("restricted"), "vn-gialai", &rules);
  rapidjson::Document doc;
  doc.Parse(to_json(decision).c_str());
  const auto& recipients = doc["recipients"];
  ASSERT_EQ(recipients.Size(), 3u) << describe(decision);
  EXPECT_EQ(json::get_string(recipients[0], "heldBy"), "hold-kh");
  EXPECT_EQ(json::get_string(recipients[1], "heldBy"), "hold-kh");
  EXPECT_FALSE(recipients[2].HasMember("heldBy")) << "only held copies carry the member";
}

TEST_F(RoutingRulesLoad, ReleaseRulesKeepEverything) {
  const auto rules = expect_problems(R"({"rules": [], "release": {"description": "d",
      "approvals": 1, "rules": [
        {"id": "r-1", "description": "x", "match": {"types": ["hotline.tip"],
         "senders": ["vn-gialai"], "regions": ["KH-16"], "confidentiality": ["secret"],
         "minors": true}, "to": {"crossBorder": true, "countries": ["KH", "LA"],
         "partners": ["kh-ratanakiri"]}},
        {"id": "r-2"}]}})",
                                     {});
  EXPECT_EQ(rules.release_approvals(), 1u);
  ASSERT_EQ(rules.release_rules().size(), 2u);
  const auto& r = rules.release_rules()[0];
  EXPECT_EQ(r.id, "r-1");
  EXPECT_EQ(r.description, "x");
  EXPECT_EQ(r.types, std::vector<std::string>{"hotline.tip"});
  EXPECT_EQ(r.senders, std::vector<std::string>{"vn-gialai"});
  EXPECT_EQ(r.regions, std::vector<std::string>{"KH-16"});
  EXPECT_EQ(r.confidentiality, std::vector<std::string>{"secret"});
  EXPECT_TRUE(r.minors);
  EXPECT_TRUE(r.cross_border);
  EXPECT_EQ(r.countries, (std::vector<std::string>{"KH", "LA"}));
  EXPECT_EQ(r.partners, std::vector<std::string>{"kh-ratanakiri"});
  EXPECT_FALSE(rules.release_rules()[1].minors);
  EXPECT_FALSE(rules.release_rules()[1].cross_border);
}

TEST_F(RoutingRulesLoad, ReleaseProblemsNameTheirPlace) {
  auto one = [](const std::string& rule) {
    return R"({"rules": [], "release": {"rules": [)" + rule + "]}}";
  };
  for (const char* approvals : {"0", "6", "\"2\"", "1.5", "-1"}) {
    SCOPED_TRACE(approvals);
    const auto rules = expect_problems(std::string(R"({"rules": [], "release": {"approvals": )") +
                                           approvals + R"(, "rules": []}})",
                                       {"/release/approvals"});
    EXPECT_EQ(rules.release_approvals(), 2u) << "a bad count leaves the default";
  }
  expect_problems(R"({"rules": [], "release": []})", {"/release"});
  expect_problems(R"({"rules": [], "release": {}})", {"/release/rules"});
  expect_problems(R"({"rules": [], "release": {"rules": [], "quorum": 2}})", {"/release/quorum"});
  expect_problems(one(R"({"id": "r", "match": {"minors": false}})"),
                  {"/release/rules/0/match/minors"});
  expect_problems(one(R"({"id": "r", "match": {"minor": true}})"),
                  {"/release/rules/0/match/minor"});
  expect_problems(one(R"({"id": "r", "to": {"crossBorder": "yes"}})"),
                  {"/release/rules/0/to/crossBorder"});
  expect_problems(one(R"({"id": "r", "to": {"countries": ["KH", "XX", "kh"]}})"),
                  {"/release/rules/0/to/countries/1", "/release/rules/0/to/countries/2"});
  expect_problems(one(R"({"id": "r", "to": {"partners": ["kh-kandal"]}})"),
                  {"/release/rules/0/to/partners/0"});
  expect_problems(one(R"({"id": "r", "to": {"regions": ["KH-16"]}})"),
                  {"/release/rules/0/to/regions"});
  expect_problems(one(R"({"id": "r", "to": ["KH"]})"), {"/release/rules/0/to"});
  expect_problems(one(R"({"id": "r", "add": ["kh-ratanakiri"]})"), {"/release/rules/0/add"});
  expect_problems(one(R"({"id": "explicit"})"), {"/release/rules/0/id"});
  expect_problems(one(R"("r")"), {"/release/rules/0"});
  // Ids are unique across routing and release rules: a hold names one rule.
  const auto rules = expect_problems(
      R"({"rules": [{"id": "same", "add": ["kh-ratanakiri"]}], "release": {"rules": [
          {"id": "same"}, {"id": "other"}, {"id": "other"}]}})",
      {"/release/rules/0/id", "/release/rules/2/id"});
  ASSERT_EQ(rules.release_rules().size(), 1u) << "rules with problems are left out";
  EXPECT_EQ(rules.release_rules()[0].id, "other");
}

TEST(CodeTable, CurrentUnitsFollowSuccessorsTransitively) {
  code_table table;
  table.codes = {{"A", {"B"}}, {"B", {"C", "D"}}, {"C", {}}, {"D", {}}, {"X", {"Y"}}, {"Y", {"X"}}};
  EXPECT_EQ(table.current_units("A"), (std::vector<std::string>{"C", "D"}));
  EXPECT_EQ(table.current_units("C"), std::vector<std::string>{"C"});
  EXPECT_TRUE(table.current_units("X").empty()) << "a cycle ends nowhere, and ends";
  EXPECT_TRUE(table.current_units("Q").empty());
}

}  // namespace
}  // namespace mxgw::pipeline
