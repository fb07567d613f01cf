// Readable excerpts of untrusted text (see text.hpp). UTF-8 decoding with ICU's U8_NEXT, which
// reports each ill-formed sequence as one negative code point (the W3C/WHATWG "maximal subpart"
// practice, as its U+FFFD substitution does).
#include "gateway/common/text.hpp"

#include <unicode/utf8.h>

#include <cstdint>

namespace mxgw {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string readable_excerpt(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  out.reserve(bytes.size() < max_bytes ? bytes.size() : max_bytes);
  const auto* s = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto length = static_cast<std::int32_t>(
      bytes.size() < static_cast<std::size_t>(INT32_MAX) ? bytes.size() : INT32_MAX);
  std::int32_t i = 0;
  while (i < length) {
    const std::int32_t start = i;
    UChar32 c = 0;
    U8_NEXT(s, i, length, c);
    std::string_view piece;
    if (c < 0 || c == 0x7F || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
        (c >= 0x80 && c <= 0x9F)) {
      piece = replacement;
    } else if (c == '\t' || c == '\n' || c == '\r') {
      piece = " ";
    } else {
      piece = bytes.substr(static_cast<std::size_t>(start), static_cast<std::size_t>(i - start));
    }
    if (out.size() + piece.size() > max_bytes) {
      break;
    }
    out += piece;
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace mxgw
