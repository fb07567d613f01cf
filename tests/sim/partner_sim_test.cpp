// partner-sim over real mutual TLS on loopback: receipts, deduplication, refusal, fault switches.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gateway/common/time.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;

struct client_files {
  std::filesystem::path ca, cert, key;  // cert empty: no client certificate is presented
};

struct reply {
  int status = 0;  // 0: no response (see error)
  std::string body;
  std::string location;
  std::string error;
};

// A blocking mutual-TLS client whose every step runs asynchronously under one deadline.
class tls_client {
 public:
  explicit tls_client(const client_files& files, std::chrono::milliseconds timeout = 15s)
      : ctx_(make_context(files)), stream_(ioc_, ctx_), timeout_(timeout) {
    stream_.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
  }

  /// Empty on success, else "connect: ..." or "handshake: ...".
  std::string connect(std::uint16_t port) {
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.expires_after(timeout_);
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    if (auto ec = run([&](auto handler) { lowest.async_connect(endpoint, handler); })) {
      return "connect: " + ec.message();
    }
    // Without it the request waits behind Nagle for the ACK of the client's last handshake flight.
    beast::error_code ignored;
    lowest.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    if (auto ec = run([&](auto handler) {
          stream_.async_handshake(asio::ssl::stream_base::client, handler);
        })) {
      return "handshake: " + ec.message();
    }
    return {};
  }

  reply request(bhttp::verb method, const std::string& target, const std::string& body = {},
                bool keep_alive = true) {
    reply out;
    bhttp::request<bhttp::string_body> req(method, target, 11);
    req.set(bhttp::field::host, "127.0.0.1");
    if (method == bhttp::verb::post) {
      req.set(bhttp::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(keep_alive);
    req.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(timeout_);
    if (auto ec = run([&](auto handler) { bhttp::async_write(stream_, req, handler); })) {
      out.error = "write: " + ec.message();
      return out;
    }
    bhttp::response<bhttp::string_body> res;
    if (auto ec = run([&](auto handler) { bhttp::async_read(stream_, buffer_, res, handler); })) {
      out.error = "read: " + ec.message();
      return out;
    }
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    out.location = std::string(res[bhttp::field::location]);
    return out;
  }

 private:
  static asio::ssl::context make_context(const client_files& files) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(files.ca.string());
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!files.cert.empty()) {
      ctx.use_certificate_chain_file(files.cert.string());
      ctx.use_private_key_file(files.key.string(), asio::ssl::context::pem);
    }
    return ctx;
  }

  template <typename Start>
  beast::error_code run(Start&& start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
};

// One request on a fresh connection.
reply send(std::uint16_t port, const client_files& files, bhttp::verb method,
           const std::string& target, const std::string& body = {},
           std::chrono::milliseconds timeout = 15s) {
  tls_client client(files, timeout);
  if (auto error = client.connect(port); !error.empty()) {
    return {.error = error};
  }
  return client.request(method, target, body, false);
}

std::string uuid(int n) {
  char text[40];
  std::snprintf(text, sizeof text, "6f1c2d3e-4b5a-4c6d-8e7f-%012d", n);
  return text;
}

std::string message(const std::string& id) {
  return R"({"mx":"1","id":")" + id +
         R"(","type":"case.status","sender":"vn-gialai","body":{"status":"repatriated"}})";
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  return doc;
}

class partner_sim_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = std::chrono::system_clock::now();
    ca_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
        "sim test CA", now - std::chrono::hours(1), now + std::chrono::hours(24)));
    write_file(dir_ / "ca.pem", ca_->cert_pem());
    identity::certificate_request server_req;
    server_req.common_name = "localhost";
    server_req.san_dns = {"localhost"};
    server_req.san_ips = {"127.0.0.1"};
    server_req.server_auth = true;
    server_req.client_auth = false;
    write_pair("server", ca_->issue(server_req));
    identity::certificate_request client_req;
    client_req.common_name = "vn-gialai";
    client_req.san_uris = {"urn:mxgw:partner:vn-gialai"};
    write_pair("client", ca_->issue(client_req));
    client_ = {dir_ / "ca.pem", dir_ / "client.pem", dir_ / "client.key"};
  }

  void write_pair(const std::string& name, const identity::issued_certificate& issued) {
    write_file(dir_ / (name + ".pem"), issued.cert_pem);
    identity::write_file_with_mode(dir_ / (name + ".key"), issued.key_pem, 0600);
  }

  sim::partner_sim_options options(const sim::faults& f = {}) {
    return {.cert = dir_ / "server.pem",
            .key = dir_ / "server.key",
            .ca = dir_ / "ca.pem",
            .faults = f};
  }

  void start(const sim::faults& f = {}) {
    sim_ = std::make_unique<sim::partner_sim>(options(f));
    sim_->start();
    ASSERT_NE(sim_->port(), 0);
  }

  reply post(const std::string& body, std::chrono::milliseconds timeout = 15s) {
    return send(sim_->port(), client_, bhttp::verb::post, "/v1/messages", body, timeout);
  }

  temp_dir dir_;
  std::unique_ptr<identity::cert_authority> ca_;
  client_files client_;
  std::unique_ptr<sim::partner_sim> sim_;
};

