// A real gateway in-process on 127.0.0.1 (port 0) with certificates made for the test, the
// repository's schemas and code tables, a fresh SQLite file and a log file per test.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "gateway/cli/client.hpp"
#include "gateway/cli/gateway_instance.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {

class gateway_fixture : public ::testing::Test {
 protected:
  /// Override to change the configuration before the gateway starts.
  virtual void configure(config::gateway_config&) {}

  void SetUp() override;
  void TearDown() override;

  /// Writes a client certificate signed by the test CA (or `other_ca`) to files; returns the TLS
  /// settings a client uses with it.
  cli::client_tls make_client(const std::string& name, const identity::certificate_request& req,
                              const identity::cert_authority* other_ca = nullptr);
  /// As make_client, with the certificate's serial set to `serial_hex` (hex) and the certificate
  /// signed again by its CA: certificates of two CAs can so share a serial. Fails the test (and
  /// returns the settings of an empty file) when OpenSSL cannot make it.
  cli::client_tls make_client_with_serial(const std::string& name,
                                          const identity::certificate_request& req,
                                          const std::string& serial_hex,
                                          const identity::cert_authority* other_ca = nullptr);
  /// A valid client certificate for partner `id`.
  cli::client_tls partner_client(const std::string& id);
  /// Settings for a stand-in partner (`partner-sim`) serving with the test's server certificate
  /// and trusting the test CA; the caller sets the rest (format, keep_bodies, ...).
  sim::partner_sim_options sim_options() const;

  /// Call from configure(): turns on the admin listener (port 0) with its own test CA
  /// (`admin_ca_`) and a signing directory laid out as `mxgw certs init` does, holding the
  /// partner CA (`dir_/signing`).
  void enable_admin(config::gateway_config& config);
  /// An administrator's certificate (SAN urn:mxgw:admin:<name>) from `admin_ca_`.
  cli::client_tls admin_client(const std::string& name = "alice");
  /// One request to the admin listener.
  cli::client_result admin(const cli::client_tls& tls, const std::string& method,
                           const std::string& target, const std::string& body = {},
                           const std::map<std::string, std::string>& headers = {});

  cli::client_result post(const cli::client_tls& tls, const std::string& body,
                          const std::string& target = "/v1/messages",
                          const std::string& content_type = "application/json");
  cli::client_result get(const cli::client_tls& tls, const std::string& target);

  /// Restarts the gateway (same configuration), e.g. after rewriting the CRL.
  void restart();

  /// Stops the gateway and waits until every handler has run (so the log is complete).
  void stop();

  /// Rows in the messages table right now.
  std::size_t stored_messages() const;

  /// The canonical body the store holds for message `id`, opened with the test's store key when
  /// it is sealed ("" when there is no such message or it does not open).
  std::string stored_body(const std::string& id) const;

  /// The copy of message `id` the store holds for `recipient`, opened like stored_body ("" when
  /// there is none, or the recipient gets the stored body itself).
  std::string stored_copy(const std::string& id, const std::string& recipient) const;

  /// The id the gateway gives the message `sender` names `reference` (a KH-CNP msg_no, an LA-MPS
  /// ref, a feed's notice): derived under the test's message id key (config_.message_ids, as
  /// shipped), or without one when a test cleared it.
  std::string derived_id(const std::string& sender, const std::string& reference) const;

  /// The log written so far.
  std::string log_text() const;

  /// Writes an administrative state item straight into this test's store, as another instance
  /// sharing it would (say a newer version, or one with a mapping file this one lacks); returns
  /// its version. The running gateway's poller reads it.
  std::int64_t put_stored_change(const std::string& kind, const std::string& key,
                                 const std::string& value) const;

  /// Waits (bounded, about 15 s) for `done`, checking every 50 ms; the state poller of the
  /// fixture's gateway runs every 100 ms.
  static bool eventually(const std::function<bool()>& done);

  /// An example message from config/examples/, with `id` replaced when given.
  static std::string example(const std::string& type, const std::string& id = {});

  temp_dir dir_;
  std::unique_ptr<identity::cert_authority> ca_;
  std::unique_ptr<identity::cert_authority> admin_ca_;  ///< set by enable_admin()
  config::gateway_config config_;
  cli::instance_options options_;  ///< e.g. an injected clock
  std::unique_ptr<cli::gateway_instance> gateway_;
  std::thread gateway_thread_;
  std::uint16_t port_ = 0;

 private:
  void start();
  /// The one column `sql` selects for `id` (?1) and `recipient` (?2, when it has one), opened
  /// under `purpose` when sealed.
  std::string stored_opened(const char* sql, const std::string& id, const std::string& recipient,
                            const std::string& purpose) const;
};

}  // namespace mxgw::test
