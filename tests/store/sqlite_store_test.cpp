// Tests of what is SQLite's own: batches formed behind a held write lock, the file on disk, disk
// full, fail-stop on a failed fsync, schema versions. The behaviour every store shares is in
// store_contract_test.cpp and delivery_test.cpp, run against each backend.
#include "gateway/store/sqlite_store.hpp"

#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mxgw::store {
namespace {

using namespace std::chrono_literals;
using namespace mxgw::store::test_helpers;

// ---------------------------------------------------------------------------------------------
// Records and synchronous wrappers

message_record make_record(const std::string& id, const std::string& sender = "kh-cnp",
                           const std::string& body = R"({"case":"one"})") {
  return message_record{
      id, sender, "victim.identification", "2026-11-22T04:38:47Z", fingerprint(body), body};
}

message_record big_record(int n, std::size_t size = 8 * 1024) {
  std::string body(size, 'x');
  body.replace(0, std::to_string(n).size(), std::to_string(n));  // distinct bodies
  return make_record(make_id(n), "kh-cnp", body);
}

accept_result accept_now(message_store& store, message_record record) {
  std::promise<accept_result> promise;
  auto future = promise.get_future();
  store.accept(std::move(record), [&promise](accept_result r) { promise.set_value(std::move(r)); });
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << "accept handler not called";
    return {};
  }
  return future.get();
}

std::pair<std::optional<message_status>, bool> find_now(message_store& store,
                                                        const std::string& id) {
  std::promise<std::pair<std::optional<message_status>, bool>> promise;
  auto future = promise.get_future();
  store.find(id, [&promise](std::optional<message_status> status, bool ok) {
    promise.set_value({std::move(status), ok});
  });
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << "find handler not called";
    return {std::nullopt, false};
  }
  return future.get();
}

/// Collects the answers of many accepts; ready once `expected` handlers have run.
class answers {
 public:
  explicit answers(std::size_t expected) : expected_(expected) {}

  message_store::accept_handler handler(const std::string& id) {
    return [this, id](accept_result result) {
      const std::lock_guard lock(mutex_);
      results_.emplace_back(id, std::move(result));
      if (results_.size() == expected_) {
        done_.set_value();
      }
    };
  }

  /// Waits for every handler; returns (id, result) in the order the handlers ran.
  std::vector<std::pair<std::string, accept_result>> wait() {
    EXPECT_EQ(done_future_.wait_for(wait_limit), std::future_status::ready);
    const std::lock_guard lock(mutex_);
    return results_;
  }

 private:
  std::size_t expected_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, accept_result>> results_;
  std::promise<void> done_;
  std::future<void> done_future_ = done_.get_future();
};

sqlite_options options_for(const std::filesystem::path& path) {
  sqlite_options options;
  options.path = path;
  options.busy_timeout_ms = 60000;  // the gate may hold the lock while the test queues records
  return options;
}

