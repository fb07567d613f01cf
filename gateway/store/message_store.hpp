// The store interface: durable accept of canonical messages and status look-ups. SQLite is the
// embedded default; PostgreSQL comes behind the same interface.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/audit/audit.hpp"

namespace mxgw::store {

using time_point = std::chrono::system_clock::time_point;

/// One recipient the message must be delivered to, decided by routing and policy at accept time.
struct delivery_plan {
  std::string recipient;   ///< partner id
  std::string decided_by;  ///< "explicit" (named in `recipients`) or the routing rule's id
  std::string payload;     ///< the bytes to deliver to this recipient (withheld fields removed)
  std::string withheld;    ///< JSON array of {"pointer","reason"} withheld from this recipient
  /// The recipient gets the message's body as stored (a canonical recipient from whom nothing is
  /// withheld): no second copy is stored, and claims hand out the body. `payload` is then empty
  /// or a token that binds the row to the body (the encryption at rest's; stored, never sent).
  bool payload_is_body = false;
  /// The id of the release rule that holds this copy back until administrators release it
  /// (four-eyes release, docs/release.md); empty: none. A held copy is stored in the state
  /// "held", which claims never take; decide_release() makes it "pending" or "rejected".
  std::string hold;
  /// For a held copy: how many different administrators must approve its release under the
  /// routing that held it (`release.approvals`, 1-5). Stored with the row (`approvals_required`):
  /// its release needs at least that many, whatever the routing says when it is decided. 0: not
  /// given; the store records what its approvals_when_held() source says (0 without one).
  std::size_t approvals_required = 0;
  /// The agreements the copy's content relies on (pipeline::recipient_plan::relies_on), e.g.
  /// {"victim-data"}: it may be sent only while the recipient holds each of them (the delivery
  /// service checks before every attempt). Stored with the row (`relies_on`), handed out with
  /// each claim (delivery_job::relies_on). Empty: the copy carries nothing agreement-only.
  std::vector<std::string> relies_on;
};

/// The `relies_on` column of a delivery row: the agreement names joined by ',' ("" for none).
/// Agreement names are known codes (identity::known_agreements()), never holding a comma.
inline std::string relies_on_column(const std::vector<std::string>& agreements) {
  std::string joined;
  for (const auto& a : agreements) {
    joined += joined.empty() ? a : "," + a;
  }
  return joined;
}

/// The agreement names of a `relies_on` column (relies_on_column's inverse; "" gives none).
inline std::vector<std::string> relies_on_of(std::string_view column) {
  std::vector<std::string> agreements;
  while (!column.empty()) {
    const auto comma = column.find(',');
    if (comma != 0) {
      agreements.emplace_back(column.substr(0, comma));
    }
    if (comma == std::string_view::npos) {
      break;
    }
    column.remove_prefix(comma + 1);
  }
  return agreements;
}

/// Why a partner considered by routing does not receive the message (explainability).
struct route_exclusion {
  std::string partner;     ///< partner id
  std::string considered;  ///< "explicit" or the rule id that would have added it
  std::string reason;      ///< stable code, e.g. "not-releasable", "does-not-receive-type"
};

/// A keyed digest of what may identify a person in a message (docs/persons.md): two messages whose
/// persons share a digest of the same kind are candidates for the same person, for a human to
/// judge. The store keeps digests, never the names or numbers they were made from.
struct person_key {
  std::string pointer;  ///< JSON Pointer of the person object in the message, e.g. "/body/person"
  std::string kind;     ///< "document", "name-birth-year" or "name"
  std::string digest;   ///< 32 bytes: HMAC-SHA-256 under the match key (pipeline::person_keys_of)
};

/// A person of another message sharing a key with a person of the message asked about.
struct person_match {
  std::string pointer;        ///< the person in the message asked about
  std::string kind;           ///< the kind of the key both share
  std::string message_id;     ///< the other message
  std::string other_pointer;  ///< the person in the other message
  std::string sender;         ///< the other message's sender
  std::string type;           ///< the other message's type
  std::string accepted_at;    ///< the other message's accepted_at (RFC 3339 UTC, milliseconds)
};

/// One accepted canonical message, as the pipeline hands it to the store.
struct message_record {
  std::string id;           ///< the envelope id, a lower-case UUID (the idempotency key)
  std::string sender;       ///< the authenticated partner id
  std::string type;         ///< the canonical message type, e.g. "victim.identification"
  std::string created;      ///< the envelope's `created` (RFC 3339), as sent
  std::string body_sha256;  ///< lower-case hex SHA-256 of the submitted bytes (duplicate check)
  std::string body;         ///< the submitted canonical JSON bytes
  std::vector<delivery_plan> deliveries;    ///< one delivery row each, in the same transaction
  std::vector<route_exclusion> exclusions;  ///< kept for the status endpoint and the audit
  /// Appended to the audit chain in the same transaction, only when the outcome is `stored`.
  std::vector<audit::audit_record> audit;
  /// A `case.status` withdrawn/cancelled names the message it takes back: when that message has
  /// the same sender, its copies not yet delivered (held, pending, retrying) become "withdrawn" and
  /// their payloads are emptied, in the same transaction. Empty: nothing is taken back.
  std::string withdraws;
  /// Routing saw the message `withdraws` names (the same sender's) and made its recipients
  /// candidates. When it did not, but that message is stored by the time this record would be,
  /// the accept is `reroute`: the original committed after the look-up, some of its copies may be
  /// out already, and the withdrawal must be routed again to reach them.
  bool original_seen = false;
  /// The message's statistical facts for `mxgw report`: a compact JSON object of coarse,
  /// non-identifying categories (pipeline::facts_of). Stored with the message and kept when
  /// retention purges its body. Empty: none (e.g. a record built by a test).
  std::string facts;
  /// The end of the message's `handling.expires` day (UTC): the source allows no processing
  /// after it, so no copy is handed to a recipient from then on (delivery_job::expires_at).
  /// Unset: the message does not expire. Stored to the millisecond, rounded down (never later).
  std::optional<time_point> expires_at;
  /// The keyed digests of the message's persons (docs/persons.md), stored with it in the same
  /// transaction; deleted with its body (retention, expiry) and when its sender withdraws it.
  /// Empty: none (person matching is off, or the message names nobody).
  std::vector<person_key> person_keys;
};

enum class accept_outcome {
  stored,       ///< committed now; durable when the handler runs
  duplicate,    ///< the same id with the same sender and body_sha256 was stored before; nothing new
  conflict,     ///< the same id is stored with another sender or another body; nothing new
  reroute,      ///< a withdrawal whose original is stored but was not seen by routing
                ///< (message_record::original_seen); nothing written: route again
  unavailable,  ///< the store could not commit (disk full, I/O error, stopped); nothing stored
};

struct accept_result {
  accept_outcome outcome = accept_outcome::unavailable;
  std::string accepted_at;  ///< RFC 3339 UTC of the first accept, for stored and duplicate
  std::string reason;       ///< for unavailable: a short code ("disk-full", "io-error", "stopped")
  /// For stored: its sender had withdrawn it before it arrived (that withdrawal's id). It is
  /// stored withdrawn: none of its copies is handed out and it has no person keys. Empty: not.
  std::string withdrawn_by;
};

/// The delivery state of one recipient of a message.
struct recipient_status {
  std::string recipient;
  std::string decided_by;
  /// "held" (waiting for administrators' release), "pending", "delivering", "delivered",
  /// "retrying", "dead", "discarded", "expired", "withdrawn", "rejected" (release refused)
  std::string state;
  int attempts = 0;
  std::optional<time_point> next_attempt_at;  ///< for pending and retrying
  std::string last_error;  ///< short, for retrying and dead; the reason of a rejected copy
  std::optional<time_point> delivered_at;     ///< when the receipt came
  std::string receipt;                        ///< the recipient's receipt body (bounded)
  std::string withheld;                       ///< JSON array withheld from this recipient
  std::string hold;  ///< the release rule that held (or holds) this copy; empty: never held
};

/// True when copy `r` may have reached its recipient. A copy held for four-eyes release and never
/// handed out (still held, refused, withdrawn while held) reached no one: telling its recipient of
/// a withdrawal would tell it that the message exists.
inline bool may_have_reached(const recipient_status& r) {
  return r.hold.empty() || r.attempts > 0;
}

/// What the status endpoint shows. Never holds the body.
/// A stored message's sender and canonical body (message_store::read_body).
struct stored_body {
  std::string sender;
  std::string body;
};

struct message_status {
  std::string id;
  std::string sender;
  std::string type;
  std::string created;
  std::string accepted_at;
  std::string state;  ///< "accepted"; "undeliverable" when routing found no recipient
  std::vector<recipient_status> recipients;
  std::vector<route_exclusion> exclusions;
  /// message_record::body_sha256 as stored: a resend of these very bytes by `sender` is this
  /// message (what accept() judges a duplicate). For the gateway's own checks, never shown.
  std::string body_sha256;
};

/// One delivery a worker must attempt now (claimed with a lease).
struct delivery_job {
  std::string message_id;
  std::string recipient;
  std::string sender;
  std::string type;
  std::string payload;  ///< the bytes to POST
  int attempt = 1;      ///< the number of this attempt (1 for the first)
  /// `payload` is the message's stored body (sealed as the body, not as a recipient's copy), and
  /// `body_grant` what the row itself holds (delivery_plan::payload of a body's recipient).
  bool payload_is_body = false;
  std::string body_grant;
  time_point accepted_at;
  /// When the copy was last put (back) in the queue by people: administrators released it (a copy
  /// held for release) or replayed it (a dead letter). The delivery's max_age counts from the
  /// later of accepted_at and this. Unset for a copy never held nor replayed.
  std::optional<time_point> released_at;
  /// message_record::expires_at of its message (as stored: to the millisecond): from then on
  /// the copy must not be sent. The store hands out expired copies all the same (claims and
  /// read_held); the delivery service decides what becomes of them. Unset: it never expires.
  std::optional<time_point> expires_at;
  /// delivery_plan::relies_on of the row: the agreements the recipient must still hold for the
  /// copy to be sent. The store hands such copies out whatever the recipient holds now; the
  /// delivery service decides (a dead letter "agreement-withdrawn" when one is missing).
  std::vector<std::string> relies_on;
};

enum class attempt_result {
  delivered,  ///< the recipient answered 2xx with a receipt
  retry,      ///< transient failure; try again at next_attempt_at
  dead,       ///< permanent failure or limits reached: a dead letter until replayed
};

/// The most bytes of a receipt and of an error text a delivery row keeps: a store cuts longer ones
/// (before a UTF-8 character, see cut_utf8 in sealed.hpp). With encryption at rest the decorator
/// cuts them to these limits and seals them; a store keeps a sealed value whole.
inline constexpr std::size_t max_receipt_bytes = 4096;
inline constexpr std::size_t max_error_bytes = 512;

struct attempt_report {
  std::string message_id;
  std::string recipient;
  std::string owner;  ///< the claimer; a report from a worker whose lease was taken over is ignored
  attempt_result result = attempt_result::retry;
  time_point next_attempt_at;  ///< for retry
  std::string error;    ///< short reason for retry/dead (status code, "timeout", ...; at most
                        ///< max_error_bytes kept); may carry the partner's answer
  std::string receipt;  ///< for delivered (at most max_receipt_bytes kept)
  /// Appended to the audit chain in the same transaction, only when the report took effect.
  std::vector<audit::audit_record> audit;
  /// The attempt reported on: delivery_job::attempt of the claim that handed it out. The report
  /// applies only while the row is still at that attempt, so a late report of an earlier attempt
  /// is ignored even when the same owner has claimed the row again since (all workers of one
  /// instance share its owner name). 0 (unset) matches no claimed row: such a report is ignored.
  int attempt = 0;
  /// false: the copy was not sent. A retry: given back untried (the gateway is stopping, its
  /// recipient's circuit is open, its key is missing), so the claim did not use up one of its
  /// tries and the next claim hands it out with the same attempt number. A dead letter: decided
  /// before sending (expired, recipient gone or without the agreement, tries used up), so it
  /// never counts as having reached its recipient (may_have_reached). Either way the row's
  /// attempts go back by one.
  bool attempted = true;
};

/// How many deliveries one recipient may be given in a claim.
struct recipient_cap {
  std::string recipient;
  std::size_t max_jobs = 0;
};

/// The delivery queue of one recipient, for operators.
struct queue_stat {
  std::string recipient;
  std::size_t held = 0;  ///< waiting for release by administrators
  std::size_t pending = 0;
  std::size_t delivering = 0;
  std::size_t retrying = 0;
  std::size_t dead = 0;
  std::size_t delivered = 0;
  std::size_t discarded = 0;
  std::size_t rejected = 0;  ///< held copies whose release was refused
  /// accepted_at of the oldest held/pending/delivering/retrying row, or ""
  std::string oldest_waiting;
};

/// What the retention sweep may purge now.
struct retention_cut {
  time_point delivered_before;  ///< payloads of rows delivered before this; bodies of messages
                                ///< whose every copy is delivered (or gone) and that were accepted
                                ///< before this when routing found no recipient
  time_point dead_before;       ///< payloads of rows dead (or discarded) since before this
  std::size_t max_rows = 1000;  ///< at most this many rows of each kind in one transaction
  std::string actor;            ///< who runs the sweep, for the audit entry
  /// Messages whose handling.expires ended at or before this (message_record::expires_at): the
  /// source allows no processing of them any more. Their copies that are not in delivery
  /// (every state but pending, retrying and delivering) are emptied whatever their age, a held
  /// copy too (it becomes "expired": it can no longer be released), and their bodies once no
  /// copy is in delivery. Copies still in delivery are left to the delivery, which never sends
  /// them (a dead letter "handling-expired", emptied by the next sweep). Unset: none.
  std::optional<time_point> expired_before;
};

struct purge_result {
  std::size_t payloads = 0;  ///< delivery rows emptied (a dead one becomes "expired")
  std::size_t bodies = 0;    ///< message bodies emptied (the message's `purged_at` set)
  /// Of those, the rows and bodies emptied because their message expired (expired_before).
  std::size_t expired = 0;
};

/// Which of a message's stored values a stored_value is.
enum class value_field {
  body,     ///< the message's body (recipient empty)
  payload,  ///< a recipient's payload, or the grant of a recipient of the body
  receipt,  ///< the receipt a recipient answered with
  error,    ///< a delivery's last error text (a partner's refusal, a discard reason)
  facts,    ///< the message's statistical facts (recipient empty)
};

/// One stored value as the store holds it (sealed bytes when encryption is on), shown to a
/// value_rewriter. Used by re-encryption under a new key (`mxgw keys rekey`).
struct stored_value {
  std::string message_id;
  std::string recipient;  ///< empty for the body; otherwise the delivery row's recipient
  std::string bytes;      ///< never empty (purged, withdrawn and absent values are not shown)
  value_field field = value_field::body;
};

/// Decides a value's new bytes: nullopt leaves it as it is. Runs on a store thread inside the
/// batch's transaction, so it must be quick and must not call the store. Throwing rolls the whole
/// batch back (nothing of it is written; the handler gets ok=false).
using value_rewriter = std::function<std::optional<std::string>(const stored_value&)>;

struct rewrite_result {
  std::size_t messages = 0;   ///< messages looked at; 0: there are none after `after_id`
  std::size_t values = 0;     ///< values shown to the rewriter
  std::size_t rewritten = 0;  ///< values replaced
  std::string last_id;        ///< the last message looked at: `after_id` of the next batch
};

/// One line of the transfer register: how many messages of a type crossed to or from a partner
/// in a month. No ids, no content.
struct transfer_count {
  std::string partner;
  std::string direction;  ///< "received-from" (the partner sent it) or "sent-to" (delivered to it)
  std::string month;      ///< "YYYY-MM" (UTC; accepted_at for received, delivered_at for sent)
  std::string type;
  std::size_t count = 0;
};

/// One accepted message's statistical facts, for `mxgw report`.
struct message_facts {
  std::string id;
  std::string sender;
  std::string type;
  std::string accepted_at;  ///< RFC 3339 UTC with milliseconds, as the store wrote it
  std::string facts;        ///< message_record::facts; empty for a message stored without them
};

/// One page of read_facts.
struct facts_page {
  std::vector<message_facts> rows;
  std::string next;  ///< the cursor of the next page; empty: there are no more rows
};

/// One dead letter, for operators (metadata only).
struct dead_letter {
  std::string message_id;
  std::string recipient;
  std::string sender;
  std::string type;
  int attempts = 0;
  std::string last_error;
  time_point dead_since;
};

/// One administrator's approval of a held copy.
struct release_approval {
  std::string by;  ///< the actor ("admin:<name>")
  std::string at;  ///< RFC 3339 UTC with milliseconds, the store's commit time
};

/// One copy held for release (four-eyes release), for administrators. Metadata only.
struct held_copy {
  std::string message_id;
  std::string recipient;
  std::string sender;
  std::string type;
  std::string accepted_at;                  ///< RFC 3339 UTC with milliseconds
  std::string hold;                         ///< the release rule that holds it
  std::vector<release_approval> approvals;  ///< in the order given; fewer than required
  /// The approvals recorded when it was held (delivery_plan::approvals_required; for a copy held
  /// before they were recorded, what the migration set, docs/storage.md); 0: none recorded. Its
  /// release needs the larger of this and the figure in force (release_request::required).
  std::size_t approvals_required = 0;
};

enum class release_outcome {
  approved,          ///< the approval is recorded; more are needed, the copy stays held
  released,          ///< this approval was the last one needed: the copy is pending, due now
  rejected,          ///< the copy is "rejected": never delivered, its payload emptied
  already_approved,  ///< this actor approved the copy before; nothing changed
  not_held,          ///< there is no held copy for that message and recipient; nothing changed
};

/// An administrator's decision on one held copy.
struct release_request {
  std::string message_id;
  std::string recipient;
  std::string actor;    ///< who decides ("admin:<name>"); approvals must come from different actors
  bool approve = true;  ///< false: reject
  std::string reason;   ///< for a rejection: kept as the row's last error (max_error_bytes)
  /// Approvals by different actors that release the copy under the routing in force (0 counts as
  /// 1). The store asks for the larger of this and the count recorded on the row when it was held
  /// (held_copy::approvals_required): lowering `release.approvals` does not lower what a copy
  /// held before needs.
  std::size_t required = 2;
  /// The audit entry, appended in the same transaction when the outcome is approved, released or
  /// rejected. The store sets its `event` ("release.approved", "release.released" or
  /// "release.rejected") and appends the detail `approvals` ("<given>/<required>").
  audit::audit_record audit;
};

struct release_result {
  release_outcome outcome = release_outcome::not_held;
  std::vector<release_approval> approvals;  ///< the copy's approvals after the decision
  /// The approvals its release needed (the larger of release_request::required, at least 1, and
  /// the count recorded when it was held); 0 when no held copy was found.
  std::size_t required = 0;
};

/// One piece of administrative state (a partner definition, a certificate record, the routing
/// rules, a feed's position): the configuration files are the seed, these rows the changes made
/// since. Every put gets the next value of one store-wide version sequence, so instances find
/// each other's changes by polling list_state(after_version).
struct state_item {
  std::string kind;        ///< "partner", "certificate", "routing", "feed", ...
  std::string key;         ///< unique within kind (partner id, certificate serial, ...)
  std::string value;       ///< a JSON document; empty: the item was deleted
  std::int64_t version = 0;  ///< assigned by the store (store-wide, increasing)
  std::string changed_at;  ///< RFC 3339 UTC, assigned by the store
  std::string changed_by;  ///< the actor (audit::audit_record::actor form)
};

enum class put_outcome {
  applied,   ///< stored with a new version (handler's version)
  conflict,  ///< expected_version did not match the item's current version; nothing changed
  failed,    ///< the store could not commit; nothing changed
};

/// One put of message_store::put_states: the item and, when set, the version it must have now
/// (0: the item must not exist or be deleted).
struct state_put {
  state_item item;
  std::optional<std::int64_t> expected_version;
};

/// True when two of the puts name the same item (kind, key): put_states stores none of them.
inline bool repeats_an_item(const std::vector<state_put>& puts) {
  for (std::size_t i = 0; i < puts.size(); ++i) {
    for (std::size_t j = i + 1; j < puts.size(); ++j) {
      if (puts[i].item.kind == puts[j].item.kind && puts[i].item.key == puts[j].item.key) {
        return true;
      }
    }
  }
  return false;
}

/// Thrown at open time only (bad path, unreadable file, newer schema version).
struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class message_store {
 public:
  using accept_handler = std::function<void(accept_result)>;
  using find_handler = std::function<void(std::optional<message_status>, bool ok)>;
  using body_handler = std::function<void(std::optional<stored_body>, bool ok)>;

  virtual ~message_store() = default;

  /// Queues a record for durable commit. Concurrent accepts are committed together (group commit:
  /// one transaction and one fsync per batch). The handler is called exactly once, on a store
  /// thread, after the outcome is final (for `stored`: after the commit is durable). Never throws.
  /// Exception: once the store is stopped or has failed, the handler runs at once on the calling
  /// thread with `unavailable` ("stopped" or "io-error"), so callers must not hold a lock the
  /// handler needs. Handlers should be quick (post the work elsewhere): the next batch waits.
  virtual void accept(message_record record, accept_handler handler) = 0;

  /// Looks a message up by id; handler(nullopt, true) when unknown, handler(nullopt, false) when
  /// the store failed. Called on a store thread (at once on the calling thread once the store is
  /// stopped or has failed). Never throws.
  virtual void find(std::string id, find_handler handler) = 0;

  /// A stored message's sender and canonical body as accepted (opened, when the store seals
  /// bodies), for the gateway's own use: never shown to a partner. handler(nullopt, true) when
  /// the id is unknown or its body does not open; (nullopt, false) when the store failed. On a
  /// store thread, like find. Never throws.
  virtual void read_body(std::string id, body_handler handler) = 0;

  using claim_handler = std::function<void(std::vector<delivery_job>, bool ok)>;
  using report_handler = std::function<void(bool ok)>;
  using replay_handler = std::function<void(bool found, bool ok)>;
  using dead_handler = std::function<void(std::vector<dead_letter>, bool ok)>;

  /// Claims up to `max_jobs` due deliveries for `owner` with a lease of `lease`: rows that are
  /// pending or retrying with next_attempt_at <= now, or delivering with an expired lease (a
  /// crashed worker's). A recipient named in `caps` gets at most its `max_jobs` rows (0: none, e.g.
  /// an open circuit breaker, or a partner at its concurrency limit); others are bounded only by
  /// `max_jobs`. Rows are taken round-robin across recipients, oldest first. Each claimed row
  /// becomes "delivering" with attempts + 1 in one transaction.
  virtual void claim_due(std::string owner, std::size_t max_jobs, std::chrono::milliseconds lease,
                         std::vector<recipient_cap> caps, claim_handler handler) = 0;

  /// Records the outcome of an attempt (durably, before the handler runs). Ignored (handler
  /// called with ok=true) when the row is no longer leased to report.owner, or no longer at
  /// report.attempt (the lease ran out and the row was claimed again, by any owner).
  virtual void report(attempt_report report, report_handler handler) = 0;

  /// Moves a dead letter back to pending (attempts reset to 0, due now, released_at now: its
  /// max_age counts from the replay). found=false when there is no dead delivery for that message
  /// and recipient. The audit records are appended in the same transaction when it was found.
  virtual void replay(std::string message_id, std::string recipient,
                      std::vector<audit::audit_record> audit, replay_handler handler) = 0;

  /// Gives a dead letter up for good: state "discarded", `reason` kept as its last error; it is
  /// never delivered (a replay no longer finds it). found=false when there is no dead delivery for
  /// that message and recipient. Audit records as for replay.
  virtual void discard(std::string message_id, std::string recipient, std::string reason,
                       std::vector<audit::audit_record> audit, replay_handler handler) = 0;

  using purge_handler = std::function<void(purge_result, bool ok)>;
  using register_handler = std::function<void(std::vector<transfer_count>, bool ok)>;

  /// Retention: empties payloads and bodies that are past their time, and with a row's payload its
  /// receipt and last error text (the partner's words; metadata, states and audit stay). A dead
  /// row whose payload is purged becomes "expired" and can no longer be replayed.
  /// Held, pending, retrying and delivering rows are never touched (nor the bodies they need). When
  /// anything was purged, one audit entry "retention.purged" (with the counts) is appended in the
  /// same transaction. Call again while a kind reached max_rows.
  virtual void purge(retention_cut cut, purge_handler handler) = 0;

  /// The transfer register for months [from_month, to_month] ("YYYY-MM", inclusive), ordered by
  /// partner, direction, month, type.
  virtual void transfer_register(std::string from_month, std::string to_month,
                                 register_handler handler) = 0;

  using facts_handler = std::function<void(facts_page, bool ok)>;

  /// The statistical facts of the messages accepted at or after `since` (RFC 3339 UTC, compared
  /// with accepted_at as text), oldest first, at most `limit` rows after the cursor `after` (""
  /// for the first page, then the previous page's `next`). Messages stored before facts were
  /// kept come with empty facts. Runs as a read: it never delays the group commit.
  virtual void read_facts(std::string since, std::string after, std::size_t limit,
                          facts_handler handler) = 0;

  using rewrite_handler = std::function<void(rewrite_result, bool ok)>;

  /// Shows the non-empty bodies, facts, payloads, receipts and error texts of the next
  /// `max_messages` messages after `after_id` (in id order; "" starts at the first; per message
  /// the body first, then its facts, then each delivery row's values) to `rewriter` and stores
  /// the bytes it
  /// returns, all in one transaction (group-committed with this store's other writes). A
  /// failed batch, or a rewriter that throws, changes none of these values: handler({}, false)
  /// (a throwing rewriter fails only its own part of the transaction). Only
  /// the bytes change: states, leases, times and every other column stay, so this is safe while
  /// the gateway runs. The handler runs after the commit is durable.
  virtual void rewrite_values(std::string after_id, std::size_t max_messages,
                              value_rewriter rewriter, rewrite_handler handler) = 0;

  // ---- persons across messages (docs/persons.md) ----

  using matches_handler = std::function<void(std::optional<std::vector<person_match>>, bool ok)>;

  /// The persons of other messages that share a key (same kind, same digest) with a person of
  /// `message_id`: one row per (pointer, kind, other message, other pointer), ordered by pointer,
  /// then the other message's acceptance (oldest first: its accepted_at, then its id, since the
  /// messages of one group commit share their time), then other pointer, then kind, texts
  /// compared byte-wise; at most `limit`. Keys deleted (withdrawn or purged messages) match
  /// nothing, and neither do the keys of a message whose handling expired (expires_at at or
  /// before now), before the next sweep deletes them; such a message itself gets an empty list.
  /// nullopt: no message with that id is stored; a stored message without keys (or whose keys
  /// were deleted) gives an empty list. Runs as a read: it never delays the group commit.
  virtual void find_person_matches(std::string message_id, std::size_t limit,
                                   matches_handler handler) = 0;

  /// Makes the keys of one message anew (`mxgw persons rekey`): from its id and its body as the
  /// store gives it (opened when encryption at rest is on), the keys it should have; nullopt
  /// leaves that message's keys as they are (e.g. a body that does not parse). Runs inside the
  /// store's transaction: keep it quick and free of store calls.
  using person_keyer = std::function<std::optional<std::vector<person_key>>(
      std::string_view message_id, std::string_view body)>;

  struct person_rekey_result {
    std::size_t messages = 0;  ///< messages looked at (in id order, whatever their state)
    std::size_t rekeyed = 0;   ///< of those, whose keys were replaced
    std::size_t keys = 0;      ///< keys written for them
    std::string last_id;       ///< the last message looked at: `after_id` of the next batch
  };
  using person_rekey_handler = std::function<void(person_rekey_result, bool ok)>;

  /// Replaces the person keys of the next `max_messages` messages after `after_id` (in id order;
  /// "" starts at the first) with what `keyer` returns for each, all in one transaction
  /// (group-committed with this store's other writes). Messages whose body is gone (purged),
  /// whose handling expired (even before a sweep emptied them) or that their sender withdrew are
  /// looked at but never shown to the keyer and keep no keys. A failed batch, or a keyer that
  /// throws, changes nothing: handler({}, false). Safe while gateways use the store: a withdrawal
  /// committed at the same time, on this instance or another, leaves the message without keys. Used
  /// to key messages stored before keys were kept and to key every message anew under a new match
  /// key.
  virtual void rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                             person_rekey_handler handler) = 0;

