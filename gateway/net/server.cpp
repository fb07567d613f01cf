// Listener and sessions, after Beast's advanced server: one session per connection on its own
// strand, a deadline before every asynchronous step, a fresh parser with explicit limits per
// request, one response in flight at a time.
#include "gateway/net/server.hpp"

#include <openssl/ssl.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/common/log.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/crl.hpp"
#include "gateway/identity/peer_identity.hpp"
#include "gateway/net/address_key.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/net/tls_stream.hpp"

namespace mxgw::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class session;

namespace {

/// The event loop's threads: the configured number, or one per core for 0.
std::size_t event_loop_threads(std::size_t configured) {
  return configured == 0 ? std::max(1u, std::thread::hardware_concurrency()) : configured;
}

}  // namespace

/// What a sweep over the open connections reads of one (under the sessions mutex): enough to
/// decide on it again without touching its TLS state, which belongs to its strand.
struct open_connection {
  std::shared_ptr<session> owner;
  connected_peer peer;
  std::string address;
  std::shared_ptr<X509> cert;
  std::shared_ptr<STACK_OF(X509)> chain;  // the verified chain, leaf first, anchor last
  std::uint64_t decided_version;          // the trust version its principal was decided on
};

struct server::impl : std::enable_shared_from_this<server::impl> {
  config::listener_settings settings;
  std::size_t threads;
  listener_role role;
  asio::io_context& ioc;  // the server's (see server.hpp): it outlives every handler holding this
  std::shared_ptr<asio::ssl::context> tls;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> handshakes_failed{0}, connections_refused{0}, timeouts{0}, requests{0};
  std::atomic<std::uint64_t> peers_no_longer_accepted{0}, lifetimes_ended{0};
  std::mutex sessions_mutex;
  std::list<std::weak_ptr<session>> sessions;  // for stop(): close idle connections
  std::mutex addresses_mutex;
  // Open connections per client: per IPv4 address, per IPv6 /64 (connection_count_key).
  std::unordered_map<std::string, std::size_t> per_address;
  /// The client-certificate checks in force: the context's own store as built at start, then
  /// each one a CRL reload puts in force. Each new connection takes a reference for its
  /// handshake; a kept-alive connection compares it with the one it last decided on.
  std::mutex verify_mutex;
  std::shared_ptr<X509_STORE> verify_store;
  /// Wakes when a CRL in force passes its nextUpdate, or a newer one reaches its lastUpdate
  /// (identity::next_crl_change of the store in force): the idle connections are then decided on
  /// as their next request would be, so one whose CRL went stale is closed at that time. One per
  /// listener, on its own strand; armed at start, by each reload and after each wake.
  asio::strand<asio::io_context::executor_type> crl_strand;
  asio::system_timer crl_timer;

  std::shared_ptr<X509_STORE> current_verify_store() {
    std::lock_guard lock(verify_mutex);
    return verify_store;
  }

  /// Counts a new connection from `address`; false (and nothing counted) when it has too many.
  bool admit_address(const std::string& address) {
    std::lock_guard lock(addresses_mutex);
    auto& open = per_address[address];
    if (open >= settings.limits.max_connections_per_address) {
      if (open == 0) {
        per_address.erase(address);
      }
      return false;
    }
    ++open;
    return true;
  }
  void release_address(const std::string& address) {
    std::lock_guard lock(addresses_mutex);
    auto it = per_address.find(address);
    if (it != per_address.end() && --it->second == 0) {
      per_address.erase(it);
    }
  }

  impl(const config::listener_settings& s, std::size_t n, listener_role r, asio::io_context& io)
      : settings(s),
        threads(n),
        role(std::move(r)),
        ioc(io),
        tls(make_server_context(
            s.tls,
            [authenticate = role.authenticate](X509* cert, X509* anchor) {
              return authenticate(cert, anchor).refusal;
            },
            role.on_handshake_refused, "mxgw-" + role.name)),
        acceptor(asio::make_strand(ioc)),
        // Shares the context's ownership: the store lives as long as the context.
        verify_store(tls, SSL_CTX_get_cert_store(tls->native_handle())),
        crl_strand(asio::make_strand(ioc)),
        crl_timer(crl_strand) {}

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  std::list<std::weak_ptr<session>>::iterator enrol(const std::shared_ptr<session>& s);
  void forget(std::list<std::weak_ptr<session>>::iterator it);
  /// Calls `decide` on every open connection with a peer that `select` picks (under the sessions
  /// mutex, from its peer and the trust version it was decided on; keep it cheap), outside the
  /// mutex, and closes at once those it gives a reason for, logging each with `occasion`.
  /// Returns how many were closed.
  std::size_t close_where(
      const std::function<bool(const connected_peer&, std::uint64_t decided_version)>& select,
      const std::function<std::string(open_connection&)>& decide, std::string_view occasion);
  /// Sets crl_timer for the next time the CRLs in force change by time alone (none: no wait),
  /// on its strand; once stopping, cancels it instead. Thread-safe.
  void arm_crl_timer();
  /// The CRL timer's wake: each open connection is decided on again, on its strand, if it is idle
  /// (session::recheck_if_idle); then the timer is armed for the next time.
  void on_crl_timer();
};

