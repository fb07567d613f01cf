// The `mxgw` command against a running gateway's admin API (--admin-url): certificates revoked at
// once by serial, fingerprint or file; dead letters listed, replayed and discarded; queue depth;
// audit entries queried page by page. The real binary, over real mutual TLS.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <regex>
#include <sstream>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;
constexpr auto patience = 20s;

struct run_result {
  int status = -1;
  std::string out;  // standard output
  std::string err;  // standard error
};

// Runs the real `mxgw` with `arguments`; standard error goes to a file read afterwards.
run_result run_mxgw(const std::filesystem::path& dir, const std::string& arguments) {
  const auto err_file = dir / "cli-stderr.txt";
  const std::string command = mxgw_binary().string() + " " + arguments + " 2> " + err_file.string();
  run_result result;
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    result.out += buffer.data();
  }
  result.status = WEXITSTATUS(pclose(pipe));
  result.err = read_file(err_file);
  return result;
}

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// The example verification result as Ratanakiri's answer to request `request_id` (the example is
// Gia Lai's answer to a request of Ratanakiri's).
std::string ratanakiri_answer(const std::string& text, const std::string& request_id) {
  std::string out =
      std::regex_replace(text, std::regex("1b6d4e8a-3f27-4c90-8e15-a9c2d7f0b364"), request_id);
  out = std::regex_replace(out, std::regex(R"re("sender": "vn-gialai")re"),
                           R"("sender": "kh-ratanakiri")");
  return std::regex_replace(out, std::regex(R"re("recipients": \["kh-ratanakiri"\])re"),
                            R"("recipients": ["vn-gialai"])");
}

class AdminCli : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    enable_admin(c);
    sim::partner_sim_options options = sim_options();
    sim_ = std::make_unique<sim::partner_sim>(options);
    sim_->set_faults({.always_status = 400});  // every delivery is refused for good: dead letters
    sim_->start();
    const std::string endpoint =
        R"("endpoint":"https://127.0.0.1:)" + std::to_string(sim_->port()) + R"(/v1/messages",
        "delivery": {"timeout_ms": 2000, "max_attempts": 3, "backoff_base_ms": 20,
                     "backoff_cap_ms": 50})";
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],)" + endpoint +
                                           R"(},
      {"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH",)" +
                                           endpoint + R"(}]})");
    c.delivery.poll_interval_ms = 20;
  }

  void SetUp() override {
    gateway_fixture::SetUp();
    const auto tls = admin_client();
    admin_args_ = "--admin-url https://localhost:" + std::to_string(gateway_->admin_port()) +
                  " --cert " + tls.cert.string() + " --key " + tls.key.string() + " --ca " +
                  tls.ca.string();
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    sim_.reset();
  }

  run_result mxgw(const std::string& arguments) {
    return run_mxgw(dir_.path(), arguments + " " + admin_args_);
  }

  // The recorded certificates as the admin API lists them.
  rapidjson::Document certificates() {
    rapidjson::Document doc;
    const auto r = admin(admin_client(), "GET", "/admin/v1/certificates");
    doc.Parse(r.body.c_str());
    return doc;
  }

  // Registers `tls`'s certificate for `partner` through the API; returns the record.
  rapidjson::Document record(const std::string& partner, const cli::client_tls& tls) {
    rapidjson::Document body;
    body.SetObject();
    const std::string pem = read_file(tls.cert);
    body.AddMember("certificate", rapidjson::Value(pem.c_str(), body.GetAllocator()),
                   body.GetAllocator());
    const auto r = admin(admin_client(), "POST", "/admin/v1/partners/" + partner + "/certificates",
                         json::to_string(body));
    EXPECT_EQ(r.status, 201) << r.body;
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    return doc;
  }

  // Waits until the admin API lists `count` dead letters (real requests, bounded).
  bool dead_letters_reach(std::size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto r = admin(admin_client(), "GET", "/admin/v1/dead-letters");
      rapidjson::Document doc;
      doc.Parse(r.body.c_str());
      if (doc.IsObject() && doc.HasMember("deadLetters") && doc["deadLetters"].Size() == count) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  std::unique_ptr<sim::partner_sim> sim_;
  std::string admin_args_;
};

