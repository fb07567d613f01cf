// INTERPOL-style notice DETAIL document -> canonical mx/1; every choice is explained in
// docs/adapters/interpol.md.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/interpol/interpol.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/code_tables.hpp"

namespace mxgw::adapters::interpol {
namespace {

using value = rapidjson::Value;

constexpr std::size_t max_errors = 100;
constexpr std::size_t max_name_part_bytes = 1024;  // 256 code points of at most 4 bytes
constexpr std::size_t max_locality_chars = 256;
constexpr std::size_t max_detail_chars = 2000;
constexpr std::size_t max_marks_chars = 4000;
constexpr std::size_t max_text_chars = 20000;

std::string_view view_of(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

std::size_t code_points(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string upper_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return out;
}

/// `Latn` when every letter of valid UTF-8 `text` is Latin (ASCII, Latin-1, Latin Extended A/B,
/// Vietnamese), combining marks and punctuation being neutral; `Zyyy` otherwise.
std::string_view script_of(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead < 0x80          ? 1
                               : (lead >> 5) == 0x6 ? 2
                               : (lead >> 4) == 0xE ? 3
                                                    : 4;
    if (i + length > text.size()) {
      return "Zyyy";
    }
    char32_t cp = length == 1   ? lead
                  : length == 2 ? lead & 0x1F
                  : length == 3 ? lead & 0x0F
                                : lead & 0x07;
    for (std::size_t k = 1; k < length; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    i += length;
    const bool latin_or_neutral = cp < 0x0250 || (cp >= 0x0300 && cp <= 0x036F) ||
                                  (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0x2000 && cp <= 0x206F);
    if (!latin_or_neutral) {
      return "Zyyy";
    }
  }
  return "Latn";
}

/// Name parts: `text` split at spaces, tabs and commas, empty parts dropped; at most 10 parts
/// (the canonical limit), the tenth holding the rest.
std::vector<std::string> split_name(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == ',')) {
      ++i;
    }
    if (i >= text.size()) {
      break;
    }
    if (parts.size() == 9) {
      std::string rest(text.substr(i));
      while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t' || rest.back() == ',')) {
        rest.pop_back();
      }
      parts.push_back(std::move(rest));
      break;
    }
    std::size_t end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != ',') {
      ++end;
    }
    parts.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return parts;
}

/// A name field split into the name in use (outside parentheses) and the aliases (each
/// parenthesised group; `;` separates several in one group). `SOPHEAK (SOPHEA)`.
struct name_text {
  std::string primary;
  std::vector<std::string> aliases;
};

name_text split_aliases(std::string_view text) {
  name_text out;
  std::string current;
  int depth = 0;
  const auto close_alias = [&] {
    std::size_t start = 0;
    while (start <= current.size()) {
      const std::size_t end = current.find(';', start);
      std::string alias = current.substr(start, end == std::string::npos ? end : end - start);
      if (!split_name(alias).empty()) {
        out.aliases.push_back(std::move(alias));
      }
      if (end == std::string::npos) {
        break;
      }
      start = end + 1;
    }
    current.clear();
  };
  for (char c : text) {
    if (c == '(') {
      if (depth == 0) {
        out.primary += ' ';
      }
      ++depth;
      continue;
    }
    if (c == ')' && depth > 0) {
      if (--depth == 0) {
        close_alias();
      }
      continue;
    }
    (depth > 0 ? current : out.primary) += c;
  }
  if (depth > 0) {
    close_alias();  // an unclosed parenthesis: the rest is the alias
  }
  return out;
}

/// Writes `v` with object members in sorted order and `_links` left out, for fingerprints.
void write_sorted(const value& v, rapidjson::Writer<rapidjson::StringBuffer>& w) {
  if (v.IsObject()) {
    std::vector<const value::Member*> members;
    for (const auto& m : v.GetObject()) {
      if (view_of(m.name) != "_links") {
        members.push_back(&m);
      }
    }
    std::sort(members.begin(), members.end(),
              [](const auto* a, const auto* b) { return view_of(a->name) < view_of(b->name); });
    w.StartObject();
    for (const auto* m : members) {
      w.Key(m->name.GetString(), m->name.GetStringLength());
      write_sorted(m->value, w);
    }
    w.EndObject();
  } else if (v.IsArray()) {
    w.StartArray();
    for (const auto& item : v.GetArray()) {
      write_sorted(item, w);
    }
    w.EndArray();
  } else {
    v.Accept(w);
  }
}

