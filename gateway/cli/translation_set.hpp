// The reloadable part of a gateway's configuration: canonical schemas and code tables, the
// transliteration rules and the mapping files of config-only partners, loaded and checked as one.
#pragma once

#include <memory>
#include <vector>

#include "gateway/config/gateway_config.hpp"

namespace mxgw::pipeline {
class canonical_checker;
class transliterators;
}  // namespace mxgw::pipeline
namespace mxgw::adapters::mapped {
class mapping_set;
}

namespace mxgw::cli {

struct translation_set {
  std::shared_ptr<const pipeline::canonical_checker> checker;        ///< schemas + code tables
  std::shared_ptr<const pipeline::transliterators> transliterators;  ///< null: none configured
  std::shared_ptr<const adapters::mapped::mapping_set> mappings;     ///< empty set: none
  /// What translations made with this set are traced to (translation provenance): a compact
  /// JSON object {"tables": {name: version}, "files": {"mappings/x.json": digest, ...}} with the
  /// first 16 hex digits of each file's SHA-256 (code tables, transliteration rules, mapping
  /// files), and `provenance_id`, "tr-" and the first 16 hex digits of its SHA-256. Every
  /// accepted message's audit entry names the id; `translation.loaded` records the whole.
  std::string provenance;
  std::string provenance_id;
};

/// Loads schema_dir, mappings_dir, translit_dir and adapters_dir of `config` (the last two are
/// optional). Every problem, naming file and entry, is appended to `problems`; the result is
/// only meant to be used when none were added. Installs nothing.
translation_set load_translation_set(const config::gateway_config& config,
                                     std::vector<config::config_problem>& problems);

}  // namespace mxgw::cli
