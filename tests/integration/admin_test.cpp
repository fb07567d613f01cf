// The admin listener and API over real mutual TLS: who gets service on which port, live
// revocation and rotation, CSR enrolment checks, expiring lists, persistence and export.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/cli/open_store.hpp"
#include "gateway/common/json.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/store/store_backends.hpp"

namespace mxgw::test {
namespace {

using namespace std::chrono_literals;

// The private key of the last CSR make_csr() made (the test keeps it to connect with).
std::string& last_csr_key() {
  static std::string key;
  return key;
}

// A PEM CSR for a fresh key of `key_type` ("EC" with `curve`, or "RSA" with `bits`), asking for
// the SAN URIs given.
std::string make_csr(const std::string& key_type, const std::string& curve_or_bits,
                     const std::vector<std::string>& uris = {}) {
  EVP_PKEY* key = key_type == "RSA"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA",
                                          static_cast<size_t>(std::stoul(curve_or_bits)))
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve_or_bits.c_str());
  EXPECT_NE(key, nullptr);
  X509_REQ* req = X509_REQ_new();
  X509_NAME* name = X509_REQ_get_subject_name(req);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("partner"), -1, -1, 0);
  if (!uris.empty()) {
    std::string value;
    for (const auto& uri : uris) {
      value += (value.empty() ? "URI:" : ",URI:") + uri;
    }
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str());
    sk_X509_EXTENSION_push(exts, ext);
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_set_pubkey(req, key);
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  const long key_size = BIO_get_mem_data(key_bio, &data);
  last_csr_key() = std::string(data, static_cast<std::size_t>(key_size));
  BIO_free(key_bio);
  BIO_free(bio);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return pem;
}

std::string json_string(const std::string& text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  return buffer.GetString();
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  return doc;
}

class Admin : public gateway_fixture {
 protected:
  void configure(config::gateway_config& config) override {
    enable_admin(config);
    options_.clock = [this] { return std::chrono::system_clock::now() + clock_offset_.load(); };
  }

  // Enrols a CSR for `partner` and writes the certificate and key as NAME.pem/NAME.key.
  cli::client_tls enrol(const std::string& partner, const std::string& name,
                        const std::string& route = "certificates", const std::string& extra = {}) {
    const auto csr = make_csr("EC", "P-256");
    const auto key = last_csr_key();
    auto r = admin(admin_client(), "POST", "/admin/v1/partners/" + partner + "/" + route,
                   R"({"csr":)" + json_string(csr) + extra + "}");
    EXPECT_EQ(r.status, 201) << r.body << r.error;
    auto doc = parse(r.body);
    write_file(dir_ / (name + ".pem"), doc["certificate"].GetString());
    identity::write_file_with_mode(dir_ / (name + ".key"), key, 0600);
    last_fingerprint_ = doc["record"]["fingerprint"].GetString();
    return {dir_ / "ca.pem", dir_ / (name + ".pem"), dir_ / (name + ".key")};
  }

  // Two instances on this test's store: this gateway (B, polling every 100 ms) and a second one
  // (A) polling every `a_poll`. Before A's first poll, a certificate is revoked through B and then
  // a partner is disabled through A, so A's own change has the higher state version; A must still
  // apply B's revocation at its next poll.
  void another_instances_earlier_change_is_not_skipped();

  // A certificate made offline by the partner CA (as `mxgw certs issue` does, notBefore five
  // minutes back), `age` ago: named by its partner SAN when `partner` is given, else by nothing
  // but a pin; the gateway has no record of it.
  cli::client_tls offline(const std::string& name, const std::string& partner = {},
                          std::chrono::system_clock::duration age = {}) {
    identity::certificate_request req;
    req.common_name = name;
    req.not_before = std::chrono::system_clock::now() - std::chrono::minutes(5) - age;
    if (!partner.empty()) {
      req.san_uris = {"urn:mxgw:partner:" + partner};
    }
    return make_client(name, req);
  }

  static std::string fingerprint_of(const cli::client_tls& tls) {
    return identity::sha256_fingerprint_of_pem(read_file(tls.cert));
  }

  // The state items of `kind` in this test's store, read with a connection of the test's own.
  std::vector<store::state_item> stored_items(const std::string& kind) {
    auto store = cli::open_configured_store(config_.store);
    std::promise<std::vector<store::state_item>> done;
    store->list_state(kind, 0, [&](std::vector<store::state_item> items, bool ok) {
      EXPECT_TRUE(ok);
      done.set_value(std::move(items));
    });
    auto items = done.get_future().get();
    store->stop();
    return items;
  }

  // A rotation whose last item (an earlier certificate made retiring) conflicts with a change
  // another instance stored meanwhile stores nothing: no new certificate, no cut-off.
  void rotation_conflicting_part_way_stores_nothing();

  // A rotation with no overlap through this instance: the certificates of the partner from
  // before it are refused at once here, by another instance sharing the store (its poller) and
  // after a restart; the new one and one issued after it keep working.
  void cut_off_reaches_other_instances_and_survives_restart();

  // A pin from before a rotation registered again after it: exempt from the cut-off here by its
  // record's time, and on a gateway rebuilt from the export (a fresh store) by the cut-off's
  // recordedSince, also across a later rotation there and a restart.
  void a_pin_registered_again_after_a_rotation_is_exported_as_such();

  // Points this test's store at a fresh one, for a gateway rebuilt from an export.
  virtual void use_rebuilt_store() { config_.store.path = dir_ / "rebuilt" / "mxgw.db"; }

  // Restarts this test's gateway as a new deployment from an export's files alone, on a fresh
  // store: the partners file (which must load without a problem) and, when given, the routing.
  void rebuild_from_export(const std::string& partners_text,
                           const rapidjson::Value* routing = nullptr) {
    write_file(dir_ / "rebuilt-partners.json", partners_text);
    std::vector<identity::config_problem> problems;
    identity::partner_registry::load(dir_ / "rebuilt-partners.json", problems);
    ASSERT_TRUE(problems.empty()) << problems.front().field << ": " << problems.front().reason;
    config_.partners_file = dir_ / "rebuilt-partners.json";
    if (routing != nullptr) {
      write_file(dir_ / "rebuilt-routing.json", json::to_string(*routing));
      config_.routing_file = dir_ / "rebuilt-routing.json";
    }
    use_rebuilt_store();
    restart();
  }

  // The entry of partner `id` in an export's partners file (nullptr when there is none).
  static const rapidjson::Value* exported_partner(const rapidjson::Document& exported,
                                                  const std::string& id) {
    for (const auto& p : exported["partners"]["partners"].GetArray()) {
      if (std::string(p["id"].GetString()) == id) {
        return &p;
      }
    }
    return nullptr;
  }

  std::atomic<std::chrono::system_clock::duration> clock_offset_{};
  std::string last_fingerprint_;
};

void Admin::cut_off_reaches_other_instances_and_survives_restart() {
  const auto before = offline("rata-offline", "kh-ratanakiri", 1h);
  auto other_config = config_;
  other_config.listener.port = 0;
  other_config.admin.listener.port = 0;
  other_config.delivery.instance = "mxgw-b";
  cli::gateway_instance other(other_config);
  std::thread other_thread([&] { other.run(); });
  const auto on_other = [&](const cli::client_tls& tls) {
    return cli::https_request("localhost", other.port(), tls, "GET", "/healthz").status;
  };
  ASSERT_EQ(on_other(before), 200);
  std::string error;
  auto connection = cli::https_connection::open("localhost", other.port(), before, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);

  const auto rotated =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":0)");
  const auto after = offline("rata-offline-after", "kh-ratanakiri");
  EXPECT_EQ(get(before, "/healthz").status, 0) << "the overlap was 0 days";
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(after, "/healthz").status, 200);
  EXPECT_TRUE(eventually([&] { return on_other(before) == 0; }))
      << "the other instance still accepts a certificate from before the rotation";
  EXPECT_TRUE(eventually([&] { return on_other(rotated) == 200; }));
  EXPECT_EQ(on_other(after), 200);
  EXPECT_TRUE(eventually([&] { return connection->request("GET", "/healthz").status == 0; }))
      << "its open connection on the other instance still answers";
  EXPECT_EQ(on_other(partner_client("vn-gialai")), 200);  // others unaffected
  other.stop();
  other_thread.join();

  restart();
  EXPECT_EQ(get(before, "/healthz").status, 0);
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(after, "/healthz").status, 200);
}