const std::regex rfc3339_ms(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");

// ---------------------------------------------------------------------------------------------
// Outcomes and idempotency

TEST(SqliteStore, SameIdOtherBodyIsConflictAndTheRowStays) {
  test::temp_dir dir;
  sqlite_store store(options_for(dir / "store.db"));
  const message_record original = make_record(make_id(1), "kh-cnp", R"({"case":"one"})");
  const message_record other = make_record(make_id(1), "kh-cnp", R"({"case":"two"})");

  ASSERT_EQ(accept_now(store, original).outcome, accept_outcome::stored);
  const accept_result result = accept_now(store, other);
  EXPECT_EQ(result.outcome, accept_outcome::conflict);
  EXPECT_TRUE(result.accepted_at.empty());

  EXPECT_EQ(count_messages(dir / "store.db"), 1U);
  raw_db raw(dir / "store.db");
  EXPECT_EQ(raw.text("SELECT body_sha256 FROM messages"), original.body_sha256);
  EXPECT_EQ(raw.text("SELECT body FROM messages"), original.body);
}

TEST(SqliteStore, SameIdTwiceInOneBatchIsJudgedAgainstTheFirst) {
  test::temp_dir dir;
  sqlite_store store(options_for(dir / "store.db"));
  const message_record record = make_record(make_id(1), "kh-cnp", R"({"case":"one"})");
  const message_record changed = make_record(make_id(1), "kh-cnp", R"({"case":"two"})");

  answers got(4);
  {
    writer_gate gate(dir / "store.db");
    store.accept(make_record(make_id(99)), got.handler("primer"));
    wait_until_writer_took_all(store);  // the primer is alone in the first batch
    store.accept(record, got.handler("first"));
    store.accept(record, got.handler("copy"));
    store.accept(changed, got.handler("changed"));
  }  // the gate opens: the primer commits, then the other three in one transaction

  std::map<std::string, accept_result> by_name;
  for (auto& [name, result] : got.wait()) {
    by_name[name] = result;
  }
  EXPECT_EQ(by_name["primer"].outcome, accept_outcome::stored);
  EXPECT_EQ(by_name["first"].outcome, accept_outcome::stored);
  EXPECT_EQ(by_name["copy"].outcome, accept_outcome::duplicate);
  EXPECT_EQ(by_name["copy"].accepted_at, by_name["first"].accepted_at);
  EXPECT_EQ(by_name["changed"].outcome, accept_outcome::conflict);
  EXPECT_EQ(store.stats().commits, 2U);
  EXPECT_EQ(store.stats().largest_batch, 3U);
  EXPECT_EQ(count_messages(dir / "store.db"), 2U);
}

// ---------------------------------------------------------------------------------------------
// Group commit

/// 500 accepts from 8 threads, each record answered once and stored once.
void accept_500_from_8_threads(sqlite_store& store, answers& got) {
  std::vector<std::thread> threads;
  std::atomic<int> next{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int n = next++; n < 500; n = next++) {
        store.accept(make_record(make_id(n)), got.handler(make_id(n)));
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
}

void expect_all_500_stored(answers& got, const std::filesystem::path& db) {
  const auto results = got.wait();
  ASSERT_EQ(results.size(), 500U);
  std::map<std::string, int> seen;
  for (const auto& [id, result] : results) {
    EXPECT_EQ(result.outcome, accept_outcome::stored) << id << " " << result.reason;
    ++seen[id];
  }
  EXPECT_EQ(seen.size(), 500U);
  EXPECT_EQ(count_messages(db), 500U);
}

TEST(SqliteStore, ConcurrentAcceptsShareTransactions) {
  test::temp_dir dir;
  sqlite_store store(options_for(dir / "store.db"));
  answers got(500);
  accept_500_from_8_threads(store, got);
  expect_all_500_stored(got, dir / "store.db");
  // Records pile up while a batch waits for its fsync, so far fewer transactions than records.
  EXPECT_LT(store.stats().commits, 500U);
  EXPECT_EQ(store.stats().records_committed, 500U);
}

TEST(SqliteStore, QueuedAcceptsCommitInOneTransaction) {
  test::temp_dir dir;
  sqlite_store store(options_for(dir / "store.db"));
  answers got(500);
  {
    writer_gate gate(dir / "store.db");
    accept_500_from_8_threads(store, got);
  }
  expect_all_500_stored(got, dir / "store.db");
  // At most what the writer took before the gate, then everything else (500 < max_batch 512).
  EXPECT_LE(store.stats().commits, 2U);
  EXPECT_GE(store.stats().largest_batch, 250U);
}

TEST(SqliteStore, MaxBatchBoundsATransaction) {
  test::temp_dir dir;
  sqlite_options options = options_for(dir / "store.db");
  options.max_batch = 100;
  sqlite_store store(options);
  answers got(301);
  {
    writer_gate gate(dir / "store.db");
    store.accept(make_record(make_id(1000)), got.handler("primer"));
    wait_until_writer_took_all(store);
    for (int n = 0; n < 300; ++n) {
      store.accept(make_record(make_id(n)), got.handler(make_id(n)));
    }
  }
  for (const auto& [id, result] : got.wait()) {
    EXPECT_EQ(result.outcome, accept_outcome::stored) << id;
  }
  EXPECT_EQ(store.stats().commits, 4U);  // the primer, then 3 x 100
  EXPECT_EQ(store.stats().largest_batch, 100U);
  EXPECT_EQ(count_messages(dir / "store.db"), 301U);
}

// ---------------------------------------------------------------------------------------------
// Stop, reopen, durability

TEST(SqliteStore, StopCommitsWhatIsQueued) {
  test::temp_dir dir;
  std::atomic<int> stored{0};
  {
    sqlite_store store(options_for(dir / "store.db"));
    for (int n = 0; n < 50; ++n) {
      store.accept(make_record(make_id(n)), [&stored](accept_result result) {
        if (result.outcome == accept_outcome::stored) {
          ++stored;
        }
      });
    }
    store.stop();
    EXPECT_EQ(stored.load(), 50);  // every handler ran before stop() returned
  }
  EXPECT_EQ(count_messages(dir / "store.db"), 50U);
}

TEST(SqliteStore, ReopenAfterStopKeepsEverything) {
  test::temp_dir dir;
  std::vector<std::string> accepted_at;
  {
    auto store = open_sqlite_store(options_for(dir / "store.db"));
    for (int n = 0; n < 3; ++n) {
      const accept_result result = accept_now(*store, make_record(make_id(n)));
      ASSERT_EQ(result.outcome, accept_outcome::stored);
      accepted_at.push_back(result.accepted_at);
    }
  }
  auto store = open_sqlite_store(options_for(dir / "store.db"));
  for (int n = 0; n < 3; ++n) {
    const auto [status, ok] = find_now(*store, make_id(n));
    ASSERT_TRUE(ok && status.has_value());
    EXPECT_EQ(status->accepted_at, accepted_at[static_cast<std::size_t>(n)]);
  }
  const accept_result again = accept_now(*store, make_record(make_id(0)));
  EXPECT_EQ(again.outcome, accept_outcome::duplicate);
  EXPECT_EQ(again.accepted_at, accepted_at[0]);
  EXPECT_EQ(count_messages(dir / "store.db"), 3U);
}

TEST(SqliteStore, CreatesTheParentDirectoryAndUsesWal) {
  test::temp_dir dir;
  const auto path = dir / "a" / "b" / "store.db";
  sqlite_store store(options_for(path));
  EXPECT_EQ(accept_now(store, make_record(make_id(1))).outcome, accept_outcome::stored);
  raw_db raw(path);
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(sqlite_schema_version));
}

// ---------------------------------------------------------------------------------------------
// Disk full

TEST(SqliteStore, DiskFullAnswersUnavailableAndKeepsWhatWasStored) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options = options_for(path);
  options.max_size_bytes = 128 * 1024;
  std::vector<std::string> stored_ids;
  message_record refused;
  {
    sqlite_store store(options);
    accept_result result;
    for (int n = 0; n < 100; ++n) {
      message_record record = big_record(n);
      result = accept_now(store, record);
      if (result.outcome != accept_outcome::stored) {
        refused = record;
        break;
      }
      stored_ids.push_back(record.id);
    }
    ASSERT_EQ(result.outcome, accept_outcome::unavailable);
    EXPECT_EQ(result.reason, "disk-full");
    ASSERT_FALSE(stored_ids.empty());
    EXPECT_TRUE(store.healthy());  // disk full is not fatal
    EXPECT_EQ(count_messages(path), stored_ids.size());
    const auto [missing, ok] = find_now(store, refused.id);
    EXPECT_TRUE(ok);
    EXPECT_FALSE(missing.has_value());

    // Space comes back when rows go: the same store accepts again, without a restart.
    raw_db(path).exec("DELETE FROM messages WHERE id IN ('" + stored_ids[0] + "', '" +
                      stored_ids[1] + "')");
    stored_ids.erase(stored_ids.begin(), stored_ids.begin() + 2);
    EXPECT_EQ(accept_now(store, refused).outcome, accept_outcome::stored);
    stored_ids.push_back(refused.id);
  }

  // Without the cap, the reopened store grows again; everything stored before is intact.
  options.max_size_bytes = 0;
  sqlite_store store(options);
  EXPECT_EQ(accept_now(store, big_record(1000)).outcome, accept_outcome::stored);
  for (const auto& id : stored_ids) {
    const auto [status, ok] = find_now(store, id);
    EXPECT_TRUE(ok && status.has_value()) << id;
  }
  EXPECT_EQ(count_messages(path), stored_ids.size() + 1);
}

