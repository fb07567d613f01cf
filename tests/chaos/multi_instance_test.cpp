// Three `mxgw serve` processes on one PostgreSQL database: messages submitted round-robin over
// mutual TLS, one instance SIGKILLed while deliveries are in flight; the others take its leased
// rows over. At the end every message reached the partner once in effect, nothing is pending,
// and the audit chain is one linked chain. Runs when MXGW_TEST_PG_DSN is set (scripts/test.sh).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gateway/cli/client.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "gateway/store/pg_store.hpp"
#include "tests/chaos/gateway_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t message_count = 60;
constexpr std::size_t instance_count = 3;
constexpr auto delivery_patience = 90s;
constexpr auto request_timeout = 5s;
constexpr char example_id[] = "c41e6f0b-52a9-4d7e-b3c8-2f9a7e1d5c60";

std::string pg_dsn() {
  const char* dsn = std::getenv("MXGW_TEST_PG_DSN");
  return dsn != nullptr ? dsn : "";
}

/// Runs SQL in `schema` from a connection of the test's own; the first column of the first row.
std::string pg_query(const std::string& schema, const std::string& sql) {
  PGconn* conn = PQconnectdb(pg_dsn().c_str());
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  const std::string full = "SET search_path TO " + schema + "; " + sql;
  PGresult* r = PQexec(conn, full.c_str());
  std::string out;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
    out = PQgetvalue(r, 0, 0);
  } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    ADD_FAILURE() << sql << ": " << PQerrorMessage(conn);
  }
  PQclear(r);
  PQfinish(conn);
  return out;
}

std::string uuid(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> nibble(0, 15);
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      id += '-';
    }
    int v = nibble(rng);
    v = i == 12 ? 4 : i == 16 ? 8 + (v & 3) : v;
    id += hex[v];
  }
  return id;
}

std::string recipient_state(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  if (!doc.IsObject() || !doc.HasMember("recipients") || !doc["recipients"].IsArray() ||
      doc["recipients"].Size() != 1 || !doc["recipients"][0]["state"].IsString()) {
    return {};
  }
  return doc["recipients"][0]["state"].GetString();
}