namespace {

std::chrono::milliseconds ms(std::uint32_t value) {
  return std::chrono::milliseconds(value);
}

std::shared_ptr<X509> hold(X509* cert) {
  X509_up_ref(cert);
  return {cert, &X509_free};
}

std::shared_ptr<STACK_OF(X509)> hold(STACK_OF(X509) * chain) {
  return {X509_chain_up_ref(chain),
          [](STACK_OF(X509) * held) { sk_X509_pop_free(held, X509_free); }};
}

// The last certificate of a verified chain: its trust anchor (null when there is none).
X509* anchor_of(STACK_OF(X509) * chain) {
  const int length = chain == nullptr ? 0 : sk_X509_num(chain);
  return length > 0 ? sk_X509_value(chain, length - 1) : nullptr;
}

bool is_quiet_close(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted;
}

}  // namespace

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket&& socket, std::shared_ptr<server::impl> server)
      : stream_(std::move(socket), server->tls->native_handle()),
        server_(std::move(server)),
        handshake_store_(server_->current_verify_store()) {
    // The connection holds its own reference: a reload meanwhile does not pull it away (and
    // is decided on when the handshake completes).
    SSL_set1_verify_cert_store(stream_.native_handle(), handshake_store_.get());
    beast::error_code ec;
    auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      peer_ = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    }
    // The lifetime counts from the accept: a handshake or a slow first request is part of it.
    lifetime_end_ = std::chrono::steady_clock::now() +
                    std::chrono::seconds(limits().max_connection_lifetime_seconds);
  }

  ~session() {
    if (registered_) {
      server_->forget(registration_);
    }
    server_->release_address(address_);
    server_->connections.fetch_sub(1);
  }

  /// The client address this connection is counted under (set once, before start()).
  void counted_as(std::string address) { address_ = std::move(address); }

  void start() {
    registration_ = server_->enrol(shared_from_this());
    registered_ = true;
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&session::on_start, shared_from_this()));
  }

  // Called on stop(): a connection waiting for its next request is closed now; one in the middle
  // of a request finishes it and then closes.
  // Called from another thread. The handler holds the connection weakly (as recheck_if_idle's):
  // the connection may be finishing its last handler now, and the event loop stop with it.
  void stop() {
    asio::dispatch(stream_.get_executor(), [weak = weak_from_this()] {
      if (const auto self = weak.lock(); self && self->idle_) {
        self->stream_.cancel();
      }
    });
  }

  // The peer established in the handshake; the caller holds the server's sessions mutex.
  const connected_peer& peer_locked() const { return peer_info_; }

  // What a sweep decides on; nullopt before the handshake has accepted a peer, or when `select`
  // does not pick it. The caller holds the server's sessions mutex (the peer and its
  // certificates are set under it, once).
  template <typename Select>
  std::optional<open_connection> open_locked(const Select& select) {
    if (peer_info_.principal.empty() || !cert_ || !select(peer_info_, checked_version_.load())) {
      return std::nullopt;
    }
    return open_connection{.owner = shared_from_this(),
                           .peer = peer_info_,
                           .address = peer_,
                           .cert = cert_,
                           .chain = chain_,
                           .decided_version = checked_version_.load()};
  }

  // After a CRL in force passed its nextUpdate (or a newer one came into force): a connection
  // waiting for its next request is decided on now, on its strand, as that request would be, and
  // closed when refused. One with a request under way is decided on as it goes idle again.
  void recheck_if_idle() {
    // Held weakly: a check still queued when the listener stops must not keep the session (and
    // through it the listener and its io_context, which holds the check) alive.
    asio::post(stream_.get_executor(), [weak = weak_from_this()] {
      if (const auto self = weak.lock(); self && self->idle_ && !self->closed_) {
        self->recheck_idle();
      }
    });
  }

  // A sweep decided on trust version `version` that the peer is still who it was; `seen` is the
  // version the sweep found (a newer decision made meanwhile is kept).
  void decided_on(std::uint64_t seen, std::uint64_t version) {
    checked_version_.compare_exchange_strong(seen, version);
  }

  // Called after a revocation or a partner was disabled: the connection is closed now, whatever
  // it is doing (an answer being computed is dropped with it).
  void close_now() {
    closed_ = true;  // at once: a request that arrives from now on is not answered
    asio::dispatch(stream_.get_executor(), [weak = weak_from_this()] {
      const auto self = weak.lock();
      if (!self) {
        return;  // gone meanwhile, and its socket closed with it
      }
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both,
                                                               ignored);
      self->stream_.close();
    });
  }

 private:
  void on_start() {
    // The whole TLS handshake, including the client certificate check, within one deadline.
    stream_.expires_after(ms(limits().handshake_timeout_ms));
    stream_.async_handshake(beast::bind_front_handler(&session::on_handshake, shared_from_this()));
  }

  void on_handshake(beast::error_code ec, std::size_t) {
    if (ec) {
      ++server_->handshakes_failed;
      if (ec == beast::error::timeout) {
        ++server_->timeouts;
      }
      log::warn({.event = "tls.handshake_failed",
                 .reason = ec == beast::error::timeout ? "timeout" : "handshake-error",
                 .peer = peer_,
                 .detail = ec.message()});
      return;
    }
    // The verify callback already accepted the certificate; decide again on the trust state in
    // force now (it may have changed during the handshake) and remember who this is.
    // Deciding and recording under the sessions mutex means a close_connections() that runs
    // after a trust change either sees this peer or this decision already sees the change.
    const auto [cert, chain, anchor] = verified_peer();
    // Kept for the check before each request: the span in which every certificate of the
    // verified chain is valid (the leaf's, shortened by an issuer that expires first).
    const bool validity_known = chain_validity(cert, chain);
    authentication who;
    {
      std::lock_guard lock(server_->sessions_mutex);
      // The version first: a change after this read makes the next request decide again.
      checked_version_ = server_->role.trust_version ? server_->role.trust_version() : 0;
      who = cert != nullptr ? server_->role.authenticate(cert, anchor)
                            : authentication{{}, "no-certificate", {}, {}};
      if (who.refusal.empty() && !validity_known) {
        who.refusal = "certificate-invalid";
      }
      // The handshake verified against the CRLs in force at the accept. CRLs put in force since
      // are decided on here, under the mutex: a reload's sweep of the open connections either
      // runs after this and sees the peer, or before, and then this sees its CRLs.
      if (who.refusal.empty() && cert != nullptr) {
        who.refusal = revocation_after_handshake(cert, chain);
      }
      if (who.refusal.empty() && !who.principal.empty()) {
        peer_info_ = {who.principal, who.fingerprint, who.serial_hex};
        cert_ = hold(cert);
        chain_ = hold(chain);
      }
    }
    if (!who.refusal.empty() || who.principal.empty()) {
      log::warn({.event = "tls.client_refused", .reason = who.refusal, .peer = peer_});
      if (server_->role.on_handshake_refused) {
        server_->role.on_handshake_refused(who.refusal);
      }
      return;
    }
    partner_ = who.principal;
    if (closed_) {
      return;
    }
    read_header();
  }

  // Keep-alive: wait for the first bytes of the next request within the idle timeout, then give
  // the request head its own deadline (a slow head cannot hide inside the idle allowance).
  void wait_for_next_request() {
    if (buffer_.size() > 0) {
      read_header();
      return;
    }
    idle_ = true;
    if (server_->stopping) {
      idle_ = false;
      do_shutdown();
      return;
    }
    // A CRL the last revocation decision rested on may have passed its nextUpdate while the
    // request was under way, after the listener's CRL timer had looked at this connection: it is
    // decided on now rather than left open until its next request.
    if (std::chrono::system_clock::now() >= crl_until_ && !recheck_idle()) {
      return;
    }
    // An idle connection holds as little memory as we can give back: the request buffer is
    // released and the wait for the next request reads into a small one (it grows as needed).
    buffer_.shrink_to_fit();
    // The wait ends at the idle deadline or at the end of the connection's lifetime.
    const auto left = lifetime_end_ - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      idle_ = false;
      ++server_->lifetimes_ended;
      do_shutdown();
      return;
    }
    stream_.expires_after(
        std::min<std::chrono::steady_clock::duration>(ms(limits().idle_timeout_ms), left));
    stream_.async_read_some(buffer_.prepare(idle_read_bytes),
                            beast::bind_front_handler(&session::on_idle_read, shared_from_this()));
  }

  void on_idle_read(beast::error_code ec, std::size_t bytes) {
    idle_ = false;
    if (ec || closed_) {
      if (ec == beast::error::timeout && lifetime_passed()) {
        ++server_->lifetimes_ended;
      }
      if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
        do_shutdown();
      }
      return;
    }
    buffer_.commit(bytes);
    read_header();
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    parser_->body_limit(limits().max_body_bytes);
    stream_.expires_after(ms(limits().header_timeout_ms));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec, "header");
    }
    // Before each request, and before its body is read: a kept-alive connection keeps the
    // identity of its handshake only while the certificate is valid and still names the same
    // principal in the trust state in force.
    if (const std::string refusal = recheck_peer(); !refusal.empty()) {
      return refuse_peer(refusal);
    }
    // A declared length over max_body_bytes was refused with the head (413). Past every early
    // refusal, a client that waits for `100 Continue` before its body is told to send it now
    // (RFC 9110 10.1.1); an expectation we cannot meet is refused before the body is read.
    const auto& req = parser_->get();
    if (const auto expect = req.find(bhttp::field::expect); expect != req.end()) {
      if (!beast::iequals(expect->value(), "100-continue")) {
        return send_error(http::problem(417, "expectation-failed", "Expectation failed",
                                        "The only expectation understood is 100-continue."));
      }
      // An HTTP/1.0 client does not know 1xx answers: its expectation is ignored.
      if (req.version() >= 11 && !parser_->is_done()) {
        stream_.expires_after(ms(limits().write_timeout_ms));
        return asio::async_write(
            stream_, asio::buffer(continue_line),
            beast::bind_front_handler(&session::on_continue, shared_from_this()));
      }
    }
    read_body();
  }

  void on_continue(beast::error_code ec, std::size_t) {
    if (ec) {
      if (ec == beast::error::timeout) {
        ++server_->timeouts;
        log::warn({.event = "http.timeout",
                   .partner = partner_,
                   .reason = "write-timeout",
                   .peer = peer_});
      }
      return;
    }
    if (closed_) {
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(ms(limits().body_timeout_ms));
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec, "body");
    }
    if (closed_) {
      return;  // trust was withdrawn while the request arrived
    }
    ++server_->requests;
    handle();
  }

  void on_read_error(beast::error_code ec, std::string_view phase) {
    if (ec == bhttp::error::body_limit) {
      return send_error(http::problem(
          413, "body-too-large", "Body too large",
          "The body exceeds max_body_bytes (" + std::to_string(limits().max_body_bytes) + ")."));
    }
    if (ec == bhttp::error::header_limit) {
      return send_error(http::problem(431, "header-too-large", "Request header too large",
                                      "The request head exceeds max_header_bytes."));
    }
    if (ec == beast::error::timeout) {
      ++server_->timeouts;
      log::warn({.event = "http.timeout",
                 .partner = partner_,
                 .reason = phase == "header" ? "header-timeout" : "body-timeout",
                 .peer = peer_});
      return;  // the deadline already closed the socket; nothing can be sent
    }
    if (is_quiet_close(ec)) {
      return;
    }
    if (ec.category() == beast::error_code(bhttp::error::end_of_stream).category() ||
        ec == bhttp::error::bad_method || ec == bhttp::error::bad_target) {
      return send_error(
          http::problem(400, "bad-request", "Bad request", "The request is not valid HTTP/1.1."));
    }
    log::warn(
        {.event = "http.read_failed", .partner = partner_, .peer = peer_, .detail = ec.message()});
  }

  // The chain's validity is known from the handshake; its revocation is decided again only when
  // the CRLs in force are not those of the last decision (a reload) or one it rested on has
  // passed its nextUpdate (or a newer one has come into force); the principal is decided again
  // only when the trust state's version is no longer the one the last decision was made on.
  // Returns the refusal's reason code, or "" when the peer is still who it was.
  std::string recheck_peer() {
    const auto now = std::chrono::system_clock::now();
    if (now > valid_until_) {
      return "certificate-expired";
    }
    if (now < valid_from_) {
      return "certificate-not-yet-valid";
    }
    if (!cert_) {
      return "no-certificate";
    }
    if (auto store = server_->current_verify_store(); store != crl_store_ || now >= crl_until_) {
      if (auto refusal = check_revocation(std::move(store), cert_.get(), chain_.get(), now);
          !refusal.empty()) {
        return refusal;
      }
    }
    if (!server_->role.trust_version || server_->role.trust_version() == checked_version_) {
      return {};
    }
    // Under the sessions mutex as in the handshake, so that a close_connections() after a
    // trust change sees either the old peer or a decision that already saw the change.
    std::lock_guard lock(server_->sessions_mutex);
    const auto version = server_->role.trust_version();
    const authentication who = server_->role.authenticate(cert_.get(), anchor_of(chain_.get()));
    if (!who.refusal.empty()) {
      return who.refusal;
    }
    if (who.principal != partner_) {
      return "principal-changed";  // e.g. a pin moved to another partner: a new handshake decides
    }
    checked_version_ = version;
    return {};
  }

  // The peer's certificate, its verified chain and the chain's trust anchor (its last
  // certificate); null where the handshake gave none.
  struct verified {
    X509* cert;
    STACK_OF(X509) * chain;
    X509* anchor;
  };
  verified verified_peer() const {
    SSL* ssl = stream_.native_handle();
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    return {SSL_get0_peer_certificate(ssl), chain, anchor_of(chain)};
  }

  // Right after the handshake (the caller holds the sessions mutex): notes the CRLs the
  // handshake's verification rested on and, when a reload has put others in force since the
  // accept, verifies the chain against those. Returns the refusal's reason code or "".
  std::string revocation_after_handshake(X509* cert, STACK_OF(X509) * chain) {
    const auto now = std::chrono::system_clock::now();
    crl_store_ = handshake_store_;
    // OpenSSL decided on its own clock, which may lag this one by a tick: counted from a second
    // earlier, a CRL that passed its nextUpdate just now is still one to look at again.
    crl_until_ = identity::revocation_decision_until(crl_store_.get(), cert, chain,
                                                     std::chrono::system_clock::to_time_t(now) - 1);
    if (auto current = server_->current_verify_store(); current != handshake_store_) {
      return check_revocation(std::move(current), cert, chain, now);
    }
    return {};
  }

  // Verifies the chain again against `store` (the CRLs in force) at `now`; when it passes, the
  // decision is remembered with the time until which it stands. Returns the reason code or "".
  std::string check_revocation(std::shared_ptr<X509_STORE> store, X509* cert,
                               STACK_OF(X509) * chain, std::chrono::system_clock::time_point now) {
    const auto at = std::chrono::system_clock::to_time_t(now);
    if (auto refusal = verify_again(store.get(), cert, chain, at); !refusal.empty()) {
      return refusal;
    }
    crl_until_ = identity::revocation_decision_until(store.get(), cert, chain, at);
    crl_store_ = std::move(store);
    return {};
  }

  // An idle connection decided on as its next request would be (recheck_peer); closed when
  // refused, logged and counted as that request's refusal would be. False when closed.
  bool recheck_idle() {
    const std::string refusal = recheck_peer();
    if (refusal.empty()) {
      return true;
    }
    count_no_longer_accepted(refusal, "idle kept-alive connection closed");
    idle_ = false;
    close_now();
    return false;
  }

  // Counts and logs that the certificate of this kept-alive connection (`what`) is no longer
  // accepted, for `reason`.
  void count_no_longer_accepted(const std::string& reason, std::string_view what) {
    ++server_->peers_no_longer_accepted;
    log::warn({.event = "tls.client_refused",
               .partner = partner_,
               .reason = reason,
               .peer = peer_,
               .detail = std::string(what) + "; certificate " + peer_info_.fingerprint});
  }

  // The certificate no longer stands for the principal of this connection: the request gets a
  // problem document and the connection is closed.
  void refuse_peer(const std::string& reason) {
    count_no_longer_accepted(reason, "kept-alive connection");
    send_error(http::problem(403, "certificate-not-accepted", "Client certificate not accepted",
                             "The client certificate of this connection is no longer accepted (" +
                                 reason + "); the connection is closed."));
  }

  // Sets valid_from_ and valid_until_ to the span in which the leaf and every certificate of its
  // verified chain are valid; false when a time cannot be read.
  bool chain_validity(X509* cert, STACK_OF(X509) * chain) {
    if (cert == nullptr) {
      return false;
    }
    const auto leaf = identity::validity_of(cert);
    if (!leaf) {
      return false;
    }
    valid_from_ = leaf->not_before;
    valid_until_ = leaf->not_after;
    const int length = chain == nullptr ? 0 : sk_X509_num(chain);
    for (int i = 0; i < length; ++i) {
      const auto period = identity::validity_of(sk_X509_value(chain, i));
      if (!period) {
        return false;
      }
      valid_from_ = std::max(valid_from_, period->not_before);
      valid_until_ = std::min(valid_until_, period->not_after);
    }
    return true;
  }

  bool lifetime_passed() const { return std::chrono::steady_clock::now() >= lifetime_end_; }

  void send_error(http::response r) {
    r.close = true;
    linger_after_write_ = true;
    // A refused HEAD request is answered without a body too (when its head was read).
    const bool head =
        parser_ && parser_->is_header_done() && parser_->get().method() == bhttp::verb::head;
    write(std::move(r), 11, false, head);
  }

  void handle() {
    const auto& req = parser_->get();
    http::request view{
        .method = {req.method_string().data(), req.method_string().size()},
        .target = {req.target().data(), req.target().size()},
        .content_type = {req[bhttp::field::content_type].data(),
                         req[bhttp::field::content_type].size()},
        .body = req.body(),
        .partner = partner_,
        .peer = peer_,
        .if_match = {req[bhttp::field::if_match].data(), req[bhttp::field::if_match].size()},
    };
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == bhttp::verb::head;
    // The answer may come from a store thread: hop back onto this connection's strand, and keep
    // the event loop alive while we wait for it.
    auto guard = asio::make_work_guard(stream_.get_executor());
    server_->role.handle(view, [self = shared_from_this(), guard = std::move(guard), version,
                                keep_alive, head](http::response r) mutable {
      asio::post(self->stream_.get_executor(), [self, r = std::move(r), version, keep_alive, head,
                                                guard = std::move(guard)]() mutable {
        self->write(std::move(r), version, keep_alive, head);
      });
    });
  }

  // Writes `r` as the answer to a request of HTTP `version`; `head`: the request was HEAD, so
  // the answer has the status and headers a GET would have had (Content-Length included) and no
  // body (RFC 9110 9.3.2: a client reads none, and would take it for the next answer).
  void write(http::response r, unsigned version, bool keep_alive, bool head) {
    if (closed_) {
      return;  // closed after a revocation while the answer was being made
    }
    response_.emplace(static_cast<bhttp::status>(r.status), version);
    response_->set(bhttp::field::server, "mxgw");
    response_->set(bhttp::field::content_type, r.content_type);
    response_->set(bhttp::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers) {
      response_->set(name, value);
    }
    response_->body() = std::move(r.body);
    // Past its lifetime a connection carries this answer, with `Connection: close`, and no more.
    const bool keep = keep_alive && !r.close && !server_->stopping;
    if (keep && lifetime_passed()) {
      ++server_->lifetimes_ended;
      response_->keep_alive(false);
    } else {
      response_->keep_alive(keep);
    }
    response_->prepare_payload();
    if (head) {
      response_->body().clear();  // Content-Length stays the length of the body not sent
    }
    stream_.expires_after(ms(limits().write_timeout_ms));
    bhttp::async_write(stream_, *response_,
                       beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) {
      if (ec == beast::error::timeout) {
        ++server_->timeouts;
        log::warn({.event = "http.timeout",
                   .partner = partner_,
                   .reason = "write-timeout",
                   .peer = peer_});
      }
      return;
    }
    const bool keep_alive = response_->keep_alive();
    response_.reset();
    parser_.reset();  // the request (and its body) is done with once its answer is written
    if (linger_after_write_) {
      return linger();
    }
    if (!keep_alive) {
      return do_shutdown();
    }
    wait_for_next_request();
  }

  // After refusing a request early (413, 431, 400) the client may still be sending its body.
  // Closing now would reset the connection and the client would lose our answer, so read and
  // discard for a bounded time and amount first (a "lingering close", as nginx does).
  void linger() {
    if (lingered_bytes_ >= max_linger_bytes) {
      return do_shutdown();
    }
    if (!lingering_) {
      lingering_ = true;
      stream_.expires_after(linger_time);
    }
    if (!discard_) {
      discard_ = std::make_unique<std::array<char, 16 * 1024>>();
    }
    stream_.async_read_some(asio::buffer(*discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                              if (ec) {
                                return self->do_shutdown();
                              }
                              self->lingered_bytes_ += bytes;
                              self->linger();
                            });
  }

  void do_shutdown() {
    stream_.expires_after(std::chrono::seconds(2));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  const config::listener_limits& limits() const { return server_->settings.limits; }

  tls_stream stream_;
  std::shared_ptr<server::impl> server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  std::string partner_;
  std::string peer_;
  std::string address_;  // the client IP this connection is counted under
  static constexpr std::size_t max_linger_bytes = 8 * 1024 * 1024;
  static constexpr std::chrono::seconds linger_time{2};
  static constexpr std::size_t idle_read_bytes = 512;
  static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

  connected_peer peer_info_;
  // The verified chain of the handshake, held for the checks of later requests and for the
  // listener's sweeps (set once, under the sessions mutex, with peer_info_).
  std::shared_ptr<X509> cert_;
  std::shared_ptr<STACK_OF(X509)> chain_;
  std::shared_ptr<X509_STORE> handshake_store_;  // the checks the handshake verified against
  std::shared_ptr<X509_STORE> crl_store_;        // the checks of the last revocation decision
  // Until when that decision stands by time alone (a CRL's nextUpdate, or a newer CRL's
  // lastUpdate); max(): no CRL covers the chain.
  std::chrono::system_clock::time_point crl_until_ = std::chrono::system_clock::time_point::max();
  // The trust version the principal was last decided on (also by a sweep, on another thread).
  std::atomic<std::uint64_t> checked_version_{0};
  std::chrono::system_clock::time_point valid_from_, valid_until_;  // the chain's validity
  std::chrono::steady_clock::time_point lifetime_end_;  // max_connection_lifetime_seconds
  bool idle_ = false;
  std::atomic<bool> closed_{false};
  bool registered_ = false;
  bool linger_after_write_ = false;
  bool lingering_ = false;
  std::size_t lingered_bytes_ = 0;
  std::unique_ptr<std::array<char, 16 * 1024>> discard_;  // only while lingering
  std::list<std::weak_ptr<session>>::iterator registration_;
};