TEST_F(AdminCli, RevokeBySerialRefusesTheNextHandshakeAtOnce) {
  const auto tls = partner_client("kh-ratanakiri");
  const auto rec = record("kh-ratanakiri", tls);
  const std::string serial = rec["record"]["serial"].GetString();
  ASSERT_EQ(get(tls, "/healthz").status, 200);

  // Lower case, as an operator may type it from another tool.
  auto r = mxgw("certs revoke --serial " + lower(serial) + " --reason keyCompromise");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(serial), std::string::npos) << r.out;
  EXPECT_EQ(get(tls, "/healthz").status, 0) << "the revoked certificate still gets service";
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);

  // certs list shows it revoked; a second revocation is refused (409) with exit status 1.
  r = mxgw("certs list");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(serial + "  revoked"), std::string::npos) << r.out;
  r = mxgw("certs revoke --serial " + serial + " --reason keyCompromise");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("409"), std::string::npos) << r.err;
}

TEST_F(AdminCli, RevokeByFileRecordsAnUnrecordedCertificateFirst) {
  // Issued offline by the partner CA and known only by its SAN: the gateway has no record.
  const auto tls = partner_client("kh-stungtreng");
  ASSERT_EQ(get(tls, "/healthz").status, 200);
  ASSERT_EQ(certificates()["certificates"].Size(), 0u);

  const auto r =
      mxgw("certs revoke --certificate " + tls.cert.string() + " --reason affiliationChanged");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(get(tls, "/healthz").status, 0);
  const auto list = certificates();
  ASSERT_EQ(list["certificates"].Size(), 1u);
  EXPECT_EQ(std::string(list["certificates"][0]["state"].GetString()), "revoked");
  EXPECT_EQ(std::string(list["certificates"][0]["partner"].GetString()), "kh-stungtreng");
}

TEST_F(AdminCli, RevokeByFingerprint) {
  const auto tls = partner_client("vn-gialai");
  const std::string fingerprint = record("vn-gialai", tls)["record"]["fingerprint"].GetString();
  const auto r = mxgw("certs revoke --fingerprint " + fingerprint + " --reason superseded");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(get(tls, "/healthz").status, 0);
}

TEST_F(AdminCli, RotateSaysEveryEarlierCertificateIsCutOff) {
  // A CSR (public key only) from the admin API's fuzz corpus.
  rapidjson::Document seed;
  const std::string corpus =
      read_file(source_dir() / "tests" / "fuzz" / "admin_api" / "corpus" / "cert-enrol-csr");
  seed.Parse(corpus.substr(corpus.find('{')).c_str());
  ASSERT_TRUE(seed.IsObject() && seed.HasMember("csr")) << corpus;
  write_file(dir_ / "new.csr", seed["csr"].GetString());
  const auto r = mxgw("certs rotate --partner kh-ratanakiri --csr " + (dir_ / "new.csr").string() +
                      " --out " + (dir_ / "new.pem").string() + " --overlap-days 14");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("signed " + (dir_ / "new.pem").string() + " for partner kh-ratanakiri"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("cut-off 20[0-9-]+T[0-9:.]+Z: every earlier certificate of kh-ratanakiri "
                        "is refused after the overlap")))
      << r.out;
}