/// Members every notice may carry, and those of one type only.
constexpr std::string_view person_members[] = {"entity_id",
                                               "name",
                                               "forename",
                                               "date_of_birth",
                                               "place_of_birth",
                                               "country_of_birth_id",
                                               "nationalities",
                                               "sex_id",
                                               "height",
                                               "weight",
                                               "eyes_colors_id",
                                               "hairs_id",
                                               "distinguishing_marks",
                                               "languages_spoken_ids",
                                               "_embedded",
                                               "_links"};
constexpr std::string_view red_members[] = {"arrest_warrants", "countries_likely_to_be_visited"};
constexpr std::string_view yellow_members[] = {"birth_name",  "father_name",     "father_forename",
                                               "mother_name", "mother_forename", "date_of_event",
                                               "place",       "country"};
constexpr std::string_view yellow_only_members[] = {
    "birth_name",    "father_name", "father_forename", "mother_name",    "mother_forename",
    "date_of_event", "place",       "country",         "issuing_country"};

template <std::size_t N>
bool listed(const std::string_view (&list)[N], std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

/// One notice being translated; collects every problem (up to max_errors).
class decoder {
 public:
  decoder(const adapter_context& ctx, notice_type type, rapidjson::Document& out,
          std::vector<field_error>& errors)
      : ctx_(ctx), type_(type), out_(out), a_(out.GetAllocator()), errors_(errors) {}

  void run(const value& root, const std::string& entity_id, const std::string& fingerprint);

 private:
  const adapter_context& ctx_;
  notice_type type_;
  rapidjson::Document& out_;
  rapidjson::Document::AllocatorType& a_;
  std::vector<field_error>& errors_;
  value unmapped_{rapidjson::kObjectType};

  void fail(const std::string& at, std::string reason) {
    if (errors_.size() < max_errors) {
      errors_.push_back({at, std::move(reason)});
    }
  }

  /// A member with no canonical home: always kept verbatim under its pointer (never an error).
  void keep(const std::string& at, const value& original) {
    unmapped_.AddMember(value(at.c_str(), a_), value(original, a_), a_);
  }

  /// A code no table knows: kept in `unmapped` when the partner may carry such values, else an
  /// error naming the code (codes only are quoted back) and the table.
  void unknown_code(const std::string& at, const value& original, std::string_view table) {
    if (ctx_.carry_unmapped) {
      keep(at, original);
      return;
    }
    std::string shown = "value";
    if (original.IsString()) {
      shown = "'" + std::string(view_of(original).substr(0, 16)) + "'";
    }
    fail(at, "unknown code " + shown + " (table " + std::string(table) + ")");
  }

  static const value* get(const value& object, const char* name) {
    auto it = object.FindMember(name);
    return it == object.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
  }

  /// A string member; null, absent and "" are absent; `dash_is_none` also takes "-" as absent.
  std::optional<std::string> text(const value& object, const char* name, const std::string& at,
                                  std::size_t max_chars, bool dash_is_none = false) {
    const value* v = get(object, name);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->IsString()) {
      fail(at, "must be a string or null");
      return std::nullopt;
    }
    std::string_view s = view_of(*v);
    if (s.empty() || (dash_is_none && s == "-")) {
      return std::nullopt;
    }
    if (code_points(s) > max_chars) {
      fail(at, "is longer than " + std::to_string(max_chars) + " characters");
      return std::nullopt;
    }
    return std::string(s);
  }

  value str(std::string_view s) {
    return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a_);
  }
  void put(value& object, const char* name, value v) {
    object.AddMember(rapidjson::StringRef(name), v, a_);
  }
  void put_str(value& object, const char* name, std::string_view s) { put(object, name, str(s)); }

  /// The canonical code whose `partnerCodes["interpol"]` lists `code` in `table`.
  std::optional<std::string> from_partner(std::string_view table, std::string_view code) const {
    const auto* t = ctx_.tables == nullptr ? nullptr : ctx_.tables->find(table);
    if (t == nullptr) {
      return std::nullopt;
    }
    for (const value* entry : t->entries()) {
      auto codes = entry->FindMember("partnerCodes");
      if (codes == entry->MemberEnd() || !codes->value.IsObject()) {
        continue;
      }
      auto mine = codes->value.FindMember(rapidjson::StringRef(
          partner_key.data(), static_cast<rapidjson::SizeType>(partner_key.size())));
      if (mine == codes->value.MemberEnd() || !mine->value.IsArray()) {
        continue;
      }
      for (const auto& c : mine->value.GetArray()) {
        if (c.IsString() && view_of(c) == code) {
          return std::string(json::get_string(*entry, "code"));
        }
      }
    }
    return std::nullopt;
  }

  /// An ISO 639-2/B code (any case) -> the canonical ISO 639-3 code (language table `iso639_2b`).
  std::optional<std::string> language_of(std::string_view b_code) const {
    const auto* t = ctx_.tables == nullptr ? nullptr : ctx_.tables->find("language");
    if (t == nullptr || b_code.size() != 3) {
      return std::nullopt;
    }
    const std::string wanted = lower_ascii(b_code);
    for (const value* entry : t->entries()) {
      if (json::get_string(*entry, "iso639_2b") == wanted) {
        return std::string(json::get_string(*entry, "code"));
      }
    }
    return std::nullopt;
  }

  /// An alpha-2 country code the country table holds (upper-cased), or nullopt after reporting.
  std::optional<std::string> country(const value& v, const std::string& at) {
    if (!v.IsString()) {
      fail(at, "must be an ISO 3166-1 alpha-2 code");
      return std::nullopt;
    }
    const std::string code = upper_ascii(view_of(v));
    if (code.size() != 2 || ctx_.tables == nullptr || !ctx_.tables->has("country", code)) {
      unknown_code(at, v, "country");
      return std::nullopt;
    }
    return code;
  }

  std::optional<std::string> country_member(const value& object, const char* name,
                                            const std::string& at) {
    const value* v = get(object, name);
    return v == nullptr ? std::nullopt : country(*v, at);
  }

  /// `YYYY/MM/DD`, `YYYY/MM` or `YYYY` -> partial date; null is unknown.
  std::optional<std::string> date(const value& object, const char* name, const std::string& at) {
    auto raw = text(object, name, at, 10);
    if (!raw) {
      return std::nullopt;
    }
    std::string partial = *raw;
    const bool shape = (partial.size() == 4 || (partial.size() == 7 && partial[4] == '/') ||
                        (partial.size() == 10 && partial[4] == '/' && partial[7] == '/'));
    std::replace(partial.begin(), partial.end(), '/', '-');
    if (!shape || !is_valid_partial_date(partial)) {
      fail(at, "is not a real date (YYYY/MM/DD, YYYY/MM or YYYY)");
      return std::nullopt;
    }
    return partial;
  }

  /// {family, given, script, kind} from family and given texts; nullopt when both are empty.
  std::optional<value> name(std::string_view family, std::string_view given, std::string_view kind,
                            const std::string& at) {
    value n(rapidjson::kObjectType);
    std::string all;
    for (const auto& [member, source] : {std::pair{"family", family}, std::pair{"given", given}}) {
      value parts(rapidjson::kArrayType);
      for (const auto& part : split_name(source)) {
        if (code_points(part) > 256 || part.size() > max_name_part_bytes) {
          fail(at, "has a name part longer than 256 characters");
          return std::nullopt;
        }
        parts.PushBack(str(part), a_);
      }
      if (!parts.Empty()) {
        put(n, member, std::move(parts));
        all += std::string(source) + " ";
      }
    }
    if (n.ObjectEmpty()) {
      return std::nullopt;
    }
    put_str(n, "script", script_of(all));
    put_str(n, "kind", kind);
    return n;
  }

  /// A list of codes (or null): each through `lookup`; unknown ones refused or carried.
  template <typename Lookup>
  std::optional<value> code_list(const value& object, const char* member, std::string_view table,
                                 std::size_t max_items, Lookup lookup) {
    const std::string at = std::string("/") + member;
    const value* list = get(object, member);
    if (list == nullptr) {
      return std::nullopt;
    }
    if (!list->IsArray()) {
      fail(at, "must be an array or null");
      return std::nullopt;
    }
    value out(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      const std::string item_at = at + "/" + std::to_string(i);
      const value& item = (*list)[i];
      std::optional<std::string> code = item.IsString() ? lookup(view_of(item)) : std::nullopt;
      if (!code) {
        unknown_code(item_at, item, table);
        continue;
      }
      if (std::none_of(out.Begin(), out.End(),
                       [&](const value& v) { return view_of(v) == *code; })) {
        if (out.Size() == max_items) {
          fail(at, "has more than " + std::to_string(max_items) + " different codes");
          break;
        }
        out.PushBack(str(*code), a_);
      }
    }
    if (out.Empty()) {
      return std::nullopt;
    }
    return out;
  }

  value person(const value& root);
  std::optional<value> place_of_birth(const value& root);
  std::optional<value> physical(const value& root);
  value wanted_body(const value& root, value subject, const std::string& entity_id);
  value victim_body(const value& root, value subject);
  std::optional<value> warrant(const value& item, const std::string& at);
  std::optional<value> linked_notice(const value& item, const std::string& at);
  void embedded(const value& root, value* linked);
};

