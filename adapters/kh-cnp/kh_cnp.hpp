// Internals of the KH-CNP-XCHG/2 adapter (Cambodian commissariats' JSON): code-table lookups by
// the KH columns, script detection, text helpers, and the decoder and encoder entry points.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "adapters/common/issuing_country.hpp"

namespace mxgw::pipeline {
class code_tables;
}

namespace mxgw::adapters::kh_cnp {

/// The `format` value of every KH-CNP message.
inline constexpr std::string_view format_name = "KH-CNP-XCHG/2";
/// The key of this format in the code tables' `partnerCodes`.
inline constexpr std::string_view partner_key = "kh-cnp";
/// Offset of the local times the adapter writes (Indochina Time, +07:00), in minutes.
inline constexpr int local_offset_minutes = 420;

/// Namespace of the placeholder id a RECEIPT names when its reply_to is not a reference the
/// gateway wrote (see adapters/common/references.hpp).
inline constexpr std::string_view reply_to_namespace = "kh-cnp:reply-to";

/// Key in the canonical `unmapped` of the `reason` of a RECEIVED receipt: a note on an
/// acknowledgement is not an error (canonical `errors` belong to a rejection), so it is kept
/// under its KH pointer and written back as `reason` when the receipt goes out to KH-CNP.
inline constexpr std::string_view receipt_reason_key = "/reason";

/// Longest `warrant.court` either direction takes, in characters (the canonical issuingAuthority's
/// limit, which a court with its country mark must also keep to).
inline constexpr std::size_t max_court_chars = 256;

/// KH-CNP has no field for a warrant's issuing country; its `court` ("issuing court or
/// authority") is where a warrant names it: "<court> (issuing country: <alpha-3>)", or the mark
/// alone when no court is known (adapters/common/issuing_country.hpp). The gateway writes it on
/// every warrant it sends, and reads it from every warrant it receives. Codes are quoted in errors
/// as quoted_value(code, 16) quotes them; spaces and tabs around the mark and its code are trimmed.
extern const issuer_field court_field;

/// A KH-CNP code and the canonical code it stands for, for the lists the format defines itself
/// (no table in config/mappings holds them).
struct code_pair {
  std::string_view kh;
  std::string_view canonical;
};

/// msg_kind <-> envelope type.
inline constexpr code_pair message_kinds[] = {{"VICTIM_REFERRAL", "victim.identification"},
                                              {"WANTED_PERSON", "person.wanted"},
                                              {"HOTLINE_TIP", "hotline.tip"},
                                              {"VERIFY_REQUEST", "verification.request"},
                                              {"VERIFY_REPLY", "verification.result"},
                                              {"RECEIPT", "receipt"}};
/// questions[] -> verification purpose (the first question decides; ADDRESS checks identity).
inline constexpr code_pair question_purposes[] = {{"IDENTITY", "identity"},
                                                  {"NATIONALITY", "nationality"},
                                                  {"FAMILY_TRACING", "family-tracing"},
                                                  {"ADDRESS", "identity"}};
/// answer.result <-> verification result.
inline constexpr code_pair answer_results[] = {
    {"CONFIRMED", "confirmed"}, {"NOT_CONFIRMED", "not-confirmed"}, {"PARTIAL", "partial"}};
/// RECEIPT status <-> receipt status.
inline constexpr code_pair receipt_statuses[] = {{"RECEIVED", "received"},
                                                 {"REJECTED", "rejected"}};
/// tip.urgency <-> urgency.
inline constexpr code_pair urgencies[] = {
    {"IMMEDIATE", "immediate"}, {"HIGH", "high"}, {"NORMAL", "normal"}};

/// The canonical code for KH code `kh` in `list`.
template <std::size_t N>
std::optional<std::string_view> canonical_of(const code_pair (&list)[N], std::string_view kh) {
  for (const auto& pair : list) {
    if (pair.kh == kh) {
      return pair.canonical;
    }
  }
  return std::nullopt;
}

/// The first KH code for canonical `code` in `list`.
template <std::size_t N>
std::optional<std::string_view> kh_of(const code_pair (&list)[N], std::string_view code) {
  for (const auto& pair : list) {
    if (pair.canonical == code) {
      return pair.kh;
    }
  }
  return std::nullopt;
}

/// Lookups in config/mappings by the columns KH-CNP uses: `partnerCodes["kh-cnp"]`, country
/// `alpha3`, language `iso639_1` and the region `partnerCode` (Cambodian province number).
/// Every lookup returns nullopt when the table or the value is unknown (a null `tables` knows
/// nothing).
class table_view {
 public:
  explicit table_view(const pipeline::code_tables* tables) : tables_(tables) {}

  /// The canonical code whose `partnerCodes["kh-cnp"]` lists `kh_value`.
  std::optional<std::string> from_kh(std::string_view table, std::string_view kh_value) const;
  /// The first KH code listed for canonical `code`.
  std::optional<std::string> to_kh(std::string_view table, std::string_view code) const;

  /// ISO 3166-1 alpha-3 (any case) -> alpha-2, and back.
  std::optional<std::string> country_from_alpha3(std::string_view alpha3) const;
  std::optional<std::string> alpha3_of_country(std::string_view alpha2) const;

  /// ISO 639-1 -> ISO 639-3, and back (nullopt for a language without a 639-1 code).
  std::optional<std::string> language_from_639_1(std::string_view iso639_1) const;
  std::optional<std::string> iso639_1_of_language(std::string_view iso639_3) const;

  /// Cambodian province number -> region code (`KH-16`), and back (KH regions only).
  std::optional<std::string> region_of_province(std::int64_t province) const;
  std::optional<std::int64_t> province_of_region(std::string_view region) const;

 private:
  const pipeline::code_tables* tables_;
};

/// ISO 15924 code of the script `text` is written in: `Khmr`, `Latn`, `Laoo` or `Thai` when every
/// letter belongs to that script (spaces, digits and punctuation are neutral), else `Zyyy`
/// (mixed, another script, or no letter at all).
std::string_view detect_script(std::string_view text);

/// True when no letter of `text` belongs to a script other than `script` (`Khmr`, `Latn`, `Laoo`
/// or `Thai`); digits, spaces and punctuation belong to every script.
bool written_in(std::string_view text, std::string_view script);

/// Number of Unicode code points in valid UTF-8 `text` (what JSON Schema's maxLength counts).
std::size_t code_points(std::string_view text);

/// Name parts: `text` split at spaces and tabs, empty parts dropped; at most 10 parts (the
/// canonical limit), the tenth holding the rest of the text. The parts are views into `text`.
std::vector<std::string_view> split_name(std::string_view text);

/// True for a textual UUID (8-4-4-4-12 hex digits, either case).
bool looks_like_uuid(std::string_view text);

/// `text` cut to at most `max_bytes` bytes on a UTF-8 boundary, with "..." when cut: for naming
/// a partner's value in an error without echoing an unbounded string.
std::string quoted_value(std::string_view text, std::size_t max_bytes = 64);

/// KH-CNP bytes -> canonical mx/1 (see docs/adapters/kh-cnp.md).
decode_result decode_message(std::string_view bytes, const adapter_context& ctx);

/// Canonical mx/1 -> KH-CNP bytes (see docs/adapters/kh-cnp.md).
encode_result encode_message(const rapidjson::Value& message, const adapter_context& ctx);

}  // namespace mxgw::adapters::kh_cnp
