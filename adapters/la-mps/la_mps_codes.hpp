// LA-MPS columns of the code tables in config/mappings/: partnerCodes["la-mps"], alpha3, iso639_1.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "gateway/common/json.hpp"
#include "gateway/pipeline/code_tables.hpp"

namespace mxgw::adapters::la_mps {

/// The partner id under which the tables list LA-MPS codes.
inline constexpr const char* partner_column = "la-mps";

/// ASCII case-insensitive equality (Lao script compares exactly).
inline bool same_code(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

/// Read-only view of the code tables with the LA-MPS lookups. Every lookup is a linear scan of
/// one table (the largest, country, has 249 entries), which keeps no state of its own and so
/// follows a reload of the tables.
class la_mps_codes {
 public:
  explicit la_mps_codes(const pipeline::code_tables& tables) : tables_(tables) {}

  /// The canonical code in `table` whose partnerCodes["la-mps"] lists `value`, or nullopt.
  std::optional<std::string> from_partner(std::string_view table, std::string_view value) const {
    const pipeline::code_table* t = tables_.find(table);
    if (t == nullptr) {
      return std::nullopt;
    }
    for (const rapidjson::Value* entry : t->entries()) {
      const rapidjson::Value* codes = partner_codes(*entry);
      if (codes == nullptr) {
        continue;
      }
      for (const auto& c : codes->GetArray()) {
        if (c.IsString() && same_code(c.GetString(), value)) {
          return std::string(json::get_string(*entry, "code"));
        }
      }
    }
    return std::nullopt;
  }

  /// The first LA-MPS code listed for canonical `code` in `table` (the Lao word where the table
  /// gives one first), or nullopt when LA-MPS has none.
  std::optional<std::string> to_partner(std::string_view table, std::string_view code) const {
    const rapidjson::Value* entry = tables_.entry(table, code);
    if (entry == nullptr) {
      return std::nullopt;
    }
    const rapidjson::Value* codes = partner_codes(*entry);
    if (codes == nullptr || codes->Empty() || !(*codes)[0].IsString()) {
      return std::nullopt;
    }
    return std::string((*codes)[0].GetString());
  }

  /// The canonical code in `table` whose member `column` (alpha3, iso639_1) equals `value`.
  std::optional<std::string> from_column(std::string_view table, const char* column,
                                         std::string_view value) const {
    const pipeline::code_table* t = tables_.find(table);
    if (t == nullptr) {
      return std::nullopt;
    }
    for (const rapidjson::Value* entry : t->entries()) {
      const std::string_view v = json::get_string(*entry, column);
      if (!v.empty() && same_code(v, value)) {
        return std::string(json::get_string(*entry, "code"));
      }
    }
    return std::nullopt;
  }

  /// Member `column` of canonical `code` in `table`, or nullopt.
  std::optional<std::string> column_of(std::string_view table, std::string_view code,
                                       const char* column) const {
    const rapidjson::Value* entry = tables_.entry(table, code);
    if (entry == nullptr) {
      return std::nullopt;
    }
    const std::string_view v = json::get_string(*entry, column);
    if (v.empty()) {
      return std::nullopt;
    }
    return std::string(v);
  }

  /// True when `table` holds canonical `code` (current or historical).
  bool has(std::string_view table, std::string_view code) const { return tables_.has(table, code); }

 private:
  static const rapidjson::Value* partner_codes(const rapidjson::Value& entry) {
    if (!entry.IsObject()) {
      return nullptr;
    }
    auto all = entry.FindMember("partnerCodes");
    if (all == entry.MemberEnd() || !all->value.IsObject()) {
      return nullptr;
    }
    auto mine = all->value.FindMember(partner_column);
    if (mine == all->value.MemberEnd() || !mine->value.IsArray()) {
      return nullptr;
    }
    return &mine->value;
  }

  const pipeline::code_tables& tables_;
};

}  // namespace mxgw::adapters::la_mps
