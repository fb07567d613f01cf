// Text from outside (a partner's answer) made safe to show people: valid UTF-8, no control
// characters, bounded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mxgw {

/// At most `max_bytes` of `bytes` as readable UTF-8 text: each invalid UTF-8 sequence and each
/// control character (C0 other than tab and line breaks, DEL, C1) becomes U+FFFD; tabs and line
/// breaks become a space. Cut before a character, never through one, so the result is always
/// valid UTF-8 (a JSON string, a terminal line) whatever the input.
std::string readable_excerpt(std::string_view bytes, std::size_t max_bytes);

/// `text` with A-Z made a-z and every other byte kept (ids, codes, header names).
std::string ascii_lower(std::string_view text);

}  // namespace mxgw
