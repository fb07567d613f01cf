// A client that dribbles its request head one byte per second is cut off at the header deadline,
// while a well-behaved partner is served at the same time.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <future>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/integration/raw_tls_client.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;

class SlowClient : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override { c.listener.limits.header_timeout_ms = 2000; }
};

TEST_F(SlowClient, OneBytePerSecondHeaderIsCutOffWhileOthersAreServed) {
  const auto tls = partner_client("vn-gialai");
  asio::io_context ioc;
  raw_tls_client client(ioc, tls, port_);
  auto& stream = client.stream;

  // The request head we dribble; sent whole it would take over a minute.
  const std::string head =
      "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow-client-for-tests\r\n"
      "X-Padding: abcdefghijklmnopqrstuvwxyz\r\n\r\n";
  std::size_t sent = 0;
  bool closed_by_server = false;
  asio::steady_timer timer(ioc);
  std::function<void()> send_next;
  // A pending read tells us when the server closes the connection.
  char byte = 0;
  stream.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
    closed_by_server = static_cast<bool>(ec);
    timer.cancel();
  });
  send_next = [&] {
    if (closed_by_server || sent == head.size()) {
      return;
    }
    asio::async_write(stream, asio::buffer(head.data() + sent, 1),
                      [&](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          closed_by_server = true;
                          return;
                        }
                        ++sent;
                        timer.expires_after(std::chrono::seconds(1));
                        timer.async_wait([&](boost::system::error_code wait_ec) {
                          if (!wait_ec) {
                            send_next();
                          }
                        });
                      });
  };
  send_next();

  // Meanwhile a normal partner submits and reads back as usual.
  auto normal = std::async(std::launch::async, [&] {
    return post(tls, example("victim.identification", "5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"));
  });
  ioc.run();  // ends when the server closed the slow connection (or the head was all sent)

  EXPECT_TRUE(closed_by_server);
  EXPECT_LT(sent, head.size()) << "the server waited for the whole dribbled head";
  EXPECT_EQ(normal.get().status, 202);
  stop();  // every server-side handler has run: the cut-off is in the log
  EXPECT_NE(log_text().find("\"reason\":\"header-timeout\""), std::string::npos);
}

}  // namespace
}  // namespace mxgw::test
