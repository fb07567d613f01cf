// Deadline watch (see deadlines.hpp): one sweep reads the facts of the lookback window, finds the
// overdue requests, and puts or deletes escalation items against what the store already holds.
#include "gateway/report/deadlines.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"
#include "gateway/report/case_threads.hpp"
#include "gateway/report/collect.hpp"

namespace mxgw::report {

namespace {

struct request {
  std::size_t order = 0;  ///< position in the window, in the order of acceptance
  std::string sender;
  std::string deadline;  ///< "YYYY-MM-DD"
  /// The recipients whose answer settles it; nullopt for a request stored before its facts
  /// named them (any answer does).
  std::optional<std::vector<std::string>> to;
};

/// What the window's facts say about verification requests.
struct watched {
  std::map<std::string, request> requests;  ///< by message id
  case_threads threads;                     ///< answers and withdrawals
};

/// True when the request is answered by the report's rule (case_threads::first_answer): a
/// result from one of its recipients, accepted after it, that its sender has not withdrawn.
bool is_answered(const watched& w, const std::string& id, const request& r) {
  return w.threads.first_answer(id, r.order, r.to ? &*r.to : nullptr) != nullptr;
}

/// True when the request's own sender withdrew or cancelled it.
bool is_withdrawn(const watched& w, const std::string& id, const request& r) {
  return w.threads.is_withdrawn(r.sender, id);
}

std::string text_member(const rapidjson::Value& facts, const char* name) {
  return std::string(json::get_string(facts, name));
}

/// Reads every facts row accepted since `since`; nullopt when the store failed.
std::optional<watched> read_window(std::shared_ptr<store::message_store> store,
                                   const std::string& since) {
  watched out;
  std::promise<bool> read;
  // The rows are handled on the store's thread while this one waits for `done`.
  std::size_t order = 0;
  read_all_facts(
      std::move(store), since,
      [&out, &order](const store::message_facts& row) {
        const std::size_t position = order++;
        rapidjson::Document facts;
        if (row.facts.empty() || json::parse_untrusted(row.facts, facts) || !facts.IsObject()) {
          return;  // stored before facts were kept, or sealed under a key not given
        }
        if (row.type == "verification.request") {
          const std::string deadline = text_member(facts, "deadline");
          if (is_valid_full_date(deadline)) {
            request r{position, row.sender, deadline, std::nullopt};
            if (auto it = facts.FindMember("to"); it != facts.MemberEnd() && it->value.IsArray()) {
              r.to.emplace();
              for (const auto& id : it->value.GetArray()) {
                if (id.IsString()) {
                  r.to->emplace_back(id.GetString(), id.GetStringLength());
                }
              }
            }
            out.requests[row.id] = std::move(r);
          }
        } else if (row.type == "verification.result") {
          out.threads.add_result(position, row.sender, row.id, text_member(facts, "inReplyTo"),
                                 row.accepted_at, text_member(facts, "result"));
        } else if (row.type == "case.status") {
          out.threads.add_status(row.sender, text_member(facts, "status"),
                                 text_member(facts, "about"));
        }
      },
      [&read](bool ok) { read.set_value(ok); });
  if (!read.get_future().get()) {
    return std::nullopt;
  }
  return out;
}

/// The escalations of `kind`; with `closed_too`, the closed ones as well (their empty tombstones).
std::optional<std::vector<store::state_item>> open_escalations(store::message_store& store,
                                                               const char* kind = escalation_kind,
                                                               bool closed_too = false) {
  std::promise<std::pair<std::vector<store::state_item>, bool>> p;
  auto f = p.get_future();
  store.list_state(kind, 0, [&p](std::vector<store::state_item> items, bool ok) {
    p.set_value({std::move(items), ok});
  });
  auto [items, ok] = f.get();
  if (!ok) {
    return std::nullopt;
  }
  if (!closed_too) {
    std::erase_if(items, [](const store::state_item& item) { return item.value.empty(); });
  }
  return items;
}

/// True when the put applied; nullopt when the store failed.
std::optional<bool> put(store::message_store& store, store::state_item item,
                        std::int64_t expected, audit::audit_record record) {
  std::promise<store::put_outcome> p;
  auto f = p.get_future();
  store.put_state(std::move(item), expected, {std::move(record)},
                  [&p](store::put_outcome outcome, std::int64_t) { p.set_value(outcome); });
  const auto outcome = f.get();
  if (outcome == store::put_outcome::failed) {
    return std::nullopt;
  }
  return outcome == store::put_outcome::applied;
}

// A JSON object of string members, in the order given.
std::string object_of(std::initializer_list<std::pair<const char*, const std::string*>> members) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  for (const auto& [key, value] : members) {
    w.Key(key);
    w.String(value->c_str(), static_cast<rapidjson::SizeType>(value->size()));
  }
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string escalation_value(const std::string& id, const request& r, const std::string& at) {
  return object_of(
      {{"messageId", &id}, {"sender", &r.sender}, {"deadline", &r.deadline}, {"escalatedAt", &at}});
}

std::optional<std::vector<store::held_copy>> held_copies(store::message_store& store) {
  std::promise<std::pair<std::vector<store::held_copy>, bool>> p;
  auto f = p.get_future();
  store.list_held(max_held_watched, [&p](std::vector<store::held_copy> held, bool ok) {
    p.set_value({std::move(held), ok});
  });
  auto [held, ok] = f.get();
  if (!ok) {
    return std::nullopt;
  }
  return held;
}

}  // namespace

deadline_watch::deadline_watch(std::shared_ptr<store::message_store> store,
                               deadline_settings settings)
    : store_(std::move(store)), settings_(std::move(settings)) {}

deadline_watch::~deadline_watch() {
  stop();
}

void deadline_watch::start() {
  const std::lock_guard lock(mutex_);
  if (!thread_.joinable() && !stopping_) {
    thread_ = std::thread([this] { run(); });
  }
}

void deadline_watch::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

std::size_t deadline_watch::overdue() const {
  const std::lock_guard lock(mutex_);
  return overdue_;
}

std::size_t deadline_watch::held_overdue() const {
  const std::lock_guard lock(mutex_);
  return held_overdue_;
}

bool deadline_watch::sweep_held(std::chrono::system_clock::time_point now,
                                const std::string& now_text, deadline_sweep_result& result) {
  // The held copies first, then the escalations, closed ones too: a copy is never held again
  // once decided, so an escalation closed since the list was read (by another instance) is seen
  // here and the copy is not escalated a second time.
  const auto held = held_copies(*store_);
  auto all = held ? open_escalations(*store_, held_escalation_kind, true) : std::nullopt;
  if (!held || !all) {
    return false;
  }
  std::map<std::string, const store::held_copy*> held_by_key;
  for (const auto& h : *held) {
    held_by_key.emplace(h.message_id + "/" + h.recipient, &h);
  }
  std::set<std::string> escalated_keys;  // open or closed
  std::set<std::string> open_keys;
  // Close what was decided (or withdrawn, or expired): only when the list is whole, so that a copy
  // past the list's end is not taken for decided.
  for (const auto& item : *all) {
    escalated_keys.insert(item.key);
    if (item.value.empty()) {
      continue;  // closed before
    }
    if (held->size() >= max_held_watched || held_by_key.count(item.key) != 0) {
      open_keys.insert(item.key);
      continue;
    }
    const std::string message = item.key.substr(0, item.key.find('/'));
    const std::string recipient = item.key.find('/') == std::string::npos
                                      ? std::string()
                                      : item.key.substr(item.key.find('/') + 1);
    const auto closed =
        put(*store_, {.kind = held_escalation_kind, .key = item.key, .value = {}}, item.version,
            {.event = "release.escalation_closed",
             .actor = settings_.actor,
             .partner = recipient,
             .message_id = message,
             .details = {{"reason", "decided"}}});
    if (!closed) {
      return false;
    }
    if (*closed) {
      ++result.held_closed;
      log::info({.event = "release.escalation_closed",
                 .message_id = message,
                 .partner = recipient,
                 .reason = "decided"});
    }
  }
  for (const auto& h : *held) {
    const std::string key = h.message_id + "/" + h.recipient;
    const auto since = parse_rfc3339(h.accepted_at);
    const bool past = since && now - *since >= settings_.held_after;
    // An escalation stays open until the copy is decided, even when held_after_hours was raised
    // since: the count is what the admin list shows.
    if (!past && open_keys.count(key) == 0) {
      continue;
    }
    ++result.held_overdue;
    if (escalated_keys.count(key) != 0) {
      continue;  // escalated before
    }
    const auto escalated = put(*store_,
                               {.kind = held_escalation_kind,
                                .key = key,
                                .value = object_of({{"messageId", &h.message_id},
                                                    {"recipient", &h.recipient},
                                                    {"sender", &h.sender},
                                                    {"heldBy", &h.hold},
                                                    {"heldSince", &h.accepted_at},
                                                    {"escalatedAt", &now_text}})},
                               0,
                               {.event = "release.overdue",
                                .actor = settings_.actor,
                                .partner = h.recipient,
                                .message_id = h.message_id,
                                .details = {{"heldBy", h.hold}, {"heldSince", h.accepted_at}}});
    if (!escalated) {
      return false;
    }
    if (*escalated) {  // else another instance was first
      ++result.held_escalated;
      log::warn({.event = "release.overdue",
                 .message_id = h.message_id,
                 .partner = h.recipient,
                 .reason = "held-too-long",
                 .detail = h.hold});
    }
  }
  return true;
}

std::pair<deadline_sweep_result, bool> deadline_watch::sweep_now() {
  const auto now = settings_.clock ? settings_.clock() : std::chrono::system_clock::now();
  const std::string now_text = format_rfc3339_ms(now);
  const std::string today = now_text.substr(0, 10);
  deadline_sweep_result result;
  const auto window = read_window(store_, format_rfc3339_ms(now - settings_.lookback));
  auto open = window ? open_escalations(*store_) : std::nullopt;
  if (!window || !open) {
    return {result, false};
  }
  std::map<std::string, store::state_item> by_id;
  for (auto& item : *open) {
    by_id.emplace(item.key, std::move(item));
  }
  // Close what a late answer or a withdrawal settled (requests outside the window stay open: an
  // operator closes those, or they were answered before the window and never escalated).
  for (const auto& [id, item] : by_id) {
    const auto r = window->requests.find(id);
    if (r == window->requests.end()) {
      continue;
    }
    const bool answered = is_answered(*window, id, r->second);
    const bool withdrawn = is_withdrawn(*window, id, r->second);
    if (!answered && !withdrawn) {
      continue;
    }
    const auto closed = put(*store_, {.kind = escalation_kind, .key = id, .value = {}},
                            item.version,
                            {.event = "verification.escalation_closed",
                             .actor = settings_.actor,
                             .partner = r->second.sender,
                             .message_id = id,
                             .details = {{"reason", answered ? "answered" : "withdrawn"}}});
    if (!closed) {
      return {result, false};
    }
    if (*closed) {
      ++result.closed;
      log::info({.event = "verification.escalation_closed",
                 .message_id = id,
                 .partner = r->second.sender,
                 .reason = answered ? "answered" : "withdrawn"});
    }
  }
  for (const auto& [id, r] : window->requests) {
    // Overdue once the deadline's whole day (UTC) has passed.
    if (r.deadline >= today || is_answered(*window, id, r) || is_withdrawn(*window, id, r)) {
      continue;
    }
    ++result.overdue;
    if (by_id.count(id) != 0) {
      continue;  // escalated before
    }
    const auto escalated =
        put(*store_,
            {.kind = escalation_kind, .key = id, .value = escalation_value(id, r, now_text)}, 0,
            {.event = "verification.overdue",
             .actor = settings_.actor,
             .partner = r.sender,
             .message_id = id,
             .details = {{"deadline", r.deadline}}});
    if (!escalated) {
      return {result, false};
    }
    if (*escalated) {  // else another instance was first
      ++result.escalated;
      log::warn({.event = "verification.overdue",
                 .message_id = id,
                 .partner = r.sender,
                 .reason = "deadline-passed",
                 .detail = r.deadline});
    }
  }
  if (!sweep_held(now, now_text, result)) {
    return {result, false};
  }
  {
    const std::lock_guard lock(mutex_);
    overdue_ = result.overdue;
    held_overdue_ = result.held_overdue;
  }
  return {result, true};
}

void deadline_watch::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    if (const auto [result, ok] = sweep_now(); !ok) {
      log::warn({.event = "deadlines.sweep_failed", .reason = "store-unavailable"});
    }
    lock.lock();
    wake_.wait_for(lock, settings_.interval, [this] { return stopping_; });
  }
}

}  // namespace mxgw::report
