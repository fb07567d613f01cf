// The audit log end to end: a real gateway over mutual TLS accepts messages that carry unique
// personal-data markers in every field, delivers them (a retry, a delivery, a dead letter) and
// refuses bad ones. The audit table then holds the accepted and delivery events with the routing
// decision, holds none of the markers, and `mxgw audit verify` / `mxgw audit query` run as
// processes on that store.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <thread>

#include "gateway/audit/verify.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

constexpr auto patience = std::chrono::seconds(20);

// Every piece of personal data or free text in the example, replaced by a unique marker that
// still passes the checks (scripts, dates and codes stay valid).
const std::vector<std::pair<std::string, std::string>> markers = {
    {"\"KUMRU\"", "\"QXFAMILYMARKER\""},
    {"\"SOPHEA\"", "\"QXGIVENMARKER\""},
    {"\"Phia\"", "\"Qxaliasmarker\""},
    {"\"DARA\"", "\"QXCHILDMARKER\""},
    {"\"2001-03\"", "\"1983-07\""},
    {"\"Bar Kaev\"", "\"Qx Birthplace Marker\""},
    {"\"Banlung\"", "\"Qx Recruitment Marker\""},
    {"\"Đức Cơ\"", "\"Qx Transit Marker\""},
    {"\"Chư Prông\"", "\"Qx Identification Marker\""},
    {"\"Ratanakiri\"", "\"Qx Home Marker\""},
    {"\"Gia Lai\"", "\"Qx Recorded Marker\""},
    {"\"EXAMPLE-0001\"", "\"QXDOC-77123\""},
    {"Small scar above the right eyebrow (fictional).", "Qx marks marker"},
    {"Rubber plantation workers' camp (fictional)", "Qx detail marker"},
    {"Ví dụ hư cấu.", "Qx narrative marker."},
    {"Fictional example.", "Qx translation marker."},
};

// What must never appear in the audit (the markers and the untouched Khmer names).
std::vector<std::string> forbidden() {
  std::vector<std::string> out = {"គំរូ", "សុភា", "រតនគិរី", "1983-07", "Qx", "QX", "marker", "MARKER"};
  return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

struct process_result {
  int exit_status = -1;
  std::string out;
  std::string err;
};

process_result run_mxgw(const std::string& args, const std::filesystem::path& scratch) {
  const std::string command = mxgw_binary().string() + " " + args + " > " +
                              (scratch / "out.txt").string() + " 2> " +
                              (scratch / "err.txt").string();
  const int status = std::system(command.c_str());
  process_result r;
  if (WIFEXITED(status)) {
    r.exit_status = WEXITSTATUS(status);
  }
  r.out = read_file(scratch / "out.txt");
  r.err = read_file(scratch / "err.txt");
  return r;
}

class AuditEndToEnd : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    for (auto* sim : {&ratanakiri_, &stungtreng_}) {
      sim::partner_sim_options options = sim_options();
      *sim = std::make_unique<sim::partner_sim>(options);
      (*sim)->start();
    }
    ratanakiri_->set_faults({.fail_first = 1});       // one retry, then delivered
    stungtreng_->set_faults({.always_status = 400});  // refused for good: a dead letter
    const std::string delivery = R"("delivery": {"timeout_ms": 2000, "max_attempts": 5,
        "max_age_s": 3600, "backoff_base_ms": 20, "backoff_cap_ms": 100, "concurrency": 4})";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(ratanakiri_->port()) +
                                           R"(/v1/messages",)" + delivery + R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",
       "endpoint":"https://127.0.0.1:)" + std::to_string(stungtreng_->port()) +
                                           R"(/v1/messages",)" + delivery + R"(}]})");
    c.delivery.poll_interval_ms = 20;
    c.audit.refusals_per_minute = 2;
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    ratanakiri_.reset();
    stungtreng_.reset();
  }

  std::string state_of(const std::string& id, const std::string& partner) {
    rapidjson::Document s;
    s.Parse(get(gialai_, "/v1/messages/" + id).body.c_str());
    if (!s.IsObject() || !s.HasMember("recipients")) {
      return {};
    }
    for (const auto& r : s["recipients"].GetArray()) {
      if (r["partner"].GetString() == partner) {
        return r["state"].GetString();
      }
    }
    return {};
  }

  bool wait_for_state(const std::string& id, const std::string& partner, const std::string& state) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
      if (state_of(id, partner) == state) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Every stored audit row, read straight from the file (the store is stopped).
  std::vector<audit::audit_row> audit_rows() {
    std::vector<audit::audit_row> rows;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(config_.store.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT seq, at, event, actor, partner, message_id, entry, hash "
                                 "FROM audit ORDER BY seq",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    auto text = [&](int i) {
      const auto* t = sqlite3_column_text(stmt, i);
      return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
    };
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      rows.push_back({sqlite3_column_int64(stmt, 0), text(1), text(2), text(3), text(4), text(5),
                      text(6), text(7)});
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
  }

  // A config file for the CLI: the store, and the listener certificate that signed checkpoints.
  std::filesystem::path cli_config() {
    const auto file = dir_ / "audit-cli.json";
    write_file(file, R"({"store": {"path": ")" + config_.store.path.string() +
                         R"("}, "listener": {"tls": {"certificate": ")" +
                         (dir_ / "server.pem").string() + R"("}}})");
    return file;
  }

  std::unique_ptr<sim::partner_sim> ratanakiri_, stungtreng_;
  cli::client_tls gialai_;

  void SetUp() override {
    gateway_fixture::SetUp();
    gialai_ = partner_client("vn-gialai");
  }
};

