// Derived canonical message ids (see message_ids.hpp).
#include "adapters/common/message_ids.hpp"

#include <cstddef>

#include "adapters/common/dates.hpp"

namespace mxgw::adapters {

std::string uuid_text(const unsigned char* bytes) {
  // Written in place (lower_hex and four inserts measurably cost more: this runs for every
  // partner message).
  static constexpr char digits[] = "0123456789abcdef";
  std::string uuid;
  uuid.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      uuid += '-';
    }
    uuid += digits[bytes[i] >> 4];
    uuid += digits[bytes[i] & 0x0F];
  }
  return uuid;
}

std::string derived_message_id(const mac_key* key, std::string_view sender,
                               std::string_view reference) {
  if (key == nullptr) {
    return message_uuid(sender, reference);
  }
  unsigned char mac[32];
  hmac_sha256(*key, {"mxgw-message-id", sender, reference}, mac);
  mac[6] = static_cast<unsigned char>((mac[6] & 0x0F) | 0x80);  // version 8 (RFC 9562)
  mac[8] = static_cast<unsigned char>((mac[8] & 0x3F) | 0x80);  // RFC 4122/9562 variant
  return uuid_text(mac);
}

}  // namespace mxgw::adapters