class MultiInstance : public ::testing::Test {
 protected:
  void SetUp() override {
    if (pg_dsn().empty()) {
      GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
    }
    schema_ = "multi_" + std::to_string(std::hash<std::string>{}(dir_.path().string()));
    identity::certs_init({.dir = dir_ / "certs"});
    identity::certs_issue_partner(dir_ / "certs", "vn-gialai", dir_ / "certs" / "vn-gialai");
    tls_ = {dir_ / "certs" / "ca.pem", dir_ / "certs" / "vn-gialai.pem",
            dir_ / "certs" / "vn-gialai.key"};

    // A slow partner (its answer comes 50 ms after it recorded the id, so a kill in between
    // leaves a delivery it has and the gateway has not recorded) that sometimes fails.
    sim::partner_sim_options options;
    options.cert = dir_ / "certs" / "server.pem";
    options.key = dir_ / "certs" / "server.key";
    options.ca = dir_ / "certs" / "ca.pem";
    options.threads = 2;
    options.faults = {.fail_rate = 0.1, .seed = 7, .latency_ms = 50};
    sim_ = std::make_unique<sim::partner_sim>(options);
    sim_->start();

    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",
       "agreements":["victim-data"],
       "endpoint":"https://127.0.0.1:)" + std::to_string(sim_->port()) +
                                           R"(/v1/messages",
       "delivery":{"timeout_ms":1000,"max_attempts":1000,"max_age_s":3600,
                   "backoff_base_ms":20,"backoff_cap_ms":200,"concurrency":4}}]})");
    // Every instance: its own lease owner name, the same database and schema.
    for (std::size_t i = 0; i < instance_count; ++i) {
      write_file(dir_ / ("gateway-" + std::to_string(i) + ".json"), R"({
        "threads": 2,
        "listener": {"address": "127.0.0.1", "port": 0,
          "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                  "partner_ca": ["certs/ca.pem"]}},
        "store": {"kind": "postgres", "dsn": ")" + pg_dsn() + R"(", "schema": ")" +
                                                                        schema_ +
                                                                        R"("},
        "delivery": {"instance": "gw-)" + std::to_string(i) + R"(", "lease_ms": 2000,
                     "poll_interval_ms": 50, "breaker_open_ms": 200},
        "partners": "partners.json",
        "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                                                        R"(",
        "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                                                        R"("})");
    }
    const auto example = read_file(source_dir() / "config" / "examples" / "hotline.tip.json");
    const auto at = example.find(example_id);
    ASSERT_NE(at, std::string::npos);
    std::mt19937_64 rng(20261124);
    for (std::size_t i = 0; i < message_count; ++i) {
      auto body = example;
      ids_.push_back(uuid(rng));
      body.replace(at, std::string_view(example_id).size(), ids_.back());
      bodies_.push_back(std::move(body));
    }
  }

  void TearDown() override {
    gateways_.clear();
    sim_.reset();
    if (!pg_dsn().empty()) {
      pg_query("public", "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    }
  }

  cli::client_result submit(std::size_t instance, std::size_t i) {
    return cli::https_request("localhost", ports_[instance], tls_, "POST", "/v1/messages",
                              bodies_[i], "application/json", request_timeout);
  }

  cli::client_result status_of(std::size_t instance, std::size_t i) {
    return cli::https_request("localhost", ports_[instance], tls_, "GET", "/v1/messages/" + ids_[i],
                              {}, "application/json", request_timeout);
  }

  temp_dir dir_;
  std::string schema_;
  cli::client_tls tls_;
  std::unique_ptr<sim::partner_sim> sim_;
  std::vector<std::unique_ptr<gateway_process>> gateways_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::string> ids_;
  std::vector<std::string> bodies_;
};

TEST_F(MultiInstance, ThreeInstancesOneKilledDeliverEachMessageOnceInEffect) {
  for (std::size_t i = 0; i < instance_count; ++i) {
    gateways_.push_back(
        std::make_unique<gateway_process>(dir_ / ("gateway-" + std::to_string(i) + ".json")));
  }
  for (auto& g : gateways_) {
    ports_.push_back(g->wait_started());  // the first one migrated the schema, the others wait
  }
  constexpr std::size_t victim = 1;
  bool killed = false;
  std::vector<std::size_t> live{0, 1, 2};
  for (std::size_t i = 0; i < message_count; ++i) {
    if (!killed && i == message_count / 2) {
      // Deliveries are in flight (the partner has seen POSTs): the victim dies with its leases.
      const auto seen = sim_->stats().requests;
      sim_->wait_until([seen](const sim::sim_stats& s) { return s.requests > seen; }, 10s);
      ::kill(gateways_[victim]->pid(), SIGKILL);
      const int status = gateways_[victim]->reap();
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
      live = {0, 2};
      killed = true;
    }
    const std::size_t instance = live[i % live.size()];
    const auto result = submit(instance, i);
    ASSERT_EQ(result.status, 202) << "instance " << instance << ": " << result.body << result.error
                                  << "\n"
                                  << gateways_[instance]->tail();
  }
  // The same message submitted to another instance: the same answer, nothing new stored.
  const auto again = submit(2, 0);
  EXPECT_EQ(again.status, 202) << again.body;

  // Every message reaches the partner; the victim's leased rows are retaken after 2 s.
  ASSERT_TRUE(sim_->wait_until(
      [](const sim::sim_stats& s) { return s.unique_ids >= message_count; }, delivery_patience))
      << "the partner has " << sim_->stats().unique_ids << " of " << message_count
      << "; instance 0 log:\n"
      << gateways_[0]->tail();
  auto received = sim_->ids();
  std::sort(received.begin(), received.end());
  auto sent = ids_;
  std::sort(sent.begin(), sent.end());
  EXPECT_EQ(received, sent);

  // Every delivery recorded, whichever instance is asked (the status is the same on all).
  const auto deadline = std::chrono::steady_clock::now() + delivery_patience;
  std::size_t next = 0;
  std::string last;
  while (next < message_count && std::chrono::steady_clock::now() < deadline) {
    const std::size_t instance = next % 2 == 0 ? 0 : 2;
    const auto answer = status_of(instance, next);
    ASSERT_EQ(answer.status, 200) << answer.body << answer.error;
    last = recipient_state(answer.body);
    ASSERT_NE(last, "dead") << answer.body;
    if (last == "delivered") {
      ++next;
    } else {
      gateways_[instance]->wait_for_output(100ms);
    }
  }
  ASSERT_EQ(next, message_count) << ids_[next] << " is still " << last;
  EXPECT_EQ(sim_->stats().unique_ids, message_count);
  EXPECT_EQ(pg_query(schema_, "SELECT count(*) FROM messages"), std::to_string(message_count));
  EXPECT_EQ(pg_query(schema_, "SELECT count(*) FROM deliveries WHERE state <> 'delivered'"), "0");

  for (const std::size_t i : {std::size_t{0}, std::size_t{2}}) {
    const auto code = gateways_[i]->terminate();
    ASSERT_TRUE(code.has_value()) << gateways_[i]->tail();
    EXPECT_EQ(*code, 0) << gateways_[i]->tail();
  }

  // The audit chain, as any instance reads it: seq 1..N, each entry naming its predecessor.
  store::postgres_options options;
  options.dsn = pg_dsn();
  options.schema = schema_;
  auto store = store::open_postgres_store(options);
  std::promise<std::pair<std::vector<audit::audit_row>, bool>> p;
  auto f = p.get_future();
  store->read_audit(0, 1'000'000, [&p](std::vector<audit::audit_row> rows, bool ok) {
    p.set_value({std::move(rows), ok});
  });
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const auto [rows, ok] = f.get();
  ASSERT_TRUE(ok);
  std::string prev(audit::genesis_hash());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(rows[i].hash, sha256_hex(rows[i].entry));
    EXPECT_NE(rows[i].entry.find("\"prev\":\"" + prev + "\""), std::string::npos);
    prev = rows[i].hash;
  }
  std::cout << "[multi-instance] " << message_count << " messages over " << instance_count
            << " instances, one killed; partner saw " << sim_->stats().requests << " POSTs, "
            << sim_->stats().duplicates << " duplicates; audit chain " << rows.size()
            << " entries\n";
}

}  // namespace
}  // namespace mxgw::test
