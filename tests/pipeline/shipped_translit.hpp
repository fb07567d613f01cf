// The transliteration rules the repository ships (config/translit/), loaded once per test binary.
#pragma once

#include <gtest/gtest.h>

#include "gateway/pipeline/names.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::pipeline {

inline const transliterators& shipped() {
  static const transliterators t = [] {
    std::vector<config_problem> problems;
    auto loaded = transliterators::load(test::source_dir() / "config" / "translit", problems);
    EXPECT_TRUE(problems.empty()) << problems.front().file << ": " << problems.front().reason;
    return loaded;
  }();
  return t;
}

}  // namespace mxgw::pipeline
