// How partner_client reads a partner's answer: past 1xx interim responses, to the end of a
// connection that delimits it, and never keeping a connection that holds bytes past the answer.
// Real mutual TLS over loopback against a raw partner server that writes exactly the bytes a test
// gives it.
#include "gateway/delivery/partner_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::delivery {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using tls_stream = asio::ssl::stream<tcp::socket>;
using asio::use_awaitable;

// A partner endpoint that runs one script per connection it accepts, in order. Its own thread
// and io_context; stopping it drops whatever a script still waits for.
class raw_partner {
 public:
  // One connection's side of the exchange, after the handshake.
  using connection_script = std::function<asio::awaitable<void>(tls_stream&)>;

  raw_partner(const test::temp_dir& dir, std::vector<connection_script> scripts)
      : ctx_(asio::ssl::context::tls_server),
        acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}),
        scripts_(std::move(scripts)) {
    ctx_.use_certificate_chain_file((dir / "server.pem").string());
    ctx_.use_private_key_file((dir / "server.key").string(), asio::ssl::context::pem);
    ctx_.load_verify_file((dir / "ca.pem").string());
    ctx_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    asio::co_spawn(ioc_, serve(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~raw_partner() {
    ioc_.stop();
    thread_.join();
  }

  raw_partner(const raw_partner&) = delete;
  raw_partner& operator=(const raw_partner&) = delete;

  std::string endpoint() const {
    return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) +
           "/v1/messages";
  }

  /// Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 private:
  // Accepts one connection per script; each runs on its own, so one waiting for the client to
  // go does not hold up the next.
  asio::awaitable<void> serve() {
    for (auto& script : scripts_) {
      auto socket = co_await acceptor_.async_accept(use_awaitable);
      ++accepted_;
      asio::co_spawn(ioc_, run(std::move(socket), script), asio::detached);
    }
  }

  // A script ends where the client goes (its read throws): that is no failure of the server.
  asio::awaitable<void> run(tcp::socket socket, const connection_script& script) {
    tls_stream stream(std::move(socket), ctx_);
    try {
      co_await stream.async_handshake(asio::ssl::stream_base::server, use_awaitable);
      co_await script(stream);
    } catch (const boost::system::system_error&) {
    }
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  tcp::acceptor acceptor_;
  std::vector<connection_script> scripts_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Reads one request; its body (a message id, no personal data) names the answer.
asio::awaitable<std::string> read_request(tls_stream& stream, beast::flat_buffer& buffer) {
  bhttp::request<bhttp::string_body> request;
  co_await bhttp::async_read(stream, buffer, request, use_awaitable);
  co_return request.body();
}

asio::awaitable<void> write_raw(tls_stream& stream, const std::string& bytes) {
  co_await asio::async_write(stream, asio::buffer(bytes), use_awaitable);
}

// Ends the TCP connection without a TLS close_notify: the client sees a truncated stream.
void cut(tls_stream& stream) {
  boost::system::error_code ignored;
  stream.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  stream.next_layer().close(ignored);
}

std::string receipt_for(const std::string& request_body) {
  return R"({"receipt":)" + request_body + "}";
}

std::string answer_202(const std::string& receipt) {
  return "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(receipt.size()) + "\r\n\r\n" + receipt;
}

class PartnerClientAnswer : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = std::chrono::system_clock::now();
    const auto ca = identity::cert_authority::create("answer test CA", now - std::chrono::hours(1),
                                                     now + std::chrono::hours(24));
    test::write_file(dir_ / "ca.pem", ca.cert_pem());
    identity::certificate_request server;
    server.common_name = "127.0.0.1";
    server.san_ips = {"127.0.0.1"};
    server.client_auth = false;
    server.server_auth = true;
    const auto server_cert = ca.issue(server);
    test::write_file(dir_ / "server.pem", server_cert.cert_pem);
    identity::write_file_with_mode(dir_ / "server.key", server_cert.key_pem, 0600);
    identity::certificate_request gateway;
    gateway.common_name = "mxgw";
    const auto gateway_cert = ca.issue(gateway);
    test::write_file(dir_ / "client.pem", gateway_cert.cert_pem);
    identity::write_file_with_mode(dir_ / "client.key", gateway_cert.key_pem, 0600);
    client_.emplace(ioc_, client_identity{.certificate = dir_ / "client.pem",
                                          .private_key = dir_ / "client.key",
                                          .server_cas = {dir_ / "ca.pem"}});
  }

  // POSTs `body` and waits for its result.
  post_result post(const raw_partner& partner, const std::string& body) {
    std::optional<post_result> got;
    client_->post("xx-partner", partner.endpoint(), body, "application/json",
                  std::chrono::seconds(5), [&](post_result r) { got = std::move(r); });
    ioc_.restart();
    ioc_.run_for(std::chrono::seconds(10));
    if (!got) {
      ADD_FAILURE() << "no result";
      return {};
    }
    return *got;
  }

  test::temp_dir dir_;
  asio::io_context ioc_;
  std::optional<partner_client> client_;
};

TEST_F(PartnerClientAnswer, InterimResponsesAreReadPastAndTheNextPostGetsItsOwnAnswer) {
  raw_partner partner(dir_, {[](tls_stream& stream) -> asio::awaitable<void> {
                        beast::flat_buffer buffer;
                        const auto first = co_await read_request(stream, buffer);
                        // An unsolicited 100 and early hints, then the answer, in one write.
                        co_await write_raw(stream,
                                           "HTTP/1.1 100 Continue\r\n\r\n"
                                           "HTTP/1.1 103 Early Hints\r\n"
                                           "Link: </receipt.css>; rel=preload\r\n\r\n" +
                                               answer_202(receipt_for(first)));
                        const auto second = co_await read_request(stream, buffer);
                        co_await write_raw(stream, answer_202(receipt_for(second)));
                        co_await read_request(stream, buffer);  // until the client goes
                      }});

  const auto first = post(partner, R"("m-1")");
  EXPECT_EQ(first.error, "");
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.body, R"({"receipt":"m-1"})");

  const auto second = post(partner, R"("m-2")");
  EXPECT_EQ(second.error, "");
  EXPECT_EQ(second.status, 202);
  EXPECT_EQ(second.body, R"({"receipt":"m-2"})");
  EXPECT_TRUE(second.reused);
  EXPECT_EQ(partner.accepted(), 1);
}

