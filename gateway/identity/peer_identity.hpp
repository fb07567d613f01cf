// Reads the facts the identity rule needs (partner SAN URIs, fingerprint) from an X509 certificate.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <optional>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::identity {

inline constexpr std::string_view partner_uri_prefix = "urn:mxgw:partner:";
inline constexpr std::string_view admin_uri_prefix = "urn:mxgw:admin:";

/// Partner ids and admin names from SAN URIs with the prefixes above, the serial, notBefore and
/// the SHA-256 fingerprint of the DER certificate. A SAN URI with a prefix but an invalid id is
/// returned as-is (and then matches no one). `cert` must not be null.
certificate_facts facts_of(X509* cert);

/// When a certificate may be used: from `not_before` to `not_after`, both included (RFC 5280).
struct validity_period {
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

/// The validity period of `cert` (its notBefore and notAfter), or nullopt when either time cannot
/// be read. `cert` must not be null.
std::optional<validity_period> validity_of(X509* cert);

/// An X.509 time (a certificate's or a CRL's; whole seconds, UTC), or nullopt when `t` is null or
/// cannot be read. A time past the clock's range (after 2262) is time_point::max(), one before it
/// time_point::min().
std::optional<std::chrono::system_clock::time_point> time_of(const ASN1_TIME* t);

/// True when `name` is a valid administrator name: ^[a-z0-9][a-z0-9._-]{0,62}$.
bool is_valid_admin_name(std::string_view name);

/// Why a verified certificate is not an administrator's ("no-admin-identity",
/// "ambiguous-identity", "partner-certificate", "invalid-admin-name"), or empty when it names
/// exactly one valid administrator (then `name` is set).
std::string_view admin_refusal(const certificate_facts& facts, std::string& name);

}  // namespace mxgw::identity
