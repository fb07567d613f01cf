// Abusive clients, each cut off by its own limit while a well-behaved partner is served: a TCP
// connection that never starts its TLS handshake, a body that trickles in, and a client that sends
// requests but never reads the answers. And one that reads late, within the limits: it gets every
// answer whole.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/integration/raw_tls_client.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;

class AbusiveClient : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.handshake_timeout_ms = 1500;
    c.listener.limits.body_timeout_ms = 1500;
  }
};

TEST_F(AbusiveClient, AStalledHandshakeIsClosedWhileOthersAreServed) {
  const auto tls = partner_client("vn-gialai");
  asio::io_context ioc;
  asio::ip::tcp::socket idle(ioc);
  idle.connect({asio::ip::make_address("127.0.0.1"), port_});
  // Never a ClientHello: the read ends when the server gives up on the handshake.
  bool closed_by_server = false;
  char byte = 0;
  idle.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
    closed_by_server = static_cast<bool>(ec);
  });
  auto normal = std::async(std::launch::async, [&] {
    return post(tls, example("hotline.tip", "c0000000-0000-4000-8000-000000000001"));
  });
  // Bounded: a server that never closes would leave the test waiting at most 60 s here.
  ioc.run_for(std::chrono::seconds(60));
  EXPECT_TRUE(closed_by_server) << "the stalled handshake was never closed";
  EXPECT_EQ(normal.get().status, 202);
}

TEST_F(AbusiveClient, ATricklingBodyIsCutOffAtTheBodyDeadline) {
  const auto tls = partner_client("vn-gialai");
  asio::io_context ioc;
  raw_tls_client client(ioc, tls, port_);
  auto& stream = client.stream;

  const std::string body = example("hotline.tip", "c0000000-0000-4000-8000-000000000002");
  const std::string head =
      "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  asio::write(stream, asio::buffer(head));
  std::size_t sent = 0;
  bool closed_by_server = false;
  asio::steady_timer timer(ioc);
  char byte = 0;
  stream.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
    closed_by_server = static_cast<bool>(ec);
    timer.cancel();
  });
  std::function<void()> send_next = [&] {
    if (closed_by_server || sent == body.size()) {
      return;
    }
    asio::async_write(stream, asio::buffer(body.data() + sent, 1),
                      [&](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          closed_by_server = true;
                          return;
                        }
                        ++sent;
                        timer.expires_after(std::chrono::milliseconds(500));
                        timer.async_wait([&](boost::system::error_code wait_ec) {
                          if (!wait_ec) {
                            send_next();
                          }
                        });
                      });
  };
  send_next();
  auto normal = std::async(std::launch::async, [&] {
    return post(tls, example("hotline.tip", "c0000000-0000-4000-8000-000000000003"));
  });
  ioc.run_for(std::chrono::seconds(60));
  EXPECT_TRUE(closed_by_server);
  EXPECT_LT(sent, body.size()) << "the server waited for the whole trickled body";
  EXPECT_EQ(normal.get().status, 202);
  EXPECT_EQ(stored_messages(), 1U);  // the trickled message was not stored
}

class SlowReader : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.write_timeout_ms = 1000;
    // Every other deadline is longer than the test waits (60 s): only the write deadline can
    // close the connection in time (a write without its own deadline would inherit the body's).
    c.listener.limits.header_timeout_ms = 600'000;
    c.listener.limits.body_timeout_ms = 600'000;
    c.listener.limits.idle_timeout_ms = 600'000;
  }
};

TEST_F(SlowReader, AClientThatNeverReadsIsClosedAtTheWriteDeadline) {
  const auto tls = partner_client("vn-gialai");
  asio::io_context ioc;
  // Tiny socket buffers: the gateway's answers pile up in its own send buffer soon.
  raw_tls_client client(ioc, tls, port_, 4096);
  auto& stream = client.stream;

  // Pipelined status requests for an unknown id (each answered 404), written in batches for as
  // long as the gateway takes them; nothing is ever read. Once the gateway's answers fill the
  // socket buffers its write stalls, it stops reading, and so our writes stall too, until the
  // gateway gives up on the write and closes: then our pending write fails.
  std::string batch;
  for (int i = 0; i < 256; ++i) {
    batch +=
        "GET /v1/messages/c0000000-0000-4000-8000-00000000dead HTTP/1.1\r\n"
        "Host: localhost\r\n\r\n";
  }
  std::size_t batches_sent = 0;
  bool closed_by_server = false;
  std::future<cli::client_result> normal;
  std::function<void()> send_batch = [&] {
    asio::async_write(stream, asio::buffer(batch), [&](boost::system::error_code ec, std::size_t) {
      if (ec) {
        closed_by_server = true;
        return;
      }
      if (++batches_sent == 1) {
        // The abuser is connected and being answered: a good partner now.
        normal = std::async(std::launch::async, [&] {
          return post(tls, example("hotline.tip", "c0000000-0000-4000-8000-000000000005"));
        });
      }
      send_batch();
    });
  };
  send_batch();
  // Bounded: a gateway that never gave up on the write would leave us waiting 60 s here.
  ioc.run_for(std::chrono::seconds(60));
  EXPECT_TRUE(closed_by_server) << "the connection that never reads was never closed";
  boost::system::error_code ignored;
  stream.next_layer().close(ignored);  // so a gateway still stuck writing can stop
  ASSERT_TRUE(normal.valid());
  EXPECT_EQ(normal.get().status, 202);
  stop();  // every handler has run: the log is complete
  EXPECT_NE(log_text().find("write-timeout"), std::string::npos)
      << "the connection was closed, but not by the write deadline";
}

