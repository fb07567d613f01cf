// mxgw-loadgen: a mutual-TLS HTTP/1.1 load generator (Asio/Beast), the client side of the
// benchmarks in bench/run.sh. It presents a client certificate like a real partner and measures
// one of three things:
//   keep-alive (default)  N connections, each sending requests back to back for T seconds;
//   --new-connection      every request on a fresh connection: a full TLS handshake (no session
//                         resumption, no tickets), one request with `Connection: close`;
//   --idle                N connections that each make one request and then stay open, idle,
//                         for T seconds (memory per idle connection is measured on the server).
// Bodies come from a file; every occurrence of the placeholder ({{uuid}} by default) is replaced
// by a fresh random UUID per request, since the gateway deduplicates by message id.
// It reports requests/s, latency percentiles (p50, p99, p99.9) and answers and errors by kind,
// as text on stderr and, with --json, as one JSON object on stdout. Single-threaded: pin it to a
// core with taskset.
#include <openssl/ssl.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

enum class run_mode { keep_alive, new_connection, idle };

struct options {
  std::string url;
  std::string cert, key, ca;
  std::string method = "POST";
  std::string body_file;
  std::string placeholder = "{{uuid}}";
  std::string content_type = "application/json";
  std::string ready_file;
  std::size_t connections = 64;
  std::size_t setup_window = 64;  // idle mode: connections being set up at once
  double duration_s = 10;
  double warmup_s = 1;
  std::uint32_t timeout_ms = 10000;
  bool json = false;
  bool tls13_only = true;
  run_mode mode = run_mode::keep_alive;
};

/// The request target, split from --url.
struct target_url {
  std::string host;
  std::string port;
  std::string target;
};

/// A body template: the text around each placeholder.
class body_template {
 public:
  body_template(std::string text, const std::string& placeholder) {
    if (placeholder.empty()) {
      parts_.push_back(std::move(text));
      return;
    }
    std::size_t from = 0;
    for (auto at = text.find(placeholder); at != std::string::npos;
         at = text.find(placeholder, from)) {
      parts_.push_back(text.substr(from, at - from));
      from = at + placeholder.size();
    }
    parts_.push_back(text.substr(from));
  }

  /// The body with a fresh UUID in place of every placeholder (the same one in each place).
  std::string make(std::mt19937_64& random) const {
    if (parts_.size() == 1) {
      return parts_.front();
    }
    const std::string id = uuid_v4(random);
    std::string out;
    out.reserve(parts_.size() * id.size() + total_size());
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      if (i > 0) {
        out += id;
      }
      out += parts_[i];
    }
    return out;
  }

 private:
  std::size_t total_size() const {
    std::size_t n = 0;
    for (const auto& p : parts_) {
      n += p.size();
    }
    return n;
  }

  static std::string uuid_v4(std::mt19937_64& random) {
    std::array<unsigned char, 16> bytes{};
    const std::uint64_t a = random(), b = random();
    for (int i = 0; i < 8; ++i) {
      bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(a >> (8 * i));
      bytes[static_cast<std::size_t>(i + 8)] = static_cast<unsigned char>(b >> (8 * i));
    }
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) {
        out += '-';
      }
      out += hex[bytes[i] >> 4];
      out += hex[bytes[i] & 0x0f];
    }
    return out;
  }

  std::vector<std::string> parts_;
};

/// Everything the connections share (one thread: no locks).
struct run_state {
  run_state(const options& o, target_url u, asio::io_context& io, asio::ssl::context& t,
            tcp::resolver::results_type e, body_template b)
      : opts(o), url(std::move(u)), ioc(io), tls(t), endpoints(std::move(e)), body(std::move(b)) {}

  const options& opts;
  target_url url;
  asio::io_context& ioc;
  asio::ssl::context& tls;
  tcp::resolver::results_type endpoints;
  body_template body;
  std::mt19937_64 random{std::random_device{}()};
  clock_type::time_point start, measure_from, end;
  bool stopping = false;

  // Results (only what completes inside [measure_from, end) counts).
  std::vector<std::uint32_t> latencies_us;
  std::map<int, std::uint64_t> statuses;
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t handshakes = 0;
  std::uint64_t connections_open = 0;  // idle mode: established and idle now
  std::uint64_t peak_open = 0;         // idle mode: the most established at once
  std::uint64_t connections_started = 0;
  std::size_t connections_done = 0;  // connections that have finished for good

