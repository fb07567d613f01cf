// Fuzz target: load_gateway_config and partner_registry::load on the same arbitrary bytes.
#include <cstdint>
#include <vector>

#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const mxgw::fuzz::scratch_dir dir;
  mxgw::fuzz::write_bytes(dir.path() / "gateway.json", data, size);
  mxgw::fuzz::write_bytes(dir.path() / "partners.json", data, size);
  {
    std::vector<mxgw::config::config_problem> problems;
    const auto config = mxgw::config::load_gateway_config(dir.path() / "gateway.json", problems);
    (void)config;
  }
  {
    std::vector<mxgw::identity::config_problem> problems;
    const std::vector<std::string> known_adapters = {"kh-cnp", "la-mps", "mx"};
    const auto registry = mxgw::identity::partner_registry::load(dir.path() / "partners.json",
                                                                 problems, &known_adapters);
    for (const auto* partner : registry.all()) {
      if (registry.find(partner->id) != partner) {
        __builtin_trap();  // every listed partner must be found by its id
      }
    }
  }
  return 0;
}
