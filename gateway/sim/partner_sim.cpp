// partner-sim's server, after the gateway's own listener (gateway/net/server.cpp): one session per
// connection on its own strand, a deadline before every asynchronous step, a fresh parser with
// explicit limits per request, one response in flight at a time; plus fault switches and receipts.
#include "gateway/sim/partner_sim.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <future>
#include <iostream>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include "adapters/adapter.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/common/uuid.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/sim/notice_feed.hpp"

namespace mxgw::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class sim_session;

namespace {

constexpr std::size_t max_body_bytes = 16 * 1024 * 1024;
constexpr std::uint32_t max_header_bytes = 16 * 1024;
constexpr std::chrono::seconds handshake_timeout{10};
constexpr std::chrono::seconds idle_timeout{30};
constexpr std::chrono::seconds header_timeout{10};
constexpr std::chrono::seconds body_timeout{60};
constexpr std::chrono::seconds write_timeout{30};
constexpr std::chrono::seconds shutdown_timeout{2};
constexpr std::chrono::seconds linger_time{2};
constexpr std::size_t max_linger_bytes = 8 * 1024 * 1024;
constexpr std::chrono::milliseconds rebind_retry{100};

// TLS 1.2 suites: forward secret (ECDHE) and AEAD only, as the gateway's own listener.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

std::string json_object(const std::function<void(json_writer&)>& fill) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  fill(w);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void put(json_writer& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(json::non_null(value), static_cast<rapidjson::SizeType>(value.size()));
}

void put(json_writer& w, const char* key, std::uint64_t value) {
  w.Key(key);
  w.Uint64(value);
}

std::string error_body(std::string_view text) {
  return json_object([&](json_writer& w) { put(w, "error", text); });
}

void check_faults(const faults& f) {
  if (!(f.fail_rate >= 0.0 && f.fail_rate <= 1.0)) {
    throw std::invalid_argument("fail_rate must be between 0 and 1");
  }
  if (f.always_status != 0 && (f.always_status < 200 || f.always_status > 599)) {
    throw std::invalid_argument("always_status must be 0 (off) or an HTTP status 200..599");
  }
}

bool is_quiet_close(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted;
}

std::shared_ptr<asio::ssl::context> make_context(const partner_sim_options& options) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(native, 0);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1) {
    throw std::runtime_error("partner-sim: cannot set the TLS 1.2 cipher list");
  }
  const auto load = [](const std::filesystem::path& file, const char* what, auto&& step) {
    try {
      step();
    } catch (const std::exception& e) {
      throw std::runtime_error(file.string() + ": cannot load the " + what + ": " + e.what());
    }
  };
  load(options.cert, "certificate",
       [&] { ctx->use_certificate_chain_file(options.cert.string()); });
  load(options.key, "private key", [&] {
    ctx->use_private_key_file(options.key.string(), asio::ssl::context::pem);
    if (SSL_CTX_check_private_key(native) != 1) {
      throw std::runtime_error("the key does not match the certificate");
    }
  });
  load(options.ca, "client CA", [&] { ctx->load_verify_file(options.ca.string()); });
  // Client certificates must chain to `ca` and be fit for TLS client use.
  X509_STORE_set_purpose(SSL_CTX_get_cert_store(native), X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify_depth(native, 4);
  ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  static const unsigned char session_context[] = "mxgw-partner-sim";
  SSL_CTX_set_session_id_context(native, session_context, sizeof session_context - 1);
  return ctx;
}

}  // namespace

/// One answer, decided before it is written.
struct sim_reply {
  int status = 200;
  std::string body;
  std::string location;  ///< Location header when not empty
  std::string content_type = "application/json";
  std::chrono::milliseconds delay{0};
  bool drop = false;  ///< close without answering (the sim went down meanwhile)
};