  bool measuring(clock_type::time_point t) const { return t >= measure_from && t < end; }
  void error(const std::string& kind) {
    if (measuring(clock_type::now())) {
      ++errors[kind];
    }
  }
};

/// One client connection: connect, handshake, then requests according to the mode.
class connection : public std::enable_shared_from_this<connection> {
 public:
  explicit connection(run_state& state) : state_(state), retry_(state.ioc) {}

  void start() { connect(); }

 private:
  void connect() {
    if (state_.stopping || clock_type::now() >= state_.end) {
      return finish();
    }
    stream_.emplace(state_.ioc, state_.tls);
    ++state_.connections_started;
    // SNI and host name verification against the URL's host (the macro form trips
    // -Wold-style-cast).
    SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(state_.url.host.c_str()));
    stream_->set_verify_callback(asio::ssl::host_name_verification(state_.url.host));
    request_start_ = clock_type::now();
    lowest().expires_after(timeout());
    lowest().async_connect(state_.endpoints,
                           [self = shared_from_this()](beast::error_code ec, const auto&) {
                             self->on_connect(ec);
                           });
  }

  void on_connect(beast::error_code ec) {
    if (ec) {
      return fail("connect", ec);
    }
    beast::error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    if (state_.opts.mode == run_mode::new_connection) {
      // Close with a reset: thousands of handshakes per second must not exhaust the ephemeral
      // ports with TIME_WAIT sockets.
      lowest().socket().set_option(asio::socket_base::linger(true, 0), ignored);
    }
    lowest().expires_after(timeout());
    stream_->async_handshake(asio::ssl::stream_base::client,
                             [self = shared_from_this()](beast::error_code e) {
                               self->on_handshake(e);
                             });
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      return fail("handshake", ec);
    }
    if (state_.measuring(clock_type::now())) {
      ++state_.handshakes;
    }
    send();
  }

  void send() {
    if (state_.opts.mode != run_mode::new_connection) {
      request_start_ = clock_type::now();
    }
    request_.emplace(bhttp::string_to_verb(state_.opts.method), state_.url.target, 11);
    request_->set(bhttp::field::host, state_.url.host);
    request_->set(bhttp::field::user_agent, "mxgw-loadgen");
    if (state_.opts.method == "POST") {
      request_->set(bhttp::field::content_type, state_.opts.content_type);
      request_->body() = state_.body.make(state_.random);
    }
    request_->keep_alive(state_.opts.mode != run_mode::new_connection);
    request_->prepare_payload();
    lowest().expires_after(timeout());
    bhttp::async_write(*stream_, *request_,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         self->on_write(ec);
                       });
  }

  void on_write(beast::error_code ec) {
    if (ec) {
      return fail("write", ec);
    }
    parser_.emplace();
    parser_->body_limit(16 * 1024 * 1024);
    bhttp::async_read(*stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code e, std::size_t) {
                        self->on_read(e);
                      });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      return fail("read", ec);
    }
    const auto now = clock_type::now();
    const int status = static_cast<int>(parser_->get().result_int());
    const bool keep_alive = parser_->get().keep_alive();
    if (state_.measuring(now)) {
      ++state_.statuses[status];
      if (status >= 200 && status < 300) {
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(now - request_start_).count();
        state_.latencies_us.push_back(static_cast<std::uint32_t>(
            std::min<long long>(us, std::numeric_limits<std::uint32_t>::max())));
      }
    }
    parser_.reset();
    switch (state_.opts.mode) {
      case run_mode::keep_alive:
        if (!keep_alive) {
          return reconnect();
        }
        if (state_.stopping || now >= state_.end) {
          return finish();
        }
        return send();
      case run_mode::new_connection:
        return reconnect();
      case run_mode::idle:
        if (!keep_alive) {
          return fail("closed", beast::error_code{});
        }
        return park();
    }
  }

  // Idle mode: count this connection as established and wait, without a deadline, until the
  // server closes it or the run ends.
  void park() {
    ++state_.connections_open;
    state_.peak_open = std::max(state_.peak_open, state_.connections_open);
    parked_ = true;
    lowest().expires_never();
    stream_->async_read_some(asio::buffer(scratch_),
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                               --self->state_.connections_open;
                               self->parked_ = false;
                               if (!self->state_.stopping) {
                                 ++self->state_.errors[ec ? "idle-closed" : "idle-data"];
                               }
                               self->close();
                               self->finish();
                             });
  }

  void reconnect() {
    close();
    connect();
  }

  void close() {
    if (stream_) {
      beast::error_code ignored;
      lowest().socket().close(ignored);
    }
    stream_.reset();
    buffer_.clear();
  }

  void fail(const char* phase, beast::error_code ec) {
    if (!state_.stopping && clock_type::now() < state_.end) {
      state_.error(ec == beast::error::timeout ? std::string(phase) + "-timeout"
                                               : std::string(phase));
    }
    if (state_.opts.mode == run_mode::idle) {
      close();
      return finish();
    }
    // Retry after a short pause, so a server that refuses connections is not hammered in a
    // tight loop (and the error counts stay meaningful).
    close();
    retry_.expires_after(std::chrono::milliseconds(10));
    retry_.async_wait([self = shared_from_this()](beast::error_code) { self->connect(); });
  }

  void finish() {
    if (state_.opts.mode != run_mode::idle) {
      close();
    }
    if (!finished_) {
      finished_ = true;
      ++state_.connections_done;
    }
  }

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(state_.opts.timeout_ms);
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(*stream_); }

  run_state& state_;
  asio::steady_timer retry_;  // the pause before reconnecting after an error
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request<bhttp::string_body>> request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  clock_type::time_point request_start_;
  std::array<char, 64> scratch_{};
  bool parked_ = false;
  bool finished_ = false;

 public:
  /// Closes the socket of a parked (idle) connection at the end of the run.
  void release() {
    if (parked_ && stream_) {
      beast::error_code ignored;
      lowest().socket().close(ignored);
    }
  }
};

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(path + ": cannot read");
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

