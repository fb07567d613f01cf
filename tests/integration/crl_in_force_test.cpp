// The CRLs in force decide on every connection, not only those of its handshake: a kept-alive
// connection is refused once the CRL its certificate was checked against has passed its
// nextUpdate and no current one has replaced it (an idle one is closed at that time, on either
// listener), a reload closes the open connections whose
// certificate its CRLs list (not another issuer's with the same serial) or that a CRL already
// past its nextUpdate covers, and a handshake under way when a reload puts new CRLs in force is
// checked against them as it completes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/store/store_test_helpers.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;

// A CRL of `ca` listing `serials`, in force from a minute ago until `next_update` (made with
// OpenSSL itself: cert_authority's CRLs last whole hours).
std::string crl_until(const identity::cert_authority& ca,
                      std::chrono::system_clock::time_point next_update,
                      const std::vector<std::string>& serials = {}) {
  const std::string cert_pem = ca.cert_pem();
  const std::string key_pem = ca.key_pem();
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), &X509_CRL_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(
      ASN1_TIME_set(nullptr,
                    std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - 1min)),
      &ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(
      ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(next_update)), &ASN1_TIME_free);
  bool ok = cert && key && crl && last && next && X509_CRL_set_version(crl.get(), 1) == 1 &&
            X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert.get())) == 1 &&
            X509_CRL_set1_lastUpdate(crl.get(), last.get()) == 1 &&
            X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1;
  for (const auto& serial : serials) {
    BIGNUM* bn = nullptr;
    X509_REVOKED* entry = X509_REVOKED_new();
    ASN1_INTEGER* number = nullptr;
    ok = ok && entry != nullptr && BN_hex2bn(&bn, serial.c_str()) > 0 &&
         (number = BN_to_ASN1_INTEGER(bn, nullptr)) != nullptr &&
         X509_REVOKED_set_serialNumber(entry, number) == 1 &&
         X509_REVOKED_set_revocationDate(entry, last.get()) == 1 &&
         X509_CRL_add0_revoked(crl.get(), entry) == 1;
    if (ok) {
      entry = nullptr;  // the CRL's now
    }
    X509_REVOKED_free(entry);
    ASN1_INTEGER_free(number);
    BN_free(bn);
  }
  ok = ok && X509_CRL_sort(crl.get()) == 1 && X509_CRL_sign(crl.get(), key.get(), EVP_sha256()) > 0;
  std::string out;
  if (ok) {
    std::unique_ptr<BIO, decltype(&BIO_free)> mem(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509_CRL(mem.get(), crl.get());
    char* data = nullptr;
    const long size = BIO_get_mem_data(mem.get(), &data);
    out.assign(data, static_cast<std::size_t>(size));
  }
  EXPECT_FALSE(out.empty()) << "could not make the CRL";
  return out;
}

