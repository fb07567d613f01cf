// The SQLite store: WAL + synchronous=FULL, a versioned schema, group commit on one writer thread
// and look-ups on a reader thread with its own read-only connection.
#include "gateway/store/sqlite_store.hpp"

#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

// ---------------------------------------------------------------------------------------------
// Schema

/// migrations[N - 1] brings a database from version N - 1 to N. Append only: a shipped migration
/// is never edited, because databases in the field already ran it.
constexpr std::array<const char*, sqlite_schema_version> migrations = {
    // 1: accepted messages. The body is kept as the exact submitted bytes.
    R"sql(
      CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        sender      TEXT NOT NULL,
        type        TEXT NOT NULL,
        created     TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        body        BLOB NOT NULL,
        state       TEXT NOT NULL DEFAULT 'accepted'
      );
      CREATE INDEX messages_by_sender ON messages (sender);
    )sql",
};

// Raising sqlite_schema_version without writing its migration must not compile.
static_assert(std::none_of(migrations.begin(), migrations.end(),
                           [](const char* sql) { return sql == nullptr; }),
              "every schema version needs its migration");

constexpr const char* select_existing_sql =
    "SELECT sender, body_sha256, accepted_at FROM messages WHERE id = ?1";
constexpr const char* insert_message_sql =
    "INSERT INTO messages (id, sender, type, created, accepted_at, body_sha256, body) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* select_status_sql =
    "SELECT id, sender, type, created, accepted_at, state FROM messages WHERE id = ?1";

// ---------------------------------------------------------------------------------------------
// RAII over the C API

struct connection_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using connection = std::unique_ptr<sqlite3, connection_closer>;

struct statement_finalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

/// One execution of a prepared statement. Resets it and clears its bindings at scope exit, so a
/// SELECT never keeps its read snapshot open (which would hold back WAL checkpoints) and no binding
/// outlives the bytes it points to (they are bound without copying).
class statement_use {
 public:
  explicit statement_use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~statement_use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;

  int bind_text(int index, std::string_view text) {
    // A null data pointer would bind SQL NULL; an empty string must stay an empty string.
    const char* data = text.data() != nullptr ? text.data() : "";
    // The destructor argument nullptr is SQLITE_STATIC (spelled without its C-style cast).
    return sqlite3_bind_text64(stmt_, index, data, text.size(), nullptr, SQLITE_UTF8);
  }

  int bind_blob(int index, std::string_view bytes) {
    const char* data = bytes.data() != nullptr ? bytes.data() : "";
    return sqlite3_bind_blob64(stmt_, index, data, bytes.size(), nullptr);
  }

  int step() { return sqlite3_step(stmt_); }

  std::string column_text(int index) const {
    const unsigned char* text = sqlite3_column_text(stmt_, index);
    if (text == nullptr) {
      return {};
    }
    const int size = sqlite3_column_bytes(stmt_, index);
    return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
  }

 private:
  sqlite3_stmt* stmt_;
};

// ---------------------------------------------------------------------------------------------
// Helpers

std::string error_text(sqlite3* db, int rc) {
  return db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

[[noreturn]] void fail_open(const std::filesystem::path& path, std::string_view what, sqlite3* db,
                            int rc) {
  throw store_error(path.string() + ": " + std::string(what) + ": " + error_text(db, rc));
}

connection open_connection(const std::filesystem::path& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.string().c_str(), &raw, flags, nullptr);
  connection db(raw);  // closed on every path, also when the open itself failed
  if (rc != SQLITE_OK) {
    fail_open(path, "cannot open the database", raw, rc);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

int exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
}

void exec_or_throw(sqlite3* db, const char* sql, const std::filesystem::path& path) {
  const int rc = exec(db, sql);
  if (rc != SQLITE_OK) {
    fail_open(path, sql, db, rc);
  }
}

statement prepare(sqlite3* db, const char* sql, const std::filesystem::path& path) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  statement stmt(raw);
  if (rc != SQLITE_OK) {
    fail_open(path, "cannot prepare a statement", db, rc);
  }
  return stmt;
}