std::list<std::weak_ptr<session>>::iterator server::impl::enrol(const std::shared_ptr<session>& s) {
  std::lock_guard lock(sessions_mutex);
  return sessions.insert(sessions.end(), s);
}

void server::impl::forget(std::list<std::weak_ptr<session>>::iterator it) {
  std::lock_guard lock(sessions_mutex);
  sessions.erase(it);
}

void server::impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc),
                        beast::bind_front_handler(&impl::on_accept, shared_from_this()));
}

void server::impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec) {
    if (ec == asio::error::operation_aborted || stopping) {
      return;
    }
    log::warn({.event = "net.accept_failed", .detail = ec.message()});
  } else if (connections.load() >= settings.limits.max_connections) {
    // Over the limit: close at once, before any TLS work, so a flood costs us almost nothing.
    ++connections_refused;
    log::warn({.event = "net.connection_refused", .reason = "max-connections"});
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    beast::error_code ignored;
    const auto remote = socket.remote_endpoint(ignored);
    const std::string peer = ignored ? std::string("?") : remote.address().to_string();
    std::string address = connection_count_key(peer);
    if (!admit_address(address)) {
      // One address may not take every slot: the others keep being served. An IPv6 client is
      // counted by its /64, from which it could take a new address for every connection.
      ++connections_refused;
      log::warn({.event = "net.connection_refused",
                 .reason = "max-connections-per-address",
                 .peer = peer,
                 .detail = address == peer ? std::string() : "counted as " + address});
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ignored);  // answers must not wait for delayed ACKs
      connections.fetch_add(1);
      std::shared_ptr<session> s;
      try {
        s = std::make_shared<session>(std::move(socket), shared_from_this());
      } catch (const std::exception& e) {
        // Out of memory in OpenSSL, or no descriptor flags: this connection only. The session's
        // destructor did not run, so undo its counts here.
        connections.fetch_sub(1);
        release_address(address);
        log::error({.event = "net.session_failed", .peer = peer, .detail = e.what()});
      }
      if (s) {
        s->counted_as(std::move(address));
        s->start();
      }
    }
  }
  if (!stopping) {
    do_accept();
  }
}

