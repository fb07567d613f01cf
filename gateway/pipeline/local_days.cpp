// When a calendar day ends in a country (ICU's time zone data).
#include "gateway/pipeline/local_days.hpp"

#include <unicode/strenum.h>
#include <unicode/timezone.h>
#include <unicode/ucal.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

namespace mxgw::pipeline {

std::chrono::system_clock::time_point end_of_day_in(std::chrono::year_month_day day,
                                                    std::string_view country) {
  using namespace std::chrono;
  const sys_days next = sys_days(day) + days(1);
  const system_clock::time_point utc_end(next);
  const bool two_letters =
      country.size() == 2 &&
      std::all_of(country.begin(), country.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!two_letters) {
    return utc_end;
  }
  UErrorCode status = U_ZERO_ERROR;
  const std::string region(country);
  const std::unique_ptr<icu::StringEnumeration> zones(icu::TimeZone::createTimeZoneIDEnumeration(
      UCAL_ZONE_TYPE_CANONICAL_LOCATION, region.c_str(), nullptr, status));
  if (U_FAILURE(status) || zones == nullptr) {
    return utc_end;
  }
  // The next day's midnight as wall-clock time (ICU's milliseconds, read as local time below).
  const auto local_midnight =
      static_cast<UDate>(duration_cast<milliseconds>(next.time_since_epoch()).count());
  std::optional<system_clock::time_point> earliest;
  for (const icu::UnicodeString* id = zones->snext(status); U_SUCCESS(status) && id != nullptr;
       id = zones->snext(status)) {
    const std::unique_ptr<icu::TimeZone> zone(icu::TimeZone::createTimeZone(*id));
    int32_t raw = 0;
    int32_t dst = 0;
    UErrorCode offset_status = U_ZERO_ERROR;
    zone->getOffset(local_midnight, true, raw, dst, offset_status);
    if (U_FAILURE(offset_status)) {
      continue;
    }
    const system_clock::time_point end = utc_end - milliseconds(raw) - milliseconds(dst);
    earliest = earliest ? std::min(*earliest, end) : end;
  }
  return earliest.value_or(utc_end);
}

}  // namespace mxgw::pipeline