TEST_F(AdminCli, BadRevocationsAreRefusedAndChangeNothing) {
  const auto tls = partner_client("kh-ratanakiri");
  const std::string serial = record("kh-ratanakiri", tls)["record"]["serial"].GetString();
  const auto unchanged = [&] {
    const auto list = certificates();
    return list["certificates"].Size() == 1u &&
           std::string(list["certificates"][0]["state"].GetString()) == "active" &&
           get(tls, "/healthz").status == 200;
  };

  struct bad_call {
    std::string arguments;
    int status;
    std::string says;
  };
  const std::vector<bad_call> calls = {
      {"certs revoke --serial 0123456789ABCDEF --reason keyCompromise", 1, "no certificate"},
      {"certs revoke --serial not-hex --reason keyCompromise", 2, "not a hexadecimal serial"},
      {"certs revoke --fingerprint abc --reason keyCompromise", 2, "64 hexadecimal digits"},
      {"certs revoke --reason keyCompromise", 2, "exactly one of"},
      {"certs revoke --serial " + serial + " --reason because", 1, "422"},
      {"certs revoke --dir " + (dir_ / "signing").string() + " --serial " + serial, 2, "not both"},
  };
  for (const auto& call : calls) {
    const auto r = mxgw(call.arguments);
    EXPECT_EQ(r.status, call.status) << call.arguments << "\n" << r.err;
    EXPECT_NE(r.err.find(call.says), std::string::npos) << call.arguments << "\n" << r.err;
    EXPECT_TRUE(unchanged()) << call.arguments;
  }

  // A partner's certificate in place of an administrator's gets no service on the admin port.
  const auto partner = partner_client("vn-gialai");
  const auto r = run_mxgw(
      dir_.path(), "certs revoke --serial " + serial +
                       " --reason keyCompromise --admin-url https://localhost:" +
                       std::to_string(gateway_->admin_port()) + " --cert " + partner.cert.string() +
                       " --key " + partner.key.string() + " --ca " + partner.ca.string());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(unchanged());
}

TEST_F(AdminCli, AReloadAskedThroughTheAdminApiIsDoneAndAuditedWithTheAdministrator) {
  auto r = mxgw("config reload");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "reloaded\n");

  // A broken CRL refuses the reload: the problem comes back, nothing changes, service goes on.
  write_file(dir_ / "crl.pem", "not a CRL\n");
  r = mxgw("config reload");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("422"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("crl.pem: holds no CRL"), std::string::npos) << r.err;
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);

  // Both on the record, by the administrator who asked.
  for (const char* event : {"config.reloaded", "config.reload_refused"}) {
    r = mxgw(std::string("audit query --event ") + event);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto entries = lines_of(r.out);
    ASSERT_EQ(entries.size(), 1u) << event << "\n" << r.out;
    EXPECT_NE(entries[0].find(R"("actor":"admin:alice")"), std::string::npos) << entries[0];
  }
  // Only POST, and only for administrators (the partner listener has no such route).
  EXPECT_EQ(admin(admin_client(), "GET", "/admin/v1/reload").status, 405);
  EXPECT_EQ(post(partner_client("vn-gialai"), "{}", "/admin/v1/reload").status, 404);
}

TEST_F(AdminCli, DeadLettersAreListedReplayedAndDiscarded) {
  const std::string id = "5b2d8e1f-4c3a-4b6d-9e8f-7a1b2c3d4e5f";
  ASSERT_EQ(post(partner_client("vn-gialai"), example("victim.identification", id)).status, 202);
  ASSERT_TRUE(dead_letters_reach(2));
  // Each attempt's duration is in the metrics, by recipient and outcome; so is the accept's.
  const auto metrics_text = admin(admin_client(), "GET", "/metrics").body;
  for (const char* partner : {"kh-ratanakiri", "kh-stungtreng"}) {
    EXPECT_NE(metrics_text.find("mxgw_delivery_duration_seconds_count{partner=\"" +
                                std::string(partner) + "\",outcome=\"dead\"} 1\n"),
              std::string::npos)
        << metrics_text;
  }
  EXPECT_NE(metrics_text.find("mxgw_submit_duration_seconds_count{outcome=\"accepted\"} 1\n"),
            std::string::npos)
      << metrics_text;

  auto r = mxgw("queue dead");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto dead = lines_of(r.out);
  ASSERT_EQ(dead.size(), 2u) << r.out;
  EXPECT_EQ(dead[0].rfind(id + "  kh-", 0), 0u) << dead[0];
  EXPECT_NE(r.out.find("http-400"), std::string::npos) << r.out;

  r = mxgw("queue depth");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("kh-ratanakiri  held 0  pending 0  delivering 0  retrying 0  dead 1"),
            std::string::npos)
      << r.out;

  // Ratanakiri fixes its side: its dead letter is replayed and delivered; Stung Treng's is given
  // up with a reason.
  sim_->set_faults({});
  r = mxgw("queue replay --message " + id + " --recipient kh-ratanakiri");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(sim_->wait_until([](const auto& s) { return s.unique_ids == 1; }, patience));
  r = mxgw("queue discard --message " + id + " --recipient kh-stungtreng --reason partner-retired");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(dead_letters_reach(0));

  // What is no longer dead cannot be replayed or discarded; a bad reason is refused.
  r = mxgw("queue replay --message " + id + " --recipient kh-stungtreng");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
  r = mxgw("queue discard --message " + id + " --recipient kh-ratanakiri --reason 'No Reason!'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("422"), std::string::npos) << r.err;

  // The audit names both actions with the administrator; the query pages through the chain.
  r = mxgw("audit query --event delivery.replayed");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto replayed = lines_of(r.out);
  ASSERT_EQ(replayed.size(), 1u) << r.out;
  rapidjson::Document entry;
  entry.Parse(replayed[0].c_str());
  ASSERT_TRUE(entry.IsObject()) << replayed[0];
  EXPECT_EQ(std::string(entry["actor"].GetString()), "admin:alice");
  EXPECT_EQ(std::string(entry["message"].GetString()), id);
  EXPECT_EQ(std::string(entry["hash"].GetString()).size(), 64u);
  r = mxgw("audit query --event delivery.discarded --partner kh-stungtreng");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
  EXPECT_NE(r.out.find("\"reason\":\"partner-retired\""), std::string::npos) << r.out;
}

