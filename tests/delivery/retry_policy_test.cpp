// Backoff with full jitter, retry limits, status classification and circuit breakers.
#include "gateway/delivery/retry_policy.hpp"

#include <gtest/gtest.h>

namespace mxgw::delivery {
namespace {

TEST(ClassifyStatus, SortsResponsesIntoDeliveredTransientAndPermanent) {
  EXPECT_EQ(classify_status(200), failure_kind::none);
  EXPECT_EQ(classify_status(202), failure_kind::none);
  for (int status : {0, 408, 429, 500, 502, 503, 504}) {
    EXPECT_EQ(classify_status(status), failure_kind::transient) << status;
  }
  for (int status : {400, 401, 403, 404, 409, 413, 415, 422}) {
    EXPECT_EQ(classify_status(status), failure_kind::permanent) << status;
  }
}

TEST(Backoff, FullJitterStaysWithinTheGrowingCeilingAndTheCap) {
  const retry_limits limits{.max_attempts = 50,
                            .max_age = std::chrono::hours(24),
                            .backoff_base = std::chrono::milliseconds(100),
                            .backoff_cap = std::chrono::milliseconds(5000)};
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 40; ++attempt) {
    const auto ceiling = std::min<std::int64_t>(5000, 100LL << std::min(attempt - 1, 20));
    std::int64_t largest = 0;
    for (int i = 0; i < 200; ++i) {
      const auto d = backoff_delay(limits, attempt, rng).count();
      ASSERT_GE(d, 0);
      ASSERT_LE(d, ceiling) << "attempt " << attempt;
      largest = std::max(largest, d);
    }
    // Full jitter spreads over the whole range, not just near the ceiling or near zero.
    EXPECT_GT(largest, ceiling / 2) << "attempt " << attempt;
  }
}

TEST(NextAttempt, StopsAtMaxAttemptsAndMaxAge) {
  const retry_limits limits{.max_attempts = 3,
                            .max_age = std::chrono::seconds(60),
                            .backoff_base = std::chrono::milliseconds(1000),
                            .backoff_cap = std::chrono::milliseconds(1000)};
  std::mt19937_64 rng(7);
  const auto accepted = clock_type::now();
  EXPECT_TRUE(next_attempt(limits, 1, accepted, accepted, rng));
  EXPECT_TRUE(next_attempt(limits, 2, accepted, accepted, rng));
  EXPECT_FALSE(next_attempt(limits, 3, accepted, accepted, rng));  // the third failed: dead
  EXPECT_FALSE(next_attempt(limits, 1, accepted, accepted + std::chrono::seconds(60), rng));
  auto next = next_attempt(limits, 1, accepted, accepted, rng);
  ASSERT_TRUE(next);
  EXPECT_GE(*next, accepted);
  EXPECT_LE(*next, accepted + std::chrono::milliseconds(1000));
}

TEST(CircuitBreakers, OpenAfterConsecutiveFailuresThenProbeOnce) {
  auto now = clock_type::now();
  circuit_breakers breakers(3, std::chrono::seconds(30), [&] { return now; });
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(breakers.allow("kh-ratanakiri"));
    breakers.record("kh-ratanakiri", failure_kind::transient);
  }
  EXPECT_EQ(breakers.state_of("kh-ratanakiri"), "closed");
  ASSERT_TRUE(breakers.allow("kh-ratanakiri"));
  breakers.record("kh-ratanakiri", failure_kind::transient);
  EXPECT_EQ(breakers.state_of("kh-ratanakiri"), "open");
  EXPECT_FALSE(breakers.allow("kh-ratanakiri"));
  EXPECT_TRUE(breakers.blocked("kh-ratanakiri"));
  // Another partner is not affected.
  EXPECT_TRUE(breakers.allow("kh-stungtreng"));

  now += std::chrono::seconds(31);
  EXPECT_EQ(breakers.state_of("kh-ratanakiri"), "half-open");
  EXPECT_TRUE(breakers.allow("kh-ratanakiri"));   // the probe
  EXPECT_FALSE(breakers.allow("kh-ratanakiri"));  // only one probe at a time
  breakers.record("kh-ratanakiri", failure_kind::transient);
  EXPECT_EQ(breakers.state_of("kh-ratanakiri"), "open");  // failed probe: open again

  now += std::chrono::seconds(31);
  ASSERT_TRUE(breakers.allow("kh-ratanakiri"));
  breakers.record("kh-ratanakiri", failure_kind::none);
  EXPECT_EQ(breakers.state_of("kh-ratanakiri"), "closed");
  EXPECT_TRUE(breakers.allow("kh-ratanakiri"));
}

TEST(CircuitBreakers, APermanentRefusalShowsThePartnerIsReachable) {
  auto now = clock_type::now();
  circuit_breakers breakers(2, std::chrono::seconds(30), [&] { return now; });
  breakers.record("p", failure_kind::transient);
  breakers.record("p", failure_kind::permanent);
  breakers.record("p", failure_kind::transient);
  EXPECT_EQ(breakers.state_of("p"), "closed");
}

}  // namespace
}  // namespace mxgw::delivery