TEST_F(partner_sim_test, accepts_a_valid_post_with_a_receipt) {
  start();
  const auto id = uuid(1);
  const auto r = post(message(id));
  ASSERT_EQ(r.status, 202) << r.error << r.body;
  const auto doc = parse(r.body);
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_EQ(std::string(doc["id"].GetString()), id);
  EXPECT_EQ(std::string(doc["status"].GetString()), "accepted");
  EXPECT_TRUE(parse_rfc3339(doc["acceptedAt"].GetString()).has_value()) << r.body;
  EXPECT_EQ(r.location, "/v1/messages/" + id);
  EXPECT_TRUE(sim_->has(id));
  EXPECT_FALSE(sim_->has(uuid(2)));
  EXPECT_EQ(sim_->ids(), std::vector<std::string>{id});
  const auto s = sim_->stats();
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.unique_ids, 1u);
  EXPECT_EQ(s.duplicates, 0u);
  EXPECT_EQ(s.failures_sent, 0u);
}

TEST_F(partner_sim_test, duplicate_id_gets_the_same_receipt_and_is_counted_once) {
  start();
  const auto id = uuid(1);
  const auto first = post(message(id));
  ASSERT_EQ(first.status, 202) << first.error;
  const auto second = post(message(id));
  ASSERT_EQ(second.status, 202) << second.error;
  EXPECT_EQ(second.body, first.body);
  const auto s = sim_->stats();
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.unique_ids, 1u);
  EXPECT_EQ(s.duplicates, 1u);
  EXPECT_EQ(sim_->ids().size(), 1u);
}

TEST_F(partner_sim_test, keep_alive_connection_serves_several_requests) {
  start();
  tls_client client(client_);
  ASSERT_EQ(client.connect(sim_->port()), "");
  EXPECT_EQ(client.request(bhttp::verb::post, "/v1/messages", message(uuid(1))).status, 202);
  EXPECT_EQ(client.request(bhttp::verb::post, "/v1/messages", message(uuid(2))).status, 202);
  EXPECT_EQ(client.request(bhttp::verb::get, "/sim/stats").status, 200);
  EXPECT_EQ(sim_->stats().unique_ids, 2u);
}

TEST_F(partner_sim_test, client_without_certificate_is_refused) {
  start();
  const auto r = send(sim_->port(), {.ca = dir_ / "ca.pem"}, bhttp::verb::post, "/v1/messages",
                      message(uuid(1)));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_EQ(sim_->stats().requests, 0u);
  EXPECT_FALSE(sim_->has(uuid(1)));
}

TEST_F(partner_sim_test, client_certificate_from_another_ca_is_refused) {
  start();
  const auto now = std::chrono::system_clock::now();
  const auto other = identity::cert_authority::create("other CA", now - std::chrono::hours(1),
                                                      now + std::chrono::hours(24));
  identity::certificate_request req;
  req.common_name = "intruder";
  write_pair("intruder", other.issue(req));
  const auto r = send(sim_->port(), {dir_ / "ca.pem", dir_ / "intruder.pem", dir_ / "intruder.key"},
                      bhttp::verb::post, "/v1/messages", message(uuid(1)));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(sim_->stats().requests, 0u);
}

