// Config-only partners: a JSON mapping file (config/adapters/<id>.json) describes a JSON variant
// of a known format field by field, and the `mapped` adapter turns it into canonical mx/1 and
// back. The file format is documented in docs/adapters/mapping-files.md.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "gateway/identity/partner_registry.hpp"

namespace mxgw::pipeline {
class code_tables;
class schema_set;
}  // namespace mxgw::pipeline

namespace mxgw::adapters::mapped {

using identity::config_problem;

/// A parsed JSON Pointer. In canonical pointers the token "*" stands for "the element of this
/// array that matches the rule's `select`".
struct pointer_path {
  std::string text;
  std::vector<std::string> tokens;
};

enum class transform { text, integer, boolean, date, datetime, code, name_parts };

/// One `fields[]` entry: a partner value <-> a canonical value.
struct field_rule {
  std::string at;  ///< where in the mapping file ("/fields/3"), for problems
  pointer_path partner;
  pointer_path canonical;
  transform kind = transform::text;
  std::string table;   ///< code: the code table
  std::string column;  ///< code: "code", "partnerCodes/<key>" or an entry member (alpha3, ...)
  /// code without a table: the format's own list, partner code -> canonical code.
  std::vector<std::pair<std::string, std::string>> values;
  era calendar = era::common;
  bool list = false;      ///< the partner value is an array; each item is transformed
  bool wrap = false;      ///< one partner value <-> a one-element canonical array
  bool required = false;  ///< decode: the partner must send it; encode: the canonical must have it
  bool decode = true;
  bool encode = true;
  std::vector<std::string> types;  ///< canonical types the rule applies to; empty: all
  std::shared_ptr<const rapidjson::Document> select;  ///< for "*": members the element matches
  std::shared_ptr<const rapidjson::Document> init;    ///< members the holding object gets
};

/// A fixed value: partner constants are checked on decode and written on encode; canonical
/// constants are written on decode.
struct constant_rule {
  std::string at;
  pointer_path pointer;
  std::shared_ptr<const rapidjson::Document> value;
  std::vector<std::string> types;
};

struct receipt_rule {
  bool present = false;
  std::string kind;  ///< value written at the kind pointer
  pointer_path id, reply_to, accepted_at, recipient, sender;
  std::vector<constant_rule> constants;  ///< partner constants of receipts (besides the format's)
};

/// One mapping file, checked.
struct mapping_spec {
  std::string id;
  std::string file;
  std::string format_name;  ///< for messages ("is not a field of <format_name>")
  pointer_path kind_pointer;
  std::vector<std::pair<std::string, std::string>> kinds;  ///< partner kind -> canonical type
  pointer_path reference;
  era calendar = era::common;
  int offset_minutes = 0;
  std::vector<constant_rule> partner_constants;
  std::vector<constant_rule> canonical_constants;
  std::vector<field_rule> fields;
  receipt_rule receipt;
};

/// Every mapping file of a directory, checked against the code tables and the canonical schemas.
class mapping_set {
 public:
  /// Loads every *.json in `dir`. Problems (bad JSON, unknown members, a bad pointer, an unknown
  /// table or column, an unknown canonical field, a duplicate id) name the file and the entry;
  /// a file with problems is left out. A missing directory is a problem.
  static mapping_set load(const std::filesystem::path& dir, const pipeline::code_tables& tables,
                          const pipeline::schema_set& schemas,
                          std::vector<config_problem>& problems);

  /// Checks and adds one mapping document (the content of `file`).
  bool add(const rapidjson::Value& doc, const std::string& file,
           const pipeline::code_tables& tables, const pipeline::schema_set& schemas,
           std::vector<config_problem>& problems);

  std::vector<std::string> ids() const;
  std::shared_ptr<const mapping_spec> find(std::string_view id) const;
  std::size_t size() const { return specs_.size(); }

 private:
  std::map<std::string, std::shared_ptr<const mapping_spec>, std::less<>> specs_;
};

/// Problems that installing `set` would meet: an id that a built-in adapter already has.
void check_ids(const mapping_set& set, std::vector<config_problem>& problems);

/// Registers an adapter (register_adapter) for every mapping in `set` whose id is new, and
/// makes every mapping the current one for its id (a reload replaces them). Mapping adapters
/// are process-wide; requests already running keep the mapping they started with. Clashes with
/// built-in adapters are problems (nothing installed).
void install(const mapping_set& set, std::vector<config_problem>& problems);

/// The installed mapping for `id`, or nullptr.
std::shared_ptr<const mapping_spec> installed(std::string_view id);

/// Parses an RFC 6901 pointer ("" or "/a/b", with ~0 and ~1); false when malformed.
bool parse_pointer(std::string_view text, pointer_path& out);

/// The partner values a code-table entry has in `column`: the code itself for "code", the list
/// for "partnerCodes/<key>", else the member `column` (string or integer). Numbers as decimal.
std::vector<std::string> column_values(const rapidjson::Value& entry, std::string_view column);

/// Decoding and encoding with a given mapping (what the registered adapter does).
decode_result decode_with(const mapping_spec& spec, std::string_view bytes,
                          const adapter_context& ctx);
encode_result encode_with(const mapping_spec& spec, const rapidjson::Value& message,
                          const adapter_context& ctx);
std::string receipt_with(const mapping_spec& spec, const receipt_info& receipt,
                         const adapter_context& ctx);

}  // namespace mxgw::adapters::mapped
