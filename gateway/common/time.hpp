// Time helpers: RFC 3339 timestamps and canonical partial dates.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mxgw {

/// Reads exactly `width` decimal digits at text[pos] into `out`; false when any is missing or not
/// a digit. The building block of every fixed-width date format we read.
bool read_fixed_digits(std::string_view text, std::size_t pos, std::size_t width, int& out);

/// "2026-11-22T04:38:47.123Z" (UTC, millisecond precision).
std::string format_rfc3339_ms(std::chrono::system_clock::time_point t);

/// Parses an RFC 3339 date-time ("2026-11-22T04:38:47Z", fractional seconds and a numeric
/// offset allowed). Returns nullopt unless every field is in range and the date exists.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

/// True when text is "YYYY", "YYYY-MM" or "YYYY-MM-DD" naming a real Gregorian date
/// (year 1000-9999; leap years honoured).
bool is_valid_partial_date(std::string_view text);

/// True when text is a full "YYYY-MM-DD" that exists.
bool is_valid_full_date(std::string_view text);

}  // namespace mxgw
