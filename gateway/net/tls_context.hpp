// The partner listener's TLS profile: TLS 1.3 (1.2 with ECDHE+AEAD only when configured), mutual
// authentication, CRL checks, clientAuth usage and the certificate-to-partner rule in the
// handshake.
#pragma once

#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>
#include <openssl/x509.h>

#include "gateway/config/gateway_config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace mxgw::net {

/// Decides on a client certificate that passed every X.509 check: an empty string accepts it,
/// anything else is the refusal reason code.
/// Decides on a client certificate (`leaf`) whose chain ended at the trust anchor `anchor`
/// (null when OpenSSL gave no chain): "" accepts, otherwise the refusal's reason code.
using certificate_judge = std::function<std::string(X509* leaf, X509* anchor)>;
/// Told the reason code of every certificate refused in the handshake (may be empty).
using refusal_sink = std::function<void(std::string_view reason)>;

/// Builds the server context. The handshake is refused unless the client certificate chains to a
/// configured trust anchor (`tls.partner_cas`: the listener's anchors), is within its validity
/// period, is not on a configured CRL, carries the clientAuth extended key usage, and `judge`
/// accepts it (the partner listener: exactly one enabled partner in the live trust state).
/// `session_context` names the listener. Throws std::runtime_error naming the file when a
/// certificate, key or CRL cannot be loaded, or a CRL is not signed by one of the anchors; a
/// CRL past its nextUpdate is loaded and logged (`tls.crl_stale`).
std::shared_ptr<boost::asio::ssl::context> make_server_context(const config::tls_settings& tls,
                                                               certificate_judge judge,
                                                               refusal_sink on_refusal = {},
                                                               std::string session_context =
                                                                   "mxgw-partner");

/// The client-certificate checks of a listener renewed with its CRL files read anew, ready to be
/// put in force (net::server::put_in_force): the trust anchors loaded at start, the new CRLs.
struct verify_store_update {
  std::shared_ptr<X509_STORE> store;
  std::set<std::string> revoked_serials;  ///< every serial the CRLs list (upper-case hex)
  std::size_t crls = 0;
};

/// Reads every CRL in `files` (PEM, one or more a file) for the listener of `ctx` and builds its
/// new verification store. Each CRL must be signed by one of the trust anchors loaded at start: a
/// CRL none of them vouches for is a problem (in force, it would refuse every certificate of its
/// issuer). On any problem (file, reason) the result is empty. A CRL past its nextUpdate is no
/// problem (its issuer's certificates are refused until a newer one comes; it is what the
/// operator gave) but its file is named in `stale`. Safe while the listener serves.
verify_store_update prepare_verify_store(boost::asio::ssl::context& ctx,
                                         const std::vector<std::filesystem::path>& files,
                                         std::vector<config::config_problem>& problems,
                                         std::vector<std::string>& stale);

/// A short reason code for an X.509 verification error ("certificate-expired", ...).
std::string_view verify_error_code(int x509_error);

/// Verifies a client certificate `leaf` again, with the chain the handshake verified (`chain`,
/// leaf first; may be null), against `store` (a listener's anchors and CRLs) at `at`: the chain,
/// every certificate's validity, the CRLs and the client purpose, as in the handshake. Returns ""
/// when it passes, otherwise verify_error_code's reason ("certificate-revoked-crl",
/// "crl-expired", "no-crl", ...). The certificate-to-partner rule is not part of it. Thread-safe.
std::string verify_again(X509_STORE* store, X509* leaf, STACK_OF(X509) * chain, std::time_t at);

}  // namespace mxgw::net
