// The in-process gateway fixture (see gateway_fixture.hpp).
#include "tests/integration/gateway_fixture.hpp"

#include "gateway/store/sealed.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include <chrono>
#include <future>
#include <memory>
#include <regex>
#include <thread>

#include "adapters/common/message_ids.hpp"
#include "gateway/cli/open_store.hpp"
#include "gateway/common/log.hpp"
#include "gateway/store/sqlite_store.hpp"

namespace mxgw::test {

void gateway_fixture::SetUp() {
  const auto now = std::chrono::system_clock::now();
  ca_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
      "mxgw test CA", now - std::chrono::hours(1), now + std::chrono::hours(24 * 30)));
  write_file(dir_ / "ca.pem", ca_->cert_pem());
  identity::certificate_request server_req;
  server_req.common_name = "localhost";
  server_req.san_dns = {"localhost"};
  server_req.san_ips = {"127.0.0.1"};
  server_req.server_auth = true;
  auto server_cert = ca_->issue(server_req);
  write_file(dir_ / "server.pem", server_cert.cert_pem);
  identity::write_file_with_mode(dir_ / "server.key", server_cert.key_pem, 0600);
  write_file(dir_ / "crl.pem", ca_->make_crl({}));
  write_file(dir_ / "partners.json", R"({"partners":[
    {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
    {"id":"kh-ratanakiri","name":"Ratanakiri commissariat","country":"KH"},
    {"id":"la-houaphanh","name":"Houaphanh police","country":"LA","enabled":false}]})");

  config_.threads = 2;
  config_.listener.address = "127.0.0.1";
  config_.listener.port = 0;
  config_.listener.tls.certificate = dir_ / "server.pem";
  config_.listener.tls.private_key = dir_ / "server.key";
  config_.listener.tls.partner_cas = {dir_ / "ca.pem"};
  config_.listener.tls.crls = {dir_ / "crl.pem"};
  config_.store.path = dir_ / "store" / "mxgw.db";
  // As shipped: the store is encrypted at rest (a test may clear the keys to see clear text).
  store::generate_key_file(dir_ / "store-key.hex");
  config_.store.keys = {{"test-1", dir_ / "store-key.hex", ""}};
  config_.store.active_key = "test-1";
  // As shipped: persons are matched across messages (docs/persons.md).
  store::generate_key_file(dir_ / "match-key.hex");
  config_.persons.match_key = {"match", dir_ / "match-key.hex", ""};
  // As shipped: the ids of partners' messages are derived under a key (docs/security.md).
  store::generate_key_file(dir_ / "id-key.hex");
  config_.message_ids.key = {"message-ids", dir_ / "id-key.hex", ""};
  config_.partners_file = dir_ / "partners.json";
  config_.schema_dir = source_dir() / "config" / "schema";
  config_.mappings_dir = source_dir() / "config" / "mappings";
  // As shipped. Mapping adapters are process-wide (adapters::mapped::install), and a reload
  // refuses a set that drops one already installed: every gateway of this process must name the
  // same ones, or a reload() in one test fails after another test installed them.
  config_.adapters_dir = source_dir() / "config" / "adapters";
  config_.log.file = dir_ / "gateway.log";
  configure(config_);
  start();
}

void gateway_fixture::TearDown() {
  stop();
  log::init({});
}

void gateway_fixture::start() {
  log::init({log::level::info, config_.log.file});
  gateway_ = std::make_unique<cli::gateway_instance>(config_, options_);
  port_ = gateway_->port();
  gateway_thread_ = std::thread([this] { gateway_->run(); });
}

void gateway_fixture::stop() {
  if (gateway_) {
    gateway_->stop();
    gateway_thread_.join();
    gateway_.reset();
  }
}

void gateway_fixture::restart() {
  stop();
  start();
}