void Admin::another_instances_earlier_change_is_not_skipped() {
  // A certificate enrolled through B before A starts: A loads it with the persisted state.
  const auto tls = enrol("vn-gialai", "gialai-enrolled");
  const auto fingerprint = last_fingerprint_;

  // A polls seldom, so that the interleaving below happens before its first poll; its poll
  // timer starts when it is constructed.
  constexpr auto a_poll = 3s;
  auto a_config = config_;
  a_config.listener.port = 0;
  a_config.admin.listener.port = 0;
  a_config.admin.state_poll_ms = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(a_poll).count());
  a_config.delivery.instance = "mxgw-a";
  const auto a_started = std::chrono::steady_clock::now();
  cli::gateway_instance a(a_config);
  std::thread a_thread([&] { a.run(); });
  const auto on_a = [&](const cli::client_tls& client) {
    return cli::https_request("localhost", a.port(), client, "GET", "/healthz").status;
  };
  ASSERT_EQ(on_a(tls), 200);

  // B revokes the certificate (state version n); A disables another partner (version n + 1)
  // and applies its own change at once.
  auto r = admin(admin_client(), "POST", "/admin/v1/certificates/" + fingerprint + "/revoke",
                 R"({"reason":"keyCompromise"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(get(tls, "/healthz").status, 0);  // B enforces its own change at once
  r = cli::https_request("localhost", a.admin_port(), admin_client(), "POST",
                         "/admin/v1/partners/kh-ratanakiri/disable", R"({"reason":"test"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(on_a(partner_client("kh-ratanakiri")), 0);
  EXPECT_EQ(on_a(tls), 200) << "A has not polled yet, so it cannot know of the revocation";
  ASSERT_LT(std::chrono::steady_clock::now() - a_started, a_poll)
      << "A may have polled between the two changes; the interleaving was not tested";

  // A's next poll applies B's revocation, although A has applied a newer version of its own.
  const auto until = std::chrono::steady_clock::now() + a_poll + 10s;
  int status = on_a(tls);
  while (status != 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
    status = on_a(tls);
  }
  EXPECT_EQ(status, 0) << "A still accepts the certificate B revoked";
  auto record = cli::https_request("localhost", a.admin_port(), admin_client(), "GET",
                                   "/admin/v1/certificates/" + fingerprint);
  ASSERT_EQ(record.status, 200) << record.body;
  EXPECT_EQ(std::string(parse(record.body)["state"].GetString()), "revoked");
  EXPECT_EQ(on_a(partner_client("vn-gialai")), 200);  // others unaffected
  a.stop();
  a_thread.join();
}

TEST_F(Admin, AdminCertificateIsServedOnTheAdminPort) {
  auto r = admin(admin_client(), "GET", "/admin/v1/partners");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(parse(r.body)["partners"].Size(), 3u);
}

TEST_F(Admin, PartnerCertificateGetsNoServiceOnTheAdminPort) {
  auto r = admin(partner_client("vn-gialai"), "GET", "/admin/v1/partners");
  EXPECT_EQ(r.status, 0) << r.body;
  EXPECT_FALSE(r.error.empty());
}

TEST_F(Admin, AdminCertificateGetsNoServiceOnThePartnerPort) {
  auto r = get(admin_client(), "/healthz");
  EXPECT_EQ(r.status, 0) << r.body;
  // Even an admin identity issued by the partner CA is no partner.
  identity::certificate_request req;
  req.common_name = "sneaky";
  req.san_uris = {"urn:mxgw:admin:sneaky"};
  EXPECT_EQ(get(make_client("sneaky", req), "/healthz").status, 0);
}

TEST_F(Admin, AdminCaCertificateWithoutAdminNameGetsNoService) {
  identity::certificate_request req;
  req.common_name = "no name";
  EXPECT_EQ(admin(make_client("noname", req, admin_ca_.get()), "GET", "/admin/v1/partners").status,
            0);
  req.san_uris = {"urn:mxgw:admin:a", "urn:mxgw:admin:b"};
  EXPECT_EQ(admin(make_client("two", req, admin_ca_.get()), "GET", "/admin/v1/partners").status, 0);
}

TEST_F(Admin, EveryAdminRouteRefusesANonAdmin) {
  const auto partner = partner_client("vn-gialai");
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/admin/v1/partners"},
      {"POST", "/admin/v1/partners"},
      {"GET", "/admin/v1/partners/vn-gialai"},
      {"PUT", "/admin/v1/partners/vn-gialai"},
      {"POST", "/admin/v1/partners/vn-gialai/disable"},
      {"GET", "/admin/v1/partners/vn-gialai/certificates"},
      {"POST", "/admin/v1/partners/vn-gialai/certificates"},
      {"POST", "/admin/v1/partners/vn-gialai/certificates/rotate"},
      {"GET", "/admin/v1/certificates"},
      {"GET", "/admin/v1/certificates/expiring?days=30"},
      {"POST", "/admin/v1/certificates/" + std::string(64, 'a') + "/revoke"},
      {"GET", "/admin/v1/routing"},
      {"PUT", "/admin/v1/routing"},
      {"GET", "/admin/v1/queues"},
      {"GET", "/admin/v1/dead-letters"},
      {"POST", "/admin/v1/dead-letters/11111111-2222-4333-8444-555555555555/vn-gialai/replay"},
      {"GET", "/admin/v1/audit"},
      {"GET", "/admin/v1/export"},
      {"GET", "/admin/v1/metrics"},
      {"GET", "/metrics"}};
  for (const auto& [method, target] : routes) {
    auto r = admin(partner, method, target, "{}");
    EXPECT_EQ(r.status, 0) << method << " " << target << " answered " << r.body;
    // And on the partner port the admin routes do not exist.
    auto on_partner_port = cli::https_request("localhost", port_, partner, method, target, "{}");
    EXPECT_EQ(on_partner_port.status, 404) << target;
  }
  auto audit = admin(admin_client(), "GET", "/admin/v1/audit?event=partner.*");
  ASSERT_EQ(audit.status, 200);
  EXPECT_EQ(parse(audit.body)["entries"].Size(), 0u);  // nothing changed
}

TEST_F(Admin, RevokingClosesTheOpenConnectionAndRefusesTheNextHandshake) {
  const auto tls = enrol("vn-gialai", "gialai-enrolled");
  const auto fingerprint = last_fingerprint_;
  std::string error;
  auto connection = cli::https_connection::open("localhost", port_, tls, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);  // kept alive

  auto r = admin(admin_client(), "POST", "/admin/v1/certificates/" + fingerprint + "/revoke",
                 R"({"reason":"keyCompromise"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(std::string(parse(r.body)["state"].GetString()), "revoked");

  auto after = connection->request("GET", "/healthz");
  EXPECT_EQ(after.status, 0) << "the open connection still answered";
  EXPECT_EQ(get(tls, "/healthz").status, 0);                            // next handshake fails
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // others unaffected
  // A second revocation is refused; the audit names the revocation with metadata only.
  EXPECT_EQ(admin(admin_client(), "POST", "/admin/v1/certificates/" + fingerprint + "/revoke",
                  R"({"reason":"keyCompromise"})")
                .status,
            409);
  auto audit = admin(admin_client(), "GET", "/admin/v1/audit?event=cert.revoked");
  ASSERT_EQ(audit.status, 200);
  auto entries = parse(audit.body);
  ASSERT_EQ(entries["entries"].Size(), 1u);
  EXPECT_EQ(std::string(entries["entries"][0]["entry"]["actor"].GetString()), "admin:alice");
  // The signing directory's CRL lists it too (for restarts and other tools).
  EXPECT_TRUE(identity::certs_list(dir_ / "signing").back().revoked);
}

TEST_F(Admin, RevocationNeedsAKnownReason) {
  enrol("vn-gialai", "gialai-enrolled");
  auto r = admin(admin_client(), "POST", "/admin/v1/certificates/" + last_fingerprint_ + "/revoke",
                 R"({"reason":"because"})");
  EXPECT_EQ(r.status, 422);
  auto list = admin(admin_client(), "GET", "/admin/v1/certificates");
  EXPECT_EQ(std::string(parse(list.body)["certificates"][0]["state"].GetString()), "active");
}

TEST_F(Admin, DisablingAPartnerClosesItsConnections) {
  const auto tls = partner_client("kh-ratanakiri");
  std::string error;
  auto connection = cli::https_connection::open("localhost", port_, tls, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);
  auto r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/disable",
                 R"({"reason":"laptop-stolen"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(connection->request("GET", "/healthz").status, 0);
  EXPECT_EQ(get(tls, "/healthz").status, 0);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);
}