// A partner's TLS client (OpenSSL on a plain socket) whose handshake is held before its last
// flight: the gateway has accepted the connection and sent its own flight, and gets the client's
// certificate only when finish() sends it. Every wait gives up after ten seconds.
class held_handshake {
 public:
  held_handshake(const cli::client_tls& tls, std::uint16_t port)
      : ctx_(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free) {
    SSL_CTX* ctx = ctx_.get();
    if (SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      ADD_FAILURE() << "cannot load the client's certificate";
      return;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    socket_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ADD_FAILURE() << "cannot connect";
      return;
    }
    ssl_ = SSL_new(ctx);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, in_, out_);  // the SSL owns both now
    SSL_set_connect_state(ssl_);
    // ClientHello out, the gateway's flight in, until the client's own last flight is ready.
    for (;;) {
      const int r = SSL_do_handshake(ssl_);
      if (r == 1) {
        break;  // TLS 1.3: Certificate, CertificateVerify and Finished wait in out_
      }
      if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
        ADD_FAILURE() << "the handshake failed on the client's side";
        return;
      }
      send_pending();
      if (!receive()) {
        ADD_FAILURE() << "the gateway closed the connection in the handshake";
        return;
      }
    }
  }
  ~held_handshake() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
    }
    if (socket_ >= 0) {
      ::close(socket_);
    }
  }
  held_handshake(const held_handshake&) = delete;
  held_handshake& operator=(const held_handshake&) = delete;

  /// Sends the client's last flight: the gateway verifies its certificate now.
  void finish() { send_pending(); }

  /// True when the gateway closes the connection within `limit`, with no request sent.
  bool closed_within(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd readable{socket_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&readable, 1, static_cast<int>(left.count())) <= 0) {
        return false;
      }
      char buffer[4096];
      if (::recv(socket_, buffer, sizeof buffer, 0) <= 0) {
        return true;  // end of stream or reset
      }
    }
  }

  /// One GET of `target`; the answer's first line, "" when the connection was closed instead.
  std::string healthz(const std::string& target = "/healthz") {
    return send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n") ? answer() : "";
  }

  /// Sends `text` (a request, or part of one); false when the connection is gone.
  bool send(std::string_view text) {
    if (ssl_ == nullptr || SSL_write(ssl_, text.data(), static_cast<int>(text.size())) <= 0) {
      return false;
    }
    send_pending();
    return true;
  }

  /// Reads one answer; its first line, "" when the connection was closed instead.
  std::string answer() {
    // The whole answer is read (head and Content-Length bytes), so the next one starts clean.
    std::string answer;
    for (;;) {
      if (const auto head = answer.find("\r\n\r\n"); head != std::string::npos) {
        constexpr std::string_view field = "Content-Length: ";
        const auto at = answer.find(field);
        const std::size_t length =
            at == std::string::npos || at > head ? 0 : std::stoul(answer.substr(at + field.size()));
        if (answer.size() >= head + 4 + length) {
          return answer.substr(0, answer.find("\r\n"));
        }
      }
      char buffer[4096];
      const int n = SSL_read(ssl_, buffer, sizeof buffer);
      if (n > 0) {
        answer.append(buffer, static_cast<std::size_t>(n));
      } else if (SSL_get_error(ssl_, n) != SSL_ERROR_WANT_READ || !receive()) {
        return {};
      }
    }
  }

 private:
  void send_pending() {
    char buffer[16384];
    for (int n; (n = BIO_read(out_, buffer, sizeof buffer)) > 0;) {
      for (int sent = 0; sent < n;) {
        const auto r =
            ::send(socket_, buffer + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
        if (r <= 0) {
          return;  // closed by the gateway: the next read says so
        }
        sent += static_cast<int>(r);
      }
    }
  }

  bool receive() {
    pollfd readable{socket_, POLLIN, 0};
    if (::poll(&readable, 1, 10'000) <= 0) {
      return false;
    }
    char buffer[16384];
    const auto n = ::recv(socket_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      return false;
    }
    BIO_write(in_, buffer, static_cast<int>(n));
    return true;
  }

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  int socket_ = -1;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
};

// One mutual-TLS connection kept alive across requests, with a plain socket under it so that
// every wait can be bounded.
class kept_connection {
 public:
  kept_connection(const cli::client_tls& tls, std::uint16_t port) : held_(tls, port) {
    held_.finish();
  }
  std::string healthz(const std::string& target = "/healthz") { return held_.healthz(target); }
  bool send(std::string_view text) { return held_.send(text); }
  std::string answer() { return held_.answer(); }
  /// True when the gateway closes the connection within `limit`, with no request sent.
  bool closed_within(std::chrono::milliseconds limit) { return held_.closed_within(limit); }

 private:
  held_handshake held_;
};

class CrlInForce : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    config.listener.limits.idle_timeout_ms = 60'000;  // longer than any wait below
    config.listener.limits.header_timeout_ms = 60'000;
  }

  /// The first log line holding every one of `parts` ("" when none does).
  std::string log_line_with(const std::vector<std::string>& parts) const {
    for (const auto& line : lines_of(log_text())) {
      if (std::all_of(parts.begin(), parts.end(),
                      [&line](const auto& part) { return line.find(part) != std::string::npos; })) {
        return line;
      }
    }
    return {};
  }

  /// A valid certificate of vn-gialai written to NAME.pem/.key, with its serial.
  std::pair<cli::client_tls, std::string> gialai_with_serial(const std::string& name) {
    identity::certificate_request req;
    req.common_name = "vn-gialai";
    req.san_uris = {"urn:mxgw:partner:vn-gialai"};
    const auto issued = ca_->issue(req);
    write_file(dir_ / (name + ".pem"), issued.cert_pem);
    identity::write_file_with_mode(dir_ / (name + ".key"), issued.key_pem, 0600);
    return {{dir_ / "ca.pem", dir_ / (name + ".pem"), dir_ / (name + ".key")}, issued.serial_hex};
  }

  /// Puts `crl` in force by a reload, as SIGHUP does.
  void reload_with(const std::string& crl) {
    write_file(dir_ / "crl.pem", crl);
    const auto problems = gateway_->reload();
    ASSERT_TRUE(problems.empty()) << problems.front().reason;
  }
};

