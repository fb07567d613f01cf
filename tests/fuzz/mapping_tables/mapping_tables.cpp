// Fuzz target: code_tables::load on a directory holding the input as its only table file.
#include <cstdint>
#include <vector>

#include "gateway/pipeline/code_tables.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const mxgw::fuzz::scratch_dir dir;
  mxgw::fuzz::write_bytes(dir.path() / "table.json", data, size);
  std::vector<mxgw::pipeline::config_problem> problems;
  const auto tables = mxgw::pipeline::code_tables::load(dir.path(), problems);
  for (const auto& name : tables.names()) {
    const auto* table = tables.find(name);
    if (table == nullptr) {
      __builtin_trap();  // a listed name must be found
    }
    for (const auto& [code, successors] : table->codes) {
      (void)successors;
      (void)table->current_units(code);
      (void)table->entry(code);
    }
  }
  return 0;
}
