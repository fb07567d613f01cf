// A kept-alive connection keeps the identity of its handshake only while it holds: before each
// request the certificate's validity and its mapping in the trust state in force are checked
// again, a change of the trust state closes at once the connections whose certificate it no
// longer maps to their partner, and no connection outlives
// listener.limits.max_connection_lifetime_seconds.
#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "gateway/identity/cert_authority.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/mxgw_process.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;

struct answer {
  int status = 0;                 ///< 0: no answer, the connection was closed
  std::string problem;            ///< the code of a problem document's type, when there is one
  bool keep_alive = false;        ///< the answer lets the connection carry another request
  std::string connection_header;  ///< the `Connection` field as sent
};

// One mutual-TLS connection carrying several requests, written byte by byte when a test needs it.
class kept_alive_connection {
 public:
  kept_alive_connection(const cli::client_tls& tls, std::uint16_t port)
      : ctx_(make_context(tls)), stream_(ioc_, ctx_) {
    stream_.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
    stream_.handshake(asio::ssl::stream_base::client);
  }

  answer request(const std::string& target) {
    send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    return read();
  }

  /// Writes `bytes` as they are (a request in parts); a failed write shows in the next read.
  void send(const std::string& bytes) {
    beast::error_code ec;
    asio::write(stream_, asio::buffer(bytes), ec);
  }

  answer read() {
    beast::error_code ec;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res, ec);
    if (ec) {
      return {};
    }
    answer out{static_cast<int>(res.result_int()),
               {},
               res.keep_alive(),
               std::string(res[bhttp::field::connection])};
    constexpr std::string_view prefix = "urn:mxgw:problem:";
    if (const auto at = res.body().find(prefix); at != std::string::npos) {
      const auto from = at + prefix.size();
      out.problem = res.body().substr(from, res.body().find('"', from) - from);
    }
    return out;
  }

  /// Blocks until the gateway closes the connection; true when it did.
  bool wait_for_close() {
    char byte;
    beast::error_code ec;
    stream_.read_some(asio::buffer(&byte, 1), ec);
    return static_cast<bool>(ec);
  }

  /// True when the gateway closes the connection within `limit`, with no request sent.
  bool closed_within(std::chrono::milliseconds limit) {
    pollfd readable{stream_.next_layer().native_handle(), POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(limit.count())) <= 0) {
      return false;
    }
    return wait_for_close();
  }

 private:
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
};

// A PEM text as a JSON string (PEM holds base64, dashes, spaces and newlines only).
std::string json_pem(std::string pem) {
  for (auto at = pem.find('\n'); at != std::string::npos; at = pem.find('\n', at + 2)) {
    pem.replace(at, 1, "\\n");
  }
  return "\"" + pem + "\"";
}

class KeptAlive : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    enable_admin(config);
    config.listener.limits.idle_timeout_ms = 60'000;  // longer than any wait below
  }

  /// The refusal a kept-alive connection gets once its certificate no longer stands for it.
  static void expect_refused_and_closed(kept_alive_connection& connection, const answer& a) {
    EXPECT_EQ(a.status, 403);
    EXPECT_EQ(a.problem, "certificate-not-accepted");
    EXPECT_FALSE(a.keep_alive);
    EXPECT_TRUE(connection.wait_for_close());
  }

  /// A certificate naming `uri`, valid from five minutes ago until `not_after`.
  cli::client_tls short_lived(const std::string& name, const std::string& uri,
                              std::chrono::system_clock::time_point not_after,
                              const identity::cert_authority* ca = nullptr) {
    identity::certificate_request req;
    req.common_name = name;
    req.san_uris = {uri};
    req.not_after = not_after;
    return make_client(name, req, ca);
  }
};