struct partner_sim::impl : std::enable_shared_from_this<partner_sim::impl> {
  explicit impl(const partner_sim_options& o)
      : options(o),
        ioc(static_cast<int>(o.threads == 0 ? 1 : o.threads)),
        tls(make_context(o)),
        control(asio::make_strand(ioc)),
        acceptor(control),
        down_timer(control),
        current(o.faults),
        fail_first_left(o.faults.fail_first),
        rng(o.faults.seed) {
    if (o.format == "interpol") {
      // A notice feed: served from fixtures; nothing is posted to it.
      if (o.fixtures_dir.empty()) {
        throw std::invalid_argument("partner-sim: --format interpol needs --fixtures DIR");
      }
      feed = std::make_unique<notice_feed>(o.fixtures_dir);
      if (!o.feed_fail_page.empty()) {
        const auto colon = o.feed_fail_page.find(':');
        const std::string type = o.feed_fail_page.substr(0, colon);
        const std::string page =
            colon == std::string::npos ? std::string() : o.feed_fail_page.substr(colon + 1);
        if ((type != "red" && type != "yellow") || page.empty() || page.size() > 4 ||
            page.find_first_not_of("0123456789") != std::string::npos) {
          throw std::invalid_argument("partner-sim: --fail-page takes TYPE:PAGE, e.g. red:2");
        }
        feed->fail_page_once(type, std::stoi(page));
      }
      if (!o.feed_fail_detail.empty()) {
        feed->fail_detail(o.feed_fail_detail, 502);
      }
    } else if (o.format != "mx") {
      // A partner format: decode with the gateway's own adapter to find the message id.
      format = adapters::find_adapter(o.format);
      if (format == nullptr) {
        std::string known;
        for (const auto& id : adapters::adapter_ids()) {
          known += (known.empty() ? "" : ", ") + id;
        }
        throw std::invalid_argument("partner-sim: unknown format '" + o.format +
                                    "' (known: " + known + ")");
      }
      std::vector<identity::config_problem> problems;
      tables = std::make_unique<pipeline::code_tables>(
          pipeline::code_tables::load(o.mappings_dir, problems));
      if (!problems.empty()) {
        throw std::invalid_argument("partner-sim: the code tables in '" + o.mappings_dir.string() +
                                    "' (--mappings) cannot be loaded: " + problems.front().reason);
      }
    }
  }

  std::unique_ptr<notice_feed> feed;              // the stand-in notice feed, or null
  const adapters::adapter* format = nullptr;      // null: canonical mx
  std::unique_ptr<pipeline::code_tables> tables;  // for partner formats

  // Run time (the control strand owns the acceptor, the down timer and the session list walk).
  beast::error_code open_listener();
  void do_accept();
  void on_accept(std::uint64_t generation, beast::error_code ec, tcp::socket socket);
  void go_down(std::chrono::milliseconds period);
  void come_up();
  void close_sessions();
  std::list<std::weak_ptr<sim_session>>::iterator enrol(const std::shared_ptr<sim_session>& s);
  void forget(std::list<std::weak_ptr<sim_session>>::iterator it);
  // Runs `step` on the control strand and waits for it (the caller is not an io thread).
  void on_control_and_wait(std::function<void()> step);

  // Requests (any session thread).
  sim_reply receive_message(const std::string& body);
  /// Counts a POST held for latency_ms (+1 when its wait starts, -1 when it ends).
  void hold(int change);
  sim_reply stats_reply() const;
  void say(const std::string& line);

  partner_sim_options options;
  asio::io_context ioc;
  std::shared_ptr<asio::ssl::context> tls;
  asio::strand<asio::io_context::executor_type> control;
  tcp::acceptor acceptor;
  asio::steady_timer down_timer;
  tcp::endpoint endpoint;               // the bound endpoint, reused when coming back up
  std::uint64_t listen_generation = 0;  // one accept loop per opening of the listener
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> down{false};

