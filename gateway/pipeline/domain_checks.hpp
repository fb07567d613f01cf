// Rules of the canonical model that JSON Schema cannot express: real dates, UTC timestamps, codes
// that exist in the code tables, evaluation on tips.
#pragma once

#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::pipeline {

/// True for an RFC 4122 textual UUID (8-4-4-4-12 hex digits, either case).
bool is_uuid(std::string_view text);

/// Checks a schema-valid message and appends every breach (all of them, not just the first).
/// Tables that are not loaded are not checked (config check reports missing tables).
void check_domain_rules(const rapidjson::Value& message, const code_tables& tables,
                        std::vector<field_error>& errors);

}  // namespace mxgw::pipeline
