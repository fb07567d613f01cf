// `mxgw report`: the statistics of a period (counts without identities), from the local store or
// through a running gateway's admin API.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "gateway/cli/admin_commands.hpp"

namespace mxgw::cli {

struct report_request {
  std::string from;             ///< first day, YYYY-MM-DD (UTC)
  std::string to;               ///< last day, YYYY-MM-DD (UTC), inclusive
  std::string format = "json";  ///< "json" or "csv"
  /// --suppress-below as given (checked by the commands: a whole number from 2 to 1000); nullopt
  /// when not given: every figure as counted.
  std::optional<std::string> suppress_below;
};

/// On the store `config_file` names (opened with its keys), with the request on the audit chain
/// first (actor cli:<user>). Prints the report on stdout; 0, 1 (store failed) or 2 (bad request:
/// a bad day, period, format or --suppress-below, refused before anything is read or audited).
int run_report_command(const std::filesystem::path& config_file, const report_request& request);

/// The same through GET /admin/v1/report (audited there as the administrator); --suppress-below
/// goes as the query parameter suppressBelow.
int admin_report(const admin_target& target, const report_request& request);

}  // namespace mxgw::cli
