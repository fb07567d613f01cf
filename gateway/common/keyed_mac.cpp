// HMAC-SHA-256 under a gateway secret (see keyed_mac.hpp).
#include "gateway/common/keyed_mac.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

namespace mxgw {
namespace {

class keyed_context {
 public:
  explicit keyed_context(const mac_key& key) : key_(key) {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_END};
    if (ctx_ == nullptr || EVP_MAC_init(ctx_, key_.data(), key_.size(), params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      throw std::runtime_error("HMAC-SHA-256 cannot be set up");
    }
  }
  ~keyed_context() { EVP_MAC_CTX_free(ctx_); }
  keyed_context(const keyed_context&) = delete;
  keyed_context& operator=(const keyed_context&) = delete;

  const mac_key& key() const { return key_; }

  void of(std::initializer_list<std::string_view> parts, unsigned char (&out)[32]) {
    const unsigned char zero = 0;
    std::size_t size = 0;
    // A null key restarts the MAC with the key set at construction.
    bool ok = EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1;
    bool first = true;
    for (const auto part : parts) {
      ok = ok && (first || EVP_MAC_update(ctx_, &zero, 1) == 1) &&
           EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(part.data()), part.size()) ==
               1;
      first = false;
    }
    if (!ok || EVP_MAC_final(ctx_, out, &size, sizeof out) != 1 || size != sizeof out) {
      throw std::runtime_error("HMAC-SHA-256 failed");
    }
  }

 private:
  mac_key key_;
  EVP_MAC_CTX* ctx_ = nullptr;
};

// A gateway has a few secrets at most (the match key, the message id key); a test may make more.
constexpr std::size_t kept_contexts = 4;

}  // namespace

void hmac_sha256(const mac_key& key, std::initializer_list<std::string_view> parts,
                 unsigned char (&out)[32]) {
  thread_local std::vector<std::unique_ptr<keyed_context>> contexts;
  auto it = std::find_if(contexts.begin(), contexts.end(),
                         [&key](const auto& c) { return c->key() == key; });
  if (it == contexts.end()) {
    if (contexts.size() == kept_contexts) {
      contexts.erase(contexts.begin());
    }
    contexts.push_back(std::make_unique<keyed_context>(key));
    it = std::prev(contexts.end());
  }
  (*it)->of(parts, out);
}

}  // namespace mxgw
