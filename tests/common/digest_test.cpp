// Digests: the known answers (FIPS 180 test vectors), on several threads, each reusing its own
// context.
#include "gateway/common/digest.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

std::string hex_of(mxgw::hash_algorithm algorithm, const std::string& data) {
  unsigned char out[64];
  const unsigned int length = mxgw::digest(algorithm, data, out);
  return mxgw::lower_hex(out, length);
}

TEST(Digest, KnownAnswersAndAReusedContextStartsAfresh) {
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(mxgw::sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex_of(mxgw::hash_algorithm::sha1, "abc"),
              "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(mxgw::sha256_hex(""),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  }
}

TEST(Digest, EachThreadGetsTheSameAnswers) {
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&wrong, t] {
      for (int i = 0; i < 1000; ++i) {
        const bool sha1 = i % 2 == 0;
        const std::string got = sha1 ? hex_of(mxgw::hash_algorithm::sha1, "abc")
                                     : mxgw::sha256_hex("abc");
        if (got != (sha1 ? "a9993e364706816aba3e25717850c26c9cd0d89d"
                         : "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")) {
          ++wrong[t];
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

}  // namespace
