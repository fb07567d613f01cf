// RFC 3339 and partial-date checks.
#include "gateway/common/time.hpp"

#include <gtest/gtest.h>

namespace {

TEST(Rfc3339, ParsesUtcAndOffsets) {
  auto utc = mxgw::parse_rfc3339("2026-11-22T04:38:47Z");
  auto offset = mxgw::parse_rfc3339("2026-11-22T11:38:47+07:00");
  ASSERT_TRUE(utc && offset);
  EXPECT_EQ(*utc, *offset);
  EXPECT_TRUE(mxgw::parse_rfc3339("2026-11-22T04:38:47.123456Z"));
}

TEST(Rfc3339, RefusesImpossibleOrIncompleteTimes) {
  EXPECT_FALSE(mxgw::parse_rfc3339("2026-02-30T00:00:00Z"));
  EXPECT_FALSE(mxgw::parse_rfc3339("2026-11-22T24:00:00Z"));
  EXPECT_FALSE(mxgw::parse_rfc3339("2026-11-22T04:38:47"));
  EXPECT_FALSE(mxgw::parse_rfc3339("2026-11-22 04:38:47Z"));
  EXPECT_FALSE(mxgw::parse_rfc3339("2026-11-22T04:38:47Zjunk"));
}

TEST(Rfc3339, FormatsWithMilliseconds) {
  auto t = mxgw::parse_rfc3339("2026-11-22T04:38:47.123Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(mxgw::format_rfc3339_ms(*t), "2026-11-22T04:38:47.123Z");
}

TEST(PartialDate, AcceptsRealDatesOnly) {
  EXPECT_TRUE(mxgw::is_valid_partial_date("1990"));
  EXPECT_TRUE(mxgw::is_valid_partial_date("1990-07"));
  EXPECT_TRUE(mxgw::is_valid_partial_date("2024-02-29"));
  EXPECT_FALSE(mxgw::is_valid_partial_date("2023-02-29"));
  EXPECT_FALSE(mxgw::is_valid_partial_date("1900-02-29"));
  EXPECT_FALSE(mxgw::is_valid_partial_date("1990-13"));
  EXPECT_FALSE(mxgw::is_valid_partial_date("1990-00-10"));
  EXPECT_FALSE(mxgw::is_valid_partial_date("90-01-01"));
  EXPECT_FALSE(mxgw::is_valid_full_date("1990-07"));
}

}  // namespace

TEST(Rfc3339, TimesOutsideTheClocksRangeAreRefusedNotWrapped) {
  EXPECT_FALSE(mxgw::parse_rfc3339("2999-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(mxgw::parse_rfc3339("9999-12-31T23:59:59Z").has_value());
  EXPECT_FALSE(mxgw::parse_rfc3339("1000-01-01T00:00:00Z").has_value());
  EXPECT_TRUE(mxgw::parse_rfc3339("2261-12-31T23:59:59Z").has_value());
  EXPECT_TRUE(mxgw::parse_rfc3339("1970-01-01T00:00:00Z").has_value());
}