/// Runs a statement returning one row and gives its first column as text (used for PRAGMAs).
std::string query_text(sqlite3* db, const std::string& sql, const std::filesystem::path& path) {
  const statement stmt = prepare(db, sql.c_str(), path);
  statement_use use(stmt.get());
  const int rc = use.step();
  if (rc != SQLITE_ROW) {
    fail_open(path, sql, db, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
  }
  return use.column_text(0);
}

std::int64_t query_int(sqlite3* db, const std::string& sql, const std::filesystem::path& path) {
  const std::string text = query_text(db, sql, path);
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    throw store_error(path.string() + ": " + sql + ": unexpected answer '" + text + "'");
  }
}

/// Rolls back when a transaction is still open. SQLite may already have rolled it back by itself
/// (it does on some SQLITE_FULL and I/O errors), in which case there is nothing to do.
void rollback_if_open(sqlite3* db) {
  if (sqlite3_get_autocommit(db) == 0) {
    exec(db, "ROLLBACK");
  }
}

/// An I/O error or corruption: the file can no longer be trusted to hold what we wrote.
bool is_fatal(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

/// "<file>: <SQLite's message> (code N)", for the log; taken before a ROLLBACK overwrites it.
std::string describe_failure(sqlite3* db, int rc, const std::filesystem::path& path) {
  return path.string() + ": " + error_text(db, rc) + " (code " + std::to_string(rc) + ")";
}

/// Logging must never take a store thread down (the sink may fail to allocate or write).
void log_quietly(log::level lvl, const log::fields& fields) noexcept {
  try {
    log::write(lvl, fields);
  } catch (...) {
  }
}

/// fsyncs a directory, so the entries just created in it (a directory, the database file)
/// survive power loss; without it a fresh store could vanish together with its first commits.
void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw store_error("cannot open the directory " + dir.string() + ": " + std::strerror(errno));
  }
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // EINVAL: the file system cannot sync directories at all, so there is nothing to wait for.
  if (rc != 0 && error != EINVAL) {
    throw store_error("cannot sync the directory " + dir.string() + ": " + std::strerror(error));
  }
}

/// Creates the missing directories on the way to `dir` and makes each of them durable.
void create_directories_durably(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> missing;  // deepest first
  std::error_code ec;
  for (std::filesystem::path p = dir; !p.empty() && !std::filesystem::exists(p, ec);
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) {
      break;
    }
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw store_error("cannot create the directory " + dir.string() + ": " + ec.message());
  }
  for (const auto& created : missing) {
    const std::filesystem::path parent = created.parent_path();
    sync_directory(parent.empty() ? std::filesystem::path(".") : parent);
  }
}

/// Brings the schema to sqlite_schema_version in one transaction, or refuses a newer file.
void migrate(sqlite3* db, const std::filesystem::path& path) {
  const auto refuse_newer = [&](std::int64_t found) {
    throw store_error(path.string() + ": schema version " + std::to_string(found) +
                      " is newer than this build of mxgw knows (" +
                      std::to_string(sqlite_schema_version) +
                      "); run a newer mxgw or restore a matching database");
  };
  std::int64_t found = query_int(db, "PRAGMA user_version", path);
  if (found > sqlite_schema_version) {
    refuse_newer(found);
  }
  if (found == sqlite_schema_version) {
    return;
  }
  exec_or_throw(db, "BEGIN IMMEDIATE", path);
  try {
    // Read again under the write lock: another process may have migrated while we waited.
    found = query_int(db, "PRAGMA user_version", path);
    if (found > sqlite_schema_version) {
      refuse_newer(found);
    }
    if (found < 0) {
      throw store_error(path.string() + ": invalid schema version " + std::to_string(found));
    }
    for (std::int64_t version = found + 1; version <= sqlite_schema_version; ++version) {
      exec_or_throw(db, migrations.at(static_cast<std::size_t>(version - 1)), path);
    }
    const std::string set_version =
        "PRAGMA user_version = " + std::to_string(sqlite_schema_version);
    exec_or_throw(db, set_version.c_str(), path);
    exec_or_throw(db, "COMMIT", path);
  } catch (...) {
    rollback_if_open(db);
    throw;
  }
}