// A dead letter's last error may quote the message back (here a name in the partner's refusal):
// who read the dead letters, and how many, is on the audit chain before the list is answered,
// with the administrator's name and no text of the errors. A refused read records nothing.
TEST_F(AdminCli, ReadingDeadLettersIsAuditedBeforeTheAnswer) {
  const std::string quoted = "no such person: KUMRU SOPHEA";
  sim_->set_faults({.always_status = 400, .always_body = R"({"error":")" + quoted + R"("})"});
  ASSERT_EQ(post(partner_client("vn-gialai"),
                 example("victim.identification", "6c3e9f20-5d4b-4c7e-8f90-8b2c3d4e5f60"))
                .status,
            202);
  ASSERT_TRUE(dead_letters_reach(2));
  const auto viewed = [&] {
    const auto r =
        admin(admin_client(), "GET", "/admin/v1/audit?event=deadletters.viewed&limit=1000");
    EXPECT_EQ(r.status, 200) << r.body;
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    std::vector<std::string> out;
    if (doc.IsObject() && doc.HasMember("entries")) {
      for (const auto& e : doc["entries"].GetArray()) {
        out.push_back(json::to_string(e["entry"]));
      }
    }
    return out;
  };
  const auto before = viewed();
  ASSERT_FALSE(before.empty()) << "the reads while waiting were not recorded";

  const auto r = admin(admin_client("bob"), "GET", "/admin/v1/dead-letters?limit=5");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(quoted), std::string::npos) << "the administrator sees the answer";
  // Asked as soon as the answer arrived: the entry is already on the chain.
  const auto after = viewed();
  ASSERT_EQ(after.size(), before.size() + 1);
  rapidjson::Document entry;
  entry.Parse(after.back().c_str());
  ASSERT_TRUE(entry.IsObject()) << after.back();
  EXPECT_EQ(json::get_string(entry, "event"), "deadletters.viewed");
  EXPECT_EQ(json::get_string(entry, "actor"), "admin:bob");
  ASSERT_TRUE(entry.HasMember("details")) << after.back();
  EXPECT_EQ(json::get_string(entry["details"], "count"), "2") << after.back();
  for (const auto& text : after) {
    EXPECT_EQ(text.find("SOPHEA"), std::string::npos) << "error text on the audit chain: " << text;
  }
  // A refused read records nothing.
  EXPECT_EQ(admin(admin_client("bob"), "GET", "/admin/v1/dead-letters?limit=0").status, 422);
  EXPECT_EQ(viewed().size(), before.size() + 1);
}

