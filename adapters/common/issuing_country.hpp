// A warrant's issuing country in a partner format that has no field for it: the mark
// "(issuing country: <alpha-3>)" at the end of the field that names the issuer (KH-CNP `court`,
// LA-MPS `<Warrant authority>`), written on every warrant the gateway sends and read from every
// warrant it receives (docs/adapters/kh-cnp.md and la-mps.md, "A warrant's issuing country").
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::adapters {

/// How the mark opens; it is read with ASCII case ignored.
inline constexpr std::string_view country_mark_opening = "(issuing country:";

/// The field of a partner format that carries the mark, and what differs from format to format
/// in how the mark is read, written and refused.
struct issuer_field {
  std::string_view format;    ///< the format's name in errors ("KH-CNP")
  std::string_view name;      ///< the field's name in errors ("court")
  std::string_view reads_as;  ///< what a warrant in the format reads as unmarked ("Cambodian")
  std::size_t max_chars = 0;  ///< the longest the field may be, mark included, in code points
  std::string_view blanks;    ///< the characters trimmed around a mark and around its code
  /// A code from a mark as an error shows it (quoted, cut or only described: the format's way).
  std::string (*show_code)(std::string_view code) = nullptr;
  /// Why the code shown as `shown` (show_code's output) is not a known country, in the format's
  /// words for an unknown code ("unknown code 'XYZ' (table country)").
  std::string (*unknown_code)(const std::string& shown) = nullptr;
};

/// The country marks of one issuer field's text. The views point into the text read.
struct issuing_country_marks {
  std::string_view authority;               ///< the text without its last mark, right-trimmed
  std::vector<std::string_view> countries;  ///< the code in each mark, in order, trimmed
  bool misplaced = false;                   ///< a mark is not closed, or text follows the last mark

  /// True when the text holds a mark, or the start of one.
  bool any() const { return !countries.empty() || misplaced; }
};

/// Reads the marks (country_mark_opening, ASCII case ignored, ... ")") in `text`, trimming
/// `field.blanks`. No mark: `authority` is the whole text and `countries` is empty.
issuing_country_marks read_issuing_country_marks(std::string_view text, const issuer_field& field);

/// Canonical country code (alpha-2) of an ISO 3166-1 alpha-3 code, nullopt when unknown; each
/// adapter asks its own view of the code tables.
using country_of_alpha3 = std::function<std::optional<std::string>(std::string_view alpha3)>;

/// What the marks of a received warrant's issuer field say. Neither set: the field has no mark,
/// and the adapter decides the country by its own rules.
struct marked_country {
  std::optional<std::string> country;  ///< one mark, at the end, naming a known country
  std::optional<std::string> refusal;  ///< why the marks are refused (an error at the field)
};

/// Decides the issuing country from `marks` (read_issuing_country_marks of the received field).
/// Refused, naming only the marks' codes (as field.show_code shows them): more than one mark
/// (contradictory), a mark not at the end or not closed, a code `lookup` does not know (an
/// alpha-2, an empty code, a name).
marked_country country_of_marks(const issuing_country_marks& marks, const issuer_field& field,
                                const country_of_alpha3& lookup);

/// `authority` followed by the mark naming `alpha3` ("Gia Lai Provincial Court (issuing
/// country: VNM)"); the mark alone when `authority` is empty.
std::string with_country_mark(std::string_view authority, std::string_view alpha3);

/// What an encoder writes in a warrant's issuer field, or why it cannot. No refusal: `text`.
struct marked_issuer {
  std::string text;  ///< the issuing authority with the mark naming the country after it
  /// At the canonical issuingCountry: it has no alpha-3 code, so the format cannot say it.
  std::optional<std::string> country_refusal;
  /// At the canonical issuingAuthority: it already holds a mark (then the country could not be
  /// told apart), or (with an alpha-3 code) it is longer than field.max_chars with the mark.
  std::optional<std::string> authority_refusal;
};

/// The issuer field for a warrant whose canonical issuingAuthority is `authority` (empty: none)
/// and whose issuingCountry has the alpha-3 code `alpha3` (nullopt: none).
marked_issuer mark_issuer(std::string_view authority, const std::optional<std::string>& alpha3,
                          const issuer_field& field);

}  // namespace mxgw::adapters
