// Fuzz target: every registered adapter's decode (byte 0 picks it), then check and re-encode.
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
  const auto& id = ids()[data[0] % ids().size()];
  const auto* adapter = mxgw::adapters::find_adapter(id);
  if (adapter == nullptr) {
    __builtin_trap();
  }
  mxgw::adapters::adapter_context ctx;
  ctx.tables = &checker().tables();
  ctx.sender = "kh-ratanakiri";
  ctx.recipient = "vn-gialai";
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
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
