#include "gateway/store/wal_buffer.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace mxgw::store {
namespace {

/// The most bytes held before they are written anyway. The unix VFS takes at most 128 KiB - 1
/// in one write (it masks the length to 17 bits; a longer write comes back short, as a full
/// disk), so a group commit of 64 messages (about 1.3 MB of frames) goes out in some ten writes
/// instead of some 600.
constexpr std::size_t max_buffered_bytes = std::size_t{120} << 10;

/// WAL frame header: page number (4 bytes), then the database size in pages after the commit
/// for a commit frame, zero otherwise (https://www.sqlite.org/fileformat2.html#walformat).
constexpr int frame_header_bytes = 24;

std::atomic<std::uint64_t> writes_asked{0};
std::atomic<std::uint64_t> writes_made{0};
std::atomic<std::uint64_t> failed_flushes{0};

sqlite3_vfs* first_default = nullptr;  // the default VFS when the shim was registered
sqlite3_vfs shim_vfs{};

/// Room for the real VFS's file object past the shim's own state. Generous, because the default
/// VFS may be replaced after registration (the tests wrap it with one that injects faults).
constexpr int real_file_room = 2048;

/// The VFS underneath: the default at the time of the call, so a VFS that replaces the default
/// later (a fault injector in the tests) sits under the shim too.
/// The shim itself becomes the default when a default registered before it is unregistered
/// (SQLite promotes the next VFS in its list); then the platform's own VFS is the one beneath.
sqlite3_vfs* real() {
  sqlite3_vfs* vfs = sqlite3_vfs_find(nullptr);
  if (vfs != nullptr && vfs != &shim_vfs) {
    return vfs;
  }
  sqlite3_vfs* platform = sqlite3_vfs_find("unix");
  return platform != nullptr ? platform : first_default;
}

/// A WAL file: the shim's state, then the real VFS's file object (allocated right after it).
struct wal_file {
  sqlite3_file base;  // first: SQLite sees a wal_file as a sqlite3_file
  sqlite3_file* real;
  std::vector<unsigned char>* buffer;  // the bytes of [start, start + buffer->size())
  sqlite3_int64 start;
  bool commit_pending;  // the last write was a commit frame's header: flush after its page
};

constexpr std::size_t real_offset = (sizeof(wal_file) + 15) / 16 * 16;

wal_file* self(sqlite3_file* file) {
  return reinterpret_cast<wal_file*>(file);
}

int flush(wal_file* f) {
  if (f->buffer->empty()) {
    return SQLITE_OK;
  }
  const int rc = f->real->pMethods->xWrite(f->real, f->buffer->data(),
                                           static_cast<int>(f->buffer->size()), f->start);
  writes_made.fetch_add(1, std::memory_order_relaxed);
  // On failure the bytes are dropped: they are frames of the transaction that is failing (every
  // commit is flushed before the write of its commit frame returns), which SQLite rolls back.
  if (rc != SQLITE_OK) {
    failed_flushes.fetch_add(1, std::memory_order_relaxed);
  }
  f->buffer->clear();
  return rc;
}

int wal_close(sqlite3_file* file) {
  wal_file* f = self(file);
  const int flushed = flush(f);
  const int rc = f->real->pMethods != nullptr ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
  delete f->buffer;
  f->buffer = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int wal_read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  wal_file* f = self(file);
  // Below the buffered range the file is current; anything else sees the buffer written first.
  if (!f->buffer->empty() && offset + amount > f->start) {
    if (const int rc = flush(f); rc != SQLITE_OK) {
      return rc;
    }
  }
  return f->real->pMethods->xRead(f->real, out, amount, offset);
}

int wal_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  wal_file* f = self(file);
  writes_asked.fetch_add(1, std::memory_order_relaxed);
  const auto* bytes = static_cast<const unsigned char*>(data);
  const auto size = static_cast<std::size_t>(amount);
  std::vector<unsigned char>& buffer = *f->buffer;
  const sqlite3_int64 end = f->start + static_cast<sqlite3_int64>(buffer.size());

