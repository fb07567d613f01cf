// Fuzz target: canonical_checker::check on arbitrary bytes sent as partner vn-gialai.
#include <cstdint>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  rapidjson::Document doc;
  const auto result = checker().check(body, "vn-gialai", doc);
  if (result.status == 0 && result.id.empty()) {
    __builtin_trap();  // an accepted message always has an id
  }
  return 0;
}
