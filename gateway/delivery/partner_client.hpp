// Outbound mutual-TLS HTTP/1.1 client for deliveries, keeping idle connections per partner so a
// busy partner is not paying a full handshake per message.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace mxgw::delivery {

/// The gateway's own identity towards partners, and whom it trusts as partner servers.
struct client_identity {
  std::filesystem::path certificate;              ///< the gateway's client certificate (PEM chain)
  std::filesystem::path private_key;              ///< its key
  std::vector<std::filesystem::path> server_cas;  ///< trust anchors for partner endpoints
};

struct post_result {
  int status = 0;       ///< 0: no HTTP response (see error)
  std::string body;     ///< response body, at most 64 KiB
  std::string error;    ///< transport failure: "timeout", "connect", "tls", ...
  bool reused = false;  ///< went over a kept-alive connection
};

class partner_client {
 public:
  /// Throws std::runtime_error when the certificate, key or CAs cannot be loaded.
  partner_client(boost::asio::io_context& ioc, const client_identity& identity,
                 std::size_t max_idle_per_partner = 8);
  ~partner_client();
  partner_client(const partner_client&) = delete;
  partner_client& operator=(const partner_client&) = delete;

  /// POSTs `body` (of `content_type`) to `endpoint` (an https URL) within `timeout` for the whole
  /// exchange. `done` runs on the io_context. Idle connections to the same partner are reused; a
  /// reused connection found closed by the peer is replaced once, transparently.
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

  struct impl;

 private:
  void send(const std::string& partner, const std::string& endpoint, int method, std::string body,
            std::string content_type, std::chrono::milliseconds timeout, get_options options,
            std::function<void(post_result)> done);

  std::shared_ptr<impl> impl_;
};

}  // namespace mxgw::delivery
