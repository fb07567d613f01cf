// Synchronous HTTPS client over Beast (see client.hpp).
#include "gateway/cli/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <optional>

namespace mxgw::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::optional<https_url> parse_https_url(const std::string& text, std::string& error) {
  const auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed || parsed->scheme() != "https" || !parsed->has_authority() ||
      parsed->encoded_host().empty()) {
    error = "must be an https:// URL";
    return std::nullopt;
  }
  https_url url{.host = std::string(parsed->encoded_host()),
                .port = 443,
                .target = std::string(parsed->encoded_path())};
  if (parsed->has_port()) {
    // Read here: port_number() keeps the low 16 bits of a larger number (99999 is not 34463).
    const std::string_view digits = parsed->port();
    unsigned long port = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port == 0 ||
        port > 65535) {
      error = "its port must be a number from 1 to 65535";
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  if (url.target.empty()) {
    url.target = "/";
  }
  return url;
}

client_result https_request(const std::string& host, std::uint16_t port, const client_tls& tls,
                            std::string_view method, std::string_view target, std::string_view body,
                            std::string_view content_type, std::chrono::milliseconds timeout,
                            const std::map<std::string, std::string>& headers) {
  client_result result;
  try {
    asio::io_context ioc;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.load_verify_file(tls.ca.string());
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!tls.cert.empty()) {
      ctx.use_certificate_chain_file(tls.cert.string());
      ctx.use_private_key_file(tls.key.string(), asio::ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    // SNI (the macro form trips -Wold-style-cast).
    SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
    stream.set_verify_callback(asio::ssl::host_name_verification(host));
    asio::ip::tcp::resolver resolver(ioc);
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(timeout);
    // The synchronous calls below are bounded by running the asynchronous forms with a deadline.
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
      result.error = "resolve: " + ec.message();
      return result;
    }
    lowest.async_connect(endpoints, [&](beast::error_code e, auto) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) {
      result.error = "connect: " + ec.message();
      return result;
    }
    lowest.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) {
      result.error = "handshake: " + ec.message();
      return result;
    }
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), std::string(target), 11);
    req.set(bhttp::field::host, host);
    req.set(bhttp::field::user_agent, "mxgw-client");
    for (const auto& [name, value] : headers) {
      req.set(name, value);
    }
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.set(bhttp::field::content_type, content_type);
      req.body() = std::string(body);
    }
    req.keep_alive(false);
    req.prepare_payload();
    bhttp::async_write(stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) {
      result.error = "write: " + ec.message();
      return result;
    }
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) {
      result.error = "read: " + ec.message();
      return result;
    }
    const auto& res = parser.get();
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    for (const auto& field : res) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      result.headers[name] = std::string(field.value());
    }
    stream.async_shutdown([&](beast::error_code) {});
    ioc.run();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

struct https_connection::impl {
  asio::io_context ioc;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  std::string host;
  std::chrono::milliseconds timeout{15000};

  // Runs the queued asynchronous operation to completion.
  void run() {
    ioc.run();
    ioc.restart();
  }
};

https_connection::https_connection(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
https_connection::~https_connection() = default;

std::unique_ptr<https_connection> https_connection::open(const std::string& host,
                                                         std::uint16_t port, const client_tls& tls,
                                                         std::string& error,
                                                         std::chrono::milliseconds timeout) {
  auto p = std::make_unique<impl>();
  try {
    p->host = host;
    p->timeout = timeout;
    SSL_CTX_set_min_proto_version(p->ctx.native_handle(), TLS1_2_VERSION);
    p->ctx.load_verify_file(tls.ca.string());
    p->ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!tls.cert.empty()) {
      p->ctx.use_certificate_chain_file(tls.cert.string());
      p->ctx.use_private_key_file(tls.key.string(), asio::ssl::context::pem);
    }
    p->stream.emplace(p->ioc, p->ctx);
    SSL_ctrl(p->stream->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(p->host.c_str()));
    p->stream->set_verify_callback(asio::ssl::host_name_verification(host));
    asio::ip::tcp::resolver resolver(p->ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
      error = "resolve: " + ec.message();
      return nullptr;
    }
    auto& lowest = beast::get_lowest_layer(*p->stream);
    lowest.expires_after(timeout);
    lowest.async_connect(endpoints, [&](beast::error_code e, auto) { ec = e; });
    p->run();
    if (!ec) {
      p->stream->async_handshake(asio::ssl::stream_base::client,
                                 [&](beast::error_code e) { ec = e; });
      p->run();
    }
    if (ec) {
      error = "handshake: " + ec.message();
      return nullptr;
    }
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  return std::unique_ptr<https_connection>(new https_connection(std::move(p)));
}

client_result https_connection::request(std::string_view method, std::string_view target,
                                        std::string_view body, std::string_view content_type) {
  client_result result;
  auto& s = *impl_->stream;
  beast::get_lowest_layer(s).expires_after(impl_->timeout);
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), std::string(target), 11);
  req.set(bhttp::field::host, impl_->host);
  req.set(bhttp::field::user_agent, "mxgw-client");
  if (!body.empty() || method == "POST") {
    req.set(bhttp::field::content_type, content_type);
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();
  beast::error_code ec;
  bhttp::async_write(s, req, [&](beast::error_code e, std::size_t) { ec = e; });
  impl_->run();
  if (ec) {
    result.error = "write: " + ec.message();
    return result;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  bhttp::async_read(s, impl_->buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
  impl_->run();
  if (ec) {
    result.error = "read: " + ec.message();
    return result;
  }
  result.status = static_cast<int>(parser.get().result_int());
  result.body = parser.get().body();
  return result;
}

}  // namespace mxgw::cli
