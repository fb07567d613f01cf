// Statistical facts: the coarse categories `mxgw report` counts, taken from a canonical message.
#include "gateway/pipeline/facts.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/partial_date.hpp"

namespace mxgw::pipeline {
namespace {

using facts_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// How many hex digits of SHA-256(sender "\n" ref) stand for a reference: 64 bits tell the
// victims of one report period apart, and are too short to serve as a lookup key elsewhere.
constexpr std::size_t ref_digest_digits = 16;
constexpr int age_of_majority = 18;
// CTDC's open-ended oldest band.
constexpr std::string_view oldest_band = "48+";

const rapidjson::Value& empty_object() {
  static const rapidjson::Value empty(rapidjson::kObjectType);
  return empty;
}

// The object member `name` of `object`, or an empty object when absent or not an object.
const rapidjson::Value& object_member(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject()) {
    return empty_object();
  }
  auto it = object.FindMember(name);
  return it != object.MemberEnd() && it->value.IsObject() ? it->value : empty_object();
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject()) {
    return nullptr;
  }
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

void write_key(facts_writer& out, std::string_view name) {
  out.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

// "name": value when value is non-empty.
void write_string(facts_writer& out, std::string_view name, std::string_view value) {
  if (value.empty()) {
    return;
  }
  write_key(out, name);
  out.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// "name": the string items of the array member `name` of `object` (others skipped), when it is
// an array.
void write_strings(facts_writer& out, std::string_view name, const rapidjson::Value& object,
                   const char* member_name) {
  const rapidjson::Value* list = member(object, member_name);
  if (list == nullptr || !list->IsArray()) {
    return;
  }
  write_key(out, name);
  out.StartArray();
  for (const auto& item : list->GetArray()) {
    if (item.IsString()) {
      out.String(item.GetString(), item.GetStringLength());
    }
  }
  out.EndArray();
}

// The victim's or wanted person's count key: one per sender and reference.
void write_ref(facts_writer& out, const rapidjson::Value& message, std::string_view sender) {
  const std::string_view ref = json::get_string(message, "ref");
  if (ref.empty()) {
    return;
  }
  std::string keyed(sender);
  keyed += '\n';
  keyed += ref;
  write_string(out, "ref", sha256_hex(keyed).substr(0, ref_digest_digits));
}

// Completed years on `today` of someone born on `born` (a 29 February birthday comes on
// 1 March in other years, as in is_possibly_minor).
int completed_years(std::chrono::year_month_day born, std::chrono::year_month_day today) {
  const auto birthday =
      std::make_tuple(static_cast<unsigned>(born.month()), static_cast<unsigned>(born.day()));
  const auto date =
      std::make_tuple(static_cast<unsigned>(today.month()), static_cast<unsigned>(today.day()));
  return static_cast<int>(today.year()) - static_cast<int>(born.year()) - (date < birthday ? 1 : 0);
}

// The ages, in completed years, the person may have: youngest to oldest (nullopt: unbounded).
struct age_range {
  int youngest = 0;
  std::optional<int> oldest;
};

// From birthDate at the UTC day of `created`, or of `judged_at` when that is earlier (the youngest
// age from the latest possible birth day, the oldest from the earliest; a birth date that may fall
// after `created` gives 0 as the youngest), else from ageEstimate {min, max}. nullopt when unknown:
// no usable birth date and no estimate, a birth date that is unreadable or wholly after `created`,
// or min above max.
std::optional<age_range> age_of(const rapidjson::Value& person, std::string_view created,
                                std::optional<std::chrono::system_clock::time_point> judged_at) {
  if (const auto* birth = member(person, "birthDate"); birth != nullptr && birth->IsString()) {
    const std::string_view text(birth->GetString(), birth->GetStringLength());
    const auto first = earliest_day_of(text);
    const auto last = latest_day_of(text);
    auto at = parse_rfc3339(created);
    if (!first || !last || !at) {
      return std::nullopt;
    }
    if (judged_at && *judged_at < *at) {
      at = judged_at;  // a `created` in the future does not age the person
    }
    const std::chrono::year_month_day today{std::chrono::floor<std::chrono::days>(*at)};
    if (*first > today) {
      return std::nullopt;
    }
    return age_range{*last > today ? 0 : completed_years(*last, today),
                     completed_years(*first, today)};
  }
  const rapidjson::Value& estimate = object_member(person, "ageEstimate");
  auto bound = [&](const char* name) -> std::optional<int> {
    const auto* v = member(estimate, name);
    return v != nullptr && v->IsInt() ? std::optional(v->GetInt()) : std::nullopt;
  };
  const auto min = bound("min");
  const auto max = bound("max");
  if (!min && !max) {
    return std::nullopt;
  }
  age_range range{std::max(0, min.value_or(0)), max};
  if (range.oldest && *range.oldest < range.youngest) {
    return std::nullopt;
  }
  return range;
}

// "age" (when the whole range lies in one band) and "minor" (from the range, else person.minor).
void write_age(facts_writer& out, const rapidjson::Value& person, std::string_view created,
               std::optional<std::chrono::system_clock::time_point> judged_at) {
  const auto range = age_of(person, created, judged_at);
  if (range) {
    const std::string_view youngest = age_band(range->youngest);
    // No upper bound: the oldest possible age lies in the open band.
    const std::string_view oldest = range->oldest ? age_band(*range->oldest) : oldest_band;
    if (youngest == oldest) {
      write_string(out, "age", youngest);
    }
  }
  std::optional<bool> minor;
  if (range && range->oldest && *range->oldest < age_of_majority) {
    minor = true;
  } else if (range && range->youngest >= age_of_majority) {
    minor = false;
  } else if (const auto* stated = member(person, "minor"); stated != nullptr && stated->IsBool()) {
    minor = stated->GetBool();
  }
  if (minor) {
    write_key(out, "minor");
    out.Bool(*minor);
  }
}

// The current unit of the home region: the first of the region table's current units, or the
// code itself when the table does not know it.
void write_region(facts_writer& out, const rapidjson::Value& person, const code_tables& tables) {
  const std::string_view code = json::get_string(object_member(person, "homeRegion"), "code");
  if (code.empty()) {
    return;
  }
  if (const code_table* table = tables.find("region")) {
    if (const auto units = table->current_units(code); !units.empty()) {
      write_string(out, "region", units.front());
      return;
    }
  }
  write_string(out, "region", code);
}

std::uint64_t possible_victims(const rapidjson::Value& body) {
  std::uint64_t count = 0;
  if (const auto* subjects = member(body, "subjects"); subjects != nullptr && subjects->IsArray()) {
    for (const auto& subject : subjects->GetArray()) {
      if (json::get_string(subject, "role") == "possible-victim") {
        ++count;
      }
    }
  }
  return count;
}

}  // namespace

std::string_view age_band(int years) {
  if (years < 0) {
    return {};
  }
  // CTDC ageBroad: upper bounds (inclusive) and labels, youngest first.
  struct band {
    int up_to;
    std::string_view label;
  };
  static constexpr band bands[] = {{8, "0--8"},    {17, "9--17"},  {20, "18--20"}, {23, "21--23"},
                                   {26, "24--26"}, {29, "27--29"}, {38, "30--38"}, {47, "39--47"}};
  for (const auto& b : bands) {
    if (years <= b.up_to) {
      return b.label;
    }
  }
  return oldest_band;
}

std::string facts_of(const rapidjson::Value& message, std::string_view sender,
                     const code_tables& tables, const std::vector<std::string>* recipients,
                     std::optional<std::chrono::system_clock::time_point> judged_at) {
  rapidjson::StringBuffer buffer;
  facts_writer out(buffer);
  const std::string_view type = json::get_string(message, "type");
  const rapidjson::Value& body = object_member(message, "body");
  out.StartObject();
  if (type == "victim.identification") {
    const rapidjson::Value& person = object_member(body, "person");
    write_ref(out, message, sender);
    write_string(out, "sex", json::get_string(person, "sex"));
    write_age(out, person, json::get_string(message, "created"), judged_at);
    write_strings(out, "nationalities", person, "nationalities");
    write_strings(out, "exploitation", body, "exploitation");
    write_region(out, person, tables);
    write_string(out, "status", json::get_string(body, "status"));
  } else if (type == "person.wanted") {
    const rapidjson::Value& person = object_member(body, "person");
    write_ref(out, message, sender);
    write_string(out, "sex", json::get_string(person, "sex"));
    write_strings(out, "nationalities", person, "nationalities");
    write_string(out, "requestedAction", json::get_string(body, "requestedAction"));
  } else if (type == "hotline.tip") {
    write_string(out, "channel", json::get_string(body, "channel"));
    write_string(out, "urgency", json::get_string(body, "urgency"));
    write_string(out, "reporterType", json::get_string(body, "reporterType"));
    write_strings(out, "exploitation", body, "suspectedExploitation");
    write_key(out, "possibleVictims");
    out.Uint64(possible_victims(body));
  } else if (type == "verification.request") {
    write_string(out, "purpose", json::get_string(body, "purpose"));
    write_string(out, "urgency", json::get_string(body, "urgency"));
    write_string(out, "deadline", json::get_string(body, "deadline"));
    if (recipients != nullptr) {
      std::vector<std::string> to(*recipients);
      std::sort(to.begin(), to.end());
      to.erase(std::unique(to.begin(), to.end()), to.end());
      write_key(out, "to");
      out.StartArray();
      for (const auto& id : to) {
        out.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
      }
      out.EndArray();
    }
  } else if (type == "verification.result") {
    write_string(out, "result", json::get_string(body, "result"));
    write_string(out, "inReplyTo", ascii_lower(json::get_string(message, "inReplyTo")));
  } else if (type == "case.status") {
    write_string(out, "status", json::get_string(body, "status"));
    write_string(out, "about",
                 ascii_lower(json::get_string(object_member(body, "about"), "messageId")));
  }
  out.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace mxgw::pipeline