TEST(SqliteStore, DiskFullRollsBackTheWholeBatch) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options = options_for(path);
  options.max_size_bytes = 128 * 1024;
  sqlite_store store(options);

  answers got(11);
  {
    writer_gate gate(path);
    store.accept(make_record(make_id(1000)), got.handler("primer"));
    wait_until_writer_took_all(store);
    // 10 x 8 KiB in one batch: the first few would fit on their own, the batch does not.
    for (int n = 0; n < 10; ++n) {
      store.accept(big_record(n), got.handler(make_id(n)));
    }
  }
  for (const auto& [id, result] : got.wait()) {
    if (id == "primer") {
      EXPECT_EQ(result.outcome, accept_outcome::stored);
    } else {
      EXPECT_EQ(result.outcome, accept_outcome::unavailable) << id;
      EXPECT_EQ(result.reason, "disk-full") << id;
    }
  }
  EXPECT_EQ(count_messages(path), 1U);  // nothing of the failed batch was left behind
  EXPECT_EQ(store.stats().failed_batches, 1U);
  EXPECT_EQ(accept_now(store, big_record(0)).outcome, accept_outcome::stored);
  EXPECT_EQ(count_messages(path), 2U);
}

// ---------------------------------------------------------------------------------------------
// Fail-stop on a failed fsync, through a VFS that wraps the default one

