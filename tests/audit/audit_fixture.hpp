// Shared set-up of the audit tests: a real SQLite store in a temp directory, a real signing key
// and certificate from a test CA, synchronous wrappers around the store's audit calls, and a raw
// connection to tamper with the file the way an attacker with file access would.
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "gateway/audit/audit.hpp"
#include "gateway/audit/checkpointer.hpp"
#include "gateway/audit/verify.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/message_store.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::audit::test {

using mxgw::store::test_helpers::raw_db;
using mxgw::store::test_helpers::wait_limit;

template <typename T>
T wait_for(std::future<T>& future, const char* what) {
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << what << ": handler not called";
    return T{};
  }
  return future.get();
}

/// A metadata-only record like the gateway writes.
inline audit_record event_record(int n) {
  return {.event = n % 3 == 0 ? "delivery.delivered" : "message.accepted",
          .actor = "partner:vn-gialai",
          .partner = "vn-gialai",
          .message_id = mxgw::store::test_helpers::make_id(n),
          .details = {{"type", "victim.identification"}, {"n", std::to_string(n)}}};
}

class audit_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = std::chrono::system_clock::now();
    auto ca = identity::cert_authority::create("audit test CA", now - std::chrono::hours(1),
                                               now + std::chrono::hours(24));
    identity::certificate_request req;
    req.common_name = "localhost";
    req.san_dns = {"localhost"};
    req.server_auth = true;
    const auto issued = ca.issue(req);
    mxgw::test::write_file(dir_ / "gateway.pem", issued.cert_pem);
    identity::write_file_with_mode(dir_ / "gateway.key", issued.key_pem, 0600);
    const auto other = ca.issue(req);
    mxgw::test::write_file(dir_ / "other.pem", other.cert_pem);
    identity::write_file_with_mode(dir_ / "other.key", other.key_pem, 0600);
    open();
  }

  void TearDown() override {
    if (store_) {
      store_->stop();
    }
  }

  std::filesystem::path db_path() const { return dir_.path() / "store.db"; }

  void open() { store_ = store::open_sqlite_store({.path = db_path()}); }
  void close() {
    store_->stop();
    store_.reset();
  }

  checkpoint_signer signer(const std::string& name = "gateway") const {
    return checkpoint_signer::load(dir_ / (name + ".pem"), dir_ / (name + ".key"));
  }

  signer_keys keys(const std::vector<std::string>& names = {"gateway"}) const {
    signer_keys k;
    for (const auto& name : names) {
      k.add_pem(mxgw::test::read_file(dir_ / (name + ".pem")));
    }
    return k;
  }

  /// Appends entries first..last (one record each).
  void append(int first, int last) {
    std::vector<audit_record> records;
    for (int n = first; n <= last; ++n) {
      records.push_back(event_record(n));
    }
    std::promise<bool> p;
    auto f = p.get_future();
    store_->append_audit(std::move(records), [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "append_audit"));
  }

  std::vector<audit_row> rows() {
    std::promise<std::vector<audit_row>> p;
    auto f = p.get_future();
    store_->read_audit(0, 1'000'000,
                       [&p](std::vector<audit_row> r, bool) { p.set_value(std::move(r)); });
    return wait_for(f, "read_audit");
  }

  std::vector<checkpoint> checkpoints() {
    std::promise<std::vector<checkpoint>> p;
    auto f = p.get_future();
    store_->read_checkpoints([&p](std::vector<checkpoint> c, bool) { p.set_value(std::move(c)); });
    return wait_for(f, "read_checkpoints");
  }

  /// Signs entry `seq` of the current chain and stores the checkpoint.
  void checkpoint_at(std::int64_t seq, const std::string& name = "gateway") {
    const auto all = rows();
    ASSERT_GE(all.size(), static_cast<std::size_t>(seq));
    add_checkpoint(signer(name).sign(seq, all[static_cast<std::size_t>(seq - 1)].hash,
                                     "2026-11-22T04:38:47.123Z"));
  }

  void add_checkpoint(const checkpoint& c) {
    std::promise<bool> p;
    auto f = p.get_future();
    store_->add_checkpoint(c, [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(wait_for(f, "add_checkpoint"));
  }

  verify_report verify(const std::vector<std::string>& names = {"gateway"},
                       std::size_t page_size = 1000, std::vector<external_anchor> anchors = {}) {
    const auto k = keys(names);
    return verify_store(*store_, k, page_size, std::move(anchors));
  }

  /// Runs SQL on the closed store's file with the append-only triggers dropped first, as an
  /// attacker with access to the file would; the store is reopened afterwards.
  void tamper(const std::string& sql) {
    close();
    {
      raw_db db(db_path());
      db.exec("DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;");
      db.exec(sql);
    }
    open();
  }

  mxgw::test::temp_dir dir_;
  std::unique_ptr<store::message_store> store_;
};

}  // namespace mxgw::audit::test