// Two partner CAs, each with its own CRL file: ca_ (crl.pem) issues Gia Lai's certificates, the
// second (second-crl.pem, current) Ratanakiri's.
class CrlInForceTwoIssuers : public CrlInForce {
 protected:
  void configure(config::gateway_config& config) override {
    CrlInForce::configure(config);
    const auto now = std::chrono::system_clock::now();
    second_ca_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
        "mxgw second test CA", now - std::chrono::hours(1), now + std::chrono::hours(24 * 30)));
    write_file(dir_ / "second-ca.pem", second_ca_->cert_pem());
    write_file(dir_ / "second-crl.pem", second_ca_->make_crl({}));
    config.listener.tls.partner_cas.push_back(dir_ / "second-ca.pem");
    config.listener.tls.crls.push_back(dir_ / "second-crl.pem");
  }

  /// A valid certificate of kh-ratanakiri from the second CA, written to NAME.pem/.key; with the
  /// serial `serial_hex` when given.
  cli::client_tls ratanakiri_from_second_ca(const std::string& name,
                                            const std::string& serial_hex = {}) {
    identity::certificate_request req;
    req.common_name = "kh-ratanakiri";
    req.san_uris = {"urn:mxgw:partner:kh-ratanakiri"};
    return serial_hex.empty() ? make_client(name, req, second_ca_.get())
                              : make_client_with_serial(name, req, serial_hex, second_ca_.get());
  }

  std::unique_ptr<identity::cert_authority> second_ca_;
};

// The handshake was made while the CRL was current; a new handshake after its nextUpdate is
// refused, and so is the kept-alive connection's next request. Its head is under way at the
// nextUpdate (an idle connection is closed then instead: below), so the request's own check
// decides.
TEST_F(CrlInForce, AKeptAliveConnectionIsRefusedOnceItsCrlHasPassedItsNextUpdate) {
  const auto next_update = std::chrono::system_clock::now() + 3s;
  reload_with(crl_until(*ca_, next_update));
  kept_connection connection(partner_client("vn-gialai"), port_);
  ASSERT_EQ(connection.healthz(), "HTTP/1.1 200 OK");
  ASSERT_TRUE(connection.send("GET /healthz HTTP/1.1\r\n"));

  // X.509 times are whole seconds: wait until the nextUpdate second is well over.
  std::this_thread::sleep_until(next_update + 1500ms);
  ASSERT_TRUE(connection.send("Host: localhost\r\n\r\n"));
  EXPECT_EQ(connection.answer(), "HTTP/1.1 403 Forbidden");
  EXPECT_EQ(connection.healthz(), "");  // and closed
  const auto log = log_text();
  EXPECT_NE(log.find("\"reason\":\"crl-expired\""), std::string::npos) << log;
  EXPECT_NE(log.find("kept-alive connection; certificate"), std::string::npos) << log;
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 0);  // as a new handshake
}

// What counts is the CRL in force: one put in force before the old one passed its nextUpdate
// keeps the connection served. (One put in force after it comes too late for an idle
// connection: it was closed at the nextUpdate.)
TEST_F(CrlInForce, ACurrentCrlPutInForceBeforeTheOldOnePassedKeepsTheConnectionServed) {
  const auto next_update = std::chrono::system_clock::now() + 3s;
  reload_with(crl_until(*ca_, next_update));
  kept_connection renewed_before(partner_client("vn-gialai"), port_);
  ASSERT_EQ(renewed_before.healthz(), "HTTP/1.1 200 OK");
  reload_with(ca_->make_crl({}));
  std::this_thread::sleep_until(next_update + 1500ms);
  EXPECT_EQ(renewed_before.healthz(), "HTTP/1.1 200 OK");
  EXPECT_EQ(renewed_before.healthz(), "HTTP/1.1 200 OK");
}

