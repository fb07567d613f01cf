// The listener leaves nothing behind when it is destroyed: its connections and its own state are
// held by the handlers queued in its event loop, and that loop must not be kept alive by them in
// turn (a cycle of references that outlives the gateway: memory, sockets and the store it
// reaches through the request handler, never released).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "gateway/http/handlers.hpp"
#include "gateway/net/server.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/integration/raw_tls_client.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;

class ListenerLifetime : public gateway_fixture {
 protected:
  /// A listener on a port of its own with the gateway's TLS settings, whose role holds
  /// `sentinel_`: while anything still holds the listener, the sentinel has another owner.
  std::unique_ptr<net::server> make_listener(
      std::function<void(const http::request&, std::function<void(http::response)>)> handle) {
    auto settings = config_.listener;
    settings.port = 0;
    net::listener_role role{
        .name = "lifetime",
        .authenticate =
            [sentinel = sentinel_](X509*, X509*) {
              return net::authentication{.principal = "vn-gialai"};
            },
        .handle =
            [sentinel = sentinel_, handle = std::move(handle)](
                const http::request& req, std::function<void(http::response)> done) {
              handle(req, std::move(done));
            },
    };
    return std::make_unique<net::server>(settings, 1, std::move(role));
  }

  bool listener_released() const { return sentinel_.use_count() == 1; }

  std::shared_ptr<int> sentinel_ = std::make_shared<int>(0);
};

TEST_F(ListenerLifetime, AListenerThatNeverRanIsReleasedWhenDestroyed) {
  // Made and then given up (a later part of the gateway failed to start): its accept was
  // already waiting in an event loop that never ran.
  auto listener = make_listener([](const http::request&, std::function<void(http::response)> done) {
    done(http::response{.status = 200});
  });
  ASSERT_FALSE(listener_released());
  listener.reset();
  EXPECT_TRUE(listener_released()) << "the listener's state outlived it";
}

TEST_F(ListenerLifetime, AListenerStoppedWithARequestUnderWayIsReleasedOnceItHasAnswered) {
  // The answer comes from another thread after stop(), as a store's does.
  std::promise<std::function<void(http::response)>> pending;
  auto listener =
      make_listener([&pending](const http::request&, std::function<void(http::response)> done) {
        pending.set_value(std::move(done));
      });
  const std::uint16_t port = listener->port();
  std::thread loop([&] { listener->run(); });

  asio::io_context ioc;
  raw_tls_client client(ioc, partner_client("vn-gialai"), port);
  const std::string request = "GET /anything HTTP/1.1\r\nHost: localhost\r\n\r\n";
  asio::write(client.stream, asio::buffer(request));
  auto done = pending.get_future().get();  // the request is under way

  listener->stop();
  std::thread answer([done = std::move(done)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    done(http::response{.status = 200, .body = "{}", .close = true});
  });
  std::string reply(128, '\0');
  boost::system::error_code ec;
  const std::size_t n = client.stream.read_some(asio::buffer(reply), ec);
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 200") << "the request under way was not answered";
  EXPECT_GT(n, 0U);
  answer.join();
  loop.join();  // run() returns once the answer is written
  client.stream.next_layer().close(ec);
  listener.reset();
  EXPECT_TRUE(listener_released()) << "the listener's state outlived it";
}

}  // namespace
}  // namespace mxgw::test
