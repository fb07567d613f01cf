// The log writes one valid JSON object per line and escapes what it is given.
#include "gateway/common/log.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <sstream>

#include "tests/support/test_support.hpp"

namespace {

TEST(Log, WritesOneJsonObjectPerLineWithEscaping) {
  mxgw::test::temp_dir dir;
  mxgw::log::init({mxgw::log::level::info, dir / "log.jsonl"});
  mxgw::log::info({.event = "message.accepted", .partner = "vn-gialai", .status = 202});
  mxgw::log::warn({.event = "x", .detail = "line\r\nbreak\x1b[31m"});
  mxgw::log::write(mxgw::log::level::debug, {.event = "hidden"});
  mxgw::log::flush();
  std::istringstream lines(mxgw::test::read_file(dir / "log.jsonl"));
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    ASSERT_FALSE(doc.HasParseError()) << line;
    EXPECT_TRUE(doc.HasMember("time"));
    EXPECT_EQ(line.find('\x1b'), std::string::npos);
    ++count;
  }
  EXPECT_EQ(count, 2);
  mxgw::log::init({});
}

}  // namespace
