// partner-sim: a stand-in partner endpoint (mutual-TLS HTTPS) that receives messages, answers
// receipts, deduplicates by message id, and injects faults on demand (demos and tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::sim {

class notice_feed;

/// Fault switches. Checked in this order for every `POST /v1/messages`, before the body is looked
/// at: down, fail_first, fail_rate, always_status; then the message is processed.
struct faults {
  std::uint32_t fail_first = 0;   ///< answer 503 to the first N POSTs (counted from set_faults)
  double fail_rate = 0.0;         ///< 0..1: answer 503 with this probability
  std::uint64_t seed = 0;         ///< seed of the fail_rate generator (reseeded by set_faults)
  std::uint32_t latency_ms = 0;   ///< delay every answer to a POST by this much
  int always_status = 0;          ///< 0: off; else answer this status (200..599) to every POST
  std::uint32_t down_for_ms = 0;  ///< refuse connections for this long (from start / set_faults)
  /// The body answered with always_status, as given (any bytes: a partner's refusal may be in
  /// Khmer, cut short or hostile); empty: {"error":"simulated permanent failure"}.
  std::string always_body;
};

struct partner_sim_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;      ///< 0 picks a free port (see partner_sim::port())
  std::filesystem::path cert;  ///< the sim's server certificate chain (PEM)
  std::filesystem::path key;   ///< its private key (PEM)
  std::filesystem::path ca;    ///< trust anchor(s) that client certificates must chain to
  std::string format = "mx";   ///< wire format of received messages: mx or a registered adapter id
  std::filesystem::path mappings_dir;  ///< code tables (config/mappings), for partner formats
  sim::faults faults;                  ///< initial fault switches
  /// With format "interpol": a stand-in notice feed from DIR/red/*.json and DIR/yellow/*.json
  /// (see notice_feed.hpp), served on GET /notices/v1/...; the code tables are not needed.
  std::filesystem::path fixtures_dir;
  std::string feed_fail_page;    ///< "TYPE:PAGE": that list page answers 503 once (e.g. "red:2")
  std::string feed_fail_detail;  ///< an entity id whose detail answers 502 (e.g. "2026/10001")
  bool verbose = false;          ///< one line per request (id and outcome, never content) to stderr
  /// Keeps the bytes of each id's first POST in memory for received() (tests; never written).
  bool keep_bodies = false;
  std::size_t threads = 1;       ///< io_context threads
};

/// What the sim has seen so far.
struct sim_stats {
  std::uint64_t requests = 0;       ///< POST /v1/messages received (every outcome)
  std::uint64_t unique_ids = 0;     ///< distinct message ids recorded
  std::uint64_t duplicates = 0;     ///< POSTs of an id already recorded (answered the same receipt)
  std::uint64_t failures_sent = 0;  ///< simulated failures answered (503s and always_status)
  std::uint64_t held = 0;           ///< POSTs waiting out latency_ms right now
  std::uint64_t most_held = 0;      ///< the most ever held at once (a sender's concurrency)
};

/// A mutual-TLS HTTPS server (TLS 1.2+, client certificate required and verified against `ca`)
/// answering:
///   POST /v1/messages  202 {"id","status":"accepted","acceptedAt"} the first time an id is seen,
///                      the same body again for a repeat; 400 {"error"} without a valid id;
///                      413 over 16 MiB; 503/always_status per the fault switches.
///   GET  /sim/stats    200 {"requests","uniqueIds","duplicates","failuresSent","held","mostHeld"}
/// Message contents are never logged or kept; only ids and receipts are.
class partner_sim {
 public:
  /// Loads the certificate, key and CA and checks the options. Nothing is bound yet.
  /// Throws std::invalid_argument for bad options, std::runtime_error for TLS set-up failures.
  explicit partner_sim(const partner_sim_options& options);
  /// Stops (see stop()).
  ~partner_sim();
  partner_sim(const partner_sim&) = delete;
  partner_sim& operator=(const partner_sim&) = delete;

  /// Binds and listens (port() is known when this returns) and runs the event loop on background
  /// threads. A start-up down_for_ms closes the listener again at once for that long. Call once.
  /// Throws std::runtime_error when the address cannot be bound, std::logic_error on a 2nd call.
  void start();

  /// Closes the listener and every connection (pending delayed answers are dropped) and joins the
  /// threads. Idempotent; thread-safe; not from a handler of the sim itself.
  void stop();

  /// The bound port (0 before start()).
  std::uint16_t port() const;

  /// Replaces the fault switches at run time (thread-safe). Restarts the fail_first count,
  /// reseeds the fail_rate generator, and applies down_for_ms now: a non-zero value closes the
  /// listener and current connections before this returns, 0 reopens a closed listener before
  /// this returns. Throws std::invalid_argument for out-of-range values.
  void set_faults(const faults& f);

  /// The fault switches in force.
  faults current_faults() const;

  /// Counters so far (thread-safe).
  sim_stats stats() const;

  /// True when a message with this id was recorded.
  bool has(const std::string& id) const;

  /// Waits until `predicate(stats())` holds (checked after every POST) or `timeout` passes;
  /// returns whether it holds. For tests that must wait for deliveries without sleeping.
  bool wait_until(const std::function<bool(const sim_stats&)>& predicate,
                  std::chrono::milliseconds timeout) const;

  /// The bytes of the first POST of `id`, with keep_bodies; nullopt otherwise.
  std::optional<std::string> received(const std::string& id) const;

  /// Recorded ids in order of first receipt.
  std::vector<std::string> ids() const;

  /// The stand-in notice feed and its fault switches (nullptr without fixtures_dir).
  notice_feed* feed() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

/// An address and port to listen on.
struct listen_endpoint {
  std::string address;
  std::uint16_t port = 0;
};

/// Parses `--listen`: "ADDR:PORT" or "[V6ADDR]:PORT", ADDR an IP address (no host names), PORT
/// 0..65535 (0 picks a free port). nullopt when malformed.
std::optional<listen_endpoint> parse_listen(std::string_view text);

/// `mxgw partner-sim`: starts the sim, prints "partner-sim listening on ADDR:PORT" to stdout,
/// waits for SIGINT or SIGTERM, stops, returns 0. Throws what partner_sim's constructor and start()
/// throw.
int run_partner_sim_command(const partner_sim_options& options);

}  // namespace mxgw::sim
