// Persons across messages end to end (docs/persons.md): a real gateway keeps keyed digests of
// the persons of each accepted message; an administrator asks, through the admin API or `mxgw
// persons candidates`, which persons of other messages may be the same; the question is audited,
// the answer names no one, and a withdrawn message is no longer a candidate.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/store/sealed.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/pipeline/document_edit.hpp"
#include "tests/support/mxgw_process.hpp"

namespace mxgw::test {
namespace {

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  return doc;
}

// The example victim (Khmer and Latin names, a border pass) as Gia Lai sends it.
constexpr const char* first_id = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
// The same person as Thanh Hoa knows her: only a Latin spelling, given name first, and the pass
// number written with spaces.
constexpr const char* second_id = "6b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e";
// Someone else.
constexpr const char* third_id = "7c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f";

class Persons : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"vn-thanhhoa","name":"Thanh Hoa liaison office","country":"VN"}]})");
    enable_admin(c);
    // As shipped: Khmer and Lao names are put into Latin, so they meet their Latin spellings.
    c.translit_dir = source_dir() / "config" / "translit";
    if (!matching_) {
      c.persons = {};
    }
  }

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
    thanhhoa_ = partner_client("vn-thanhhoa");
    alice_ = admin_client("alice");
  }

  // The example victim identification from `sender` with `id`, its person's names replaced by
  // `names` and its documents by `documents` (JSON), sent to no one.
  void submit(const cli::client_tls& sender, const std::string& sender_id, const std::string& id,
              const std::string& names, const std::string& documents) {
    rapidjson::Document doc;
    doc.Parse(example("victim.identification", id).c_str());
    doc["handling"].RemoveMember("releasableTo");
    set_json(doc, "/sender", "\"" + sender_id + "\"");
    set_json(doc, "/recipients", "[]");
    set_json(doc, "/body/person/names", names);
    set_json(doc, "/body/person/documents", documents);
    auto r = post(sender, json::to_string(doc));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
  }

  void submit_three() {
    submit(gialai_, "vn-gialai", first_id,
           R"([{"family": ["គំរូ"], "given": ["សុភា"], "script": "Khmr", "kind": "primary"}])",
           R"([{"type": "border-pass", "number": "EXAMPLE-0001", "issuingCountry": "KH"}])");
    submit(thanhhoa_, "vn-thanhhoa", second_id,
           R"([{"given": ["Sophea", "Kumru"], "script": "Latn", "kind": "primary",
                "order": "given-first"}])",
           R"([{"type": "passport", "number": "example 0001"}])");
    submit(thanhhoa_, "vn-thanhhoa", third_id,
           R"([{"family": ["Nguyen"], "given": ["Thi", "Hoa"], "script": "Latn",
                "kind": "primary"}])",
           R"([{"type": "citizen-id", "number": "079301000123"}])");
  }

  // Thanh Hoa withdraws message `id` (a case.status sent to no one).
  void withdraw_as_thanhhoa(const std::string& id) {
    rapidjson::Document withdrawal;
    withdrawal.Parse(example("case.status", "8d4e5f6a-7b8c-4d9e-9fa0-2b3c4d5e6f70").c_str());
    set_json(withdrawal, "/sender", R"("vn-thanhhoa")");
    set_json(withdrawal, "/recipients", "[]");
    set_json(withdrawal, "/body/status", R"("withdrawn")");
    set_json(withdrawal, "/body/about/messageId", "\"" + id + "\"");
    auto r = post(thanhhoa_, json::to_string(withdrawal));
    ASSERT_EQ(r.status, 202) << r.body;
  }

  cli::client_result candidates(const std::string& id, const std::string& query = {}) {
    return admin(alice_, "GET", "/admin/v1/messages/" + id + "/candidates" + query);
  }

  // "event actor message candidates" of each persons.* audit entry.
  std::vector<std::string> persons_audit() {
    auto r = admin(alice_, "GET", "/admin/v1/audit?event=persons.*");
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    auto doc = parse(r.body);
    for (const auto& e : doc["entries"].GetArray()) {
      const auto& entry = e["entry"];
      out.push_back(std::string(json::get_string(entry, "event")) + " " +
                    std::string(json::get_string(entry, "actor")) + " " +
                    std::string(json::get_string(entry, "message")) + " " +
                    std::string(json::get_string(entry["details"], "candidates")));
    }
    return out;
  }

  // Rows in the store's person_keys table (-1: it could not be read).
  long long stored_keys() const {
    sqlite3* db = nullptr;
    long long n = -1;
    if (sqlite3_open_v2(config_.store.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
        SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM person_keys", -1, &stmt, nullptr) ==
              SQLITE_OK &&
          sqlite3_step(stmt) == SQLITE_ROW) {
        n = sqlite3_column_int64(stmt, 0);
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return n;
  }

  // A gateway.json for `mxgw persons rekey` on this gateway's store, with `match_key` (none:
  // no persons section).
  std::filesystem::path rekey_config(const std::filesystem::path& match_key) const {
    const auto q = [](const std::filesystem::path& p) { return "\"" + p.string() + "\""; };
    std::string text =
        R"({"listener": {"tls": {"certificate": )" + q(config_.listener.tls.certificate) +
        R"(, "private_key": )" + q(config_.listener.tls.private_key) + R"(, "partner_ca": [)" +
        q(config_.listener.tls.partner_cas[0]) + R"(]}}, "store": {"path": )" +
        q(config_.store.path) +
        R"(, "encryption": {"active": "test-1", "keys": [{"id": "test-1", "file": )" +
        q(config_.store.keys[0].file) + R"(}]}}, "partners": )" + q(config_.partners_file) +
        R"(, "schema_dir": )" + q(config_.schema_dir) + R"(, "mappings_dir": )" +
        q(config_.mappings_dir);
    if (!match_key.empty()) {
      text += R"(, "persons": {"match_key": {"file": )" + q(match_key) + "}}";
    }
    text += "}";
    write_file(dir_ / "rekey.json", text);
    return dir_ / "rekey.json";
  }

  // The candidates' message ids of `id`, in order, space-separated.
  std::string candidate_ids(const std::string& id) {
    auto r = candidates(id);
    EXPECT_EQ(r.status, 200) << r.body;
    std::string out;
    auto doc = parse(r.body);
    for (const auto& c : doc["candidates"].GetArray()) {
      out += (out.empty() ? "" : " ") + std::string(json::get_string(c, "message"));
    }
    return out;
  }

  bool matching_ = true;
  cli::client_tls gialai_, thanhhoa_, alice_;
};

TEST_F(Persons, TheSamePersonInAnotherMessageAndScriptIsACandidate) {
  submit_three();
  auto r = candidates(first_id);
  ASSERT_EQ(r.status, 200) << r.body;
  auto doc = parse(r.body);
  EXPECT_EQ(json::get_string(doc, "message"), first_id);
  EXPECT_FALSE(doc["truncated"].GetBool());
  ASSERT_EQ(doc["candidates"].Size(), 1u) << r.body;
  const auto& c = doc["candidates"][0];
  EXPECT_EQ(json::get_string(c, "pointer"), "/body/person");
  EXPECT_EQ(json::get_string(c, "message"), second_id);
  EXPECT_EQ(json::get_string(c, "otherPointer"), "/body/person");
  EXPECT_EQ(json::get_string(c, "sender"), "vn-thanhhoa");
  EXPECT_EQ(json::get_string(c, "type"), "victim.identification");
  EXPECT_FALSE(json::get_string(c, "acceptedAt").empty());
  ASSERT_EQ(c["basis"].Size(), 2u);
  EXPECT_EQ(std::string(c["basis"][0].GetString()), "document");
  EXPECT_EQ(std::string(c["basis"][1].GetString()), "name");

  // Both ways; and the one with no one alike has no candidates.
  auto back = parse(candidates(second_id).body);
  ASSERT_EQ(back["candidates"].Size(), 1u);
  EXPECT_EQ(json::get_string(back["candidates"][0], "message"), first_id);
  EXPECT_EQ(parse(candidates(third_id).body)["candidates"].Size(), 0u);

  // The answer names no one, and neither does the log.
  for (const char* name : {"KUMRU", "SOPHEA", "Sophea", "EXAMPLE", "0001", "សុភា"}) {
    EXPECT_EQ(r.body.find(name), std::string::npos) << name;
    EXPECT_EQ(log_text().find(name), std::string::npos) << name;
  }
  // Every question is on the audit chain, with the administrator and the message asked about.
  // Kept: per person, the name and document digests (no birth-year key: the example's birth date
  // is approximate).
  EXPECT_EQ(stored_keys(), 6);
  EXPECT_EQ(persons_audit(),
            (std::vector<std::string>{
                std::string("persons.candidates_viewed admin:alice ") + first_id + " 1",
                std::string("persons.candidates_viewed admin:alice ") + second_id + " 1",
                std::string("persons.candidates_viewed admin:alice ") + third_id + " 0"}));
}

TEST_F(Persons, AWithdrawnMessageIsNoLongerACandidate) {
  submit_three();
  withdraw_as_thanhhoa(second_id);
  EXPECT_EQ(parse(candidates(first_id).body)["candidates"].Size(), 0u);
  // The withdrawn message is still known (its metadata and audit stay); it matches no one.
  auto own = candidates(second_id);
  EXPECT_EQ(own.status, 200);
  EXPECT_EQ(parse(own.body)["candidates"].Size(), 0u);
}

TEST_F(Persons, TheLimitCutsTheListAndSaysSo) {
  submit_three();
  submit(gialai_, "vn-gialai", "9e5f6a7b-8c9d-4eaf-8b01-3c4d5e6f7081",
         R"([{"family": ["KUMRU"], "given": ["SOPHEA"], "script": "Latn", "kind": "alias"}])",
         "[]");
  auto all = parse(candidates(first_id).body);
  ASSERT_EQ(all["candidates"].Size(), 2u);
  EXPECT_FALSE(all["truncated"].GetBool());
  auto one = parse(candidates(first_id, "?limit=1").body);
  ASSERT_EQ(one["candidates"].Size(), 1u);
  EXPECT_TRUE(one["truncated"].GetBool());
  // The oldest other message first.
  EXPECT_EQ(json::get_string(one["candidates"][0], "message"), second_id);
}

TEST_F(Persons, BadQuestionsAreRefusedAndUnaudited) {
  submit_three();
  const auto unknown = candidates("00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(unknown.status, 404);
  const auto malformed = candidates("not-a-message");
  EXPECT_EQ(malformed.status, 404);
  EXPECT_EQ(malformed.body, unknown.body);
  EXPECT_EQ(candidates(first_id, "?limit=0").status, 422);
  EXPECT_EQ(candidates(first_id, "?limit=1001").status, 422);
  EXPECT_EQ(
      admin(alice_, "POST", std::string("/admin/v1/messages/") + first_id + "/candidates").status,
      405);
  // A partner's certificate does not open the admin listener, nor does the partner listener
  // know the route.
  EXPECT_EQ(
      admin(gialai_, "GET", std::string("/admin/v1/messages/") + first_id + "/candidates").status,
      0);
  EXPECT_EQ(get(gialai_, std::string("/admin/v1/messages/") + first_id + "/candidates").status,
            404);
  EXPECT_TRUE(persons_audit().empty());
}

TEST_F(Persons, TheCommandPrintsOneLinePerCandidate) {
  submit_three();
  const auto as = [this](std::vector<std::string> args) {
    for (const std::string& option :
         {std::string("--admin-url"), "https://localhost:" + std::to_string(gateway_->admin_port()),
          std::string("--cert"), alice_.cert.string(), std::string("--key"), alice_.key.string(),
          std::string("--ca"), alice_.ca.string()}) {
      args.push_back(option);
    }
    return run_mxgw(args, dir_.path());
  };
  auto r = as({"persons", "candidates", "--message", first_id});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_EQ(r.out, std::string(first_id) + "#/body/person  " + second_id +
                       "#/body/person  victim.identification  from vn-thanhhoa  accepted " +
                       std::string(json::get_string(
                           parse(candidates(first_id).body)["candidates"][0], "acceptedAt")) +
                       "  shares document,name\n");
  r = as({"persons", "candidates", "--message", "00000000-0000-4000-8000-000000000000"});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
}

// A new match key: every stored message keyed anew under it, while the gateway runs; a withdrawn
// message stays without keys; the run is on the audit chain with its counts.
TEST_F(Persons, RekeyMakesEveryMessagesDigestsUnderANewKey) {
  submit_three();
  withdraw_as_thanhhoa(third_id);
  EXPECT_EQ(stored_keys(), 4);  // the third's two are gone with its withdrawal

  store::generate_key_file(dir_ / "new-match.hex");
  auto r = run_mxgw({"persons", "rekey", "--config", rekey_config(dir_ / "new-match.hex").string(),
                     "--batch", "2"},
                    dir_.path());
  ASSERT_EQ(r.exit_status, 0) << r.err;
  // Four messages (the withdrawal too, which names no one); the withdrawn one is not keyed.
  EXPECT_EQ(r.out, "keyed 3 of 4 messages (4 keys) in 3 batches\n");
  EXPECT_EQ(stored_keys(), 4);

  // Under the old key the digests no longer meet a new message's; under the new one they do.
  const std::string fourth = "9e5f6a7b-8c9d-4eaf-8b01-3c4d5e6f7081";
  const std::string sophea =
      R"([{"family": ["KUMRU"], "given": ["SOPHEA"], "script": "Latn", "kind": "alias"}])";
  submit(gialai_, "vn-gialai", fourth, sophea, "[]");
  EXPECT_EQ(candidate_ids(fourth), "");
  config_.persons.match_key.file = dir_ / "new-match.hex";
  restart();
  const std::string fifth = "af6a7b8c-9d0e-4fb1-9c12-4d5e6f708192";
  submit(gialai_, "vn-gialai", fifth, sophea, "[]");
  EXPECT_EQ(candidate_ids(fifth), std::string(first_id) + " " + second_id);
  const auto audit = parse(admin(alice_, "GET", "/admin/v1/audit?event=persons.rekeyed").body);
  ASSERT_EQ(audit["entries"].Size(), 1u);
  const auto& details = audit["entries"][0]["entry"]["details"];
  EXPECT_EQ(json::get_string(details, "messages"), "4");
  EXPECT_EQ(json::get_string(details, "rekeyed"), "3");
  EXPECT_EQ(json::get_string(details, "keys"), "4");
  EXPECT_EQ(json::get_string(details, "complete"), "true");
}

TEST_F(Persons, RekeyWithoutAMatchKeyChangesNothing) {
  submit_three();
  auto r = run_mxgw({"persons", "rekey", "--config", rekey_config({}).string()}, dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("names no persons.match_key"), std::string::npos) << r.err;
  write_file(dir_ / "short.hex", "abcd");
  std::filesystem::permissions(dir_ / "short.hex", std::filesystem::perms(0600));
  r = run_mxgw({"persons", "rekey", "--config", rekey_config(dir_ / "short.hex").string()},
               dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("persons: "), std::string::npos) << r.err;
  // A batch that would hold the store's write lock too long, with a good key.
  store::generate_key_file(dir_ / "good.hex");
  r = run_mxgw({"persons", "rekey", "--config", rekey_config(dir_ / "good.hex").string(),
                "--batch", "1001"},
               dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("--batch"), std::string::npos) << r.err;
  EXPECT_EQ(stored_keys(), 6);
  EXPECT_EQ(candidate_ids(first_id), second_id);
}

class PersonsOff : public Persons {
 protected:
  PersonsOff() { matching_ = false; }
};

// Messages stored while matching was off get their keys from `mxgw persons rekey`, and are
// candidates once matching is on.
TEST_F(PersonsOff, MessagesStoredWithoutKeysAreKeyedByRekey) {
  submit_three();
  ASSERT_EQ(stored_keys(), 0);
  auto r = run_mxgw({"persons", "rekey", "--config", rekey_config(dir_ / "match-key.hex").string()},
                    dir_.path());
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_EQ(r.out, "keyed 3 of 3 messages (6 keys) in 1 batches\n");
  EXPECT_EQ(stored_keys(), 6);
  config_.persons.match_key = {"match", dir_ / "match-key.hex", ""};
  restart();
  EXPECT_EQ(candidate_ids(first_id), second_id);
}

TEST_F(PersonsOff, WithoutAMatchKeyNothingIsKeptAndTheRouteSaysSo) {
  submit_three();
  auto r = candidates(first_id);
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("persons-matching-off"), std::string::npos) << r.body;
  EXPECT_NE(log_text().find("persons.matching_off"), std::string::npos);
  EXPECT_EQ(stored_keys(), 0);
}

}  // namespace
}  // namespace mxgw::test
