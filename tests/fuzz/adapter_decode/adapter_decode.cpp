// Fuzz target: every registered adapter's decode, then check and re-encode. An input that starts
// with "<adapter id>\n" goes to that adapter (the seed corpus is written so, which keeps each seed
// on its adapter when adapters are added); any other input goes to the adapter byte 0 picks.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

const mxgw::pipeline::canonical_checker& checker() {
  static const mxgw::pipeline::canonical_checker instance = [] {
    std::vector<mxgw::pipeline::config_problem> problems;
    auto loaded = mxgw::pipeline::canonical_checker::load(
        mxgw::fuzz::source_dir() / "config/schema", mxgw::fuzz::source_dir() / "config/mappings",
        problems);
    mxgw::fuzz::require_no_problems(problems, "canonical_checker::load");
    return loaded;
  }();
  return instance;
}

const std::vector<std::string>& ids() {
  static const std::vector<std::string> instance = [] {
    auto all = mxgw::adapters::adapter_ids();
    if (all.empty()) {
      __builtin_trap();  // the adapters were not linked in
    }
    return all;
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view bytes = input.substr(1);
  std::string id = ids()[data[0] % ids().size()];
  if (const auto newline = input.find('\n'); newline != std::string_view::npos && newline <= 64) {
    if (const std::string named(input.substr(0, newline));
        mxgw::adapters::find_adapter(named) != nullptr) {
      id = named;
      bytes = input.substr(newline + 1);
    }
  }
  const auto* adapter = mxgw::adapters::find_adapter(id);
  if (adapter == nullptr) {
    __builtin_trap();
  }
  mxgw::adapters::adapter_context ctx;
  ctx.tables = &checker().tables();
  ctx.sender = "kh-ratanakiri";
  ctx.recipient = "vn-gialai";
  auto decoded = adapter->decode(bytes, ctx);
  if (decoded.status != 0) {
    return 0;
  }
  const std::string canonical = mxgw::json::to_string(decoded.message);
  rapidjson::Document doc;
  const auto checked = checker().check(canonical, "kh-ratanakiri", doc);
  if (checked.status != 0) {
    return 0;
  }
  ctx.recipient = "kh-ratanakiri";
  const auto encoded = adapter->encode(doc, ctx);
  (void)encoded;
  return 0;
}
