// Names across scripts, with ICU behind this header: Unicode NFC, Vietnamese -> ICAO Doc 9303
// Latin, Khmer and Lao -> Latin by rule files (config/translit/), a comparison key, and the step
// that adds a gateway transliteration to a canonical person who has no plain Latin name.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::pipeline {

using identity::config_problem;

/// True when `text` is valid UTF-8 in Unicode Normalization Form C.
bool is_nfc(std::string_view text);

/// `text` in NFC. Precondition: valid UTF-8 (invalid sequences come back as U+FFFD).
std::string to_nfc(std::string_view text);

/// Puts every string of `value` (member names and values, at any depth) into NFC, in place.
/// Returns how many strings changed.
std::size_t normalise_strings(rapidjson::Value& value, rapidjson::Document::AllocatorType& alloc);

/// The JSON Pointer of the first string value (or member name) of `value` that is not NFC, or
/// nullopt when all are. `at` is the pointer of `value` itself.
std::optional<std::string> first_non_nfc(const rapidjson::Value& value, const std::string& at = "");

/// ICAO Doc 9303 Latin: marks removed (tones and vowel marks of Vietnamese), Đ/đ and Ð/ð -> D,
/// ß -> SS,
/// Æ -> AE, Ø and Œ -> OE, Þ -> TH, upper case; runs of spaces collapsed, ends trimmed. Letters
/// of other scripts are kept as they are (transliterate them first).
/// Example: "Đặng Thị Ngọc Hân" -> "DANG THI NGOC HAN".
std::string icao_latin(std::string_view text);

/// True when every letter of `text` is an unaccented basic Latin letter (A-Z, a-z).
bool is_plain_latin(std::string_view text);

/// A key under which spellings of the same name compare equal (see docs/canonical.md, "Names"):
/// icao_latin, then every run of spaces, punctuation and symbols (ASCII or not: a no-break space,
/// a curly apostrophe, an en dash) becomes one space, letters of other scripts are kept, then in
/// each word: OU -> U, a final NH -> N, a final KH -> K, a final Y -> I, a final E after a
/// consonant is dropped (words longer than three letters), and doubled consonants are single.
/// "Houaphanh" and "Houaphan" -> "HUAPHAN"; "Somphone" and "Sômphon" -> "SOMPHON".
std::string comparison_key(std::string_view latin);

/// Script -> Latin transliterators compiled from ICU rule files: config/translit/<Script>-Latn.txt
/// where <Script> is an ISO 15924 code (Khmr, Laoo). Immutable and thread-safe once loaded.
class transliterators {
 public:
  transliterators();
  ~transliterators();
  transliterators(transliterators&&) noexcept;
  transliterators& operator=(transliterators&&) noexcept;

  /// Compiles every *.txt in `dir`. A file not named <Script>-Latn.txt, an unreadable file and
  /// rules ICU refuses are problems naming the file and, for rules, ICU's line, offset and the
  /// text around it. A missing directory is a problem too.
  static transliterators load(const std::filesystem::path& dir,
                              std::vector<config_problem>& problems);

  /// Compiles one rule text (the content of a rule file); `name` names it in problems.
  /// Returns false and appends a problem when ICU refuses the rules.
  bool add(std::string_view script, std::string_view rules, const std::string& name,
           std::vector<config_problem>& problems);

  /// The scripts that have rules, sorted.
  std::vector<std::string> scripts() const;

  /// `text` written in `script` -> ICAO Latin (upper case, see icao_latin), or nullopt when
  /// there are no rules for `script`. Latin text of another script in `text` passes through.
  std::optional<std::string> to_latin(std::string_view script, std::string_view text) const;

 private:
  struct rules;
  std::map<std::string, std::shared_ptr<rules>, std::less<>> by_script_;
};

/// Adds a gateway transliteration to each person of a canonical message (every `names` array of
/// Name objects, at any depth) that has no plain-Latin name: from each Khmer or Lao name a
/// Latin one (`translit` may be null: then only Vietnamese/other Latin with diacritics is
/// handled), from each Latin name with diacritics its ICAO form; `kind: "transliteration"`,
/// `script: "Latn"`, the source's `order`. A partner's own plain-Latin spelling is never replaced
/// and stops the step for that person. Idempotent; never makes a person exceed 50 names or a
/// name part exceed 256 bytes. Returns the number of names added.
std::size_t add_transliterations(rapidjson::Document& message, const transliterators* translit);

}  // namespace mxgw::pipeline
