// `mxgw translate`: offline conversion with precise errors and exit statuses.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <regex>

#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

struct run_result {
  int status = -1;
  std::string output;  // stdout and stderr together
};

run_result run(const std::string& arguments) {
  const std::string command = mxgw_binary().string() + " " + arguments + " 2>&1";
  run_result result;
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    result.output += buffer.data();
  }
  result.status = WEXITSTATUS(pclose(pipe));
  return result;
}

class TranslateCli : public ::testing::Test {
 protected:
  std::string config() const { return (source_dir() / "config" / "gateway.json").string(); }
  temp_dir dir_;
};

TEST_F(TranslateCli, CanonicalInCanonicalOut) {
  const auto r = run("translate --from mx --to mx --config " + config() + " " +
                     (source_dir() / "config" / "examples" / "hotline.tip.json").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"type\":\"hotline.tip\""), std::string::npos) << r.output;
}

TEST_F(TranslateCli, AnInvalidMessageNamesTheFieldAndFails) {
  std::string text = read_file(source_dir() / "config" / "examples" / "receipt.json");
  text = std::regex_replace(text, std::regex(R"("received": "[^"]*")"),
                            R"("received": "2026-13-01T00:00:00Z")");
  write_file(dir_ / "bad.json", text);
  const auto r =
      run("translate --from mx --to mx --config " + config() + " " + (dir_ / "bad.json").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/body/received"), std::string::npos) << r.output;
}

TEST_F(TranslateCli, MalformedInputIsRefusedWithItsOffset) {
  write_file(dir_ / "broken.json", R"({"mx": "1", "id": )");
  const auto r = run("translate --from mx --to mx --config " + config() + " " +
                     (dir_ / "broken.json").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("byte offset"), std::string::npos) << r.output;
}

TEST_F(TranslateCli, AnUnknownAdapterIsAUsageError) {
  const auto r = run("translate --from mx --to no-such-format --config " + config() + " " +
                     (source_dir() / "config" / "examples" / "receipt.json").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown adapter 'no-such-format'"), std::string::npos) << r.output;
}

TEST_F(TranslateCli, AConfigOnlyPartnersFormatTranslatesLikeABuiltInOne) {
  const auto example =
      (source_dir() / "config" / "examples" / "partners" / "kh-stt.victim-referral.json").string();
  auto r =
      run("translate --from kh-stt --to mx --sender kh-sesan --config " + config() + " " + example);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"birthDate\":\"2007-05\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"kind\":\"transliteration\""), std::string::npos) << r.output;

  r = run("translate --from mx --to kh-stt --config " + config() + " " +
          (source_dir() / "config" / "examples" / "case.status.json").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"effective\":\"02/12/2569\""), std::string::npos) << r.output;

  std::string text = read_file(example);
  text.replace(text.find("19/11/2569"), 10, "31/02/2569");
  write_file(dir_ / "bad-date.json", text);
  r = run("translate --from kh-stt --to mx --sender kh-sesan --config " + config() + " " +
          (dir_ / "bad-date.json").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/case/found_on"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace mxgw::test
