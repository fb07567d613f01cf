// Crash test: `mxgw serve` SIGKILLed at random moments loses nothing and delivers once in effect.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/cli/client.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/chaos/gateway_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::size_t message_count = 50;
constexpr int kills_while_submitting = 5;
constexpr int kills_after_submitting = 2;
constexpr auto delivery_patience = 60s;  // all delivered and recorded within this, at the end
constexpr auto request_timeout = 5s;     // one HTTPS request to the gateway
constexpr char example_id[] = "c41e6f0b-52a9-4d7e-b3c8-2f9a7e1d5c60";

// A random version-4 UUID in lower case.
std::string make_uuid(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> nibble(0, 15);
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      id += '-';
    }
    int v = nibble(rng);
    if (i == 12) {
      v = 4;
    } else if (i == 16) {
      v = 8 + (v & 3);
    }
    id += hex[v];
  }
  return id;
}

std::uint64_t chaos_seed() {
  const char* text = std::getenv("MXGW_CHAOS_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 10) : 20261123;
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  return doc;
}

std::string member(const rapidjson::Value& v, const char* name) {
  if (!v.IsObject() || !v.HasMember(name) || !v[name].IsString()) {
    return {};
  }
  return v[name].GetString();
}

// The state of the (only) recipient's delivery in a status answer, or "" when there is none.
std::string recipient_state(const rapidjson::Document& status) {
  if (!status.IsObject() || !status.HasMember("recipients") || !status["recipients"].IsArray() ||
      status["recipients"].Size() != 1) {
    return {};
  }
  const auto& r = status["recipients"][0];
  return member(r, "partner") == "kh-ratanakiri" ? member(r, "state") : std::string("wrong-row");
}

class CrashDelivery : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    identity::certs_issue_partner(dir_ / "certs", "vn-gialai", dir_ / "certs" / "vn-gialai");
    tls_ = {dir_ / "certs" / "ca.pem", dir_ / "certs" / "vn-gialai.pem",
            dir_ / "certs" / "vn-gialai.key"};

    // The slow, flaky partner. It records an id before its delayed answer, so a kill during
    // that delay leaves a delivery the partner has and the gateway has not recorded.
    sim::partner_sim_options options;
    options.cert = dir_ / "certs" / "server.pem";
    options.key = dir_ / "certs" / "server.key";
    options.ca = dir_ / "certs" / "ca.pem";
    options.threads = 2;
    options.faults = {.fail_rate = 0.1, .seed = seed_, .latency_ms = 50};
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
    // A short open circuit: a rare run of simulated failures must not park deliveries for 30 s.
    write_file(dir_ / "gateway.json", R"({
      "threads": 2,
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"]}},
      "store": {"path": "var/mxgw.db"},
      "delivery": {"lease_ms": 2000, "poll_interval_ms": 50, "breaker_open_ms": 200},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                          R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                          R"("})");

    // N hotline tips naming kh-ratanakiri explicitly (the example's recipients), fresh ids.
    const auto example = read_file(source_dir() / "config" / "examples" / "hotline.tip.json");
    const auto at = example.find(example_id);
    ASSERT_NE(at, std::string::npos);
    std::mt19937_64 ids_rng(seed_);
    for (std::size_t i = 0; i < message_count; ++i) {
      auto body = example;
      ids_.push_back(make_uuid(ids_rng));
      body.replace(at, std::string_view(example_id).size(), ids_.back());
      bodies_.push_back(std::move(body));
    }
  }

  void TearDown() override {
    gateway_.reset();
    sim_.reset();
  }

  void start_gateway() {
    gateway_ = std::make_unique<gateway_process>(dir_ / "gateway.json");
    port_ = gateway_->wait_started();
  }

  // Reaps the killed gateway (it must have died of our SIGKILL, not of anything else) and starts
  // a new one on the same store. Then checks idempotency: the first accepted message, sent again,
  // gets the same answer as the first time.
  void restart_after_kill() {
    const int status = gateway_->reap();
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      throw std::runtime_error("the gateway died on its own (status " + std::to_string(status) +
                               "); its log ends with:\n" + gateway_->tail());
    }
    ++kills_;
    start_gateway();
    if (!first_answer_.empty()) {
      const auto again = submit(0);
      EXPECT_EQ(again.status, 202) << again.body << again.error;
      EXPECT_EQ(member(parse(again.body), "acceptedAt"), first_answer_);
    }
  }

  cli::client_result submit(std::size_t i) {
    return cli::https_request("localhost", port_, tls_, "POST", "/v1/messages", bodies_[i],
                              "application/json", request_timeout);
  }

  cli::client_result status_of(std::size_t i) {
    return cli::https_request("localhost", port_, tls_, "GET", "/v1/messages/" + ids_[i], {},
                              "application/json", request_timeout);
  }

  // Kills the gateway after a random delay up to `max_delay` while this thread waits for the
  // partner to see at least one more POST (so deliveries are in flight), then restarts it.
  void kill_during_deliveries(std::mt19937_64& rng, std::chrono::microseconds max_delay) {
    const auto seen = sim_->stats().requests;
    sim_->wait_until([seen](const sim::sim_stats& s) { return s.requests > seen; }, 10s);
    {
      std::uniform_int_distribution<std::int64_t> delay(0, max_delay.count());
      delayed_kill killer(gateway_->pid(), std::chrono::microseconds(delay(rng)));
    }
    restart_after_kill();
  }

  std::uint64_t seed_ = chaos_seed();
  temp_dir dir_;
  cli::client_tls tls_;
  std::unique_ptr<sim::partner_sim> sim_;
  std::unique_ptr<gateway_process> gateway_;
  std::uint16_t port_ = 0;
  std::vector<std::string> ids_;
  std::vector<std::string> bodies_;
  std::string first_answer_;  // acceptedAt of message 0
  int kills_ = 0;
};

