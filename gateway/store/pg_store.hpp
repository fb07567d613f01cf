// The PostgreSQL message store: the same contract as the SQLite store, shared by several gateway
// instances (one group-committing writer connection and one reader connection per instance).
#pragma once

#include "gateway/store/message_store.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mxgw::store {

/// The schema version this build creates and understands (kept in the table `mxgw_schema`).
/// A database carrying a higher number was written by a newer mxgw and is refused at open.
inline constexpr int postgres_schema_version = 14;

struct postgres_options {
  /// libpq connection string ("host=... port=... dbname=... user=...") or URI. Must not carry a
  /// password (refused: store_error); the password comes from `password`.
  std::string dsn;
  /// The password (read by the caller from a file or the environment); empty: none (trust, peer,
  /// certificate or ~/.pgpass authentication). Never logged, never part of an error text.
  std::string password;
  /// The schema holding mxgw's tables (created when missing); empty: the connection's default
  /// search_path (normally "public").
  std::string schema;
  std::size_t max_batch = 512;  ///< most writes in one group commit
  int connect_timeout_s = 5;    ///< for each connection attempt
  /// Backoff between reconnection attempts after the connection was lost (doubling, bounded).
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  /// The time source for accepted_at, due times, leases and audit times; empty: the system
  /// clock. Instances sharing a database should have synchronised clocks (NTP): leases and due
  /// times are judged by the claiming instance's clock.
  std::function<std::chrono::system_clock::time_point()> clock;
};

/// Counters of the writer thread (the same meaning as sqlite_store_stats).
struct postgres_store_stats {
  std::uint64_t commits = 0;
  std::uint64_t records_committed = 0;
  std::uint64_t failed_batches = 0;
  std::uint64_t retried_batches = 0;  ///< batches run again after a deadlock between instances
  std::uint64_t reconnects = 0;       ///< connections re-established after a loss (both threads)
  std::size_t largest_batch = 0;
  std::size_t queued = 0;
};

/// Opens the PostgreSQL store: connects (writer and reader), creates or migrates the schema
/// (refusing a newer one), starts both threads. Throws store_error when the DSN is invalid or
/// carries a password, the server cannot be reached, or the schema is newer than this build.
/// Unlike SQLite, losing the connection later is not fatal: calls answer `unavailable` (ok=false)
/// while the store reconnects with backoff, and healthy() stays true.
std::unique_ptr<message_store> open_postgres_store(const postgres_options& options);

/// The writer's counters of a store opened by open_postgres_store (zeros for any other store).
postgres_store_stats postgres_stats(const message_store& store);

/// True when the libpq connection string carries a password (such a DSN is refused: passwords
/// come from password_file or password_env). Throws store_error when the string does not parse;
/// the error text never repeats the string.
bool dsn_has_password(const std::string& dsn);

}  // namespace mxgw::store