  if (!buffer.empty() && offset >= f->start && offset + amount <= end) {
    // A frame of this transaction written again (SQLite overwrites a page in place).
    std::memcpy(buffer.data() + (offset - f->start), bytes, size);
  } else if ((buffer.empty() || offset == end) && buffer.size() + size <= max_buffered_bytes) {
    if (buffer.empty()) {
      f->start = offset;
    }
    try {
      buffer.insert(buffer.end(), bytes, bytes + size);
    } catch (const std::bad_alloc&) {
      return SQLITE_IOERR_NOMEM;
    }
  } else {
    if (const int rc = flush(f); rc != SQLITE_OK) {
      return rc;
    }
    if (size > max_buffered_bytes) {
      writes_made.fetch_add(1, std::memory_order_relaxed);
      return f->real->pMethods->xWrite(f->real, data, amount, offset);
    }
    f->start = offset;
    buffer.assign(bytes, bytes + size);
  }

  // The commit frame complete (its header, then its page): out it goes, so the frames are in the
  // file before SQLite publishes them to other connections, whatever the synchronous setting.
  if (f->commit_pending) {
    f->commit_pending = false;
    return flush(f);
  }
  if (amount == frame_header_bytes) {
    const std::uint32_t commit_size = (std::uint32_t{bytes[4]} << 24) |
                                      (std::uint32_t{bytes[5]} << 16) |
                                      (std::uint32_t{bytes[6]} << 8) | std::uint32_t{bytes[7]};
    f->commit_pending = commit_size != 0;
  }
  return SQLITE_OK;
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  wal_file* f = self(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real->pMethods->xTruncate(f->real, size);
}

int wal_sync(sqlite3_file* file, int flags) {
  wal_file* f = self(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real->pMethods->xSync(f->real, flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  wal_file* f = self(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real->pMethods->xFileSize(f->real, size);
}

int wal_lock(sqlite3_file* file, int level) {
  return self(file)->real->pMethods->xLock(self(file)->real, level);
}

int wal_unlock(sqlite3_file* file, int level) {
  return self(file)->real->pMethods->xUnlock(self(file)->real, level);
}

int wal_check_reserved_lock(sqlite3_file* file, int* out) {
  return self(file)->real->pMethods->xCheckReservedLock(self(file)->real, out);
}

int wal_file_control(sqlite3_file* file, int op, void* arg) {
  wal_file* f = self(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real->pMethods->xFileControl(f->real, op, arg);
}

int wal_sector_size(sqlite3_file* file) {
  return self(file)->real->pMethods->xSectorSize(self(file)->real);
}

int wal_device_characteristics(sqlite3_file* file) {
  return self(file)->real->pMethods->xDeviceCharacteristics(self(file)->real);
}

// Version 1: the shared-memory and memory-map methods are the database file's, never a log's.
const sqlite3_io_methods wal_methods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
};

int shim_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags,
              int* out_flags) {
  (void)vfs;
  sqlite3_vfs* real_vfs = real();
  if (real_vfs->szOsFile > real_file_room) {
    return SQLITE_CANTOPEN;  // its file object would not fit in what SQLite allocated
  }
  if ((flags & SQLITE_OPEN_WAL) == 0) {
    // Everything but the log is the real VFS's own file object, in the space SQLite allocated.
    return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
  }
  wal_file* f = self(file);
  f->base.pMethods = nullptr;  // until the real file is open, SQLite must not close it
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + real_offset);
  f->real->pMethods = nullptr;
  f->buffer = nullptr;
  f->start = 0;
  f->commit_pending = false;
  const int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods != nullptr) {
      f->real->pMethods->xClose(f->real);
    }
    return rc;
  }
  f->buffer = new (std::nothrow) std::vector<unsigned char>();
  if (f->buffer == nullptr) {
    f->real->pMethods->xClose(f->real);
    return SQLITE_NOMEM;
  }
  f->base.pMethods = &wal_methods;
  return SQLITE_OK;
}