TEST_F(AdminCli, AuditQueryFiltersAndLimits) {
  const auto gialai = partner_client("vn-gialai");
  for (int i = 0; i < 3; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "7c9e6679-7425-40de-944b-%012d", i);
    ASSERT_EQ(post(gialai, example("hotline.tip", id)).status, 202);
  }
  auto r = mxgw("audit query --event message.accepted --limit 0");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto all = lines_of(r.out);
  ASSERT_EQ(all.size(), 3u) << r.out;
  r = mxgw("audit query --event message.accepted --limit 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto two = lines_of(r.out);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], all[0]);
  EXPECT_EQ(two[1], all[1]);
  // Times are checked before anything is asked; both sources at once are bad usage.
  r = mxgw("audit query --since yesterday");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("RFC 3339"), std::string::npos) << r.err;
  r = mxgw("audit query --config " + (dir_ / "nothing.json").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("one of them"), std::string::npos) << r.err;
}

// `mxgw report` through the admin API: the period's counts of what partners sent (one victim
// reported twice counts once, a withdrawn tip not at all, an answered request with its
// turnaround), as JSON and CSV, each asked for on the audit chain as the administrator; no id,
// reference or name in the answer; a bad period is refused before anything is asked.
TEST_F(AdminCli, ReportCountsThePeriodWithoutIdentitiesAndIsAudited) {
  const auto gialai = partner_client("vn-gialai");
  const auto id = [](int i) {
    char text[37];
    std::snprintf(text, sizeof text, "5a1e0000-0000-4000-8000-%012d", i);
    return std::string(text);
  };
  const auto replaced = [](std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
  };
  ASSERT_EQ(post(gialai, example("victim.identification", id(1))).status, 202);
  ASSERT_EQ(post(gialai, example("victim.identification", id(2))).status, 202);  // same ref
  ASSERT_EQ(post(gialai, example("hotline.tip", id(3))).status, 202);
  ASSERT_EQ(post(gialai, example("hotline.tip", id(4))).status, 202);
  std::string withdrawal = example("case.status", id(5));
  withdrawal = replaced(withdrawal, "\"repatriated\"", "\"withdrawn\"");
  withdrawal = replaced(withdrawal, "3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17", id(4));
  ASSERT_EQ(post(gialai, withdrawal).status, 202);
  ASSERT_EQ(post(gialai, example("verification.request", id(6))).status, 202);
  const auto answered = post(partner_client("kh-ratanakiri"),
                             ratanakiri_answer(example("verification.result", id(7)), id(6)));
  ASSERT_EQ(answered.status, 202) << answered.body;

  const std::string today = format_rfc3339_ms(std::chrono::system_clock::now()).substr(0, 10);
  auto r = mxgw("report --from " + today + " --to " + today);
  ASSERT_EQ(r.status, 0) << r.err;
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  EXPECT_EQ(doc["messages"]["total"].GetInt(), 6) << r.out;
  EXPECT_EQ(doc["messages"]["withdrawn"].GetInt(), 1);
  EXPECT_EQ(doc["messages"]["withoutFacts"].GetInt(), 0);
  const auto& victims = doc["victims"];
  EXPECT_EQ(victims["total"].GetInt(), 1);
  EXPECT_EQ(victims["messages"].GetInt(), 2);
  EXPECT_EQ(victims["bySex"]["F"].GetInt(), 1);
  EXPECT_EQ(victims["byAgeBand"]["24--26"].GetInt(), 1);  // born 2001-03, reported 2026-11-21
  EXPECT_EQ(victims["byMinor"]["no"].GetInt(), 1);
  EXPECT_EQ(victims["byNationality"]["KH"].GetInt(), 1);
  EXPECT_EQ(victims["byRegion"]["KH-16"].GetInt(), 1);
  EXPECT_EQ(victims["byExploitation"]["forced-labour"].GetInt(), 1);
  EXPECT_EQ(doc["tips"]["total"].GetInt(), 1);
  EXPECT_EQ(doc["tips"]["byChannel"]["hotline-111"].GetInt(), 1);
  EXPECT_EQ(doc["verifications"]["requests"].GetInt(), 1);
  EXPECT_EQ(doc["verifications"]["answered"].GetInt(), 1);
  EXPECT_EQ(doc["verifications"]["byResult"]["confirmed"].GetInt(), 1);
  for (const auto* identity : {"5a1e0000", "VN30-2026-000457", "VN30-HL-2026-001203"}) {
    EXPECT_EQ(r.out.find(identity), std::string::npos) << identity;
  }
  const std::string victim = example("victim.identification");
  rapidjson::Document example_doc;
  example_doc.Parse(victim.c_str());
  const std::string family = example_doc["body"]["person"]["names"][0]["family"][0].GetString();
  EXPECT_EQ(r.out.find(family), std::string::npos) << family;

  r = mxgw("report --from " + today + " --to " + today + " --format csv");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("section,dimension,value,count\r\n", 0), 0U) << r.out;
  EXPECT_NE(r.out.find("victims,total,,1\r\n"), std::string::npos) << r.out;

  // An earlier period holds nothing of today's.
  r = mxgw("report --from 2000-01-01 --to 2000-12-31");
  ASSERT_EQ(r.status, 0) << r.err;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  EXPECT_EQ(doc["messages"]["total"].GetInt(), 0);

  // Refused before the gateway is asked: nothing more on the audit chain.
  for (const auto* bad : {"--from 2026-02-30 --to 2026-03-01", "--from 2026-03-02 --to 2026-03-01",
                          "--from 2026-03-01 --to 2026-03-31 --format xml"}) {
    r = mxgw(std::string("report ") + bad);
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_NE(r.err.find("report: "), std::string::npos) << r.err;
  }
  // Asked of the API directly, the same checks answer 422.
  EXPECT_EQ(admin(admin_client(), "GET", "/admin/v1/report?from=2026-13-01&to=2026-12-31").status,
            422);
  EXPECT_EQ(
      admin(admin_client(), "GET", "/admin/v1/report?from=2026-01-01&to=2026-12-31&format=pdf")
          .status,
      422);
  EXPECT_EQ(admin(admin_client(), "POST", "/admin/v1/report?from=2026-01-01&to=2026-12-31").status,
            405);

  r = mxgw("audit query --event report.generated --limit 0");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto entries = lines_of(r.out);
  ASSERT_EQ(entries.size(), 3U) << r.out;
  EXPECT_NE(entries[0].find("\"actor\":\"admin:"), std::string::npos) << entries[0];
  EXPECT_NE(entries[0].find("\"from\":\"" + today + "\""), std::string::npos) << entries[0];
  EXPECT_NE(entries[1].find("\"format\":\"csv\""), std::string::npos) << entries[1];
  for (const auto& entry : entries) {
    EXPECT_EQ(entry.find("suppressBelow"), std::string::npos) << "none asked: " << entry;
  }
}