value decoder::person(const value& root) {
  value p(rapidjson::kObjectType);
  value names(rapidjson::kArrayType);
  // Family name(s) in `name`, given name(s) in `forename`; parenthesised parts are aliases.
  const auto family = text(root, "name", "/name", 2560);
  const auto given = text(root, "forename", "/forename", 2560, true);
  const name_text family_text = split_aliases(family.value_or(""));
  const name_text given_text = split_aliases(given.value_or(""));
  if (auto primary = name(family_text.primary, given_text.primary, "primary", "/name")) {
    names.PushBack(*primary, a_);
  }
  for (const auto& alias : family_text.aliases) {
    if (auto n = name(alias, given_text.primary, "alias", "/name")) {
      names.PushBack(*n, a_);
    }
  }
  for (const auto& alias : given_text.aliases) {
    if (auto n = name(family_text.primary, alias, "alias", "/forename")) {
      names.PushBack(*n, a_);
    }
  }
  if (type_ == notice_type::yellow) {
    if (auto birth = text(root, "birth_name", "/birth_name", 2560, true)) {
      if (auto n = name(*birth, given_text.primary, "birth", "/birth_name")) {
        names.PushBack(*n, a_);
      }
    }
  }
  if (names.Empty()) {
    fail("/name", "the notice names no one (name and forename are empty)");
  } else if (names.Size() > 50) {
    fail("/name", "holds more than the 50 names a person may have");
  }
  put(p, "names", std::move(names));
  if (const value* sex = get(root, "sex_id")) {
    auto code = sex->IsString() ? from_partner("sex", view_of(*sex)) : std::nullopt;
    if (code) {
      put_str(p, "sex", *code);
    } else {
      unknown_code("/sex_id", *sex, "sex");
    }
  }
  if (auto birth = date(root, "date_of_birth", "/date_of_birth")) {
    put_str(p, "birthDate", *birth);
  }
  if (auto place = place_of_birth(root)) {
    put(p, "placeOfBirth", std::move(*place));
  }
  if (auto list = code_list(root, "nationalities", "country", 10,
                            [&](std::string_view code) -> std::optional<std::string> {
                              const std::string upper = upper_ascii(code);
                              if (upper.size() == 2 && ctx_.tables != nullptr &&
                                  ctx_.tables->has("country", upper)) {
                                return upper;
                              }
                              return std::nullopt;
                            })) {
    put(p, "nationalities", std::move(*list));
  }
  if (auto list = code_list(root, "languages_spoken_ids", "language", 20,
                            [&](std::string_view code) { return language_of(code); })) {
    put(p, "languages", std::move(*list));
  }
  if (auto body = physical(root)) {
    put(p, "physical", std::move(*body));
  }
  if (type_ == notice_type::yellow) {
    value parents(rapidjson::kObjectType);
    for (const auto& [role, family_member, given_member] :
         {std::tuple{"father", "father_name", "father_forename"},
          std::tuple{"mother", "mother_name", "mother_forename"}}) {
      auto parent_family = text(root, family_member, std::string("/") + family_member, 2560, true);
      auto parent_given = text(root, given_member, std::string("/") + given_member, 2560, true);
      if (auto n = name(parent_family.value_or(""), parent_given.value_or(""), "primary",
                        std::string("/") + family_member)) {
        put(parents, role, std::move(*n));
      }
    }
    if (!parents.ObjectEmpty()) {
      put(p, "parents", std::move(parents));
    }
  }
  return p;
}

