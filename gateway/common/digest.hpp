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

enum class hash_algorithm { sha1, sha256 };

/// The digest of `data` into `out` (room for EVP_MAX_MD_SIZE, 64 bytes); returns its length (20
/// or 32). The algorithm is fetched from OpenSSL's provider once and each thread reuses one
/// context: a one-shot EVP_Digest fetches and allocates on every call, which costs more than
/// hashing a short message id. Throws std::runtime_error if OpenSSL fails.
unsigned int digest(hash_algorithm algorithm, std::string_view data, unsigned char* out);

}  // namespace mxgw