TEST_F(PartnerClientAnswer, ConnectionWithBytesPastTheAnswerIsNotKept) {
  raw_partner partner(dir_, {[](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               const auto first = co_await read_request(stream, buffer);
                               // A second, unasked-for answer right behind the first.
                               co_await write_raw(stream, answer_202(receipt_for(first)) +
                                                              answer_202(R"({"stale":true})"));
                               co_await read_request(stream, buffer);
                             },
                             [](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               const auto second = co_await read_request(stream, buffer);
                               co_await write_raw(stream, answer_202(receipt_for(second)));
                               co_await read_request(stream, buffer);
                             }});

  const auto first = post(partner, R"("m-1")");
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.body, R"({"receipt":"m-1"})");

  const auto second = post(partner, R"("m-2")");
  EXPECT_EQ(second.error, "");
  EXPECT_EQ(second.status, 202);
  EXPECT_EQ(second.body, R"({"receipt":"m-2"})");
  EXPECT_FALSE(second.reused);
  EXPECT_EQ(partner.accepted(), 2);
}

TEST_F(PartnerClientAnswer, AnswerEndedByATruncatedCloseIsTheAnswer) {
  raw_partner partner(dir_, {[](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               const auto first = co_await read_request(stream, buffer);
                               co_await write_raw(stream,
                                                  "HTTP/1.1 202 Accepted\r\n"
                                                  "Content-Type: application/json\r\n\r\n" +
                                                      receipt_for(first));
                               cut(stream);
                             },
                             [](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               const auto second = co_await read_request(stream, buffer);
                               co_await write_raw(stream, answer_202(receipt_for(second)));
                               co_await read_request(stream, buffer);
                             }});

  const auto first = post(partner, R"("m-1")");
  EXPECT_EQ(first.error, "");
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.body, R"({"receipt":"m-1"})");

  // That connection is over: the next message goes on a new one.
  const auto second = post(partner, R"("m-2")");
  EXPECT_EQ(second.status, 202);
  EXPECT_EQ(second.body, R"({"receipt":"m-2"})");
  EXPECT_FALSE(second.reused);
  EXPECT_EQ(partner.accepted(), 2);
}

TEST_F(PartnerClientAnswer, AnswerCutShortOfItsDeclaredLengthIsAFailure) {
  raw_partner partner(dir_, {[](tls_stream& stream) -> asio::awaitable<void> {
                        beast::flat_buffer buffer;
                        co_await read_request(stream, buffer);
                        co_await write_raw(stream,
                                           "HTTP/1.1 202 Accepted\r\n"
                                           "Content-Type: application/json\r\n"
                                           "Content-Length: 100\r\n\r\n"
                                           R"({"receipt")");  // 10 of the 100 bytes
                        cut(stream);
                      }});

  const auto result = post(partner, R"("m-1")");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error, "read");
}

TEST_F(PartnerClientAnswer, SwitchingProtocolsIsAFailureAndItsConnectionIsNotKept) {
  raw_partner partner(dir_, {[](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               co_await read_request(stream, buffer);
                               // Whatever follows a 101 is another protocol's, even if it
                               // looks like HTTP.
                               co_await write_raw(stream,
                                                  "HTTP/1.1 101 Switching Protocols\r\n"
                                                  "Connection: Upgrade\r\n"
                                                  "Upgrade: websocket\r\n\r\n");
                               co_await write_raw(stream, answer_202(R"({"stale":true})"));
                               co_await read_request(stream, buffer);
                             },
                             [](tls_stream& stream) -> asio::awaitable<void> {
                               beast::flat_buffer buffer;
                               const auto second = co_await read_request(stream, buffer);
                               co_await write_raw(stream, answer_202(receipt_for(second)));
                               co_await read_request(stream, buffer);
                             }});

  const auto first = post(partner, R"("m-1")");
  EXPECT_EQ(first.status, 0);
  EXPECT_EQ(first.error, "switching-protocols");

  const auto second = post(partner, R"("m-2")");
  EXPECT_EQ(second.status, 202);
  EXPECT_EQ(second.body, R"({"receipt":"m-2"})");
  EXPECT_FALSE(second.reused);
}

}  // namespace
}  // namespace mxgw::delivery
