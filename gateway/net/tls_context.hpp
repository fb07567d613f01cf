// The partner listener's TLS profile: TLS 1.3 (1.2 with ECDHE+AEAD only when configured), mutual
// authentication, CRL checks, clientAuth usage and the certificate-to-partner rule in the
// handshake.
#pragma once

#include <memory>

#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/partner_registry.hpp"

namespace boost::asio::ssl {
class context;
}

namespace mxgw::net {

/// Builds the server context. The handshake is refused unless the client certificate chains to a
/// configured trust anchor, is within its validity period, is not on a configured CRL, carries the
/// clientAuth extended key usage, and maps to exactly one enabled partner in `partners`.
/// Throws std::runtime_error naming the file when a certificate, key or CRL cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_server_context(
    const config::tls_settings& tls, std::shared_ptr<const identity::partner_registry> partners);

}  // namespace mxgw::net