std::optional<value> decoder::place_of_birth(const value& root) {
  value place(rapidjson::kObjectType);
  if (auto code = country_member(root, "country_of_birth_id", "/country_of_birth_id")) {
    put_str(place, "country", *code);
  }
  if (auto where = text(root, "place_of_birth", "/place_of_birth", max_detail_chars)) {
    put_str(place, code_points(*where) <= max_locality_chars ? "locality" : "detail", *where);
  }
  if (place.ObjectEmpty()) {
    return std::nullopt;
  }
  return place;
}

std::optional<value> decoder::physical(const value& root) {
  value body(rapidjson::kObjectType);
  if (const value* height = get(root, "height")) {
    if (!height->IsNumber()) {
      fail("/height", "must be a number of metres (0 for unknown)");
    } else if (height->GetDouble() != 0.0) {
      const double cm = std::round(height->GetDouble() * 100.0);
      if (!(cm >= 30.0 && cm <= 260.0)) {
        fail("/height", "is not a height in metres from 0.30 to 2.60 (0 for unknown)");
      } else {
        put(body, "heightCm", value(static_cast<int>(cm)));
      }
    }
  }
  if (const value* weight = get(root, "weight")) {
    if (!weight->IsNumber()) {
      fail("/weight", "must be a number of kilograms (0 for unknown)");
    } else if (weight->GetDouble() != 0.0) {
      if (!(weight->GetDouble() >= 1.0 && weight->GetDouble() <= 400.0)) {
        fail("/weight", "is not a weight in kilograms from 1 to 400 (0 for unknown)");
      } else {
        put(body, "weightKg", value(*weight, a_));
      }
    }
  }
  const auto colour = [](std::string_view code) -> std::optional<std::string> {
    const bool ok =
        code.size() >= 2 && code.size() <= 6 &&
        std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    return ok ? std::optional<std::string>(code) : std::nullopt;
  };
  if (auto eyes = code_list(root, "eyes_colors_id", "INTERPOL colour codes", 5, colour)) {
    put(body, "eyeColours", std::move(*eyes));
  }
  if (auto hair = code_list(root, "hairs_id", "INTERPOL colour codes", 5, colour)) {
    put(body, "hairColours", std::move(*hair));
  }
  if (auto marks = text(root, "distinguishing_marks", "/distinguishing_marks", max_marks_chars)) {
    put_str(body, "marks", *marks);
  }
  if (body.ObjectEmpty()) {
    return std::nullopt;
  }
  return body;
}