/// Caps the database file at max_size_bytes: growing past it fails with SQLITE_FULL, exactly as a
/// full disk does. The setting belongs to the connection and is not stored in the file.
void apply_size_cap(sqlite3* db, std::uint64_t max_size_bytes, const std::filesystem::path& path) {
  const auto page_size = static_cast<std::uint64_t>(query_int(db, "PRAGMA page_size", path));
  constexpr std::uint64_t most_pages = 0xfffffffe;  // SQLite's own upper bound
  const std::uint64_t pages = std::clamp<std::uint64_t>(
      max_size_bytes / std::max<std::uint64_t>(page_size, 1), 1, most_pages);
  // SQLite never sets the cap below the current size; a store already past it simply cannot grow.
  query_int(db, "PRAGMA max_page_count = " + std::to_string(pages), path);
}

// ---------------------------------------------------------------------------------------------
// Queued work and handler calls

struct pending_accept {
  message_record record;
  message_store::accept_handler handler;
};

struct pending_find {
  std::string id;
  message_store::find_handler handler;
};

accept_result unavailable(const char* reason) {
  return accept_result{accept_outcome::unavailable, {}, reason};
}

// Handlers run on the store's own threads. One that throws must not take the thread (and every
// later accept or look-up) down with it; the outcome it was told is final, so nothing is undone.
void deliver(const message_store::accept_handler& handler, accept_result result) noexcept {
  if (!handler) {
    return;
  }
  try {
    handler(std::move(result));
  } catch (...) {
  }
}

