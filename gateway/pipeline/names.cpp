// Names across scripts (see names.hpp). ICU stays inside this file.
#include "gateway/pipeline/names.hpp"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/parseerr.h>
#include <unicode/translit.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "gateway/common/json.hpp"

namespace mxgw::pipeline {
namespace {

constexpr std::size_t max_names = 50;        // common.json person.names maxItems
constexpr std::size_t max_part_bytes = 256;  // common.json name part maxLength (code points)

icu::UnicodeString from_utf8(std::string_view text) {
  return icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<std::int32_t>(text.size())));
}

std::string to_utf8(const icu::UnicodeString& text) {
  std::string out;
  text.toUTF8String(out);
  return out;
}

const icu::Normalizer2& nfc() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status) || n == nullptr) {
    std::abort();  // ICU's own data is missing: a broken installation, not an input problem
  }
  return *n;
}

const icu::Normalizer2& nfd() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFDInstance(status);
  if (U_FAILURE(status) || n == nullptr) {
    std::abort();
  }
  return *n;
}

// Spaces collapsed, ends trimmed.
std::string collapse_spaces(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) {
      out += ' ';
      space = false;
    }
    out += c;
  }
  return out;
}

bool is_vowel(char c) {
  return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U' || c == 'Y';
}

std::string fold_word(std::string word) {
  // OU -> U (Louang/Luang, Houaphan/Huaphan).
  for (std::size_t at = word.find("OU"); at != std::string::npos; at = word.find("OU", at)) {
    word.replace(at, 2, "U");
  }
  const auto ends_with = [&](std::string_view tail) {
    return word.size() >= tail.size() &&
           std::string_view(word).substr(word.size() - tail.size()) == tail;
  };
  if (word.size() > 3 && ends_with("NH")) {
    word.pop_back();
    word.back() = 'N';
  } else if (word.size() > 3 && ends_with("KH")) {
    word.pop_back();
  }
  if (word.size() > 3 && word.back() == 'E' && !is_vowel(word[word.size() - 2])) {
    word.pop_back();
  }
  if (word.size() > 1 && word.back() == 'Y' && !is_vowel(word[word.size() - 2])) {
    word.back() = 'I';
  }
  std::string single;
  for (char c : word) {
    if (single.empty() || single.back() != c || is_vowel(c)) {
      single += c;
    }
  }
  return single;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot be read");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view view_of(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

}  // namespace

bool is_nfc(std::string_view text) {
  // Fast path: ASCII is always NFC. Eight bytes at a time: most strings of a message are ASCII
  // (codes, dates, ids), and every one of them is checked.
  std::size_t i = 0;
  std::uint64_t high = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + i, 8);
    high |= word;
  }
  for (; i < text.size(); ++i) {
    high |= static_cast<unsigned char>(text[i]);
  }
  if ((high & 0x8080808080808080ULL) == 0) {
    return true;
  }
  // Checked on the UTF-8 itself, with no conversion to UTF-16 (which cost an allocation and a
  // copy for every non-ASCII string of every message).
  UErrorCode status = U_ZERO_ERROR;
  const bool normal = nfc().isNormalizedUTF8(
      icu::StringPiece(text.data(), static_cast<std::int32_t>(text.size())), status);
  return U_SUCCESS(status) && normal;
}

std::string to_nfc(std::string_view text) {
  if (is_nfc(text)) {
    return std::string(text);
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString out = nfc().normalize(from_utf8(text), status);
  return U_SUCCESS(status) ? to_utf8(out) : std::string(text);
}

std::size_t normalise_strings(rapidjson::Value& value, rapidjson::Document::AllocatorType& alloc) {
  std::size_t changed = 0;
  const auto fix = [&](rapidjson::Value& s) {
    const std::string_view text = view_of(s);
    if (!is_nfc(text)) {
      const std::string normal = to_nfc(text);
      s.SetString(normal.data(), static_cast<rapidjson::SizeType>(normal.size()), alloc);
      ++changed;
    }
  };
  if (value.IsString()) {
    fix(value);
  } else if (value.IsArray()) {
    for (auto& item : value.GetArray()) {
      changed += normalise_strings(item, alloc);
    }
  } else if (value.IsObject()) {
    for (auto& member : value.GetObject()) {
      fix(member.name);
      changed += normalise_strings(member.value, alloc);
    }
  }
  return changed;
}

namespace {
/// True when a string (or a member name) below `value` is not NFC; `at` is then its pointer.
/// `at` is one buffer for the whole walk: each level appends its token and cuts it back.
bool find_non_nfc(const rapidjson::Value& value, std::string& at) {
  if (value.IsString()) {
    return !is_nfc(view_of(value));
  }
  const std::size_t length = at.size();
  if (value.IsArray()) {
    for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
      json::append_pointer_index(at, i);
      if (find_non_nfc(value[i], at)) {
        return true;
      }
      at.resize(length);
    }
  } else if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      json::append_pointer_token(at, view_of(member.name));
      if (!is_nfc(view_of(member.name)) || find_non_nfc(member.value, at)) {
        return true;
      }
      at.resize(length);
    }
  }
  return false;
}
}  // namespace

