// The audit trail: what happened, who did it, to which partner and message, as metadata only.
// Entries form one hash chain (each holds the SHA-256 of the previous one) kept by the store in
// the same database (and, for accepts and delivery outcomes, in the same transaction) as the
// change they record; signed checkpoints vouch for the chain head.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxgw::audit {

/// One event to record. Metadata only: ids, codes, states, counts, fingerprints, reasons.
/// Never names, dates of birth, document numbers, free text or any other message content.
struct audit_record {
  std::string event;       ///< dotted code, e.g. "message.accepted", "delivery.dead", "cert.revoked"
  std::string actor;       ///< "partner:<id>", "admin:<name>", "gateway:<instance>", "cli:<user>"
  std::string partner;     ///< the partner concerned (sender, recipient, enrolled), or empty
  std::string message_id;  ///< the canonical message id concerned, or empty
  std::vector<std::pair<std::string, std::string>> details;  ///< in the order given
};

/// One stored entry of the chain. `entry` holds the exact bytes the hash covers (see
/// entry_bytes); the other members are copies kept as columns for queries.
struct audit_row {
  std::int64_t seq = 0;  ///< 1, 2, 3, ... without gaps
  std::string at;        ///< RFC 3339 UTC with milliseconds, the store's commit time
  std::string event;
  std::string actor;
  std::string partner;
  std::string message_id;
  std::string entry;  ///< canonical JSON bytes (entry_bytes)
  std::string hash;   ///< lower-case hex SHA-256 of `entry`
};

/// A signed statement that the chain up to `seq` ended in `hash`.
struct checkpoint {
  std::int64_t seq = 0;
  std::string hash;       ///< the hash of entry `seq`
  std::string at;         ///< when it was signed (RFC 3339 UTC)
  std::string signer;     ///< lower-case hex SHA-256 of the signing certificate (DER)
  std::string signature;  ///< base64 signature over checkpoint_bytes
};

/// The previous hash of entry 1: 64 zeros.
std::string_view genesis_hash();

/// The canonical bytes of entry `seq`: a compact JSON object with members in this order:
/// {"seq":N,"at":"...","event":"...","actor":"...","partner":"...","message":"...",
///  "details":{...in the record's order...},"prev":"<hex>"}. The same on every store.
std::string entry_bytes(std::int64_t seq, std::string_view at, const audit_record& record,
                        std::string_view prev_hash);

/// Builds the row for `record` as entry `seq` after `prev_hash` (the store calls this inside the
/// transaction that appends it).
audit_row make_row(std::int64_t seq, std::string_view at, const audit_record& record,
                   std::string_view prev_hash);

/// The bytes a checkpoint signature covers: "mxgw-audit-checkpoint/1\n<seq>\n<hash>\n<at>\n".
std::string checkpoint_bytes(std::int64_t seq, std::string_view hash, std::string_view at);

}  // namespace mxgw::audit