  // ---- four-eyes release (docs/release.md) ----

  using held_handler = std::function<void(std::vector<held_copy>, bool ok)>;
  using release_handler = std::function<void(release_result, bool ok)>;
  using held_copy_handler = std::function<void(std::optional<delivery_job>, bool ok)>;

  /// Copies in the state "held", oldest message first (a message's copies in the order of its
  /// plans), at most `limit`. Runs as a read.
  virtual void list_held(std::size_t limit, held_handler handler) = 0;

  /// What a held copy would deliver, for the administrators who decide on it: a job as a claim
  /// would hand it out (payload opened when encryption at rest is on; attempt 0), without
  /// claiming anything. nullopt: no held copy for that message and recipient. With encryption at
  /// rest, a payload that does not open is not shown: handler(nullopt, false), logged as for a
  /// claim.
  virtual void read_held(std::string message_id, std::string recipient,
                         held_copy_handler handler) = 0;

  /// Records an approval or a rejection of a held copy, in one transaction: an approval by an
  /// actor not yet among its approvals is added, and when they reach `required` the copy becomes
  /// "pending", due now, with released_at set; a rejection makes it "rejected" with its payload
  /// emptied and `reason` as its last error (cut to max_error_bytes; sealed with encryption at
  /// rest). A rejection keeps the approvals given before. Safe across instances sharing the
  /// store: two approvals at once are both counted, and a copy is released once (the later
  /// decision then finds it not held). After a release, on_deliveries_due's callback runs.
  /// handler({}, false) when the store could not commit; nothing changed.
  virtual void decide_release(release_request request, release_handler handler) = 0;