TEST_F(partner_sim_test, fail_first_two_answers_503_twice_then_accepts) {
  start({.fail_first = 2});
  const auto id = uuid(1);
  EXPECT_EQ(post(message(id)).status, 503);
  EXPECT_FALSE(sim_->has(id));
  EXPECT_EQ(post(message(id)).status, 503);
  EXPECT_EQ(post(message(id)).status, 202);
  const auto s = sim_->stats();
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.failures_sent, 2u);
  EXPECT_EQ(s.unique_ids, 1u);
  EXPECT_EQ(s.duplicates, 0u);
}

TEST_F(partner_sim_test, set_faults_restarts_the_fail_first_count) {
  start();
  EXPECT_EQ(post(message(uuid(1))).status, 202);
  sim_->set_faults({.fail_first = 1});
  EXPECT_EQ(post(message(uuid(2))).status, 503);
  EXPECT_EQ(post(message(uuid(2))).status, 202);
  EXPECT_EQ(sim_->current_faults().fail_first, 1u);
}

TEST_F(partner_sim_test, always_status_answers_it_without_recording_the_id) {
  start({.always_status = 400});
  const auto id = uuid(1);
  const auto r = post(message(id));
  EXPECT_EQ(r.status, 400);
  const auto doc = parse(r.body);
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_EQ(std::string(doc["error"].GetString()), "simulated permanent failure");
  EXPECT_FALSE(sim_->has(id));
  EXPECT_EQ(sim_->stats().unique_ids, 0u);
  EXPECT_EQ(sim_->stats().failures_sent, 1u);
  // The partner fixed its side: the same message is accepted now.
  sim_->set_faults({});
  EXPECT_EQ(post(message(id)).status, 202);
  EXPECT_TRUE(sim_->has(id));
}

TEST_F(partner_sim_test, fail_rate_is_reproducible_with_the_same_seed) {
  start({.fail_rate = 1.0});
  EXPECT_EQ(post(message(uuid(1))).status, 503);
  EXPECT_EQ(post(message(uuid(1))).status, 503);

  const auto outcomes = [&](int base) {
    std::vector<int> statuses;
    for (int i = 0; i < 16; ++i) {
      statuses.push_back(post(message(uuid(base + i))).status);
    }
    return statuses;
  };
  sim_->set_faults({.fail_rate = 0.5, .seed = 42});
  const auto first = outcomes(100);
  sim_->set_faults({.fail_rate = 0.5, .seed = 42});
  const auto second = outcomes(200);
  EXPECT_EQ(first, second);
  EXPECT_NE(std::count(first.begin(), first.end(), 503), 0);
  EXPECT_NE(std::count(first.begin(), first.end(), 202), 0);
  EXPECT_EQ(
      std::count(first.begin(), first.end(), 503) + std::count(first.begin(), first.end(), 202),
      16);
}

TEST_F(partner_sim_test, latency_delays_the_answer_but_the_message_is_processed_first) {
  // An answer held back far longer than the client waits: the client gives up, yet the sim has
  // processed the message, so the sender's retry is a duplicate that gets the same receipt.
  start({.latency_ms = 10 * 60 * 1000});
  const auto id = uuid(1);
  const auto slow = post(message(id), 3s);
  EXPECT_EQ(slow.status, 0);
  EXPECT_TRUE(sim_->has(id));
  sim_->set_faults({.latency_ms = 20});
  const auto retry = post(message(id));
  ASSERT_EQ(retry.status, 202) << retry.error;
  EXPECT_EQ(std::string(parse(retry.body)["id"].GetString()), id);
  const auto s = sim_->stats();
  EXPECT_EQ(s.unique_ids, 1u);
  EXPECT_EQ(s.duplicates, 1u);
}

TEST_F(partner_sim_test, down_refuses_connections_until_cleared) {
  start();
  ASSERT_EQ(post(message(uuid(1))).status, 202);
  sim_->set_faults({.down_for_ms = 10 * 60 * 1000});
  const auto refused = post(message(uuid(2)));
  EXPECT_EQ(refused.status, 0);
  EXPECT_EQ(refused.error.rfind("connect:", 0), 0u) << refused.error;
  sim_->set_faults({});
  EXPECT_EQ(post(message(uuid(2))).status, 202);
  EXPECT_EQ(sim_->stats().unique_ids, 2u);
}

TEST_F(partner_sim_test, down_from_start_refuses_until_cleared) {
  start({.down_for_ms = 10 * 60 * 1000});
  EXPECT_EQ(post(message(uuid(1))).status, 0);
  sim_->set_faults({});
  EXPECT_EQ(post(message(uuid(1))).status, 202);
}

