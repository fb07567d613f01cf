// A small mutual-TLS HTTPS client: `mxgw send`, the demo and the tests use it as a real partner.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mxgw::cli {

struct client_tls {
  std::filesystem::path ca;    ///< trust anchor for the gateway's server certificate
  std::filesystem::path cert;  ///< client certificate (PEM); empty: none is presented
  std::filesystem::path key;   ///< its private key
};

struct client_result {
  int status = 0;  ///< HTTP status; 0 when no response was read
  std::string body;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string error;  ///< why no response was read (connection, handshake, timeout)
};

/// An https:// URL taken apart for https_request.
struct https_url {
  std::string host;
  std::uint16_t port = 443;  ///< 443 when the URL gives none
  std::string target;        ///< the path ("/" when empty); a query or fragment is dropped
};

/// `text` taken apart; nullopt, with `error` saying what is wrong ("must be an https:// URL",
/// "its port must be a number from 1 to 65535"), when it is not an https:// URL with a host and a
/// usable port.
std::optional<https_url> parse_https_url(const std::string& text, std::string& error);

/// One request on a fresh connection (TLS 1.2 or 1.3, server certificate verified against `ca`
/// and the host name). Never throws: failures are reported in `error`.
client_result https_request(const std::string& host, std::uint16_t port, const client_tls& tls,
                            std::string_view method, std::string_view target,
                            std::string_view body = {},
                            std::string_view content_type = "application/json",
                            std::chrono::milliseconds timeout = std::chrono::seconds(15),
                            const std::map<std::string, std::string>& headers = {});

/// One kept-alive connection for several requests (tests of connections closed by the server).
class https_connection {
 public:
  /// Connects and completes the handshake; nullptr with `error` set when that fails.
  static std::unique_ptr<https_connection> open(const std::string& host, std::uint16_t port,
                                                const client_tls& tls, std::string& error,
                                                std::chrono::milliseconds timeout =
                                                    std::chrono::seconds(15));
  ~https_connection();

  /// One request with keep-alive; status 0 and `error` set when the connection failed or was
  /// closed by the server.
  client_result request(std::string_view method, std::string_view target,
                        std::string_view body = {},
                        std::string_view content_type = "application/json");

  struct impl;

 private:
  explicit https_connection(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace mxgw::cli
