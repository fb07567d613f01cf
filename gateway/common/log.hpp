// Structured one-line JSON logging of message metadata only (never names, dates, documents, text).
#pragma once

#include <filesystem>
#include <string_view>

namespace mxgw::log {

enum class level { debug, info, warn, error, critical };

/// The only things a log line can carry. Every member is metadata that the gateway itself produced
/// or validated (a message id is logged only once it is known to be a UUID); there is deliberately
/// no field for message content, so personal data cannot reach the log through this API.
struct fields {
  std::string_view event;       ///< what happened, e.g. "message.accepted", "tls.handshake_failed"
  std::string_view message_id;  ///< a validated UUID, or empty
  std::string_view partner;     ///< an authenticated partner id, or empty
  std::string_view message_type;  ///< a validated canonical type, or empty
  std::string_view outcome;       ///< e.g. "accepted", "refused", "duplicate"
  std::string_view reason;        ///< a fixed reason code chosen by our code
  std::string_view peer;          ///< remote endpoint address:port
  std::string_view detail;        ///< our own text (file paths, library error strings), never input
  int status = 0;                 ///< HTTP status, when there is one
  double latency_ms = -1;         ///< elapsed time, when measured
};

struct options {
  level min_level = level::info;
  std::filesystem::path file;  ///< empty: standard error
};

/// Replaces the process-wide sink. Safe to call again (tests point it at a file per test).
/// Throws std::runtime_error when the file cannot be opened.
void init(const options& opts);

/// Writes one JSON line: {"time":..., "level":..., "event":..., ...}; empty members are left out.
void write(level lvl, const fields& f);

inline void info(const fields& f) {
  write(level::info, f);
}
inline void warn(const fields& f) {
  write(level::warn, f);
}
inline void error(const fields& f) {
  write(level::error, f);
}

/// Flushes buffered lines (called at shutdown and by tests before reading the file).
void flush();

}  // namespace mxgw::log
