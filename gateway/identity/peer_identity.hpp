// Reads the facts the identity rule needs (partner SAN URIs, fingerprint) from an X509 certificate.
#pragma once

#include <openssl/types.h>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::identity {

inline constexpr std::string_view partner_uri_prefix = "urn:mxgw:partner:";

/// Partner ids from SAN URIs with the prefix above, and the SHA-256 fingerprint of the DER
/// certificate. A SAN URI with the prefix but an invalid id is returned as-is (and then matches no
/// partner). `cert` must not be null.
certificate_facts facts_of(X509* cert);

}  // namespace mxgw::identity
