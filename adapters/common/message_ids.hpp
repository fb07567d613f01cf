// The canonical ids the gateway gives messages that come in without one (every partner format
// but `mx`, and the notices of feeds): derived from the sender and the partner's own reference, so
// that a partner's resend is the same message, and keyed with a gateway secret, so that nobody
// without it can tell the id another partner's next message will get (docs/security.md).
#pragma once

#include <string>
#include <string_view>

#include "gateway/common/keyed_mac.hpp"

namespace mxgw::adapters {

/// The id of the message `sender` names `reference`. With `key` (config `message_ids.key`): the
/// first 16 bytes of HMAC-SHA-256(key, "mxgw-message-id" 0 sender 0 reference) as an RFC 9562
/// version 8 UUID. Without: message_uuid(sender, reference), a version 5 UUID in a namespace
/// anyone can read in this source, which another partner can compute ahead of the message and
/// take first (the message then gets 409), or probe for with ids of its own (a 409 says the
/// message exists). Every instance of one exchange must have the same key: the same message sent
/// to two instances must get one id.
std::string derived_message_id(const mac_key* key, std::string_view sender,
                               std::string_view reference);

/// 16 bytes as an 8-4-4-4-12 lower-case hex UUID (the bytes' version and variant as they are).
std::string uuid_text(const unsigned char* bytes);

}  // namespace mxgw::adapters
