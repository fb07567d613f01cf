// The WAL buffer (gateway/store/wal_buffer.hpp): a transaction's log frames reach the file in a
// few writes, every committed frame is in the file before its commit returns (whatever the
// synchronous setting, so other connections and a copy taken at that moment see it), pages
// rewritten within a transaction stay right, and a failed write fails the commit and leaves the
// committed data as it was.
#include "gateway/store/wal_buffer.hpp"

#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>

namespace mxgw::store {
namespace {

using test_helpers::raw_db;

/// rows rows of a 3,000-byte payload each (about one page per row), in one transaction.
std::string insert_rows(int first, int rows) {
  return "WITH RECURSIVE n(i) AS (SELECT " + std::to_string(first) + " UNION ALL SELECT i + 1 " +
         "FROM n WHERE i < " + std::to_string(first + rows - 1) +
         ") INSERT INTO t (id, payload) SELECT i, randomblob(3000) FROM n";
}

void open_log(raw_db& db, const std::string& synchronous) {
  EXPECT_EQ(db.text("PRAGMA journal_mode = WAL"), "wal");
  db.exec("PRAGMA synchronous = " + synchronous);
  db.exec("PRAGMA wal_autocheckpoint = 0");  // the frames stay in the log, where the test looks
  db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
}

TEST(WalBuffer, ATransactionsFramesReachTheFileInAFewWrites) {
  test::temp_dir dir;
  raw_db db(dir / "t.db", register_wal_buffer_vfs());
  open_log(db, "FULL");
  const wal_buffer_stats before = wal_buffer_counters();
  db.exec("BEGIN");
  db.exec(insert_rows(1, 300));
  db.exec("COMMIT");
  const wal_buffer_stats after = wal_buffer_counters();
  const std::uint64_t asked = after.writes_asked - before.writes_asked;
  const std::uint64_t made = after.writes_made - before.writes_made;
  // SQLite asks for two writes per frame (header, page): some 600 for 300 pages; the shim makes
  // one per 120 KiB gathered.
  EXPECT_GE(asked, 600U);
  EXPECT_LE(made, 20U);
  EXPECT_EQ(after.failed_flushes, before.failed_flushes);
  EXPECT_EQ(db.text("SELECT count(*) FROM t"), "300");
}

// With synchronous=OFF nothing syncs the log, so only the flush at the commit frame puts the
// frames in the file before other connections are told about them.
class WalBufferVisibility : public testing::TestWithParam<const char*> {};

TEST_P(WalBufferVisibility, EveryCommitIsInTheFileWhenItReturns) {
  test::temp_dir dir;
  raw_db writer(dir / "t.db", register_wal_buffer_vfs());
  open_log(writer, GetParam());
  raw_db other(dir / "t.db", nullptr);  // the default VFS: it reads only what is in the file
  int rows = 0;
  for (int commit = 0; commit < 5; ++commit) {
    writer.exec(insert_rows(rows + 1, 7 + commit));
    rows += 7 + commit;
    EXPECT_EQ(other.text("SELECT count(*) FROM t"), std::to_string(rows)) << "commit " << commit;

    // A copy taken now (the writer still open, nothing checkpointed) is what a crash would
    // leave behind at this moment.
    const std::filesystem::path copy = dir / ("copy" + std::to_string(commit));
    std::filesystem::create_directory(copy);
    std::filesystem::copy_file(dir / "t.db", copy / "t.db");
    std::filesystem::copy_file(dir / "t.db-wal", copy / "t.db-wal");
    raw_db copied(copy / "t.db", nullptr);
    EXPECT_EQ(copied.text("SELECT count(*) FROM t"), std::to_string(rows)) << "commit " << commit;
    EXPECT_EQ(copied.text("PRAGMA integrity_check"), "ok");
  }
}

INSTANTIATE_TEST_SUITE_P(Synchronous, WalBufferVisibility, testing::Values("OFF", "NORMAL", "FULL"));

TEST(WalBuffer, PagesWrittenAgainWithinATransactionKeepTheirLastContent) {
  test::temp_dir dir;
  raw_db writer(dir / "t.db", register_wal_buffer_vfs());
  open_log(writer, "FULL");
  writer.exec("PRAGMA cache_size = 8");  // a small cache: the transaction spills pages early
  writer.exec(insert_rows(1, 50));
  writer.exec("BEGIN");
  for (int round = 1; round <= 20; ++round) {
    writer.exec("UPDATE t SET payload = zeroblob(2000 + " + std::to_string(round) + ")");
    writer.exec(insert_rows(1000 * round, 10));
  }
  writer.exec("COMMIT");
  raw_db other(dir / "t.db", nullptr);
  EXPECT_EQ(other.text("SELECT count(*) FROM t"), "250");
  // Every row updated in the last round has the last round's size; later inserts kept theirs.
  EXPECT_EQ(other.text("SELECT count(*) FROM t WHERE length(payload) = 2020"), "240");
  EXPECT_EQ(other.text("PRAGMA integrity_check"), "ok");
}

// The shim's own file object, driven directly: a write over bytes still in the buffer replaces
// them (SQLite rewrites a frame in place when a transaction changes a page again), a write
// elsewhere sends the buffer out first, and the file ends up as if every write had gone through.
TEST(WalBuffer, WritesOverBufferedBytesAndElsewhereLeaveTheFileAsWritten) {
  test::temp_dir dir;
  test::write_file(dir / "x.db", "");  // the unix VFS takes a log's permissions from its database
  sqlite3_vfs* vfs = sqlite3_vfs_find(register_wal_buffer_vfs());
  ASSERT_NE(vfs, nullptr);
  std::string storage(static_cast<std::size_t>(vfs->szOsFile), '\0');
  auto* file = reinterpret_cast<sqlite3_file*>(storage.data());
  const std::string name = (dir / "x.db-wal").string();
  int out_flags = 0;
  ASSERT_EQ(vfs->xOpen(vfs, name.c_str(), file,
                       SQLITE_OPEN_WAL | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out_flags),
            SQLITE_OK);
  const auto write = [&](const std::string& bytes, sqlite3_int64 offset) {
    return file->pMethods->xWrite(file, bytes.data(), static_cast<int>(bytes.size()), offset);
  };
  const wal_buffer_stats before = wal_buffer_counters();
  EXPECT_EQ(write(std::string(32, 'h'), 0), SQLITE_OK);
  EXPECT_EQ(write(std::string(24, '\0'), 32), SQLITE_OK);  // a frame header, not a commit
  EXPECT_EQ(write(std::string(4096, 'a'), 56), SQLITE_OK);
  EXPECT_EQ(write(std::string(4096, 'b'), 56), SQLITE_OK);   // over buffered bytes
  EXPECT_EQ(write(std::string(10, 'c'), 1000), SQLITE_OK);   // inside them, unaligned
  EXPECT_EQ(wal_buffer_counters().writes_made, before.writes_made) << "all of it still buffered";
  EXPECT_EQ(write(std::string(100, 'z'), 10000), SQLITE_OK);  // a gap: the buffer goes out
  EXPECT_EQ(wal_buffer_counters().writes_made, before.writes_made + 1);
  sqlite3_int64 size = 0;
  EXPECT_EQ(file->pMethods->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 10100);
  EXPECT_EQ(file->pMethods->xClose(file), SQLITE_OK);

  const std::string content = test::read_file(dir / "x.db-wal");
  ASSERT_EQ(content.size(), 10100U);
  EXPECT_EQ(content.substr(0, 32), std::string(32, 'h'));
  EXPECT_EQ(content.substr(32, 24), std::string(24, '\0'));
  EXPECT_EQ(content.substr(56, 944), std::string(944, 'b'));
  EXPECT_EQ(content.substr(1000, 10), std::string(10, 'c'));
  EXPECT_EQ(content.substr(1010, 4152 - 1010), std::string(4152 - 1010, 'b'));
  EXPECT_EQ(content.substr(4152, 10000 - 4152), std::string(10000 - 4152, '\0'));
  EXPECT_EQ(content.substr(10000), std::string(100, 'z'));
}

TEST(WalBuffer, AFailedWriteFailsTheCommitAndKeepsWhatWasCommitted) {
  test::temp_dir dir;
  {
    raw_db db(dir / "t.db", register_wal_buffer_vfs());
    open_log(db, "FULL");
    db.exec(insert_rows(1, 20));
  }
  // In a child process, because the file size limit applies to the whole process: the log may
  // not grow past 1 MB, and a transaction of some 5 MB has to fail.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
    int code = 0;
    {
      raw_db db(dir / "t.db", register_wal_buffer_vfs());
      open_log(db, "FULL");
      const rlimit limit{.rlim_cur = 1 << 20, .rlim_max = RLIM_INFINITY};
      setrlimit(RLIMIT_FSIZE, &limit);
      const wal_buffer_stats before = wal_buffer_counters();
      const int begin = db.run("BEGIN");
      const int insert = db.run(insert_rows(100, 1500));
      const int commit = insert == SQLITE_OK ? db.run("COMMIT") : insert;
      if (begin != SQLITE_OK || (commit & 0xff) != SQLITE_IOERR) {
        code = 10;  // the failure was not reported as an I/O error
      } else if (wal_buffer_counters().failed_flushes == before.failed_flushes) {
        code = 11;  // it did not come from a gathered write
      } else if (db.text("SELECT count(*) FROM t") != "20") {
        code = 12;  // the connection sees the failed rows, or lost the committed ones
      }
      db.run("ROLLBACK");
    }
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: not an I/O error, 11: not from the shim, 12: rows";
  raw_db db(dir / "t.db", nullptr);
  EXPECT_EQ(db.text("SELECT count(*) FROM t"), "20");
  EXPECT_EQ(db.text("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace mxgw::store