std::atomic<bool> fail_syncs{false};
sqlite3_vfs* real_vfs = nullptr;

/// While held, an fsync of a main database file (not of a log) waits until the hold is released:
/// only a checkpoint syncs the database file in WAL mode, so this stops checkpoints half-way.
class database_sync_hold {
 public:
  void hold() {
    const std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release() {
    {
      const std::lock_guard lock(mutex_);
      held_ = false;
    }
    cv_.notify_all();
  }
  /// Called by the VFS: counts the sync and waits while held.
  void pass() {
    std::unique_lock lock(mutex_);
    if (held_) {
      ++waiting_;
      cv_.wait(lock, [this] { return !held_; });
      --waiting_;
    }
  }
  /// How many syncs wait at the hold right now.
  int waiting() {
    const std::lock_guard lock(mutex_);
    return waiting_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};
database_sync_hold database_syncs;

struct fault_file {
  sqlite3_file base;
  sqlite3_file* real;  // the real VFS's file, stored right after this struct
  bool main_db;        // opened as a main database file (not a log or a journal)
};

sqlite3_file* real_of(sqlite3_file* file) {
  return reinterpret_cast<fault_file*>(file)->real;
}

int fault_close(sqlite3_file* f) {
  return real_of(f)->pMethods->xClose(real_of(f));
}
int fault_read(sqlite3_file* f, void* buffer, int size, sqlite3_int64 offset) {
  return real_of(f)->pMethods->xRead(real_of(f), buffer, size, offset);
}
int fault_write(sqlite3_file* f, const void* buffer, int size, sqlite3_int64 offset) {
  return real_of(f)->pMethods->xWrite(real_of(f), buffer, size, offset);
}
int fault_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return real_of(f)->pMethods->xTruncate(real_of(f), size);
}
int fault_sync(sqlite3_file* f, int flags) {
  if (fail_syncs) {
    return SQLITE_IOERR_FSYNC;
  }
  if (reinterpret_cast<fault_file*>(f)->main_db) {
    database_syncs.pass();
  }
  return real_of(f)->pMethods->xSync(real_of(f), flags);
}
int fault_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
int fault_lock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xLock(real_of(f), level);
}
int fault_unlock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
int fault_check_reserved_lock(sqlite3_file* f, int* out) {
  return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
int fault_file_control(sqlite3_file* f, int op, void* arg) {
  return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
int fault_sector_size(sqlite3_file* f) {
  return real_of(f)->pMethods->xSectorSize(real_of(f));
}
int fault_device_characteristics(sqlite3_file* f) {
  return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
int fault_shm_map(sqlite3_file* f, int page, int page_size, int extend, void volatile** out) {
  return real_of(f)->pMethods->xShmMap(real_of(f), page, page_size, extend, out);
}
int fault_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
void fault_shm_barrier(sqlite3_file* f) {
  real_of(f)->pMethods->xShmBarrier(real_of(f));
}
int fault_shm_unmap(sqlite3_file* f, int delete_flag) {
  return real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
}

sqlite3_io_methods make_fault_methods() {
  sqlite3_io_methods m{};
  m.iVersion = 2;  // WAL needs the shared-memory methods; memory mapping (version 3) stays off
  m.xClose = fault_close;
  m.xRead = fault_read;
  m.xWrite = fault_write;
  m.xTruncate = fault_truncate;
  m.xSync = fault_sync;
  m.xFileSize = fault_file_size;
  m.xLock = fault_lock;
  m.xUnlock = fault_unlock;
  m.xCheckReservedLock = fault_check_reserved_lock;
  m.xFileControl = fault_file_control;
  m.xSectorSize = fault_sector_size;
  m.xDeviceCharacteristics = fault_device_characteristics;
  m.xShmMap = fault_shm_map;
  m.xShmLock = fault_shm_lock;
  m.xShmBarrier = fault_shm_barrier;
  m.xShmUnmap = fault_shm_unmap;
  return m;
}
const sqlite3_io_methods fault_methods = make_fault_methods();

int fault_open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* wrapper = reinterpret_cast<fault_file*>(file);
  wrapper->real = reinterpret_cast<sqlite3_file*>(wrapper + 1);
  wrapper->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  const int rc = real_vfs->xOpen(real_vfs, name, wrapper->real, flags, out_flags);
  wrapper->base.pMethods = rc == SQLITE_OK ? &fault_methods : nullptr;
  return rc;
}
int fault_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int fault_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int fault_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, size, out);
}
int fault_randomness(sqlite3_vfs*, int size, char* out) {
  return real_vfs->xRandomness(real_vfs, size, out);
}
int fault_sleep(sqlite3_vfs*, int micros) {
  return real_vfs->xSleep(real_vfs, micros);
}
int fault_current_time(sqlite3_vfs*, double* out) {
  return real_vfs->xCurrentTime(real_vfs, out);
}
int fault_last_error(sqlite3_vfs*, int size, char* out) {
  return real_vfs->xGetLastError(real_vfs, size, out);
}
int fault_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

