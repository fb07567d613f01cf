// Certificate facts for identity decisions.
#include "gateway/identity/peer_identity.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "gateway/common/digest.hpp"

namespace mxgw::identity {

certificate_facts facts_of(X509* cert) {
  certificate_facts facts;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &length) == 1) {
    facts.sha256_fingerprint = lower_hex(digest, length);
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
    }
  }
  return facts;
}

}  // namespace mxgw::identity