TEST_F(CrashDelivery, KilledAtRandomMomentsLosesNothingAndDeliversEachMessageOnceInEffect) {
  SCOPED_TRACE("MXGW_CHAOS_SEED=" + std::to_string(seed_));
  const auto began = steady::now();
  std::mt19937_64 rng(seed_ ^ 0x9e3779b97f4a7c15ULL);
  start_gateway();

  // Kill points: before these submissions, a kill is armed with a random delay of up to 40 ms, so
  // it lands in the middle of a request (TLS handshake, validation, group commit, the answer) or
  // between requests, while earlier messages are being delivered.
  std::set<std::size_t> kill_at;
  std::uniform_int_distribution<std::size_t> where(1, message_count - 2);
  while (kill_at.size() < static_cast<std::size_t>(kills_while_submitting)) {
    kill_at.insert(where(rng));
  }
  std::uniform_int_distribution<std::int64_t> delay_us(0, 40'000);

  std::unique_ptr<delayed_kill> killer;
  int failed_submissions = 0;
  for (std::size_t i = 0; i < message_count;) {
    if (!killer && !kill_at.empty() && i >= *kill_at.begin()) {
      kill_at.erase(kill_at.begin());
      killer =
          std::make_unique<delayed_kill>(gateway_->pid(), std::chrono::microseconds(delay_us(rng)));
    }
    const auto result = submit(i);
    if (result.status == 202) {
      // The answer names the message; a resubmission after a lost answer gets 202 as well.
      ASSERT_EQ(member(parse(result.body), "id"), ids_[i]) << result.body;
      if (i == 0) {
        first_answer_ = member(parse(result.body), "acceptedAt");
        ASSERT_FALSE(first_answer_.empty()) << result.body;
      }
      ++i;
      if (killer && killer->fired()) {
        killer.reset();
        restart_after_kill();
      }
      continue;
    }
    // Only our kill may make a submission fail; it is sent again (same id, same bytes).
    ASSERT_TRUE(killer && killer->fired())
        << "submission " << i << " failed without a kill: " << result.status << " " << result.body
        << result.error << "\n"
        << gateway_->tail();
    ++failed_submissions;
    killer.reset();  // waits for the kill if it has not landed yet
    restart_after_kill();
  }
  if (killer) {
    killer.reset();
    restart_after_kill();
  }
  const auto submitted = steady::now();

  // Kills while only deliveries are going on (plus kill points the submissions outran).
  for (auto k = kills_after_submitting + kill_at.size(); k > 0; --k) {
    kill_during_deliveries(rng, 60ms);
  }

  // The last gateway runs undisturbed: every message reaches the partner, each id once in effect.
  const auto deadline = steady::now() + delivery_patience;
  ASSERT_TRUE(sim_->wait_until(
      [](const sim::sim_stats& s) { return s.unique_ids >= message_count; },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now())))
      << "the partner has " << sim_->stats().unique_ids << " of " << message_count
      << " messages; gateway log:\n"
      << gateway_->tail();
  const auto delivered = steady::now();
  const auto stats = sim_->stats();
  EXPECT_EQ(stats.unique_ids, message_count);
  auto received = sim_->ids();
  std::sort(received.begin(), received.end());
  auto sent = ids_;
  std::sort(sent.begin(), sent.end());
  EXPECT_EQ(received, sent) << "the partner received ids that were never submitted";

  // The gateway has recorded every delivery: nothing pending, retrying or stuck delivering. A
  // row whose POST reached the partner just before a kill is retaken when its lease expires, so
  // this waits (same deadline) for the gateway's reports, re-checking whenever it logs something.
  std::size_t next = 0;
  std::string last_state;
  while (next < message_count && steady::now() < deadline) {
    const auto answer = status_of(next);
    ASSERT_EQ(answer.status, 200) << answer.body << answer.error;
    last_state = recipient_state(parse(answer.body));
    ASSERT_NE(last_state, "dead") << answer.body;
    ASSERT_NE(last_state, "wrong-row") << answer.body;
    if (last_state == "delivered") {
      ++next;
    } else {
      gateway_->wait_for_output(100ms);
    }
  }
  ASSERT_EQ(next, message_count) << "message " << ids_[next] << " is still " << last_state
                                 << "; gateway log:\n"
                                 << gateway_->tail();
  const auto recorded = steady::now();

  // The partner saw nothing new while the gateway caught up: still exactly N.
  EXPECT_EQ(sim_->stats().unique_ids, message_count);
  const auto code = gateway_->terminate();
  ASSERT_TRUE(code.has_value()) << "the gateway did not stop on SIGTERM; its log ends with:\n"
                                << gateway_->tail();
  EXPECT_EQ(*code, 0) << gateway_->tail();

  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  const auto final_stats = sim_->stats();
  std::cout << "[chaos] seed " << seed_ << ": " << message_count << " messages, " << kills_
            << " kills (" << failed_submissions << " submissions cut off), partner saw "
            << final_stats.requests << " POSTs, " << final_stats.unique_ids << " unique, "
            << final_stats.duplicates << " duplicates, " << final_stats.failures_sent
            << " simulated failures; submitted in " << ms(submitted - began)
            << " ms, all at the partner after " << ms(delivered - began)
            << " ms, all recorded after " << ms(recorded - began) << " ms\n";
  EXPECT_GE(kills_, kills_while_submitting + kills_after_submitting);
}

}  // namespace
}  // namespace mxgw::test
