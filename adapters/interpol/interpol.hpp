// Internals of the `interpol` adapter (INTERPOL-style public notice feed, JSON with HAL links):
// the notice types, the decoder entry point and the content fingerprint the feed poller shares.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"

namespace mxgw::adapters::interpol {

/// The key of this format in the code tables' `partnerCodes` (sex).
inline constexpr std::string_view partner_key = "interpol";
/// The `system` of the canonical externalRefs this adapter writes.
inline constexpr std::string_view external_system = "interpol";
/// The data owner named in the envelope's `source.agency`.
inline constexpr std::string_view source_agency = "INTERPOL";

/// The notice colours the public service publishes. `un` notices are refused (not routed).
enum class notice_type { red, yellow, un };

/// "red", "yellow", "un".
std::string_view to_string(notice_type type);

/// The notice type a list path or colour names ("red", "yellow", "un", any case); nullopt else.
std::optional<notice_type> notice_type_of(std::string_view name);

/// True for an `entity_id` the feed may use: `YYYY/N...` (four digits, a slash, 1-12 digits).
bool is_entity_id(std::string_view entity_id);

/// The notice type of a detail document: the `/notices/v1/<type>/` segment of `_links.self.href`;
/// without one, `arrest_warrants` means red and any yellow-only member yellow. nullopt when the
/// document does not say.
std::optional<notice_type> detail_type(const rapidjson::Value& detail);

/// Lower-case hex SHA-256 over the notice's content: every member except the transport links
/// (`_links` at any depth), object members in sorted order, so the same content gives the same
/// fingerprint whatever the member order or the relay's host names.
std::string content_fingerprint(const rapidjson::Value& detail);

/// A notice DETAIL document -> canonical mx/1 (see docs/adapters/interpol.md). Never throws.
decode_result decode_notice(std::string_view bytes, const adapter_context& ctx);

}  // namespace mxgw::adapters::interpol
