// Loading the reloadable configuration (see translation_set.hpp).
#include "gateway/cli/translation_set.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "adapters/mapped/mapped.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/names.hpp"

namespace mxgw::cli {

namespace {

constexpr std::size_t digest_digits = 16;

/// "label/name" -> the first hex digits of SHA-256 of the file, for every regular file of `dir`
/// (sorted by name). Read here, next to the loaders: a file changed between the two reads is
/// the operator's race, and the next reload records it.
void digest_files(const std::filesystem::path& dir, const char* label,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (dir.empty()) {
    return;
  }
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out.emplace_back(std::string(label) + "/" + file.filename().string(),
                     sha256_hex(bytes).substr(0, digest_digits));
  }
}

/// The set's provenance record and its id (see translation_set).
void describe(translation_set& set, const config::gateway_config& config) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("tables");
  w.StartObject();
  const auto& tables = set.checker->tables();
  for (const auto& name : tables.names()) {
    const auto* table = tables.find(name);
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    const std::string version = table != nullptr ? table->version : std::string();
    w.String(version.c_str(), static_cast<rapidjson::SizeType>(version.size()));
  }
  w.EndObject();
  std::vector<std::pair<std::string, std::string>> files;
  digest_files(config.mappings_dir, "mappings", files);
  digest_files(config.translit_dir, "translit", files);
  digest_files(config.adapters_dir, "adapters", files);
  w.Key("files");
  w.StartObject();
  for (const auto& [name, digest] : files) {
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    w.String(digest.c_str(), static_cast<rapidjson::SizeType>(digest.size()));
  }
  w.EndObject();
  w.EndObject();
  set.provenance.assign(buffer.GetString(), buffer.GetSize());
  set.provenance_id = "tr-" + sha256_hex(set.provenance).substr(0, digest_digits);
}

}  // namespace

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
  describe(set, config);
  return set;
}

}  // namespace mxgw::cli