void deliver(const message_store::find_handler& handler, std::optional<message_status> status,
             bool ok) noexcept {
  if (!handler) {
    return;
  }
  try {
    handler(std::move(status), ok);
  } catch (...) {
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The implementation

struct sqlite_store::impl {
  explicit impl(const sqlite_options& options);

  void start();
  void accept(message_record record, accept_handler handler);
  void find(std::string id, find_handler handler);
  void stop();
  sqlite_store_stats stats() const;

  // Writer thread.
  void writer_loop();
  void commit_batch(std::vector<pending_accept>& batch);
  int write_batch(const std::vector<pending_accept>& batch, std::vector<accept_result>& results);
  int write_record(const message_record& record, const std::string& accepted_at,
                   accept_result& result);
  int insert_message(const message_record& record, const std::string& accepted_at);
  const char* failure_reason(int rc);

  // Reader thread.
  void reader_loop();
  void answer_find(const pending_find& job);

  void close_queues();

  const std::filesystem::path path_;
  const std::size_t max_batch_;

  // Connections are declared before their statements so the statements are finalized first.
  connection writer_db_;  // used only by the constructor, then only by the writer thread
  statement select_existing_;
  statement insert_message_;
  connection reader_db_;  // used only by the constructor, then only by the reader thread
  statement select_status_;

  // Cleared on the first I/O error or corruption seen by either thread; never set again.
  std::atomic<bool> healthy_{true};

  mutable std::mutex accept_mutex_;  // guards accepts_ and accepts_closed_
  std::condition_variable accept_cv_;
  std::deque<pending_accept> accepts_;
  bool accepts_closed_ = false;

  std::mutex find_mutex_;  // guards finds_ and finds_closed_
  std::condition_variable find_cv_;
  std::deque<pending_find> finds_;
  bool finds_closed_ = false;

  std::mutex stop_mutex_;  // serialises stop(); guards stopped_ and the joins
  bool stopped_ = false;
  std::thread writer_;
  std::thread reader_;
  std::thread::id writer_id_;
  std::thread::id reader_id_;

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> records_committed_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
  std::atomic<std::size_t> largest_batch_{0};
};

sqlite_store::impl::impl(const sqlite_options& options)
    : path_(options.path), max_batch_(std::max<std::size_t>(options.max_batch, 1)) {
  if (path_.empty()) {
    throw store_error("the store path is empty");
  }
  const std::filesystem::path parent =
      path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
  create_directories_durably(parent);

  // SQLITE_OPEN_NOMUTEX: SQLite's per-connection mutex is not needed, because each connection is
  // handed to exactly one thread once this constructor is done.
  writer_db_ =
      open_connection(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      options.busy_timeout_ms);
  sqlite3* db = writer_db_.get();
  if (sqlite3_db_readonly(db, "main") == 1) {
    throw store_error(path_.string() + ": the database file is read-only");
  }
  const std::string journal_mode = query_text(db, "PRAGMA journal_mode = WAL", path_);
  if (journal_mode != "wal") {
    throw store_error(path_.string() + ": cannot switch to WAL mode (journal_mode is " +
                      journal_mode + ")");
  }
  // FULL: the WAL is fsynced at every commit, so a commit that returned SQLITE_OK (and with it
  // every `stored` answer) survives power loss, not only a crash of this process.
  exec_or_throw(db, "PRAGMA synchronous = FULL", path_);
  exec_or_throw(db, "PRAGMA foreign_keys = ON", path_);
  migrate(db, path_);
  sync_directory(parent);  // the database file's own entry (and its -wal's) in the directory
  if (options.max_size_bytes > 0) {
    apply_size_cap(db, options.max_size_bytes, path_);
  }
  select_existing_ = prepare(db, select_existing_sql, path_);
  insert_message_ = prepare(db, insert_message_sql, path_);

  reader_db_ =
      open_connection(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, options.busy_timeout_ms);
  select_status_ = prepare(reader_db_.get(), select_status_sql, path_);
}

void sqlite_store::impl::start() {
  writer_ = std::thread([this] { writer_loop(); });
  writer_id_ = writer_.get_id();
  try {
    reader_ = std::thread([this] { reader_loop(); });
    reader_id_ = reader_.get_id();
  } catch (const std::system_error& e) {
    close_queues();
    writer_.join();
    throw store_error(path_.string() + ": cannot start the reader thread: " + e.what());
  }
}

void sqlite_store::impl::accept(message_record record, accept_handler handler) {
  pending_accept pending{std::move(record), std::move(handler)};
  const char* refusal = nullptr;
  {
    const std::lock_guard lock(accept_mutex_);
    if (accepts_closed_) {
      refusal = "stopped";
    } else if (!healthy_) {
      refusal = "io-error";
    } else {
      try {
        accepts_.push_back(std::move(pending));  // strong guarantee: on failure, pending is intact
      } catch (...) {
        refusal = "store-error";
      }
    }
  }
  if (refusal == nullptr) {
    accept_cv_.notify_one();
    return;
  }
  deliver(pending.handler, unavailable(refusal));
}

void sqlite_store::impl::find(std::string id, find_handler handler) {
  pending_find pending{std::move(id), std::move(handler)};
  bool queued = false;
  {
    const std::lock_guard lock(find_mutex_);
    if (!finds_closed_ && healthy_) {
      try {
        finds_.push_back(std::move(pending));
        queued = true;
      } catch (...) {
      }
    }
  }
  if (queued) {
    find_cv_.notify_one();
    return;
  }
  deliver(pending.handler, std::nullopt, false);
}

void sqlite_store::impl::close_queues() {
  {
    const std::lock_guard lock(accept_mutex_);
    accepts_closed_ = true;
  }
  accept_cv_.notify_all();
  {
    const std::lock_guard lock(find_mutex_);
    finds_closed_ = true;
  }
  find_cv_.notify_all();
}

void sqlite_store::impl::stop() {
  const std::thread::id self = std::this_thread::get_id();
  if (self == writer_id_ || self == reader_id_) {
    // Called from inside a handler: joining would wait for this very thread. Refuse new work now;
    // the owner's stop() or the destructor drains and joins.
    close_queues();
    return;
  }
  const std::lock_guard lock(stop_mutex_);
  if (stopped_) {
    return;
  }
  stopped_ = true;
  // Closing the queues refuses new work; both threads still finish what is already queued
  // (queued accepts are committed, not dropped) and exit when their queue is empty.
  close_queues();
  if (writer_.joinable()) {
    writer_.join();
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  // The threads are gone, so the connections are ours again. The writer closes last: the last
  // connection to close checkpoints the WAL into the database file and removes it.
  select_status_.reset();
  reader_db_.reset();
  select_existing_.reset();
  insert_message_.reset();
  writer_db_.reset();
}

sqlite_store_stats sqlite_store::impl::stats() const {
  sqlite_store_stats s;
  s.commits = commits_.load();
  s.records_committed = records_committed_.load();
  s.failed_batches = failed_batches_.load();
  s.largest_batch = largest_batch_.load();
  const std::lock_guard lock(accept_mutex_);
  s.queued = accepts_.size();
  return s;
}

// ---- writer thread ----

void sqlite_store::impl::writer_loop() {
  std::vector<pending_accept> batch;
  for (;;) {
    {
      std::unique_lock lock(accept_mutex_);
      // Sleep only while there is nothing to write. There is no timer: a lone record on an idle
      // store is committed at once. Under load, records pile up in the queue while the previous
      // batch waits for its fsync, and the next round takes them all (up to max_batch) into one
      // transaction: that is the group commit, one fsync for many records.
      accept_cv_.wait(lock, [this] { return !accepts_.empty() || accepts_closed_; });
      if (accepts_.empty()) {
        return;  // closed, and everything queued before the close has been answered
      }
      const auto take = static_cast<std::ptrdiff_t>(std::min(accepts_.size(), max_batch_));
      std::move(accepts_.begin(), accepts_.begin() + take, std::back_inserter(batch));
      accepts_.erase(accepts_.begin(), accepts_.begin() + take);
    }
    // The lock is released here, so accept() never waits for SQLite, only for a queue push.
    commit_batch(batch);
    batch.clear();
  }
}

void sqlite_store::impl::commit_batch(std::vector<pending_accept>& batch) {
  std::vector<accept_result> results(batch.size());
  const char* failure = nullptr;
  if (!healthy_) {
    // Fail-stop: after an I/O error the writer connection is never used again.
    failure = "io-error";
  } else {
    int rc = SQLITE_ERROR;
    try {
      rc = write_batch(batch, results);
    } catch (...) {
      rc = SQLITE_NOMEM;  // only allocation can throw in there
    }
    if (rc != SQLITE_OK) {
      const std::string detail = describe_failure(writer_db_.get(), rc, path_);
      // Nothing of a failed batch may stay behind, whichever statement failed (also COMMIT).
      rollback_if_open(writer_db_.get());
      failure = failure_reason(rc);
      const bool fatal = !healthy_;
      log_quietly(fatal ? log::level::critical : log::level::error,
                  {.event = fatal ? "store.fail_stop" : "store.batch_failed",
                   .outcome = "unavailable",
                   .reason = failure,
                   .detail = detail});
    }
  }
  if (failure != nullptr) {
    failed_batches_.fetch_add(1);
    std::fill(results.begin(), results.end(), unavailable(failure));
  } else {
    commits_.fetch_add(1);
    records_committed_.fetch_add(batch.size());
    std::size_t largest = largest_batch_.load();
    while (batch.size() > largest && !largest_batch_.compare_exchange_weak(largest, batch.size())) {
    }
  }
  // Handlers run only now: for `stored`, COMMIT has returned SQLITE_OK, so the row is durable.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    deliver(batch[i].handler, std::move(results[i]));
  }
}

const char* sqlite_store::impl::failure_reason(int rc) {
  if ((rc & 0xff) == SQLITE_FULL) {
    return "disk-full";
  }
  if (is_fatal(rc)) {
    // A failed write or fsync leaves the file in a state we cannot know (the kernel may have
    // dropped the dirty pages), so retrying could report a commit that never reached the disk.
    healthy_ = false;
    return "io-error";
  }
  return "store-error";
}

int sqlite_store::impl::write_batch(const std::vector<pending_accept>& batch,
                                    std::vector<accept_result>& results) {
  sqlite3* db = writer_db_.get();
  // IMMEDIATE takes the write lock up front, so no statement in the batch can hit SQLITE_BUSY
  // half-way (another process could hold the file; busy_timeout covers the wait here).
  int rc = exec(db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    return rc;
  }
  // One timestamp for the batch: all of its records become durable at the same commit.
  const std::string accepted_at = format_rfc3339_ms(std::chrono::system_clock::now());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    rc = write_record(batch[i].record, accepted_at, results[i]);
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  return exec(db, "COMMIT");
}

int sqlite_store::impl::write_record(const message_record& record, const std::string& accepted_at,
                                     accept_result& result) {
  {
    // This connection sees the rows inserted earlier in the same (still open) transaction, so a
    // second copy of an id within one batch is judged against the first, exactly as it would be
    // against a row from an earlier batch.
    statement_use use(select_existing_.get());
    int rc = use.bind_text(1, record.id);
    if (rc != SQLITE_OK) {
      return rc;
    }
    rc = use.step();
    if (rc == SQLITE_ROW) {
      const bool same =
          use.column_text(0) == record.sender && use.column_text(1) == record.body_sha256;
      if (same) {
        result = accept_result{accept_outcome::duplicate, use.column_text(2), {}};
      } else {
        result = accept_result{accept_outcome::conflict, {}, {}};
      }
      return SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  // Every row of a new record is written here, inside the batch's transaction (the recipient and
  // delivery rows of later issues join as further statements): all of them commit or none does.
  const int rc = insert_message(record, accepted_at);
  if (rc != SQLITE_OK) {
    return rc;
  }
  result = accept_result{accept_outcome::stored, accepted_at, {}};
  return SQLITE_OK;
}

int sqlite_store::impl::insert_message(const message_record& record,
                                       const std::string& accepted_at) {
  statement_use use(insert_message_.get());
  const std::array<std::string_view, 6> texts = {record.id,      record.sender, record.type,
                                                 record.created, accepted_at,   record.body_sha256};
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const int rc = use.bind_text(static_cast<int>(i + 1), texts[i]);
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  int rc = use.bind_blob(7, record.body);
  if (rc != SQLITE_OK) {
    return rc;
  }
  rc = use.step();
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// ---- reader thread ----

void sqlite_store::impl::reader_loop() {
  for (;;) {
    pending_find job;
    {
      std::unique_lock lock(find_mutex_);
      find_cv_.wait(lock, [this] { return !finds_.empty() || finds_closed_; });
      if (finds_.empty()) {
        return;  // closed and drained
      }
      job = std::move(finds_.front());
      finds_.pop_front();
    }
    answer_find(job);
  }
}

void sqlite_store::impl::answer_find(const pending_find& job) {
  if (!healthy_) {
    deliver(job.handler, std::nullopt, false);
    return;
  }
  std::optional<message_status> status;
  int rc = SQLITE_ERROR;
  try {
    // Scoped so the read snapshot ends before the handler runs.
    statement_use use(select_status_.get());
    rc = use.bind_text(1, job.id);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_ROW) {
      status = message_status{use.column_text(0), use.column_text(1), use.column_text(2),
                              use.column_text(3), use.column_text(4), use.column_text(5)};
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    deliver(job.handler, std::move(status), true);
    return;
  }
  if (is_fatal(rc)) {
    // The same disk as the writer's: an I/O error or corruption here stops the whole store.
    healthy_ = false;
    log_quietly(log::level::critical, {.event = "store.fail_stop",
                                       .reason = "io-error",
                                       .detail = describe_failure(reader_db_.get(), rc, path_)});
  }
  deliver(job.handler, std::nullopt, false);
}

// ---------------------------------------------------------------------------------------------
// The public faces

sqlite_store::sqlite_store(const sqlite_options& options) : impl_(std::make_unique<impl>(options)) {
  impl_->start();
}

sqlite_store::~sqlite_store() {
  stop();
}

void sqlite_store::accept(message_record record, accept_handler handler) {
  impl_->accept(std::move(record), std::move(handler));
}

void sqlite_store::find(std::string id, find_handler handler) {
  impl_->find(std::move(id), std::move(handler));
}

bool sqlite_store::healthy() const {
  return impl_->healthy_.load();
}

void sqlite_store::stop() {
  impl_->stop();
}

sqlite_store_stats sqlite_store::stats() const {
  return impl_->stats();
}

std::unique_ptr<message_store> open_sqlite_store(const sqlite_options& options) {
  return std::make_unique<sqlite_store>(options);
}

std::size_t count_messages(const std::filesystem::path& db) {
  const connection conn = open_connection(db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, 5000);
  const std::int64_t rows = query_int(conn.get(), "SELECT count(*) FROM messages", db);
  return static_cast<std::size_t>(rows);
}

}  // namespace mxgw::store
