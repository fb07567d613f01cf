// When a calendar day ends in a country (end_of_day_in): at the next midnight in its time zone,
// the zone furthest ahead for a country with several, daylight saving time included; at the end
// of the UTC day for no country, an unknown one, or one not written as two capital letters.
#include "gateway/pipeline/local_days.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "gateway/common/time.hpp"

namespace mxgw::pipeline {
namespace {

using namespace std::chrono;

std::string end_of(const char* country, year_month_day day = 2026y / December / 7) {
  return format_rfc3339_ms(end_of_day_in(day, country));
}

TEST(EndOfDay, ThePartnersOfTheRegionEndTheirDayAtSeventeenUtc) {
  for (const char* country : {"VN", "KH", "LA", "TH"}) {
    EXPECT_EQ(end_of(country), "2026-12-07T17:00:00.000Z") << country;
  }
}

TEST(EndOfDay, DaylightSavingTimeCounts) {
  EXPECT_EQ(end_of("FR", 2026y / July / 1), "2026-07-01T22:00:00.000Z");
  EXPECT_EQ(end_of("FR", 2026y / December / 7), "2026-12-07T23:00:00.000Z");
}

TEST(EndOfDay, ACountryWithSeveralZonesEndsItsDayInTheZoneFurthestAhead) {
  EXPECT_EQ(end_of("US"), "2026-12-08T05:00:00.000Z");  // New York, not Honolulu
  EXPECT_EQ(end_of("KI"), "2026-12-07T10:00:00.000Z");  // Kiritimati, UTC+14
}

TEST(EndOfDay, NoKnownCountryIsTheUtcDay) {
  for (const char* country : {"", "ZZ", "vn", "VNM", "V1"}) {
    EXPECT_EQ(end_of(country), "2026-12-08T00:00:00.000Z") << '"' << country << '"';
  }
}

TEST(EndOfDay, TheLastDayOfAYearEndsInTheNextYear) {
  EXPECT_EQ(end_of("VN", 2026y / December / 31), "2026-12-31T17:00:00.000Z");
  EXPECT_EQ(end_of("", 2026y / December / 31), "2027-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace mxgw::pipeline
