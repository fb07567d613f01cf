// X.509 times as the gateway reads them (certificates' validity, CRLs' lastUpdate and nextUpdate).
#include "gateway/identity/peer_identity.hpp"

#include <openssl/asn1.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

namespace mxgw::identity {
namespace {

using asn1_time_ptr = std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)>;

asn1_time_ptr asn1_time(const std::string& text) {
  asn1_time_ptr t(ASN1_TIME_new(), &ASN1_TIME_free);
  EXPECT_EQ(ASN1_TIME_set_string_X509(t.get(), text.c_str()), 1) << text;
  return t;
}

TEST(TimeOf, ReadsAnX509TimeToTheSecond) {
  const auto t = time_of(asn1_time("20261207193015Z").get());
  ASSERT_TRUE(t);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1796671815);
}

// A CA may date a CRL's nextUpdate (or a certificate's notAfter) in 9999, past the end of the
// clock's range in 2262: that is "never", and must not wrap round to a time in the past.
TEST(TimeOf, ATimePastTheClocksRangeIsTheLatestTime) {
  const auto far = time_of(asn1_time("99991231235959Z").get());
  ASSERT_TRUE(far);
  EXPECT_EQ(*far, std::chrono::system_clock::time_point::max());
  const auto edge = time_of(asn1_time("22700101000000Z").get());
  ASSERT_TRUE(edge);
  EXPECT_EQ(*edge, std::chrono::system_clock::time_point::max());
  EXPECT_GT(*edge, std::chrono::system_clock::now());
}

TEST(TimeOf, ATimeBeforeTheClocksRangeIsTheEarliestTime) {
  const auto early = time_of(asn1_time("16000101000000Z").get());
  ASSERT_TRUE(early);
  EXPECT_EQ(*early, std::chrono::system_clock::time_point::min());
}

TEST(TimeOf, NothingToReadIsNoTime) {
  EXPECT_FALSE(time_of(nullptr));
}

}  // namespace
}  // namespace mxgw::identity