// The pin was all that named the partner: the partner stays enabled and the certificate
// unrevoked, so only deciding on the certificate again finds that it names no one now. The idle
// connection is closed at the change, not at its next request.
TEST_F(KeptAlive, APinRemovedClosesTheIdleConnectionAtTheChange) {
  identity::certificate_request req;
  req.common_name = "ratanakiri gateway";  // no partner URI: known by its pin alone
  const auto tls = make_client("pinned", req);
  const auto fingerprint = identity::sha256_fingerprint_of_pem(read_file(tls.cert));
  const std::string partner =
      R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH")";
  auto r = admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri",
                 partner + R"(,"pinnedSha256":[")" + fingerprint + R"("]})");
  ASSERT_EQ(r.status, 200) << r.body;

  kept_alive_connection connection(tls, port_);
  ASSERT_EQ(connection.request("/healthz").status, 200);
  kept_alive_connection other(partner_client("vn-gialai"), port_);
  ASSERT_EQ(other.request("/healthz").status, 200);

  r = admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri", partner + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  // The change is applied (and its connections closed) before the admin API answers.
  EXPECT_TRUE(connection.closed_within(5s)) << "still open after the pin was removed";
  EXPECT_EQ(other.request("/healthz").status, 200);  // a connection still accepted stays open

  EXPECT_EQ(get(tls, "/healthz").status, 0);  // a new handshake is refused as well
  // Its partner is still served: the SAN of its other certificate still names it.
  EXPECT_EQ(get(partner_client("kh-ratanakiri"), "/healthz").status, 200);
  const auto log = log_text();
  EXPECT_NE(log.find("open connection closed (trust-changed); certificate " + fingerprint),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("\"reason\":\"no-partner-identity\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"tls.connections_closed\""), std::string::npos) << log;
}

// A partner that pins another partner's certificate makes it name two partners: that
// certificate's open connection is closed at the change, though its own partner and its record
// are untouched.
TEST_F(KeptAlive, ACertificateMadeAmbiguousByAnotherPartnersPinIsClosedAtTheChange) {
  const auto ratanakiri = partner_client("kh-ratanakiri");
  const auto fingerprint = identity::sha256_fingerprint_of_pem(read_file(ratanakiri.cert));
  kept_alive_connection connection(ratanakiri, port_);
  ASSERT_EQ(connection.request("/healthz").status, 200);

  const auto r = admin(admin_client(), "PUT", "/admin/v1/partners/vn-gialai",
                       R"({"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN",)"
                       R"("pinnedSha256":[")" +
                           fingerprint + R"("]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(connection.closed_within(5s)) << "still open after its certificate became ambiguous";
  EXPECT_EQ(get(ratanakiri, "/healthz").status, 0);  // a new handshake decides the same
  const auto log = log_text();
  EXPECT_NE(log.find("open connection closed (trust-changed); certificate " + fingerprint),
            std::string::npos)
      << log;
}

// Revocation and disabling already closed the connections of what they refuse at the moment of
// the change (admin_test.cpp); the second request never gets an answer of service.
TEST_F(KeptAlive, ARevocationOrADisablingBetweenTwoRequestsLeavesTheSecondWithoutService) {
  const auto gialai = partner_client("vn-gialai");
  const auto fingerprint = identity::sha256_fingerprint_of_pem(read_file(gialai.cert));
  auto r = admin(admin_client(), "POST", "/admin/v1/partners/vn-gialai/certificates",
                 R"({"certificate":)" + json_pem(read_file(gialai.cert)) + "}");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto ratanakiri = partner_client("kh-ratanakiri");

  kept_alive_connection revoked(gialai, port_);
  kept_alive_connection disabled(ratanakiri, port_);
  ASSERT_EQ(revoked.request("/healthz").status, 200);
  ASSERT_EQ(disabled.request("/healthz").status, 200);
  r = admin(admin_client(), "POST", "/admin/v1/certificates/" + fingerprint + "/revoke",
            R"({"reason":"keyCompromise"})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/disable",
            R"({"reason":"laptop-stolen"})");
  ASSERT_EQ(r.status, 200) << r.body;

  for (auto* connection : {&revoked, &disabled}) {
    const auto second = connection->request("/healthz");
    EXPECT_NE(second.status, 200);
    if (second.status != 0) {  // answered before the close: then with the refusal
      EXPECT_EQ(second.status, 403);
      EXPECT_EQ(second.problem, "certificate-not-accepted");
    }
    EXPECT_TRUE(connection->wait_for_close());
  }
}