  /// Where the store reads how many approvals a copy held from now on needs (the routing in
  /// force: pipeline::routing_rules::release_approvals), for each held copy an accept stores
  /// without its own delivery_plan::approvals_required; recorded on the row in the accept's
  /// transaction. Called on a store thread while the accept is written: it must not wait for the
  /// store. Without a source (or when it answers 0) such a row records 0, and only the figure in
  /// force at each decision counts. Set before the first accept; setting it again replaces it.
  virtual void approvals_when_held(std::function<std::size_t()> source) = 0;

  using queue_handler = std::function<void(std::vector<queue_stat>, bool ok)>;

  /// Per-recipient delivery counts by state, ordered by recipient.
  virtual void queue_stats(queue_handler handler) = 0;

  /// Dead letters, oldest first, at most `limit`.
  virtual void list_dead(std::size_t limit, dead_handler handler) = 0;

  // ---- audit chain (see gateway/audit/audit.hpp) ----

  using audit_handler = std::function<void(std::vector<audit::audit_row>, bool ok)>;
  using head_handler = std::function<void(std::optional<audit::audit_row>, bool ok)>;
  using checkpoints_handler = std::function<void(std::vector<audit::checkpoint>, bool ok)>;

  /// Appends records to the chain, in order, group-committed with other writes; the handler runs
  /// after the commit is durable. Used for events that change nothing else (refusals, reads by
  /// administrators, feed polls); changes that do carry their records with the change.
  virtual void append_audit(std::vector<audit::audit_record> records, report_handler handler) = 0;

