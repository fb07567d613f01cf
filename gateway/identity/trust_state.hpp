// The live trust state: partners, the certificates administrators enrolled, registered, rotated
// or revoked, and the identity rule over both, held in one immutable snapshot that is swapped
// atomically. Handshakes read the current snapshot; a change builds a new one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::identity {

enum class certificate_state {
  active,    ///< accepted (within its validity period)
  retiring,  ///< replaced: accepted until `retiring_until`, refused after it
  revoked,   ///< refused from the moment the snapshot holding this state is in force
};

/// "active", "retiring", "revoked".
std::string_view to_string(certificate_state state);
std::optional<certificate_state> certificate_state_from(std::string_view text);

/// What the gateway knows about one partner certificate (metadata only, never a key).
struct certificate_record {
  std::string fingerprint;  ///< lower-case hex SHA-256 of the DER certificate (the key)
  std::string serial_hex;   ///< upper-case hex; empty for a fingerprint registered alone
  std::string partner_id;
  std::string subject;                ///< RFC 2253 form; empty for a fingerprint alone
  std::string not_before, not_after;  ///< RFC 3339 UTC; empty for a fingerprint alone
  certificate_state state = certificate_state::active;
  std::string retiring_until;  ///< RFC 3339 UTC, for `retiring`
  std::string revoked_at;      ///< RFC 3339 UTC, for `revoked`
  std::string reason;          ///< revocation reason code (RFC 5280 names), for `revoked`
  std::string source;          ///< "enrolled" (signed from a CSR), "registered", "pinned"
  std::string replaced_by;     ///< fingerprint of the successor after a rotation
  /// RFC 3339 UTC: when the record was made (empty in records older than this field): a record
  /// made at or after a rotation's cut-off is not cut off by it.
  std::string recorded_at;
};

/// Compact JSON of a record (the form persisted as state kind "certificate").
std::string to_json(const certificate_record& record);
/// Reads to_json()'s form; nullopt (and `error` set) when it is not one.
std::optional<certificate_record> certificate_from_json(std::string_view text, std::string& error);

/// A certificate issued by mxgw's own tooling has a notBefore this far before the moment it was
/// issued (cert_authority backdates for clocks running behind): a certificate counts as issued at
/// or after a cut-off when its notBefore is no earlier than the cut-off (in whole seconds, as
/// notBefore is) minus this.
inline constexpr std::chrono::minutes issue_backdating{5};

/// Every cut-off of one partner still needed (persisted as state kind "cutoff", key the partner
/// id), oldest first.
struct partner_cutoffs {
  std::string partner_id;
  std::vector<rotation_cutoff> cutoffs;
};

/// Compact JSON of a partner's cut-offs (the form persisted as state kind "cutoff").
std::string to_json(const partner_cutoffs& cutoffs);
/// Reads to_json()'s form; nullopt (and `error` set) when it is not one: a valid partner id,
/// each cut-off with two RFC 3339 times, a fingerprint and a list of fingerprints, and optionally
/// (`recordedSince`, absent from items stored before it) a second list of fingerprints.
std::optional<partner_cutoffs> cutoffs_from_json(std::string_view text, std::string& error);

/// `earlier` with a new rotation's cut-off `next` (cut_off_at/until_at set) added, keeping only
/// the cut-offs that can still refuse something `next` does not: those whose overlap ends before
/// next's, and of those already ended at `now`, the latest. next.pinned_before gets every
/// earlier cut-off's pins too, so a pin once cut off stays cut off (record it again to trust it);
/// the cut-offs kept keep their recorded_since, and next's stays as given.
partner_cutoffs with_rotation(const partner_cutoffs& earlier, rotation_cutoff next,
                              std::chrono::system_clock::time_point now);

/// The notBefore of certificates accepted by it, so that an open connection can be judged
/// against a cut-off later (still_trusted only has the fingerprint). Shared by the snapshots
/// copied from one another; thread-safe; bounded (emptied when full: a connection it forgot is
/// closed and its client reconnects).
class issue_times {
 public:
  void remember(const std::string& fingerprint, std::chrono::system_clock::time_point not_before);
  std::optional<std::chrono::system_clock::time_point> find(std::string_view fingerprint) const;

