// The key the listener's per-address connection limit counts a client under.
#include "gateway/net/address_key.hpp"

#include <gtest/gtest.h>

namespace mxgw::net {
namespace {

TEST(ConnectionCountKey, AnIpv4AddressIsItsOwnKey) {
  EXPECT_EQ(connection_count_key("192.0.2.17"), "192.0.2.17");
  EXPECT_EQ(connection_count_key("127.0.0.1"), "127.0.0.1");
  EXPECT_NE(connection_count_key("192.0.2.17"), connection_count_key("192.0.2.18"));
}

TEST(ConnectionCountKey, AnIpv4MappedAddressCountsAsItsIpv4Address) {
  EXPECT_EQ(connection_count_key("::ffff:192.0.2.17"), "192.0.2.17");
}

// One host holds a whole /64 and can take a new address from it for every connection: the
// addresses of one /64 share one count, and those of another /64 do not.
TEST(ConnectionCountKey, Ipv6AddressesOfOneSlash64ShareOneKey) {
  const std::string key = connection_count_key("2001:db8:1:2::1");
  EXPECT_EQ(key, "2001:db8:1:2::/64");
  EXPECT_EQ(connection_count_key("2001:db8:1:2:a3f:77ff:fe01:9c2e"), key);
  EXPECT_EQ(connection_count_key("2001:DB8:1:2:ffff:ffff:ffff:ffff"), key);
  EXPECT_NE(connection_count_key("2001:db8:1:3::1"), key);
  EXPECT_EQ(connection_count_key("::1"), "::/64");
}

TEST(ConnectionCountKey, AZoneIsLeftOut) {
  EXPECT_EQ(connection_count_key("fe80::1%eth0"), "fe80::/64");
  EXPECT_EQ(connection_count_key("fe80::2%eth1"), "fe80::/64");
}

TEST(ConnectionCountKey, WhatIsNoAddressIsItsOwnKey) {
  EXPECT_EQ(connection_count_key("?"), "?");
  EXPECT_EQ(connection_count_key(""), "");
  EXPECT_EQ(connection_count_key("2001:db8::zz"), "2001:db8::zz");
}

}  // namespace
}  // namespace mxgw::net