server::server(const config::listener_settings& settings, std::size_t threads, listener_role role)
    : ioc_(std::make_unique<asio::io_context>(static_cast<int>(event_loop_threads(threads)))),
      impl_(std::make_shared<impl>(settings, event_loop_threads(threads), std::move(role), *ioc_)) {
  beast::error_code ec;
  const auto address = asio::ip::make_address(settings.address, ec);
  if (ec) {
    throw std::runtime_error("listener address '" + settings.address + "' is not an IP address");
  }
  const tcp::endpoint endpoint(address, settings.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("cannot listen on " + settings.address + ":" +
                             std::to_string(settings.port) + ": " + ec.message());
  }
  impl_->do_accept();
  impl_->arm_crl_timer();
}

server::~server() {
  stop();
  // What is left in the event loop (handlers posted after run() returned, or everything when it
  // never ran) holds connections and the listener: destroying the io_context destroys those
  // handlers, and with them the last references, while its services still exist.
  impl_.reset();
  ioc_.reset();
}

std::uint16_t server::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void server::run() {
  std::vector<std::thread> extra;
  for (std::size_t i = 1; i < impl_->threads; ++i) {
    extra.emplace_back([this] { ioc_->run(); });
  }
  ioc_->run();
  for (auto& t : extra) {
    t.join();
  }
}

