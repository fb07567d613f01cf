// The listener's TLS transport (see tls_stream.hpp).
#include "gateway/net/tls_stream.hpp"

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace mxgw::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// The BIO under the SSL object: recv() and send() on the socket the core holds, non-blocking.
// The socket is looked up at every call, so nothing is read or written once it is closed (its
// descriptor number may already belong to another connection by then). The BIO's data is the
// core.
struct tls_stream_bio {
  template <class Core>
  static int write(Core* core, const char* data, int size, BIO* bio) {
    BIO_clear_retry_flags(bio);
    if (!core->socket.is_open()) {
      core->last_errno = EBADF;
      return -1;
    }
    const ssize_t n = ::send(core->socket.native_handle(), data, static_cast<std::size_t>(size),
                             MSG_NOSIGNAL);
    if (n >= 0) {
      return static_cast<int>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      BIO_set_retry_write(bio);
    } else {
      core->last_errno = errno;
    }
    return -1;
  }

  template <class Core>
  static int read(Core* core, char* data, int size, BIO* bio) {
    BIO_clear_retry_flags(bio);
    if (!core->socket.is_open()) {
      core->last_errno = EBADF;
      return -1;
    }
    const ssize_t n = ::recv(core->socket.native_handle(), data, static_cast<std::size_t>(size), 0);
    if (n > 0) {
      return static_cast<int>(n);
    }
    if (n == 0) {
      core->eof = true;
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      BIO_set_retry_read(bio);
    } else {
      core->last_errno = errno;
    }
    return -1;
  }
};

template <class Core>
BIO_METHOD* make_method() {
  BIO_METHOD* method =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mxgw listener socket");
  if (method == nullptr) {
    throw std::runtime_error("cannot make the listener's BIO method");
  }
  BIO_meth_set_write(method, [](BIO* bio, const char* data, int size) {
    return tls_stream_bio::write(static_cast<Core*>(BIO_get_data(bio)), data, size, bio);
  });
  BIO_meth_set_read(method, [](BIO* bio, char* data, int size) {
    return tls_stream_bio::read(static_cast<Core*>(BIO_get_data(bio)), data, size, bio);
  });
  BIO_meth_set_ctrl(method, [](BIO* bio, int cmd, long, void*) -> long {
    switch (cmd) {
      case BIO_CTRL_FLUSH: return 1;  // nothing is buffered here
      case BIO_CTRL_EOF: return static_cast<Core*>(BIO_get_data(bio))->eof ? 1 : 0;
      default: return 0;
    }
  });
  BIO_meth_set_create(method, [](BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  });
  return method;
}

}  // namespace

tls_stream::core::core(socket_type s) : socket(std::move(s)), timer(socket.get_executor()) {}

tls_stream::core::~core() {
  if (ssl != nullptr) {
    SSL_free(ssl);  // and its BIO; no I/O
  }
}

tls_stream::tls_stream(socket_type socket, SSL_CTX* ctx)
    : core_(std::make_shared<core>(std::move(socket))) {
  static BIO_METHOD* const method = make_method<core>();
  error_code ec;
  core_->socket.non_blocking(true, ec);
  if (ec) {
    throw std::runtime_error("cannot make the connection's socket non-blocking: " + ec.message());
  }
  core_->ssl = SSL_new(ctx);
  BIO* bio = core_->ssl != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {
    ERR_clear_error();
    throw std::runtime_error("cannot make the connection's TLS state");
  }
  BIO_set_data(bio, core_.get());
  SSL_set_bio(core_->ssl, bio, bio);  // the SSL object owns it, once for reading and writing
  SSL_set_mode(core_->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_accept_state(core_->ssl);
}

tls_stream::~tls_stream() {
  error_code ignored;
  core_->timer.cancel();
  core_->socket.close(ignored);
}

unsigned char* tls_stream::gather_buffer() {
  thread_local unsigned char buffer[record_bytes];
  return buffer;
}

void tls_stream::expires_after(std::chrono::steady_clock::duration d) {
  core_->expired = false;
  const std::uint64_t deadline = ++core_->deadline;
  core_->timer.expires_after(d);
  core_->timer.async_wait([weak = std::weak_ptr<core>(core_), deadline](error_code ec) {
    auto c = weak.lock();
    // A later expires_after() replaced this deadline even when its wait had already ended.
    if (!c || ec || c->deadline != deadline) {
      return;
    }
    c->expired = true;
    error_code ignored;
    c->socket.close(ignored);
  });
}

void tls_stream::cancel() {
  error_code ignored;
  core_->socket.cancel(ignored);
}

void tls_stream::close() {
  error_code ignored;
  core_->timer.cancel();
  core_->socket.close(ignored);
}

error_code tls_stream::wait_failed(error_code ec) const {
  if (core_->expired) {
    return boost::beast::error::timeout;
  }
  return ec;
}

tls_stream::step tls_stream::attempt(kind k, asio::mutable_buffer& buffer) {
  core& c = *core_;
  if (c.expired) {
    return {want::nothing, boost::beast::error::timeout, 0};
  }
  if ((k == kind::read || k == kind::write) && buffer.size() == 0) {
    return {};
  }
  ERR_clear_error();
  c.last_errno = 0;
  std::size_t bytes = 0;
  int ret = 0;
  switch (k) {
    case kind::handshake: ret = SSL_do_handshake(c.ssl); break;
    case kind::read: ret = SSL_read_ex(c.ssl, buffer.data(), buffer.size(), &bytes); break;
    case kind::write: ret = SSL_write_ex(c.ssl, buffer.data(), buffer.size(), &bytes); break;
    case kind::shutdown:
      ret = SSL_shutdown(c.ssl);
      if (ret == 0) {
        ret = 1;  // our close_notify is sent; the peer's is not waited for
      }
      break;
  }
  if (ret == 1) {
    if (k == kind::write && c.pending_write) {
      c.pending_write.reset();
    }
    return {want::nothing, {}, bytes};
  }
  const int error = SSL_get_error(c.ssl, ret);
  switch (error) {
    case SSL_ERROR_WANT_READ: return {want::read, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      if (k == kind::write && buffer.data() == gather_buffer()) {
        c.pending_write = std::make_unique<unsigned char[]>(buffer.size());
        std::memcpy(c.pending_write.get(), buffer.data(), buffer.size());
        buffer = asio::mutable_buffer(c.pending_write.get(), buffer.size());
      }
      return {want::write, {}, 0};
    case SSL_ERROR_ZERO_RETURN: return {want::nothing, asio::error::eof, 0};
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (c.last_errno != 0) {
        return {want::nothing, error_code(c.last_errno, boost::system::system_category()), 0};
      }
      return {want::nothing, asio::ssl::error::stream_truncated, 0};
    default: {
      const unsigned long code = ERR_get_error();
      ERR_clear_error();
      if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return {want::nothing, asio::ssl::error::stream_truncated, 0};
      }
      if (code == 0) {
        return {want::nothing, asio::error::fault, 0};
      }
      return {want::nothing, error_code(static_cast<int>(code), asio::error::get_ssl_category()), 0};
    }
  }
}

}  // namespace mxgw::net