  std::mutex control_mutex;  // start(), stop(), set_faults()
  bool started = false;
  bool stopped = false;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  mutable std::mutex state_mutex;           // everything below
  mutable std::condition_variable changed;  // notified after every POST was counted
  faults current;
  std::uint32_t fail_first_left = 0;
  std::mt19937_64 rng;
  std::unordered_map<std::string, std::string> receipts;  // id -> first receipt body
  std::unordered_map<std::string, std::string> bodies;    // id -> first body (keep_bodies)
  std::vector<std::string> order;
  sim_stats counters;

  std::mutex sessions_mutex;
  std::list<std::weak_ptr<sim_session>> sessions;

  std::mutex output_mutex;
};

class sim_session : public std::enable_shared_from_this<sim_session> {
 public:
  sim_session(tcp::socket&& socket, std::shared_ptr<partner_sim::impl> sim)
      : stream_(std::move(socket), *sim->tls),
        delay_timer_(stream_.get_executor()),
        sim_(std::move(sim)) {}

  ~sim_session() {
    if (registered_) {
      sim_->forget(registration_);
    }
  }

  void start() {
    registration_ = sim_->enrol(shared_from_this());
    registered_ = true;
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&sim_session::on_start, shared_from_this()));
  }

  // Closes the connection now, whatever it is doing (stop(), or the sim going down).
  void close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->closed_ = true;
      self->delay_timer_.cancel();
      beast::get_lowest_layer(self->stream_).close();
    });
  }

 private:
  void on_start() {
    if (closed_) {
      return;
    }
    // The whole TLS handshake, including the client certificate check, within one deadline.
    beast::get_lowest_layer(stream_).expires_after(handshake_timeout);
    stream_.async_handshake(
        asio::ssl::stream_base::server,
        beast::bind_front_handler(&sim_session::on_handshake, shared_from_this()));
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      if (!closed_) {
        sim_->say("TLS handshake refused: " + ec.message());
      }
      return;
    }
    wait_for_next_request();
  }

  // Keep-alive: wait for the first bytes of the next request within the idle timeout, then give
  // the request head its own deadline.
  void wait_for_next_request() {
    if (closed_) {
      return;
    }
    if (buffer_.size() > 0) {
      read_header();
      return;
    }
    if (sim_->stopping) {
      do_shutdown();
      return;
    }
    beast::get_lowest_layer(stream_).expires_after(idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(4096),
        beast::bind_front_handler(&sim_session::on_idle_read, shared_from_this()));
  }

  void on_idle_read(beast::error_code ec, std::size_t bytes) {
    if (ec) {
      if (ec == beast::error::timeout && !closed_) {
        do_shutdown();
      }
      return;
    }
    buffer_.commit(bytes);
    read_header();
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(max_header_bytes);
    parser_->body_limit(max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(header_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&sim_session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec);
    }
    beast::get_lowest_layer(stream_).expires_after(body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&sim_session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec);
    }
    handle();
  }

  void on_read_error(beast::error_code ec) {
    if (closed_ || ec == beast::error::timeout || is_quiet_close(ec)) {
      return;  // a deadline already closed the socket, or the peer left
    }
    if (ec == bhttp::error::body_limit) {
      sim_->say("request -> 413 body too large");
      return send_error(413, "body exceeds 16 MiB");
    }
    if (ec == bhttp::error::header_limit) {
      return send_error(431, "request head too large");
    }
    if (ec.category() == beast::error_code(bhttp::error::end_of_stream).category()) {
      return send_error(400, "not valid HTTP/1.1");
    }
  }

  void send_error(int status, std::string_view text) {
    linger_after_write_ = true;
    write({.status = status, .body = error_body(text)}, 11, false);
  }

  void handle() {
    const auto& req = parser_->get();
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    sim_reply reply;
    if (sim_->feed && target.starts_with("/notices/")) {
      if (req.method() == bhttp::verb::get) {
        auto answer = sim_->feed->answer(req.target(), req[bhttp::field::host]);
        reply = {.status = answer ? answer->status : 404,
                 .body = answer ? std::move(answer->body) : error_body("not found")};
        sim_->say("GET " + std::string(target) + " -> " + std::to_string(reply.status));
      } else {
        reply = {.status = 405, .body = error_body("GET only")};
      }
    } else if (target == "/v1/messages") {
      if (req.method() == bhttp::verb::post) {
        reply = sim_->receive_message(req.body());
        sim_->changed.notify_all();
      } else {
        reply = {.status = 405, .body = error_body("POST only")};
      }
    } else if (target == "/sim/stats") {
      if (req.method() == bhttp::verb::get) {
        reply = sim_->stats_reply();
      } else {
        reply = {.status = 405, .body = error_body("GET only")};
      }
    } else {
      reply = {.status = 404, .body = error_body("not found")};
    }
    if (reply.drop) {
      return close();
    }
    if (reply.delay.count() > 0) {
      // The timer is this step's deadline; stop() and going down cancel it.
      sim_->hold(+1);
      delay_timer_.expires_after(reply.delay);
      delay_timer_.async_wait([self = shared_from_this(), reply = std::move(reply), version,
                               keep_alive](beast::error_code ec) mutable {
        self->sim_->hold(-1);
        if (ec || self->closed_) {
          return;
        }
        self->write(std::move(reply), version, keep_alive);
      });
      return;
    }
    write(std::move(reply), version, keep_alive);
  }

  void write(sim_reply reply, unsigned version, bool keep_alive) {
    if (closed_) {
      return;
    }
    response_.emplace(static_cast<bhttp::status>(reply.status), version);
    response_->set(bhttp::field::server, "mxgw-partner-sim");
    response_->set(bhttp::field::content_type, reply.content_type);
    response_->set(bhttp::field::cache_control, "no-store");
    if (!reply.location.empty()) {
      response_->set(bhttp::field::location, reply.location);
    }
    response_->body() = std::move(reply.body);
    response_->keep_alive(keep_alive && !linger_after_write_ && !sim_->stopping && !sim_->down);
    response_->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(write_timeout);
    bhttp::async_write(stream_, *response_,
                       beast::bind_front_handler(&sim_session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec || closed_) {
      return;
    }
    const bool keep_alive = response_->keep_alive();
    response_.reset();
    if (linger_after_write_) {
      return linger();
    }
    if (!keep_alive) {
      return do_shutdown();
    }
    wait_for_next_request();
  }

  // After refusing a request early (413, 431, 400) the client may still be sending its body; read
  // and discard for a bounded time and amount so it reads our answer instead of a reset.
  void linger() {
    if (closed_ || lingered_bytes_ >= max_linger_bytes) {
      return do_shutdown();
    }
    if (!lingering_) {
      lingering_ = true;
      beast::get_lowest_layer(stream_).expires_after(linger_time);
    }
    stream_.async_read_some(asio::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                              if (ec) {
                                return self->do_shutdown();
                              }
                              self->lingered_bytes_ += bytes;
                              self->linger();
                            });
  }

  void do_shutdown() {
    if (closed_) {
      return;
    }
    beast::get_lowest_layer(stream_).expires_after(shutdown_timeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  asio::steady_timer delay_timer_;
  std::shared_ptr<partner_sim::impl> sim_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  bool closed_ = false;
  bool registered_ = false;
  bool linger_after_write_ = false;
  bool lingering_ = false;
  std::size_t lingered_bytes_ = 0;
  std::array<char, 16 * 1024> discard_{};
  std::list<std::weak_ptr<sim_session>>::iterator registration_;
};

// ---- the listener and the down switch (control strand) ----

beast::error_code partner_sim::impl::open_listener() {
  beast::error_code ec;
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
    beast::error_code ignored;
    acceptor.close(ignored);
    return ec;
  }
  ++listen_generation;
  do_accept();
  return ec;
}

