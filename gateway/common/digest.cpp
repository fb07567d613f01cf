// Hex and SHA-256 (OpenSSL EVP).
#include "gateway/common/digest.hpp"

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

namespace mxgw {

std::string lower_hex(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0x0f];
  }
  return out;
}

unsigned int digest(hash_algorithm algorithm, std::string_view data, unsigned char* out) {
  // Fetched once for the process (never freed: they live as long as the library).
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct free_context {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local const std::unique_ptr<EVP_MD_CTX, free_context> context(EVP_MD_CTX_new());
  const EVP_MD* md = algorithm == hash_algorithm::sha1 ? sha1 : sha256;
  unsigned int length = 0;
  if (md == nullptr || !context ||
      EVP_DigestInit_ex2(context.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), out, &length) != 1) {
    throw std::runtime_error("OpenSSL cannot compute a digest");
  }
  return length;
}

std::string sha256_hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  const unsigned int length = digest(hash_algorithm::sha256, data, out);
  return lower_hex(out, length);
}

}  // namespace mxgw
