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
};

/// Compact JSON of a record (the form persisted as state kind "certificate").
std::string to_json(const certificate_record& record);
/// Reads to_json()'s form; nullopt (and `error` set) when it is not one.
std::optional<certificate_record> certificate_from_json(std::string_view text, std::string& error);

/// One immutable snapshot. Build a copy, change it, then publish it with trust_store::replace.
struct trust_state {
  partner_registry partners;
  std::map<std::string, certificate_record, std::less<>> certificates;  ///< by fingerprint

  /// The certificate's own state first (a revoked certificate, or a retiring one once `now` has
  /// reached retiring_until, is refused), then the partner registry's rule. A recorded
  /// certificate also pins its partner: without a partner SAN it maps to the record's partner;
  /// with a SAN naming another partner it is ambiguous. Admin certificates are refused.
  identity_decision identify(const certificate_facts& facts,
                             std::chrono::system_clock::time_point now) const;

  /// For an open connection established earlier: is partner `partner_id` still enabled and the
  /// certificate with `fingerprint` neither revoked nor past its retirement?
  bool still_trusted(std::string_view partner_id, std::string_view fingerprint,
                     std::chrono::system_clock::time_point now) const;
};

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
