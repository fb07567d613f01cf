// Hex encoding and SHA-256, shared by fingerprints, body hashes and the certificate tooling.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mxgw {

/// Lower-case hex of `size` bytes.
std::string lower_hex(const unsigned char* data, std::size_t size);

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace mxgw
