// A SQLite VFS shim that gathers the writes of a transaction to the write-ahead log into one
// system call. SQLite writes every WAL frame as two writes (its 24-byte header, then the page),
// so a group commit of 64 messages (some 300 frames) cost about 600 pwrite calls; on a virtual
// machine each one is a few microseconds of kernel entry and exit. The shim keeps the frames of
// the transaction in memory and writes them as one block when the commit frame is complete, at
// every sync, and before anything that could look at the file (a read of the buffered range, its
// size, a truncation, a file control, closing). What reaches the disk, and when it is synced, is
// exactly what SQLite asked for; only the number of calls changes.
#pragma once

#include <cstdint>

namespace mxgw::store {

/// The name the shim is registered under (sqlite3_open_v2's zVfs). It wraps the default VFS.
inline constexpr const char* wal_buffer_vfs_name = "mxgw-wal-buffer";

/// Registers the shim once per process (idempotent, thread-safe); throws std::runtime_error if
/// SQLite has no default VFS or refuses the registration. Returns wal_buffer_vfs_name.
const char* register_wal_buffer_vfs();

/// What the shim did since the process started (all connections): writes SQLite asked for, and
/// writes the shim made to the file (gathered blocks and writes passed through unchanged).
struct wal_buffer_stats {
  std::uint64_t writes_asked = 0;
  std::uint64_t writes_made = 0;
  std::uint64_t failed_flushes = 0;
};
wal_buffer_stats wal_buffer_counters();

}  // namespace mxgw::store