void partner_sim::impl::do_accept() {
  acceptor.async_accept(
      asio::make_strand(ioc),
      beast::bind_front_handler(&impl::on_accept, shared_from_this(), listen_generation));
}

void partner_sim::impl::on_accept(std::uint64_t generation, beast::error_code ec,
                                  tcp::socket socket) {
  // A completion from an earlier opening of the listener (closed for down_for_ms meanwhile) must
  // not start a second accept loop.
  const bool current_loop = generation == listen_generation && acceptor.is_open();
  if (ec) {
    if (ec != asio::error::operation_aborted && current_loop && !stopping) {
      say("accept failed: " + ec.message());
      do_accept();
    }
    return;
  }
  if (stopping || down) {
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<sim_session>(std::move(socket), shared_from_this())->start();
  }
  if (current_loop && !stopping) {
    do_accept();
  }
}

void partner_sim::impl::go_down(std::chrono::milliseconds period) {
  down = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  close_sessions();
  say("down for " + std::to_string(period.count()) + " ms");
  down_timer.expires_after(period);
  down_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec && !self->stopping) {
      self->come_up();
    }
  });
}

void partner_sim::impl::come_up() {
  down_timer.cancel();
  down = false;
  if (stopping || acceptor.is_open()) {
    return;
  }
  if (const auto ec = open_listener()) {
    // Someone else holds the port for a moment; try again shortly (bounded by stop()).
    say("cannot listen again yet: " + ec.message());
    down_timer.expires_after(rebind_retry);
    down_timer.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (!wait_ec && !self->stopping) {
        self->come_up();
      }
    });
    return;
  }
  say("up again");
}

