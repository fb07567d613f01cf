// A warrant's issuing country as a mark in its issuer field (see issuing_country.hpp).
#include "adapters/common/issuing_country.hpp"

#include <algorithm>

#include "gateway/common/text.hpp"

namespace mxgw::adapters {
namespace {

/// `text` without the characters of `blanks` at its start and end.
std::string_view trimmed(std::string_view text, std::string_view blanks) {
  const auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) {
    return text.substr(text.size());
  }
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

/// `text` without the characters of `blanks` at its end.
std::string_view right_trimmed(std::string_view text, std::string_view blanks) {
  const auto last = text.find_last_not_of(blanks);
  return text.substr(0, last == std::string_view::npos ? 0 : last + 1);
}

/// Number of code points in UTF-8 `text` (what JSON Schema's maxLength counts).
std::size_t code_points(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

issuing_country_marks read_issuing_country_marks(std::string_view text, const issuer_field& field) {
  // The marks are found in an ASCII-lower-cased copy: the same byte offsets as `text`.
  const std::string lower = ascii_lower(text);
  issuing_country_marks marks;
  marks.authority = text;
  std::size_t last = std::string::npos;
  for (std::size_t at = lower.find(country_mark_opening); at != std::string::npos;
       at = lower.find(country_mark_opening, at + 1)) {
    const std::size_t code_at = at + country_mark_opening.size();
    const std::size_t close = text.find(')', code_at);
    if (close == std::string_view::npos) {
      marks.misplaced = true;
      break;
    }
    marks.countries.push_back(trimmed(text.substr(code_at, close - code_at), field.blanks));
    last = at;
    marks.misplaced = !trimmed(text.substr(close + 1), field.blanks).empty();
  }
  if (last != std::string::npos) {
    marks.authority = right_trimmed(text.substr(0, last), field.blanks);
  }
  return marks;
}

marked_country country_of_marks(const issuing_country_marks& marks, const issuer_field& field,
                                const country_of_alpha3& lookup) {
  marked_country result;
  if (marks.countries.size() > 1) {
    std::string named;
    for (const auto code : marks.countries) {
      named += (named.empty() ? "" : ", ") + field.show_code(code);
    }
    result.refusal = "names more than one issuing country (" + named +
                     "): which country issued the warrant cannot be told";
  } else if (marks.misplaced) {
    result.refusal =
        "names its issuing country other than at its end as '(issuing country: <alpha-3>)'";
  } else if (marks.countries.size() == 1) {
    const std::string_view code = marks.countries.front();
    result.country = lookup(code);
    if (!result.country) {
      // Never carried in `unmapped`: the canonical warrant cannot be without its country.
      result.refusal = field.unknown_code(field.show_code(code)) +
                       ": the issuing country is named by its ISO 3166-1 alpha-3 code";
    }
  }
  return result;
}

std::string with_country_mark(std::string_view authority, std::string_view alpha3) {
  std::string out(authority);
  out += out.empty() ? "" : " ";
  out += country_mark_opening;
  out += ' ';
  out += alpha3;
  out += ')';
  return out;
}

marked_issuer mark_issuer(std::string_view authority, const std::optional<std::string>& alpha3,
                          const issuer_field& field) {
  marked_issuer result;
  const std::string in_field = std::string(field.format) + "'s " + std::string(field.name);
  if (!alpha3) {
    result.country_refusal = "has no ISO 3166-1 alpha-3 code: " + std::string(field.format) +
                             " could not say which country issued the warrant, and without it "
                             "the warrant would read as " +
                             std::string(field.reads_as);
  }
  if (read_issuing_country_marks(authority, field).any()) {
    result.authority_refusal = "already holds '(issuing country: ...)', the form in which " +
                               in_field +
                               " names the warrant's country: the country could not be told apart";
  } else if (alpha3) {
    result.text = with_country_mark(authority, *alpha3);
    if (code_points(result.text) > field.max_chars) {
      result.text.clear();
      result.authority_refusal = "is too long for " + in_field +
                                 " with the issuing country after it (" +
                                 std::to_string(field.max_chars) + " characters)";
    }
  }
  return result;
}

}  // namespace mxgw::adapters
