// Pooled outbound HTTPS (see partner_client.hpp). One exchange = resolve, connect, handshake (for
// a new connection), write, read, each bounded by the exchange's deadline.
#include "gateway/delivery/partner_client.hpp"

#include <openssl/ssl.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>

#include "gateway/identity/crl.hpp"

namespace mxgw::delivery {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

// A response body kept up to a limit. Unlike string_body with the parser's body_limit, a body
// over the limit is read up to it (and no further) before the read fails with body_limit, so the
// status, the headers and the first `limit` bytes are known: a partner that accepted a message
// with an overlong receipt has still accepted it.
struct bounded_body {
  struct value_type {
    std::string text;                           // what was read, at most `limit` bytes
    std::size_t limit = max_post_answer_bytes;  // set before each read
  };

  class reader {
   public:
    template <bool IsRequest, class Fields>
    reader(bhttp::header<IsRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      // A declared length says nothing about what arrives: reserve no more than the limit.
      if (length) {
        body_.text.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, body_.limit)));
      }
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      const std::size_t room = body_.limit - body_.text.size();
      const std::size_t size = asio::buffer_size(buffers);
      const std::size_t take = std::min(room, size);
      const std::size_t old = body_.text.size();
      body_.text.resize(old + take);
      asio::buffer_copy(asio::buffer(body_.text.data() + old, take), buffers, take);
      // One byte beyond the limit is enough to know the body is longer.
      ec = take < size ? beast::error_code(bhttp::error::body_limit) : beast::error_code();
      return take;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

struct connection {
  connection(asio::io_context& ioc, asio::ssl::context& ctx) : stream(ioc, ctx) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::string host_port;         // the pool key part that must match
  std::uint64_t generation = 0;  // the CRLs it was checked against (partner_client::impl)
};

}  // namespace

struct partner_client::impl : std::enable_shared_from_this<partner_client::impl> {
  impl(asio::io_context& io, const client_identity& identity, std::size_t max_idle)
      : ioc(io), ctx(asio::ssl::context::tls_client), max_idle_per_partner(max_idle) {
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    try {
      ctx.use_certificate_chain_file(identity.certificate.string());
      ctx.use_private_key_file(identity.private_key.string(), asio::ssl::context::pem);
      for (const auto& ca : identity.server_cas) {
        ctx.load_verify_file(ca.string());
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("delivery client identity: ") + e.what());
    }
    try {
      identity::load_crls_into(SSL_CTX_get_cert_store(ctx.native_handle()), identity.server_crls);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("delivery client identity: ") + e.what());
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
  }

  asio::io_context& ioc;
  asio::ssl::context ctx;
  std::size_t max_idle_per_partner;
  std::mutex pool_mutex;
  std::map<std::string, std::deque<std::shared_ptr<connection>>> idle;  // partner -> connections
  /// The CRLs put in force since construction (null: the context's own store) and how many times
  /// that happened; under pool_mutex. A connection of an older generation is not kept.
  std::shared_ptr<X509_STORE> verify_store;
  std::uint64_t generation = 0;

  /// A new connection, checking the CRLs in force now.
  std::shared_ptr<connection> make_connection() {
    auto c = std::make_shared<connection>(ioc, ctx);
    std::lock_guard lock(pool_mutex);
    c->generation = generation;
    if (verify_store) {
      SSL_set1_verify_cert_store(c->stream.native_handle(), verify_store.get());
    }
    return c;
  }

  std::shared_ptr<connection> take_idle(const std::string& partner, const std::string& host_port) {
    std::lock_guard lock(pool_mutex);
    auto& list = idle[partner];
    while (!list.empty()) {
      auto c = std::move(list.front());
      list.pop_front();
      if (c->host_port == host_port) {
        return c;
      }
    }
    return nullptr;
  }

  void give_back(const std::string& partner, std::shared_ptr<connection> c) {
    std::lock_guard lock(pool_mutex);
    auto& list = idle[partner];
    if (list.size() < max_idle_per_partner && c->generation == generation) {
      list.push_back(std::move(c));
    }
  }
};

namespace {

// The most 1xx interim responses read before an answer; more is a failure ("too-many-interim").
constexpr int max_interim_answers = 16;

// One exchange; keeps itself alive through its handlers.
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(std::shared_ptr<partner_client::impl> client, std::string partner, std::string host,
           std::string port, std::string target, std::string body, std::string content_type,
           std::chrono::milliseconds timeout, std::function<void(post_result)> done,
           bhttp::verb method = bhttp::verb::post, partner_client::get_options extra = {})
      : client_(std::move(client)),
        partner_(std::move(partner)),
        host_(std::move(host)),
        port_(std::move(port)),
        target_(std::move(target)),
        body_(std::move(body)),
        content_type_(std::move(content_type)),
        deadline_(std::chrono::steady_clock::now() + timeout),
        done_(std::move(done)),
        resolver_(client_->ioc),
        method_(method),
        extra_(std::move(extra)) {}