TEST_F(AuditEndToEnd, RecordsDecisionsAndOutcomesButNoPersonalData) {
  const std::string id = "5e0c6b7a-1f2d-4c3b-8a9e-7d6c5b4a3f21";
  std::string message = example("victim.identification", id);
  for (const auto& [from, to] : markers) {
    ASSERT_NE(message.find(from), std::string::npos) << from;
    message = replace_all(message, from, to);
  }
  const auto accepted = post(gialai_, message);
  ASSERT_EQ(accepted.status, 202) << accepted.body << accepted.error;
  // Refusals carrying markers: malformed JSON, and a schema-invalid message (a flood beyond the
  // cap of 2 a minute is only counted).
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(post(gialai_, "{\"name\": \"QXFLOODMARKER " + std::to_string(i)).status, 400);
  }
  ASSERT_TRUE(wait_for_state(id, "kh-ratanakiri", "delivered"));
  ASSERT_TRUE(wait_for_state(id, "kh-stungtreng", "dead"));
  stop();  // every entry written, and the final checkpoint signed

  const auto rows = audit_rows();
  ASSERT_FALSE(rows.empty());
  std::string everything;
  for (const auto& r : rows) {
    everything += r.at + r.event + r.actor + r.partner + r.message_id + r.entry + r.hash + "\n";
  }
  for (const auto& marker : forbidden()) {
    EXPECT_EQ(everything.find(marker), std::string::npos) << marker << " in\n" << everything;
  }

  std::map<std::string, std::vector<audit::parsed_entry>> by_event;
  for (const auto& r : rows) {
    auto e = audit::parse_entry(r.entry);
    ASSERT_TRUE(e) << r.entry;
    by_event[e->record.event].push_back(*e);
  }
  // The accept, with the routing decision explained.
  ASSERT_EQ(by_event["message.accepted"].size(), 1U);
  const auto& accept = by_event["message.accepted"][0].record;
  EXPECT_EQ(accept.message_id, id);
  EXPECT_EQ(accept.actor, "partner:vn-gialai");
  std::map<std::string, std::string> details(accept.details.begin(), accept.details.end());
  EXPECT_EQ(details["type"], "victim.identification");
  EXPECT_EQ(details["format"], "mx");
  rapidjson::Document routing;
  routing.Parse(details["routing"].c_str());
  ASSERT_TRUE(routing.IsObject()) << details["routing"];
  ASSERT_EQ(routing["recipients"].Size(), 2U);
  std::map<std::string, std::size_t> withheld;
  for (const auto& r : routing["recipients"].GetArray()) {
    EXPECT_STREQ(r["decidedBy"].GetString(), "explicit");
    withheld[r["partner"].GetString()] = r["withheld"].Size();
  }
  EXPECT_EQ(withheld["kh-ratanakiri"], 0U);  // has the victim-data agreement
  EXPECT_GT(withheld["kh-stungtreng"], 0U);  // does not: victim fields withheld, with reasons
  EXPECT_NE(details["routing"].find("no-victim-data-agreement"), std::string::npos);

  // Delivery outcomes: a retry then a delivery to one, a dead letter at the other.
  ASSERT_EQ(by_event["delivery.retry"].size(), 1U);
  EXPECT_EQ(by_event["delivery.retry"][0].record.partner, "kh-ratanakiri");
  ASSERT_EQ(by_event["delivery.delivered"].size(), 1U);
  EXPECT_EQ(by_event["delivery.delivered"][0].record.partner, "kh-ratanakiri");
  ASSERT_EQ(by_event["delivery.dead"].size(), 1U);
  const auto& dead = by_event["delivery.dead"][0].record;
  EXPECT_EQ(dead.partner, "kh-stungtreng");
  std::map<std::string, std::string> dead_details(dead.details.begin(), dead.details.end());
  EXPECT_EQ(dead_details["status"], "400");
  EXPECT_EQ(dead_details["error"], "http-400");  // the code, not the partner's answer
  EXPECT_EQ(dead.actor, "gateway:mxgw");

  // Refusals: two recorded (the cap), the rest only counted.
  ASSERT_EQ(by_event["message.refused"].size(), 2U);
  std::map<std::string, std::string> refused(by_event["message.refused"][0].record.details.begin(),
                                             by_event["message.refused"][0].record.details.end());
  EXPECT_EQ(refused["status"], "400");
  EXPECT_FALSE(refused["reason"].empty());

  // `mxgw audit verify` as a process: intact, with the final checkpoint at the head.
  const auto config = cli_config();
  auto verify = run_mxgw("audit verify --config " + config.string(), dir_.path());
  EXPECT_EQ(verify.exit_status, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("audit log intact: " + std::to_string(rows.size()) + " entries"),
            std::string::npos)
      << verify.out;
  EXPECT_NE(verify.out.find("the last at " + std::to_string(rows.size())), std::string::npos)
      << verify.out;

  // `mxgw audit query`: JSON lines, filtered.
  auto query =
      run_mxgw("audit query --config " + config.string() + " --message " + id, dir_.path());
  EXPECT_EQ(query.exit_status, 0) << query.err;
  std::size_t lines = 0;
  for (auto pos = query.out.find('\n'); pos != std::string::npos;
       pos = query.out.find('\n', pos + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 4U) << query.out;  // accepted, retry, delivered, dead
  query =
      run_mxgw("audit query --config " + config.string() + " --event delivery.dead", dir_.path());
  rapidjson::Document line;
  line.Parse(query.out.c_str());
  ASSERT_TRUE(line.IsObject()) << query.out;
  EXPECT_STREQ(line["event"].GetString(), "delivery.dead");
  EXPECT_STREQ(line["details"]["error"].GetString(), "http-400");
  query = run_mxgw("audit query --config " + config.string() + " --since yesterday", dir_.path());
  EXPECT_EQ(query.exit_status, 2);
  EXPECT_NE(query.err.find("--since must be an RFC 3339 date-time"), std::string::npos);
  query = run_mxgw("audit query --config " + config.string() + " --since 2200-01-01T00:00:00Z",
                   dir_.path());
  EXPECT_EQ(query.exit_status, 0);
  EXPECT_TRUE(query.out.empty()) << query.out;
  query = run_mxgw("audit query --config " + config.string() + " --until 2999-01-01T00:00:00Z",
                   dir_.path());
  EXPECT_EQ(query.exit_status, 2);  // past the clock's range: refused, not wrapped around
  query = run_mxgw("audit query --config " + config.string() +
                       " --event message.refused --limit 1 --partner vn-gialai",
                   dir_.path());
  EXPECT_EQ(query.exit_status, 0);
  EXPECT_EQ(std::count(query.out.begin(), query.out.end(), '\n'), 1) << query.out;

  // The gateway's own log (its audit.checkpoint lines) and the summary just printed, kept
  // outside the store, are anchors: they hold. A file that is neither is refused.
  write_file(dir_ / "head.txt", verify.out);
  auto anchored =
      run_mxgw("audit verify --config " + config.string() + " --anchor " +
                   config_.log.file.string() + " --anchor " + (dir_ / "head.txt").string(),
               dir_.path());
  EXPECT_EQ(anchored.exit_status, 0) << anchored.out << anchored.err;
  EXPECT_NE(
      anchored.out.find("2 external anchors matched, the last at " + std::to_string(rows.size())),
      std::string::npos)
      << anchored.out;
  write_file(dir_ / "not-anchors.txt", "hello\n");
  anchored = run_mxgw("audit verify --config " + config.string() + " --anchor " +
                          (dir_ / "not-anchors.txt").string(),
                      dir_.path());
  EXPECT_EQ(anchored.exit_status, 2);
  EXPECT_NE(anchored.err.find("not-anchors.txt:1: neither an audit.checkpoint log line"),
            std::string::npos)
      << anchored.err;

  // An attacker with file access deletes the last entry and the checkpoint that vouched for it:
  // the store alone still verifies; the anchors do not.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.store.path.c_str(), &db), SQLITE_OK);
    const std::string cut =
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = " +
        std::to_string(rows.size()) +
        "; DELETE FROM audit_checkpoints WHERE seq = " + std::to_string(rows.size());
    ASSERT_EQ(sqlite3_exec(db, cut.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(run_mxgw("audit verify --config " + config.string(), dir_.path()).exit_status, 0);
  anchored = run_mxgw(
      "audit verify --config " + config.string() + " --anchor " + (dir_ / "head.txt").string(),
      dir_.path());
  EXPECT_EQ(anchored.exit_status, 1) << anchored.out << anchored.err;
  EXPECT_NE(anchored.out.find("names entry " + std::to_string(rows.size())), std::string::npos)
      << anchored.out;

  // An attacker with file access deletes entry 2: verify names it and fails.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.store.path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "DROP TRIGGER IF EXISTS audit_no_delete; DELETE FROM audit WHERE seq = 2",
                     nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  verify = run_mxgw("audit verify --config " + config.string(), dir_.path());
  EXPECT_EQ(verify.exit_status, 1) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("entry 2 is missing (1 is followed by 3)"), std::string::npos)
      << verify.out;
}

TEST_F(AuditEndToEnd, VerifyNeedsAStoreAndReadableCertificates) {
  stop();
  const auto config = cli_config();
  auto r = run_mxgw("audit verify --config " + config.string() + " --certificate " +
                        (dir_ / "absent.pem").string(),
                    dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("absent.pem: cannot be read"), std::string::npos) << r.err;
  r = run_mxgw("audit verify --config " + config.string() + " --certificate " +
                   (dir_ / "partners.json").string(),
               dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("holds no PEM certificate"), std::string::npos) << r.err;
  write_file(dir_ / "elsewhere.json", R"({"store": {"path": "nowhere/mxgw.db"}})");
  r = run_mxgw("audit verify --config " + (dir_ / "elsewhere.json").string(), dir_.path());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("there is no store at"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "nowhere"));  // nothing was created
}

}  // namespace
}  // namespace mxgw::test
