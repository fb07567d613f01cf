// Encryption at rest: message bodies and delivery payloads are sealed with AES-256-GCM before the
// store sees them (any store: SQLite or PostgreSQL), under a key ring that allows rotation.
#pragma once

#include <array>
#include <filesystem>
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

/// Writes a new random key as 64 hex digits to `file` with mode 0600 (refuses to overwrite).
void generate_key_file(const std::filesystem::path& file);

/// Wraps a store so bodies and payloads are sealed on the way in and payloads opened on the way
/// out (claim_due). A claimed payload that does not open (missing key, altered row) is not handed
/// to the worker: it is reported back as a retry in five minutes with error "key-unavailable" or
/// "payload-corrupt", and logged (metadata only).
std::shared_ptr<message_store> encrypt_at_rest(std::shared_ptr<message_store> inner,
                                               std::shared_ptr<const key_ring> ring);

}  // namespace mxgw::store
