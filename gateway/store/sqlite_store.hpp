// The SQLite message store: one group-committing writer thread and one reader thread.
#pragma once

#include "gateway/store/message_store.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mxgw::store {

/// The schema version this build creates and understands (kept in `PRAGMA user_version`).
/// A database carrying a higher number was written by a newer mxgw and is refused at open.
inline constexpr int sqlite_schema_version = 18;

/// Counters of the writer thread, for tests and operators (queue depth, group-commit sizes).
/// A "write" is one queued accept, claim, report or replay; they share the group commit.
struct sqlite_store_stats {
  std::uint64_t commits = 0;            ///< transactions that committed (one fsync each)
  std::uint64_t records_committed = 0;  ///< accepts answered stored/duplicate/conflict
  std::uint64_t failed_batches = 0;     ///< batches rolled back (their accepts: `unavailable`)
  std::size_t largest_batch = 0;        ///< most writes one transaction carried so far
  std::size_t queued = 0;               ///< writes waiting for the writer right now
  std::uint64_t checkpoints = 0;        ///< background checkpoints that completed
  std::uint64_t checkpoint_waits = 0;   ///< times the writer waited at wal_limit_pages
  std::uint64_t wal_pages = 0;          ///< pages in the write-ahead log after the last commit
  std::uint64_t largest_wal_pages = 0;  ///< the most pages the log held after any commit
};

/// The SQLite implementation of message_store. Each of its three connections is used by exactly
/// one thread: the writer thread (group commit of accepts, claims, reports and replays), the reader
/// thread (find, list_dead), so a status look-up never waits behind a commit's fsync, and the
/// checkpointer thread, which copies the write-ahead log back into the database file so that no
/// commit waits for that copy and its fsync.
class sqlite_store final : public message_store {
 public:
  /// Opens (creating or migrating) the database; see open_sqlite_store. Throws store_error.
  explicit sqlite_store(const sqlite_options& options);

  /// Calls stop(). Must not run on a store thread (from inside a handler).
  ~sqlite_store() override;

  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  /// Queues the record for the writer thread; see message_store::accept. After stop() or a fatal
  /// error the handler runs at once, on the calling thread, with `unavailable`.
  void accept(message_record record, accept_handler handler) override;

  /// Queues the look-up for the reader thread; see message_store::find. After stop() or a fatal
  /// error the handler runs at once, on the calling thread, with (nullopt, false).
  void find(std::string id, find_handler handler) override;
  void read_body(std::string id, body_handler handler) override;

  /// Queues a claim for the writer thread (it writes the leases); see message_store::claim_due.
  /// Due recipients take turns (round robin, oldest due first within a turn), so one recipient
  /// with a deep queue cannot take every slot while others wait. The handler runs after the
  /// leases are durable; with ({}, false) when the batch failed, at once after stop() or a fatal
  /// error.
  void claim_due(std::string owner, std::size_t max_jobs, std::chrono::milliseconds lease,
                 std::vector<recipient_cap> caps, claim_handler handler) override;

  /// Queues the outcome of an attempt for the writer thread, in the same group commit as accepts;
  /// see message_store::report. The receipt is cut to 4096 bytes and the error to 512 (at UTF-8
  /// character boundaries). handler(false) when the batch failed, at once after stop().
  void report(attempt_report report, report_handler handler) override;

  /// Queues a replay for the writer thread; see message_store::replay. handler(false, false) when
  /// the batch failed, at once after stop() or a fatal error.
  void replay(std::string message_id, std::string recipient,
              std::vector<audit::audit_record> audit, replay_handler handler) override;

  /// Queues a discard for the writer thread; see message_store::discard.
  void discard(std::string message_id, std::string recipient, std::string reason,
               std::vector<audit::audit_record> audit, replay_handler handler) override;

  /// Queues a retention sweep for the writer thread; see message_store::purge.
  void purge(retention_cut cut, purge_handler handler) override;

