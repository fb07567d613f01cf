// The partner listener's TLS profile: TLS 1.3 (1.2 with ECDHE+AEAD only when configured), mutual
// authentication, CRL checks, clientAuth usage and the certificate-to-partner rule in the
// handshake.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "gateway/config/gateway_config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace mxgw::net {

/// Decides on a client certificate that passed every X.509 check: an empty string accepts it,
/// anything else is the refusal reason code.
using certificate_judge = std::function<std::string(X509*)>;
/// Told the reason code of every certificate refused in the handshake (may be empty).
using refusal_sink = std::function<void(std::string_view reason)>;

/// Builds the server context. The handshake is refused unless the client certificate chains to a
/// configured trust anchor (`tls.partner_cas`: the listener's anchors), is within its validity
/// period, is not on a configured CRL, carries the clientAuth extended key usage, and `judge`
/// accepts it (the partner listener: exactly one enabled partner in the live trust state).
/// `session_context` names the listener. Throws std::runtime_error naming the file when a
/// certificate, key or CRL cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_server_context(const config::tls_settings& tls,
                                                               certificate_judge judge,
                                                               refusal_sink on_refusal = {},
                                                               std::string session_context =
                                                                   "mxgw-partner");

/// A short reason code for an X.509 verification error ("certificate-expired", ...).
std::string_view verify_error_code(int x509_error);

}  // namespace mxgw::net