  /// Entries with seq > after_seq, in seq order, at most `limit`.
  virtual void read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) = 0;

  /// The last entry (nullopt when the chain is empty).
  virtual void audit_head(head_handler handler) = 0;

  /// Stores a signed checkpoint (one per seq; a second for the same seq is refused: ok=false).
  virtual void add_checkpoint(audit::checkpoint checkpoint, report_handler handler) = 0;

  /// All checkpoints in seq order.
  virtual void read_checkpoints(checkpoints_handler handler) = 0;

  // ---- administrative state ----

  using put_handler = std::function<void(put_outcome, std::int64_t version)>;
  using puts_handler = std::function<void(put_outcome, std::vector<std::int64_t> versions)>;
  using state_handler = std::function<void(std::vector<state_item>, bool ok)>;

  /// Creates, replaces or (empty value) deletes several items in one transaction, with all of
  /// the audit records: all of them are stored or none is. Each put applies only if, when its
  /// expected_version is set, the item's current version equals it (0: the item must not exist or
  /// be deleted); one that does not match stores nothing at all (conflict). The (kind, key) pairs
  /// must differ (a call naming one twice stores nothing: failed); no puts: failed.
  /// item.version/changed_at are assigned by the store. The handler gets, one per put in order:
  /// applied, the versions assigned (increasing); conflict, each item's current version (0 when
  /// it does not exist); failed, nothing. Called exactly once, as accept()'s handler is.
  virtual void put_states(std::vector<state_put> puts, std::vector<audit::audit_record> audit,
                          puts_handler handler) = 0;

  /// Creates, replaces or (empty value) deletes item (kind, key): put_states with one put. When
  /// expected_version is set, the put applies only if the item's current version equals it (0: the
  /// item must not exist or be deleted); on conflict the handler gets the current version.
  /// The audit records are appended in the same transaction. item.version/changed_at are
  /// assigned by the store.
  void put_state(state_item item, std::optional<std::int64_t> expected_version,
                 std::vector<audit::audit_record> audit, put_handler handler) {
    std::vector<state_put> puts;
    puts.push_back({std::move(item), expected_version});
    put_states(
        std::move(puts), std::move(audit),
        [handler = std::move(handler)](put_outcome outcome, std::vector<std::int64_t> versions) {
          handler(outcome, versions.empty() ? std::int64_t{0} : versions.front());
        });
  }

  /// Items (latest version of each, deleted ones included with empty value) with
  /// version > after_version, in version order; kind empty: every kind.
  virtual void list_state(std::string kind, std::int64_t after_version, state_handler handler) = 0;

  /// Called (on a store thread) after a commit that created due deliveries, so workers can wake
  /// up instead of polling. Set once, before use.
  virtual void on_deliveries_due(std::function<void()> callback) = 0;

  /// True until the store hit a fatal error (failed fsync or I/O error: fail-stop, never retried).
  virtual bool healthy() const = 0;

  /// Finishes queued work and closes; later calls answer `unavailable`. Idempotent.
  virtual void stop() = 0;
};