  /// Queues a rewrite of bodies and payloads for the writer thread (in the group commit, under a
  /// savepoint of its own); see message_store::rewrite_values.
  void rewrite_values(std::string after_id, std::size_t max_messages, value_rewriter rewriter,
                      rewrite_handler handler) override;

  /// Queues the making of person keys anew for the writer thread (in the group commit, under a
  /// savepoint of its own, as rewrite_values); see message_store::rekey_persons.
  void rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                     person_rekey_handler handler) override;

  /// Queues the read for the reader thread; see message_store::read_facts. The cursor is a
  /// position (messages.seq).
  void read_facts(std::string since, std::string after, std::size_t limit,
                  facts_handler handler) override;
  /// Queues the counting for the reader thread; see message_store::transfer_register.
  void transfer_register(std::string from_month, std::string to_month,
                         register_handler handler) override;

  /// Queues the counting for the reader thread; see message_store::queue_stats.
  void queue_stats(queue_handler handler) override;

  /// Queues the listing for the reader thread; see message_store::list_held. Oldest message
  /// first (its position), then the order of its recipients in the accept.
  void list_held(std::size_t limit, held_handler handler) override;

  /// Queues the look-up for the reader thread; see message_store::read_held.
  void read_held(std::string message_id, std::string recipient, held_copy_handler handler) override;

  /// Queues the look-up for the reader thread (one read transaction); see
  /// message_store::find_person_matches. handler(nullopt, false) on failure, at once after stop()
  /// or a fatal error.
  void find_person_matches(std::string message_id, std::size_t limit,
                           matches_handler handler) override;

  /// Queues the decision for the writer thread, in the group commit like a replay; see
  /// message_store::decide_release. The reason is cut to max_error_bytes. handler({}, false) when
  /// the batch failed, at once after stop() or a fatal error.
  void decide_release(release_request request, release_handler handler) override;

  /// Queues the listing for the reader thread; see message_store::list_dead. Oldest dead_since
  /// first. handler({}, false) on failure, at once after stop() or a fatal error.
  void list_dead(std::size_t limit, dead_handler handler) override;

  /// Sets the callback the writer thread calls, after the handlers of a commit that created due
  /// deliveries (an accept stored with deliveries not held, a replay, a release). Set it before
  /// use; it must not block.
  void on_deliveries_due(std::function<void()> callback) override;

  /// See message_store::approvals_when_held: asked on the writer thread, once per accept that
  /// stores a held copy without its own count, inside the write transaction (it must not block).
  void approvals_when_held(std::function<std::size_t()> source) override;

  /// False once an I/O error or corruption was seen on either connection (fail-stop).
  bool healthy() const override;

  // The audit chain and the administrative state: writes share the writer thread's group commit,
  // reads the reader thread. On failure the handlers get ok=false (put: `failed`).
  void append_audit(std::vector<audit::audit_record> records, report_handler handler) override;
  void read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) override;
  void audit_head(head_handler handler) override;
  void add_checkpoint(audit::checkpoint checkpoint, report_handler handler) override;
  void read_checkpoints(checkpoints_handler handler) override;
  void put_states(std::vector<state_put> puts, std::vector<audit::audit_record> audit,
                  puts_handler handler) override;
  void list_state(std::string kind, std::int64_t after_version, state_handler handler) override;

  /// Commits everything already queued, answers queued look-ups, joins the threads and closes the
  /// connections (the writer's last, which checkpoints the log and removes it). Idempotent and safe to call from several threads. Called from inside a
  /// handler it only refuses new work (it cannot wait for its own thread); the owner's stop() or
  /// the destructor then drains and joins.
  void stop() override;

  /// A snapshot of the writer's counters.
  sqlite_store_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Opens the database file read-only and counts the rows of `messages` (synchronous; for tests
/// and tooling). Throws store_error when the file cannot be opened or read.
std::size_t count_messages(const std::filesystem::path& db);

}  // namespace mxgw::store