void server::stop() {
  if (impl_->stopping.exchange(true)) {
    return;
  }
  asio::dispatch(impl_->acceptor.get_executor(), [weak = std::weak_ptr<impl>(impl_)] {
    if (const auto listener = weak.lock()) {
      beast::error_code ignored;
      listener->acceptor.close(ignored);
    }
  });
  impl_->arm_crl_timer();  // cancels it, now that the listener is stopping
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(impl_->sessions_mutex);
    for (auto& weak : impl_->sessions) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  for (auto& s : live) {
    s->stop();
  }
}

std::size_t server::close_connections(const std::function<bool(const connected_peer&)>& which) {
  // Every session is held until the mutex is released: the last reference must not be dropped
  // under it (the destructor takes it too).
  std::vector<std::shared_ptr<session>> live;
  std::vector<bool> matches;
  {
    std::lock_guard lock(impl_->sessions_mutex);
    for (auto& weak : impl_->sessions) {
      if (auto s = weak.lock()) {
        matches.push_back(!s->peer_locked().principal.empty() && which(s->peer_locked()));
        live.push_back(std::move(s));
      }
    }
  }
  std::size_t closed = 0;
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (matches[i]) {
      live[i]->close_now();
      ++closed;
    }
  }
  return closed;
}

std::size_t server::impl::close_where(
    const std::function<bool(const connected_peer&, std::uint64_t decided_version)>& select,
    const std::function<std::string(open_connection&)>& decide, std::string_view occasion) {
  // Every session is held until the mutex is released: the last reference must not be dropped
  // under it (the destructor takes it too).
  std::vector<std::shared_ptr<session>> live;
  std::vector<open_connection> open;
  {
    std::lock_guard lock(sessions_mutex);
    for (auto& weak : sessions) {
      if (auto s = weak.lock()) {
        if (auto connection = s->open_locked(select)) {
          open.push_back(std::move(*connection));
        }
        live.push_back(std::move(s));
      }
    }
  }
  std::size_t closed = 0;
  for (auto& connection : open) {
    const std::string refusal = decide(connection);
    if (refusal.empty()) {
      continue;
    }
    log::warn({.event = "tls.client_refused",
               .partner = connection.peer.principal,
               .reason = refusal,
               .peer = connection.address,
               .detail = "open connection closed (" + std::string(occasion) + "); certificate " +
                         connection.peer.fingerprint});
    connection.owner->close_now();
    ++closed;
  }
  return closed;
}

