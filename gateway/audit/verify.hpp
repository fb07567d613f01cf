// Verification of the audit chain: every entry's hash, its link to the previous entry, the
// continuity of sequence numbers, the query columns against the hashed bytes, and the signed
// checkpoints. Streaming: rows are fed a page at a time, so memory does not grow with the chain.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/audit/audit.hpp"

namespace mxgw::store {
class message_store;
}

namespace mxgw::audit {

/// What verification found. When `intact` is false, `problem` and `seq` name the FIRST bad
/// entry or checkpoint (in sequence order) and `message` says what is wrong in one sentence,
/// e.g. "entry 17 was altered: its bytes no longer match its hash".
struct verify_report {
  bool intact = false;
  std::int64_t entries = 0;          ///< rows read
  std::int64_t head_seq = 0;         ///< the last entry read (0: empty chain)
  std::string head_hash;             ///< its hash (genesis for an empty chain)
  std::int64_t checkpoints = 0;      ///< checkpoints whose signature and hash were verified
  std::int64_t last_checkpoint = 0;  ///< seq of the last verified checkpoint (0: none)
  std::int64_t anchors = 0;          ///< external anchors that matched their entry
  std::int64_t last_anchor = 0;      ///< seq of the last of them (0: none)

  /// "altered", "missing", "out-of-order", "checkpoint-mismatch", "checkpoint-signature",
  /// "checkpoint-signer", "truncated", "anchor-mismatch", "checkpoint-missing" or "unreadable"
  /// (the store could not be read); empty when intact.
  std::string problem;
  std::int64_t seq = 0;  ///< the entry (or checkpoint) concerned
  std::string message;   ///< the finding as a sentence
};

/// The certificates whose keys may have signed checkpoints, by lower-case hex SHA-256 of their
/// DER (the checkpoint's `signer`). Pass every certificate the gateway has used (renewals).
class signer_keys {
 public:
  signer_keys();
  ~signer_keys();
  signer_keys(signer_keys&&) noexcept;
  signer_keys& operator=(signer_keys&&) noexcept;

  /// Adds the first certificate of `pem`; returns its fingerprint. Throws std::runtime_error when
  /// the text holds no certificate.
  std::string add_pem(const std::string& pem);

  bool knows(const std::string& fingerprint) const;

  /// True when `signature_b64` is a valid signature of `data` by the key of certificate
  /// `fingerprint` (ECDSA/RSA with SHA-256, or Ed25519). False for unknown signers, bad base64
  /// and bad signatures.
  bool verify(const std::string& fingerprint, const std::string& data,
              const std::string& signature_b64) const;

  std::size_t size() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A point of the chain known from outside the store: entry `seq` had hash `hash`. Someone with
/// write access to the store can delete its tail together with the checkpoints beyond it, or
/// re-hash the chain after its last checkpoint and delete that checkpoint; the chain then
/// verifies on its own. What was logged or printed elsewhere cannot be changed with it.
struct external_anchor {
  std::int64_t seq = 0;
  std::string hash;         ///< lower-case hex SHA-256
  bool checkpoint = false;  ///< logged as a checkpoint: the store must still hold one at `seq`
  std::string source;       ///< where it was read ("FILE:LINE"), for the report
};

/// Reads anchors from `text` (named `name` in sources and errors), line by line:
/// - a JSON log line of event `audit.checkpoint` (`"detail": "seq N hash H signer S"`): a
///   checkpoint anchor; other JSON lines (the rest of a gateway's log) are skipped;
/// - the summary `mxgw audit verify` printed (`audit log intact: E entries, head N H`; its other
///   lines are skipped);
/// - `N H` alone;
/// blank lines are skipped. Any other line, or one of these forms with a seq that is not a
/// positive number or a hash that is not 64 lower-case hex digits, is an error: `error` is set
/// to "NAME:LINE: what is wrong" and the result is empty.
std::vector<external_anchor> read_anchors(std::string_view text, const std::string& name,
                                          std::string& error);

/// Parses the canonical bytes of one entry back into its members (nullopt when `entry` is not a
/// well-formed entry in canonical form: re-serialising the members must give the same bytes).
struct parsed_entry {
  std::int64_t seq = 0;
  std::string at;
  audit_record record;
  std::string prev;
};
std::optional<parsed_entry> parse_entry(const std::string& entry);

/// Checks a chain fed in seq order (as read_audit returns it). Usage: construct with the
/// checkpoints and keys, add() each page's rows until it returns false (a problem was found, no
/// need to read more) or the chain ends, then finish().
class chain_verifier {
 public:
  /// `checkpoints` in any order. `keys` must outlive the verifier.
  chain_verifier(std::vector<checkpoint> checkpoints, const signer_keys& keys);

  /// Starts after entry `seq` whose hash is `hash` (already verified), instead of at genesis. Used
  /// by the checkpointer, which only re-reads entries after its last checkpoint. Checkpoints at or
  /// before `seq` are then ignored.
  void resume_after(std::int64_t seq, std::string hash);

  /// Entries the chain must have as they were known outside the store: each anchor's entry must
  /// have its hash ("anchor-mismatch" otherwise), a checkpoint anchor's checkpoint must still be
  /// in the store ("checkpoint-missing"), and an anchor beyond the last entry means the tail was
  /// cut ("truncated").
  void expect(std::vector<external_anchor> anchors);

  /// Checks one more row. Returns false once a problem is known (further rows are ignored).
  bool add(const audit_row& row);

  /// Judges what is still pending (a gap seen at the last row, checkpoints beyond the end) and
  /// returns the report.
  verify_report finish();

 private:
  bool fail(std::string problem, std::int64_t seq, std::string message);
  bool check_row(const audit_row& row, const parsed_entry& entry);
  bool check_checkpoint(const checkpoint& c, const audit_row* row);
  bool judge_gap(const parsed_entry* next);

  bool check_anchors(const audit_row& row);

  std::map<std::int64_t, checkpoint> checkpoints_;
  std::multimap<std::int64_t, external_anchor> anchors_;
  const signer_keys& keys_;
  verify_report report_;
  std::int64_t seq_ = 0;      // the last good entry
  std::int64_t anchor_ = 0;   // where checking started (0, or resume_after's entry)
  std::string hash_;          // its hash
  std::int64_t matched_ = 0;  // the last checkpoint that matched its entry
  bool gap_ = false;          // the last row skipped ahead; judged at the next row
  std::int64_t gap_seq_ = 0;  // that row's entry seq
  bool failed_ = false;
};

/// Reads the whole chain and every checkpoint from `store` (pages of `page_size` rows) and
/// verifies them, with `anchors` (chain_verifier::expect). The store's handlers are waited for on
/// the calling thread.
verify_report verify_store(store::message_store& store, const signer_keys& keys,
                           std::size_t page_size = 1000, std::vector<external_anchor> anchors = {});

}  // namespace mxgw::audit