// A newer CRL that lists the certificate, put in force while the first is still current, closes
// the idle connection at the reload.
TEST_F(CrlInForce, ANewerCrlListingTheCertificateClosesTheConnectionAtTheReload) {
  const auto [tls, serial] = gialai_with_serial("listed");
  reload_with(crl_until(*ca_, std::chrono::system_clock::now() + 1h));
  kept_connection connection(tls, port_);
  ASSERT_EQ(connection.healthz(), "HTTP/1.1 200 OK");
  reload_with(ca_->make_crl({{serial}}));
  const auto log = log_text();
  EXPECT_NE(log.find("open connection closed (crl-reloaded)"), std::string::npos) << log;
  EXPECT_NE(log.find("\"reason\":\"certificate-revoked-crl\""), std::string::npos) << log;
  EXPECT_EQ(connection.healthz(), "");
}

// The gateway accepted the connection (and so took the CRLs then in force for its handshake)
// before the reload; the client's certificate arrives after it. The handshake passes against the
// old CRL, but no request is served on it: the new CRL lists the certificate.
TEST_F(CrlInForce, AHandshakeUnderWayAtAReloadIsCheckedAgainstTheNewCrlBeforeItsFirstRequest) {
  const auto [tls, serial] = gialai_with_serial("in-flight");
  held_handshake connection(tls, port_);
  held_handshake unlisted(partner_client("kh-ratanakiri"), port_);
  reload_with(ca_->make_crl({{serial}}));
  connection.finish();
  unlisted.finish();
  const auto first = connection.healthz();
  EXPECT_TRUE(first.empty() || first == "HTTP/1.1 403 Forbidden") << first;
  EXPECT_EQ(unlisted.healthz(), "HTTP/1.1 200 OK");  // the others' handshakes go through
  const auto log = log_text();
  EXPECT_NE(log.find("\"reason\":\"certificate-revoked-crl\""), std::string::npos) << log;
  EXPECT_EQ(get(tls, "/healthz").status, 0);
}

// The same, with no request sent: the connection is closed as its handshake completes, not left
// open until a request comes.
TEST_F(CrlInForce, AHandshakeUnderWayAtAReloadIsClosedAsItCompletesWhenTheNewCrlListsIt) {
  const auto [tls, serial] = gialai_with_serial("in-flight");
  held_handshake connection(tls, port_);
  reload_with(ca_->make_crl({{serial}}));
  connection.finish();
  EXPECT_TRUE(connection.closed_within(5s)) << "left open after its handshake";
  const auto log = log_text();
  EXPECT_NE(log.find("\"reason\":\"certificate-revoked-crl\""), std::string::npos) << log;
}

