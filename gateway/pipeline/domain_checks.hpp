// Rules of the canonical model that JSON Schema cannot express: real dates, UTC timestamps, codes
// that exist in the code tables, plausible dates of birth, evaluation on tips.
#pragma once

#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/common/uuid.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::pipeline {

using mxgw::is_uuid;  // RFC 4122 textual UUID (gateway/common/uuid.hpp)

/// Checks a schema-valid message and appends every breach (all of them, not just the first).
/// Tables that are not loaded are not checked (config check reports missing tables).
void check_domain_rules(const rapidjson::Value& message, const code_tables& tables,
                        std::vector<field_error>& errors);

}  // namespace mxgw::pipeline
