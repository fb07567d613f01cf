// HTTP/1.1 semantics a raw client relies on over a kept-alive connection: a HEAD request is answered
// with headers only (RFC 9110 9.3.2), and `Expect: 100-continue` gets its interim answer before the
// body is sent, unless the request is refused first (RFC 9110 10.1.1).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <string>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/integration/raw_tls_client.hpp"

namespace mxgw::test {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

constexpr std::size_t test_max_body_bytes = 64 * 1024;

class ConnectionHttpConformance : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    c.listener.limits.max_body_bytes = test_max_body_bytes;
  }
};

// One answer read from `client` within 10 s (a missing answer is a timeout, not a hang). For an
// answer to HEAD (`head`) no body is read, as a compliant client does.
struct answer {
  boost::system::error_code ec;
  bhttp::response<bhttp::string_body> response;
};

answer read_answer(asio::io_context& ioc, raw_tls_client& client, boost::beast::flat_buffer& buffer,
                   bool head = false) {
  bhttp::response_parser<bhttp::string_body> parser;
  parser.skip(head);
  answer result;
  bool done = false;
  bhttp::async_read(client.stream, buffer, parser,
                    [&](boost::system::error_code ec, std::size_t) {
                      result.ec = ec;
                      done = true;
                    });
  ioc.restart();
  ioc.run_for(std::chrono::seconds(10));
  if (!done) {
    client.stream.next_layer().cancel();
    ioc.restart();
    ioc.run();
    result.ec = asio::error::timed_out;
    return result;
  }
  result.response = parser.release();
  return result;
}

std::string post_head(std::size_t content_length, const std::string& expect) {
  return "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\n"
         "Content-Type: application/json\r\nExpect: " +
         expect + "\r\nContent-Length: " + std::to_string(content_length) + "\r\n\r\n";
}

TEST_F(ConnectionHttpConformance, HeadIsAnsweredWithHeadersOnlyAndTheNextRequestIsAnsweredWhole) {
  asio::io_context ioc;
  raw_tls_client client(ioc, partner_client("vn-gialai"), port_);
  boost::beast::flat_buffer buffer;
  // The API routes refuse HEAD (405) and an unknown path is 404: each answer a GET or POST would
  // have had a problem document as its body. After each, a GET on the same connection.
  const struct {
    std::string target;
    unsigned status;
  } cases[] = {{"/v1/messages", 405},
               {"/healthz", 405},
               {"/v1/messages/c0000000-0000-4000-8000-00000000dead", 405},
               {"/no/such/resource", 404}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.target);
    asio::write(client.stream,
                asio::buffer("HEAD " + c.target + " HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const auto head = read_answer(ioc, client, buffer, true);
    ASSERT_FALSE(head.ec) << head.ec.message();
    EXPECT_EQ(head.response.result_int(), c.status);
    EXPECT_TRUE(head.response.keep_alive());

    asio::write(client.stream, asio::buffer(std::string_view(
                                   "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")));
    const auto next = read_answer(ioc, client, buffer);
    ASSERT_FALSE(next.ec) << "the HEAD answer carried a body: " << next.ec.message();
    EXPECT_EQ(next.response.result_int(), 200);
    EXPECT_EQ(next.response.body(), R"({"status":"ok"})");
  }
}

TEST_F(ConnectionHttpConformance, ExpectContinueGets100BeforeTheBodyThenTheAnswer) {
  asio::io_context ioc;
  raw_tls_client client(ioc, partner_client("vn-gialai"), port_);
  boost::beast::flat_buffer buffer;
  const std::string body = example("hotline.tip", "c0000000-0000-4000-8000-0000000c0001");
  // As curl does: the head, then the body only once the server says to go on.
  asio::write(client.stream, asio::buffer(post_head(body.size(), "100-continue")));
  const auto interim = read_answer(ioc, client, buffer);
  ASSERT_FALSE(interim.ec) << "no 100 Continue before the body: " << interim.ec.message();
  ASSERT_EQ(interim.response.result_int(), 100);
  EXPECT_EQ(stored_messages(), 0U);

  asio::write(client.stream, asio::buffer(body));
  const auto final_answer = read_answer(ioc, client, buffer);
  ASSERT_FALSE(final_answer.ec) << final_answer.ec.message();
  EXPECT_EQ(final_answer.response.result_int(), 202);
  EXPECT_EQ(stored_messages(), 1U);

  // The same connection goes on: a second request with the expectation in another case.
  const std::string second = example("hotline.tip", "c0000000-0000-4000-8000-0000000c0002");
  asio::write(client.stream, asio::buffer(post_head(second.size(), "100-Continue")));
  ASSERT_EQ(read_answer(ioc, client, buffer).response.result_int(), 100);
  asio::write(client.stream, asio::buffer(second));
  EXPECT_EQ(read_answer(ioc, client, buffer).response.result_int(), 202);
  EXPECT_EQ(stored_messages(), 2U);
}

TEST_F(ConnectionHttpConformance, ExpectContinueWithADeclaredLengthOverTheLimitGets413Without100) {
  asio::io_context ioc;
  raw_tls_client client(ioc, partner_client("vn-gialai"), port_);
  boost::beast::flat_buffer buffer;
  asio::write(client.stream, asio::buffer(post_head(test_max_body_bytes + 1, "100-continue")));
  const auto first = read_answer(ioc, client, buffer);
  ASSERT_FALSE(first.ec) << first.ec.message();
  EXPECT_EQ(first.response.result_int(), 413) << "the refusal came after an invitation to send";
  EXPECT_EQ(first.response[bhttp::field::content_type], "application/problem+json");
  EXPECT_FALSE(first.response.keep_alive());
  EXPECT_EQ(stored_messages(), 0U);
}

TEST_F(ConnectionHttpConformance, AnExpectationOtherThan100ContinueGets417) {
  asio::io_context ioc;
  raw_tls_client client(ioc, partner_client("vn-gialai"), port_);
  boost::beast::flat_buffer buffer;
  const std::string body = example("hotline.tip", "c0000000-0000-4000-8000-0000000c0003");
  // Head and body at once: the body is not taken for a request of its own either.
  asio::write(client.stream, asio::buffer(post_head(body.size(), "something-else") + body));
  const auto first = read_answer(ioc, client, buffer);
  ASSERT_FALSE(first.ec) << first.ec.message();
  EXPECT_EQ(first.response.result_int(), 417);
  EXPECT_EQ(first.response[bhttp::field::content_type], "application/problem+json");
  EXPECT_NE(first.response.body().find("urn:mxgw:problem:expectation-failed"), std::string::npos);
  EXPECT_FALSE(first.response.keep_alive());
  EXPECT_EQ(stored_messages(), 0U);
}

}  // namespace
}  // namespace mxgw::test