// The listener's TLS layer writes to the socket itself; when the socket is full it waits and
// then sends the rest of the record it had begun (gateway/net/tls_stream.hpp). A client that
// pipelines many requests and reads nothing for a while makes every answer after the first few
// wait like that, while other connections are answered on the same threads meanwhile.
TEST_F(AbusiveClient, PipelinedAnswersToAClientThatReadsLateArriveWholeAndInOrder) {
  const auto tls = partner_client("vn-gialai");
  asio::io_context ioc;
  raw_tls_client client(ioc, tls, port_, 4096);  // small buffers: our reads matter soon
  auto& stream = client.stream;

  // Two kinds of answer of different lengths in a known order: every third a health report (200),
  // the others a problem (404). A byte lost, doubled or moved between records breaks the parse
  // or the order.
  constexpr int requests = 20000;
  std::string pipeline;
  for (int i = 0; i < requests; ++i) {
    pipeline += i % 3 == 0 ? "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
                           : "GET /v1/messages/c0000000-0000-4000-8000-00000000dead HTTP/1.1\r\n"
                             "Host: localhost\r\n\r\n";
  }
  bool written = false;
  asio::async_write(stream, asio::buffer(pipeline),
                    [&](boost::system::error_code ec, std::size_t) { written = !ec; });
  // Read nothing for a while: the gateway's answers fill the socket buffers and its writes wait.
  // Meanwhile another partner is answered.
  ioc.run_for(std::chrono::milliseconds(1500));
  ASSERT_FALSE(written) << "the gateway took every request without waiting to write: no test";
  EXPECT_EQ(post(tls, example("hotline.tip", "c0000000-0000-4000-8000-000000000006")).status, 202);

  // Now read every answer.
  namespace bhttp = boost::beast::http;
  boost::beast::flat_buffer buffer;
  int answered = 0;
  boost::system::error_code failure;
  std::function<void()> read_next = [&] {
    auto response = std::make_shared<bhttp::response<bhttp::string_body>>();
    bhttp::async_read(stream, buffer, *response,
                      [&, response](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          failure = ec;
                          return;
                        }
                        const unsigned expected = answered % 3 == 0 ? 200 : 404;
                        EXPECT_EQ(response->result_int(), expected) << "answer " << answered;
                        EXPECT_EQ(response->body().front(), '{') << "answer " << answered;
                        EXPECT_EQ(response->body().back(), '}') << "answer " << answered;
                        if (++answered < requests) {
                          read_next();
                        }
                      });
  };
  read_next();
  ioc.restart();  // it ran out of work if the whole pipeline was taken
  ioc.run_for(std::chrono::seconds(60));
  EXPECT_TRUE(written) << "the gateway stopped taking the pipelined requests";
  EXPECT_FALSE(failure) << "after " << answered << " answers: " << failure.message();
  EXPECT_EQ(answered, requests);
}

class ManyConnectionsFromOneAddress : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.max_connections_per_address = 3;
  }
};

TEST_F(ManyConnectionsFromOneAddress, OneAddressCannotTakeEverySlot) {
  asio::io_context ioc;
  // The abuser comes from 127.0.0.2 (the whole 127/8 is loopback on Linux).
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> held;
  const auto connect_from = [&](const char* address) {
    auto s = std::make_unique<asio::ip::tcp::socket>(ioc);
    s->open(asio::ip::tcp::v4());
    s->bind({asio::ip::make_address(address), 0});
    s->connect({asio::ip::make_address("127.0.0.1"), port_});
    return s;
  };
  const auto closed_at_once = [&](asio::ip::tcp::socket& s) {
    // The gateway closes a refused connection before any TLS: a read ends at once with EOF.
    // An admitted one waits for our ClientHello, so the bounded wait below expires instead.
    // The handler owns what it writes: it may run after this call returns.
    auto closed = std::make_shared<bool>(false);
    auto byte = std::make_shared<char>(0);
    s.async_read_some(asio::buffer(byte.get(), 1),
                      [closed, byte](boost::system::error_code ec, std::size_t) {
                        *closed = ec && ec != asio::error::operation_aborted;
                      });
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(500));
    const bool seen = *closed;
    // A read still pending (an admitted connection) ends here, not inside a later call's wait,
    // where its "closed" would be taken for the next connection's.
    boost::system::error_code ignored;
    s.cancel(ignored);
    ioc.restart();
    ioc.run();
    return seen;
  };
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect_from("127.0.0.2"));
  }
  for (auto& s : held) {
    EXPECT_FALSE(closed_at_once(*s));
  }
  auto fourth = connect_from("127.0.0.2");
  EXPECT_TRUE(closed_at_once(*fourth)) << "a fourth connection from one address was admitted";
  // Another address is served as usual.
  const auto tls = partner_client("vn-gialai");
  EXPECT_EQ(post(tls, example("hotline.tip", "c0000000-0000-4000-8000-000000000004")).status, 202);
  // When one of the three goes, the address may connect again.
  held.front()->close();
  held.erase(held.begin());
  bool admitted = false;
  for (int attempt = 0; attempt < 40 && !admitted; ++attempt) {
    auto again = connect_from("127.0.0.2");
    admitted = !closed_at_once(*again);
  }
  EXPECT_TRUE(admitted);
}

}  // namespace
}  // namespace mxgw::test
