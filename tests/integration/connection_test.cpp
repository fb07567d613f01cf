// Connection behaviour: keep-alive, the idle deadline, and the cap on concurrent connections.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// A blocking mutual-TLS connection that can carry several requests.
class tls_connection {
 public:
  tls_connection(const cli::client_tls& tls, std::uint16_t port)
      : ctx_(make_context(tls)), stream_(ioc_, ctx_) {
    stream_.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
    stream_.handshake(asio::ssl::stream_base::client);
  }

  int get(const std::string& target) {
    bhttp::request<bhttp::empty_body> req(bhttp::verb::get, target, 11);
    req.set(bhttp::field::host, "localhost");
    req.keep_alive(true);
    bhttp::write(stream_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res);
    keep_alive_ = res.keep_alive();
    return res.result_int();
  }

  bool keep_alive() const { return keep_alive_; }

  /// Blocks until the server closes the connection; true when it did.
  bool wait_for_close() {
    char byte;
    beast::error_code ec;
    stream_.read_some(asio::buffer(&byte, 1), ec);
    return static_cast<bool>(ec);
  }

 private:
  // The stream copies the context's certificate when it is made, so configure the context first.
  static asio::ssl::context make_context(const cli::client_tls& tls) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(tls.ca.string());
    ctx.use_certificate_chain_file(tls.cert.string());
    ctx.use_private_key_file(tls.key.string(), asio::ssl::context::pem);
    return ctx;
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  beast::flat_buffer buffer_;
  bool keep_alive_ = false;
};

class Connections : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.idle_timeout_ms = 500;
    c.listener.limits.max_connections = 2;
  }
};

TEST_F(Connections, KeepAliveCarriesSeveralRequestsThenTheIdleDeadlineClosesIt) {
  tls_connection connection(partner_client("vn-gialai"), port_);
  EXPECT_EQ(connection.get("/healthz"), 200);
  EXPECT_TRUE(connection.keep_alive());
  EXPECT_EQ(connection.get("/v1/messages/00000000-0000-4000-8000-000000000000"), 404);
  EXPECT_EQ(connection.get("/healthz"), 200);
  EXPECT_TRUE(connection.wait_for_close());  // after idle_timeout_ms of silence
}

TEST_F(Connections, ConnectionsOverTheCapAreClosedAtOnce) {
  const auto tls = partner_client("vn-gialai");
  tls_connection first(tls, port_);
  tls_connection second(tls, port_);
  ASSERT_EQ(first.get("/healthz"), 200);
  ASSERT_EQ(second.get("/healthz"), 200);
  // Two connections are open: a third gets no service.
  EXPECT_EQ(get(tls, "/healthz").status, 0);
  // The two are still served.
  EXPECT_EQ(first.get("/healthz"), 200);
}

}  // namespace
}  // namespace mxgw::test