std::optional<value> decoder::warrant(const value& item, const std::string& at) {
  if (!item.IsObject()) {
    fail(at, "must be an object");
    return std::nullopt;
  }
  for (const auto& m : item.GetObject()) {
    const std::string_view name = view_of(m.name);
    if (name != "charge" && name != "issuing_country_id" && name != "charge_translation") {
      keep(at + "/" + json::escape_pointer_token(name), m.value);
    }
  }
  value w(rapidjson::kObjectType);
  const value* issuer = get(item, "issuing_country_id");
  std::optional<std::string> code;
  if (issuer == nullptr) {
    fail(at + "/issuing_country_id", "is required");
  } else if (issuer->IsString() && ctx_.tables != nullptr &&
             ctx_.tables->has("country", upper_ascii(view_of(*issuer))) &&
             issuer->GetStringLength() == 2) {
    code = upper_ascii(view_of(*issuer));
  } else {
    // A warrant cannot do without its issuing country: never carried.
    fail(at + "/issuing_country_id", "is not an ISO 3166-1 alpha-2 code the country table knows");
  }
  const auto charge = text(item, "charge", at + "/charge", max_text_chars);
  if (!charge) {
    fail(at + "/charge", "is required");
  }
  const auto translation =
      text(item, "charge_translation", at + "/charge_translation", max_text_chars);
  if (!code || !charge) {
    return std::nullopt;
  }
  put_str(w, "issuingCountry", *code);
  // The charge as the issuing country wrote it (line breaks included); its language is unknown.
  value c(rapidjson::kObjectType);
  put_str(c, "text", *charge);
  if (translation) {
    value t(rapidjson::kObjectType);
    put_str(t, "text", *translation);
    put(c, "translation", std::move(t));
  }
  value charges(rapidjson::kArrayType);
  charges.PushBack(c, a_);
  put(w, "charges", std::move(charges));
  return w;
}

