// Textual UUIDs (message ids).
#pragma once

#include <string_view>

namespace mxgw {

/// True for an RFC 4122 textual UUID: 8-4-4-4-12 hex digits, either case.
bool is_uuid(std::string_view text);

}  // namespace mxgw
