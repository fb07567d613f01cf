// The notice feed poller: sweeps each feed partner's INTERPOL-style notice list page by page,
// fetches every listed notice's detail, and hands new or changed notices, and withdrawals of
// notices the feed says are gone, to the same accept path partners use. Positions and the notices
// already sent are kept in the store (administrative state, kind "feed"), so a restart resumes at
// the right page and sends nothing twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/common/keyed_mac.hpp"
#include "gateway/delivery/partner_client.hpp"
#include "gateway/identity/partner_registry.hpp"

namespace mxgw {
class metrics;
}
namespace mxgw::pipeline {
class code_tables;
}
namespace mxgw::store {
class message_store;
}

namespace mxgw::feed {

/// One feed to poll: the partner on whose behalf its notices are sent, and its definition.
struct feed_source {
  std::string partner_id;
  identity::feed_settings settings;
  bool carry_unmapped = false;  ///< the partner's carryUnmapped (unknown codes kept, not refused)
};

struct poller_options {
  delivery::client_identity identity;  ///< the gateway's client certificate and the feed's CA
  std::chrono::milliseconds request_timeout{30000};  ///< one list page or detail request
  std::chrono::milliseconds backoff_base{1000};      ///< first retry delay after an error
  std::chrono::milliseconds backoff_cap{300000};     ///< largest (also at most the interval)
  std::size_t max_list_bytes = 4 * 1024 * 1024;      ///< largest list page accepted
  std::size_t max_detail_bytes = 1024 * 1024;        ///< largest notice detail accepted
  int max_pages = 200;     ///< pages of one notice type in one sweep; more is an error
  int max_detail_attempts = 3;  ///< tries of one notice's detail in a sweep before it is skipped
  /// Tries of one list page in a row (an error status, no answer, a page too large, not JSON, not
  /// a list, a `next` link off the feed's list) before the rest of that type's list is given up
  /// for the sweep: nothing missing from it is withdrawn, and the next type is read.
  int max_list_attempts = 3;
  /// A sweep of one feed that finds more notices gone than this withdraws none of them: a mass
  /// disappearance is a broken feed or relay until an operator raises the limit (config
  /// `feed.max_withdrawals_per_sweep`). The next sweep checks again. A feed whose settings carry
  /// their own max_withdrawals_per_sweep uses that instead.
  std::size_t max_withdrawals_per_sweep = 10;
  /// Process metrics (mxgw_feed_withdrawals_held_total); nullptr: none.
  std::shared_ptr<mxgw::metrics> metrics;
  std::uint64_t seed = 0;  ///< jitter seed (0: random)
  /// The secret notices' message ids are derived under (config `message_ids.key`, as the partner
  /// API's); null: derived without a key (predictable).
  std::shared_ptr<const mac_key> message_id_key;
};

/// What the accept path answered: an HTTP status (202 accepted, 409 the id was used before, 403
/// the feed's partner may not send it now (disabled, held for a change this instance could not
/// apply, or not permitted the type): nothing is marked as sent, withdrawals included, and the next
/// sweep tries again; other 4xx refused for good, 503 store unavailable).
using accept_done = std::function<void(int status)>;
/// Accepts a canonical message as `sender` (see http::partner_api::accept_canonical).
using accept_function =
    std::function<void(std::string sender, std::string canonical,
                       std::optional<std::vector<std::string>> only_to, accept_done done)>;

/// The code tables notices are decoded with, asked for each notice detail (so a reload's new
/// tables are used from the next notice on); never null.
using tables_function = std::function<std::shared_ptr<const pipeline::code_tables>()>;

/// Counters over every feed, for tests and operators.
struct feed_counters {
  std::uint64_t sweeps = 0;     ///< finished sweeps (every type read to its end; see incomplete)
  std::uint64_t pages = 0;      ///< list pages read
  std::uint64_t details = 0;    ///< notice details read
  std::uint64_t sent = 0;       ///< messages accepted for new or changed notices
  std::uint64_t unchanged = 0;  ///< details whose content had been sent already
  std::uint64_t withdrawn = 0;  ///< notices withdrawn (a case.status sent when anyone had them)
  std::uint64_t refused = 0;    ///< details that could not be translated or were refused
  std::uint64_t errors = 0;     ///< failed requests or store writes (each followed by a backoff)
  std::uint64_t skipped = 0;    ///< listed items passed over: a malformed entity_id, or a detail
                                ///< that failed max_detail_attempts times (retried next sweep)
  std::uint64_t incomplete = 0;      ///< list passes that could not show a notice is gone (an item
                                     ///< skipped, no `total` or one above what was seen, too many
                                     ///< pages, a page read twice, a page given up): nothing was
                                     ///< withdrawn for being missing from them
  std::uint64_t lists_given_up = 0;  ///< list passes ended early because one page failed
                                     ///< max_list_attempts times (also counted in incomplete)
  std::uint64_t absent_kept = 0;  ///< notices missing from a complete list whose detail still
                                  ///< answered 200: kept (and updated when changed)
  std::uint64_t absent_unconfirmed = 0;  ///< notices missing from a complete list whose detail
                                         ///< answered 502 (the service's unknown-id answer) for
                                         ///< the first time: withdrawn only if the next sweep
                                         ///< finds the same
  std::uint64_t holds = 0;               ///< sweeps that found more notices gone than their
                                         ///< feed's cap (max_withdrawals_per_sweep, its own or
                                         ///< the gateway's) and withdrew none of them
  std::uint64_t withdrawals_held = 0;    ///< notices those sweeps did not withdraw (kept as they
                                         ///< were, checked again in the next sweep)
};

class feed_poller {
 public:
  /// `tables` gives the code tables in force; the adapter registry must outlive the poller.
  /// Throws std::runtime_error when the client identity or a token file cannot be loaded.
  feed_poller(poller_options options, std::vector<feed_source> feeds,
              std::shared_ptr<store::message_store> store, tables_function tables,
              accept_function accept);
  /// As above with fixed tables, which must outlive the poller.
  feed_poller(poller_options options, std::vector<feed_source> feeds,
              std::shared_ptr<store::message_store> store, const pipeline::code_tables* tables,
              accept_function accept);
  ~feed_poller();
  feed_poller(const feed_poller&) = delete;
  feed_poller& operator=(const feed_poller&) = delete;

