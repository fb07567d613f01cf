// Partner dates and derived ids (see dates.hpp).
#include "adapters/common/dates.hpp"

#include <openssl/evp.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "adapters/common/message_ids.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::adapters {
namespace {

constexpr int be_offset = 543;

// Appends v with leading zeros to `width` digits, as "%0*d" writes it (without snprintf's cost,
// and into the caller's string: a date is formatted for every partner date a message carries).
void append_padded(std::string& out, int v, std::size_t width) {
  char b[16];
  if (v < 0) {
    const int n = std::snprintf(b, sizeof b, "%0*d", static_cast<int>(width), v);
    out.append(b, static_cast<std::size_t>(n));
    return;
  }
  const auto end = std::to_chars(b, b + sizeof b, v).ptr;
  const auto digits = static_cast<std::size_t>(end - b);
  if (digits < width) {
    out.append(width - digits, '0');
  }
  out.append(b, digits);
}

std::string padded(int v, std::size_t width) {
  std::string out;
  append_padded(out, v, width);
  return out;
}

std::string two(int v) { return padded(v, 2); }

std::string four(int v) { return padded(v, 4); }

}  // namespace

std::optional<std::string> dmy_to_partial(std::string_view text, era calendar, std::string& error) {
  int day = 0, month = 0, year = 0;
  if (text.size() != 10 || text[2] != '/' || text[5] != '/' ||
      !read_fixed_digits(text, 0, 2, day) || !read_fixed_digits(text, 3, 2, month) ||
      !read_fixed_digits(text, 6, 4, year)) {
    error = "is not a DD/MM/YYYY date";
    return std::nullopt;
  }
  if (calendar == era::buddhist) {
    year -= be_offset;
  }
  std::string partial;
  partial.reserve(10);  // YYYY-MM-DD: within a short string's own space
  append_padded(partial, year, 4);
  if (month == 0) {
    if (day != 0) {
      error = "has a day but no month";
      return std::nullopt;
    }
  } else {
    partial += '-';
    append_padded(partial, month, 2);
    if (day != 0) {
      partial += '-';
      append_padded(partial, day, 2);
    }
  }
  if (!is_valid_partial_date(partial)) {
    error = "is not a real date";
    return std::nullopt;
  }
  return partial;
}

std::string partial_to_dmy(std::string_view partial, era calendar) {
  int year = 0, month = 0, day = 0;
  read_fixed_digits(partial, 0, 4, year);
  if (partial.size() >= 7) {
    read_fixed_digits(partial, 5, 2, month);
  }
  if (partial.size() >= 10) {
    read_fixed_digits(partial, 8, 2, day);
  }
  if (calendar == era::buddhist) {
    year += be_offset;
  }
  return two(day) + "/" + two(month) + "/" + four(year);
}

std::optional<std::string> local_to_utc(std::string_view text, era calendar, std::string& error) {
  // DD/MM/YYYY HH:MM[:SS] +HH:MM
  const auto space = text.find(' ');
  if (space != 10) {
    error = "is not a DD/MM/YYYY HH:MM:SS +HH:MM time";
    return std::nullopt;
  }
  auto date = dmy_to_partial(text.substr(0, 10), calendar, error);
  if (!date || date->size() != 10) {
    if (date) {
      error = "needs a full date";
    }
    return std::nullopt;
  }
  std::string_view rest = text.substr(11);
  const auto offset_at = rest.find(' ');
  if (offset_at == std::string_view::npos) {
    error = "needs a UTC offset (+HH:MM)";
    return std::nullopt;
  }
  const std::string_view time = rest.substr(0, offset_at);
  const std::string_view offset = rest.substr(offset_at + 1);
  std::string candidate;
  candidate.reserve(date->size() + 1 + time.size() + 3 + offset.size());
  candidate += *date;
  candidate += 'T';
  candidate += time;
  if (time.size() == 5) {
    candidate += ":00";
  }
  candidate += offset;
  const auto parsed = parse_rfc3339(candidate);
  if (!parsed) {
    error = "is not a real time with a +HH:MM offset";
    return std::nullopt;
  }
  const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(*parsed);
  const std::time_t t = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  std::string out;
  out.reserve(20);  // YYYY-MM-DDTHH:MM:SSZ
  append_padded(out, utc.tm_year + 1900, 4);
  out += '-';
  append_padded(out, utc.tm_mon + 1, 2);
  out += '-';
  append_padded(out, utc.tm_mday, 2);
  out += 'T';
  append_padded(out, utc.tm_hour, 2);
  out += ':';
  append_padded(out, utc.tm_min, 2);
  out += ':';
  append_padded(out, utc.tm_sec, 2);
  out += 'Z';
  return out;
}

namespace {

std::optional<std::tm> local_tm(std::string_view rfc3339, int offset_minutes) {
  const auto parsed = parse_rfc3339(rfc3339);
  if (!parsed) {
    return std::nullopt;
  }
  const auto shifted = *parsed + std::chrono::minutes(offset_minutes);
  const std::time_t t = std::chrono::system_clock::to_time_t(
      std::chrono::time_point_cast<std::chrono::seconds>(shifted));
  std::tm local{};
  gmtime_r(&t, &local);
  return local;
}

std::string offset_text(int offset_minutes) {
  const int a = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  return std::string(offset_minutes < 0 ? "-" : "+") + two(a / 60) + ":" + two(a % 60);
}

}  // namespace

std::string utc_to_local_date(std::string_view rfc3339, int offset_minutes, era calendar) {
  const auto tm = local_tm(rfc3339, offset_minutes);
  if (!tm) {
    return {};
  }
  const int year = tm->tm_year + 1900 + (calendar == era::buddhist ? be_offset : 0);
  return two(tm->tm_mday) + "/" + two(tm->tm_mon + 1) + "/" + four(year);
}

std::string utc_to_local_hm(std::string_view rfc3339, int offset_minutes) {
  const auto tm = local_tm(rfc3339, offset_minutes);
  return tm ? two(tm->tm_hour) + ":" + two(tm->tm_min) : std::string();
}

std::string utc_to_local(std::string_view rfc3339, int offset_minutes, era calendar) {
  const auto tm = local_tm(rfc3339, offset_minutes);
  if (!tm) {
    return {};
  }
  return utc_to_local_date(rfc3339, offset_minutes, calendar) + " " + two(tm->tm_hour) + ":" +
         two(tm->tm_min) + ":" + two(tm->tm_sec) + " " + offset_text(offset_minutes);
}

std::string message_uuid(std::string_view sender, std::string_view reference) {
  // RFC 4122 version 5: SHA-1 over namespace + name. Namespace: mxgw's own, fixed forever.
  static constexpr unsigned char ns[16] = {0x6d, 0x78, 0x67, 0x77, 0x2d, 0x72, 0x65, 0x66,
                                           0x8a, 0x1c, 0x4e, 0x5b, 0x9d, 0x2f, 0x30, 0x41};
  std::string name;
  name.reserve(sizeof ns + sender.size() + 1 + reference.size());
  name.append(reinterpret_cast<const char*>(ns), sizeof ns);
  name += sender;
  name += '\n';
  name += reference;
  unsigned char digest[EVP_MAX_MD_SIZE];
  mxgw::digest(hash_algorithm::sha1, name, digest);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0F) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return uuid_text(digest);
}

}  // namespace mxgw::adapters