TEST_F(Admin, RotationKeepsBothCertificatesInsideTheOverlapAndTheOldOneFailsAfter) {
  const auto old_tls = enrol("kh-ratanakiri", "rata-old");
  const auto old_fp = last_fingerprint_;
  const auto new_tls =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":2)");
  EXPECT_EQ(get(old_tls, "/healthz").status, 200);
  EXPECT_EQ(get(new_tls, "/healthz").status, 200);
  auto old_record = admin(admin_client(), "GET", "/admin/v1/certificates/" + old_fp);
  EXPECT_EQ(std::string(parse(old_record.body)["state"].GetString()), "retiring");

  clock_offset_ = std::chrono::hours(24 * 2 + 1);  // past the overlap, without sleeping
  EXPECT_EQ(get(old_tls, "/healthz").status, 0);
  EXPECT_EQ(get(new_tls, "/healthz").status, 200);
  old_record = admin(admin_client(), "GET", "/admin/v1/certificates/" + old_fp);
  EXPECT_EQ(std::string(parse(old_record.body)["state"].GetString()), "retired");
}

TEST_F(Admin, CsrWithAWeakKeyOrAnotherPartnersNameIsRefused) {
  const auto client = admin_client();
  auto post_csr = [&](const std::string& csr) {
    return admin(client, "POST", "/admin/v1/partners/vn-gialai/certificates",
                 R"({"csr":)" + json_string(csr) + "}");
  };
  auto weak_rsa = post_csr(make_csr("RSA", "1024"));
  EXPECT_EQ(weak_rsa.status, 422) << weak_rsa.body;
  EXPECT_NE(weak_rsa.body.find("weak key"), std::string::npos);
  auto odd_curve = post_csr(make_csr("EC", "secp256k1"));
  EXPECT_EQ(odd_curve.status, 422) << odd_curve.body;
  auto other = post_csr(make_csr("EC", "P-256", {"urn:mxgw:partner:kh-ratanakiri"}));
  EXPECT_EQ(other.status, 422);
  EXPECT_NE(other.body.find("another partner"), std::string::npos);
  auto admin_name = post_csr(make_csr("EC", "P-256", {"urn:mxgw:admin:root"}));
  EXPECT_EQ(admin_name.status, 422);
  EXPECT_EQ(post_csr("-----BEGIN CERTIFICATE REQUEST-----\nxx\n").status, 422);
  // Nothing was recorded or issued.
  auto list = admin(client, "GET", "/admin/v1/certificates");
  EXPECT_EQ(parse(list.body)["certificates"].Size(), 0u);
  EXPECT_TRUE(identity::certs_list(dir_ / "signing").empty());
  // The right request is signed: RSA 2048 and P-384 are fine, naming the partner itself too.
  EXPECT_EQ(post_csr(make_csr("RSA", "2048")).status, 201);
  EXPECT_EQ(post_csr(make_csr("EC", "P-384", {"urn:mxgw:partner:vn-gialai"})).status, 201);
}

