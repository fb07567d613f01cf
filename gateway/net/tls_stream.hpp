// The listener's TLS transport: OpenSSL reading and writing the connection's socket itself.
//
// boost::asio::ssl::stream passes every byte through a BIO pair and two record-sized buffers of
// its own; the four buffers (about 68 KiB) are allocated when the stream is made and kept for its
// whole life, so they were most of what an idle connection cost. Here OpenSSL's record layer
// calls recv() and send() on the non-blocking socket through a small BIO of ours, and Asio only
// waits for readiness. With SSL_MODE_RELEASE_BUFFERS (tls_context.cpp) an idle connection then
// holds no record buffer at all.
//
// Operations and deadlines behave as Beast's ssl_stream<tcp_stream> did for the session:
// expires_after() sets one deadline for the operations from then on; when it passes, the socket
// is closed and the pending operation ends with beast::error::timeout (so does the next one).
// cancel() ends a pending operation with operation_aborted. An end of the connection without
// TLS close_notify is asio::ssl::error::stream_truncated; a close_notify is asio::error::eof.
// One read and one write may be pending at a time, on the socket's (strand) executor.
// Only gateway/net/server.cpp includes this header.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <openssl/types.h>

namespace mxgw::net {

class tls_stream {
 public:
  using socket_type = boost::asio::ip::tcp::socket;
  using executor_type = socket_type::executor_type;

  /// The server side of a TLS connection on `socket`, with the settings of `ctx`.
  /// Throws std::runtime_error when OpenSSL cannot make the connection's objects.
  tls_stream(socket_type socket, SSL_CTX* ctx);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  executor_type get_executor() { return core_->socket.get_executor(); }
  SSL* native_handle() const { return core_->ssl; }
  socket_type& socket() { return core_->socket; }

  /// The deadline of the operations from now on (replaces the one before).
  void expires_after(std::chrono::steady_clock::duration d);
  /// The pending operation ends with operation_aborted.
  void cancel();
  /// Closes the socket; the pending operation ends with operation_aborted.
  void close();

  template <class Token>
  auto async_handshake(Token&& token) {
    return start(kind::handshake, boost::asio::mutable_buffer(), std::forward<Token>(token));
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    boost::asio::mutable_buffer first;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (boost::asio::mutable_buffer b = *it; b.size() != 0) {
        first = b;
        break;
      }
    }
    return start(kind::read, first, std::forward<Token>(token));
  }

  /// Writes up to one TLS record. Several small buffers (an HTTP head and a short body) are
  /// gathered into one record, so an answer is one record and one send().
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return start(kind::write, gather(buffers), std::forward<Token>(token));
  }

  /// Sends close_notify (it does not wait for the peer's).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return start(kind::shutdown, boost::asio::mutable_buffer(), std::forward<Token>(token));
  }

 private:
  enum class kind { handshake, read, write, shutdown };
  enum class want { nothing, read, write };
  struct step {
    want next = want::nothing;
    boost::system::error_code ec;
    std::size_t bytes = 0;
  };

  struct core {
    explicit core(socket_type s);
    ~core();
    socket_type socket;
    boost::asio::steady_timer timer;
    SSL* ssl = nullptr;
    bool expired = false;
    bool eof = false;   // recv() returned 0
    int last_errno = 0; // of the last failed recv() or send()
    std::uint64_t deadline = 0;
    // A gathered write that has to wait keeps its bytes here until it is done (the per-thread
    // buffer may be reused before it resumes, possibly on another thread).
    std::unique_ptr<unsigned char[]> pending_write;
  };

  // The buffers to write: the first one, or several gathered into a per-thread buffer of one
  // record's size (moved to core::pending_write if the write has to wait; the data may move
  // between tries with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
  static constexpr std::size_t record_bytes = 16 * 1024;
  static unsigned char* gather_buffer();
  template <class ConstBuffers>
  static boost::asio::mutable_buffer gather(const ConstBuffers& buffers) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    const auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::const_buffer(*it).size() == 0) {
      ++it;
    }
    if (it == end) {
      return {};
    }
    const boost::asio::const_buffer first = *it;
    std::size_t total = first.size();
    auto next = it;
    for (++next; next != end && total < record_bytes; ++next) {
      total += boost::asio::const_buffer(*next).size();
    }
    if (total == first.size() || first.size() >= record_bytes) {
      return {const_cast<void*>(first.data()), first.size()};
    }
    unsigned char* out = gather_buffer();
    const std::size_t n = boost::asio::buffer_copy(boost::asio::mutable_buffer(out, record_bytes),
                                                   buffers);
    return {out, n};
  }

  // One try of the OpenSSL call; tells what to wait for, or the outcome. May point `buffer` at
  // core::pending_write.
  step attempt(kind k, boost::asio::mutable_buffer& buffer);
  // The outcome of an operation whose wait for readiness ended with `ec`.
  boost::system::error_code wait_failed(boost::system::error_code ec) const;

  struct op {
    tls_stream* stream;
    kind what;
    boost::asio::mutable_buffer buffer;
    enum { starting, waiting, finishing } state = starting;
    boost::system::error_code result;
    std::size_t bytes = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (state == finishing) {
        return self.complete(result, bytes);
      }
      if (state == waiting && ec) {
        return self.complete(stream->wait_failed(ec), 0);
      }
      const bool first = state == starting;
      step s = stream->attempt(what, buffer);
      if (s.next != want::nothing) {
        state = waiting;
        stream->core_->socket.async_wait(s.next == want::read
                                             ? socket_type::wait_read
                                             : socket_type::wait_write,
                                         std::move(self));
        return;
      }
      if (first) {
        // Never complete from within the initiating function.
        state = finishing;
        result = s.ec;
        bytes = s.bytes;
        return boost::asio::post(std::move(self));
      }
      self.complete(s.ec, s.bytes);
    }
  };

  template <class Token>
  auto start(kind k, boost::asio::mutable_buffer buffer, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        op{this, k, buffer}, token, core_->socket);
  }

  std::shared_ptr<core> core_;
};

}  // namespace mxgw::net
