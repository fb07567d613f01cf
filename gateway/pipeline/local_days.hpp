// When a calendar day ends for a partner: the data-handling dates of a message (`handling.expires`)
// are days of its source, which lives in its own time zone, not in UTC.
#pragma once

#include <chrono>
#include <string_view>

namespace mxgw::pipeline {

/// The first instant at which `day` has ended in some time zone of `country` (ISO 3166-1 alpha-2,
/// e.g. "VN"): the midnight that begins the next day there, in the zone furthest ahead when the
/// country has several (a source anywhere in it allows nothing after its day). The end of the UTC
/// day when the country is empty, unknown to the time zone database, or not two letters. From
/// ICU's time zone data (offsets, daylight saving time included), so that Viet Nam's, Cambodia's
/// and Laos' days end at 17:00 UTC.
std::chrono::system_clock::time_point end_of_day_in(std::chrono::year_month_day day,
                                                    std::string_view country);

}  // namespace mxgw::pipeline
