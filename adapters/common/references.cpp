// Partner references to canonical messages (see references.hpp).
#include "adapters/common/references.hpp"

#include <algorithm>

#include "adapters/common/dates.hpp"

namespace mxgw::adapters {
namespace {

constexpr std::size_t uuid_chars = 36;

bool is_dash_position(std::size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// 36 characters with dashes where a UUID has them (the digits not checked).
bool shaped_like_uuid(std::string_view text) {
  if (text.size() != uuid_chars) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_dash_position(i) != (text[i] == '-')) {
      return false;
    }
  }
  return true;
}

bool is_uuid(std::string_view text) {
  if (!shaped_like_uuid(text)) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!is_dash_position(i) && !is_hex(text[i])) {
      return false;
    }
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

std::string outbound_reference(std::string_view ref, std::string_view id) {
  if (id.empty()) {
    return std::string(ref);  // not a checked canonical message: nothing to name it by
  }
  if (!ref.empty() && read_answered_reference(ref).kind == reference_kind::gateway_message) {
    return std::string(ref);  // already a gateway name (a partner sent one as its own): kept
  }
  if (ref.empty() || ref.size() + 1 + id.size() > max_partner_reference_chars) {
    return std::string(id);
  }
  std::string out(ref);
  out += '/';
  out += id;
  return out;
}

answered_reference read_answered_reference(std::string_view reference) {
  for (const char c : reference) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return {reference_kind::malformed, {}};
    }
  }
  // The id is the whole reference or what follows its last '/' (a sender's reference may hold
  // slashes of its own: "STG/W/2026/118/<id>").
  const std::size_t slash = reference.rfind('/');
  const std::string_view tail =
      slash == std::string_view::npos ? reference : reference.substr(slash + 1);
  if (is_uuid(tail)) {
    return {reference_kind::gateway_message, lower(tail)};
  }
  if (shaped_like_uuid(tail)) {
    return {reference_kind::malformed, {}};
  }
  return {reference_kind::foreign, {}};
}

std::string placeholder_id(std::string_view placeholder_namespace, std::string_view reference) {
  return message_uuid(placeholder_namespace, reference);
}

bool same_message_id(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

}  // namespace mxgw::adapters
