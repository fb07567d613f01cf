// The store interface: durable accept of canonical messages and status look-ups. SQLite is the
// embedded default; PostgreSQL comes behind the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace mxgw::store {

/// One accepted canonical message, as the pipeline hands it to the store.
struct message_record {
  std::string id;           ///< the envelope id, a lower-case UUID (the idempotency key)
  std::string sender;       ///< the authenticated partner id
  std::string type;         ///< the canonical message type, e.g. "victim.identification"
  std::string created;      ///< the envelope's `created` (RFC 3339), as sent
  std::string body_sha256;  ///< lower-case hex SHA-256 of the submitted bytes (duplicate check)
  std::string body;         ///< the submitted canonical JSON bytes
};

enum class accept_outcome {
  stored,       ///< committed now; durable when the handler runs
  duplicate,    ///< the same id with the same sender and body_sha256 was stored before; nothing new
  conflict,     ///< the same id is stored with another sender or another body; nothing new
  unavailable,  ///< the store could not commit (disk full, I/O error, stopped); nothing stored
};

struct accept_result {
  accept_outcome outcome = accept_outcome::unavailable;
  std::string accepted_at;  ///< RFC 3339 UTC of the first accept, for stored and duplicate
  std::string reason;       ///< for unavailable: a short code ("disk-full", "io-error", "stopped")
};

/// What the status endpoint shows. Never holds the body.
struct message_status {
  std::string id;
  std::string sender;
  std::string type;
  std::string created;
  std::string accepted_at;
  std::string state;  ///< "accepted" for now; delivery states arrive with the delivery issue
};

/// Thrown at open time only (bad path, unreadable file, newer schema version).
struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class message_store {
 public:
  using accept_handler = std::function<void(accept_result)>;
  using find_handler = std::function<void(std::optional<message_status>, bool ok)>;

  virtual ~message_store() = default;

  /// Queues a record for durable commit. Concurrent accepts are committed together (group commit:
  /// one transaction and one fsync per batch). The handler is called exactly once, on a store
  /// thread, after the outcome is final (for `stored`: after the commit is durable). Never throws.
  /// Exception: once the store is stopped or has failed, the handler runs at once on the calling
  /// thread with `unavailable` ("stopped" or "io-error"), so callers must not hold a lock the
  /// handler needs. Handlers should be quick (post the work elsewhere): the next batch waits.
  virtual void accept(message_record record, accept_handler handler) = 0;

  /// Looks a message up by id; handler(nullopt, true) when unknown, handler(nullopt, false) when
  /// the store failed. Called on a store thread (at once on the calling thread once the store is
  /// stopped or has failed). Never throws.
  virtual void find(std::string id, find_handler handler) = 0;

  /// True until the store hit a fatal error (failed fsync or I/O error: fail-stop, never retried).
  virtual bool healthy() const = 0;

  /// Finishes queued work and closes; later calls answer `unavailable`. Idempotent.
  virtual void stop() = 0;
};

struct sqlite_options {
  std::filesystem::path path;        ///< database file; parent directory created if missing
  std::size_t max_batch = 512;       ///< most records in one group commit
  std::uint64_t max_size_bytes = 0;  ///< cap on the database size (0: no cap); past it: disk-full
  int busy_timeout_ms = 5000;
};

/// Opens (creating or migrating) the SQLite store in WAL mode with synchronous=FULL, so every
/// `stored` outcome survives power loss. Throws store_error when the file cannot be opened or
/// carries a newer schema version than this build knows.
std::unique_ptr<message_store> open_sqlite_store(const sqlite_options& options);

}  // namespace mxgw::store
