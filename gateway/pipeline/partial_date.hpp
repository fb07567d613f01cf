// Canonical partial dates ("YYYY", "YYYY-MM", "YYYY-MM-DD") as the first and last day they may
// name; shared by routing (is the person possibly a minor?) and the statistical facts (age band).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "gateway/common/time.hpp"

namespace mxgw::pipeline {

/// The earliest day `text` may name: 1 January of "YYYY", the 1st of "YYYY-MM", the day of
/// "YYYY-MM-DD". nullopt unless `text` is a valid partial date (is_valid_partial_date).
inline std::optional<std::chrono::year_month_day> earliest_day_of(std::string_view text) {
  if (!is_valid_partial_date(text)) {
    return std::nullopt;
  }
  int year = 0;
  int month = 1;
  int day = 1;
  read_fixed_digits(text, 0, 4, year);
  if (text.size() >= 7) {
    read_fixed_digits(text, 5, 2, month);
  }
  if (text.size() == 10) {
    read_fixed_digits(text, 8, 2, day);
  }
  return std::chrono::year{year} / std::chrono::month{static_cast<unsigned>(month)} /
         std::chrono::day{static_cast<unsigned>(day)};
}

/// The latest day `text` may name: 31 December of "YYYY", the last day of "YYYY-MM" (leap years
/// honoured), the day of "YYYY-MM-DD". nullopt unless `text` is a valid partial date.
inline std::optional<std::chrono::year_month_day> latest_day_of(std::string_view text) {
  auto first = earliest_day_of(text);
  if (!first) {
    return std::nullopt;
  }
  if (text.size() == 4) {
    return first->year() / std::chrono::December / 31;
  }
  if (text.size() == 7) {
    return std::chrono::year_month_day{first->year() / first->month() / std::chrono::last};
  }
  return first;
}

}  // namespace mxgw::pipeline
