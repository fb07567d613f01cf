// The statistical facts of a canonical message: a few coarse, non-identifying categories (sex, age
// band, nationality, exploitation type, region, status, ...) derived at accept time and kept after
// retention purges the body, so that `mxgw report` can count without identities.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/fwd.h>

namespace mxgw::pipeline {

class code_tables;

/// The statistical facts of a checked canonical `message` sent by the authenticated partner
/// `sender`, as a compact JSON object. Members are written only when known, in this order:
/// - victim.identification: "ref", "sex", "age", "minor", "nationalities", "exploitation",
///   "region", "status";
/// - person.wanted: "ref", "sex", "nationalities", "requestedAction";
/// - hotline.tip: "channel", "urgency", "reporterType", "exploitation", "possibleVictims"
///   (always written);
/// - verification.request: "purpose", "urgency", "deadline", and, when `recipients` is given,
///   "to": the partners routing made its recipients (sorted): only their answers count;
/// - verification.result: "result", "inReplyTo" (lower-cased);
/// - case.status: "status", "about" (the message id taken back or updated, lower-cased);
/// - receipt and any other type: {}.
/// "ref" is the first 16 lower-case hex digits of SHA-256(sender "\n" envelope ref): it tells
/// one victim's messages apart without naming the reference. "age" is an age_band(), written
/// only when the whole possible age range at `created` (at `judged_at` when that is earlier: a
/// `created` in the future does not age a child) lies in one band; "minor" follows from
/// the age range, else from person.minor. "region" is the current unit of the home region
/// (`tables`' region table; the code itself when the table does not know it).
/// Never throws on odd input: a member of the wrong type is left out, as if absent.
std::string facts_of(const rapidjson::Value& message, std::string_view sender,
                     const code_tables& tables,
                     const std::vector<std::string>* recipients = nullptr,
                     std::optional<std::chrono::system_clock::time_point> judged_at = std::nullopt);

/// The CTDC `ageBroad` band of an age in completed years: "0--8", "9--17", "18--20", "21--23",
/// "24--26", "27--29", "30--38", "39--47" or "48+". Empty for a negative age.
std::string_view age_band(int years);

}  // namespace mxgw::pipeline
