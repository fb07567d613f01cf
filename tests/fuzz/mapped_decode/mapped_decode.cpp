// Fuzz target: the declarative mapping adapter with the shipped Stung Treng mapping
// (config/adapters/kh-stt.json): decode (NFC, transliteration), check, encode back.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "adapters/mapped/mapped.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/names.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

struct loaded {
  mxgw::pipeline::canonical_checker checker;
  mxgw::pipeline::transliterators transliterators;
  const mxgw::adapters::adapter* adapter = nullptr;
};

const loaded& state() {
  static const loaded instance = [] {
    std::vector<mxgw::pipeline::config_problem> problems;
    const auto root = mxgw::fuzz::source_dir();
    auto checker = mxgw::pipeline::canonical_checker::load(root / "config/schema",
                                                           root / "config/mappings", problems);
    auto translit = mxgw::pipeline::transliterators::load(root / "config/translit", problems);
    auto mappings = mxgw::adapters::mapped::mapping_set::load(
        root / "config/adapters", checker.tables(), checker.schemas(), problems);
    mxgw::adapters::mapped::install(mappings, problems);
    mxgw::fuzz::require_no_problems(problems, "mapped adapter set-up");
    const auto* adapter = mxgw::adapters::find_adapter("kh-stt");
    if (adapter == nullptr) {
      __builtin_trap();
    }
    return loaded{std::move(checker), std::move(translit), adapter};
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& s = state();
  mxgw::adapters::adapter_context ctx;
  ctx.tables = &s.checker.tables();
  ctx.sender = "kh-sesan";
  ctx.carry_unmapped = size > 0 && (data[0] & 1) != 0;
  ctx.transliterators = &s.transliterators;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto decoded = s.adapter->decode(bytes, ctx);
  if (decoded.status != 0) {
    return 0;
  }
  if (mxgw::pipeline::first_non_nfc(decoded.message)) {
    __builtin_trap();  // decoding promises NFC
  }
  rapidjson::Document doc;
  if (s.checker.check(mxgw::json::to_string(decoded.message), "kh-sesan", doc).status != 0) {
    return 0;
  }
  const auto encoded = s.adapter->encode(doc, ctx);
  (void)encoded;
  return 0;
}
