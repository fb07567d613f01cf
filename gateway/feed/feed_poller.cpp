// The notice feed poller (see feed_poller.hpp). Each feed is one sequential loop on the poller's
// own io_context thread: list page -> each listed notice's detail -> the next page; at the end of
// a complete list of a notice type, each notice sent before and no longer listed has its detail
// asked again, and only an answer that says it is gone withdraws it. A failed request is retried
// after a backoff. Store and accept answers arrive on other threads and are posted back.
#include "gateway/feed/feed_poller.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "adapters/adapter.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/interpol/interpol.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/metrics.hpp"
#include "gateway/common/time.hpp"
#include "gateway/delivery/retry_policy.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::feed {

namespace asio = boost::asio;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

namespace {

constexpr std::string_view state_kind = "feed";
constexpr std::size_t max_ids_per_notice = 20;  // message ids remembered per notice

/// What the gateway remembers of one notice (administrative state "<partner>/notice/<type>/<id>").
struct notice_state {
  std::string entity;
  std::string type;                   ///< "red", "yellow"
  std::string content_id;             ///< the adapter's id for the content last sent
  std::string message_id;             ///< the id it was sent under (the content id, or a reissue's)
  std::vector<std::string> messages;  ///< every id sent for this notice, oldest first
  bool active = false;                ///< sent and not withdrawn since
  int withdrawals = 0;
  /// The last sweep in which the notice was missing from a complete list and its detail answered
  /// the service's unknown-id status (0: never). The same in the next sweep withdraws it.
  std::int64_t absent_sweep = 0;
  /// The answer in absent_sweep was the second in a row: the notice was found gone in that sweep
  /// (a restart before the sweep's end finds it gone again instead of taking it for the first).
  bool absent_confirmed = false;
};

/// Where a feed's sweep stands (administrative state "<partner>/cursor").
struct cursor_state {
  std::int64_t sweep = 1;
  std::size_t type_index = 0;
  std::string type;
  std::string page_url;  ///< the page to read next; empty: the type's first page
  int pages_done = 0;
  std::set<std::string> seen;              ///< entity ids listed so far in this sweep for this type
  std::set<std::string> visited;  ///< this type's list pages read so far in this sweep (normalized)
  std::int64_t last_sweep_started_ms = 0;  ///< wall clock (ms since 1970) of the last sweep's start
  std::int64_t listed_total = 0;  ///< the largest `total` a page of this type's list reported
  bool total_missing = false;     ///< a page of this type's list had no valid `total`
  int skipped = 0;  ///< items of this type's list passed over so far (malformed id, failed detail)
  /// Notices ("<type>/<entity>") this sweep found gone so far, of every type: withdrawn together
  /// at the sweep's end, or none of them when they are more than max_withdrawals_per_sweep.
  std::set<std::string> pending;
};

std::string text_of(const rapidjson::Value& v, const char* name) {
  return std::string(json::get_string(v, name));
}

std::string to_json(const notice_state& n) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("entity");
  w.String(n.entity.c_str());
  w.Key("type");
  w.String(n.type.c_str());
  w.Key("contentId");
  w.String(n.content_id.c_str());
  w.Key("messageId");
  w.String(n.message_id.c_str());
  w.Key("messages");
  w.StartArray();
  for (const auto& id : n.messages) {
    w.String(id.c_str());
  }
  w.EndArray();
  w.Key("active");
  w.Bool(n.active);
  w.Key("withdrawals");
  w.Int(n.withdrawals);
  w.Key("absentSweep");
  w.Int64(n.absent_sweep);
  w.Key("absentConfirmed");
  w.Bool(n.absent_confirmed);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::optional<notice_state> notice_of(const rapidjson::Value& v) {
  if (!v.IsObject()) {
    return std::nullopt;
  }
  notice_state n;
  n.entity = text_of(v, "entity");
  n.type = text_of(v, "type");
  n.content_id = text_of(v, "contentId");
  n.message_id = text_of(v, "messageId");
  if (auto m = v.FindMember("messages"); m != v.MemberEnd() && m->value.IsArray()) {
    for (const auto& id : m->value.GetArray()) {
      if (id.IsString()) {
        n.messages.emplace_back(id.GetString());
      }
    }
  }
  n.active = v.HasMember("active") && v["active"].IsTrue();
  n.withdrawals =
      v.HasMember("withdrawals") && v["withdrawals"].IsInt() ? v["withdrawals"].GetInt() : 0;
  n.absent_sweep =
      v.HasMember("absentSweep") && v["absentSweep"].IsInt64() ? v["absentSweep"].GetInt64() : 0;
  n.absent_confirmed = v.HasMember("absentConfirmed") && v["absentConfirmed"].IsTrue();
  if (n.entity.empty() || n.type.empty()) {
    return std::nullopt;
  }
  return n;
}

std::string to_json(const cursor_state& c) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("sweep");
  w.Int64(c.sweep);
  w.Key("typeIndex");
  w.Uint64(c.type_index);
  w.Key("type");
  w.String(c.type.c_str());
  w.Key("page");
  w.String(c.page_url.c_str());
  w.Key("pagesDone");
  w.Int(c.pages_done);
  w.Key("seen");
  w.StartArray();
  for (const auto& id : c.seen) {
    w.String(id.c_str());
  }
  w.EndArray();
  w.Key("visited");
  w.StartArray();
  for (const auto& url : c.visited) {
    w.String(url.c_str());
  }
  w.EndArray();
  w.Key("lastSweepStartedMs");
  w.Int64(c.last_sweep_started_ms);
  w.Key("listedTotal");
  w.Int64(c.listed_total);
  w.Key("totalMissing");
  w.Bool(c.total_missing);
  w.Key("skipped");
  w.Int(c.skipped);
  w.Key("pendingWithdrawals");
  w.StartArray();
  for (const auto& k : c.pending) {
    w.String(k.c_str());
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

/// Scheme, host and port of an https URL, and its path without a trailing slash.
struct origin {
  std::string host_port;
  std::string path;
};

/// `url` normalized (RFC 3986: case of scheme and host, percent-encoding, dot segments), without
/// a fragment; nullopt when it is not an absolute URI.
std::optional<std::string> normalized(std::string_view url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) {
    return std::nullopt;
  }
  boost::urls::url n(*u);
  n.normalize();
  return std::string(n.buffer());
}

std::optional<origin> origin_of(std::string_view url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u || u->scheme_id() != boost::urls::scheme::https || !u->has_authority()) {
    return std::nullopt;
  }
  origin o{std::string(u->encoded_host()) + ":" + (u->has_port() ? std::string(u->port()) : "443"),
           std::string(u->encoded_path())};
  while (!o.path.empty() && o.path.back() == '/') {
    o.path.pop_back();
  }
  return o;
}

/// A detail answer that says the notice is gone. Every other status that is not 200 says nothing
/// about the notice (an expired credential: 401, 403; a relay whose upstream is down: 500, 502;
/// come back later: 408, 429, 503, 504; no answer: 0) and is retried, never taken as a withdrawal.
bool gone_status(int status) {
  return status == 404 || status == 410;
}

/// What the real service answers for an id it does not have (the feed's spec). A relay whose
/// upstream is down answers the same, so it counts as "gone" only for a notice that is also
/// missing from a complete list, and only when the next sweep finds the same.
constexpr int unknown_id_status = 502;

}  // namespace

class feed_run;

struct feed_poller::impl : std::enable_shared_from_this<feed_poller::impl> {
  impl(poller_options o, std::shared_ptr<store::message_store> s, tables_function t,
       accept_function a)
      : options(std::move(o)),
        store(std::move(s)),
        tables(std::move(t)),
        accept(std::move(a)),
        client(ioc, options.identity),
        rng(options.seed != 0 ? options.seed : std::random_device{}()) {}

