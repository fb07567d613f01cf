// HMAC-SHA-256 under a gateway secret: the persons' digests (pipeline/persons) and the message ids
// the gateway derives from partners' references (adapters/common/message_ids).
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <string_view>

namespace mxgw {

/// A 32-byte secret, as a data key (64 hex digits in a file of mode 0600 or stricter).
using mac_key = std::array<unsigned char, 32>;

/// HMAC-SHA-256 under `key` of `parts` with one zero byte between each two (so that no two lists
/// of parts without zero bytes in them give the same input), into `out`. OpenSSL's MAC is fetched
/// once and each thread keeps a context per key, set to the key once: a one-shot HMAC() fetches
/// the algorithms and allocates on every call, which costs more than the MAC of a short name.
/// Throws std::runtime_error if OpenSSL fails.
void hmac_sha256(const mac_key& key, std::initializer_list<std::string_view> parts,
                 unsigned char (&out)[32]);

}  // namespace mxgw
