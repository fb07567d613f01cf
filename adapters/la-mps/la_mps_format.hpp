// LA-MPS-XML/1.3's own vocabulary (message types, roles, name scripts, ...), the encoding fallbacks
// and the text helpers the decoder and the encoder share.
#pragma once

#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/common/issuing_country.hpp"
#include "adapters/common/name_order.hpp"
#include "adapters/la-mps/la_mps_xml.hpp"

namespace mxgw::adapters::la_mps {

using json_value = rapidjson::Value;
using json_allocator = rapidjson::Document::AllocatorType;

inline constexpr std::string_view root_element = "LaoPoliceMessage";
inline constexpr const char* root_path = "/LaoPoliceMessage";
inline constexpr const char* format_version = "1.3";
inline constexpr int lao_offset_minutes = 420;       // LA-MPS times are local, UTC+07:00
inline constexpr std::size_t max_quoted_chars = 64;  // longest partner value quoted in an error
inline constexpr int be_offset = 543;
inline constexpr std::size_t max_errors = 100;  // errors listed for one document

// Keys of values LA-MPS sends that the canonical model has no field for; always kept in
// `unmapped` so that nothing is lost and an LA-MPS recipient gets them back.
inline constexpr const char* village_key = "/LaoPoliceMessage/Person/Home/@village";
inline constexpr const char* reply_to_key = "/LaoPoliceMessage/@replyTo";
inline constexpr const char* narrative_key = "/LaoPoliceMessage/Narrative";
inline constexpr const char* narrative_lang_key = "/LaoPoliceMessage/Narrative/@lang";
inline constexpr const char* receipt_text_key = "/LaoPoliceMessage/Receipt";
// Name under which a replyTo that is not a UUID is turned into a placeholder id. A partner id
// cannot contain ':', so the placeholder never equals an id derived for a real sender.
inline constexpr std::string_view reply_to_namespace = "la-mps:reply-to";

/// A value of one of LA-MPS's own code lists and its canonical counterpart.
struct code_pair {
  std::string_view partner;
  std::string_view canonical;
};

inline constexpr std::array<code_pair, 6> message_types{{
    {"victim", "victim.identification"},
    {"wanted", "person.wanted"},
    {"hotline", "hotline.tip"},
    {"verify-request", "verification.request"},
    {"verify-reply", "verification.result"},
    {"receipt", "receipt"},
}};

inline constexpr std::array<code_pair, 2> name_scripts{{{"lao", "Laoo"}, {"latin", "Latn"}}};

// Person roles; in a hotline message they become the subject roles of hotline.tip. A hotline's
// `subject` is the person the tip is about (a missing girl, say): a possible victim, so that
// routing withholds what it withholds for victims. On the way out `possible-victim` is `victim`.
inline constexpr std::array<code_pair, 3> subject_roles{{
    {"victim", "possible-victim"},
    {"suspect", "suspected-trafficker"},
    {"subject", "possible-victim"},
}};

inline constexpr std::array<code_pair, 3> narrative_languages{
    {{"lo", "lao"}, {"en", "eng"}, {"vi", "vie"}}};

inline constexpr std::array<std::string_view, 3> urgencies{"immediate", "high", "normal"};
inline constexpr std::array<std::string_view, 2> receipt_statuses{"received", "rejected"};
inline constexpr std::array<std::string_view, 5> answer_results{"confirmed", "not-confirmed",
                                                                "partial", "no-record", "refused"};
inline constexpr std::array<std::string_view, 5> verification_purposes{
    "nationality", "identity", "family-tracing", "document-authenticity", "criminal-record"};

// Encoding only: canonical codes without an LA-MPS code, written as the LA-MPS code that
// contains them (the canonical code cannot be told apart again on the way back).
inline constexpr std::array<code_pair, 2> exploitation_fallbacks{{
    {"labour", "child-labour"},
    {"other", "servitude"},
}};
inline constexpr std::array<code_pair, 4> document_fallbacks{{
    {"other", "citizen-id"},
    {"other", "border-pass"},
    {"other", "residence-permit"},
    {"other", "work-permit"},
}};
// A witness has no LA-MPS role: it is written as the neutral `subject` (and so comes back as a
// possible victim, the more protected reading).
inline constexpr std::array<code_pair, 1> role_fallbacks{{{"subject", "witness"}}};
inline constexpr std::array<code_pair, 4> channel_fallbacks{{
    {"province", "hotline-111"},
    {"province", "hotline-1288"},
    {"web", "zalo"},
    {"web", "facebook"},
}};

// Name order. LA-MPS gives a name's family and given parts in their own attributes and says
// nothing of the order the full name is written in, which is the naming custom of the person
// (adapters/common/name_order.hpp): read from the person's nationalities; with no nationality at
// all, a name in Lao script -> given-first; otherwise the order is left out rather than guessed.

/// The canonical `order` of the <Name>s of a person with these nationalities (alpha-2), or
/// nullopt when it cannot be told. `lao_script_name`: the person has a <Name script="lao">.
inline std::optional<std::string_view> name_order(const std::vector<std::string>& nationalities,
                                                  bool lao_script_name) {
  if (const auto order = name_order_of(nationalities)) {
    return order;
  }
  if (nationalities.empty() && lao_script_name) {
    return "given-first";
  }
  return std::nullopt;
}

template <std::size_t N>
std::optional<std::string_view> to_canonical(const std::array<code_pair, N>& list,
                                             std::string_view partner) {
  for (const auto& pair : list) {
    if (pair.partner == partner) {
      return pair.canonical;
    }
  }
  return std::nullopt;
}

template <std::size_t N>
std::optional<std::string_view> to_partner(const std::array<code_pair, N>& list,
                                           std::string_view canonical) {
  for (const auto& pair : list) {
    if (pair.canonical == canonical) {
      return pair.partner;
    }
  }
  return std::nullopt;
}

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

template <std::size_t N>
std::string joined(const std::array<std::string_view, N>& list) {
  std::string out;
  for (const auto& v : list) {
    out += out.empty() ? "" : ", ";
    out += v;
  }
  return out;
}

// ---- text helpers ----

// Text helpers

/// Decodes the code point at `i` of valid UTF-8 and advances `i`.
inline char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  char32_t cp = length == 1   ? c
                : length == 2 ? (c & 0x1Fu)
                : length == 3 ? (c & 0x0Fu)
                              : (c & 0x07u);
  for (std::size_t k = 1; k < length && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
  }
  i += length;
  return cp;
}

