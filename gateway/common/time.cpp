// RFC 3339 timestamps and partial dates, without locale or time-zone database dependence.
#include "gateway/common/time.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace mxgw {
namespace {

bool is_leap(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
long long days_from_civil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = static_cast<unsigned>((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

}  // namespace

bool read_fixed_digits(std::string_view text, std::size_t pos, std::size_t width, int& out) {
  if (pos + width > text.size()) {
    return false;
  }
  out = 0;
  for (std::size_t i = pos; i < pos + width; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

std::string format_rfc3339_ms(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms % 1000));
  return buffer;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 20 || !read_fixed_digits(text, 0, 4, year) || text[4] != '-' ||
      !read_fixed_digits(text, 5, 2, month) || text[7] != '-' ||
      !read_fixed_digits(text, 8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
      !read_fixed_digits(text, 11, 2, hour) || text[13] != ':' ||
      !read_fixed_digits(text, 14, 2, minute) || text[16] != ':' ||
      !read_fixed_digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
      hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  long long nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    long long scale = 100000000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      nanos += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) {
      return std::nullopt;
    }
  }
  int offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh = 0, om = 0;
    if (!read_fixed_digits(text, pos + 1, 2, oh) || pos + 3 >= text.size() ||
        text[pos + 3] != ':' || !read_fixed_digits(text, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) {
    return std::nullopt;
  }
  const long long secs = days_from_civil(year, month, day) * 86400LL + hour * 3600LL +
                         minute * 60LL + (second == 60 ? 59 : second) - offset_minutes * 60LL;
  // The clock counts nanoseconds in 64 bits (1677 to 2262): a time outside it is not a time this
  // gateway can hold, and converting it would overflow (undefined behaviour), so it is refused.
  using clock_duration = std::chrono::system_clock::duration;
  constexpr long long max_secs =
      std::chrono::duration_cast<std::chrono::seconds>(clock_duration::max()).count() - 1;
  constexpr long long min_secs =
      std::chrono::duration_cast<std::chrono::seconds>(clock_duration::min()).count() + 1;
  if (secs > max_secs || secs < min_secs) {
    return std::nullopt;
  }
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<clock_duration>(
      std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
}

bool is_valid_partial_date(std::string_view text) {
  int year = 0, month = 0, day = 0;
  if (!read_fixed_digits(text, 0, 4, year) || year < 1000) {
    return false;
  }
  if (text.size() == 4) {
    return true;
  }
  if (text.size() < 7 || text[4] != '-' || !read_fixed_digits(text, 5, 2, month) || month < 1 ||
      month > 12) {
    return false;
  }
  if (text.size() == 7) {
    return true;
  }
  return text.size() == 10 && text[7] == '-' && read_fixed_digits(text, 8, 2, day) && day >= 1 &&
         day <= days_in_month(year, month);
}

bool is_valid_full_date(std::string_view text) {
  return text.size() == 10 && is_valid_partial_date(text);
}

}  // namespace mxgw