/// Registers the fault VFS as the default while alive; every connection opened meanwhile (the
/// store's two included) goes through it.
class fault_vfs_scope {
 public:
  fault_vfs_scope() {
    real_vfs = sqlite3_vfs_find(nullptr);
    vfs_.iVersion = 2;
    vfs_.szOsFile = static_cast<int>(sizeof(fault_file)) + real_vfs->szOsFile;
    vfs_.mxPathname = real_vfs->mxPathname;
    vfs_.zName = "mxgw-fault";
    vfs_.xOpen = fault_open;
    vfs_.xDelete = fault_delete;
    vfs_.xAccess = fault_access;
    vfs_.xFullPathname = fault_full_pathname;
    vfs_.xRandomness = fault_randomness;
    vfs_.xSleep = fault_sleep;
    vfs_.xCurrentTime = fault_current_time;
    vfs_.xGetLastError = fault_last_error;
    vfs_.xCurrentTimeInt64 = fault_current_time_int64;
    sqlite3_vfs_register(&vfs_, 1);
  }
  ~fault_vfs_scope() {
    fail_syncs = false;
    database_syncs.release();
    sqlite3_vfs_unregister(&vfs_);
  }
  fault_vfs_scope(const fault_vfs_scope&) = delete;
  fault_vfs_scope& operator=(const fault_vfs_scope&) = delete;

 private:
  sqlite3_vfs vfs_{};
};

TEST(SqliteStore, FailedFsyncStopsTheStoreForGood) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  {
    fault_vfs_scope fault;
    sqlite_store store(options_for(path));
    ASSERT_EQ(accept_now(store, make_record(make_id(1))).outcome, accept_outcome::stored);

    fail_syncs = true;
    const accept_result failed = accept_now(store, make_record(make_id(2)));
    EXPECT_EQ(failed.outcome, accept_outcome::unavailable);
    EXPECT_EQ(failed.reason, "io-error");
    EXPECT_FALSE(store.healthy());

    // Even with the disk "repaired", the store never writes again: fail-stop.
    fail_syncs = false;
    const accept_result later = accept_now(store, make_record(make_id(3)));
    EXPECT_EQ(later.outcome, accept_outcome::unavailable);
    EXPECT_EQ(later.reason, "io-error");
    const auto [status, ok] = find_now(store, make_id(1));
    EXPECT_FALSE(ok);
    EXPECT_FALSE(status.has_value());
    store.stop();
  }

  // A restart on a good disk: the first record is there; the one whose fsync failed may or may
  // not have reached the file, and a retry says which (stored or duplicate, never lost).
  sqlite_store store(options_for(path));
  const auto [status, ok] = find_now(store, make_id(1));
  EXPECT_TRUE(ok && status.has_value());
  const accept_result retry = accept_now(store, make_record(make_id(2)));
  EXPECT_TRUE(retry.outcome == accept_outcome::stored ||
              retry.outcome == accept_outcome::duplicate);
  EXPECT_EQ(accept_now(store, make_record(make_id(3))).outcome, accept_outcome::stored);
}

