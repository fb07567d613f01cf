// Outbound mutual-TLS HTTP/1.1 client for deliveries, keeping idle connections per partner so a
// busy partner is not paying a full handshake per message.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/types.h>

#include "gateway/identity/partner_registry.hpp"

namespace boost::asio {
class io_context;
}

namespace mxgw::delivery {

/// The gateway's own identity towards partners, and whom it trusts as partner servers.
struct client_identity {
  std::filesystem::path certificate;              ///< the gateway's client certificate (PEM chain)
  std::filesystem::path private_key;              ///< its key
  std::vector<std::filesystem::path> server_cas;  ///< trust anchors for partner endpoints
  /// CRLs the endpoints' certificates are checked against (each signed by one of server_cas; a
  /// CA without one then fails the check); none: no CRL check.
  std::vector<std::filesystem::path> server_crls;
};

/// CRLs read anew for a partner_client, not yet in force (see partner_client::read_crls).
struct client_crls {
  std::shared_ptr<X509_STORE> store;  ///< null: nothing to put in force
  std::size_t crls = 0;
};

/// The most bytes of a partner's answer to a POST that are read. A longer answer still counts by
/// its status (a 2xx is a delivery), with its body cut to this (post_result::body_cut).
inline constexpr std::size_t max_post_answer_bytes = 64 * 1024;

struct post_result {
  int status = 0;         ///< 0: no HTTP response (see error)
  std::string body;       ///< response body, at most max_post_answer_bytes (a GET's: its limit)
  std::string error;      ///< transport failure: "timeout", "connect", "tls", ...
  bool reused = false;    ///< went over a kept-alive connection
  bool body_cut = false;  ///< a POST's answer was longer than max_post_answer_bytes: body is its
                          ///< beginning (the connection was closed, not kept)
};

class partner_client {
 public:
  /// Throws std::runtime_error when the certificate, key, CAs or CRLs cannot be loaded, or a CRL
  /// is not signed by one of the CAs.
  partner_client(boost::asio::io_context& ioc, const client_identity& identity,
                 std::size_t max_idle_per_partner = 8);
  ~partner_client();
  partner_client(const partner_client&) = delete;
  partner_client& operator=(const partner_client&) = delete;

  /// POSTs `body` (of `content_type`) to `endpoint` (an https URL) within `timeout` for the whole
  /// exchange. `done` runs on the io_context. Idle connections to the same partner are reused; a
  /// reused connection found closed by the peer is replaced once, transparently. An answer whose
  /// body is longer than max_post_answer_bytes comes with its status and the body's beginning.
  /// Interim (1xx) responses are read past to the final answer; a 101 fails with error
  /// "switching-protocols". An answer without a length ends where the connection does, with or
  /// without a TLS close_notify. A connection is kept only when nothing past the answer was read.
  void post(const std::string& partner, const std::string& endpoint, std::string body,
            std::string content_type, std::chrono::milliseconds timeout,
            std::function<void(post_result)> done);

  /// What a GET may add and take (the notice feed).
  struct get_options {
    std::vector<std::pair<std::string, std::string>> headers;  ///< e.g. Authorization
    std::size_t max_body_bytes = 64 * 1024;  ///< a longer answer fails with error "too-large"
  };

  /// GETs `url` (an https URL) within `timeout`; otherwise as post(). The response body is kept
  /// up to `options.max_body_bytes`.
  void get(const std::string& partner, const std::string& url, std::chrono::milliseconds timeout,
           get_options options, std::function<void(post_result)> done);

  /// Closes every idle connection (on shutdown).
  void close_idle();

  /// Reads `files` anew as the endpoints' CRLs, checked against the CAs loaded at construction
  /// (identity::read_crls); changes nothing. On a problem the result's store is null.
  client_crls read_crls(const std::vector<std::filesystem::path>& files,
                        std::vector<identity::config_problem>& problems,
                        std::vector<std::string>& stale) const;

  /// Connections made from now on check `crls`; kept-alive ones are closed (and one in use is
  /// not kept once its exchange ends), as their endpoint's certificate may be on the new CRLs.
  /// Thread-safe.
  void put_in_force(const client_crls& crls);

  struct impl;

 private:
  void send(const std::string& partner, const std::string& endpoint, int method, std::string body,
            std::string content_type, std::chrono::milliseconds timeout, get_options options,
            std::function<void(post_result)> done);

  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::delivery