  /// Loads each feed's saved position and notices, then polls on a thread of its own.
  void start();

  /// Stops polling; a request in flight finishes (bounded by request_timeout). Idempotent.
  void stop();

  /// The feeds to poll from now on (the live partner state's enabled, not held partners with a
  /// feed), compared with those polled now by partner id: a feed no longer listed is stopped
  /// (`feed.stopped`; a request in flight finishes and its answer is dropped), a new one
  /// started, one whose settings or carryUnmapped changed stopped and started again with the new
  /// ones (its saved position and notices are kept; it starts once the stopped run has let go of
  /// the store). A feed whose token file cannot be read is not polled (`feed.not_started`,
  /// error) until a later update lists it again. Thread-safe; calls are applied in the order
  /// made; nothing after stop(). Before start() it only changes what start() starts.
  void update(std::vector<feed_source> feeds);

  feed_counters counters() const;

  /// The feed servers' CRLs read anew, then put in force (delivery::partner_client::read_crls and
  /// put_in_force: the same checks as for deliveries).
  delivery::client_crls read_crls(const std::vector<std::filesystem::path>& files,
                                  std::vector<identity::config_problem>& problems,
                                  std::vector<std::string>& stale) const;
  void put_in_force(const delivery::client_crls& crls);

  /// Waits until `predicate(counters())` holds (checked after every change) or `timeout` passes.
  bool wait_until(const std::function<bool(const feed_counters&)>& predicate,
                  std::chrono::milliseconds timeout) const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::feed
