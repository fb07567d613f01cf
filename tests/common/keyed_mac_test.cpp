// HMAC-SHA-256 under a gateway secret: known answers (computed with Python's hmac module), the
// framing of the parts, and keys kept apart per thread.
#include "gateway/common/keyed_mac.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "gateway/common/digest.hpp"

namespace mxgw {
namespace {

mac_key counting_key() {
  mac_key key{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<unsigned char>(i);
  }
  return key;
}

std::string mac_hex(const mac_key& key, std::initializer_list<std::string_view> parts) {
  unsigned char out[32];
  hmac_sha256(key, parts, out);
  return lower_hex(out, sizeof out);
}

TEST(KeyedMac, PartsAreJoinedByOneZeroByteAsThePersonsDigestsAlwaysWere) {
  // HMAC-SHA-256(00 01 .. 1f, "name" 00 "SOK CHANTHA"): the persons' digests stored before this
  // function existed were made over exactly these bytes, so they still match.
  EXPECT_EQ(mac_hex(counting_key(), {"name", "SOK CHANTHA"}),
            "8d251225d206e54391e110e45eb42e4fedd51c022609ef3f12bcd48bf9837af2");
  EXPECT_EQ(mac_hex(counting_key(), {}),
            "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb");
  // The zero byte keeps the parts apart: moving text from one part to the next changes the MAC.
  EXPECT_NE(mac_hex(counting_key(), {"ab", "c"}), mac_hex(counting_key(), {"a", "bc"}));
  EXPECT_NE(mac_hex(counting_key(), {"abc"}), mac_hex(counting_key(), {"abc", ""}));
}

TEST(KeyedMac, EachKeyGivesItsOwnMacEvenWhenKeysAlternateOnOneThread) {
  const mac_key a = counting_key();
  mac_key b = a;
  b[31] ^= 1;
  const auto with_a = mac_hex(a, {"x"});
  const auto with_b = mac_hex(b, {"x"});
  EXPECT_NE(with_a, with_b);
  // More keys than a thread keeps contexts for, then the first again: still its own MAC.
  for (unsigned char n = 0; n < 8; ++n) {
    mac_key other = a;
    other[0] = static_cast<unsigned char>(0x80 + n);
    EXPECT_NE(mac_hex(other, {"x"}), with_a);
  }
  EXPECT_EQ(mac_hex(a, {"x"}), with_a);
  EXPECT_EQ(mac_hex(b, {"x"}), with_b);
  std::string on_other_thread;
  std::thread([&] { on_other_thread = mac_hex(b, {"x"}); }).join();
  EXPECT_EQ(on_other_thread, with_b);
}

}  // namespace
}  // namespace mxgw
