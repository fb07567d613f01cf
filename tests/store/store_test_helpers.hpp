// Helpers shared by the store tests: ids, a raw SQLite connection of the test's own, a gate that
// holds the write lock so queued writes form one batch, bounded waits and a clock moved by hand.
#pragma once

#include "gateway/store/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <thread>

namespace mxgw::store::test_helpers {

/// A bound for waits on handlers, so a bug fails a test instead of hanging it.
inline constexpr auto wait_limit = std::chrono::seconds(60);

inline std::string make_id(int n) {
  std::array<char, 40> text{};
  std::snprintf(text.data(), text.size(), "00000000-0000-4000-8000-%012d", n);
  return text.data();
}

/// The store treats body_sha256 as an opaque key; a stand-in derived from the body is enough.
inline std::string fingerprint(const std::string& body) {
  return "sha-" + std::to_string(std::hash<std::string>{}(body));
}

/// A plain SQLite connection of the test's own, to look at or tamper with the file (through
/// the default VFS unless `vfs` names another).
class raw_db {
 public:
  explicit raw_db(const std::filesystem::path& path, const char* vfs = nullptr) {
    if (sqlite3_open_v2(path.string().c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        vfs) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 60000);
  }
  ~raw_db() { sqlite3_close(db_); }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;

  /// Runs `sql` and gives SQLite's result code (for statements that are expected to fail).
  int run(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
    }
    sqlite3_free(error);
  }

  /// The first column of the first row as text ("" when there is no row).
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

/// Holds the database's write lock from a second connection, so the store's writer waits in its
/// BEGIN IMMEDIATE while the test queues work: it then forms batches deterministically.
class writer_gate {
 public:
  explicit writer_gate(const std::filesystem::path& path) : db_(path) {
    db_.exec("BEGIN IMMEDIATE");
  }
  ~writer_gate() { release(); }
  writer_gate(const writer_gate&) = delete;
  writer_gate& operator=(const writer_gate&) = delete;

  void release() {
    if (held_) {
      held_ = false;
      db_.exec("COMMIT");
    }
  }

 private:
  raw_db db_;
  bool held_ = true;
};

/// Waits (without sleeping) until the writer has taken every queued write into its batch.
inline void wait_until_writer_took_all(const sqlite_store& store) {
  const auto deadline = std::chrono::steady_clock::now() + wait_limit;
  while (store.stats().queued != 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never took the queue";
    std::this_thread::yield();
  }
}

/// The value of `future`, waited for at most wait_limit (a default value and a failure when the
/// handler was never called).
template <typename T>
T wait_for(std::future<T>& future, const char* what) {
  if (future.wait_for(wait_limit) != std::future_status::ready) {
    ADD_FAILURE() << what << " handler not called";
    return T{};
  }
  return future.get();
}

/// A clock the test moves by hand; it starts on 2026-11-22T04:38:47.123Z.
class manual_clock {
 public:
  manual_clock()
      : now_(std::chrono::sys_days(std::chrono::year{2026} / 11 / 22).time_since_epoch() +
             std::chrono::hours(4) + std::chrono::minutes(38) + std::chrono::milliseconds(47'123)) {
  }

  time_point now() const { return time_point(now_.load()); }
  void advance(std::chrono::milliseconds by) { now_ = now_.load() + by; }
  void set(time_point t) { now_ = t.time_since_epoch(); }

  /// The function for the store's options; the clock must outlive the store.
  std::function<time_point()> function() {
    return [this] { return now(); };
  }

 private:
  std::atomic<time_point::duration> now_;
};

}  // namespace mxgw::store::test_helpers