std::optional<std::string> first_non_nfc(const rapidjson::Value& value, const std::string& at) {
  std::string path = at;
  path.reserve(256);
  if (find_non_nfc(value, path)) {
    return path;
  }
  return std::nullopt;
}

std::string icao_latin(std::string_view text) {
  // ASCII has nothing to decompose or drop: upper case is all (and ICU's round trip through
  // UTF-16 costs more than the rest of a name's comparison form).
  if (std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; })) {
    std::string upper(text);
    for (char& c : upper) {
      if (c >= 'a' && c <= 'z') {
        c = static_cast<char>(c - 'a' + 'A');
      }
    }
    return collapse_spaces(upper);
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString decomposed = nfd().normalize(from_utf8(text), status);
  if (U_FAILURE(status)) {
    return collapse_spaces(text);
  }
  icu::UnicodeString out;
  for (std::int32_t i = 0; i < decomposed.length();) {
    const UChar32 c = decomposed.char32At(i);
    i += U16_LENGTH(c);
    if (u_charType(c) == U_NON_SPACING_MARK) {
      continue;  // tones and vowel marks (and every other combining mark)
    }
    switch (c) {
      case 0x0110:  // Đ
      case 0x0111:  // đ (does not decompose under NFD, so it is mapped by name)
      case 0x00D0:  // Ð (eth, often typed for Đ)
      case 0x00F0:  // ð
        out.append(static_cast<UChar>('D'));
        break;
      case 0x00DF:  // ß
        out.append(icu::UnicodeString("SS"));
        break;
      case 0x00C6:  // Æ
      case 0x00E6: out.append(icu::UnicodeString("AE")); break;
      case 0x00D8:  // Ø
      case 0x00F8:
      case 0x0152:  // Œ
      case 0x0153: out.append(icu::UnicodeString("OE")); break;
      case 0x00DE:  // Þ
      case 0x00FE: out.append(icu::UnicodeString("TH")); break;
      case 0x0141:  // Ł
      case 0x0142: out.append(static_cast<UChar>('L')); break;
      case 0x0131:  // dotless i
        out.append(static_cast<UChar>('I'));
        break;
      default: out.append(c);
    }
  }
  out.toUpper(icu::Locale::getRoot());
  return collapse_spaces(to_utf8(out));
}

bool is_plain_latin(std::string_view text) {
  const icu::UnicodeString s = from_utf8(text);
  for (std::int32_t i = 0; i < s.length();) {
    const UChar32 c = s.char32At(i);
    i += U16_LENGTH(c);
    const bool ascii_letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!ascii_letter && (u_isalpha(c) || u_charType(c) == U_NON_SPACING_MARK)) {
      return false;
    }
  }
  return true;
}

std::string comparison_key(std::string_view latin) {
  const std::string upper = icao_latin(latin);
  std::string key;
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) {
      if (!key.empty()) {
        key += ' ';
      }
      key += fold_word(std::move(word));
      word.clear();
    }
  };
  for (std::int32_t i = 0, n = static_cast<std::int32_t>(upper.size()); i < n;) {
    const std::int32_t start = i;
    UChar32 c = 0;
    U8_NEXT(upper.data(), i, n, c);
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      word += static_cast<char>(c);
    } else if (c >= 0x80 && (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_M_MASK | U_GC_N_MASK)) != 0) {
      // A letter of another script: kept, so different names stay different.
      word.append(upper, static_cast<std::size_t>(start), static_cast<std::size_t>(i - start));
    } else {
      flush();  // ASCII or Unicode spaces and punctuation (a no-break space, N’Guyen, an en dash)
    }
  }
  flush();
  return key;
}

