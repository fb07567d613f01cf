// Server TLS context (see tls_context.hpp).
#include "gateway/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/verify_context.hpp>

#include <stdexcept>

#include "gateway/common/log.hpp"
#include "gateway/identity/crl.hpp"

namespace mxgw::net {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites allowed when a listener opts into 1.2: forward secret (ECDHE) and AEAD only.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  char buffer[256] = "unknown OpenSSL error";
  if (unsigned long code = ERR_get_error(); code != 0) {
    ERR_error_string_n(code, buffer, sizeof buffer);
  }
  ERR_clear_error();
  return buffer;
}

}  // namespace

verify_store_update prepare_verify_store(ssl::context& ctx,
                                         const std::vector<std::filesystem::path>& files,
                                         std::vector<config::config_problem>& problems,
                                         std::vector<std::string>& stale) {
  // The context's own store holds the anchors loaded at start (and the CRLs of then); it is never
  // changed after start, so each update starts from the same anchors.
  auto renewed = identity::renew_store(SSL_CTX_get_cert_store(ctx.native_handle()), files,
                                       X509_PURPOSE_SSL_CLIENT, problems, stale);
  if (!renewed.store) {
    return {};
  }
  return {renewed.store, std::move(renewed.batch.revoked_serials), renewed.batch.crls.size()};
}

std::string_view verify_error_code(int x509_error) {
  switch (x509_error) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return "certificate-expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate-not-yet-valid";
    case X509_V_ERR_CERT_REVOKED: return "certificate-revoked-crl";
    case X509_V_ERR_CRL_HAS_EXPIRED: return "crl-expired";
    case X509_V_ERR_CRL_NOT_YET_VALID: return "crl-not-yet-valid";
    case X509_V_ERR_UNABLE_TO_GET_CRL: return "no-crl";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED: return "untrusted-issuer";
    case X509_V_ERR_INVALID_PURPOSE: return "no-client-auth-usage";
    default: return "certificate-invalid";
  }
}

std::string verify_again(X509_STORE* store, X509* leaf, STACK_OF(X509) * chain, std::time_t at) {
  using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)>;
  store_ctx_ptr ctx(X509_STORE_CTX_new(), &X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, leaf, chain) != 1 ||
      X509_STORE_CTX_set_default(ctx.get(), "ssl_client") != 1) {
    ERR_clear_error();
    return "certificate-invalid";
  }
  // One time for every check, the one the caller's decision is made at.
  X509_STORE_CTX_set_time(ctx.get(), 0, at);
  const int verified = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (verified == 1) {
    return {};
  }
  return std::string(verify_error_code(error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error));
}

std::shared_ptr<ssl::context> make_server_context(const config::tls_settings& tls,
                                                  certificate_judge judge,
                                                  refusal_sink on_refusal,
                                                  std::string session_context) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();

  SSL_CTX_set_min_proto_version(native, tls.min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
  // No compression (CRIME), no renegotiation, no session tickets or cache: every connection does
  // a full handshake with a fresh certificate check, so a revocation applies at once.
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(native, 0);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  // An idle connection gives its TLS record buffers (about 34 KiB) back to the allocator.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1 ||
      SSL_CTX_set1_groups_list(native, "X25519:P-256:P-384") != 1) {
    throw std::runtime_error("cannot set the TLS cipher profile: " + openssl_error());
  }
  if (session_context.size() > SSL_MAX_SID_CTX_LENGTH) {
    session_context.resize(SSL_MAX_SID_CTX_LENGTH);
  }
  SSL_CTX_set_session_id_context(native,
                                 reinterpret_cast<const unsigned char*>(session_context.data()),
                                 static_cast<unsigned int>(session_context.size()));

  if (SSL_CTX_use_certificate_chain_file(native, tls.certificate.c_str()) != 1) {
    throw std::runtime_error(tls.certificate.string() +
                             ": cannot load the server certificate: " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(native, tls.private_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error(
        tls.private_key.string() +
        ": cannot load the server key or it does not match the certificate: " + openssl_error());
  }
  std::vector<std::filesystem::path> anchors = tls.partner_cas;
  anchors.insert(anchors.end(), tls.pinned_partner_cas.begin(), tls.pinned_partner_cas.end());
  for (const auto& ca : anchors) {
    if (SSL_CTX_load_verify_locations(native, ca.c_str(), nullptr) != 1) {
      throw std::runtime_error(ca.string() +
                               ": cannot load the partner trust anchor: " + openssl_error());
    }
  }
  X509_STORE* store = SSL_CTX_get_cert_store(native);
  identity::load_crls_into(store, tls.crls);
  // Client certificates are verified for the TLS client purpose.
  X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify_depth(native, 4);

  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  auto refused = [on_refusal](std::string_view reason) {
    if (on_refusal) {
      on_refusal(reason);
    }
  };
  ctx->set_verify_callback([judge = std::move(judge), refused](bool preverified,
                                                               ssl::verify_context& vctx) {
    X509_STORE_CTX* store_ctx = vctx.native_handle();
    const int depth = X509_STORE_CTX_get_error_depth(store_ctx);
    if (!preverified) {
      const int error = X509_STORE_CTX_get_error(store_ctx);
      log::warn({.event = "tls.client_refused",
                 .reason = verify_error_code(error),
                 .detail = X509_verify_cert_error_string(error)});
      refused(verify_error_code(error));
      return false;
    }
    if (depth != 0) {
      return true;
    }
    X509* cert = X509_STORE_CTX_get_current_cert(store_ctx);
    // The purpose check lets a certificate without any EKU through; we require clientAuth.
    if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) == 0 ||
        (X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) == 0) {
      log::warn({.event = "tls.client_refused", .reason = "no-client-auth-usage"});
      refused("no-client-auth-usage");
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_INVALID_PURPOSE);
      return false;
    }
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(store_ctx);
    const int length = chain == nullptr ? 0 : sk_X509_num(chain);
    X509* anchor = length > 0 ? sk_X509_value(chain, length - 1) : nullptr;
    if (const std::string refusal = judge(cert, anchor); !refusal.empty()) {
      log::warn({.event = "tls.client_refused", .reason = refusal});
      refused(refusal);
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
      return false;
    }
    return true;
  });
  return ctx;
}

}  // namespace mxgw::net
