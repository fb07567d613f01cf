// Safe parsing of untrusted JSON and small RapidJSON helpers.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mxgw::json {

/// The characters of `s` for RapidJSON's (pointer, length) calls, which assert a non-null pointer
/// even for length 0 (an empty std::string_view may hold nullptr).
inline const char* non_null(std::string_view s) {
  return s.data() != nullptr ? s.data() : "";
}

struct parse_limits {
  std::size_t max_depth = 64;  ///< deepest allowed nesting of objects and arrays (at most 1,024)
};

/// Why a document was refused, with the byte offset into the input.
struct parse_error {
  std::size_t offset = 0;
  std::string reason;  ///< fixed text, never a copy of input bytes
};

/// Parses untrusted JSON: UTF-8 validated, stack bounded by the nesting limit, full-precision numbers,
/// nesting limited to `limits.max_depth`, duplicate member names refused, NaN/Infinity refused,
/// nothing but whitespace after the value. On error `out` is left empty (null).
std::optional<parse_error> parse_untrusted(std::string_view text, rapidjson::Document& out,
                                           const parse_limits& limits = {});

/// Parses a trusted file (config, schema, table); throws std::runtime_error with the reason and the
/// byte offset (callers add the file name). Duplicate member names are refused here too.
rapidjson::Document parse_file(const std::string& path);

/// Serialises a value compactly.
std::string to_string(const rapidjson::Value& value);

/// RFC 6901 escaping of one reference token ("~" -> "~0", "/" -> "~1").
std::string escape_pointer_token(std::string_view token);
/// Appends "/" and the escaped token to a JSON Pointer being built (no allocation when `out` has
/// room: the walks over a message keep one path and cut it back after each member).
void append_pointer_token(std::string& out, std::string_view token);
/// Appends "/" and an array index.
void append_pointer_index(std::string& out, std::size_t index);

/// The string member `name` of `object`, or an empty view when absent or not a string.
std::string_view get_string(const rapidjson::Value& object, const char* name);

}  // namespace mxgw::json