std::size_t server::close_connections_no_longer_accepted() {
  const auto& role = impl_->role;
  if (!role.trust_version) {
    return 0;
  }
  // Only the connections decided on another version than the current one are looked at: at the
  // poller's ticks, which change nothing, that is none.
  const auto current = role.trust_version();
  return impl_->close_where(
      [current](const connected_peer&, std::uint64_t decided) { return decided != current; },
      [&role](open_connection& connection) -> std::string {
        // The version first, as in the handshake: a change after this read is swept again.
        const auto version = role.trust_version();
        const authentication who =
            role.authenticate(connection.cert.get(), anchor_of(connection.chain.get()));
        if (!who.refusal.empty()) {
          return who.refusal;
        }
        if (who.principal != connection.peer.principal) {
          return "principal-changed";
        }
        connection.owner->decided_on(connection.decided_version, version);
        return {};
      },
      "trust-changed");
}

void server::impl::arm_crl_timer() {
  // Held weakly: stop() arms it once more (to cancel it), when the io_context may already have
  // stopped running; a handler left in its queue holding the listener would keep the listener,
  // and so the io_context that holds the handler, alive for ever.
  asio::post(crl_strand, [weak = weak_from_this()] {
    const auto self = weak.lock();
    if (!self) {
      return;
    }
    const auto at = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    const auto next = identity::next_crl_change(self->current_verify_store().get(), at);
    if (self->stopping || next == std::chrono::system_clock::time_point::max()) {
      self->crl_timer.cancel();
      return;
    }
    // A new expiry cancels the wait for the old one (its handler sees operation_aborted). The
    // wait holds the listener weakly: it must not keep it alive past its owner.
    self->crl_timer.expires_at(next);
    self->crl_timer.async_wait([weak = self->weak_from_this()](beast::error_code ec) {
      if (auto listener = weak.lock(); listener && !ec) {
        listener->on_crl_timer();
      }
    });
  });
}