 private:
  static constexpr std::size_t max_entries = 20000;
  mutable std::mutex mutex_;
  std::map<std::string, std::chrono::system_clock::time_point, std::less<>> times_;
};

/// One immutable snapshot. Build a copy, change it, then publish it with trust_store::replace.
struct trust_state {
  partner_registry partners;
  std::map<std::string, certificate_record, std::less<>> certificates;  ///< by fingerprint
  std::map<std::string, partner_cutoffs, std::less<>> cutoffs;          ///< by partner id
  /// (kind, key) of persisted changes this instance could not apply, with the reason code. A
  /// partner with such a change of kind "partner" or "cutoff" is refused (and, for "partner",
  /// disabled) until a change of the same item that can be applied arrives: fail closed.
  std::map<std::pair<std::string, std::string>, std::string> unapplied_changes;
  std::shared_ptr<issue_times> seen_issue_times = std::make_shared<issue_times>();

  /// The certificate's own state first (a revoked certificate, or a retiring one once `now` has
  /// reached retiring_until, is refused), then the partner registry's rule. A recorded
  /// certificate also pins its partner: without a partner SAN it maps to the record's partner;
  /// with a SAN naming another partner it is ambiguous. Admin certificates are refused. Then the
  /// partner's rotation cut-offs (retired_certificate after an overlap, see rotation_cutoff) and
  /// changes of it that could not be applied (disabled_partner).
  identity_decision identify(const certificate_facts& facts,
                             std::chrono::system_clock::time_point now) const;

  /// For an open connection established earlier: is partner `partner_id` still enabled and the
  /// certificate with `fingerprint` neither revoked nor past its retirement (by its record or a
  /// cut-off of the partner)?
  bool still_trusted(std::string_view partner_id, std::string_view fingerprint,
                     std::chrono::system_clock::time_point now) const;

  /// True when a change of partner `partner_id` (kind "partner" or "cutoff") could not be
  /// applied here, so the partner is refused.
  bool held_for_unapplied_change(std::string_view partner_id) const;

 private:
  /// True when a cut-off of `partner_id` whose overlap has ended at `now` refuses the
  /// certificate; `not_before` as known (nullopt: unknown, which refuses unless the fingerprint
  /// alone exempts it).
  bool cut_off(std::string_view partner_id, std::string_view fingerprint,
               std::optional<std::chrono::system_clock::time_point> not_before,
               std::chrono::system_clock::time_point now) const;
};

/// The snapshot a gateway starts from, built from the partners file: its partners, each one's
/// `rotationCutoffs` as its cut-offs (cutoffs) and each `retiringSha256` entry as a retiring
/// certificate record of the partner (source "file", no recordedAt), so that a gateway rebuilt
/// from an export refuses what the exporting one refuses once an overlap ends (and, by each
/// cut-off's recordedSince, accepts what a record made since the cut-off let it accept). The
/// definitions in the snapshot no longer carry those two members: the snapshot holds them,
/// persisted changes apply over them as over any seed, and the export writes them anew from the
/// live state. Precondition: `partners` passed partner_registry::load's checks (times readable).
trust_state seed_trust_state(const partner_registry& partners);

/// Holds the current snapshot; readers never wait for a writer longer than a pointer copy.
class trust_store {
 public:
  using clock_fn = std::function<std::chrono::system_clock::time_point()>;

  /// `clock` decides when a retiring certificate stops working (tests inject one); empty: the
  /// system clock.
  explicit trust_store(std::shared_ptr<const trust_state> initial, clock_fn clock = {});

  std::shared_ptr<const trust_state> current() const;
  /// Puts `next` in force and counts a new version().
  void replace(std::shared_ptr<const trust_state> next);
  /// How many times the snapshot was replaced: a decision taken on an earlier version may be out
  /// of date. Read it before current() to check a decision against the state it was made on.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }
  std::chrono::system_clock::time_point now() const;

  /// identify() on the current snapshot at now().
  identity_decision identify(const certificate_facts& facts) const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const trust_state> state_;
  std::atomic<std::uint64_t> version_{0};
  clock_fn clock_;
};

}  // namespace mxgw::identity