struct sqlite_options {
  std::filesystem::path path;        ///< database file; parent directory created if missing
  std::size_t max_batch = 512;       ///< most records in one group commit
  std::uint64_t max_size_bytes = 0;  ///< cap on the database size (0: no cap); past it: disk-full
  int busy_timeout_ms = 5000;
  /// Pages in the write-ahead log after which a background thread copies it back into the
  /// database file (a passive checkpoint, off the commit path; SQLite's own automatic checkpoint,
  /// which the committing thread runs, is off). At least 1.
  std::uint32_t checkpoint_pages = 4096;
  /// The bound on the write-ahead log, in pages. Under sustained load a passive checkpoint never
  /// reaches the log's moving end, and the log starts over only once it has been copied whole, so
  /// without a bound it would grow as long as the load lasts. Past this bound, as soon as no
  /// checkpoint is running (and at twice the bound in any case), the writer takes no new batch
  /// until a checkpoint has copied the whole log back; the next commit then writes the log from
  /// its beginning. At least checkpoint_pages.
  std::uint32_t wal_limit_pages = 65536;
  /// PRAGMA secure_delete on the writer: bytes freed by an update or delete are overwritten with
  /// zeros instead of staying in free space: purged bodies (retention, withdrawals) and values
  /// re-sealed by `mxgw keys rekey` do not survive in the file, whatever SQLite's build default.
  bool secure_delete = true;
  /// The time source for accepted_at, due times, leases and delivered_at/dead_since; empty: the
  /// system clock. Tests inject one to expire leases and make retries due without sleeping.
  std::function<std::chrono::system_clock::time_point()> clock;
};

/// Opens (creating or migrating) the SQLite store in WAL mode with synchronous=FULL, so every
/// `stored` outcome survives power loss. Throws store_error when the file cannot be opened or
/// carries a newer schema version than this build knows.
std::unique_ptr<message_store> open_sqlite_store(const sqlite_options& options);

}  // namespace mxgw::store