void partner_sim::impl::close_sessions() {
  std::vector<std::shared_ptr<sim_session>> live;
  {
    std::lock_guard lock(sessions_mutex);
    for (auto& weak : sessions) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  for (auto& s : live) {
    s->close();
  }
}

std::list<std::weak_ptr<sim_session>>::iterator partner_sim::impl::enrol(
    const std::shared_ptr<sim_session>& s) {
  std::lock_guard lock(sessions_mutex);
  return sessions.insert(sessions.end(), s);
}

void partner_sim::impl::forget(std::list<std::weak_ptr<sim_session>>::iterator it) {
  std::lock_guard lock(sessions_mutex);
  sessions.erase(it);
}

void partner_sim::impl::on_control_and_wait(std::function<void()> step) {
  std::promise<void> done;
  auto finished = done.get_future();
  asio::dispatch(control, [&] {
    step();
    done.set_value();
  });
  finished.wait();
}

// ---- requests ----

sim_reply partner_sim::impl::receive_message(const std::string& body) {
  sim_reply reply;
  {
    std::lock_guard lock(state_mutex);
    if (down) {
      reply.drop = true;  // went down while this request was being read: the partner is gone
      return reply;
    }
    ++counters.requests;
    reply.delay = std::chrono::milliseconds(current.latency_ms);
    std::string_view fault;
    if (fail_first_left > 0) {
      --fail_first_left;
      fault = "fail_first";
    } else if (current.fail_rate > 0.0 &&
               std::uniform_real_distribution<double>(0.0, 1.0)(rng) < current.fail_rate) {
      fault = "fail_rate";
    }
    if (!fault.empty()) {
      ++counters.failures_sent;
      reply.status = 503;
      reply.body = error_body("simulated transient failure");
    } else if (current.always_status != 0) {
      fault = "always_status";
      ++counters.failures_sent;
      reply.status = current.always_status;
      reply.body = current.always_body.empty() ? error_body("simulated permanent failure")
                                               : current.always_body;
    }
    if (!fault.empty()) {
      say("POST /v1/messages -> " + std::to_string(reply.status) + " simulated (" +
          std::string(fault) + ")");
      return reply;
    }
  }
  // Only the id is read; the rest of the message is neither logged nor kept (but for tests, with
  // keep_bodies).
  rapidjson::Document doc;
  std::string_view id;
  std::string reference;
  if (format != nullptr) {
    auto decoded = format->decode(body, {.tables = tables.get(), .sender = "mxgw"});
    if (decoded.status != 0) {
      reply.status = 400;
      reply.content_type = std::string(format->content_type());
      reply.body = format->encode_error(400, "not a valid message", decoded.errors);
      say("POST /v1/messages -> 400 invalid");
      return reply;
    }
    doc = std::move(decoded.message);
    reference = std::string(json::get_string(doc, "ref"));
    id = json::get_string(doc, "id");
  } else if (json::parse_untrusted(body, doc)) {
    reply.status = 400;
    reply.body = error_body("body is not valid JSON");
  } else {
    id = doc.IsObject() ? json::get_string(doc, "id") : std::string_view{};
    if (!is_uuid(id)) {
      reply.status = 400;
      reply.body = error_body("message id missing or not a UUID");
    }
  }
  if (reply.status == 400) {
    say("POST /v1/messages -> 400 invalid");
    return reply;
  }
  const std::string key(id);
  reply.status = 202;
  reply.location = "/v1/messages/" + key;
  std::lock_guard lock(state_mutex);
  if (auto it = receipts.find(key); it != receipts.end()) {
    ++counters.duplicates;
    if (format != nullptr) {
      reply.status = 200;
      reply.content_type = std::string(format->content_type());
    }
    reply.body = it->second;
    say("POST /v1/messages id=" + key + " -> 202 duplicate");
    return reply;
  }
  const std::string accepted_at = format_rfc3339_ms(std::chrono::system_clock::now());
  if (format != nullptr) {
    // Partner formats answer 200 with a receipt in their own format.
    reply.status = 200;
    reply.content_type = std::string(format->content_type());
    reply.body = format->encode_receipt({key, reference, accepted_at, "mxgw"},
                                        {.tables = tables.get(), .recipient = "mxgw"});
  } else {
    reply.body = json_object([&](json_writer& w) {
      put(w, "id", key);
      put(w, "status", "accepted");
      put(w, "acceptedAt", accepted_at);
    });
  }
  receipts.emplace(key, reply.body);
  order.push_back(key);
  if (options.keep_bodies) {
    bodies.emplace(key, std::string(body));
  }
  ++counters.unique_ids;
  say("POST /v1/messages id=" + key + " -> 202 accepted");
  return reply;
}

void partner_sim::impl::hold(int change) {
  {
    std::lock_guard lock(state_mutex);
    counters.held = change > 0 ? counters.held + 1 : counters.held - 1;
    counters.most_held = std::max(counters.most_held, counters.held);
  }
  changed.notify_all();
}

sim_reply partner_sim::impl::stats_reply() const {
  sim_stats s;
  {
    std::lock_guard lock(state_mutex);
    s = counters;
  }
  return {.status = 200, .body = json_object([&](json_writer& w) {
                           put(w, "requests", s.requests);
                           put(w, "uniqueIds", s.unique_ids);
                           put(w, "duplicates", s.duplicates);
                           put(w, "failuresSent", s.failures_sent);
                           put(w, "held", s.held);
                           put(w, "mostHeld", s.most_held);
                         })};
}

void partner_sim::impl::say(const std::string& line) {
  if (!options.verbose) {
    return;
  }
  std::lock_guard lock(output_mutex);
  std::cerr << "partner-sim: " << line << '\n';
}

// ---- partner_sim ----

partner_sim::partner_sim(const partner_sim_options& options) {
  check_faults(options.faults);
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    throw std::invalid_argument("partner-sim: '" + options.address + "' is not an IP address");
  }
  impl_ = std::make_shared<impl>(options);
  impl_->endpoint = tcp::endpoint(address, options.port);
}

