// The canonical JSON Schemas (config/schema/): the envelope and one schema per body type.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::pipeline {

using identity::config_problem;

/// One refusal reason tied to a place in the message.
struct field_error {
  std::string pointer;  ///< RFC 6901 JSON Pointer into the submitted message
  std::string reason;
};

class schema_set {
 public:
  schema_set();
  ~schema_set();
  schema_set(schema_set&&) noexcept;
  schema_set& operator=(schema_set&&) noexcept;

  /// Loads `dir`/envelope.json and `dir`/body/<type>.json. References of the form
  /// "file.json#/pointer" and "#/pointer" are resolved at load (the result is self-contained);
  /// unresolvable or circular references are problems naming the file and the reference.
  static schema_set load(const std::filesystem::path& dir, std::vector<config_problem>& problems);

  /// The body types that have a schema.
  std::vector<std::string> types() const;
  bool has_type(std::string_view type) const;

  /// Validates the envelope; appends errors (pointer into the message) and returns false on breach.
  bool validate_envelope(const rapidjson::Value& message, std::vector<field_error>& errors) const;

  /// Validates `body` against the schema of `type`; pointers are prefixed with "/body".
  bool validate_body(std::string_view type, const rapidjson::Value& body,
                     std::vector<field_error>& errors) const;

  /// True when `pointer` (a JSON Pointer into a canonical message of `type`) names a member the
  /// schemas define: "/body/..." in the body schema of `type`, anything else in the envelope.
  /// An array index, or "*" (any element), steps into `items`. Used to check mapping files.
  bool knows_pointer(std::string_view type, std::string_view pointer) const;

  struct compiled;  ///< a self-contained schema ready for validation (opaque)

 private:
  std::unique_ptr<compiled> envelope_;
  std::map<std::string, std::unique_ptr<compiled>, std::less<>> bodies_;
};

}  // namespace mxgw::pipeline