// `mxgw report --suppress-below N` through the admin API: counts below N withheld (null in JSON,
// `<N` in CSV) with how many were, and N on the audit chain; a bad N refused by the command (exit
// 2) and by the API (422) with nothing recorded.
TEST_F(AdminCli, ReportWithholdsSmallCountsWhenAskedAndAuditsTheThreshold) {
  const auto gialai = partner_client("vn-gialai");
  ASSERT_EQ(
      post(gialai, example("victim.identification", "5a1f0000-0000-4000-8000-000000000001")).status,
      202);
  ASSERT_EQ(post(gialai, example("hotline.tip", "5a1f0000-0000-4000-8000-000000000002")).status,
            202);
  ASSERT_EQ(post(gialai, example("hotline.tip", "5a1f0000-0000-4000-8000-000000000003")).status,
            202);
  const std::string today = format_rfc3339_ms(std::chrono::system_clock::now()).substr(0, 10);
  const std::string period = "report --from " + today + " --to " + today;

  auto r = mxgw(period + " --suppress-below 2");
  ASSERT_EQ(r.status, 0) << r.err;
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.out;
  ASSERT_TRUE(doc.HasMember("suppression")) << r.out;
  EXPECT_EQ(doc["suppression"]["below"].GetInt(), 2);
  EXPECT_GE(doc["suppression"]["cells"].GetInt(), 12) << "the victim's ten figures, both types";
  EXPECT_EQ(doc["messages"]["total"].GetInt(), 3);
  EXPECT_TRUE(doc["messages"]["byType"]["victim.identification"].IsNull()) << r.out;
  EXPECT_TRUE(doc["messages"]["byType"]["hotline.tip"].IsNull()) << "the only other type";
  EXPECT_TRUE(doc["victims"]["total"].IsNull()) << r.out;
  EXPECT_TRUE(doc["victims"]["bySex"]["F"].IsNull()) << r.out;
  EXPECT_TRUE(doc["victims"]["bySender"]["vn-gialai"].IsNull()) << r.out;
  // The tips' total is the hotline.tip count withheld beside the victim's: shown, it would give
  // both back (3 - 2 = 1 victim). So it goes too, and the breakdown that sums to it.
  EXPECT_TRUE(doc["tips"]["total"].IsNull()) << r.out;
  EXPECT_TRUE(doc["tips"]["byChannel"]["hotline-111"].IsNull()) << r.out;
  EXPECT_EQ(doc["wanted"]["total"].GetInt(), 0);

  r = mxgw(period + " --format csv --suppress-below 3");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\r\ntips,total,,<3\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\r\nmessages,total,,3\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\r\nsuppression,below,,3\r\nsuppression,cells,,"), std::string::npos)
      << r.out;

  // Refused before the gateway is asked, with the flag and its range named.
  for (const std::string bad : {"0", "1", "1001", "-3", "abc", "5x", "''"}) {
    r = mxgw(period + " --suppress-below " + bad);
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_EQ(r.err, "report: --suppress-below is a whole number from 2 to 1000\n") << bad;
    EXPECT_EQ(r.out, "") << bad;
  }
  // Asked of the API directly: 422, as for a bad day.
  const std::string path = "/admin/v1/report?from=" + today + "&to=" + today;
  for (const std::string bad : {"0", "1", "1001", "-3", "abc", "5x", "", "%205"}) {
    const auto refused = admin(admin_client(), "GET", path + "&suppressBelow=" + bad);
    EXPECT_EQ(refused.status, 422) << bad;
    EXPECT_NE(refused.body.find("suppressBelow must be a whole number from 2 to 1000"),
              std::string::npos)
        << refused.body;
  }
  const auto csv = admin(admin_client(), "GET", path + "&format=csv&suppressBelow=1000");
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_NE(csv.body.find("\r\nsuppression,below,,1000\r\n"), std::string::npos) << csv.body;

  r = mxgw("audit query --event report.generated --limit 0");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto entries = lines_of(r.out);
  ASSERT_EQ(entries.size(), 3U) << r.out;
  EXPECT_NE(entries[0].find("\"suppressBelow\":\"2\""), std::string::npos) << entries[0];
  EXPECT_NE(entries[1].find("\"format\":\"csv\",\"suppressBelow\":\"3\""), std::string::npos)
      << entries[1];
  EXPECT_NE(entries[2].find("\"suppressBelow\":\"1000\""), std::string::npos) << entries[2];
}