partner_sim::~partner_sim() {
  stop();
}

void partner_sim::start() {
  std::lock_guard lock(impl_->control_mutex);
  if (impl_->started) {
    throw std::logic_error("partner-sim: start() called twice");
  }
  impl_->started = true;
  // No io thread runs yet, so the control strand's objects may be touched directly.
  if (const auto ec = impl_->open_listener()) {
    impl_->stopped = true;
    throw std::runtime_error("partner-sim: cannot listen on " + impl_->options.address + ":" +
                             std::to_string(impl_->options.port) + ": " + ec.message());
  }
  beast::error_code ignored;
  impl_->endpoint = impl_->acceptor.local_endpoint(ignored);
  impl_->bound_port = impl_->endpoint.port();
  if (const auto down_for = current_faults().down_for_ms; down_for > 0) {
    impl_->go_down(std::chrono::milliseconds(down_for));
  }
  impl_->work.emplace(impl_->ioc.get_executor());
  const std::size_t n = impl_->options.threads == 0 ? 1 : impl_->options.threads;
  for (std::size_t i = 0; i < n; ++i) {
    impl_->threads.emplace_back([impl = impl_] { impl->ioc.run(); });
  }
}

void partner_sim::stop() {
  std::lock_guard lock(impl_->control_mutex);
  if (!impl_->started || impl_->stopped) {
    impl_->stopped = true;
    return;
  }
  impl_->stopped = true;
  impl_->stopping = true;
  asio::dispatch(impl_->control, [impl = impl_] {
    impl->down_timer.cancel();
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->close_sessions();
  });
  // Without the guard the loop ends once every connection has closed.
  impl_->work.reset();
  for (auto& t : impl_->threads) {
    t.join();
  }
  impl_->threads.clear();
}