void server::impl::on_crl_timer() {
  // Every session is held until the mutex is released: the last reference must not be dropped
  // under it (the destructor takes it too). Only idle ones decide here: one in its handshake or
  // with a request under way is decided on by that request's own check, or as it goes idle.
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(sessions_mutex);
    for (auto& weak : sessions) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  for (auto& s : live) {
    s->recheck_if_idle();
  }
  arm_crl_timer();
}

verify_store_update server::read_crls(const std::vector<std::filesystem::path>& files,
                                      std::vector<config::config_problem>& problems,
                                      std::vector<std::string>& stale) const {
  return prepare_verify_store(*impl_->tls, files, problems, stale);
}

std::size_t server::put_in_force(const verify_store_update& update) {
  if (!update.store) {
    return 0;
  }
  {
    std::lock_guard lock(impl_->verify_mutex);
    impl_->verify_store = update.store;
  }
  impl_->arm_crl_timer();  // for the new CRLs' nextUpdate
  // Each connection the new CRLs may refuse is decided on as the check before its next request
  // would decide (its chain verified again against the new store, at one time); the others are
  // left to that check. They are those whose serial a new CRL lists (another issuer's
  // certificate with the same serial is not revoked by it) and, when a new CRL is already past
  // its nextUpdate, those such a CRL covers (crl-expired, unless a current one of the issuer
  // came with it).
  X509_STORE* store = update.store.get();
  const auto at = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  const bool any_stale = identity::holds_stale_crl(store, at);
  if (update.revoked_serials.empty() && !any_stale) {
    return 0;
  }
  auto listed = [&update](const connected_peer& peer) {
    return update.revoked_serials.contains(peer.serial_hex);
  };
  return impl_->close_where(
      [&listed, any_stale](const connected_peer& peer, std::uint64_t) {
        return any_stale || listed(peer);
      },
      [&listed, store, at](open_connection& connection) -> std::string {
        X509* cert = connection.cert.get();
        STACK_OF(X509)* chain = connection.chain.get();
        if (!listed(connection.peer) && !identity::rests_on_stale_crl(store, cert, chain, at)) {
          return {};
        }
        return verify_again(store, cert, chain, at);
      },
      "crl-reloaded");
}

listener_counters server::counters() const {
  return {impl_->handshakes_failed.load(),
          impl_->connections_refused.load(),
          impl_->timeouts.load(),
          impl_->requests.load(),
          impl_->peers_no_longer_accepted.load(),
          impl_->lifetimes_ended.load()};
}

}  // namespace mxgw::net
