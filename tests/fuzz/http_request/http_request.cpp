// Fuzz target: the partner API's request path up to and through the handler. The bytes are an
// HTTP/1.1 request as it arrives after TLS; Beast's parser reads it with the listener's limits,
// and a complete request goes to partner_api::handle as the authenticated partner vn-gialai (with a
// real SQLite store, the shipped schemas, tables, partners and routing). The answer must be a
// well-formed response: a known status, no CR or LF in header values, JSON bodies that parse.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/crypto.h>

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "gateway/common/live.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/store/message_store.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

namespace bhttp = boost::beast::http;

struct gateway_parts {
  mxgw::fuzz::scratch_dir dir;
  std::shared_ptr<mxgw::store::message_store> store;
  std::shared_ptr<mxgw::http::partner_api> api;  // shared: withdrawals look their original up

  gateway_parts() {
    std::vector<mxgw::identity::config_problem> problems;
    const auto config = mxgw::fuzz::source_dir() / "config";
    const auto formats = mxgw::adapters::adapter_ids();
    auto partners = std::make_shared<mxgw::identity::partner_registry>(
        mxgw::identity::partner_registry::load(config / "partners.json", problems, &formats));
    auto checker = std::make_shared<mxgw::pipeline::canonical_checker>(
        mxgw::pipeline::canonical_checker::load(config / "schema", config / "mappings", problems));
    auto rules = std::make_shared<mxgw::pipeline::routing_rules>(mxgw::pipeline::routing_rules::load(
        config / "routing.json", problems, *partners, checker->tables()));
    // Partners of config-only formats name adapters this target does not install: ignore those.
    std::erase_if(problems, [](const auto& p) { return p.reason.find("adapter") != std::string::npos; });
    mxgw::fuzz::require_no_problems(problems, "gateway parts");
    store = mxgw::store::open_sqlite_store({.path = dir.path() / "store.db"});
    auto seed = std::make_shared<mxgw::identity::trust_state>();
    seed->partners = *partners;
    api = std::make_shared<mxgw::http::partner_api>(
        checker, std::make_shared<mxgw::identity::trust_store>(seed),
        std::make_shared<mxgw::live<mxgw::pipeline::routing_rules>>(rules), store);
  }
  // At exit: the store's threads are joined here, on this thread, before anything else goes.
  ~gateway_parts() {
    if (store) {
      store->stop();
    }
  }
  gateway_parts(const gateway_parts&) = delete;
  gateway_parts& operator=(const gateway_parts&) = delete;
};

gateway_parts& parts() {
  // OpenSSL (with its configuration) first, on this thread: otherwise a store thread hashing the
  // first audit entry loads the configuration, and the error state OpenSSL makes for that thread
  // while initialising is never freed (reported as a leak).
  static const bool openssl_ready = OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr) == 1;
  (void)openssl_ready;
  static gateway_parts instance;
  return instance;
}

bool valid_json(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  return !doc.HasParseError();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    const std::size_t n =
        parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == bhttp::error::need_more) {
      return 0;  // the listener would wait for more (until its deadline)
    }
    if (ec || n == 0) {
      return 0;  // the listener answers 400/413/431 and closes
    }
    used += n;
  }
  if (!parser.is_done()) {
    return 0;
  }
  const auto& req = parser.get();
  const std::string content_type(req[bhttp::field::content_type]);
  mxgw::http::request view{
      .method = {req.method_string().data(), req.method_string().size()},
      .target = {req.target().data(), req.target().size()},
      .content_type = content_type,
      .body = req.body(),
      .partner = "vn-gialai",
      .peer = "127.0.0.1:1",
  };
  std::promise<mxgw::http::response> answered;
  auto answer = answered.get_future();
  parts().api->handle(view, [&answered](mxgw::http::response r) { answered.set_value(std::move(r)); });
  const mxgw::http::response r = answer.get();
  if (r.status < 200 || r.status > 599) {
    __builtin_trap();
  }
  for (const auto& [name, value] : r.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      __builtin_trap();  // header injection
    }
  }
  if (r.content_type.find("json") != std::string::npos && !r.body.empty() && !valid_json(r.body)) {
    __builtin_trap();
  }
  return 0;
}