TEST_F(Admin, ExpiringListsCertificatesEndingWithinTheDays) {
  auto register_cert = [&](const std::string& name, std::chrono::hours validity) {
    identity::certificate_request req;
    req.common_name = name;
    req.san_uris = {"urn:mxgw:partner:vn-gialai"};
    req.not_after = std::chrono::system_clock::now() + validity;
    const auto issued = ca_->issue(req);
    auto r = admin(admin_client(), "POST", "/admin/v1/partners/vn-gialai/certificates",
                   R"({"certificate":)" + json_string(issued.cert_pem) + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return issued.sha256_fingerprint;
  };
  const auto soon = register_cert("soon", 24h * 10);
  const auto later = register_cert("later", 24h * 100);
  const auto sooner = register_cert("sooner", 24h * 3);
  auto r = admin(admin_client(), "GET", "/admin/v1/certificates/expiring?days=30");
  ASSERT_EQ(r.status, 200);
  auto doc = parse(r.body);
  ASSERT_EQ(doc["certificates"].Size(), 2u);
  EXPECT_EQ(std::string(doc["certificates"][0]["fingerprint"].GetString()), sooner);
  EXPECT_EQ(std::string(doc["certificates"][1]["fingerprint"].GetString()), soon);
  EXPECT_EQ(parse(admin(admin_client(), "GET", "/admin/v1/certificates/expiring?days=365")
                      .body)["certificates"]
                .Size(),
            3u);
  EXPECT_EQ(admin(admin_client(), "GET", "/admin/v1/certificates/expiring?days=-1").status, 422);
  (void)later;
}

TEST_F(Admin, RegisteredCertificateOfAnotherPartnerOrCaIsRefused) {
  identity::certificate_request req;
  req.common_name = "x";
  req.san_uris = {"urn:mxgw:partner:kh-ratanakiri"};
  const auto other = ca_->issue(req);
  auto r = admin(admin_client(), "POST", "/admin/v1/partners/vn-gialai/certificates",
                 R"({"certificate":)" + json_string(other.cert_pem) + "}");
  EXPECT_EQ(r.status, 422);
  r = admin(admin_client(), "POST", "/admin/v1/partners/vn-gialai/certificates",
            R"({"certificate":)" + json_string(ca_->cert_pem()) + "}");
  EXPECT_EQ(r.status, 422);
}

TEST_F(Admin, PinnedFingerprintIdentifiesACertificateWithoutPartnerName) {
  identity::certificate_request req;
  req.common_name = "external";
  auto tls = make_client("external", req);
  EXPECT_EQ(get(tls, "/healthz").status, 0);  // no identity yet
  const auto fp = identity::sha256_fingerprint_of_pem(read_file(tls.cert));
  auto r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates",
                 R"({"pinnedSha256":")" + fp + R"("})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(get(tls, "/healthz").status, 200);
}

TEST_F(Admin, PartnersAreCreatedUpdatedAndCheckedLikeTheFile) {
  const auto client = admin_client();
  auto created =
      admin(client, "POST", "/admin/v1/partners",
            R"({"id":"kh-stungtreng","name":"Stung Treng commissariat","country":"KH"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(get(partner_client("kh-stungtreng"), "/healthz").status, 200);  // live at once
  EXPECT_EQ(admin(client, "POST", "/admin/v1/partners",
                  R"({"id":"kh-stungtreng","name":"again","country":"KH"})")
                .status,
            409);
  auto bad = admin(client, "POST", "/admin/v1/partners",
                   R"({"id":"Bad Id","name":"","country":"Cambodia","colour":1})");
  EXPECT_EQ(bad.status, 422);
  EXPECT_EQ(parse(bad.body)["errors"].Size(), 4u) << bad.body;

  auto current = admin(client, "GET", "/admin/v1/partners/kh-stungtreng");
  const std::string etag = current.headers["etag"];
  ASSERT_FALSE(etag.empty());
  const std::string update =
      R"({"id":"kh-stungtreng","name":"Stung Treng Provincial Police","country":"KH"})";
  auto updated =
      admin(client, "PUT", "/admin/v1/partners/kh-stungtreng", update, {{"If-Match", etag}});
  ASSERT_EQ(updated.status, 200) << updated.body;
  auto stale =
      admin(client, "PUT", "/admin/v1/partners/kh-stungtreng", update, {{"If-Match", etag}});
  EXPECT_EQ(stale.status, 412);
}

// A partner's delivery timeout must leave its attempts within the delivery lease (here the default,
// two minutes, less its margin of twelve seconds): a definition through the API that does not is
// refused, at creation and at a change, and nothing changes. (Only for a partner delivered to,
// with an endpoint.)
TEST_F(Admin, APartnerTimeoutNotBelowTheDeliveryLeaseIsRefused) {
  const auto client = admin_client();
  auto created = admin(client, "POST", "/admin/v1/partners",
                       R"({"id":"kh-stungtreng","name":"Stung Treng","country":"KH",)"
                       R"("endpoint":"https://kh.example:9443/v1/messages",)"
                       R"("delivery":{"timeout_ms":108000}})");
  EXPECT_EQ(created.status, 422) << created.body;
  EXPECT_NE(created.body.find("/delivery/timeout_ms"), std::string::npos) << created.body;
  EXPECT_EQ(admin(client, "GET", "/admin/v1/partners/kh-stungtreng").status, 404);

  const auto before = admin(client, "GET", "/admin/v1/partners/kh-ratanakiri");
  ASSERT_EQ(before.status, 200);
  auto changed = admin(client, "PUT", "/admin/v1/partners/kh-ratanakiri",
                       R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                       R"("endpoint":"https://kh.example:9443/v1/messages",)"
                       R"("delivery":{"timeout_ms":600000}})");
  EXPECT_EQ(changed.status, 422) << changed.body;
  EXPECT_NE(changed.body.find("/delivery/timeout_ms"), std::string::npos) << changed.body;
  const auto after = admin(client, "GET", "/admin/v1/partners/kh-ratanakiri");
  EXPECT_EQ(after.body, before.body);
  EXPECT_EQ(after.headers.at("etag"), before.headers.at("etag"));

  auto fine = admin(client, "PUT", "/admin/v1/partners/kh-ratanakiri",
                    R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                    R"("endpoint":"https://kh.example:9443/v1/messages",)"
                    R"("delivery":{"timeout_ms":107999}})");
  EXPECT_EQ(fine.status, 200) << fine.body;
}

TEST_F(Admin, ChangesSurviveARestart) {
  const auto client = admin_client();
  ASSERT_EQ(admin(client, "POST", "/admin/v1/partners",
                  R"({"id":"kh-stungtreng","name":"Stung Treng","country":"KH"})")
                .status,
            201);
  ASSERT_EQ(admin(client, "POST", "/admin/v1/partners/kh-ratanakiri/disable").status, 200);
  const auto tls = enrol("vn-gialai", "gialai-enrolled");
  ASSERT_EQ(admin(client, "POST", "/admin/v1/certificates/" + last_fingerprint_ + "/revoke",
                  R"({"reason":"superseded"})")
                .status,
            200);
  restart();
  EXPECT_EQ(get(partner_client("kh-stungtreng"), "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("kh-ratanakiri"), "/healthz").status, 0);
  EXPECT_EQ(get(tls, "/healthz").status, 0);
  auto r = admin(admin_client(), "GET", "/admin/v1/partners/kh-ratanakiri");
  EXPECT_FALSE(parse(r.body)["definition"]["enabled"].GetBool());
}

TEST_F(Admin, ChangesByAnotherInstanceSharingTheStoreArePickedUp) {
  // A second gateway on the same SQLite file stands for another instance.
  auto other_config = config_;
  other_config.listener.port = 0;
  other_config.admin.listener.port = 0;
  cli::gateway_instance other(other_config);
  std::thread other_thread([&] { other.run(); });
  auto r = cli::https_request("localhost", other.admin_port(), admin_client(), "POST",
                              "/admin/v1/partners/vn-gialai/disable", "");
  ASSERT_EQ(r.status, 200) << r.body;
  // This instance learns it from its poller; wait for the event, not for a time.
  int status = 200;
  for (int i = 0; i < 200 && status == 200; ++i) {
    std::this_thread::sleep_for(50ms);
    status = get(partner_client("vn-gialai"), "/healthz").status;
  }
  EXPECT_EQ(status, 0);
  other.stop();
  other_thread.join();
}

TEST_F(Admin, AnotherInstancesChangeIsAppliedAfterANewerChangeOfOurOwn) {
  another_instances_earlier_change_is_not_skipped();
}

// Two instances sharing one PostgreSQL database (#7): what an administrator changes through one
// is enforced by the other within its state poll, without a restart. Skipped, visibly, only when
// MXGW_TEST_PG_DSN is unset; scripts/test.sh always starts a cluster and sets it.
class AdminOnPostgres : public Admin {
 protected:
  void SetUp() override {
    if (store::test_helpers::pg_test_dsn().empty()) {
      GTEST_SKIP() << "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
    }
    Admin::SetUp();
  }
  void TearDown() override {
    Admin::TearDown();
    if (!store::test_helpers::pg_test_dsn().empty()) {
      store::test_helpers::pg_exec("DROP SCHEMA IF EXISTS " +
                                   store::test_helpers::pg_schema_for(dir_.path()) + " CASCADE");
    }
  }
  void configure(config::gateway_config& config) override {
    Admin::configure(config);
    config.store.kind = "postgres";
    config.store.path.clear();
    config.store.dsn = store::test_helpers::pg_test_dsn();
    config.store.schema = store::test_helpers::pg_schema_for(dir_.path());
  }
  void use_rebuilt_store() override {
    rebuilt_schema_ = std::make_unique<store::test_helpers::pg_scratch_schema>(dir_ / "rebuilt");
    config_.store.schema = rebuilt_schema_->name;
  }

  std::unique_ptr<store::test_helpers::pg_scratch_schema> rebuilt_schema_;  ///< dropped last
};

TEST_F(AdminOnPostgres, RevocationThroughOneInstanceIsEnforcedByTheOther) {
  auto other_config = config_;
  other_config.listener.port = 0;
  other_config.admin.listener.port = 0;
  other_config.delivery.instance = "mxgw-b";
  cli::gateway_instance other(other_config);
  std::thread other_thread([&] { other.run(); });
  const auto on_other = [&](const cli::client_tls& tls) {
    return cli::https_request("localhost", other.port(), tls, "GET", "/healthz").status;
  };
  // Waits for the other instance's poller (bounded; no fixed sleep decides the outcome).
  const auto eventually = [](const std::function<bool()>& done) {
    for (int i = 0; i < 300; ++i) {
      if (done()) {
        return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return done();
  };

  // A certificate enrolled through this instance works on the other.
  const auto tls = enrol("vn-gialai", "gialai-enrolled");
  ASSERT_TRUE(eventually([&] { return on_other(tls) == 200; }));
  std::string error;
  auto connection = cli::https_connection::open("localhost", other.port(), tls, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);

  // Revoked through this instance: the other refuses the next handshake and closes the open
  // connection of that certificate.
  auto r = admin(admin_client(), "POST", "/admin/v1/certificates/" + last_fingerprint_ + "/revoke",
                 R"({"reason":"keyCompromise"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(eventually([&] { return on_other(tls) == 0; }))
      << "the other instance still accepts the revoked certificate";
  EXPECT_EQ(connection->request("GET", "/healthz").status, 0)
      << "the revoked certificate's open connection on the other instance still answered";
  EXPECT_EQ(on_other(partner_client("kh-ratanakiri")), 200);  // others unaffected

  // The other way round: a partner disabled through the other instance is refused here.
  r = cli::https_request("localhost", other.admin_port(), admin_client(), "POST",
                         "/admin/v1/partners/kh-ratanakiri/disable", R"({"reason":"test"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(eventually([&] { return get(partner_client("kh-ratanakiri"), "/healthz").status == 0; }));

  other.stop();
  other_thread.join();
}

TEST_F(AdminOnPostgres, AnotherInstancesChangeIsAppliedAfterANewerChangeOfOurOwn) {
  another_instances_earlier_change_is_not_skipped();
}

TEST_F(Admin, RoutingIsReplacedWithValidationAndExportRoundTrips) {
  const auto client = admin_client();
  auto bad =
      admin(client, "PUT", "/admin/v1/routing",
            R"({"rules":[{"id":"r1","match":{"types":["no.such.type"]},"add":["nobody"]}]})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  auto good = admin(
      client, "PUT", "/admin/v1/routing",
      R"({"rules":[{"id":"tips","match":{"types":["hotline.tip"]},"add":["kh-ratanakiri"]}]})");
  ASSERT_EQ(good.status, 200) << good.body;
  EXPECT_EQ(parse(good.body)["rules"].GetUint(), 1u);
  ASSERT_EQ(admin(client, "POST", "/admin/v1/partners",
                  R"({"id":"kh-stungtreng","name":"Stung Treng","country":"KH"})")
                .status,
            201);

  auto exported = admin(client, "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  auto doc = parse(exported.body);
  write_file(dir_ / "export-partners.json", json::to_string(doc["partners"]));
  write_file(dir_ / "export-routing.json", json::to_string(doc["routing"]));
  std::vector<identity::config_problem> problems;
  auto partners = identity::partner_registry::load(dir_ / "export-partners.json", problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(partners.size(), 4u);
  ASSERT_NE(partners.find("kh-stungtreng"), nullptr);
  auto checker =
      pipeline::canonical_checker::load(config_.schema_dir, config_.mappings_dir, problems);
  auto rules = pipeline::routing_rules::load(dir_ / "export-routing.json", problems, partners,
                                             checker.tables());
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(rules.size(), 1u);
}

TEST_F(Admin, MetricsAreServedAsPrometheusText) {
  get(partner_client("vn-gialai"), "/healthz");
  get(make_client("stranger",
                  [] {
                    identity::certificate_request req;
                    req.common_name = "x";
                    req.san_uris = {"urn:mxgw:partner:th-nobody"};
                    return req;
                  }()),
      "/healthz");
  auto r = admin(admin_client(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(
      r.body.find(
          "mxgw_tls_handshakes_refused_total{listener=\"partner\",reason=\"unknown-partner\"}"),
      std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("mxgw_partner_requests_total"), std::string::npos);
  EXPECT_EQ(r.body.find("mxgw_submit_duration_seconds"), std::string::npos)
      << "a latency before any submission";

  // Submissions land in the latency histogram by outcome: accepted, duplicate, refused.
  const auto gialai = partner_client("vn-gialai");
  const auto tip = example("hotline.tip", "0c4e4b58-86f4-4bb8-b1c0-8f7e3b7a2d11");
  ASSERT_EQ(post(gialai, tip).status, 202);
  ASSERT_EQ(post(gialai, tip).status, 202);
  ASSERT_EQ(post(gialai, "{not json").status, 400);
  r = admin(admin_client(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("# TYPE mxgw_submit_duration_seconds histogram\n"), std::string::npos);
  for (const char* outcome : {"accepted", "duplicate", "refused"}) {
    const std::string series = "{outcome=\"" + std::string(outcome) + "\"}";
    EXPECT_NE(r.body.find("mxgw_submit_duration_seconds_count" + series + " 1\n"),
              std::string::npos)
        << outcome << "\n"
        << r.body;
    EXPECT_NE(r.body.find("mxgw_submit_duration_seconds_bucket{outcome=\"" + std::string(outcome) +
                          "\",le=\"+Inf\"} 1\n"),
              std::string::npos)
        << outcome;
  }
}

// #1: a rotation ends every earlier certificate of the partner, not only the recorded ones.
TEST_F(Admin, RotationRetiresEveryEarlierCertificateOfThePartnerRecordedOrNot) {
  // Before: a certificate issued offline (known by its SAN, never recorded) and one known by a
  // fingerprint pinned in the partner definition.
  const auto issued_offline = offline("rata-offline", "kh-ratanakiri", 1h);
  const auto pinned = offline("rata-pinned", {}, 1h);
  auto r = admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri",
                 R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                 R"("pinnedSha256":[")" +
                     fingerprint_of(pinned) + R"("]})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(get(issued_offline, "/healthz").status, 200);
  ASSERT_EQ(get(pinned, "/healthz").status, 200);
  std::string error;
  auto connection = cli::https_connection::open("localhost", port_, issued_offline, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);

  const auto rotated =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":2)");
  // Inside the overlap every certificate works.
  EXPECT_EQ(get(issued_offline, "/healthz").status, 200);
  EXPECT_EQ(get(pinned, "/healthz").status, 200);
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  // Certificates that come after the rotation: issued offline, enrolled, pinned.
  const auto offline_after = offline("rata-offline-after", "kh-ratanakiri");
  const auto enrolled_after = enrol("kh-ratanakiri", "rata-enrolled-after");
  const auto pinned_after = offline("rata-pinned-after");
  r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates",
            R"({"pinnedSha256":")" + fingerprint_of(pinned_after) + R"("})");
  ASSERT_EQ(r.status, 201) << r.body;

  clock_offset_ = std::chrono::hours(24 * 2 + 1);  // past the overlap, without sleeping
  EXPECT_EQ(get(issued_offline, "/healthz").status, 0)
      << "a certificate issued before the rotation still identifies the partner";
  EXPECT_EQ(get(pinned, "/healthz").status, 0)
      << "a fingerprint pinned before the rotation still identifies the partner";
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(offline_after, "/healthz").status, 200);
  EXPECT_EQ(get(enrolled_after, "/healthz").status, 200);
  EXPECT_EQ(get(pinned_after, "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // others unaffected
  // The connection opened in the overlap is closed by the state poller once it has ended; one
  // opened by a certificate issued after the rotation stays open across its ticks.
  EXPECT_TRUE(eventually([&] { return connection->request("GET", "/healthz").status == 0; }));
  auto kept = cli::https_connection::open("localhost", port_, offline_after, error);
  ASSERT_NE(kept, nullptr) << error;
  for (int tick = 0; tick < 5; ++tick) {
    std::this_thread::sleep_for(150ms);  // longer than a poll interval (100 ms)
    ASSERT_EQ(kept->request("GET", "/healthz").status, 200) << "closed at tick " << tick;
  }

  // Refused in the handshake like a retired record, and counted so.
  auto metrics = admin(admin_client(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("mxgw_tls_handshakes_refused_total{listener=\"partner\",reason="
                              "\"retired-certificate\"}"),
            std::string::npos)
      << metrics.body;
  // On the audit chain with the administrator's name, metadata only.
  auto audit = admin(admin_client(), "GET", "/admin/v1/audit?event=cert.cutoff");
  ASSERT_EQ(audit.status, 200);
  auto entries = parse(audit.body);
  ASSERT_EQ(entries["entries"].Size(), 1u) << audit.body;
  const auto& entry = entries["entries"][0]["entry"];
  EXPECT_EQ(std::string(entry["actor"].GetString()), "admin:alice");
  EXPECT_EQ(std::string(entry["partner"].GetString()), "kh-ratanakiri");
}

TEST_F(Admin, RotationCutOffReachesAnotherInstanceAndSurvivesARestart) {
  cut_off_reaches_other_instances_and_survives_restart();
}

TEST_F(AdminOnPostgres, RotationCutOffReachesAnotherInstanceAndSurvivesARestart) {
  cut_off_reaches_other_instances_and_survives_restart();
}

void Admin::rotation_conflicting_part_way_stores_nothing() {
  // This instance does not poll (an hour), so it does not see what another instance stores.
  config_.admin.state_poll_ms = 3600 * 1000;
  restart();
  const auto issued_offline = offline("rata-offline", "kh-ratanakiri", 1h);
  const auto old = enrol("kh-ratanakiri", "rata-old");
  const auto old_fp = last_fingerprint_;
  // Another instance revokes the recorded certificate; this one still has the version before.
  identity::certificate_record revoked;
  revoked.fingerprint = old_fp;
  revoked.partner_id = "kh-ratanakiri";
  revoked.state = identity::certificate_state::revoked;
  revoked.revoked_at = "2026-12-01T10:00:00.000Z";
  revoked.reason = "keyCompromise";
  revoked.source = "enrolled";
  put_stored_change("certificate", old_fp, identity::to_json(revoked));

  // The rotation's first items (the new record, the cut-off) would apply; its last (the old
  // certificate made retiring) conflicts: 409, and none of them is stored.
  const auto csr = json_string(make_csr("EC", "P-256"));
  auto r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates/rotate",
                 R"({"csr":)" + csr + R"(,"overlapDays":0})");
  ASSERT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("urn:mxgw:problem:conflict"), std::string::npos) << r.body;
  const auto certificates = stored_items("certificate");
  ASSERT_EQ(certificates.size(), 1u) << "a new certificate was recorded";
  EXPECT_EQ(certificates[0].key, old_fp);
  EXPECT_NE(certificates[0].value.find("\"revoked\""), std::string::npos);
  EXPECT_TRUE(stored_items("cutoff").empty()) << "a cut-off was stored";
  // Nothing applied here either: no record, no cut-off (the certificate issued before still
  // works long after), and no audit record but the enrolment's.
  auto listed = admin(admin_client(), "GET", "/admin/v1/certificates");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(parse(listed.body)["certificates"].Size(), 1u) << listed.body;
  clock_offset_ = std::chrono::hours(24 * 30);
  EXPECT_EQ(get(issued_offline, "/healthz").status, 200);
  clock_offset_ = std::chrono::system_clock::duration::zero();
  auto audit = admin(admin_client(), "GET", "/admin/v1/audit?event=cert.*");
  ASSERT_EQ(parse(audit.body)["entries"].Size(), 1u) << audit.body;
  EXPECT_EQ(std::string(parse(audit.body)["entries"][0]["entry"]["event"].GetString()),
            "cert.enrolled");

  // Read again (a restart reads the store), the rotation applies in full.
  restart();
  EXPECT_EQ(get(old, "/healthz").status, 0);  // revoked by the other instance
  const auto rotated =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":0)");
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(issued_offline, "/healthz").status, 0);
  EXPECT_EQ(stored_items("certificate").size(), 2u);
  EXPECT_EQ(stored_items("cutoff").size(), 1u);
}

TEST_F(Admin, ARotationThatConflictsPartWayStoresNothing) {
  rotation_conflicting_part_way_stores_nothing();
}

TEST_F(AdminOnPostgres, ARotationThatConflictsPartWayStoresNothing) {
  rotation_conflicting_part_way_stores_nothing();
}

TEST_F(Admin, ARefusedRotationCutsNothingOff) {
  const auto issued_offline = offline("rata-offline", "kh-ratanakiri");
  const auto rotate = [&](const std::string& body) {
    return admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates/rotate",
                 body);
  };
  const auto csr = json_string(make_csr("EC", "P-256"));
  // Each with no overlap: had it cut anything off, the certificate would fail at once.
  EXPECT_EQ(rotate(R"({"csr":"not a request","overlapDays":0})").status, 422);
  EXPECT_EQ(rotate(R"({"overlapDays":0})").status, 422);
  EXPECT_EQ(rotate(R"({"csr":)" + csr + R"(,"overlapDays":-1})").status, 422);
  EXPECT_EQ(rotate(R"({"csr":)" + csr + R"(,"overlapDays":"0"})").status, 422);
  EXPECT_EQ(rotate(R"({"csr":)" + csr + R"(,"overlapDays":0)").status, 400);
  EXPECT_EQ(admin(admin_client(), "POST", "/admin/v1/partners/kh-nowhere/certificates/rotate",
                  R"({"csr":)" + csr + R"(,"overlapDays":0})")
                .status,
            404);
  EXPECT_EQ(get(issued_offline, "/healthz").status, 200);
  clock_offset_ = std::chrono::hours(24 * 30);
  EXPECT_EQ(get(issued_offline, "/healthz").status, 200);
  auto audit = admin(admin_client(), "GET", "/admin/v1/audit?event=cert.*");
  EXPECT_EQ(parse(audit.body)["entries"].Size(), 0u) << audit.body;
}

// #2: the export carries revocations, so a deployment rebuilt from it keeps refusing them.
TEST_F(Admin, ExportCarriesRevocationsSoARebuiltGatewayRefusesThem) {
  // A certificate enrolled and revoked; a pinned fingerprint revoked; one retired by rotation.
  const auto revoked = enrol("vn-gialai", "gialai-revoked");
  const auto revoked_fp = last_fingerprint_;
  ASSERT_EQ(admin(admin_client(), "POST", "/admin/v1/certificates/" + revoked_fp + "/revoke",
                  R"({"reason":"keyCompromise"})")
                .status,
            200);
  const auto pinned = offline("rata-pinned");
  const auto pinned_fp = fingerprint_of(pinned);
  ASSERT_EQ(admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri",
                  R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                  R"("pinnedSha256":[")" +
                      pinned_fp + R"("]})")
                .status,
            200);
  ASSERT_EQ(get(pinned, "/healthz").status, 200);
  ASSERT_EQ(admin(admin_client(), "POST", "/admin/v1/certificates/" + pinned_fp + "/revoke",
                  R"({"reason":"keyCompromise"})")
                .status,
            200);
  const auto retired = enrol("la-houaphanh", "houaphanh-old");
  const auto retired_fp = last_fingerprint_;
  const auto current =
      enrol("la-houaphanh", "houaphanh-new", "certificates/rotate", R"(,"overlapDays":0)");
  ASSERT_EQ(admin(admin_client(), "POST", "/admin/v1/partners/la-houaphanh/enable").status, 200);
  ASSERT_EQ(get(current, "/healthz").status, 200);
  ASSERT_EQ(get(retired, "/healthz").status, 0);

  auto exported = admin(admin_client(), "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  auto doc = parse(exported.body);
  const auto partners_text = json::to_string(doc["partners"]);
  EXPECT_NE(partners_text.find(revoked_fp), std::string::npos) << partners_text;
  EXPECT_NE(partners_text.find(pinned_fp), std::string::npos) << partners_text;
  EXPECT_NE(partners_text.find(retired_fp), std::string::npos) << partners_text;
  for (const auto& p : doc["partners"]["partners"].GetArray()) {
    if (p.HasMember("pinnedSha256")) {
      for (const auto& pin : p["pinnedSha256"].GetArray()) {
        EXPECT_NE(std::string(pin.GetString()), pinned_fp) << "a revoked fingerprint is pinned";
      }
    }
  }

  // A new deployment from the exported files alone (a fresh store): still refused.
  ASSERT_NO_FATAL_FAILURE(rebuild_from_export(partners_text));
  EXPECT_EQ(get(revoked, "/healthz").status, 0) << "a revoked certificate works again";
  EXPECT_EQ(get(pinned, "/healthz").status, 0) << "a revoked pin works again";
  EXPECT_EQ(get(retired, "/healthz").status, 0) << "a retired certificate works again";
  EXPECT_EQ(get(current, "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);
  auto metrics = admin(admin_client(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("mxgw_tls_handshakes_refused_total{listener=\"partner\",reason="
                              "\"revoked-certificate\"}"),
            std::string::npos);

  // The revocations stay in the next export, and an edit cannot withdraw one.
  exported = admin(admin_client(), "GET", "/admin/v1/export");
  EXPECT_NE(exported.body.find(revoked_fp), std::string::npos);
  auto edit = admin(admin_client(), "PUT", "/admin/v1/partners/vn-gialai",
                    R"({"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"})");
  EXPECT_EQ(edit.status, 422) << edit.body;
  EXPECT_NE(edit.body.find("/revokedSha256"), std::string::npos) << edit.body;
  EXPECT_EQ(get(revoked, "/healthz").status, 0);
}

// The export carries a rotation still in its overlap (the partner's cut-off and its retiring
// certificates), so a deployment rebuilt from it refuses, once the overlap ends, what this one
// refuses: an earlier certificate known only by its SAN, and the retiring ones.
TEST_F(Admin, ExportCarriesARotationInItsOverlapSoARebuiltGatewayEndsItToo) {
  const auto issued_offline = offline("rata-offline", "kh-ratanakiri", 1h);
  const auto enrolled = enrol("kh-ratanakiri", "rata-enrolled");
  const auto enrolled_fp = last_fingerprint_;
  const auto pinned = offline("rata-pinned", {}, 1h);  // no SAN: a recorded pin names it
  const auto pinned_fp = fingerprint_of(pinned);
  ASSERT_EQ(admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates",
                  R"({"pinnedSha256":")" + pinned_fp + R"("})")
                .status,
            201);
  const auto rotated =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":2)");
  const auto rotated_fp = last_fingerprint_;

  auto exported = admin(admin_client(), "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  auto doc = parse(exported.body);
  const auto partners_text = json::to_string(doc["partners"]);
  const rapidjson::Value* rata = nullptr;
  for (const auto& p : doc["partners"]["partners"].GetArray()) {
    if (std::string(p["id"].GetString()) == "kh-ratanakiri") {
      rata = &p;
    }
  }
  ASSERT_NE(rata, nullptr) << partners_text;
  ASSERT_TRUE(rata->HasMember("rotationCutoffs")) << partners_text;
  ASSERT_EQ((*rata)["rotationCutoffs"].Size(), 1u);
  EXPECT_EQ(std::string((*rata)["rotationCutoffs"][0]["replacedBy"].GetString()), rotated_fp);
  ASSERT_TRUE(rata->HasMember("retiringSha256")) << partners_text;
  std::set<std::string> retiring;
  for (const auto& r : (*rata)["retiringSha256"].GetArray()) {
    retiring.insert(r["sha256"].GetString());
  }
  EXPECT_EQ(retiring, (std::set<std::string>{enrolled_fp, pinned_fp}));
  EXPECT_EQ(partners_text.find("revokedSha256"), std::string::npos) << partners_text;

  // A new deployment from the exported files alone (a fresh store).
  ASSERT_NO_FATAL_FAILURE(rebuild_from_export(partners_text, &doc["routing"]));
  // Inside the overlap everything that worked still works.
  EXPECT_EQ(get(issued_offline, "/healthz").status, 200);
  EXPECT_EQ(get(enrolled, "/healthz").status, 200);
  EXPECT_EQ(get(pinned, "/healthz").status, 200);
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  std::string error;
  auto connection = cli::https_connection::open("localhost", port_, enrolled, error);
  ASSERT_NE(connection, nullptr) << error;
  ASSERT_EQ(connection->request("GET", "/healthz").status, 200);

  clock_offset_ = std::chrono::hours(24 * 2 + 1);  // past the overlap, without sleeping
  EXPECT_EQ(get(issued_offline, "/healthz").status, 0)
      << "a certificate from before the rotation, known by its SAN, works again";
  EXPECT_EQ(get(enrolled, "/healthz").status, 0) << "a retiring certificate is never retired";
  EXPECT_EQ(get(pinned, "/healthz").status, 0) << "a retiring pin is never retired";
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);
  // Its open connection is closed by the state poller, as on the gateway that exported.
  EXPECT_TRUE(eventually([&] { return connection->request("GET", "/healthz").status == 0; }));

  // Exported again after the overlap: the cut-off stays; the retiring ones are now revoked.
  exported = admin(admin_client(), "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  doc = parse(exported.body);
  for (const auto& p : doc["partners"]["partners"].GetArray()) {
    if (std::string(p["id"].GetString()) != "kh-ratanakiri") {
      continue;
    }
    EXPECT_TRUE(p.HasMember("rotationCutoffs")) << exported.body;
    EXPECT_FALSE(p.HasMember("retiringSha256")) << exported.body;
    ASSERT_TRUE(p.HasMember("revokedSha256")) << exported.body;
    std::set<std::string> revoked;
    for (const auto& fp : p["revokedSha256"].GetArray()) {
      revoked.insert(fp.GetString());
    }
    EXPECT_EQ(revoked, (std::set<std::string>{enrolled_fp, pinned_fp}));
  }
  // The two members are the export's: the partner routes refuse them, and nothing changes.
  for (const std::string& member : {std::string(R"("rotationCutoffs":[])"),
                                    R"("retiringSha256":[{"sha256":")" + enrolled_fp +
                                        R"(","retiringUntil":"2099-01-01T00:00:00Z"}])"}) {
    auto edit = admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri",
                      R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                      R"("revokedSha256":[")" +
                          enrolled_fp + R"(",")" + pinned_fp + R"("],)" + member + "}");
    EXPECT_EQ(edit.status, 422) << edit.body;
    EXPECT_NE(edit.body.find(member.substr(1, member.find('"', 1) - 1)), std::string::npos)
        << edit.body;
  }
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
}