value decoder::wanted_body(const value& root, value subject, const std::string& entity_id) {
  value body(rapidjson::kObjectType);
  put(body, "person", std::move(subject));
  value warrants(rapidjson::kArrayType);
  if (const value* list = get(root, "arrest_warrants")) {
    if (!list->IsArray()) {
      fail("/arrest_warrants", "must be an array or null");
    } else if (list->Size() > 20) {
      fail("/arrest_warrants", "has more than 20 warrants");
    } else {
      for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
        if (auto w = warrant((*list)[i], "/arrest_warrants/" + std::to_string(i))) {
          warrants.PushBack(*w, a_);
        }
      }
    }
  }
  // A red notice asks for provisional arrest, which needs a warrant; without one it informs.
  const bool arrest = !warrants.Empty();
  if (arrest) {
    put(body, "warrants", std::move(warrants));
  }
  put_str(body, "requestedAction", arrest ? "locate-and-arrest" : "locate-and-inform");
  if (auto countries = code_list(root, "countries_likely_to_be_visited", "country", 30,
                                 [&](std::string_view code) -> std::optional<std::string> {
                                   const std::string upper = upper_ascii(code);
                                   if (upper.size() == 2 && ctx_.tables != nullptr &&
                                       ctx_.tables->has("country", upper)) {
                                     return upper;
                                   }
                                   return std::nullopt;
                                 })) {
    put(body, "countriesLikelyToBeVisited", std::move(*countries));
  }
  value ref(rapidjson::kObjectType);
  put_str(ref, "system", external_system);
  put_str(ref, "noticeType", "red");
  put_str(ref, "id", entity_id);
  value refs(rapidjson::kArrayType);
  refs.PushBack(ref, a_);
  put(body, "externalRefs", std::move(refs));
  return body;
}

std::optional<value> decoder::linked_notice(const value& item, const std::string& at) {
  if (!item.IsObject()) {
    keep(at, item);
    return std::nullopt;
  }
  const value* id = get(item, "entity_id");
  if (id == nullptr || !id->IsString() || !is_entity_id(view_of(*id))) {
    keep(at, item);  // a link we cannot name: kept as it came
    return std::nullopt;
  }
  value ref(rapidjson::kObjectType);
  put_str(ref, "system", external_system);
  if (const value* colour = get(item, "color"); colour != nullptr && colour->IsString()) {
    static constexpr std::string_view colours[] = {"red",   "yellow", "blue",   "black",
                                                   "green", "orange", "purple", "un"};
    const std::string lower = lower_ascii(view_of(*colour));
    if (listed(colours, lower)) {
      put_str(ref, "noticeType", lower);
    }
  }
  put_str(ref, "id", view_of(*id));
  value person(rapidjson::kObjectType);
  put_str(person, "relation", "linked-notice");
  put(person, "externalRef", std::move(ref));
  const auto family = text(item, "name", at + "/name", 2560);
  const auto given = text(item, "forename", at + "/forename", 2560, true);
  const name_text family_text = split_aliases(family.value_or(""));
  const name_text given_text = split_aliases(given.value_or(""));
  if (auto n = name(family_text.primary, given_text.primary, "primary", at + "/name")) {
    put(person, "name", std::move(*n));
  }
  // A linked person holds one name: one given with aliases ("LY (LI)") is kept as given too.
  if (!family_text.aliases.empty()) {
    keep(at + "/name", item["name"]);
  }
  if (!given_text.aliases.empty()) {
    keep(at + "/forename", item["forename"]);
  }
  for (const auto& m : item.GetObject()) {
    const std::string_view member = view_of(m.name);
    if (member != "entity_id" && member != "color" && member != "name" && member != "forename" &&
        member != "_links") {
      keep(at + "/" + json::escape_pointer_token(member), m.value);
    }
  }
  return person;
}