// --- transliterators -------------------------------------------------------------------------

struct transliterators::rules {
  std::unique_ptr<icu::Transliterator> compiled;
  std::mutex mutex;  // ICU transliterators are not documented as safe for concurrent use
};

transliterators::transliterators() = default;
transliterators::~transliterators() = default;
transliterators::transliterators(transliterators&&) noexcept = default;
transliterators& transliterators::operator=(transliterators&&) noexcept = default;

bool transliterators::add(std::string_view script, std::string_view rule_text,
                          const std::string& name, std::vector<config_problem>& problems) {
  const icu::UnicodeString text = from_utf8(rule_text);
  UParseError where{};
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::Transliterator> compiled(icu::Transliterator::createFromRules(
      icu::UnicodeString::fromUTF8(std::string(script) + "-Latn"), text, UTRANS_FORWARD, where,
      status));
  if (U_FAILURE(status) || !compiled) {
    // ICU reports an offset into the rules (its line number is often 0); give line and column.
    std::int32_t line = 1;
    std::int32_t column = 1;
    const std::int32_t offset = std::clamp<std::int32_t>(where.offset, 0, text.length());
    for (std::int32_t i = 0; i < offset; ++i) {
      if (text.charAt(i) == u'\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string near = to_utf8(icu::UnicodeString(where.preContext)) + "|" +
                       to_utf8(icu::UnicodeString(where.postContext));
    for (auto& c : near) {
      if (c == '\n' || c == '\r') {
        c = ' ';
      }
    }
    problems.push_back(
        {name, "line " + std::to_string(line) + ", column " + std::to_string(column),
         std::string("ICU refuses the rules: ") + u_errorName(status) + " near '" + near + "'"});
    return false;
  }
  auto entry = std::make_shared<rules>();
  entry->compiled = std::move(compiled);
  by_script_[std::string(script)] = std::move(entry);
  return true;
}

transliterators transliterators::load(const std::filesystem::path& dir,
                                      std::vector<config_problem>& problems) {
  transliterators result;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    problems.push_back({dir.string(), "", "is not a directory of transliteration rules"});
    return result;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".txt") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string stem = path.stem().string();
    const auto dash = stem.find('-');
    if (stem.size() != 9 || dash != 4 || stem.substr(5) != "Latn") {
      problems.push_back(
          {path.string(), "", "must be named <Script>-Latn.txt with an ISO 15924 script code"});
      continue;
    }
    std::string text;
    try {
      text = read_text_file(path);
    } catch (const std::exception& e) {
      problems.push_back({path.string(), "", e.what()});
      continue;
    }
    result.add(stem.substr(0, 4), text, path.string(), problems);
  }
  return result;
}

std::vector<std::string> transliterators::scripts() const {
  std::vector<std::string> out;
  for (const auto& [script, r] : by_script_) {
    out.push_back(script);
  }
  return out;
}

std::optional<std::string> transliterators::to_latin(std::string_view script,
                                                     std::string_view text) const {
  auto it = by_script_.find(script);
  if (it == by_script_.end()) {
    return std::nullopt;
  }
  icu::UnicodeString s = from_utf8(to_nfc(text));
  {
    std::lock_guard lock(it->second->mutex);
    it->second->compiled->transliterate(s);
  }
  // Rule files may use private-use characters as syllable marks; none may survive.
  icu::UnicodeString clean;
  for (std::int32_t i = 0; i < s.length();) {
    const UChar32 c = s.char32At(i);
    i += U16_LENGTH(c);
    if (u_charType(c) != U_PRIVATE_USE_CHAR) {
      clean.append(c);
    }
  }
  return icao_latin(to_utf8(clean));
}

// --- transliterations in canonical messages --------------------------------------------------