// A verification request whose deadline day has passed without an answer is escalated: listed by
// the admin API, counted in the metrics, on the audit chain once however often the gateway looks;
// the answer, late, closes it.
TEST_F(AdminCli, AnUnansweredRequestPastItsDeadlineIsEscalatedUntilAnswered) {
  const auto gialai = partner_client("vn-gialai");
  const std::string request_id = "de4d0000-0000-4000-8000-000000000001";
  // The example's deadline, 2026-12-05, has passed.
  ASSERT_EQ(post(gialai, example("verification.request", request_id)).status, 202);
  const auto [first, ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(ok);
  EXPECT_EQ(first.escalated, 1U);
  EXPECT_EQ(gateway_->deadlines().sweep_now().first.escalated, 0U);

  auto r = admin(admin_client(), "GET", "/admin/v1/escalations");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  ASSERT_TRUE(doc.IsObject() && doc["escalations"].IsArray()) << r.body;
  ASSERT_EQ(doc["escalations"].Size(), 1U) << r.body;
  EXPECT_STREQ(doc["escalations"][0]["messageId"].GetString(), request_id.c_str());
  EXPECT_STREQ(doc["escalations"][0]["sender"].GetString(), "vn-gialai");
  EXPECT_STREQ(doc["escalations"][0]["deadline"].GetString(), "2026-12-05");
  EXPECT_NE(admin(admin_client(), "GET", "/metrics").body.find("mxgw_verifications_overdue 1\n"),
            std::string::npos);
  EXPECT_EQ(admin(admin_client(), "POST", "/admin/v1/escalations").status, 405);
  const auto listed = mxgw("escalations");
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(
      listed.out.rfind(
          "verification " + request_id + "  from vn-gialai  deadline 2026-12-05  escalated ", 0),
      0U)
      << listed.out;
  EXPECT_EQ(lines_of(listed.out).size(), 1U) << listed.out;

  // An "answer" from a partner that was not asked (here the requester itself) settles nothing.
  std::string stray = example("verification.result", "de4d0000-0000-4000-8000-000000000003");
  stray.replace(stray.find("1b6d4e8a-3f27-4c90-8e15-a9c2d7f0b364"), 36, request_id);
  ASSERT_EQ(post(gialai, stray).status, 202);
  EXPECT_EQ(gateway_->deadlines().sweep_now().first.closed, 0U);

  const auto answer =
      post(partner_client("kh-ratanakiri"),
           ratanakiri_answer(example("verification.result", "de4d0000-0000-4000-8000-000000000002"),
                             request_id));
  ASSERT_EQ(answer.status, 202) << answer.body;
  const auto [after, after_ok] = gateway_->deadlines().sweep_now();
  ASSERT_TRUE(after_ok);
  EXPECT_EQ(after.closed, 1U);
  EXPECT_EQ(after.overdue, 0U);
  r = admin(admin_client(), "GET", "/admin/v1/escalations");
  doc.Parse(r.body.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_EQ(doc["escalations"].Size(), 0U) << r.body;

  const auto entries = lines_of(mxgw("audit query --event verification.* --limit 0").out);
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_NE(entries[0].find("\"event\":\"verification.overdue\""), std::string::npos) << entries[0];
  EXPECT_NE(entries[0].find(request_id), std::string::npos) << entries[0];
  EXPECT_NE(entries[1].find("\"reason\":\"answered\""), std::string::npos) << entries[1];
  EXPECT_NE(log_text().find("verification.overdue"), std::string::npos);
}

// A partner created through the admin API while the gateway runs is held to its delivery
// concurrency at once, not only after the next start.
TEST_F(AdminCli, PartnerCreatedAtRunTimeIsHeldToItsConcurrency) {
  sim_->set_faults({.latency_ms = 150});  // each delivery is held long enough to overlap
  const auto created = admin(admin_client(), "POST", "/admin/v1/partners",
                             R"({"id":"kh-kampot","name":"Kampot commissariat","country":"KH",
      "endpoint":"https://127.0.0.1:)" +
                                 std::to_string(sim_->port()) +
                                 R"(/v1/messages",
      "delivery": {"timeout_ms": 5000, "concurrency": 1}})");
  ASSERT_EQ(created.status, 201) << created.body;

  const auto gialai = partner_client("vn-gialai");
  for (int i = 0; i < 4; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "3f1c2b4a-5d6e-4f70-8a9b-%012d", i);
    auto tip = example("hotline.tip", id);
    const std::string from = R"(["kh-ratanakiri"])";  // the example's recipients
    const auto at = tip.find(from);
    ASSERT_NE(at, std::string::npos) << tip;
    tip.replace(at, from.size(), R"(["kh-kampot"])");
    ASSERT_EQ(post(gialai, tip).status, 202);
  }
  ASSERT_TRUE(sim_->wait_until([](const auto& s) { return s.unique_ids == 4; }, patience));
  EXPECT_EQ(sim_->stats().most_held, 1u) << "more deliveries at once than the partner allows";
}

}  // namespace
}  // namespace mxgw::test