/// `_embedded.links`: linked notices (yellow: linkedPersons); anything else is kept.
void decoder::embedded(const value& root, value* linked) {
  const value* e = get(root, "_embedded");
  if (e == nullptr) {
    return;
  }
  if (!e->IsObject()) {
    keep("/_embedded", *e);
    return;
  }
  for (const auto& m : e->GetObject()) {
    const std::string_view member = view_of(m.name);
    const std::string at = "/_embedded/" + json::escape_pointer_token(member);
    if (member != "links" || !m.value.IsArray() || linked == nullptr) {
      if (!(member == "links" && m.value.IsArray() && m.value.Empty())) {
        keep(at, m.value);
      }
      continue;
    }
    for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
      if (auto person = linked_notice(m.value[i], at + "/" + std::to_string(i))) {
        if (linked->Size() == 50) {
          keep(at + "/" + std::to_string(i), m.value[i]);
          continue;
        }
        linked->PushBack(*person, a_);
      }
    }
  }
}

value decoder::victim_body(const value& root, value subject) {
  value body(rapidjson::kObjectType);
  put(body, "person", std::move(subject));
  // A yellow notice: a missing person, possibly a victim; the police of the issuing country asked.
  put_str(body, "status", "possible");
  put_str(body, "statusDecidedBy", "police");
  value event(rapidjson::kObjectType);
  put_str(event, "type", "recruitment");
  if (auto when = date(root, "date_of_event", "/date_of_event")) {
    put_str(event, "date", *when);
  }
  value place(rapidjson::kObjectType);
  if (auto code = country_member(root, "country", "/country")) {
    put_str(place, "country", *code);
  }
  if (auto where = text(root, "place", "/place", max_detail_chars)) {
    put_str(place, code_points(*where) <= max_locality_chars ? "locality" : "detail", *where);
  }
  if (!place.ObjectEmpty()) {
    put(event, "place", std::move(place));
  }
  if (event.MemberCount() > 1) {
    put_str(event, "note", "disappearance (INTERPOL yellow notice date_of_event, place, country)");
    value events(rapidjson::kArrayType);
    events.PushBack(event, a_);
    put(body, "events", std::move(events));
  }
  value linked(rapidjson::kArrayType);
  embedded(root, &linked);
  if (!linked.Empty()) {
    put(body, "linkedPersons", std::move(linked));
  }
  return body;
}

void decoder::run(const value& root, const std::string& entity_id, const std::string& fingerprint) {
  // Members this adapter does not map for this notice type are kept, never refused.
  for (const auto& m : root.GetObject()) {
    const std::string_view member = view_of(m.name);
    const bool mapped = listed(person_members, member) ||
                        (type_ == notice_type::red && listed(red_members, member)) ||
                        (type_ == notice_type::yellow && listed(yellow_members, member));
    if (!mapped && !m.value.IsNull()) {
      keep("/" + json::escape_pointer_token(member), m.value);
    }
  }
  value subject = person(root);
  value body(rapidjson::kObjectType);
  if (type_ == notice_type::red) {
    body = wanted_body(root, std::move(subject), entity_id);
    embedded(root, nullptr);
  } else {
    body = victim_body(root, std::move(subject));
  }
  if (!errors_.empty()) {
    return;
  }
  const bool red = type_ == notice_type::red;
  out_.SetObject();
  put_str(out_, "mx", "1");
  put_str(out_, "id",
          derived_message_id(ctx_.message_id_key, ctx_.sender, entity_id + "#" + fingerprint));
  put_str(out_, "type", red ? "person.wanted" : "victim.identification");
  put_str(out_, "created", format_rfc3339_ms(ctx_.now));
  put_str(out_, "sender", ctx_.sender);
  put_str(out_, "ref", entity_id);
  put_str(out_, "legalBasis", red ? "crime-prevention" : "vital-interest");
  value handling(rapidjson::kObjectType);
  put_str(handling, "confidentiality", "restricted");
  value codes(rapidjson::kArrayType);
  codes.PushBack("H0", a_);
  put(handling, "codes", std::move(codes));
  put_str(handling, "onwardTransfer", "allowed");
  value purposes(rapidjson::kArrayType);
  if (red) {
    purposes.PushBack("investigation", a_);
  } else {
    purposes.PushBack("victim-protection", a_);
    purposes.PushBack("identity-verification", a_);
  }
  put(handling, "purposes", std::move(purposes));
  put(out_, "handling", std::move(handling));
  value source(rapidjson::kObjectType);
  put_str(source, "agency", source_agency);
  put_str(source, "recordId", entity_id);
  put(out_, "source", std::move(source));
  if (!unmapped_.ObjectEmpty()) {
    put(out_, "unmapped", std::move(unmapped_));
  }
  put(out_, "body", std::move(body));
}

}  // namespace