void Admin::a_pin_registered_again_after_a_rotation_is_exported_as_such() {
  // Pinned in the definition before the rotation (no partner SAN), and, for contrast, one
  // issued offline before it and known by its SAN.
  const auto pinned = offline("rata-pinned", {}, 1h);
  const auto pinned_fp = fingerprint_of(pinned);
  const auto issued_offline = offline("rata-offline", "kh-ratanakiri", 1h);
  auto r = admin(admin_client(), "PUT", "/admin/v1/partners/kh-ratanakiri",
                 R"({"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH",)"
                 R"("pinnedSha256":[")" +
                     pinned_fp + R"("]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto rotated =
      enrol("kh-ratanakiri", "rata-new", "certificates/rotate", R"(,"overlapDays":2)");
  const auto rotated_fp = last_fingerprint_;
  // Registered again after the rotation: the administrator trusts it again.
  r = admin(admin_client(), "POST", "/admin/v1/partners/kh-ratanakiri/certificates",
            R"({"pinnedSha256":")" + pinned_fp + R"("})");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto past_overlap = std::chrono::hours(24 * 2 + 1);
  clock_offset_ = past_overlap;
  ASSERT_EQ(get(pinned, "/healthz").status, 200);
  ASSERT_EQ(get(issued_offline, "/healthz").status, 0);
  clock_offset_ = std::chrono::system_clock::duration::zero();

  // The export names the pin as cut off (pinnedBefore) and as recorded since (recordedSince).
  const auto recorded_since = [](const rapidjson::Value& cutoff) {
    std::vector<std::string> out;
    if (cutoff.HasMember("recordedSince")) {
      for (const auto& fp : cutoff["recordedSince"].GetArray()) {
        out.emplace_back(fp.GetString());
      }
    }
    return out;
  };
  auto exported = admin(admin_client(), "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  auto doc = parse(exported.body);
  const auto partners_text = json::to_string(doc["partners"]);
  const auto* rata = exported_partner(doc, "kh-ratanakiri");
  ASSERT_NE(rata, nullptr) << partners_text;
  ASSERT_TRUE(rata->HasMember("rotationCutoffs")) << partners_text;
  ASSERT_EQ((*rata)["rotationCutoffs"].Size(), 1u);
  const auto& cutoff = (*rata)["rotationCutoffs"][0];
  EXPECT_EQ(std::string(cutoff["replacedBy"].GetString()), rotated_fp);
  ASSERT_EQ(cutoff["pinnedBefore"].Size(), 1u) << partners_text;
  EXPECT_EQ(std::string(cutoff["pinnedBefore"][0].GetString()), pinned_fp);
  EXPECT_EQ(recorded_since(cutoff), std::vector<std::string>{pinned_fp})  // not the new one
      << partners_text;

  // A new deployment from the exported files alone (a fresh store).
  ASSERT_NO_FATAL_FAILURE(rebuild_from_export(partners_text, &doc["routing"]));
  clock_offset_ = past_overlap;
  EXPECT_EQ(get(pinned, "/healthz").status, 200)
      << "the pin registered again after the rotation is cut off on the rebuilt gateway";
  EXPECT_EQ(get(issued_offline, "/healthz").status, 0);
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  // Exported again from there, the cut-off still lists it.
  exported = admin(admin_client(), "GET", "/admin/v1/export");
  ASSERT_EQ(exported.status, 200);
  doc = parse(exported.body);
  rata = exported_partner(doc, "kh-ratanakiri");
  ASSERT_NE(rata, nullptr) << exported.body;
  EXPECT_EQ(recorded_since((*rata)["rotationCutoffs"][0]), std::vector<std::string>{pinned_fp})
      << exported.body;

  // A later rotation there stores the earlier cut-off with its list: inside the later overlap
  // the pin still works after a restart (the stored cut-offs replace the file's), as it does on
  // the gateway that exported (its record retiring); after it, the pin ends like every other.
  const auto second =
      enrol("kh-ratanakiri", "rata-second", "certificates/rotate", R"(,"overlapDays":2)");
  restart();
  EXPECT_EQ(get(pinned, "/healthz").status, 200);
  EXPECT_EQ(get(issued_offline, "/healthz").status, 0);
  EXPECT_EQ(get(second, "/healthz").status, 200);
  clock_offset_ = past_overlap * 2;
  EXPECT_EQ(get(pinned, "/healthz").status, 0);
  EXPECT_EQ(get(second, "/healthz").status, 200);
}