  void start(bool allow_reuse) {
    if (allow_reuse) {
      conn_ = client_->take_idle(partner_, host_ + ":" + port_);
    }
    if (conn_) {
      reused_ = true;
      return send();
    }
    conn_ = client_->make_connection();
    conn_->host_port = host_ + ":" + port_;
    // SNI and host name verification against the endpoint's host.
    SSL_ctrl(conn_->stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host_.c_str()));
    conn_->stream.set_verify_callback(asio::ssl::host_name_verification(host_));
    resolver_.async_resolve(host_, port_,
                            beast::bind_front_handler(&exchange::on_resolve, shared_from_this()));
  }

 private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) {
      return finish_error("resolve");
    }
    lowest().expires_at(deadline_);
    lowest().async_connect(results,
                           beast::bind_front_handler(&exchange::on_connect, shared_from_this()));
  }

  void on_connect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      return finish_error(ec == beast::error::timeout ? "timeout" : "connect");
    }
    // Without it the request waits behind the delayed ACK of the handshake (no session tickets).
    beast::error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    lowest().expires_at(deadline_);
    conn_->stream.async_handshake(
        asio::ssl::stream_base::client,
        beast::bind_front_handler(&exchange::on_handshake, shared_from_this()));
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      return finish_error(ec == beast::error::timeout ? "timeout" : "tls");
    }
    send();
  }

  void send() {
    request_.method(method_);
    request_.target(target_);
    request_.version(11);
    // RFC 9110: the port belongs in Host unless it is the scheme's default.
    const bool v6 = host_.find(':') != std::string::npos;
    const std::string host = v6 ? "[" + host_ + "]" : host_;
    request_.set(bhttp::field::host, port_ == "443" ? host : host + ":" + port_);
    request_.set(bhttp::field::user_agent, "mxgw");
    if (method_ == bhttp::verb::post) {
      request_.set(bhttp::field::content_type, content_type_);
      request_.body() = body_;
    } else {
      request_.set(bhttp::field::accept, "application/json");
    }
    for (const auto& [name, value] : extra_.headers) {
      request_.set(name, value);
    }
    request_.keep_alive(true);
    request_.prepare_payload();
    lowest().expires_at(deadline_);
    bhttp::async_write(conn_->stream, request_,
                       beast::bind_front_handler(&exchange::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) {
      return stale_or_fail(ec, "write");
    }
    read_answer();
  }

  // Reads one response (interim or final) with a fresh parser, within the exchange's deadline.
  void read_answer() {
    parser_.emplace();
    // The body's own limit applies (bounded_body); the parser's would refuse a long declared
    // length before reading anything of the body.
    parser_->body_limit(boost::none);
    parser_->get().body().limit =
        method_ == bhttp::verb::post ? max_post_answer_bytes : extra_.max_body_bytes;
    lowest().expires_at(deadline_);
    bhttp::async_read(conn_->stream, conn_->buffer, *parser_,
                      beast::bind_front_handler(&exchange::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::body_limit) {
      // The connection is not reused (the rest of the body is still on it). A GET's caller needs
      // the whole answer: it fails. A POST's answer is its status: the partner took the message
      // (2xx) or refused it whatever the length of what it says; the body is cut to what was
      // read (for a receipt, the store keeps at most max_receipt_bytes of it anyway).
      if (method_ != bhttp::verb::post || !parser_->is_header_done()) {
        return finish_error("too-large");
      }
      auto& res = parser_->get();
      post_result result;
      result.status = static_cast<int>(res.result_int());
      result.body = std::move(res.body().text);
      result.body_cut = true;
      result.reused = reused_;
      return done_(std::move(result));
    }
    if (ec == asio::ssl::error::stream_truncated && parser_->is_header_done() &&
        parser_->need_eof()) {
      // An answer without a length ends where the connection does, and many servers close
      // without a TLS close_notify. Only such an answer: a truncated one that declared its
      // length (or chunks) stays a failure. The connection is not kept (keep_alive() is false).
      parser_->put_eof(ec);
    }
    if (ec) {
      return stale_or_fail(ec, "read");
    }
    auto& res = parser_->get();
    const int status = static_cast<int>(res.result_int());
    if (status / 100 == 1) {
      // A 1xx is not the answer (RFC 9110 15.2): read on to the final one, or its bytes would
      // answer the next request on this connection. 101 means the partner left HTTP, which we
      // never asked for: a failure, and the connection is not kept.
      if (status == 101) {
        return finish_error("switching-protocols");
      }
      if (++interim_answers_ > max_interim_answers) {
        return finish_error("too-many-interim");
      }
      return read_answer();
    }
    post_result result;
    result.status = status;
    result.body = std::move(res.body().text);
    result.reused = reused_;
    if (parser_->keep_alive() && nothing_unread()) {
      lowest().expires_never();
      client_->give_back(partner_, std::move(conn_));
    }
    done_(std::move(result));
  }

  // True when no byte past the answer has arrived, neither in our buffer nor decrypted in the
  // TLS layer: whatever is there would be read as the answer to the connection's next request.
  bool nothing_unread() {
    return conn_->buffer.size() == 0 && SSL_pending(conn_->stream.native_handle()) == 0;
  }

  // A kept-alive connection the peer had closed fails on first use: try once on a new one, as
  // long as nothing of the response was read (the partner has not processed anything we know of;
  // and receivers deduplicate by id anyway).
  void stale_or_fail(beast::error_code ec, const char* phase) {
    if (reused_ && ec != beast::error::timeout && std::chrono::steady_clock::now() < deadline_) {
      auto fresh = std::make_shared<exchange>(client_, partner_, host_, port_, target_,
                                              std::move(body_), std::move(content_type_),
                                              std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  deadline_ - std::chrono::steady_clock::now()),
                                              std::move(done_), method_, std::move(extra_));
      fresh->start(false);
      return;
    }
    finish_error(ec == beast::error::timeout ? "timeout" : phase);
  }

  void finish_error(const char* what) {
    post_result result;
    result.error = what;
    result.reused = reused_;
    done_(std::move(result));
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(conn_->stream); }

  std::shared_ptr<partner_client::impl> client_;
  std::string partner_, host_, port_, target_, body_, content_type_;
  std::chrono::steady_clock::time_point deadline_;
  std::function<void(post_result)> done_;
  tcp::resolver resolver_;
  std::shared_ptr<connection> conn_;
  bool reused_ = false;
  int interim_answers_ = 0;  // 1xx responses read so far
  bhttp::request<bhttp::string_body> request_;
  std::optional<bhttp::response_parser<bounded_body>> parser_;
  bhttp::verb method_;
  partner_client::get_options extra_;
};

}  // namespace

