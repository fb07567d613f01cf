// JSON-lines log sink on top of spdlog; lines are built with RapidJSON so every value is escaped.
#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "gateway/common/time.hpp"

namespace mxgw::log {
namespace {

std::mutex sink_mutex;
std::shared_ptr<spdlog::logger> sink;  // guarded by sink_mutex for replacement
std::atomic<int> min_level{static_cast<int>(level::info)};

std::shared_ptr<spdlog::logger> current() {
  std::lock_guard lock(sink_mutex);
  if (!sink) {
    sink =
        std::make_shared<spdlog::logger>("mxgw", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    sink->set_pattern("%v");
    sink->flush_on(spdlog::level::trace);
  }
  return sink;
}

const char* level_name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
    case level::critical: return "critical";
  }
  return "info";
}

void put(rapidjson::Writer<rapidjson::StringBuffer>& w, const char* key, std::string_view value) {
  if (value.empty()) {
    return;
  }
  w.Key(key);
  w.String(json::non_null(value), static_cast<rapidjson::SizeType>(value.size()));
}

}  // namespace

void init(const options& opts) {
  std::shared_ptr<spdlog::sinks::sink> s;
  if (opts.file.empty()) {
    s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    try {
      s = std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file.string(), false);
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open log file " + opts.file.string() + ": " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("mxgw", std::move(s));
  logger->set_pattern("%v");
  logger->flush_on(spdlog::level::trace);
  min_level = static_cast<int>(opts.min_level);
  std::lock_guard lock(sink_mutex);
  sink = std::move(logger);
}

void write(level lvl, const fields& f) {
  if (static_cast<int>(lvl) < min_level.load(std::memory_order_relaxed)) {
    return;
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  put(w, "time", format_rfc3339_ms(std::chrono::system_clock::now()));
  put(w, "level", level_name(lvl));
  put(w, "event", f.event);
  put(w, "message_id", f.message_id);
  put(w, "partner", f.partner);
  put(w, "message_type", f.message_type);
  put(w, "outcome", f.outcome);
  put(w, "reason", f.reason);
  put(w, "peer", f.peer);
  put(w, "detail", f.detail);
  if (f.status != 0) {
    w.Key("status");
    w.Int(f.status);
  }
  if (f.latency_ms >= 0) {
    w.Key("latency_ms");
    w.Double(static_cast<double>(static_cast<long long>(f.latency_ms * 1000.0)) / 1000.0);
  }
  w.EndObject();
  current()->log(spdlog::level::info, spdlog::string_view_t(buffer.GetString(), buffer.GetSize()));
}

void flush() {
  current()->flush();
}

}  // namespace mxgw::log