  poller_options options;
  std::shared_ptr<store::message_store> store;
  tables_function tables;
  accept_function accept;
  asio::io_context ioc;
  delivery::partner_client client;
  std::mt19937_64 rng;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  bool stopping = false;  // io thread only (and before start)
  // Cleared by stop(): they hold this impl. Before start() changed under `control`; after it on
  // the io thread only.
  std::vector<std::shared_ptr<feed_run>> runs;

  std::mutex control;  // guards the three below; held while an update is posted (keeps order)
  bool started = false;
  bool closed = false;                       // stop() was called: updates change nothing
  std::map<std::string, feed_source> feeds;  // what the runs poll (or start() starts), by partner

  /// On the io thread (or before start, under `control`): stops the run of `partner` if there is
  /// one, then, given `source`, starts a new one with it once the stopped run is gone.
  void replace_run(const std::string& partner, std::optional<feed_source> source, std::string token,
                   bool start_now);

  mutable std::mutex counters_mutex;
  mutable std::condition_variable changed;
  feed_counters totals;

  template <typename Change>
  void count(Change change) {
    {
      std::lock_guard lock(counters_mutex);
      change(totals);
    }
    changed.notify_all();
  }
};

/// One feed's loop. Everything here runs on the poller's io thread.
class feed_run : public std::enable_shared_from_this<feed_run> {
 public:
  feed_run(std::shared_ptr<feed_poller::impl> poller, feed_source source, std::string token)
      : poller_(std::move(poller)),
        source_(std::move(source)),
        token_(std::move(token)),
        timer_(poller_->ioc) {
    std::string base = source_.settings.url;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    base_ = base;
    base_origin_ = origin_of(normalized(base_).value_or(base_)).value_or(origin{});
  }

  /// Reads the saved position and notices, then sweeps.
  void start() {
    poller_->store->list_state(
        std::string(state_kind), 0,
        [self = shared_from_this(), loop = keep_loop()](std::vector<store::state_item> items,
                                                        bool ok) {
          asio::post(self->poller_->ioc,
                     [self, items = std::move(items), ok] { self->on_state(items, ok); });
        });
  }

  /// Stops this feed alone (its partner was disabled, or its settings changed): whatever is in
  /// flight finds it stopping and goes no further.
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

  const std::string& partner_id() const { return source_.partner_id; }

  /// The run this one replaces (stopped): start() waits until it is gone, so that the two never
  /// write the feed's state at the same time.
  void follow(const std::shared_ptr<feed_run>& predecessor) { predecessor_ = predecessor; }

  /// start(), once the run this one replaces has let go (its last store answer or request in
  /// flight came back; bounded by the request timeout).
  void start_after_predecessor() {
    if (stopping()) {
      return;
    }
    if (predecessor_.expired()) {
      return start();
    }
    timer_.expires_after(std::chrono::milliseconds(20));
    timer_.async_wait([self = shared_from_this()](auto ec) {
      if (!ec) {
        self->start_after_predecessor();
      }
    });
  }

  /// Held by each callback that comes from another thread (the store's, the accept path's) until
  /// it has posted its continuation back here: until then the io_context has work, so stop()
  /// waits for the answer. Without it the loop could run out of work and end first, and the
  /// continuation, posted into an io_context that no longer runs, would hold this run, and
  /// through it the poller and that io_context, for ever.
  asio::executor_work_guard<asio::io_context::executor_type> keep_loop() {
    return asio::make_work_guard(poller_->ioc);
  }

 private:
  std::shared_ptr<feed_poller::impl> poller_;
  feed_source source_;
  std::string token_;
  asio::steady_timer timer_;
  bool stopped_ = false;  // this feed alone was stopped (io thread)
  std::weak_ptr<feed_run> predecessor_;
  std::string base_;
  origin base_origin_;
  cursor_state cursor_;
  std::map<std::string, notice_state> notices_;  // "<type>/<entity>"
  std::vector<std::string> page_ids_;
  std::size_t next_item_ = 0;
  std::optional<std::string> next_page_;
  int page_skipped_ = 0;     // items of the current page passed over
  int detail_attempts_ = 0;  // failed tries of the current item's (or absent notice's) detail
  int page_attempts_ = 0;    // failed tries in a row of the page the cursor stands at
  int failures_ = 0;
  std::chrono::steady_clock::time_point sweep_started_ = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point sweep_started_wall_ = std::chrono::system_clock::now();

  const std::string& partner() const { return source_.partner_id; }
  std::string key(std::string_view suffix) const { return partner() + "/" + std::string(suffix); }
  const std::vector<std::string>& types() const { return source_.settings.notice_types; }

  bool stopping() const { return poller_->stopping || stopped_; }

  void on_state(const std::vector<store::state_item>& items, bool ok) {
    if (stopping()) {
      return;
    }
    if (!ok) {
      return fail("state-unreadable", 0, [self = shared_from_this()] { self->start(); });
    }
    const std::string prefix = partner() + "/";
    for (const auto& item : items) {
      if (!item.key.starts_with(prefix) || item.value.empty()) {
        continue;
      }
      rapidjson::Document doc;
      if (json::parse_untrusted(item.value, doc) || !doc.IsObject()) {
        continue;
      }
      if (item.key == prefix + "cursor") {
        cursor_.sweep =
            doc.HasMember("sweep") && doc["sweep"].IsInt64() ? doc["sweep"].GetInt64() : 1;
        cursor_.type_index = doc.HasMember("typeIndex") && doc["typeIndex"].IsUint64()
                                 ? doc["typeIndex"].GetUint64()
                                 : 0;
        cursor_.type = text_of(doc, "type");
        cursor_.page_url = text_of(doc, "page");
        cursor_.pages_done =
            doc.HasMember("pagesDone") && doc["pagesDone"].IsInt() ? doc["pagesDone"].GetInt() : 0;
        cursor_.last_sweep_started_ms =
            doc.HasMember("lastSweepStartedMs") && doc["lastSweepStartedMs"].IsInt64()
                ? doc["lastSweepStartedMs"].GetInt64()
                : 0;
        cursor_.listed_total = doc.HasMember("listedTotal") && doc["listedTotal"].IsInt64()
                                   ? doc["listedTotal"].GetInt64()
                                   : 0;
        // A position saved mid-list before `total` was kept cannot show the pass complete.
        cursor_.total_missing = doc.HasMember("totalMissing") && doc["totalMissing"].IsBool()
                                    ? doc["totalMissing"].GetBool()
                                    : cursor_.pages_done > 0;
        cursor_.skipped =
            doc.HasMember("skipped") && doc["skipped"].IsInt() ? doc["skipped"].GetInt() : 0;
        if (auto seen = doc.FindMember("seen"); seen != doc.MemberEnd() && seen->value.IsArray()) {
          for (const auto& id : seen->value.GetArray()) {
            if (id.IsString()) {
              cursor_.seen.insert(id.GetString());
            }
          }
        }
        if (auto visited = doc.FindMember("visited");
            visited != doc.MemberEnd() && visited->value.IsArray()) {
          for (const auto& url : visited->value.GetArray()) {
            if (url.IsString()) {
              cursor_.visited.insert(url.GetString());
            }
          }
        }
        if (auto pending = doc.FindMember("pendingWithdrawals");
            pending != doc.MemberEnd() && pending->value.IsArray()) {
          for (const auto& k : pending->value.GetArray()) {
            if (k.IsString()) {
              cursor_.pending.insert(k.GetString());
            }
          }
        }
      } else if (auto n = notice_of(doc)) {
        notices_[n->type + "/" + n->entity] = std::move(*n);
      }
    }
    // A position saved under another list of types (the definition changed) starts over.
    if (cursor_.type_index >= types().size() || cursor_.type != types()[cursor_.type_index] ||
        (!cursor_.page_url.empty() && !same_list(cursor_.page_url, cursor_.type))) {
      cursor_ = cursor_state{.sweep = cursor_.sweep,
                             .last_sweep_started_ms = cursor_.last_sweep_started_ms};
      cursor_.type = types().front();
    }
    log::info({.event = "feed.started",
               .partner = partner(),
               .detail = "resuming sweep " + std::to_string(cursor_.sweep) + " at " + cursor_.type +
                         " page " + std::to_string(cursor_.pages_done + 1)});
    // Between sweeps: the next one starts one interval after the last one started, restart or not.
    if (cursor_.type_index == 0 && cursor_.page_url.empty() && cursor_.last_sweep_started_ms > 0) {
      const auto last = std::chrono::system_clock::time_point(
          std::chrono::milliseconds(cursor_.last_sweep_started_ms));
      const auto wait = last + source_.settings.interval - std::chrono::system_clock::now();
      if (wait > std::chrono::system_clock::duration::zero()) {
        timer_.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
        timer_.async_wait([self = shared_from_this()](auto ec) {
          if (!ec && !self->stopping()) {
            self->start_page();
          }
        });
        return;
      }
    }
    start_page();
  }