// ---------------------------------------------------------------------------------------------
// The write-ahead log: checkpoints off the commit path, and a bound on the log

/// Pages one batch of `max_batch` big records can add to the log: the slack past a bound that is
/// checked between batches (an 8 KiB body is two overflow pages, plus leaf and index pages).
constexpr std::uint64_t batch_pages(std::size_t max_batch) {
  return 8 * max_batch + 32;
}

std::filesystem::path wal_of(const std::filesystem::path& db) {
  return db.string() + "-wal";
}

/// Waits (bounded) until `done` is true; false when the wait limit passed first.
bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + wait_limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(SqliteStore, TheLogStaysUnderItsBoundThroughALongBurst) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  sqlite_options options = options_for(path);
  options.checkpoint_pages = 32;
  options.wal_limit_pages = 256;
  options.max_batch = 16;
  sqlite_store store(options);
  constexpr int total = 2000;  // some 6,000 pages: far past the bound, so the log must start over
  answers got(total);
  std::vector<std::thread> threads;
  std::atomic<int> next{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int n = next++; n < total; n = next++) {
        store.accept(big_record(n), got.handler(make_id(n)));
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (const auto& [id, result] : got.wait()) {
    ASSERT_EQ(result.outcome, accept_outcome::stored) << id;
  }
  const sqlite_store_stats stats = store.stats();
  EXPECT_GT(stats.checkpoints, 0U);
  EXPECT_GT(stats.largest_wal_pages, 0U);
  // Background checkpoints alone let the log grow past 5,000 pages here; SQLite's automatic
  // one (1,000 pages) would too. The bound: twice the limit when a run is always in flight.
  const std::uint64_t bound = 2 * options.wal_limit_pages + batch_pages(options.max_batch);
  EXPECT_LE(stats.largest_wal_pages, bound);
  const std::uint64_t page = 4096;
  EXPECT_LE(std::filesystem::file_size(wal_of(path)), 32 + bound * (page + 24));
  EXPECT_EQ(count_messages(path), static_cast<std::size_t>(total));
}

TEST(SqliteStore, CommitsDoNotWaitForACheckpointAndStopWaitsForOneInFlight) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  fault_vfs_scope fault;
  sqlite_options options = options_for(path);
  options.checkpoint_pages = 16;
  options.wal_limit_pages = 1U << 20;  // no bound in reach: only the checkpoint is under test
  auto store = std::make_unique<sqlite_store>(options);
  ASSERT_EQ(accept_now(*store, big_record(0)).outcome, accept_outcome::stored);

  // A checkpoint starts once the log has 16 pages, and stops at its fsync of the database file.
  database_syncs.hold();
  int n = 1;
  for (; n < 200 && database_syncs.waiting() == 0; ++n) {
    ASSERT_EQ(accept_now(*store, big_record(n)).outcome, accept_outcome::stored);
  }
  ASSERT_TRUE(eventually([] { return database_syncs.waiting() == 1; }))
      << "no checkpoint reached the database file's fsync";
  // With the checkpoint stuck half-way, commits go on: the writer never runs one itself. (With
  // SQLite's automatic checkpoint, the commit crossing 1,000 pages would hang here.)
  const int stuck_at = n;
  for (; n < stuck_at + 400; ++n) {
    ASSERT_EQ(accept_now(*store, big_record(n)).outcome, accept_outcome::stored) << n;
  }
  EXPECT_EQ(database_syncs.waiting(), 1);
  EXPECT_EQ(store->stats().checkpoint_waits, 0U);
  EXPECT_GT(store->stats().largest_wal_pages, 1000U);

  // stop() waits for the checkpoint in flight before it closes the connections under it.
  auto stopped = std::async(std::launch::async, [&store] { store->stop(); });
  EXPECT_EQ(stopped.wait_for(200ms), std::future_status::timeout);
  database_syncs.release();
  ASSERT_EQ(stopped.wait_for(wait_limit), std::future_status::ready);
  stopped.get();
  store.reset();
  // The writer closed last: it checkpointed the whole log and removed it.
  EXPECT_FALSE(std::filesystem::exists(wal_of(path)));
  EXPECT_EQ(count_messages(path), static_cast<std::size_t>(n));
}