namespace {

std::vector<std::string> parts_of(const rapidjson::Value& name, const char* key) {
  std::vector<std::string> out;
  if (name.HasMember(key) && name[key].IsArray()) {
    for (const auto& p : name[key].GetArray()) {
      if (p.IsString()) {
        out.emplace_back(view_of(p));
      }
    }
  }
  return out;
}

std::string script_of(const rapidjson::Value& name) {
  return std::string(json::get_string(name, "script"));
}

bool is_transliteration(const rapidjson::Value& name) {
  return json::get_string(name, "kind") == "transliteration";
}

// The Latin form of one name's parts, or nullopt when it cannot be made (no rules for the script,
// an empty or over-long part).
std::optional<std::vector<std::string>> latin_parts(const std::vector<std::string>& parts,
                                                    std::string_view script,
                                                    const transliterators* translit) {
  std::vector<std::string> out;
  for (const auto& part : parts) {
    std::optional<std::string> latin;
    if (script == "Latn") {
      latin = icao_latin(part);
    } else if (translit != nullptr) {
      latin = translit->to_latin(script, part);
    }
    if (!latin || latin->empty() || latin->size() > max_part_bytes || !is_plain_latin(*latin)) {
      return std::nullopt;
    }
    out.push_back(std::move(*latin));
  }
  return out;
}

std::size_t enrich_person_names(rapidjson::Value& names, rapidjson::Document::AllocatorType& a,
                                const transliterators* translit) {
  std::set<std::string> present;  // family|given of the Latin names already there
  for (const auto& name : names.GetArray()) {
    if (!name.IsObject()) {
      return 0;  // not a list of Name objects: leave it to the schema check
    }
    if (script_of(name) == "Latn") {
      const auto family = parts_of(name, "family");
      const auto given = parts_of(name, "given");
      const bool plain = std::all_of(family.begin(), family.end(), is_plain_latin) &&
                         std::all_of(given.begin(), given.end(), is_plain_latin);
      if (plain && !is_transliteration(name)) {
        return 0;  // the partner's own Latin spelling is authoritative
      }
    }
  }
  for (const auto& name : names.GetArray()) {
    if (is_transliteration(name)) {
      std::string key;
      for (const auto& p : parts_of(name, "family")) {
        key += p + " ";
      }
      key += "|";
      for (const auto& p : parts_of(name, "given")) {
        key += p + " ";
      }
      present.insert(key);
    }
  }
  std::vector<rapidjson::Value> added;
  for (const auto& name : names.GetArray()) {
    if (is_transliteration(name)) {
      continue;
    }
    const std::string script = script_of(name);
    const auto family = latin_parts(parts_of(name, "family"), script, translit);
    const auto given = latin_parts(parts_of(name, "given"), script, translit);
    if (!family || !given || (family->empty() && given->empty())) {
      continue;
    }
    std::string key;
    for (const auto& p : *family) {
      key += p + " ";
    }
    key += "|";
    for (const auto& p : *given) {
      key += p + " ";
    }
    if (!present.insert(key).second || names.Size() + added.size() >= max_names) {
      continue;
    }
    rapidjson::Value latin(rapidjson::kObjectType);
    const auto put_parts = [&](const char* field, const std::vector<std::string>& parts) {
      if (parts.empty()) {
        return;
      }
      rapidjson::Value list(rapidjson::kArrayType);
      for (const auto& p : parts) {
        list.PushBack(rapidjson::Value(p.c_str(), static_cast<rapidjson::SizeType>(p.size()), a),
                      a);
      }
      latin.AddMember(rapidjson::StringRef(field), list, a);
    };
    put_parts("family", *family);
    put_parts("given", *given);
    latin.AddMember("script", "Latn", a);
    latin.AddMember("kind", "transliteration", a);
    if (name.HasMember("order") && name["order"].IsString()) {
      latin.AddMember("order", rapidjson::Value(name["order"], a), a);
    }
    added.push_back(std::move(latin));
  }
  for (auto& latin : added) {
    names.PushBack(latin, a);
  }
  return added.size();
}

std::size_t enrich(rapidjson::Value& value, rapidjson::Document::AllocatorType& a,
                   const transliterators* translit, int depth) {
  if (depth > 64) {
    return 0;
  }
  std::size_t count = 0;
  if (value.IsObject()) {
    for (auto& member : value.GetObject()) {
      if (view_of(member.name) == "names" && member.value.IsArray()) {
        count += enrich_person_names(member.value, a, translit);
      } else {
        count += enrich(member.value, a, translit, depth + 1);
      }
    }
  } else if (value.IsArray()) {
    for (auto& item : value.GetArray()) {
      count += enrich(item, a, translit, depth + 1);
    }
  }
  return count;
}

}  // namespace

std::size_t add_transliterations(rapidjson::Document& message, const transliterators* translit) {
  if (!message.IsObject() || !message.HasMember("body")) {
    return 0;
  }
  return enrich(message["body"], message.GetAllocator(), translit, 0);
}

}  // namespace mxgw::pipeline
