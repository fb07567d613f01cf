// `mxgw report` on a local store or through the admin API; the figures come from
// report::statistics_builder either way, so both print the same bytes for the same store.
#include "gateway/cli/report_command.hpp"

#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gateway/cli/open_store.hpp"
#include "gateway/report/collect.hpp"
#include "gateway/report/statistics.hpp"

namespace mxgw::cli {

namespace {

/// How to print the report asked for; nullopt, with the reason on stderr, when the request
/// cannot be answered (exit status 2).
std::optional<report::output_options> check_request(const report_request& request) {
  if (request.format != "json" && request.format != "csv") {
    std::cerr << "report: --format is json or csv\n";
    return std::nullopt;
  }
  if (auto error = report::check_period({request.from, request.to})) {
    std::cerr << "report: " << *error << "\n";
    return std::nullopt;
  }
  report::output_options options;
  if (request.suppress_below) {
    options.suppress_below = report::parse_suppress_below(*request.suppress_below);
    if (!options.suppress_below) {
      std::cerr << "report: --suppress-below is a whole number from " << report::min_suppress_below
                << " to " << report::max_suppress_below << "\n";
      return std::nullopt;
    }
  }
  return options;
}

}  // namespace

int run_report_command(const std::filesystem::path& config_file, const report_request& request) {
  const auto options = check_request(request);
  if (!options) {
    return 2;
  }
  config::gateway_config config;
  std::shared_ptr<store::message_store> store;
  try {
    // With its keys: the facts are sealed at rest like the message.
    store = open_existing_store(config_file, config, "report", true);
  } catch (const std::runtime_error& e) {
    std::cerr << "report: " << e.what() << "\n";
    return 1;
  }
  if (!store) {
    return 2;
  }
  const report::period period{request.from, request.to};
  const std::string actor = cli_actor();
  std::promise<bool> audited;
  store->append_audit({report::report_audit(actor, period, request.format, *options)},
                      [&audited](bool ok) { audited.set_value(ok); });
  if (!audited.get_future().get()) {
    std::cerr << "report: the store failed (the request could not be audited; nothing read)\n";
    store->stop();
    return 1;
  }
  std::promise<std::pair<std::shared_ptr<report::statistics_builder>, report::collect_summary>>
      built;
  report::collect(store, period,
                  [&built](std::shared_ptr<report::statistics_builder> b,
                           report::collect_summary summary,
                           bool ok) { built.set_value({ok ? std::move(b) : nullptr, summary}); });
  const auto [builder, summary] = built.get_future().get();
  store->stop();
  if (!builder) {
    std::cerr << "report: the store failed\n";
    return 1;
  }
  if (summary.unreadable != 0) {
    std::cerr << "report: warning: the facts of " << summary.unreadable
              << " message(s) do not open with the keys in store.encryption (a key missing, or "
                 "altered bytes); they count as messages without facts\n";
  }
  const auto now = std::chrono::system_clock::now();
  std::cout << (request.format == "csv" ? builder->csv(now, *options)
                                        : builder->json(now, *options));
  return 0;
}

int admin_report(const admin_target& target, const report_request& request) {
  const auto options = check_request(request);
  if (!options) {
    return 2;
  }
  // The request was checked above: dates, a format and a number need no escaping.
  std::string path =
      "/admin/v1/report?from=" + request.from + "&to=" + request.to + "&format=" + request.format;
  if (options->suppress_below) {
    path += "&suppressBelow=" + std::to_string(*options->suppress_below);
  }
  const auto r = admin_request(target, "GET", path);
  if (report_failure("report", r) != 0) {
    return 1;
  }
  std::cout << r.body;
  return 0;
}

}  // namespace mxgw::cli
