// Partner date formats shared by the adapters: DD/MM/YYYY with 00 for an unknown day or month,
// Common or Buddhist Era (BE = CE + 543), local times with offsets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mxgw::adapters {

enum class era { common, buddhist };

/// "DD/MM/YYYY" (00 = unknown day or month) -> canonical partial date "YYYY", "YYYY-MM" or
/// "YYYY-MM-DD" in the Gregorian calendar. A known day with an unknown month is refused, and so
/// is a date that does not exist (31/02, 29/02 of a common year — leap years are judged on the
/// Gregorian year, so BE 29/02/2567 is 2024-02-29). Returns nullopt and sets `error`.
std::optional<std::string> dmy_to_partial(std::string_view text, era calendar, std::string& error);

/// Canonical partial date -> "DD/MM/YYYY" with 00 for what is unknown. Precondition: `partial`
/// is a valid partial date (the pipeline checked it).
std::string partial_to_dmy(std::string_view partial, era calendar);

/// "DD/MM/YYYY HH:MM[:SS] +HH:MM" (an offset is required) -> RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ".
std::optional<std::string> local_to_utc(std::string_view text, era calendar, std::string& error);

/// RFC 3339 -> local time at `offset_minutes` east of UTC (420 = +07:00): "DD/MM/YYYY HH:MM:SS
/// +HH:MM", the date "DD/MM/YYYY" alone, or "HH:MM" alone. Empty when `rfc3339` cannot be read.
std::string utc_to_local(std::string_view rfc3339, int offset_minutes, era calendar);
std::string utc_to_local_date(std::string_view rfc3339, int offset_minutes, era calendar);
std::string utc_to_local_hm(std::string_view rfc3339, int offset_minutes);

/// A canonical message id derived from the sender and the partner's own reference (a name-based
/// UUID, version 5, in mxgw's namespace): the same reference from the same partner always gives
/// the same id, so a partner's resend is recognised as the same message. Anyone can compute it:
/// partners' messages are named with derived_message_id (message_ids.hpp), which is this only
/// when the gateway has no `message_ids.key`; names that name no message (placeholders, receipts'
/// own numbers) use it as they are.
std::string message_uuid(std::string_view sender, std::string_view reference);

}  // namespace mxgw::adapters