cli::client_tls gateway_fixture::make_client(const std::string& name,
                                             const identity::certificate_request& req,
                                             const identity::cert_authority* other_ca) {
  const auto issued = (other_ca != nullptr ? *other_ca : *ca_).issue(req);
  write_file(dir_ / (name + ".pem"), issued.cert_pem);
  identity::write_file_with_mode(dir_ / (name + ".key"), issued.key_pem, 0600);
  return {dir_ / "ca.pem", dir_ / (name + ".pem"), dir_ / (name + ".key")};
}

cli::client_tls gateway_fixture::make_client_with_serial(const std::string& name,
                                                         const identity::certificate_request& req,
                                                         const std::string& serial_hex,
                                                         const identity::cert_authority* other_ca) {
  const auto& ca = other_ca != nullptr ? *other_ca : *ca_;
  const auto issued = ca.issue(req);
  const std::string ca_key_pem = ca.key_pem();
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(issued.cert_pem.data(), static_cast<int>(issued.cert_pem.size())), &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(ca_key_pem.data(), static_cast<int>(ca_key_pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ca_key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  BIGNUM* bn = nullptr;
  ASN1_INTEGER* serial = nullptr;
  // The serial is part of what the CA signed: a new one needs a new signature.
  const bool ok = cert && ca_key && BN_hex2bn(&bn, serial_hex.c_str()) > 0 &&
                  (serial = BN_to_ASN1_INTEGER(bn, nullptr)) != nullptr &&
                  X509_set_serialNumber(cert.get(), serial) == 1 &&
                  X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0;
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  std::string cert_pem;
  if (ok) {
    std::unique_ptr<BIO, decltype(&BIO_free)> mem(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509(mem.get(), cert.get());
    char* data = nullptr;
    const long size = BIO_get_mem_data(mem.get(), &data);
    cert_pem.assign(data, static_cast<std::size_t>(size));
  }
  EXPECT_FALSE(cert_pem.empty()) << "could not give the certificate serial " << serial_hex;
  write_file(dir_ / (name + ".pem"), cert_pem);
  identity::write_file_with_mode(dir_ / (name + ".key"), issued.key_pem, 0600);
  return {dir_ / "ca.pem", dir_ / (name + ".pem"), dir_ / (name + ".key")};
}

cli::client_tls gateway_fixture::partner_client(const std::string& id) {
  identity::certificate_request req;
  req.common_name = id;
  req.san_uris = {"urn:mxgw:partner:" + id};
  return make_client(id, req);
}

void gateway_fixture::enable_admin(config::gateway_config& config) {
  const auto now = std::chrono::system_clock::now();
  admin_ca_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
      "mxgw test admin CA", now - std::chrono::hours(1), now + std::chrono::hours(24 * 30)));
  write_file(dir_ / "admin-ca.pem", admin_ca_->cert_pem());
  std::filesystem::create_directories(dir_ / "signing");
  write_file(dir_ / "signing" / "ca.pem", ca_->cert_pem());
  identity::write_file_with_mode(dir_ / "signing" / "ca.key", ca_->key_pem(), 0600);
  write_file(dir_ / "signing" / "issued.json", R"({"certificates":[]})");
  config.admin.enabled = true;
  config.admin.listener.address = "127.0.0.1";
  config.admin.listener.port = 0;
  config.admin.listener.tls.certificate = config.listener.tls.certificate;
  config.admin.listener.tls.private_key = config.listener.tls.private_key;
  config.admin.listener.tls.partner_cas = {dir_ / "admin-ca.pem"};
  config.admin.signing_dir = dir_ / "signing";
  config.admin.state_poll_ms = 100;
}

cli::client_tls gateway_fixture::admin_client(const std::string& name) {
  identity::certificate_request req;
  req.common_name = "admin " + name;
  req.san_uris = {"urn:mxgw:admin:" + name};
  return make_client("admin-" + name, req, admin_ca_.get());
}

cli::client_result gateway_fixture::admin(const cli::client_tls& tls, const std::string& method,
                                          const std::string& target, const std::string& body,
                                          const std::map<std::string, std::string>& headers) {
  return cli::https_request("localhost", gateway_->admin_port(), tls, method, target, body,
                            "application/json", std::chrono::seconds(15), headers);
}

cli::client_result gateway_fixture::post(const cli::client_tls& tls, const std::string& body,
                                         const std::string& target,
                                         const std::string& content_type) {
  return cli::https_request("localhost", port_, tls, "POST", target, body, content_type);
}

cli::client_result gateway_fixture::get(const cli::client_tls& tls, const std::string& target) {
  return cli::https_request("localhost", port_, tls, "GET", target);
}

std::size_t gateway_fixture::stored_messages() const {
  return store::count_messages(config_.store.path);
}

std::string gateway_fixture::stored_body(const std::string& id) const {
  return stored_opened("SELECT body FROM messages WHERE id = ?1", id, {}, "body");
}

std::string gateway_fixture::stored_copy(const std::string& id,
                                         const std::string& recipient) const {
  return stored_opened(
      "SELECT payload FROM deliveries WHERE message_id = ?1 AND recipient = ?2 AND "
      "payload_is_body = 0",
      id, recipient, "to:" + recipient);
}

std::string gateway_fixture::stored_opened(const char* sql, const std::string& id,
                                           const std::string& recipient,
                                           const std::string& purpose) const {
  sqlite3* handle = nullptr;
  std::string bytes;
  if (sqlite3_open_v2(config_.store.path.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(handle, sql, -1, &stmt, nullptr) == SQLITE_OK) {
      sqlite3_bind_text(stmt, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_bind_parameter_count(stmt) > 1) {
        sqlite3_bind_text(stmt, 2, recipient.c_str(), -1, SQLITE_TRANSIENT);
      }
      if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) > 0) {
        bytes.assign(static_cast<const char*>(sqlite3_column_blob(stmt, 0)),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)));
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(handle);
  if (!store::is_sealed(bytes) || config_.store.keys.empty()) {
    return bytes;
  }
  std::vector<store::key_source> sources;
  for (const auto& k : config_.store.keys) {
    sources.push_back({k.id, k.file, k.env});
  }
  const auto ring = store::key_ring::load(sources, config_.store.active_key);
  return store::open_sealed(ring, bytes, store::seal_context(id, purpose)).value_or("");
}