TEST_F(Admin, APinRegisteredAgainAfterARotationIsTrustedOnAGatewayRebuiltFromTheExport) {
  a_pin_registered_again_after_a_rotation_is_exported_as_such();
}

TEST_F(AdminOnPostgres, APinRegisteredAgainAfterARotationIsTrustedOnAGatewayRebuiltFromTheExport) {
  a_pin_registered_again_after_a_rotation_is_exported_as_such();
}

// #3: a stored partner change this instance cannot apply fails closed.
TEST_F(Admin, AStoredPartnerChangeThatCannotBeAppliedRefusesThePartnerUntilOneThatCan) {
  const auto gialai = partner_client("vn-gialai");
  ASSERT_EQ(get(gialai, "/healthz").status, 200);
  // Another instance changed vn-gialai to a format this one has no adapter for.
  const auto version = put_stored_change(
      "partner", "vn-gialai",
      R"({"id":"vn-gialai","name":"Gia Lai","country":"VN","adapter":"vn-new-format"})");
  EXPECT_TRUE(eventually([&] { return get(gialai, "/healthz").status == 0; }))
      << "the partner keeps its old, enabled definition";
  EXPECT_EQ(get(partner_client("kh-ratanakiri"), "/healthz").status, 200);
  auto shown = admin(admin_client(), "GET", "/admin/v1/partners/vn-gialai");
  ASSERT_EQ(shown.status, 200);
  auto doc = parse(shown.body);
  EXPECT_FALSE(doc["definition"]["enabled"].GetBool());
  EXPECT_EQ(std::string(doc["refused"].GetString()), "unapplied-change");
  EXPECT_EQ(shown.headers["etag"], "\"" + std::to_string(version) + "\"");
  const std::string series =
      "mxgw_admin_state_unapplied{kind=\"partner\",key=\"vn-gialai\",reason=\"invalid-partner\"} 1";
  EXPECT_NE(admin(admin_client(), "GET", "/metrics").body.find(series), std::string::npos);
  const auto log = log_text();
  const auto line = log.find("admin.state_unapplied");
  ASSERT_NE(line, std::string::npos) << log;
  const auto end = log.find('\n', line);
  EXPECT_NE(log.substr(line, end - line).find("vn-gialai"), std::string::npos);

  // Found at start: refused from the first handshake.
  restart();
  EXPECT_EQ(get(gialai, "/healthz").status, 0);
  // A change that can be applied ends it.
  auto enabled = admin(admin_client(), "POST", "/admin/v1/partners/vn-gialai/enable", "",
                       {{"If-Match", shown.headers["etag"]}});
  ASSERT_EQ(enabled.status, 200) << enabled.body;
  EXPECT_EQ(get(gialai, "/healthz").status, 200);
  EXPECT_EQ(admin(admin_client(), "GET", "/metrics").body.find("mxgw_admin_state_unapplied{"),
            std::string::npos);
  EXPECT_FALSE(parse(admin(admin_client(), "GET", "/admin/v1/partners/vn-gialai").body)
                   .HasMember("refused"));
}