  // --- requests -------------------------------------------------------------------------------

  std::string first_page(std::string_view type) const {
    return base_ + "/notices/v1/" + std::string(type) +
           "?page=1&resultPerPage=" + std::to_string(source_.settings.page_size);
  }

  std::string detail_url(std::string_view type, std::string entity) const {
    std::replace(entity.begin(), entity.end(), '/', '-');
    return base_ + "/notices/v1/" + std::string(type) + "/" + entity;
  }

  /// True when `url` (normalized) is on the feed's own origin and is its notice list of `type`
  /// (`<base path>/notices/v1/<type>`, any query): a feed cannot send the gateway elsewhere, nor
  /// into another type's list, with a `next` link.
  bool same_list(std::string_view url, std::string_view type) const {
    const auto n = normalized(url);
    auto o = n ? origin_of(*n) : std::nullopt;
    return o && o->host_port == base_origin_.host_port &&
           o->path == base_origin_.path + "/notices/v1/" + std::string(type);
  }

  /// What a list page's `_links.next` says.
  enum class next_link { none, page, refused };

  /// Reads `_links.next` of the page `page_url`: none when absent, null, not an object or
  /// without a string `href` (HAL: no further page); else the href resolved against the page's
  /// own URL (RFC 3986: absolute, `/path?query` or `?query` alike) and normalized into `url`,
  /// refused when that is not this type's list on the feed's own origin.
  next_link read_next(const rapidjson::Value& doc, const std::string& page_url,
                      std::string& url) const {
    auto links = doc.FindMember("_links");
    if (links == doc.MemberEnd() || !links->value.IsObject()) {
      return next_link::none;
    }
    auto next = links->value.FindMember("next");
    if (next == links->value.MemberEnd() || !next->value.IsObject()) {
      return next_link::none;
    }
    auto href = next->value.FindMember("href");
    if (href == next->value.MemberEnd() || !href->value.IsString()) {
      return next_link::none;
    }
    const std::string_view text(href->value.GetString(), href->value.GetStringLength());
    auto base = boost::urls::parse_absolute_uri(page_url);
    auto ref = boost::urls::parse_uri_reference(text);
    boost::urls::url resolved;
    if (!base || !ref || !boost::urls::resolve(*base, *ref, resolved)) {
      return next_link::refused;
    }
    resolved.remove_fragment();
    resolved.normalize();
    url = std::string(resolved.buffer());
    return same_list(url, cursor_.type) ? next_link::page : next_link::refused;
  }

  void get(const std::string& url, std::size_t max_bytes,
           std::function<void(delivery::post_result)> then) {
    delivery::partner_client::get_options o;
    o.max_body_bytes = max_bytes;
    if (!token_.empty()) {
      o.headers.emplace_back("Authorization", "Bearer " + token_);
    }
    poller_->client.get(
        partner(), url, poller_->options.request_timeout, std::move(o),
        [self = shared_from_this(), then = std::move(then)](delivery::post_result r) mutable {
          // Already on the io thread (the client runs on it).
          if (!self->stopping()) {
            then(std::move(r));
          }
        });
  }

