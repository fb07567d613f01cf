// KH-CNP lookups in the code tables, script detection and small text helpers (see kh_cnp.hpp).
#include <algorithm>
#include <cctype>

#include "adapters/kh-cnp/kh_cnp.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/code_tables.hpp"

namespace mxgw::adapters::kh_cnp {
namespace {

std::string_view view_of(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// The entry's `partnerCodes["kh-cnp"]` array, or nullptr.
const rapidjson::Value* kh_codes(const rapidjson::Value& entry) {
  if (!entry.IsObject()) {
    return nullptr;
  }
  auto codes = entry.FindMember("partnerCodes");
  if (codes == entry.MemberEnd() || !codes->value.IsObject()) {
    return nullptr;
  }
  auto kh = codes->value.FindMember(rapidjson::StringRef(mxgw::json::non_null(partner_key), partner_key.size()));
  if (kh == codes->value.MemberEnd() || !kh->value.IsArray()) {
    return nullptr;
  }
  return &kh->value;
}

std::string upper_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

/// The entry of `table` whose string member `column` equals `value`, or nullptr.
const rapidjson::Value* entry_by(const pipeline::code_tables* tables, std::string_view table,
                                 const char* column, std::string_view value) {
  const pipeline::code_table* t = tables == nullptr ? nullptr : tables->find(table);
  if (t == nullptr) {
    return nullptr;
  }
  if (value.empty()) {
    return nullptr;
  }
  const auto& found = t->entries_where(column, value);  // an index, not a scan
  return found.empty() ? nullptr : found.front();
}

/// Reads one code point from valid UTF-8 at `i` and advances; U+FFFD on a broken sequence.
char32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : 4;
  if (i + length > text.size() || (lead >= 0x80 && (lead >> 6) == 0x2)) {
    ++i;
    return U'\uFFFD';
  }
  char32_t cp = length == 1   ? lead
                : length == 2 ? lead & 0x1F
                : length == 3 ? lead & 0x0F
                              : lead & 0x07;
  for (std::size_t k = 1; k < length; ++k) {
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += length;
  return cp;
}

enum class script_class { neutral, khmer, latin, lao, thai, other };

script_class classify(char32_t cp) {
  if ((cp >= U'A' && cp <= U'Z') || (cp >= U'a' && cp <= U'z')) {
    return script_class::latin;
  }
  if (cp < 0x80) {
    return script_class::neutral;  // digits, spaces, ASCII punctuation
  }
  if ((cp >= 0x00C0 && cp <= 0x024F && cp != 0x00D7 && cp != 0x00F7) ||
      (cp >= 0x1E00 && cp <= 0x1EFF)) {
    return script_class::latin;  // Latin-1 letters, Latin Extended-A/B, Vietnamese
  }
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x00A0 && cp <= 0x00BF) ||
      (cp >= 0x2000 && cp <= 0x206F)) {
    return script_class::neutral;  // combining marks, Latin-1 punctuation, general punctuation
  }
  if ((cp >= 0x1780 && cp <= 0x17FF) || (cp >= 0x19E0 && cp <= 0x19FF)) {
    return script_class::khmer;  // Khmer, Khmer Symbols
  }
  if (cp >= 0x0E80 && cp <= 0x0EFF) {
    return script_class::lao;
  }
  if (cp >= 0x0E00 && cp <= 0x0E7F) {
    return script_class::thai;
  }
  return script_class::other;
}

}  // namespace

std::optional<std::string> table_view::from_kh(std::string_view table,
                                               std::string_view kh_value) const {
  const pipeline::code_table* t = tables_ == nullptr ? nullptr : tables_->find(table);
  if (t == nullptr) {
    return std::nullopt;
  }
  // The first entry (file order) whose partnerCodes["kh-cnp"] lists the value (an index).
  const auto& found = t->entries_by_partner_code(partner_key, kh_value);
  if (found.empty()) {
    return std::nullopt;
  }
  return std::string(json::get_string(*found.front(), "code"));
}

std::optional<std::string> table_view::to_kh(std::string_view table, std::string_view code) const {
  const rapidjson::Value* entry = tables_ == nullptr ? nullptr : tables_->entry(table, code);
  const rapidjson::Value* codes = entry == nullptr ? nullptr : kh_codes(*entry);
  if (codes == nullptr || codes->Empty() || !(*codes)[0].IsString()) {
    return std::nullopt;
  }
  return std::string(view_of((*codes)[0]));
}

std::optional<std::string> table_view::country_from_alpha3(std::string_view alpha3) const {
  const rapidjson::Value* entry = entry_by(tables_, "country", "alpha3", upper_ascii(alpha3));
  if (entry == nullptr) {
    return std::nullopt;
  }
  return std::string(json::get_string(*entry, "code"));
}

