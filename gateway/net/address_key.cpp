#include "gateway/net/address_key.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>

namespace mxgw::net {

std::string connection_count_key(const std::string& address) {
  const std::string bare = address.substr(0, address.find('%'));
  in6_addr v6{};
  if (inet_pton(AF_INET6, bare.c_str(), &v6) != 1) {
    return address;  // IPv4, or not an address at all
  }
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::array<char, INET_ADDRSTRLEN> text{};
    if (inet_ntop(AF_INET, &v6.s6_addr[12], text.data(), text.size()) == nullptr) {
      return address;
    }
    return text.data();
  }
  std::memset(&v6.s6_addr[8], 0, 8);  // the interface identifier
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (inet_ntop(AF_INET6, &v6, text.data(), text.size()) == nullptr) {
    return address;
  }
  return std::string(text.data()) + "/64";
}

}  // namespace mxgw::net
