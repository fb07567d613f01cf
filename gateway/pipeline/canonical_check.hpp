// The decode-and-check step for canonical (mx/1) messages: parse, identity, schema, domain rules.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::pipeline {

/// The verdict on one submitted message.
struct check_result {
  int status = 0;  ///< 0 = acceptable; else the HTTP status of the refusal (400, 403, 422)
  std::string
      problem;  ///< short problem type: "malformed-json", "sender-mismatch", "invalid-message"
  std::string detail;  ///< a sentence for humans (never echoes message content)
  std::vector<field_error> errors;
  // Set when status == 0:
  std::string id;  ///< lower-case UUID
  std::string type;
  std::string created;
};

struct check_limits {
  std::size_t max_depth = 64;
};

class canonical_checker {
 public:
  canonical_checker(schema_set schemas, code_tables tables)
      : schemas_(std::move(schemas)), tables_(std::move(tables)) {}

  /// Loads schemas and tables; every problem goes to `problems`.
  static canonical_checker load(const std::filesystem::path& schema_dir,
                                const std::filesystem::path& mappings_dir,
                                std::vector<config_problem>& problems);

  /// Checks `body` as sent by the authenticated `partner`. Order: JSON well-formed (400), the
  /// sender is the partner (403), envelope schema, body schema, domain rules (422). `doc` holds
  /// the parsed message afterwards. Thread-safe (const, no shared mutable state).
  check_result check(std::string_view body, std::string_view partner, rapidjson::Document& doc,
                     const check_limits& limits = {}) const;

  const schema_set& schemas() const { return schemas_; }
  const code_tables& tables() const { return tables_; }

 private:
  schema_set schemas_;
  code_tables tables_;
};

}  // namespace mxgw::pipeline