std::int64_t gateway_fixture::put_stored_change(const std::string& kind, const std::string& key,
                                                const std::string& value) const {
  auto store = cli::open_configured_store(config_.store);
  std::promise<std::pair<store::put_outcome, std::int64_t>> done;
  store->put_state({.kind = kind,
                    .key = key,
                    .value = value,
                    .version = 0,
                    .changed_at = {},
                    .changed_by = "admin:elsewhere"},
                   std::nullopt, {}, [&](store::put_outcome outcome, std::int64_t version) {
                     done.set_value({outcome, version});
                   });
  const auto [outcome, version] = done.get_future().get();
  store->stop();
  EXPECT_EQ(outcome, store::put_outcome::applied);
  return version;
}

sim::partner_sim_options gateway_fixture::sim_options() const {
  sim::partner_sim_options options;
  options.cert = dir_ / "server.pem";
  options.key = dir_ / "server.key";
  options.ca = dir_ / "ca.pem";
  return options;
}

bool gateway_fixture::eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 300; ++i) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::string gateway_fixture::derived_id(const std::string& sender,
                                        const std::string& reference) const {
  const auto key = cli::load_message_id_key(config_.message_ids);
  return adapters::derived_message_id(key.get(), sender, reference);
}

std::string gateway_fixture::log_text() const {
  log::flush();
  return read_file(config_.log.file);
}

std::string gateway_fixture::example(const std::string& type, const std::string& id) {
  std::string text = read_file(source_dir() / "config" / "examples" / (type + ".json"));
  if (!id.empty()) {
    text = std::regex_replace(text, std::regex(R"re("id": "[0-9a-fA-F-]{36}")re"),
                              "\"id\": \"" + id + "\"", std::regex_constants::format_first_only);
  }
  return text;
}

}  // namespace mxgw::test
