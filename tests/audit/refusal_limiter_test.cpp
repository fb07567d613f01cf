// The refusal cap: a flood of refusals from one partner cannot grow the audit without bound, and
// the refusals left out are counted on the next recorded one.
#include "gateway/audit/refusal_limiter.hpp"

#include <gtest/gtest.h>

namespace mxgw::audit {
namespace {

TEST(RefusalLimiter, RecordsUpToTheCapPerMinuteAndCountsTheRest) {
  refusal_limiter limiter(3);
  const auto t0 = refusal_limiter::clock::now();
  for (int i = 0; i < 3; ++i) {
    const auto admitted = limiter.admit("kh-kratie", t0);
    ASSERT_TRUE(admitted);
    EXPECT_EQ(*admitted, 0U);
  }
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(limiter.admit("kh-kratie", t0 + std::chrono::seconds(59)));
  }
  // Another partner has its own allowance.
  EXPECT_TRUE(limiter.admit("vn-gialai", t0));
  // The next minute: the first recorded refusal carries the count of those left out.
  const auto next = limiter.admit("kh-kratie", t0 + std::chrono::seconds(60));
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 1000U);
  EXPECT_EQ(*limiter.admit("kh-kratie", t0 + std::chrono::seconds(61)), 0U);
}

}  // namespace
}  // namespace mxgw::audit
