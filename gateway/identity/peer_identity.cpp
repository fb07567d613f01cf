// Certificate facts for identity decisions.
#include "gateway/identity/peer_identity.hpp"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <memory>

#include "gateway/common/digest.hpp"

namespace mxgw::identity {

std::optional<std::chrono::system_clock::time_point> time_of(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return std::nullopt;
  }
  // The clock's range ends in 2262 (nanoseconds in 64 bits); an ASN.1 time goes to 9999, and a
  // CA may date a CRL's nextUpdate far ahead. Past the range is "never", not an overflow.
  using std::chrono::system_clock;
  const std::time_t seconds = timegm(&tm);
  constexpr auto last = std::chrono::duration_cast<std::chrono::seconds>(
                            system_clock::time_point::max().time_since_epoch())
                            .count();
  constexpr auto first = std::chrono::duration_cast<std::chrono::seconds>(
                             system_clock::time_point::min().time_since_epoch())
                             .count();
  if (seconds >= last) {
    return system_clock::time_point::max();
  }
  if (seconds <= first) {
    return system_clock::time_point::min();
  }
  return system_clock::from_time_t(seconds);
}

certificate_facts facts_of(X509* cert) {
  certificate_facts facts;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &length) == 1) {
    facts.sha256_fingerprint = lower_hex(digest, length);
  }
  facts.not_before = time_of(X509_get0_notBefore(cert));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      facts.serial_hex = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  using names_ptr = std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)>;
  names_ptr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)),
      &GENERAL_NAMES_free);
  if (!names) {
    return facts;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) {
      continue;
    }
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                          static_cast<std::size_t>(ASN1_STRING_length(uri)));
    if (text.starts_with(partner_uri_prefix)) {
      facts.partner_uris.emplace_back(text.substr(partner_uri_prefix.size()));
    } else if (text.starts_with(admin_uri_prefix)) {
      facts.admin_uris.emplace_back(text.substr(admin_uri_prefix.size()));
    }
  }
  return facts;
}

std::optional<validity_period> validity_of(X509* cert) {
  const auto from = time_of(X509_get0_notBefore(cert));
  const auto until = time_of(X509_get0_notAfter(cert));
  if (!from || !until) {
    return std::nullopt;
  }
  return validity_period{*from, *until};
}

bool is_valid_admin_name(std::string_view name) {
  if (name.empty() || name.size() > 63) {
    return false;
  }
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  };
  return std::isalnum(static_cast<unsigned char>(name.front())) != 0 &&
         std::all_of(name.begin(), name.end(), ok);
}

std::string_view admin_refusal(const certificate_facts& facts, std::string& name) {
  if (!facts.partner_uris.empty()) {
    return "partner-certificate";
  }
  if (facts.admin_uris.empty()) {
    return "no-admin-identity";
  }
  if (facts.admin_uris.size() > 1) {
    return "ambiguous-identity";
  }
  if (!is_valid_admin_name(facts.admin_uris.front())) {
    return "invalid-admin-name";
  }
  name = facts.admin_uris.front();
  return {};
}

}  // namespace mxgw::identity