target_url split_url(const std::string& text) {
  auto url = boost::urls::parse_absolute_uri(text);
  if (!url || url->scheme() != "https" || !url->has_authority()) {
    throw std::runtime_error("--url must be https://HOST:PORT/PATH");
  }
  target_url out{std::string(url->encoded_host()),
                 url->has_port() ? std::string(url->port()) : "443",
                 std::string(url->encoded_path())};
  if (out.target.empty()) {
    out.target = "/";
  }
  if (url->has_query()) {
    out.target += "?" + std::string(url->encoded_query());
  }
  return out;
}

double percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)] / 1000.0;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(usage.ru_utime) + tv(usage.ru_stime);
}

const char* mode_name(run_mode m) {
  switch (m) {
    case run_mode::keep_alive:
      return "keep-alive";
    case run_mode::new_connection:
      return "new-connection";
    case run_mode::idle:
      return "idle";
  }
  return "?";
}

int run(const options& opts) {
  asio::io_context ioc(1);
  asio::ssl::context tls(asio::ssl::context::tls_client);
  SSL_CTX* native = tls.native_handle();
  SSL_CTX_set_min_proto_version(native, opts.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  // No session resumption: every connection is a full handshake.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  tls.load_verify_file(opts.ca);
  tls.set_verify_mode(asio::ssl::verify_peer);
  tls.use_certificate_chain_file(opts.cert);
  tls.use_private_key_file(opts.key, asio::ssl::context::pem);

  const target_url url = split_url(opts.url);
  tcp::resolver resolver(ioc);
  // IPv4 only: the benchmark binds 127.0.0.1, and "localhost" may resolve to ::1 first.
  auto endpoints = resolver.resolve(tcp::v4(), url.host, url.port);
  const std::string body_text = opts.body_file.empty() ? std::string() : read_whole(opts.body_file);

  run_state state(opts, url, ioc, tls, endpoints, body_template(body_text, opts.placeholder));
  state.latencies_us.reserve(1 << 20);
  const auto seconds = [](double s) {
    return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
  };
  state.start = clock_type::now();
  state.measure_from = state.start + seconds(opts.mode == run_mode::idle ? 0 : opts.warmup_s);
  state.end = state.start + seconds(opts.duration_s);

  std::vector<std::shared_ptr<connection>> all;
  all.reserve(opts.connections);
  if (opts.mode == run_mode::idle) {
    // Set connections up a window at a time, so the server sees a steady stream of handshakes
    // rather than 10,000 at once.
    auto pump = std::make_shared<std::function<void()>>();
    auto timer = std::make_shared<asio::steady_timer>(ioc);
    bool ready_written = false;
    *pump = [&, pump, timer] {
      // Connections created but neither idle yet nor finished are still being set up.
      while (all.size() < opts.connections &&
             all.size() - state.connections_open - state.connections_done < opts.setup_window) {
        all.push_back(std::make_shared<connection>(state));
        all.back()->start();
      }
      if (!ready_written && all.size() == opts.connections &&
          state.connections_open + state.connections_done == opts.connections) {
        ready_written = true;
        std::cerr << "loadgen: " << state.connections_open << " idle connections established\n";
        if (!opts.ready_file.empty()) {
          std::ofstream(opts.ready_file) << state.connections_open << "\n";
        }
      }
      if (clock_type::now() >= state.end) {
        state.stopping = true;
        for (auto& c : all) {
          c->release();
        }
        return;
      }
      timer->expires_after(std::chrono::milliseconds(5));
      timer->async_wait([pump](beast::error_code) { (*pump)(); });
    };
    (*pump)();
  } else {
    for (std::size_t i = 0; i < opts.connections; ++i) {
      all.push_back(std::make_shared<connection>(state));
      all.back()->start();
    }
  }
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code ec, int) {
    if (!ec) {
      state.stopping = true;
      state.end = std::min(state.end, clock_type::now());
      for (auto& c : all) {
        c->release();
      }
    }
  });
  // Keep-alive and handshake connections stop on their own after `end`; then stop the signals.
  asio::steady_timer finisher(ioc);
  std::function<void()> check_done = [&] {
    if (state.connections_done >= all.size() && all.size() == opts.connections) {
      signals.cancel();
      return;
    }
    finisher.expires_after(std::chrono::milliseconds(20));
    finisher.async_wait([&](beast::error_code) { check_done(); });
  };
  check_done();
  const double cpu_before = cpu_seconds();
  ioc.run();
  const double cpu = cpu_seconds() - cpu_before;

  const double measured_s =
      std::chrono::duration<double>(state.end - state.measure_from).count();
  auto& lat = state.latencies_us;
  std::sort(lat.begin(), lat.end());
  std::uint64_t ok = 0, answered = 0, error_count = 0;
  for (const auto& [status, count] : state.statuses) {
    answered += count;
    if (status >= 200 && status < 300) {
      ok += count;
    }
  }
  for (const auto& [kind, count] : state.errors) {
    error_count += count;
  }
  double mean_ms = 0;
  for (auto us : lat) {
    mean_ms += us / 1000.0;
  }
  mean_ms = lat.empty() ? 0 : mean_ms / static_cast<double>(lat.size());
  const double rps = measured_s > 0 ? static_cast<double>(ok) / measured_s : 0;
  const double hps = measured_s > 0 ? static_cast<double>(state.handshakes) / measured_s : 0;

  std::fprintf(stderr,
               "loadgen: %s %s, %zu connections, %.1f s measured: %.0f ok/s (%llu ok of %llu "
               "answers, %llu errors), %.0f handshakes/s\n"
               "  latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f; loadgen CPU "
               "%.0f%%\n",
               mode_name(opts.mode), opts.url.c_str(), opts.connections, measured_s, rps,
               static_cast<unsigned long long>(ok), static_cast<unsigned long long>(answered),
               static_cast<unsigned long long>(error_count), hps, percentile(lat, 0.5),
               percentile(lat, 0.99), percentile(lat, 0.999), lat.empty() ? 0 : lat.back() / 1000.0,
               mean_ms, 100.0 * cpu / std::max(1e-9, opts.duration_s));
  for (const auto& [status, count] : state.statuses) {
    std::fprintf(stderr, "  status %d: %llu\n", status, static_cast<unsigned long long>(count));
  }
  for (const auto& [kind, count] : state.errors) {
    std::fprintf(stderr, "  error %s: %llu\n", kind.c_str(),
                 static_cast<unsigned long long>(count));
  }
  if (opts.json) {
    std::ostringstream out;
    out.setf(std::ios::fixed);
    out.precision(3);
    out << "{\"mode\":\"" << mode_name(opts.mode) << "\",\"connections\":" << opts.connections
        << ",\"measured_s\":" << measured_s << ",\"ok\":" << ok << ",\"answers\":" << answered
        << ",\"rps\":" << rps << ",\"handshakes_per_s\":" << hps
        << ",\"idle_connections\":" << state.peak_open << ",\"latency_ms\":{\"p50\":"
        << percentile(lat, 0.5) << ",\"p99\":" << percentile(lat, 0.99)
        << ",\"p999\":" << percentile(lat, 0.999)
        << ",\"max\":" << (lat.empty() ? 0 : lat.back() / 1000.0) << ",\"mean\":" << mean_ms
        << "},\"status\":{";
    bool first = true;
    for (const auto& [status, count] : state.statuses) {
      out << (first ? "" : ",") << "\"" << status << "\":" << count;
      first = false;
    }
    out << "},\"errors\":{";
    first = true;
    for (const auto& [kind, count] : state.errors) {
      out << (first ? "" : ",") << "\"" << kind << "\":" << count;
      first = false;
    }
    out << "},\"loadgen_cpu_s\":" << cpu << "}\n";
    std::cout << out.str();
  }
  return ok > 0 || (opts.mode == run_mode::idle && state.peak_open > 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options opts;
  CLI::App app{"mxgw-loadgen: mutual-TLS HTTP/1.1 load generator (see docs/performance.md)"};
  app.add_option("--url", opts.url, "https://HOST:PORT/PATH (HOST is resolved to IPv4)")
      ->required();
  app.add_option("--cert", opts.cert, "client certificate (PEM)")->required();
  app.add_option("--key", opts.key, "its private key (PEM)")->required();
  app.add_option("--ca", opts.ca, "trust anchor for the server certificate")->required();
  app.add_option("--method", opts.method, "GET or POST")->check(CLI::IsMember({"GET", "POST"}));
  app.add_option("--body", opts.body_file, "request body file (POST)");
  app.add_option("--placeholder", opts.placeholder,
                 "replaced by a fresh UUID in every request body ('' for none)");
  app.add_option("--content-type", opts.content_type, "Content-Type of POSTs");
  app.add_option("-c,--connections", opts.connections, "concurrent connections")
      ->check(CLI::Range(1, 100000));
  app.add_option("-d,--duration", opts.duration_s, "seconds to run (idle: to hold)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--warmup", opts.warmup_s, "seconds at the start not counted")
      ->check(CLI::Range(0.0, 600.0));
  app.add_option("--timeout-ms", opts.timeout_ms, "deadline of each step");
  app.add_option("--setup-window", opts.setup_window, "idle: connections set up at once")
      ->check(CLI::Range(1, 10000));
  app.add_option("--ready-file", opts.ready_file,
                 "idle: written (with the count) once every connection is established");
  bool new_connection = false, idle = false, tls12 = false;
  app.add_flag("--new-connection", new_connection,
               "a full handshake per request (no resumption), `Connection: close`");
  app.add_flag("--idle", idle, "one request per connection, then hold it open idle");
  app.add_flag("--allow-tls12", tls12, "allow TLS 1.2 (default: TLS 1.3 only)");
  app.add_flag("--json", opts.json, "print the results as one JSON object on stdout");
  CLI11_PARSE(app, argc, argv);
  if (new_connection && idle) {
    std::cerr << "loadgen: --new-connection and --idle exclude each other\n";
    return 2;
  }
  opts.mode = idle ? run_mode::idle
                   : (new_connection ? run_mode::new_connection : run_mode::keep_alive);
  opts.tls13_only = !tls12;
  if (opts.warmup_s >= opts.duration_s && opts.mode != run_mode::idle) {
    std::cerr << "loadgen: --warmup must be shorter than --duration\n";
    return 2;
  }
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << "\n";
    return 2;
  }
}