  /// A failed step: back off (full jitter, doubling from backoff_base, at most the cap and the
  /// feed's interval), then `retry` (by default: the page the sweep stands at, from its start).
  /// `what`, when given, says in the log line what failed and what the retry does (no content).
  void fail(std::string_view reason, int status, std::function<void()> retry = {},
            std::string_view what = {}) {
    ++failures_;
    poller_->count([](feed_counters& c) { ++c.errors; });
    const auto cap = std::min<std::chrono::milliseconds>(
        poller_->options.backoff_cap,
        std::chrono::duration_cast<std::chrono::milliseconds>(source_.settings.interval));
    const delivery::retry_limits limits{
        .backoff_base = std::min(poller_->options.backoff_base, cap), .backoff_cap = cap};
    const auto delay = delivery::backoff_delay(limits, std::min(failures_, 30), poller_->rng);
    log::warn({.event = "feed.request_failed",
               .partner = partner(),
               .outcome = "retry",
               .reason = reason,
               .detail = (what.empty() ? std::string() : std::string(what) + "; ") +
                         "retrying in " + std::to_string(delay.count()) + " ms",
               .status = status});
    if (!retry) {
      retry = [self = shared_from_this()] { self->resume(); };
    }
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this(), retry = std::move(retry)](auto ec) {
      if (!ec && !self->stopping()) {
        retry();
      }
    });
  }

  // --- the sweep ------------------------------------------------------------------------------

  /// Goes on where the sweep stands: the withdrawals at its end once every type was read, else
  /// the page the cursor stands at.
  void resume() {
    if (cursor_.type_index >= types().size()) {
      return finish_sweep();
    }
    start_page();
  }

  /// Reads the page the cursor stands at (the type's first page when it stands at none).
  void start_page() {
    if (cursor_.page_url.empty()) {
      if (cursor_.type_index == 0 && cursor_.pages_done == 0) {
        sweep_started_ = std::chrono::steady_clock::now();
        sweep_started_wall_ = std::chrono::system_clock::now();
      }
      cursor_.page_url = first_page(cursor_.type);
    }
    get(cursor_.page_url, poller_->options.max_list_bytes,
        [self = shared_from_this()](delivery::post_result r) { self->on_page(std::move(r)); });
  }

  void on_page(delivery::post_result r) {
    if (r.status != 200) {
      return page_failed(r.status == 0 ? r.error : "list-status", r.status);
    }
    rapidjson::Document doc;
    if (json::parse_untrusted(r.body, doc) || !doc.IsObject()) {
      return page_failed("list-not-json", r.status);
    }
    std::vector<std::string> ids;
    int malformed = 0;
    auto embedded = doc.FindMember("_embedded");
    if (embedded != doc.MemberEnd() && embedded->value.IsObject()) {
      auto list = embedded->value.FindMember("notices");
      if (list != embedded->value.MemberEnd() && list->value.IsArray()) {
        for (const auto& item : list->value.GetArray()) {
          const auto id = item.IsObject() ? json::get_string(item, "entity_id") : "";
          if (!adapters::interpol::is_entity_id(id)) {
            // One bad item must not hold up the others: it is passed over (and the pass
            // cannot show what is gone). Its content is not logged.
            ++malformed;
            continue;
          }
          ids.emplace_back(id);
        }
      } else if (list != embedded->value.MemberEnd()) {
        return page_failed("list-not-a-list", r.status);
      }
    }
    next_page_.reset();
    std::string next_url;
    switch (read_next(doc, cursor_.page_url, next_url)) {
      case next_link::none: break;
      case next_link::page: next_page_ = std::move(next_url); break;
      case next_link::refused: return page_failed("list-foreign-next-link", r.status);
    }
    // `total` counts every notice the query matches, also those past the 160th result that no
    // page reaches; the pass is complete only when it saw that many.
    if (auto total = doc.FindMember("total");
        total != doc.MemberEnd() && total->value.IsInt64() && total->value.GetInt64() >= 0) {
      cursor_.listed_total = std::max(cursor_.listed_total, total->value.GetInt64());
    } else {
      cursor_.total_missing = true;
    }
    failures_ = 0;
    page_attempts_ = 0;
    poller_->count([](feed_counters& c) { ++c.pages; });
    page_skipped_ = malformed;
    if (malformed > 0) {
      poller_->count([malformed](feed_counters& c) { c.skipped += malformed; });
      log::warn({.event = "feed.list_item_skipped",
                 .partner = partner(),
                 .outcome = "skipped",
                 .reason = "list-bad-entity-id",
                 .detail = std::to_string(malformed) + " " + cursor_.type +
                           " list item(s) on page " + std::to_string(cursor_.pages_done + 1) +
                           " without a valid entity_id passed over"});
    }
    page_ids_ = std::move(ids);
    next_item_ = 0;
    detail_attempts_ = 0;
    next_item();
  }

  /// The page the cursor stands at could not be used (`reason`, a code). It is read again after a
  /// backoff, up to max_list_attempts times in a row; then the rest of this type's list is given
  /// up for this sweep (the pass is incomplete: nothing missing from it is withdrawn, and notices
  /// found gone by their own detail stay found) and the next type is read. The next sweep starts
  /// this type over, so one broken page cannot keep the feed from its other types.
  void page_failed(std::string_view reason, int status) {
    if (++page_attempts_ < std::max(1, poller_->options.max_list_attempts)) {
      return fail(reason, status);
    }
    const int attempts = page_attempts_;
    page_attempts_ = 0;
    failures_ = 0;
    poller_->count([](feed_counters& c) {
      ++c.errors;
      ++c.incomplete;
      ++c.lists_given_up;
    });
    log::error({.event = "feed.list_given_up",
                .partner = partner(),
                .outcome = "no-withdrawals",
                .reason = reason,
                .detail = cursor_.type + " list page " + std::to_string(cursor_.pages_done + 1) +
                          " failed " + std::to_string(attempts) + " times; the rest of the " +
                          cursor_.type +
                          " list is not read this sweep and notices missing from it are not "
                          "withdrawn; going on with the next type",
                .status = status});
    next_type();
  }

  void next_item() {
    if (stopping()) {
      return;
    }
    if (next_item_ >= page_ids_.size()) {
      return page_done();
    }
    const std::string entity = page_ids_[next_item_];
    get(detail_url(cursor_.type, entity), poller_->options.max_detail_bytes,
        [self = shared_from_this(), entity](delivery::post_result r) {
          self->on_detail(entity, std::move(r));
        });
  }

  void advance() {
    detail_attempts_ = 0;
    ++next_item_;
    next_item();
  }

  /// The detail of a listed notice: 200 is sent when new or changed; 404/410 (gone since the
  /// list was read) withdraws it; anything else is retried after a backoff, and after
  /// max_detail_attempts the notice is passed over for this sweep (kept as it is).
  void on_detail(const std::string& entity, delivery::post_result r) {
    if (r.status == 200) {
      failures_ = 0;
      return take_detail(entity, r.body, [self = shared_from_this()] { self->advance(); });
    }
    if (gone_status(r.status)) {
      failures_ = 0;
      return found_gone(entity, [self = shared_from_this()] { self->advance(); });
    }
    const std::string_view reason = r.status == 0 ? std::string_view(r.error) : "detail-status";
    if (++detail_attempts_ < std::max(1, poller_->options.max_detail_attempts)) {
      return fail(reason, r.status, [self = shared_from_this()] { self->next_item(); });
    }
    // Given up for this sweep: no withdrawal, no new version; the next sweep asks again.
    ++failures_;
    ++page_skipped_;
    poller_->count([](feed_counters& c) {
      ++c.errors;
      ++c.skipped;
    });
    log::warn({.event = "feed.notice_skipped",
               .partner = partner(),
               .outcome = "skipped",
               .reason = reason,
               .detail = "a " + cursor_.type + " notice's detail failed " +
                         std::to_string(detail_attempts_) +
                         " times; kept as it is until next sweep",
               .status = r.status});
    advance();
  }

  /// Decodes a notice detail (answered 200) and sends it when it is new or changed, then `then`.
  void take_detail(const std::string& entity, const std::string& body, std::function<void()> then) {
    poller_->count([](feed_counters& c) { ++c.details; });
    // Published after all (asked again later in the sweep): not gone.
    cursor_.pending.erase(cursor_.type + "/" + entity);
    const adapters::adapter* format = adapters::find_adapter("interpol");
    if (format == nullptr) {
      return refuse("no-interpol-adapter", 500, std::move(then));
    }
    // The tables in force now (a reload replaces them), held while the notice is decoded.
    const auto tables = poller_->tables();
    auto decoded = format->decode(body, {.tables = tables.get(),
                                         .sender = partner(),
                                         .carry_unmapped = source_.carry_unmapped,
                                         .message_id_key = poller_->options.message_id_key.get()});
    const std::string_view expected =
        cursor_.type == "red" ? "person.wanted" : "victim.identification";
    if (decoded.status != 0) {
      return refuse("untranslatable", decoded.status, std::move(then));
    }
    if (json::get_string(decoded.message, "type") != expected ||
        json::get_string(decoded.message, "ref") != entity) {
      return refuse("not-the-listed-notice", 422, std::move(then));
    }
    notice_state& state = notices_[cursor_.type + "/" + entity];
    const std::string content_id(json::get_string(decoded.message, "id"));
    if (state.active && state.content_id == content_id) {
      poller_->count([](feed_counters& c) { ++c.unchanged; });
      return then();
    }
    // A notice back after a withdrawal is sent again under a new id: the recipients were told
    // it was withdrawn, so the same id would be taken for the message they already have.
    std::string message_id = content_id;
    if (!state.active && state.withdrawals > 0) {
      message_id = adapters::derived_message_id(
          poller_->options.message_id_key.get(), partner(),
          content_id + "/reissue/" + std::to_string(state.withdrawals));
    }
    // Content sent before for this notice (it changed back to an earlier version): that id is a
    // message the recipients have already, so the store would take this as a resend and nobody
    // would learn the notice changed again. A new id, derived from the copy it follows, makes it
    // news (and is the same id again after a restart before the state was saved).
    for (std::string previous = state.message_id;
         std::find(state.messages.begin(), state.messages.end(), message_id) !=
         state.messages.end();
         previous = message_id) {
      message_id = adapters::derived_message_id(poller_->options.message_id_key.get(), partner(),
                                                content_id + "/after/" + previous);
    }
    if (message_id != content_id) {
      decoded.message["id"].SetString(message_id.c_str(),
                                      static_cast<rapidjson::SizeType>(message_id.size()),
                                      decoded.message.GetAllocator());
    }
    notice_state next = state;
    next.entity = entity;
    next.type = cursor_.type;
    next.content_id = content_id;
    next.message_id = message_id;
    next.active = true;
    if (std::find(next.messages.begin(), next.messages.end(), message_id) == next.messages.end()) {
      next.messages.push_back(message_id);
      if (next.messages.size() > max_ids_per_notice) {
        next.messages.erase(next.messages.begin());
      }
    }
    submit(std::move(next), json::to_string(decoded.message), std::string(expected), {},
           std::move(then));
  }

  void refuse(std::string_view reason, int status, std::function<void()> then) {
    poller_->count([](feed_counters& c) { ++c.refused; });
    log::warn({.event = "feed.notice_refused",
               .partner = partner(),
               .outcome = "refused",
               .reason = reason,
               .status = status});
    then();
  }

  /// Accepts `canonical` (unless the store has its id already: a restart after the accept and
  /// before the notice's state was saved), then saves `next` and goes on with the page.
  void submit(notice_state next, std::string canonical, std::string type,
              std::optional<std::vector<std::string>> only_to, std::function<void()> then = {}) {
    const std::string id = next.active ? next.message_id : withdrawal_id(next);
    if (!then) {
      then = [self = shared_from_this()] { self->advance(); };
    }
    auto self = shared_from_this();
    poller_->store->find(id, [self, loop = keep_loop(), next = std::move(next),
                              canonical = std::move(canonical), type = std::move(type),
                              only_to = std::move(only_to), id, then = std::move(then)](
                                 std::optional<store::message_status> found, bool ok) mutable {
      asio::post(self->poller_->ioc, [self, found = std::move(found), ok, next = std::move(next),
                                      canonical = std::move(canonical), type = std::move(type),
                                      only_to = std::move(only_to), id,
                                      then = std::move(then)]() mutable {
        if (self->stopping()) {
          return;
        }
        if (!ok) {
          return self->fail("store-unavailable", 503);
        }
        if (found) {
          if (found->sender != self->partner()) {
            return self->id_taken(id, type, std::move(then));
          }
          return self->accepted(std::move(next), id, type, std::move(then));
        }
        self->poller_->accept(
            self->partner(), std::move(canonical), std::move(only_to),
            [self, loop = self->keep_loop(), next = std::move(next), id, type,
             then = std::move(then)](int status) mutable {
              asio::post(self->poller_->ioc, [self, status, next = std::move(next), id, type,
                                              then = std::move(then)]() mutable {
                if (self->stopping()) {
                  return;
                }
                if (status == 202) {
                  return self->accepted(std::move(next), id, type, std::move(then));
                }
                if (status == 409) {
                  // The id was stored meanwhile: ours (another `created`, a restart between the
                  // accept and saving the notice) only when the feed is its sender.
                  return self->confirm_own(std::move(next), id, type, std::move(then));
                }
                if (status >= 500) {
                  return self->fail("store-unavailable", status);
                }
                if (status == 403) {
                  // The feed's partner may not send this now (disabled, held, or the type no
                  // longer permitted): an administrator's state, not the notice's. Nothing is
                  // marked as sent, a withdrawal included; the next sweep tries again.
                  self->poller_->count([](feed_counters& c) { ++c.refused; });
                  log::warn({.event = "feed.notice_refused",
                             .message_id = id,
                             .partner = self->partner(),
                             .message_type = type,
                             .outcome = "not-sent",
                             .reason = "sender-refused",
                             .status = status});
                  return then();
                }
                self->poller_->count([](feed_counters& c) { ++c.refused; });
                log::error({.event = "feed.notice_refused",
                            .message_id = id,
                            .partner = self->partner(),
                            .message_type = type,
                            .outcome = "refused",
                            .reason = "accept-refused",
                            .status = status});
                if (!next.active) {
                  // A withdrawal the gateway refuses would be refused again: do not loop on it.
                  return self->save_notice(std::move(next), std::move(then));
                }
                then();
              });
            });
      });
    });
  }

  /// After a 409: `id` is stored; it is this notice's message when the feed sent it.
  void confirm_own(notice_state next, std::string id, std::string type,
                   std::function<void()> then) {
    poller_->store->find(id, [self = shared_from_this(), loop = keep_loop(), next = std::move(next),
                              id, type = std::move(type), then = std::move(then)](
                                 std::optional<store::message_status> found, bool ok) mutable {
      asio::post(self->poller_->ioc,
                 [self, found = std::move(found), ok, next = std::move(next), id,
                  type = std::move(type), then = std::move(then)]() mutable {
                   if (self->stopping()) {
                     return;
                   }
                   if (!ok || !found) {
                     return self->fail("store-unavailable", 503);
                   }
                   if (found->sender != self->partner()) {
                     return self->id_taken(id, type, std::move(then));
                   }
                   self->accepted(std::move(next), id, type, std::move(then));
                 });
    });
  }

  /// The id this notice's message (or its withdrawal) derives is stored as ANOTHER sender's
  /// message: a partner posted under it first, since the ids the gateway derives can be worked
  /// out. Nothing was sent, so the notice is not marked as sent: an operator must act, and the
  /// next sweep tries (and raises the alarm) again. Counting it as sent would tell nobody that
  /// the recipients never got it (for a withdrawal: a cancelled notice left active).
  void id_taken(const std::string& id, const std::string& type, std::function<void()> then) {
    poller_->count([](feed_counters& c) { ++c.refused; });
    log::error({.event = "feed.notice_id_taken",
                .message_id = id,
                .partner = partner(),
                .message_type = type,
                .outcome = "not-sent",
                .reason = "id-taken-by-another-sender",
                .detail = "the id this notice's message derives is another partner's message; "
                          "nothing was sent, and the next sweep tries again"});
    then();
  }

  void accepted(notice_state next, const std::string& id, const std::string& type,
                std::function<void()> then) {
    const bool withdrawal = !next.active;
    poller_->count([&](feed_counters& c) { ++(withdrawal ? c.withdrawn : c.sent); });
    log::info({.event = withdrawal ? "feed.notice_withdrawn" : "feed.notice_sent",
               .message_id = id,
               .partner = partner(),
               .message_type = type,
               .outcome = "accepted"});
    save_notice(std::move(next), std::move(then));
  }

  void save_notice(notice_state next, std::function<void()> then) {
    const std::string k = next.type + "/" + next.entity;
    store::state_item item{.kind = std::string(state_kind),
                           .key = key("notice/" + k),
                           .value = to_json(next),
                           .changed_by = "feed:" + partner()};
    poller_->store->put_state(
        std::move(item), std::nullopt, {},
        [self = shared_from_this(), loop = keep_loop(), k, next = std::move(next),
         then = std::move(then)](store::put_outcome outcome, std::int64_t) mutable {
          asio::post(self->poller_->ioc,
                     [self, outcome, k, next = std::move(next), then = std::move(then)]() mutable {
                       if (self->stopping()) {
                         return;
                       }
                       if (outcome != store::put_outcome::applied) {
                         return self->fail("state-unwritable", 503);
                       }
                       self->notices_[k] = std::move(next);
                       then();
                     });
        });
  }

  /// The withdrawal of the copy `n.message_id`: the same id every time it is sent (a restart
  /// between the accept and the saved state sends nothing new).
  std::string withdrawal_id(const notice_state& n) const {
    return adapters::derived_message_id(poller_->options.message_id_key.get(), partner(),
                                        "withdrawn:" + n.message_id);
  }

  /// The detail of the notice `entity` of the current type says it is gone: if it was sent, it
  /// is withdrawn at the end of the sweep (finish_sweep), unless too many are.
  void found_gone(const std::string& entity, std::function<void()> then) {
    const std::string k = cursor_.type + "/" + entity;
    if (auto it = notices_.find(k); it != notices_.end() && it->second.active) {
      cursor_.pending.insert(k);
    }
    then();
  }

  /// Withdraws the notice `k` ("<type>/<entity>") if it is active: a case.status `withdrawn` to
  /// every recipient of any earlier copy (none: only the state changes).
  void withdraw(const std::string& k, std::function<void()> then) {
    auto it = notices_.find(k);
    if (it == notices_.end() || !it->second.active) {
      return then();
    }
    collect_recipients(it->second, 0, {}, std::move(then));
  }

  void collect_recipients(notice_state n, std::size_t index, std::set<std::string> recipients,
                          std::function<void()> then) {
    if (index < n.messages.size()) {
      const std::string id = n.messages[index];
      poller_->store->find(id, [self = shared_from_this(), loop = keep_loop(), n = std::move(n),
                                index, recipients = std::move(recipients), then = std::move(then)](
                                   std::optional<store::message_status> found, bool ok) mutable {
        asio::post(self->poller_->ioc, [self, n = std::move(n), index, ok, found = std::move(found),
                                        recipients = std::move(recipients),
                                        then = std::move(then)]() mutable {
          if (self->stopping()) {
            return;
          }
          if (!ok) {
            return self->fail("store-unavailable", 503);
          }
          if (found) {
            // Only those a copy may have reached: one held for release and never handed out
            // reached no one, and a withdrawal would tell its recipient that the notice exists.
            for (const auto& r : found->recipients) {
              if (store::may_have_reached(r)) {
                recipients.insert(r.recipient);
              }
            }
          }
          self->collect_recipients(std::move(n), index + 1, std::move(recipients), std::move(then));
        });
      });
      return;
    }
    notice_state next = n;
    next.active = false;
    ++next.withdrawals;
    const std::string type = "case.status";
    if (recipients.empty()) {
      // Nobody received it: nobody needs telling.
      return accepted(std::move(next), n.message_id, type, std::move(then));
    }
    std::vector<std::string> only_to(recipients.begin(), recipients.end());
    std::string canonical = withdrawal_message(n, only_to);
    next.message_id = n.message_id;  // the withdrawal's id is derived from the copy withdrawn
    submit(std::move(next), std::move(canonical), type, std::move(only_to), std::move(then));
  }

  /// case.status `withdrawn` about the last copy sent of notice `n`, for `recipients`.
  std::string withdrawal_message(const notice_state& n,
                                 const std::vector<std::string>& recipients) {
    const std::string now = format_rfc3339_ms(std::chrono::system_clock::now());
    rapidjson::StringBuffer buffer;
    json_writer w(buffer);
    const auto put = [&](const char* k, std::string_view v) {
      w.Key(k);
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartObject();
    put("mx", "1");
    put("id", withdrawal_id(n));
    put("type", "case.status");
    put("created", now);
    put("sender", partner());
    w.Key("recipients");
    w.StartArray();
    for (const auto& r : recipients) {
      w.String(r.c_str());
    }
    w.EndArray();
    put("ref", n.entity);
    put("legalBasis", n.type == "red" ? "crime-prevention" : "vital-interest");
    w.Key("handling");
    w.StartObject();
    put("confidentiality", "restricted");
    w.Key("codes");
    w.StartArray();
    w.String("H0");
    w.EndArray();
    w.EndObject();
    w.Key("source");
    w.StartObject();
    put("agency", adapters::interpol::source_agency);
    put("recordId", n.entity);
    w.EndObject();
    w.Key("body");
    w.StartObject();
    w.Key("about");
    w.StartObject();
    put("messageId", n.message_id);
    w.Key("externalRefs");
    w.StartArray();
    w.StartObject();
    put("system", adapters::interpol::external_system);
    put("noticeType", n.type);
    put("id", n.entity);
    w.EndObject();
    w.EndArray();
    w.EndObject();
    put("status", "withdrawn");
    put("effective", now.substr(0, 10));
    w.EndObject();
    w.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
  }

  void page_done() {
    cursor_.seen.insert(page_ids_.begin(), page_ids_.end());
    cursor_.skipped += page_skipped_;
    page_skipped_ = 0;
    ++cursor_.pages_done;
    cursor_.visited.insert(normalized(cursor_.page_url).value_or(cursor_.page_url));
    if (next_page_ && cursor_.visited.contains(*next_page_)) {
      // A `next` link back to a page read in this pass: following it would read the same pages
      // (and every detail on them) again until max_pages. The list is not known to be whole.
      poller_->count([](feed_counters& c) { ++c.incomplete; });
      log::warn({.event = "feed.list_incomplete",
                 .partner = partner(),
                 .outcome = "no-withdrawals",
                 .reason = "list-next-link-repeats-page",
                 .detail = cursor_.type + " list page " + std::to_string(cursor_.pages_done) +
                           " links to a page already read in this sweep; the " + cursor_.type +
                           " list ends there and notices missing from it are not withdrawn this "
                           "sweep"});
      return next_type();
    }
    if (next_page_ && cursor_.pages_done < poller_->options.max_pages) {
      cursor_.page_url = *next_page_;
      return save_cursor([self = shared_from_this()] { self->start_page(); });
    }
    if (next_page_) {
      // Endless `next` links: the list is not complete, so nothing is taken as gone.
      log::error({.event = "feed.too_many_pages", .partner = partner(), .reason = "max-pages"});
      poller_->count([](feed_counters& c) { ++c.incomplete; });
      return next_type();
    }
    // A notice missing from a list that is not known to be whole says nothing: the list may have
    // passed it over (an item skipped, results past the 160th that no query reaches, an earlier
    // notice removed mid-sweep shifting the following ones up a page).
    const auto seen = static_cast<std::int64_t>(cursor_.seen.size());
    std::string_view incomplete;
    if (cursor_.skipped > 0) {
      incomplete = "list-items-skipped";
    } else if (cursor_.total_missing) {
      incomplete = "list-without-total";
    } else if (cursor_.listed_total > seen) {
      incomplete = "list-total-exceeds-seen";
    }
    if (!incomplete.empty()) {
      poller_->count([](feed_counters& c) { ++c.incomplete; });
      log::warn({.event = "feed.list_incomplete",
                 .partner = partner(),
                 .outcome = "no-withdrawals",
                 .reason = incomplete,
                 .detail = cursor_.type + " list: total " +
                           (cursor_.total_missing ? std::string("not given")
                                                  : std::to_string(cursor_.listed_total)) +
                           ", " + std::to_string(seen) + " seen, " +
                           std::to_string(cursor_.skipped) +
                           " skipped; notices missing from it are not withdrawn this sweep"});
      return next_type();
    }
    // The whole list was read: a notice sent before and no longer listed may be gone. Its own
    // detail decides.
    std::vector<std::string> missing;
    for (const auto& [k, n] : notices_) {
      if (n.type == cursor_.type && n.active && !cursor_.seen.contains(n.entity)) {
        missing.push_back(n.entity);
      }
    }
    detail_attempts_ = 0;
    check_missing(std::move(missing), 0);
  }

  /// Asks the detail of `missing[index]`, a notice sent before and missing from a complete list,
  /// then goes on with the next one, and at the end with the next type.
  void check_missing(std::vector<std::string> missing, std::size_t index) {
    if (stopping()) {
      return;
    }
    if (index >= missing.size()) {
      return next_type();
    }
    const std::string entity = missing[index];
    get(detail_url(cursor_.type, entity), poller_->options.max_detail_bytes,
        [self = shared_from_this(), missing = std::move(missing),
         index](delivery::post_result r) mutable {
          self->on_missing_detail(std::move(missing), index, std::move(r));
        });
  }

  /// 200: still published, kept (and sent when changed). 404/410: gone, withdrawn. The
  /// service's unknown-id status (502): withdrawn when the previous sweep found the same,
  /// otherwise remembered. Anything else: retried, then kept until the next sweep.
  void on_missing_detail(std::vector<std::string> missing, std::size_t index,
                         delivery::post_result r) {
    const std::string entity = missing[index];
    auto next = [self = shared_from_this(), missing, index]() mutable {
      self->detail_attempts_ = 0;
      self->check_missing(std::move(missing), index + 1);
    };
    if (r.status == 200) {
      failures_ = 0;
      poller_->count([](feed_counters& c) { ++c.absent_kept; });
      log::info({.event = "feed.notice_kept",
                 .partner = partner(),
                 .outcome = "kept",
                 .reason = "missing-from-list-but-published",
                 .detail = "a " + cursor_.type + " notice missing from the list answered 200"});
      return take_detail(entity, r.body, std::move(next));
    }
    if (gone_status(r.status)) {
      failures_ = 0;
      return found_gone(entity, std::move(next));
    }
    if (r.status == unknown_id_status) {
      auto it = notices_.find(cursor_.type + "/" + entity);
      if (it == notices_.end()) {
        return next();
      }
      if (it->second.absent_sweep > 0 && it->second.absent_sweep == cursor_.sweep - 1) {
        // Missing and unknown in two sweeps in a row: gone. This sweep's finding is kept too, so
        // that a sweep whose withdrawals are held leaves the next one the same evidence.
        // The state says it was confirmed: a restart before the sweep's end (the list of those
        // found gone is saved with the cursor only later) finds it gone again below.
        notice_state marked = it->second;
        marked.absent_sweep = cursor_.sweep;
        marked.absent_confirmed = true;
        return save_notice(std::move(marked),
                           [self = shared_from_this(), entity, next = std::move(next)]() mutable {
                             self->found_gone(entity, std::move(next));
                           });
      }
      if (it->second.absent_sweep == cursor_.sweep) {
        // Already answered in this sweep (a restart read the list again): found gone then, or
        // remembered for the first time.
        if (it->second.absent_confirmed) {
          return found_gone(entity, std::move(next));
        }
        return next();
      }
      poller_->count([](feed_counters& c) { ++c.absent_unconfirmed; });
      log::info({.event = "feed.notice_unconfirmed",
                 .partner = partner(),
                 .outcome = "kept",
                 .reason = "missing-and-unknown-once",
                 .detail = "a " + cursor_.type +
                           " notice missing from the list answered 502; withdrawn if the next "
                           "sweep finds the same",
                 .status = r.status});
      notice_state marked = it->second;
      marked.absent_sweep = cursor_.sweep;
      marked.absent_confirmed = false;
      return save_notice(std::move(marked), std::move(next));
    }
    const std::string_view reason = r.status == 0 ? std::string_view(r.error) : "detail-status";
    if (++detail_attempts_ < std::max(1, poller_->options.max_detail_attempts)) {
      return fail(reason, r.status, [self = shared_from_this(), missing, index]() mutable {
        self->check_missing(std::move(missing), index);
      });
    }
    ++failures_;
    poller_->count([](feed_counters& c) { ++c.errors; });
    log::warn({.event = "feed.notice_unchecked",
               .partner = partner(),
               .outcome = "kept",
               .reason = reason,
               .detail = "a " + cursor_.type +
                         " notice missing from the list could not be checked; kept until next "
                         "sweep",
               .status = r.status});
    next();
  }

  void next_type() {
    cursor_.seen.clear();
    cursor_.visited.clear();
    page_attempts_ = 0;
    cursor_.page_url.clear();
    cursor_.pages_done = 0;
    cursor_.listed_total = 0;
    cursor_.total_missing = false;
    cursor_.skipped = 0;
    if (++cursor_.type_index < types().size()) {
      cursor_.type = types()[cursor_.type_index];
      return save_cursor([self = shared_from_this()] { self->start_page(); });
    }
    finish_sweep();
  }

  /// Every type was read: the notices found gone are withdrawn, unless they are more than
  /// max_withdrawals_per_sweep. Then none is: a relay or a feed that answers 404 for everything
  /// would otherwise tell every partner to stop looking for every wanted person. They stay as
  /// they are (active, sent again only when changed), and the next sweep asks again. Called again
  /// after a failed withdrawal (those done are no longer active and are passed over).
  void finish_sweep() {
    std::vector<std::string> due;
    std::map<std::string, std::size_t> per_type;
    for (const auto& k : cursor_.pending) {
      if (auto it = notices_.find(k); it != notices_.end() && it->second.active) {
        due.push_back(k);
        ++per_type[it->second.type];
      }
    }
    // The feed's own cap (its partner's feed/max_withdrawals_per_sweep), else the gateway's.
    const auto& own_cap = source_.settings.max_withdrawals_per_sweep;
    const std::size_t cap = own_cap ? *own_cap : poller_->options.max_withdrawals_per_sweep;
    if (due.size() <= cap) {
      return withdraw_due(std::move(due), 0);
    }
    const auto held = due.size();
    poller_->count([held](feed_counters& c) {
      ++c.holds;
      c.withdrawals_held += held;
    });
    if (poller_->options.metrics) {
      poller_->options.metrics->add("mxgw_feed_withdrawal_holds_total",
                                    "partner=\"" + prometheus_label_value(partner()) + "\"");
    }
    std::string counts;
    for (const auto& [type, n] : per_type) {
      counts += (counts.empty() ? "" : ", ") + type + " " + std::to_string(n);
    }
    // Which cap held them, so the operator knows which one to raise.
    const std::string limit =
        own_cap ? "max_withdrawals_per_sweep " + std::to_string(cap) + " set on this partner's feed"
                : "feed.max_withdrawals_per_sweep " + std::to_string(cap) + " (gateway-wide)";
    log::error({.event = "feed.withdrawals_held",
                .partner = partner(),
                .outcome = "held",
                .reason = "max-withdrawals-per-sweep",
                .detail = "sweep " + std::to_string(cursor_.sweep) + " found " +
                          std::to_string(held) + " notices gone (" + counts + "), more than " +
                          limit + ": none withdrawn, all kept and checked again next sweep"});
    complete_sweep();
  }

  void withdraw_due(std::vector<std::string> due, std::size_t index) {
    if (stopping()) {
      return;
    }
    if (index >= due.size()) {
      return complete_sweep();
    }
    const std::string k = due[index];
    withdraw(k, [self = shared_from_this(), due = std::move(due), index]() mutable {
      self->withdraw_due(std::move(due), index + 1);
    });
  }

  /// The sweep is complete: where the next one starts, and when this one started, are saved,
  /// then the next starts one interval after this one started.
  void complete_sweep() {
    const auto sweep = cursor_.sweep;
    cursor_ =
        cursor_state{.sweep = sweep + 1,
                     .type = types().front(),
                     .last_sweep_started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  sweep_started_wall_.time_since_epoch())
                                                  .count()};
    save_completed(sweep);
  }

  /// Saves the cursor of the completed sweep `sweep` (complete_sweep set it). A failed save is
  /// retried after the backoff, and only the save: the next sweep waits for it and for the
  /// interval, so a store that cannot write never makes the feed be polled early, and a restart
  /// after the save neither reads the finished sweep again nor polls before the interval.
  void save_completed(std::int64_t sweep) {
    auto self = shared_from_this();
    save_cursor(
        [self, sweep] {
          self->failures_ = 0;
          self->poller_->count([](feed_counters& c) { ++c.sweeps; });
          log::info({.event = "feed.sweep_completed",
                     .partner = self->partner(),
                     .outcome = "completed",
                     .detail = "sweep " + std::to_string(sweep)});
          const auto due = self->sweep_started_ + self->source_.settings.interval;
          self->timer_.expires_at(due);
          self->timer_.async_wait([self](auto ec) {
            if (!ec && !self->stopping()) {
              self->start_page();
            }
          });
        },
        [self, sweep] { self->save_completed(sweep); },
        "sweep " + std::to_string(sweep) +
            " is complete but its end could not be saved; saving it again, the next sweep "
            "waits for the save and for interval_s");
  }

  /// Saves the cursor, then `then`. When the store cannot write: fail() with `retry` (by default
  /// the page the sweep stands at) and `what` for its log line.
  void save_cursor(std::function<void()> then, std::function<void()> retry = {},
                   std::string what = {}) {
    store::state_item item{.kind = std::string(state_kind),
                           .key = key("cursor"),
                           .value = to_json(cursor_),
                           .changed_by = "feed:" + partner()};
    poller_->store->put_state(
        std::move(item), std::nullopt, {},
        [self = shared_from_this(), loop = keep_loop(), then = std::move(then),
         retry = std::move(retry),
         what = std::move(what)](store::put_outcome outcome, std::int64_t) mutable {
          asio::post(self->poller_->ioc, [self, outcome, then = std::move(then),
                                          retry = std::move(retry), what = std::move(what)] {
            if (self->stopping()) {
              return;
            }
            if (outcome != store::put_outcome::applied) {
              return self->fail("state-unwritable", 503, retry, what);
            }
            then();
          });
        });
  }
};

