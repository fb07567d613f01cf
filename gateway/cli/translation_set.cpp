// Loading the reloadable configuration (see translation_set.hpp).
#include "gateway/cli/translation_set.hpp"

#include "adapters/mapped/mapped.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/names.hpp"

namespace mxgw::cli {

translation_set load_translation_set(const config::gateway_config& config,
                                     std::vector<config::config_problem>& problems) {
  translation_set set;
  auto checker = std::make_shared<pipeline::canonical_checker>(
      pipeline::canonical_checker::load(config.schema_dir, config.mappings_dir, problems));
  if (!config.translit_dir.empty()) {
    set.transliterators = std::make_shared<pipeline::transliterators>(
        pipeline::transliterators::load(config.translit_dir, problems));
  }
  auto mappings = std::make_shared<adapters::mapped::mapping_set>();
  if (!config.adapters_dir.empty()) {
    *mappings = adapters::mapped::mapping_set::load(config.adapters_dir, checker->tables(),
                                                    checker->schemas(), problems);
    adapters::mapped::check_ids(*mappings, problems);
  }
  set.checker = std::move(checker);
  set.mappings = std::move(mappings);
  return set;
}

}  // namespace mxgw::cli
