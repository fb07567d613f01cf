// Domain rules checked by walking the message once. Fields are recognised by member name, the
// same way everywhere in the model (a `birthDate` is a partial date wherever it appears).
#include "gateway/pipeline/domain_checks.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>
#include <unordered_map>

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

// What a member's name says it holds (a name may be in more than one list).
enum member_kind : unsigned {
  partial_date = 1U << 0,
  timestamp = 1U << 1,
  country = 1U << 2,
  language = 1U << 3,
  region = 1U << 4,
  script = 1U << 5,
  releasable_to = 1U << 6,
  birth_date = 1U << 7,
};

// The earliest year a date of birth may have: anything earlier is most likely a Common-Era
// year read as a Buddhist-Era one (543 years early), and would make a child an adult.
constexpr std::string_view earliest_birth_year = "1900";
// The time zone furthest ahead (UTC+14:00): a date of birth up to the calendar day it is there
// at `created` may be the day of birth of a baby somewhere on Earth.
constexpr std::chrono::hours latest_zone_offset{14};

/// The calendar day "YYYY-MM-DD" it is in the time zone furthest ahead at the RFC 3339 instant
/// `created`; empty when `created` is not a real timestamp.
std::string latest_day_at(std::string_view created) {
  const auto at = parse_rfc3339(created);
  if (!at) {
    return {};
  }
  const std::chrono::year_month_day day{
      std::chrono::floor<std::chrono::days>(*at + latest_zone_offset)};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(day.year()),
                static_cast<unsigned>(day.month()), static_cast<unsigned>(day.day()));
  return text;
}

/// One hash look-up per member of the message, in place of a scan of every list (which was
/// most of the domain rules' time).
unsigned kind_of(std::string_view name) {
  static const std::unordered_map<std::string_view, unsigned> kinds = [] {
    std::unordered_map<std::string_view, unsigned> out;
    const auto add = [&out](const auto& names, unsigned kind) {
      for (const std::string_view n : names) {
        out[n] |= kind;
      }
    };
    add(partial_date_members, partial_date);
    add(timestamp_members, timestamp);
    add(country_members, country);
    add(language_members, language);
    add(region_members, region);
    out["script"] |= script;
    out["releasableTo"] |= releasable_to;
    out["birthDate"] |= birth_date;
    return out;
  }();
  const auto it = kinds.find(name);
  return it == kinds.end() ? 0U : it->second;
}

struct walker {
  const code_tables& tables;
  std::vector<field_error>& errors;
  /// The latest calendar day anywhere on Earth at the message's `created` (latest_day_at);
  /// empty when `created` cannot be read (then only the 1900 bound is checked).
  std::string created_day;
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
    const unsigned kind = kind_of(name);
    if (kind == 0) {
      walk(v);
      return;
    }
    if (v.IsString() && (kind & partial_date) != 0) {
      const std::string_view text(v.GetString(), v.GetStringLength());
      if (!is_valid_partial_date(text)) {
        errors.push_back({at, "is not a real date (YYYY, YYYY-MM or YYYY-MM-DD)"});
      } else if ((kind & birth_date) != 0) {
        plausible_birth_date(text);
      }
    }
    if (v.IsString() && (kind & timestamp) != 0) {
      std::string_view text(v.GetString(), v.GetStringLength());
      if (!parse_rfc3339(text)) {
        errors.push_back({at, "is not a real RFC 3339 timestamp"});
      } else if (at == "/created" && text.back() != 'Z' && text.back() != 'z') {
        errors.push_back({at, "must be in UTC (ending in Z)"});
      }
    }
    if ((kind & country) != 0) {
      codes(v, "country", "country");
    }
    if ((kind & language) != 0) {
      codes(v, "language", "language");
    }
    if ((kind & script) != 0) {
      code(v, "", "script", "script");
    }
    if ((kind & region) != 0 && v.IsObject() && v.HasMember("code")) {
      code(v["code"], "/code", "region", "region");
    }
    if ((kind & releasable_to) != 0 && v.IsArray()) {
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

  /// A person's date of birth (a real partial date) lies between 1900 and the day the message
  /// was created; the reason names the bound, never the date.
  void plausible_birth_date(std::string_view text) {
    if (text.substr(0, 4) < earliest_birth_year) {
      errors.push_back({at, "is not a plausible date of birth (before 1900)"});
    } else if (!created_day.empty() &&
               text > std::string_view(created_day).substr(0, text.size())) {
      errors.push_back({at, "is not a plausible date of birth (after the message was created)"});
    }
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
  walker w{tables, errors, latest_day_at(json::get_string(message, "created")), {}};
  w.at.reserve(256);
  w.walk(message);
}

}  // namespace mxgw::pipeline
