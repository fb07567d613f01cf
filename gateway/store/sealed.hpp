// Encryption at rest: message bodies and delivery payloads are sealed with AES-256-GCM before the
// store sees them (any store: SQLite or PostgreSQL), under a key ring that allows rotation.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/store/message_store.hpp"

namespace mxgw::store {

/// One data key: 32 bytes for AES-256-GCM, known by an id that is written into every record it
/// seals (so old records stay readable after the active key changes).
struct data_key {
  std::string id;  ///< 1..64 of [A-Za-z0-9._-]
  std::array<unsigned char, 32> bytes{};
};

/// Where a key comes from: a file (64 hex digits, mode 0600 or stricter) or an environment
/// variable (64 hex digits).
struct key_source {
  std::string id;
  std::filesystem::path file;
  std::string env;
};

struct key_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The keys a gateway can read with, and the one it writes with.
class key_ring {
 public:
  /// Loads every source; throws key_error naming the key id and what is wrong (never the key).
  static key_ring load(const std::vector<key_source>& sources, const std::string& active);

  key_ring() = default;
  void add(data_key key);  ///< throws key_error on a bad or repeated id
  void set_active(const std::string& id);

  const data_key& active() const;
  const data_key* find(std::string_view id) const;
  bool empty() const { return keys_.empty(); }

 private:
  std::map<std::string, data_key, std::less<>> keys_;
  std::string active_;
};

/// The associated data binding a sealed value to its place: the message id and what it is
/// ("body", or "to:<recipient>" for a recipient's payload). A sealed value moved to another row
/// does not open.
std::string seal_context(std::string_view message_id, std::string_view purpose);

/// The purpose a stored value is sealed for (the second half of its seal_context): "body",
/// "to:<recipient>" (a payload or grant), "receipt:<recipient>", "error:<recipient>".
std::string seal_purpose(value_field field, std::string_view recipient);

/// Seals `plain` under the ring's active key with a fresh random 96-bit nonce:
/// "MXE1" | id length (1 byte) | id | nonce (12) | ciphertext | tag (16).
std::string seal(const key_ring& ring, std::string_view plain, std::string_view context);

/// True when `bytes` carries the sealed format's magic (a record written before encryption was
/// turned on does not: canonical JSON starts with '{', XML with '<').
bool is_sealed(std::string_view bytes);

/// Opens a sealed value; nullopt (never an exception) when the key is unknown, the bytes were
/// altered or belong to another context. `why` gets a short reason code.
std::optional<std::string> open_sealed(const key_ring& ring, std::string_view sealed,
                                       std::string_view context, std::string* why = nullptr);

/// The most bytes the sealed form of `plain_size` bytes takes (with the longest key id).
constexpr std::size_t max_sealed_size(std::size_t plain_size) {
  return 4 + 1 + 64 + 12 + plain_size + 16;
}

/// At most max_bytes of `text`, cut before a UTF-8 character rather than through it (invalid
/// UTF-8 is cut where the limit falls).
std::string_view cut_utf8(std::string_view text, std::size_t max_bytes);

/// What a store keeps of a receipt or error text limited to max_bytes: a sealed value whole when
/// the sealed form of max_bytes could be that long (the decorator cut it before sealing; cutting
/// the sealed bytes would only break them), anything else cut as cut_utf8 does.
std::string_view bounded_text(std::string_view text, std::size_t max_bytes);

/// Writes a new random key as 64 hex digits to `file` with mode 0600 (refuses to overwrite).
void generate_key_file(const std::filesystem::path& file);

/// What `rekey_store` did, counted per value (a message body, or one recipient's payload, receipt
/// or error text). Counts only: a value that could not be re-sealed is never named by its content.
struct rekey_counts {
  std::size_t resealed = 0;           ///< opened with an older key, sealed under the active one
  std::size_t sealed_from_clear = 0;  ///< stored before encryption was on; sealed now
  std::size_t already_current = 0;    ///< sealed under the active key already: left untouched
  std::size_t key_missing = 0;        ///< sealed under a key the ring lacks: left as it is
  std::size_t corrupt = 0;   ///< does not open with its key (altered, moved): left as it is
  std::size_t messages = 0;  ///< messages looked at
  std::size_t batches = 0;   ///< batches committed
  bool complete = false;     ///< every message was looked at
  bool failed = false;       ///< a batch failed (rolled back); the earlier ones stay committed
};

struct rekey_options {
  std::size_t batch_messages = 100;  ///< messages (with their payloads) per transaction
  /// Asked before each batch; true stops (complete stays false). E.g. SIGINT/SIGTERM seen.
  std::function<bool()> interrupted;
  /// Called after each committed batch with the counts so far.
  std::function<void(const rekey_counts&)> progress;
};

/// Re-seals under the ring's active key every stored value of `store` (the store underneath
/// the encrypt_at_rest decorator, or the decorator itself) that is not sealed under it: sealed
/// under an older key, or stored in clear before encryption was turned on. Batch after batch of
/// `batch_messages` messages in id order, each in one transaction, so it can be interrupted at
/// any point and run again: what is current is skipped (not even opened). The associated data
/// stays the same (message id and seal_purpose). Values whose key is missing, or that
/// do not open, are left exactly as they are and counted. Safe while gateways use the store: only
/// the bytes of those columns change. Synchronous; must not run on a store thread.
rekey_counts rekey_store(message_store& store, const key_ring& ring,
                         const rekey_options& options = {});

/// Wraps a store so bodies and payloads are sealed on the way in and payloads opened on the way
/// out (claim_due). A claimed payload that does not open (missing key, altered row) is not handed
/// to the worker: it is reported back as a retry in five minutes with error "key-unavailable" or
/// "payload-corrupt" (kept in clear: a code of the gateway's own), and logged (metadata only).
/// Receipts and error texts (a partner's answer, which may quote the message) are cut to
/// max_receipt_bytes / max_error_bytes and sealed on the way in (report; and discard, whose
/// reason code shares the error's column), and opened on the way out (find, list_dead); one that
/// does not open reads as unreadable_text(reason).
std::shared_ptr<message_store> encrypt_at_rest(std::shared_ptr<message_store> inner,
                                               std::shared_ptr<const key_ring> ring);

/// What the decorator shows in place of a receipt or error text that does not open, e.g.
/// "[sealed; does not open: key-unavailable]".
std::string unreadable_text(std::string_view why);

}  // namespace mxgw::store