namespace {

std::string read_token(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  const bool printable =
      std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 0x7F; });
  if (!in.good() && !in.eof()) {
    throw std::runtime_error("feed token file " + file.string() + " cannot be read");
  }
  if (token.empty() || !printable) {
    throw std::runtime_error("feed token file " + file.string() +
                             " must hold one token of printable ASCII");
  }
  return token;
}

/// The same feed, polled the same way: nothing to restart.
bool same_feed(const feed_source& a, const feed_source& b) {
  const auto& x = a.settings;
  const auto& y = b.settings;
  return a.partner_id == b.partner_id && a.carry_unmapped == b.carry_unmapped && x.url == y.url &&
         x.interval == y.interval && x.notice_types == y.notice_types &&
         x.page_size == y.page_size && x.token_file == y.token_file &&
         x.max_withdrawals_per_sweep == y.max_withdrawals_per_sweep;
}

}  // namespace

void feed_poller::impl::replace_run(const std::string& partner, std::optional<feed_source> source,
                                    std::string token, bool start_now) {
  std::shared_ptr<feed_run> old;
  if (auto it = std::find_if(runs.begin(), runs.end(),
                             [&](const auto& run) { return run->partner_id() == partner; });
      it != runs.end()) {
    old = *it;
    runs.erase(it);
    old->stop();
    log::info({.event = "feed.stopped",
               .partner = partner,
               .reason = source ? "settings-changed" : "partner-disabled-or-feed-removed"});
  }
  if (!source) {
    return;
  }
  auto run = std::make_shared<feed_run>(shared_from_this(), std::move(*source), std::move(token));
  run->follow(old);
  runs.push_back(run);
  if (start_now) {
    run->start_after_predecessor();
  }
}

