// Domain rules checked by walking the message once. Fields are recognised by member name, the
// same way everywhere in the model (a `birthDate` is a partial date wherever it appears).
#include "gateway/pipeline/domain_checks.hpp"

#include <algorithm>
#include <cctype>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::pipeline {
namespace {

// Members that hold a PartialDate ("YYYY", "YYYY-MM" or "YYYY-MM-DD").
constexpr std::string_view partial_date_members[] = {"birthDate",  "issued",    "expires", "date",
                                                     "reviewDate", "effective", "deadline"};
// Members that hold an RFC 3339 timestamp; the envelope's `created` must moreover be in UTC.
constexpr std::string_view timestamp_members[] = {"created", "receivedAt", "received"};
// Members holding ISO 3166-1 alpha-2 codes (one or an array).
constexpr std::string_view country_members[] = {"nationalities", "issuingCountry", "country",
                                                "countriesLikelyToBeVisited", "jurisdiction"};
// Members holding ISO 639-3 codes (one or an array).
constexpr std::string_view language_members[] = {"languages", "lang"};
// Members whose object value is a Region ({code, asRecorded}).
constexpr std::string_view region_members[] = {"homeRegion", "region"};

template <std::size_t N>
bool among(const std::string_view (&list)[N], std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

struct walker {
  const code_tables& tables;
  std::vector<field_error>& errors;
  /// The pointer of the value being looked at: one buffer for the whole walk, each level appends
  /// its token and cuts it back (a string per member cost more than the rules themselves).
  std::string at;

  bool unknown_code(const rapidjson::Value& v, std::string_view table) const {
    return v.IsString() && tables.find(table) != nullptr &&
           !tables.has(table, std::string_view(v.GetString(), v.GetStringLength()));
  }

  // The pointer of a bad code is built only when there is one to report.
  void code(const rapidjson::Value& v, std::string_view suffix, std::string_view table,
            std::string_view what) {
    if (unknown_code(v, table)) {
      report(at + std::string(suffix), table, what);
    }
  }

  void code_at(const rapidjson::Value& v, std::size_t index, std::string_view table,
               std::string_view what) {
    if (unknown_code(v, table)) {
      std::string where = at;
      json::append_pointer_index(where, index);
      report(where, table, what);
    }
  }

  void report(const std::string& where, std::string_view table, std::string_view what) {
    errors.push_back({where, "is not a known " + std::string(what) + " code (table '" +
                                 std::string(table) + "')"});
  }

  void codes(const rapidjson::Value& v, std::string_view table, std::string_view what) {
    if (v.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        code_at(v[i], i, table, what);
      }
    } else {
      code(v, "", table, what);
    }
  }

  void member(std::string_view name, const rapidjson::Value& v) {
    if (v.IsString() && among(partial_date_members, name) &&
        !is_valid_partial_date({v.GetString(), v.GetStringLength()})) {
      errors.push_back({at, "is not a real date (YYYY, YYYY-MM or YYYY-MM-DD)"});
    }
    if (v.IsString() && among(timestamp_members, name)) {
      std::string_view text(v.GetString(), v.GetStringLength());
      if (!parse_rfc3339(text)) {
        errors.push_back({at, "is not a real RFC 3339 timestamp"});
      } else if (at == "/created" && text.back() != 'Z' && text.back() != 'z') {
        errors.push_back({at, "must be in UTC (ending in Z)"});
      }
    }
    if (among(country_members, name)) {
      codes(v, "country", "country");
    }
    if (among(language_members, name)) {
      codes(v, "language", "language");
    }
    if (name == "script") {
      code(v, "", "script", "script");
    }
    if (among(region_members, name) && v.IsObject() && v.HasMember("code")) {
      code(v["code"], "/code", "region", "region");
    }
    if (name == "releasableTo" && v.IsArray()) {
      // Either a partner id (lower case) or a country (two upper-case letters).
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        if (v[i].IsString() && v[i].GetStringLength() == 2 &&
            std::isupper(static_cast<unsigned char>(v[i].GetString()[0]))) {
          code_at(v[i], i, "country", "country");
        }
      }
    }
    walk(v);
  }

  void walk(const rapidjson::Value& v) {
    const std::size_t length = at.size();
    if (v.IsObject()) {
      for (const auto& m : v.GetObject()) {
        std::string_view name(m.name.GetString(), m.name.GetStringLength());
        if (name == "unmapped") {
          continue;  // verbatim partner values, deliberately not canonical
        }
        json::append_pointer_token(at, name);
        member(name, m.value);
        at.resize(length);
      }
    } else if (v.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        json::append_pointer_index(at, i);
        walk(v[i]);
        at.resize(length);
      }
    }
  }
};

}  // namespace

void check_domain_rules(const rapidjson::Value& message, const code_tables& tables,
                        std::vector<field_error>& errors) {
  const auto id = json::get_string(message, "id");
  if (!is_uuid(id)) {
    errors.push_back({"/id", "is not a UUID"});
  }
  if (json::get_string(message, "type") == "hotline.tip" && !message.HasMember("evaluation")) {
    errors.push_back({"/evaluation",
                      "is required on hotline.tip (source reliability and "
                      "information accuracy)"});
  }
  walker w{tables, errors, {}};
  w.at.reserve(256);
  w.walk(message);
}

}  // namespace mxgw::pipeline
