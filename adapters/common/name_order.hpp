// The order a person's full name is written in is the naming custom of the person, not of the
// format that carries it: Lao (and Thai) names are given-first (ຄຳລາ ພົມມະວົງ, KHAMLA
// PHOMMAVONG), Vietnamese, Khmer, Chinese, Korean and Japanese names family-first. Partner
// formats give a name's family and given parts in fields of their own and say nothing of the
// order, so the adapters read it from the person's nationalities.
#pragma once

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::adapters {

inline constexpr std::array<std::string_view, 8> family_first_countries{"VN", "KH", "CN", "TW",
                                                                        "HK", "MO", "KR", "JP"};
inline constexpr std::array<std::string_view, 2> given_first_countries{"LA", "TH"};

/// The canonical `order` of the names of a person with these nationalities (ISO 3166-1 alpha-2):
/// given-first when one of them is Lao or Thai, family-first when one is of the family-first
/// countries above, nullopt when they do not tell (none, or others only: left out, not guessed).
inline std::optional<std::string_view> name_order_of(
    const std::vector<std::string>& nationalities) {
  const auto any_of = [&](const auto& countries) {
    return std::any_of(nationalities.begin(), nationalities.end(), [&](const std::string& n) {
      return std::find(countries.begin(), countries.end(), n) != countries.end();
    });
  };
  if (any_of(given_first_countries)) {
    return "given-first";
  }
  if (any_of(family_first_countries)) {
    return "family-first";
  }
  return std::nullopt;
}

}  // namespace mxgw::adapters