feed_poller::feed_poller(poller_options options, std::vector<feed_source> feeds,
                         std::shared_ptr<store::message_store> store, tables_function tables,
                         accept_function accept)
    : impl_(std::make_shared<impl>(std::move(options), std::move(store), std::move(tables),
                                   std::move(accept))) {
  for (auto& source : feeds) {
    std::string token;
    if (!source.settings.token_file.empty()) {
      token = read_token(source.settings.token_file);
    }
    impl_->feeds[source.partner_id] = source;
    impl_->runs.push_back(std::make_shared<feed_run>(impl_, std::move(source), std::move(token)));
  }
}

feed_poller::feed_poller(poller_options options, std::vector<feed_source> feeds,
                         std::shared_ptr<store::message_store> store,
                         const pipeline::code_tables* tables, accept_function accept)
    : feed_poller(
          std::move(options), std::move(feeds), std::move(store),
          [tables] {
            // Not owned: the caller keeps them alive longer than the poller.
            return std::shared_ptr<const pipeline::code_tables>(std::shared_ptr<void>(), tables);
          },
          std::move(accept)) {}

feed_poller::~feed_poller() {
  stop();
}

void feed_poller::start() {
  std::lock_guard lock(impl_->control);
  if (impl_->started || impl_->closed) {
    return;
  }
  impl_->started = true;
  impl_->work.emplace(impl_->ioc.get_executor());
  for (auto& run : impl_->runs) {
    asio::post(impl_->ioc, [run] { run->start(); });
  }
  impl_->thread = std::thread([impl = impl_] { impl->ioc.run(); });
}