// A reload that puts in force a CRL already past its nextUpdate closes at once the idle
// connections of its issuer's certificates (crl-expired), as their next request would be
// refused; a connection of another issuer, whose CRL is current, stays open and served.
TEST_F(CrlInForceTwoIssuers, AStaleCrlPutInForceByAReloadClosesItsIssuersIdleConnectionsAtOnce) {
  kept_connection stale_issuer(partner_client("vn-gialai"), port_);
  ASSERT_EQ(stale_issuer.healthz(), "HTTP/1.1 200 OK");
  kept_connection current_issuer(ratanakiri_from_second_ca("ratanakiri"), port_);
  ASSERT_EQ(current_issuer.healthz(), "HTTP/1.1 200 OK");

  reload_with(crl_until(*ca_, std::chrono::system_clock::now() - 10s));
  EXPECT_TRUE(stale_issuer.closed_within(5s)) << "left open until its next request";
  const auto line = log_line_with({"\"event\":\"tls.client_refused\"", "\"reason\":\"crl-expired\"",
                                   "open connection closed (crl-reloaded)"});
  EXPECT_NE(line.find("\"partner\":\"vn-gialai\""), std::string::npos) << log_text();
  EXPECT_EQ(current_issuer.healthz(), "HTTP/1.1 200 OK");
  EXPECT_EQ(get(ratanakiri_from_second_ca("ratanakiri-new"), "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 0);  // as a new handshake
  EXPECT_NE(log_line_with({"config.reloaded", "1 open connections refused by the new CRLs"}), "")
      << log_text();
  stop();  // the audit record counts it too
  store::test_helpers::raw_db db(config_.store.path);
  const std::string entry = db.text("SELECT entry FROM audit WHERE event = 'config.reloaded'");
  EXPECT_NE(entry.find(R"("connectionsClosed":"1")"), std::string::npos) << entry;
}

// A CRL lists serials of its own issuer only: at a reload, a certificate of another CA with the
// same serial keeps its open connection and is served, while the listing CA's certificate with
// that serial is closed.
TEST_F(CrlInForceTwoIssuers, ACrlListingASerialLeavesAnotherIssuersCertificateWithItOpen) {
  const auto [listed_tls, serial] = gialai_with_serial("listed");
  const auto namesake_tls = ratanakiri_from_second_ca("namesake", serial);
  kept_connection listed(listed_tls, port_);
  ASSERT_EQ(listed.healthz(), "HTTP/1.1 200 OK");
  kept_connection namesake(namesake_tls, port_);
  ASSERT_EQ(namesake.healthz(), "HTTP/1.1 200 OK");

  reload_with(ca_->make_crl({{serial}}));
  EXPECT_TRUE(listed.closed_within(5s)) << "the listed certificate was left open";
  EXPECT_EQ(namesake.healthz(), "HTTP/1.1 200 OK");
  EXPECT_EQ(namesake.healthz(), "HTTP/1.1 200 OK");  // still kept alive
  EXPECT_EQ(get(namesake_tls, "/healthz").status, 200);
  EXPECT_EQ(get(listed_tls, "/healthz").status, 0);
  EXPECT_EQ(
      log_line_with({"\"reason\":\"certificate-revoked-crl\"", "\"partner\":\"kh-ratanakiri\""}),
      "")
      << log_text();
}

// A CRL in force that passes its nextUpdate while the gateway runs closes, at that time and with
// no request sent, the idle kept-alive connections it covers (crl-expired), as their next request
// would be refused; a connection of another issuer, whose CRL is current, stays open and served.
TEST_F(CrlInForceTwoIssuers, ACrlPassingItsNextUpdateClosesItsIssuersIdleConnectionsThen) {
  const auto next_update = std::chrono::system_clock::now() + 3s;
  reload_with(crl_until(*ca_, next_update));
  kept_connection expiring(partner_client("vn-gialai"), port_);
  ASSERT_EQ(expiring.healthz(), "HTTP/1.1 200 OK");
  kept_connection current_issuer(ratanakiri_from_second_ca("ratanakiri"), port_);
  ASSERT_EQ(current_issuer.healthz(), "HTTP/1.1 200 OK");

  // Well before the idle timeout (60 s): only the nextUpdate can close it.
  EXPECT_TRUE(expiring.closed_within(30s)) << "left open until its next request";
  EXPECT_GE(std::chrono::system_clock::now(), next_update - 1s);  // whole seconds in the CRL
  const auto line = log_line_with({"\"event\":\"tls.client_refused\"", "\"reason\":\"crl-expired\"",
                                   "idle kept-alive connection closed"});
  EXPECT_NE(line.find("\"partner\":\"vn-gialai\""), std::string::npos) << log_text();
  EXPECT_EQ(current_issuer.healthz(), "HTTP/1.1 200 OK");
  EXPECT_EQ(current_issuer.healthz(), "HTTP/1.1 200 OK");  // still kept alive
  // A new connection is refused too: in its handshake, or at its first request when OpenSSL's
  // coarse clock still read the second before the nextUpdate.
  const int refused = get(partner_client("vn-gialai"), "/healthz").status;
  EXPECT_TRUE(refused == 0 || refused == 403) << refused;
  EXPECT_EQ(log_line_with({"\"reason\":\"crl-expired\"", "\"partner\":\"kh-ratanakiri\""}), "")
      << log_text();
}

// An idle connection whose decision rested on a CRL passing its nextUpdate is decided on again
// then, and stays open when a current CRL of its issuer is in force beside it. The other issuer's
// only CRL passes at the same time: its connection's close shows the decisions were made.
TEST_F(CrlInForceTwoIssuers, AnIdleConnectionWithACurrentCrlOfItsIssuerBesideStaysOpen) {
  const auto next_update = std::chrono::system_clock::now() + 3s;
  write_file(dir_ / "second-crl.pem", crl_until(*second_ca_, next_update));
  reload_with(crl_until(*ca_, next_update) + ca_->make_crl({}));
  kept_connection renewed(partner_client("vn-gialai"), port_);
  ASSERT_EQ(renewed.healthz(), "HTTP/1.1 200 OK");
  kept_connection expiring(ratanakiri_from_second_ca("ratanakiri"), port_);
  ASSERT_EQ(expiring.healthz(), "HTTP/1.1 200 OK");

  EXPECT_TRUE(expiring.closed_within(30s)) << "left open until its next request";
  EXPECT_EQ(renewed.healthz(), "HTTP/1.1 200 OK");
  EXPECT_EQ(log_line_with({"\"reason\":\"crl-expired\"", "\"partner\":\"vn-gialai\""}), "")
      << log_text();
}

// The admin listener is the same server: an administrator's idle connection is closed when the
// admin CRL in force passes its nextUpdate.
class CrlInForceAdmin : public CrlInForce {
 protected:
  void configure(config::gateway_config& config) override {
    CrlInForce::configure(config);
    enable_admin(config);
    config.admin.listener.limits.idle_timeout_ms = 60'000;
    write_file(dir_ / "admin-crl.pem", admin_ca_->make_crl({}));
    config.admin.listener.tls.crls = {dir_ / "admin-crl.pem"};
  }
};

TEST_F(CrlInForceAdmin, AnAdminCrlPassingItsNextUpdateClosesTheIdleAdminConnectionThen) {
  const auto next_update = std::chrono::system_clock::now() + 3s;
  write_file(dir_ / "admin-crl.pem", crl_until(*admin_ca_, next_update));
  const auto problems = gateway_->reload();
  ASSERT_TRUE(problems.empty()) << problems.front().reason;
  held_handshake connection(admin_client(), gateway_->admin_port());
  connection.finish();
  ASSERT_EQ(connection.healthz("/metrics"), "HTTP/1.1 200 OK");
  kept_connection partner(partner_client("vn-gialai"), port_);
  ASSERT_EQ(partner.healthz(), "HTTP/1.1 200 OK");

  EXPECT_TRUE(connection.closed_within(30s)) << "left open until its next request";
  EXPECT_NE(log_line_with({"\"event\":\"tls.client_refused\"", "\"reason\":\"crl-expired\"",
                           "idle kept-alive connection closed", "alice"}),
            "")
      << log_text();
  // A new connection is refused too: in its handshake, or at its first request when OpenSSL's
  // coarse clock still read the second before the nextUpdate.
  const int refused = admin(admin_client("bob"), "GET", "/metrics").status;
  EXPECT_TRUE(refused == 0 || refused == 403) << refused;
  EXPECT_EQ(partner.healthz(), "HTTP/1.1 200 OK");  // the partner listener's CRL is current
}

// The admin listener goes through the same reload: an admin CRL already past its nextUpdate
// closes the idle admin connections it covers at the reload, while the partner listener, whose
// CRL is current, keeps its own.
TEST_F(CrlInForceAdmin, AStaleAdminCrlPutInForceByAReloadClosesTheIdleAdminConnectionAtOnce) {
  held_handshake connection(admin_client(), gateway_->admin_port());
  connection.finish();
  ASSERT_EQ(connection.healthz("/metrics"), "HTTP/1.1 200 OK");
  kept_connection partner(partner_client("vn-gialai"), port_);
  ASSERT_EQ(partner.healthz(), "HTTP/1.1 200 OK");

  write_file(dir_ / "admin-crl.pem", crl_until(*admin_ca_, std::chrono::system_clock::now() - 10s));
  const auto problems = gateway_->reload();
  ASSERT_TRUE(problems.empty()) << problems.front().reason;
  EXPECT_TRUE(connection.closed_within(5s)) << "left open until its next request";
  EXPECT_NE(log_line_with({"\"event\":\"tls.client_refused\"", "\"reason\":\"crl-expired\"",
                           "open connection closed (crl-reloaded)"}),
            "")
      << log_text();
  EXPECT_EQ(admin(admin_client("bob"), "GET", "/metrics").status, 0);  // as a new handshake
  EXPECT_EQ(partner.healthz(), "HTTP/1.1 200 OK");
}

}  // namespace
}  // namespace mxgw::test
