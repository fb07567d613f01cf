// Canonical message check (see canonical_check.hpp).
#include "gateway/pipeline/canonical_check.hpp"

#include "gateway/pipeline/names.hpp"

#include <algorithm>
#include <cctype>

#include "gateway/common/json.hpp"
#include "gateway/pipeline/domain_checks.hpp"

namespace mxgw::pipeline {

canonical_checker canonical_checker::load(const std::filesystem::path& schema_dir,
                                          const std::filesystem::path& mappings_dir,
                                          std::vector<config_problem>& problems) {
  auto schemas = schema_set::load(schema_dir, problems);
  auto tables = code_tables::load(mappings_dir, problems);
  for (const char* required : {"country", "region", "language", "script"}) {
    if (tables.find(required) == nullptr) {
      problems.push_back(
          {mappings_dir.string(), "",
           std::string("has no '") + required + "' table, which message checks need"});
    }
  }
  return canonical_checker(std::move(schemas), std::move(tables));
}

check_result canonical_checker::check(std::string_view body, std::string_view partner,
                                      rapidjson::Document& doc, const check_limits& limits) const {
  check_result result;
  if (auto error = json::parse_untrusted(body, doc, {limits.max_depth})) {
    result.status = 400;
    result.problem = "malformed-json";
    result.detail = "The body is not acceptable JSON at byte offset " +
                    std::to_string(error->offset) + ": " + error->reason;
    return result;
  }
  if (!doc.IsObject()) {
    result.status = 422;
    result.problem = "invalid-message";
    result.detail = "A canonical message is a JSON object.";
    result.errors.push_back({"", "must be an object"});
    return result;
  }
  // Identity comes from the certificate; a message claiming another sender is refused outright.
  if (doc.HasMember("sender") && doc["sender"].IsString() &&
      json::get_string(doc, "sender") != partner) {
    result.status = 403;
    result.problem = "sender-mismatch";
    result.detail = "The sender does not match the partner identified by the client certificate.";
    result.errors.push_back({"/sender", "must equal the authenticated partner"});
    return result;
  }
  std::vector<field_error> errors;
  // mx/1 text is NFC (docs/canonical.md): a canonical sender normalises, the gateway does not
  // rewrite what it was given; partner adapters normalise while decoding.
  if (auto at = first_non_nfc(doc)) {
    errors.push_back({*at, "is not in Unicode Normalization Form C (NFC)"});
  }
  if (schemas_.validate_envelope(doc, errors)) {
    schemas_.validate_body(json::get_string(doc, "type"), doc["body"], errors);
  }
  if (errors.empty()) {
    check_domain_rules(doc, tables_, errors);
  }
  if (!errors.empty()) {
    result.status = 422;
    result.problem = "invalid-message";
    result.detail = "The message breaks the mx/1 contract; see errors.";
    result.errors = std::move(errors);
    return result;
  }
  result.id = std::string(json::get_string(doc, "id"));
  std::transform(result.id.begin(), result.id.end(), result.id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  result.type = std::string(json::get_string(doc, "type"));
  result.created = std::string(json::get_string(doc, "created"));
  return result;
}

}  // namespace mxgw::pipeline