TEST_F(partner_sim_test, going_down_closes_kept_alive_connections) {
  start();
  tls_client client(client_);
  ASSERT_EQ(client.connect(sim_->port()), "");
  ASSERT_EQ(client.request(bhttp::verb::post, "/v1/messages", message(uuid(1))).status, 202);
  sim_->set_faults({.down_for_ms = 10 * 60 * 1000});
  const auto r = client.request(bhttp::verb::post, "/v1/messages", message(uuid(2)));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(sim_->has(uuid(2)));
}

TEST_F(partner_sim_test, stats_endpoint_reports_the_counters_as_json) {
  start({.fail_first = 1});
  post(message(uuid(1)));
  post(message(uuid(1)));
  post(message(uuid(1)));
  const auto r = send(sim_->port(), client_, bhttp::verb::get, "/sim/stats");
  ASSERT_EQ(r.status, 200) << r.error;
  const auto doc = parse(r.body);
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_EQ(doc["requests"].GetUint64(), 3u);
  EXPECT_EQ(doc["uniqueIds"].GetUint64(), 1u);
  EXPECT_EQ(doc["duplicates"].GetUint64(), 1u);
  EXPECT_EQ(doc["failuresSent"].GetUint64(), 1u);
}

TEST_F(partner_sim_test, invalid_json_or_missing_id_is_refused_with_400) {
  start();
  const std::vector<std::string> bodies = {"{not json", "[1,2]", R"({"mx":"1"})",
                                           R"({"id":"not-a-uuid"})", R"({"id":42})"};
  for (const auto& body : bodies) {
    const auto r = post(body);
    EXPECT_EQ(r.status, 400) << body;
    const auto doc = parse(r.body);
    ASSERT_TRUE(doc.IsObject()) << r.body;
    EXPECT_TRUE(doc.HasMember("error")) << r.body;
  }
  EXPECT_EQ(sim_->stats().unique_ids, 0u);
  EXPECT_EQ(sim_->stats().requests, 5u);
}

TEST_F(partner_sim_test, unknown_routes_and_methods_are_refused) {
  start();
  EXPECT_EQ(send(sim_->port(), client_, bhttp::verb::get, "/v1/messages").status, 405);
  EXPECT_EQ(send(sim_->port(), client_, bhttp::verb::get, "/elsewhere").status, 404);
  EXPECT_EQ(send(sim_->port(), client_, bhttp::verb::post, "/sim/stats", "{}").status, 405);
}

TEST_F(partner_sim_test, bad_options_are_refused) {
  auto bad_format = options();
  bad_format.format = "xml";
  EXPECT_THROW(sim::partner_sim{bad_format}, std::invalid_argument);
  EXPECT_THROW(sim::partner_sim{options({.fail_rate = 1.5})}, std::invalid_argument);
  EXPECT_THROW(sim::partner_sim{options({.always_status = 42})}, std::invalid_argument);
  auto bad_address = options();
  bad_address.address = "localhost:1";
  EXPECT_THROW(sim::partner_sim{bad_address}, std::invalid_argument);
  auto no_key = options();
  no_key.key = dir_ / "missing.key";
  EXPECT_THROW(sim::partner_sim{no_key}, std::runtime_error);
  start();
  EXPECT_THROW(sim_->set_faults({.fail_rate = -0.1}), std::invalid_argument);
  EXPECT_THROW(sim_->start(), std::logic_error);
}

TEST_F(partner_sim_test, stop_is_idempotent_and_refuses_afterwards) {
  start();
  const auto port = sim_->port();
  sim_->stop();
  sim_->stop();
  EXPECT_EQ(send(port, client_, bhttp::verb::get, "/sim/stats").status, 0);
}

TEST(partner_sim_listen, parses_address_and_port) {
  const auto v4 = sim::parse_listen("127.0.0.1:9443");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->address, "127.0.0.1");
  EXPECT_EQ(v4->port, 9443);
  const auto v6 = sim::parse_listen("[::1]:0");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->address, "::1");
  EXPECT_EQ(v6->port, 0);
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "localhost:9443", "::1:9443", "[::1]9443",
                          "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:99999999", ":9443"}) {
    EXPECT_FALSE(sim::parse_listen(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace mxgw::test