std::optional<std::string> table_view::alpha3_of_country(std::string_view alpha2) const {
  const rapidjson::Value* entry = tables_ == nullptr ? nullptr : tables_->entry("country", alpha2);
  const auto alpha3 = entry == nullptr ? std::string_view() : json::get_string(*entry, "alpha3");
  if (alpha3.empty()) {
    return std::nullopt;
  }
  return std::string(alpha3);
}

std::optional<std::string> table_view::language_from_639_1(std::string_view iso639_1) const {
  const rapidjson::Value* entry = entry_by(tables_, "language", "iso639_1", lower_ascii(iso639_1));
  if (entry == nullptr) {
    return std::nullopt;
  }
  return std::string(json::get_string(*entry, "code"));
}

std::optional<std::string> table_view::iso639_1_of_language(std::string_view iso639_3) const {
  const rapidjson::Value* entry =
      tables_ == nullptr ? nullptr : tables_->entry("language", iso639_3);
  const auto code = entry == nullptr ? std::string_view() : json::get_string(*entry, "iso639_1");
  if (code.empty()) {
    return std::nullopt;
  }
  return std::string(code);
}

std::optional<std::string> table_view::region_of_province(std::int64_t province) const {
  const pipeline::code_table* t = tables_ == nullptr ? nullptr : tables_->find("region");
  if (t == nullptr) {
    return std::nullopt;
  }
  for (const rapidjson::Value* entry : t->entries_where("partnerCode", province)) {
    if (json::get_string(*entry, "country") == "KH") {
      return std::string(json::get_string(*entry, "code"));
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> table_view::province_of_region(std::string_view region) const {
  const rapidjson::Value* entry = tables_ == nullptr ? nullptr : tables_->entry("region", region);
  if (entry == nullptr || json::get_string(*entry, "country") != "KH") {
    return std::nullopt;
  }
  auto number = entry->FindMember("partnerCode");
  if (number == entry->MemberEnd() || !number->value.IsInt64()) {
    return std::nullopt;
  }
  return number->value.GetInt64();
}

std::string_view detect_script(std::string_view text) {
  script_class seen = script_class::neutral;
  for (std::size_t i = 0; i < text.size();) {
    const script_class c = classify(next_code_point(text, i));
    if (c == script_class::neutral) {
      continue;
    }
    if (c == script_class::other || (seen != script_class::neutral && seen != c)) {
      return "Zyyy";
    }
    seen = c;
  }
  switch (seen) {
    case script_class::khmer: return "Khmr";
    case script_class::latin: return "Latn";
    case script_class::lao: return "Laoo";
    case script_class::thai: return "Thai";
    default: return "Zyyy";
  }
}

bool written_in(std::string_view text, std::string_view script) {
  for (std::size_t i = 0; i < text.size();) {
    const script_class c = classify(next_code_point(text, i));
    const std::string_view name = c == script_class::khmer   ? "Khmr"
                                  : c == script_class::latin ? "Latn"
                                  : c == script_class::lao   ? "Laoo"
                                  : c == script_class::thai  ? "Thai"
                                                             : "";
    if (c != script_class::neutral && name != script) {
      return false;
    }
  }
  return true;
}

std::size_t code_points(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::vector<std::string_view> split_name(std::string_view text) {
  constexpr std::size_t max_parts = 10;
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
      ++i;
    }
    if (i >= text.size()) {
      break;
    }
    if (parts.size() + 1 == max_parts) {
      std::string_view rest = text.substr(i);
      while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) {
        rest.remove_suffix(1);
      }
      parts.emplace_back(rest);
      break;
    }
    const std::size_t end = text.find_first_of(" \t", i);
    parts.emplace_back(text.substr(i, end == std::string_view::npos ? text.npos : end - i));
    i = end == std::string_view::npos ? text.size() : end;
  }
  return parts;
}

bool looks_like_uuid(std::string_view text) {
  if (text.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !std::isxdigit(static_cast<unsigned char>(text[i]))) {
      return false;
    }
  }
  return true;
}

std::string quoted_value(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return "'" + std::string(text) + "'";
  }
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return "'" + std::string(text.substr(0, cut)) + "...'";
}

const issuer_field court_field{
    .format = "KH-CNP",
    .name = "court",
    .reads_as = "Cambodian",
    .max_chars = max_court_chars,
    .blanks = " \t",
    .show_code = [](std::string_view code) { return quoted_value(code, 16); },
    .unknown_code =
        [](const std::string& shown) { return "unknown code " + shown + " (table country)"; },
};

}  // namespace mxgw::adapters::kh_cnp
