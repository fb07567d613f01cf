// Readable excerpts of a partner's answer: always valid UTF-8, no control characters, bounded,
// never cut through a character.
#include "gateway/common/text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mxgw {
namespace {

const std::string fffd = "\xEF\xBF\xBD";

TEST(ReadableExcerpt, KeepsPlainTextAsItIs) {
  EXPECT_EQ(readable_excerpt(R"({"error":"unknown id"})", 400), R"({"error":"unknown id"})");
  // Vietnamese, Khmer and Lao letters are text, not noise.
  const std::string mixed = "Nguyễn Văn · ឈ្មោះ · ຊື່";
  EXPECT_EQ(readable_excerpt(mixed, 400), mixed);
  EXPECT_EQ(readable_excerpt("", 400), "");
}

TEST(ReadableExcerpt, NeverCutsThroughACharacter) {
  std::string khmer;
  for (int i = 0; i < 200; ++i) {
    khmer += "ក";  // three bytes
  }
  for (std::size_t limit : {0U, 1U, 2U, 3U, 4U, 399U, 400U, 401U}) {
    const std::string out = readable_excerpt(khmer, limit);
    EXPECT_LE(out.size(), limit);
    EXPECT_EQ(out.size(), limit / 3 * 3) << limit;  // whole letters only
    EXPECT_EQ(khmer.compare(0, out.size(), out), 0);
  }
}

TEST(ReadableExcerpt, ReplacesInvalidSequencesAndControlCharacters) {
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate, 0xFF.
  EXPECT_EQ(readable_excerpt("a\x80"
                             "b",
                             400),
            "a" + fffd + "b");
  EXPECT_EQ(readable_excerpt("a\xE1\x9E"
                             "b",
                             400),
            "a" + fffd + "b");
  EXPECT_EQ(readable_excerpt("\xC0\xAF", 400), fffd + fffd);
  EXPECT_EQ(readable_excerpt("\xED\xA0\x80", 400), fffd + fffd + fffd);
  EXPECT_EQ(readable_excerpt("\xFF", 400), fffd);
  // A terminal escape (ESC [ 2 J clears an operator's screen), NUL, DEL and a C1 control.
  EXPECT_EQ(readable_excerpt("x\x1b[2Jy", 400), "x" + fffd + "[2Jy");
  EXPECT_EQ(readable_excerpt(std::string("n\0m", 3), 400), "n" + fffd + "m");
  EXPECT_EQ(readable_excerpt("d\x7f", 400), "d" + fffd);
  EXPECT_EQ(readable_excerpt("c\xC2\x9B", 400), "c" + fffd);
  // Line breaks and tabs keep the words apart on one line.
  EXPECT_EQ(readable_excerpt("line one\r\nline\ttwo", 400), "line one  line two");
}

TEST(ReadableExcerpt, TheReplacementCountsAgainstTheLimit) {
  EXPECT_EQ(readable_excerpt("ab\xFF", 4), "ab");  // U+FFFD takes three bytes: it does not fit
  EXPECT_EQ(readable_excerpt("ab\xFF", 5), "ab" + fffd);
}

}  // namespace
}  // namespace mxgw
