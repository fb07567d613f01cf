// How long the delivery service keeps what it holds: a service stopped, then woken (the store
// committing a queued accept or replay after the workers stopped), then destroyed releases its
// store; and the store's wake-up call outlives the service harmlessly. A real SQLite store and a
// real client identity; no partner is needed, as nothing is due.
#include "gateway/delivery/delivery_service.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::delivery {
namespace {

class DeliveryServiceLifetime : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = std::chrono::system_clock::now();
    const auto ca = identity::cert_authority::create(
        "lifetime test CA", now - std::chrono::hours(1), now + std::chrono::hours(24));
    test::write_file(dir_ / "ca.pem", ca.cert_pem());
    identity::certificate_request gateway;
    gateway.common_name = "mxgw";
    const auto cert = ca.issue(gateway);
    test::write_file(dir_ / "client.pem", cert.cert_pem);
    identity::write_file_with_mode(dir_ / "client.key", cert.key_pem, 0600);
  }

  delivery_options options() const {
    delivery_options o;
    o.identity = {dir_ / "client.pem", dir_ / "client.key", {dir_ / "ca.pem"}, {}};
    o.poll_interval = std::chrono::milliseconds(20);
    return o;
  }

  std::shared_ptr<store::message_store> open_store() {
    return store::open_sqlite_store({.path = dir_ / "store.db"});
  }

  static delivery_service::lookup nobody() {
    return [](std::string_view) { return std::optional<recipient_info>(); };
  }

  test::temp_dir dir_;
};

// wake() after stop() used to post a handler holding the service's state onto its stopped loop,
// which belonged to that state: neither was ever destroyed, nor the store it holds.
TEST_F(DeliveryServiceLifetime, AServiceStoppedThenWokenThenDestroyedReleasesItsStore) {
  auto store = open_store();
  std::weak_ptr<store::message_store> weak = store;
  {
    delivery_service service(options(), store, nobody());
    service.start();
    service.wake();  // a wake while it runs is looked at as usual
    service.stop();
    service.wake();  // e.g. the store committing a queued accept after the workers stopped
    service.waker()();
  }
  store->stop();
  store.reset();
  EXPECT_TRUE(weak.expired()) << "the service's state (and its store) outlived the service";
}

// A service made and never started holds its store only while it exists.
TEST_F(DeliveryServiceLifetime, AServiceNeverStartedAndWokenReleasesItsStore) {
  auto store = open_store();
  std::weak_ptr<store::message_store> weak = store;
  {
    delivery_service service(options(), store, nobody());
    service.wake();
  }
  store->stop();
  store.reset();
  EXPECT_TRUE(weak.expired()) << "the service's state (and its store) outlived the service";
}

// The store keeps its wake-up call after the service is gone (a gateway whose construction failed
// half-way, or a callback not cleared): calling it then does nothing.
TEST_F(DeliveryServiceLifetime, TheStoresWakeUpCallOutlivesTheServiceHarmlessly) {
  auto store = open_store();
  std::weak_ptr<store::message_store> weak = store;
  std::function<void()> wake;
  {
    delivery_service service(options(), store, nobody());
    store->on_deliveries_due(service.waker());
    wake = service.waker();
    service.start();
  }
  wake();  // the service is gone
  // A commit with a copy due calls the store's callback too.
  const std::string body = R"({"id":"00000000-0000-4000-8000-000000000001"})";
  store::message_record record{"00000000-0000-4000-8000-000000000001",
                               "vn-gialai",
                               "victim.identification",
                               "2026-11-22T04:38:47Z",
                               "x",
                               body};
  record.deliveries.push_back({"kh-stungtreng", "explicit", body, "[]"});
  std::promise<store::accept_outcome> accepted;
  store->accept(std::move(record), [&](store::accept_result r) { accepted.set_value(r.outcome); });
  EXPECT_EQ(accepted.get_future().get(), store::accept_outcome::stored);
  store->on_deliveries_due({});
  store->stop();
  store.reset();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace mxgw::delivery