TEST(SqliteStore, TheWriterWaitsAtTheLogBoundUntilACheckpointCatchesUp) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  fault_vfs_scope fault;
  sqlite_options options = options_for(path);
  options.checkpoint_pages = 16;
  options.wal_limit_pages = 128;
  options.max_batch = 8;
  sqlite_store store(options);
  ASSERT_EQ(accept_now(store, big_record(0)).outcome, accept_outcome::stored);

  database_syncs.hold();
  constexpr int total = 300;
  answers got(total);
  std::atomic<int> answered{0};
  for (int n = 1; n <= total; ++n) {
    store.accept(big_record(n), [&answered, h = got.handler(make_id(n))](accept_result r) {
      ++answered;
      h(std::move(r));
    });
  }
  // The checkpoint is stuck, the log reaches its bound, and the writer stops taking batches.
  ASSERT_TRUE(eventually([&store] {
    return store.stats().checkpoint_waits > 0 && database_syncs.waiting() == 1;
  })) << "the writer never waited at the bound";
  const int before = answered.load();
  EXPECT_LT(before, total);
  EXPECT_GT(store.stats().queued, 0U);
  // With a run in flight the writer went on to twice the bound, and not further.
  const std::uint64_t bound = 2 * options.wal_limit_pages + batch_pages(options.max_batch);
  EXPECT_GE(store.stats().largest_wal_pages, 2 * options.wal_limit_pages);
  EXPECT_LE(store.stats().largest_wal_pages, bound);

  database_syncs.release();
  for (const auto& [id, result] : got.wait()) {
    EXPECT_EQ(result.outcome, accept_outcome::stored) << id;
  }
  EXPECT_GT(answered.load(), before);
  EXPECT_LE(store.stats().largest_wal_pages, bound);
  EXPECT_GE(store.stats().checkpoints, 2U);
  EXPECT_EQ(count_messages(path), static_cast<std::size_t>(total + 1));
}

// ---------------------------------------------------------------------------------------------
// Opening

TEST(SqliteStore, TheAuditTableRefusesUpdatesAndDeletes) {
  test::temp_dir dir;
  {
    sqlite_store store(options_for(dir / "store.db"));
    std::promise<bool> p;
    auto f = p.get_future();
    store.append_audit({{.event = "cert.revoked", .actor = "admin:an"}},
                       [&p](bool ok) { p.set_value(ok); });
    ASSERT_TRUE(f.get());
  }
  raw_db db(dir / "store.db");
  char* error = nullptr;
  sqlite3* handle = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "store.db").string().c_str(), &handle), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(handle, "UPDATE audit SET event = 'x'", nullptr, nullptr, &error),
            SQLITE_CONSTRAINT);
  sqlite3_free(error);
  error = nullptr;
  EXPECT_EQ(sqlite3_exec(handle, "DELETE FROM audit", nullptr, nullptr, &error), SQLITE_CONSTRAINT);
  sqlite3_free(error);
  sqlite3_close(handle);
  EXPECT_EQ(db.text("SELECT event FROM audit WHERE seq = 1"), "cert.revoked");
}

TEST(SqliteStore, NewerSchemaVersionIsRefused) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  raw_db(path).exec("PRAGMA user_version = " + std::to_string(sqlite_schema_version + 1));
  try {
    sqlite_store store(options_for(path));
    FAIL() << "a newer schema was accepted";
  } catch (const store_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string()), std::string::npos) << what;
    EXPECT_NE(what.find("version " + std::to_string(sqlite_schema_version + 1)), std::string::npos)
        << what;
    EXPECT_NE(what.find("(" + std::to_string(sqlite_schema_version) + ")"), std::string::npos)
        << what;
  }
  EXPECT_EQ(raw_db(path).text("PRAGMA user_version"),
            std::to_string(sqlite_schema_version + 1));  // untouched
}

TEST(SqliteStore, NotADatabaseIsRefused) {
  test::temp_dir dir;
  const auto path = dir / "store.db";
  std::string junk;
  for (int i = 0; i < 200; ++i) {
    junk += "this is not an SQLite database. ";
  }
  test::write_file(path, junk);
  EXPECT_THROW(sqlite_store store(options_for(path)), store_error);
  EXPECT_EQ(test::read_file(path), junk);
}

TEST(SqliteStore, CountMessagesOfAMissingFileThrows) {
  test::temp_dir dir;
  EXPECT_THROW(count_messages(dir / "missing.db"), store_error);
}

}  // namespace
}  // namespace mxgw::store