TEST_F(Admin, OtherStoredChangesThatCannotBeAppliedFailClosedToo) {
  // A pin another partner holds (two instances pinning one fingerprint at the same moment).
  const auto pinned = offline("gialai-pinned");
  const auto fp = fingerprint_of(pinned);
  ASSERT_EQ(admin(admin_client(), "PUT", "/admin/v1/partners/vn-gialai",
                  R"({"id":"vn-gialai","name":"Gia Lai","country":"VN","pinnedSha256":[")" + fp +
                      R"("]})")
                .status,
            200);
  put_stored_change(
      "partner", "kh-ratanakiri",
      R"({"id":"kh-ratanakiri","name":"R","country":"KH","pinnedSha256":[")" + fp + R"("]})");
  EXPECT_TRUE(
      eventually([&] { return get(partner_client("kh-ratanakiri"), "/healthz").status == 0; }));
  EXPECT_EQ(get(pinned, "/healthz").status, 200);  // still vn-gialai's
  // A partner deleted (partners are disabled, never deleted).
  put_stored_change("partner", "la-houaphanh", "");
  // A cut-off this instance cannot read: vn-gialai is refused until a rotation here.
  put_stored_change("cutoff", "vn-gialai", R"({"partner":"vn-gialai","cutoffs":[{"cutOff":1}]})");
  EXPECT_TRUE(eventually([&] { return get(pinned, "/healthz").status == 0; }));
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 0);
  // A certificate record this instance cannot read (a state it does not know): refused.
  put_stored_change("partner", "kh-ratanakiri",
                    R"({"id":"kh-ratanakiri","name":"R","country":"KH"})");
  const auto enrolled = enrol("kh-ratanakiri", "rata-enrolled");
  const auto enrolled_fp = last_fingerprint_;
  ASSERT_TRUE(eventually([&] { return get(enrolled, "/healthz").status == 200; }));
  put_stored_change(
      "certificate", enrolled_fp,
      R"({"fingerprint":")" + enrolled_fp + R"(","partner":"kh-ratanakiri","state":"suspended"})");
  EXPECT_TRUE(eventually([&] { return get(enrolled, "/healthz").status == 0; }));
  EXPECT_EQ(get(partner_client("kh-ratanakiri"), "/healthz").status, 200);
  auto metrics = admin(admin_client(), "GET", "/metrics").body;
  for (
      const char* series :
      {R"(mxgw_admin_state_unapplied{kind="partner",key="la-houaphanh",reason="partner-deleted"} 1)",
       R"(mxgw_admin_state_unapplied{kind="cutoff",key="vn-gialai",reason="invalid-cutoff"} 1)"}) {
    EXPECT_NE(metrics.find(series), std::string::npos) << series << "\n" << metrics;
  }
  EXPECT_NE(metrics.find("kind=\"certificate\",key=\"" + enrolled_fp), std::string::npos);

  // A rotation through this instance is a cut-off it can apply: vn-gialai is served again.
  const auto rotated = enrol("vn-gialai", "gialai-new", "certificates/rotate");
  EXPECT_EQ(get(rotated, "/healthz").status, 200);
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // inside the overlap
}

}  // namespace
}  // namespace mxgw::test