TEST_F(KeptAlive, ACertificateThatExpiresDuringTheConnectionIsRefusedAfterItsNotAfter) {
  const auto not_after = std::chrono::system_clock::now() + 4s;
  const auto tls = short_lived("gialai-short", "urn:mxgw:partner:vn-gialai", not_after);
  kept_alive_connection connection(tls, port_);
  const auto first = connection.request("/healthz");
  ASSERT_EQ(first.status, 200);
  ASSERT_TRUE(first.keep_alive);

  // X.509 times are whole seconds: wait until the notAfter second is well over.
  std::this_thread::sleep_until(not_after + 1500ms);
  expect_refused_and_closed(connection, connection.request("/healthz"));
  EXPECT_NE(log_text().find("\"reason\":\"certificate-expired\""), std::string::npos);
}

TEST_F(KeptAlive, AnAdministratorsCertificateThatExpiresDuringTheConnectionIsRefusedToo) {
  const auto not_after = std::chrono::system_clock::now() + 4s;
  const auto tls = short_lived("admin-short", "urn:mxgw:admin:alice", not_after, admin_ca_.get());
  kept_alive_connection connection(tls, gateway_->admin_port());
  const auto first = connection.request("/admin/v1/partners");
  ASSERT_EQ(first.status, 200);
  ASSERT_TRUE(first.keep_alive);

  std::this_thread::sleep_until(not_after + 1500ms);
  expect_refused_and_closed(connection, connection.request("/admin/v1/partners"));
}

class ConnectionLifetime : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    config.listener.limits.max_connection_lifetime_seconds = 2;
    config.listener.limits.idle_timeout_ms = 20'000;
  }
};

TEST_F(ConnectionLifetime, TheAnswerInProgressWhenTheLifetimeEndsIsTheLastAndSaysClose) {
  const auto opened = std::chrono::steady_clock::now();
  kept_alive_connection connection(partner_client("vn-gialai"), port_);
  const auto first = connection.request("/healthz");
  ASSERT_EQ(first.status, 200);
  ASSERT_TRUE(first.keep_alive);

  // A request begun inside the lifetime and finished after it.
  connection.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
  std::this_thread::sleep_until(opened + 3s);
  connection.send("\r\n");
  const auto last = connection.read();
  EXPECT_EQ(last.status, 200);
  EXPECT_FALSE(last.keep_alive);
  EXPECT_EQ(last.connection_header, "close");
  EXPECT_TRUE(connection.wait_for_close());
}

TEST_F(ConnectionLifetime, AnIdleConnectionIsClosedWhenItsLifetimeEnds) {
  const auto opened = std::chrono::steady_clock::now();
  kept_alive_connection connection(partner_client("vn-gialai"), port_);
  const auto first = connection.request("/healthz");
  ASSERT_EQ(first.status, 200);
  ASSERT_TRUE(first.keep_alive);
  EXPECT_TRUE(connection.wait_for_close());
  const auto open_for = std::chrono::steady_clock::now() - opened;
  EXPECT_GE(open_for, 1900ms);
  EXPECT_LT(open_for, 15s) << "closed by the idle deadline (20 s), not by the lifetime (2 s)";
}

class ConnectionLifetimeConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"}]})");
  }

  run_result check_with_lifetime(const std::string& value) {
    write_file(dir_ / "gateway.json", R"({
      "listener": {
        "port": 0,
        "limits": {"max_connection_lifetime_seconds": )" +
                                          value + R"(},
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"], "crl": ["certs/crl.pem"]}
      },
      "store": {"path": "var/mxgw.db"},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                          R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                          R"("
    })");
    return run_mxgw({"config", "check", "--config", (dir_ / "gateway.json").string()}, dir_.path());
  }

  temp_dir dir_;
};

TEST_F(ConnectionLifetimeConfig, ConfigCheckTakesASensibleLifetimeAndRefusesOthersClearly) {
  for (const std::string value : {"1", "3600", "86400"}) {
    const auto r = check_with_lifetime(value);
    EXPECT_EQ(r.exit_status, 0) << value << ": " << r.err;
  }
  for (const std::string value : {"0", "-1", "86401", "1e9", "1.5", "\"3600\"", "null"}) {
    const auto r = check_with_lifetime(value);
    EXPECT_EQ(r.exit_status, 2) << value;
    EXPECT_EQ(r.err, (dir_ / "gateway.json").string() +
                         ": /listener/limits/max_connection_lifetime_seconds: must be a whole "
                         "number from 1 to 86400\n")
        << value;
  }
}

}  // namespace
}  // namespace mxgw::test