std::uint16_t partner_sim::port() const {
  return impl_->bound_port.load();
}

void partner_sim::set_faults(const faults& f) {
  check_faults(f);
  std::lock_guard lock(impl_->control_mutex);
  {
    std::lock_guard state(impl_->state_mutex);
    impl_->current = f;
    impl_->fail_first_left = f.fail_first;
    impl_->rng.seed(f.seed);
  }
  if (!impl_->started || impl_->stopped) {
    return;  // start() applies down_for_ms
  }
  impl_->on_control_and_wait([&] {
    if (f.down_for_ms > 0) {
      impl_->go_down(std::chrono::milliseconds(f.down_for_ms));
    } else if (impl_->down || !impl_->acceptor.is_open()) {
      impl_->come_up();
    }
  });
}

faults partner_sim::current_faults() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->current;
}

sim_stats partner_sim::stats() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->counters;
}

bool partner_sim::wait_until(const std::function<bool(const sim_stats&)>& predicate,
                             std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->state_mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return predicate(impl_->counters); });
}

bool partner_sim::has(const std::string& id) const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->receipts.count(id) != 0;
}

std::optional<std::string> partner_sim::received(const std::string& id) const {
  std::lock_guard lock(impl_->state_mutex);
  const auto it = impl_->bodies.find(id);
  return it == impl_->bodies.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::vector<std::string> partner_sim::ids() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->order;
}

notice_feed* partner_sim::feed() const {
  return impl_->feed.get();
}

std::optional<listen_endpoint> parse_listen(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos ||
        text.substr(0, colon).find(':') != std::string_view::npos) {
      return std::nullopt;  // no port, or an IPv6 address without brackets
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const unsigned long number = std::stoul(std::string(port));
  beast::error_code ec;
  asio::ip::make_address(std::string(host), ec);
  if (number > 65535 || ec) {
    return std::nullopt;
  }
  return listen_endpoint{std::string(host), static_cast<std::uint16_t>(number)};
}

int run_partner_sim_command(const partner_sim_options& options) {
  // The signal set exists before the listener does, so an early signal is queued, not fatal.
  asio::io_context signals_ioc;
  asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  partner_sim sim(options);
  sim.start();
  const auto address = asio::ip::make_address(options.address);
  const std::string host = address.is_v6() ? "[" + options.address + "]" : options.address;
  std::cout << "partner-sim listening on " << host << ":" << sim.port() << std::endl;
  signals.async_wait([](const beast::error_code&, int) {});
  signals_ioc.run();  // the wait is the only work: returns once a signal came
  sim.stop();
  return 0;
}

}  // namespace mxgw::sim