void feed_poller::stop() {
  {
    std::lock_guard lock(impl_->control);
    impl_->closed = true;  // no update is posted after the stop below
  }
  if (!impl_->thread.joinable()) {
    impl_->stopping = true;
    impl_->runs.clear();
    return;
  }
  asio::post(impl_->ioc, [impl = impl_] {
    impl->stopping = true;
    for (const auto& run : impl->runs) {
      run->stop();
    }
    impl->client.close_idle();
  });
  impl_->work.reset();
  impl_->thread.join();
  impl_->runs.clear();
}

void feed_poller::update(std::vector<feed_source> feeds) {
  std::lock_guard lock(impl_->control);
  if (impl_->closed) {
    return;
  }
  // What changes, by partner: nullopt stops the feed; a source (re)starts it with its token.
  struct change {
    std::string partner;
    std::optional<feed_source> source;
    std::string token;
  };
  std::vector<change> changes;
  std::set<std::string> listed;
  for (auto& source : feeds) {
    listed.insert(source.partner_id);
    const auto now = impl_->feeds.find(source.partner_id);
    if (now != impl_->feeds.end() && same_feed(now->second, source)) {
      continue;
    }
    std::string token;
    if (!source.settings.token_file.empty()) {
      try {
        token = read_token(source.settings.token_file);
      } catch (const std::runtime_error&) {
        // Fail closed: not polled with settings it cannot use (the file name is configuration,
        // the token never appears).
        log::error({.event = "feed.not_started",
                    .partner = source.partner_id,
                    .reason = "token-unreadable",
                    .detail = "the feed's token file cannot be read; the feed is not polled"});
        if (now != impl_->feeds.end()) {
          impl_->feeds.erase(now);
          changes.push_back({source.partner_id, std::nullopt, {}});
        }
        continue;
      }
    }
    impl_->feeds[source.partner_id] = source;
    changes.push_back({source.partner_id, std::move(source), std::move(token)});
  }
  for (auto it = impl_->feeds.begin(); it != impl_->feeds.end();) {
    if (listed.contains(it->first)) {
      ++it;
      continue;
    }
    changes.push_back({it->first, std::nullopt, {}});
    it = impl_->feeds.erase(it);
  }
  if (changes.empty()) {
    return;
  }
  if (!impl_->started) {
    for (auto& c : changes) {
      impl_->replace_run(c.partner, std::move(c.source), std::move(c.token), false);
    }
    return;
  }
  // Posted under the lock: updates reach the io thread in the order they were made.
  asio::post(impl_->ioc, [impl = impl_, changes = std::move(changes)]() mutable {
    if (impl->stopping) {
      return;
    }
    for (auto& c : changes) {
      impl->replace_run(c.partner, std::move(c.source), std::move(c.token), true);
    }
  });
}

feed_counters feed_poller::counters() const {
  std::lock_guard lock(impl_->counters_mutex);
  return impl_->totals;
}

bool feed_poller::wait_until(const std::function<bool(const feed_counters&)>& predicate,
                             std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->counters_mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return predicate(impl_->totals); });
}

delivery::client_crls feed_poller::read_crls(const std::vector<std::filesystem::path>& files,
                                             std::vector<identity::config_problem>& problems,
                                             std::vector<std::string>& stale) const {
  return impl_->client.read_crls(files, problems, stale);
}

void feed_poller::put_in_force(const delivery::client_crls& crls) {
  impl_->client.put_in_force(crls);
}

}  // namespace mxgw::feed