std::string_view to_string(notice_type type) {
  switch (type) {
    case notice_type::red: return "red";
    case notice_type::yellow: return "yellow";
    case notice_type::un: return "un";
  }
  return "red";
}

std::optional<notice_type> notice_type_of(std::string_view name) {
  const std::string lower = lower_ascii(name);
  if (lower == "red") {
    return notice_type::red;
  }
  if (lower == "yellow") {
    return notice_type::yellow;
  }
  if (lower == "un") {
    return notice_type::un;
  }
  return std::nullopt;
}

bool is_entity_id(std::string_view entity_id) {
  if (entity_id.size() < 6 || entity_id.size() > 17 || entity_id[4] != '/') {
    return false;
  }
  const auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(entity_id.substr(0, 4)) && digits(entity_id.substr(5));
}

std::optional<notice_type> detail_type(const rapidjson::Value& detail) {
  if (!detail.IsObject()) {
    return std::nullopt;
  }
  auto links = detail.FindMember("_links");
  if (links != detail.MemberEnd() && links->value.IsObject()) {
    auto self = links->value.FindMember("self");
    if (self != links->value.MemberEnd() && self->value.IsObject()) {
      const std::string_view href = json::get_string(self->value, "href");
      constexpr std::string_view marker = "/notices/v1/";
      if (const auto at = href.find(marker); at != std::string_view::npos) {
        std::string_view rest = href.substr(at + marker.size());
        if (auto type = notice_type_of(rest.substr(0, rest.find('/')))) {
          return type;
        }
      }
    }
  }
  if (detail.HasMember("arrest_warrants")) {
    return notice_type::red;
  }
  for (const auto name : yellow_only_members) {
    if (detail.HasMember(
            rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size())))) {
      return notice_type::yellow;
    }
  }
  return std::nullopt;
}

std::string content_fingerprint(const rapidjson::Value& detail) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  write_sorted(detail, w);
  return sha256_hex({buffer.GetString(), buffer.GetSize()});
}

decode_result decode_notice(std::string_view bytes, const adapter_context& ctx) {
  decode_result result;
  if (auto error = json::parse_untrusted(bytes, result.message)) {
    result.status = 400;
    result.errors.push_back({"", "not acceptable JSON at byte offset " +
                                     std::to_string(error->offset) + ": " + error->reason});
    return result;
  }
  const auto refuse = [&](int status, std::string pointer, std::string reason) {
    result.status = status;
    result.errors.push_back({std::move(pointer), std::move(reason)});
    result.message.SetNull();
    return std::move(result);
  };
  if (!result.message.IsObject()) {
    return refuse(400, "", "an INTERPOL notice detail is a JSON object");
  }
  const auto type = detail_type(result.message);
  if (!type) {
    return refuse(400, "/_links/self/href",
                  "does not name the notice type (/notices/v1/red/... or /notices/v1/yellow/...)");
  }
  const value* id = result.message.HasMember("entity_id") ? &result.message["entity_id"] : nullptr;
  if (id == nullptr || id->IsNull()) {
    return refuse(400, "/entity_id", "is required: a notice detail names its entity_id");
  }
  if (!id->IsString() || !is_entity_id(view_of(*id))) {
    return refuse(422, "/entity_id", "is not an entity id YYYY/NNNNN");
  }
  if (*type == notice_type::un) {
    return refuse(422, "/_links/self/href",
                  "is a UN Security Council notice: UN notices are not routed (see "
                  "docs/adapters/interpol.md)");
  }
  if (ctx.tables == nullptr) {
    return refuse(500, "", "the gateway's code tables are not loaded");
  }
  const std::string entity_id(view_of(*id));
  const std::string fingerprint = content_fingerprint(result.message);
  rapidjson::Document input;
  input.Swap(result.message);
  decoder(ctx, *type, result.message, result.errors).run(input, entity_id, fingerprint);
  if (!result.errors.empty()) {
    result.status = 422;
    result.message.SetNull();
  }
  return result;
}

}  // namespace mxgw::adapters::interpol
