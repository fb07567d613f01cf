// A partner's own TLS connection to the gateway, for the tests that misbehave below HTTP (slow,
// trickling, never-reading and late-reading clients): Asio's SSL stream on a plain socket, with
// the partner's certificate, verifying the gateway's.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include <cstdint>

#include "gateway/cli/client.hpp"

namespace mxgw::test {

struct raw_tls_client {
  /// Connected and through the handshake. `socket_buffer_bytes` above 0 sets the socket's
  /// receive and send buffers (small ones make the gateway's writes wait sooner).
  raw_tls_client(boost::asio::io_context& ioc, const cli::client_tls& tls, std::uint16_t port,
                 int socket_buffer_bytes = 0)
      : ctx(boost::asio::ssl::context::tls_client), stream(ioc, load(ctx, tls)) {
    namespace asio = boost::asio;
    auto& socket = stream.next_layer();
    socket.open(asio::ip::tcp::v4());
    if (socket_buffer_bytes > 0) {
      socket.set_option(asio::socket_base::receive_buffer_size(socket_buffer_bytes));
      socket.set_option(asio::socket_base::send_buffer_size(socket_buffer_bytes));
    }
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    stream.handshake(asio::ssl::stream_base::client);
  }

  boost::asio::ssl::context ctx;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;

 private:
  static boost::asio::ssl::context& load(boost::asio::ssl::context& ctx,
                                         const cli::client_tls& tls) {
    ctx.load_verify_file(tls.ca.string());
    ctx.use_certificate_chain_file(tls.cert.string());
    ctx.use_private_key_file(tls.key.string(), boost::asio::ssl::context::pem);
    ctx.set_verify_mode(boost::asio::ssl::verify_peer);
    return ctx;
  }
};

}  // namespace mxgw::test