/// Length in code points (what JSON Schema maxLength counts).
inline std::size_t length_of(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0u) != 0x80u) {
      ++n;
    }
  }
  return n;
}

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline std::string trimmed(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_space(s[b])) {
    ++b;
  }
  while (e > b && is_space(s[e - 1])) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

inline bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_space);
}

/// A partner value for an error message: at most max_quoted_chars code points, in quotes.
inline std::string quote(std::string_view value) {
  std::string out = "'";
  std::size_t i = 0;
  std::size_t chars = 0;
  while (i < value.size() && chars < max_quoted_chars) {
    const std::size_t start = i;
    next_code_point(value, i);
    out.append(value.substr(start, i - start));
    ++chars;
  }
  if (i < value.size()) {
    out += "...";
  }
  return out + "'";
}

/// Name parts: the attribute split at spaces (U+0020), empty parts dropped.
inline std::vector<std::string> name_parts(std::string_view value) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(' ', start);
    if (end == std::string_view::npos) {
      end = value.size();
    }
    if (end > start) {
      parts.emplace_back(value.substr(start, end - start));
    }
    start = end + 1;
  }
  return parts;
}

/// The script of an alias, told from its letters: Laoo, Latn, Khmr or Thai when all letters are
/// of that one script, Zyyy (undetermined) when there are none or several.
inline std::string_view alias_script(std::string_view text) {
  bool lao = false, latin = false, khmer = false, thai = false, other = false;
  std::size_t i = 0;
  while (i < text.size()) {
    const char32_t cp = next_code_point(text, i);
    if (cp < 0x80) {
      latin = latin || (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
    } else if (cp >= 0x0E80 && cp <= 0x0EFF) {
      lao = true;
    } else if (cp >= 0x0E00 && cp <= 0x0E7F) {
      thai = true;
    } else if ((cp >= 0x1780 && cp <= 0x17FF) || (cp >= 0x19E0 && cp <= 0x19FF)) {
      khmer = true;
    } else if ((cp >= 0x00C0 && cp <= 0x024F && cp != 0xD7 && cp != 0xF7) ||
               (cp >= 0x1E00 && cp <= 0x1EFF)) {
      latin = true;
    } else if ((cp >= 0x0300 && cp <= 0x036F) || cp == 0xA0 || (cp >= 0x2000 && cp <= 0x206F) ||
               (cp >= 0x0080 && cp <= 0x00BF)) {
      // combining marks, spaces and punctuation say nothing about the script
    } else {
      other = true;
    }
  }
  const int scripts = int{lao} + int{latin} + int{khmer} + int{thai} + int{other};
  if (scripts != 1 || other) {
    return "Zyyy";
  }
  return lao ? "Laoo" : latin ? "Latn" : khmer ? "Khmr" : "Thai";
}

inline bool is_uuid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') {
        return false;
      }
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

inline std::string lower_ascii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

inline std::string upper_ascii(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

// ---- a warrant's issuing country ----

/// Longest `<Warrant authority>` either direction takes, mark included, in characters (the
/// canonical issuingAuthority's limit).
inline constexpr std::size_t max_authority_chars = 256;

/// A country code from a mark for an error message: quoted when it is shaped like a code (at
/// most three ASCII letters); anything else may be a name or a number written in the wrong place
/// and is described, not quoted.
inline std::string quoted_country_code(std::string_view code) {
  const bool letters = std::all_of(code.begin(), code.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
  if (letters && code.size() <= 3) {
    return "'" + std::string(code) + "'";
  }
  return "a code that is not three letters";
}

/// Why a country code from a mark, shown as quoted_country_code shows it, is refused.
inline std::string unknown_country_code(const std::string& shown) {
  return shown + " is not in table 'country'";
}

/// LA-MPS has no field for a warrant's issuing country; `<Warrant authority>` (the issuing
/// authority) is where a warrant names it: "<authority> (issuing country: <alpha-3>)", the mark
/// the kh-cnp adapter writes in its `court` (adapters/common/issuing_country.hpp). The gateway
/// writes it on every warrant it sends, and reads it from every warrant it receives. Blanks
/// around the mark and its code are those of is_space.
inline constexpr issuer_field authority_field{
    .format = "LA-MPS",
    .name = "authority",
    .reads_as = "Lao",
    .max_chars = max_authority_chars,
    .blanks = " \t\n\r",
    .show_code = quoted_country_code,
    .unknown_code = unknown_country_code,
};

/// `text` with every byte sequence XML 1.0 cannot carry replaced by '?' (for error bodies).
inline std::string xml_safe_copy(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t length = 1;
    const auto c = static_cast<unsigned char>(text[i]);
    length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    const std::string_view piece = text.substr(i, std::min(length, text.size() - i));
    if (la_mps::is_xml_text(piece)) {
      out.append(piece);
      i += piece.size();
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

}  // namespace mxgw::adapters::la_mps