int shim_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  sqlite3_vfs* v = real();
  return v->xDelete(v, name, sync_dir);
}
int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  sqlite3_vfs* v = real();
  return v->xAccess(v, name, flags, out);
}
int shim_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  sqlite3_vfs* v = real();
  return v->xFullPathname(v, name, size, out);
}
void* shim_dl_open(sqlite3_vfs*, const char* name) {
  sqlite3_vfs* v = real();
  return v->xDlOpen(v, name);
}
void shim_dl_error(sqlite3_vfs*, int size, char* out) {
  sqlite3_vfs* v = real();
  v->xDlError(v, size, out);
}
void (*shim_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  sqlite3_vfs* v = real();
  return v->xDlSym(v, handle, symbol);
}
void shim_dl_close(sqlite3_vfs*, void* handle) {
  sqlite3_vfs* v = real();
  v->xDlClose(v, handle);
}
int shim_randomness(sqlite3_vfs*, int size, char* out) {
  sqlite3_vfs* v = real();
  return v->xRandomness(v, size, out);
}
int shim_sleep(sqlite3_vfs*, int microseconds) {
  sqlite3_vfs* v = real();
  return v->xSleep(v, microseconds);
}
int shim_current_time(sqlite3_vfs*, double* out) {
  sqlite3_vfs* v = real();
  return v->xCurrentTime(v, out);
}
int shim_get_last_error(sqlite3_vfs*, int size, char* out) {
  sqlite3_vfs* real_vfs = real();
  return real_vfs->xGetLastError != nullptr ? real_vfs->xGetLastError(real_vfs, size, out) : 0;
}
int shim_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  sqlite3_vfs* real_vfs = real();
  if (real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64 != nullptr) {
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
  }
  double days = 0;
  const int rc = real_vfs->xCurrentTime(real_vfs, &days);
  *out = static_cast<sqlite3_int64>(days * 86400000.0);
  return rc;
}

}  // namespace

const char* register_wal_buffer_vfs() {
  static std::once_flag once;
  static int registered = SQLITE_ERROR;
  std::call_once(once, [] {
    first_default = sqlite3_vfs_find(nullptr);
    if (first_default == nullptr) {
      return;
    }
    shim_vfs.iVersion = 2;
    shim_vfs.szOsFile = static_cast<int>(real_offset) + real_file_room;
    shim_vfs.mxPathname = first_default->mxPathname;
    shim_vfs.zName = wal_buffer_vfs_name;
    shim_vfs.xOpen = shim_open;
    shim_vfs.xDelete = shim_delete;
    shim_vfs.xAccess = shim_access;
    shim_vfs.xFullPathname = shim_full_pathname;
    shim_vfs.xDlOpen = shim_dl_open;
    shim_vfs.xDlError = shim_dl_error;
    shim_vfs.xDlSym = shim_dl_sym;
    shim_vfs.xDlClose = shim_dl_close;
    shim_vfs.xRandomness = shim_randomness;
    shim_vfs.xSleep = shim_sleep;
    shim_vfs.xCurrentTime = shim_current_time;
    shim_vfs.xGetLastError = shim_get_last_error;
    shim_vfs.xCurrentTimeInt64 = shim_current_time_int64;
    registered = sqlite3_vfs_register(&shim_vfs, 0);
  });
  if (first_default == nullptr) {
    throw std::runtime_error("SQLite has no default VFS");
  }
  if (registered != SQLITE_OK) {
    throw std::runtime_error(std::string("cannot register the SQLite WAL buffer: ") +
                             sqlite3_errstr(registered));
  }
  return wal_buffer_vfs_name;
}

wal_buffer_stats wal_buffer_counters() {
  return {.writes_asked = writes_asked.load(std::memory_order_relaxed),
          .writes_made = writes_made.load(std::memory_order_relaxed),
          .failed_flushes = failed_flushes.load(std::memory_order_relaxed)};
}

}  // namespace mxgw::store