partner_client::partner_client(asio::io_context& ioc, const client_identity& identity,
                               std::size_t max_idle_per_partner)
    : impl_(std::make_shared<impl>(ioc, identity, max_idle_per_partner)) {}

partner_client::~partner_client() {
  close_idle();
}

void partner_client::post(const std::string& partner, const std::string& endpoint, std::string body,
                          std::string content_type, std::chrono::milliseconds timeout,
                          std::function<void(post_result)> done) {
  send(partner, endpoint, static_cast<int>(bhttp::verb::post), std::move(body), std::move(content_type), timeout, {},
       std::move(done));
}

void partner_client::get(const std::string& partner, const std::string& url,
                         std::chrono::milliseconds timeout, get_options options,
                         std::function<void(post_result)> done) {
  send(partner, url, static_cast<int>(bhttp::verb::get), {}, {}, timeout, std::move(options), std::move(done));
}

void partner_client::send(const std::string& partner, const std::string& endpoint, int method,
                          std::string body, std::string content_type,
                          std::chrono::milliseconds timeout, get_options options,
                          std::function<void(post_result)> done) {
  auto url = boost::urls::parse_absolute_uri(endpoint);
  if (!url || url->scheme() != "https" || !url->has_authority()) {
    post_result result;
    result.error = "bad-endpoint";
    done(std::move(result));
    return;
  }
  std::string host(url->encoded_host());
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = url->has_port() ? std::string(url->port()) : "443";
  std::string target(url->encoded_path());
  if (target.empty()) {
    target = "/";
  }
  if (url->has_query()) {
    target += "?" + std::string(url->encoded_query());
  }
  std::make_shared<exchange>(impl_, partner, std::move(host), port, std::move(target),
                             std::move(body), std::move(content_type), timeout, std::move(done),
                             static_cast<bhttp::verb>(method), std::move(options))
      ->start(true);
}

void partner_client::close_idle() {
  std::lock_guard lock(impl_->pool_mutex);
  impl_->idle.clear();
}

client_crls partner_client::read_crls(const std::vector<std::filesystem::path>& files,
                                      std::vector<identity::config_problem>& problems,
                                      std::vector<std::string>& stale) const {
  // The context's own store holds the CAs of construction; it never changes afterwards.
  auto renewed = identity::renew_store(SSL_CTX_get_cert_store(impl_->ctx.native_handle()), files, 0,
                                       problems, stale);
  return {renewed.store, renewed.batch.crls.size()};
}

void partner_client::put_in_force(const client_crls& crls) {
  if (!crls.store) {
    return;
  }
  std::lock_guard lock(impl_->pool_mutex);
  impl_->verify_store = crls.store;
  ++impl_->generation;
  impl_->idle.clear();
}

}  // namespace mxgw::delivery
