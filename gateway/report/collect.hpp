// Reading a period's statistical facts out of a store for `mxgw report` (the command on a local
// store and the admin API's GET /admin/v1/report share it).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "gateway/audit/audit.hpp"
#include "gateway/report/statistics.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::report {

/// Rows per read_facts page.
inline constexpr std::size_t facts_page_rows = 2000;

/// What a collection read besides the figures.
struct collect_summary {
  std::size_t rows = 0;        ///< messages read (the period and after)
  std::size_t unreadable = 0;  ///< of them, facts sealed under a key the store was not given, or
                               ///< altered: counted as without facts; worth a warning
};

using collect_handler =
    std::function<void(std::shared_ptr<statistics_builder>, collect_summary, bool ok)>;

using row_handler = std::function<void(const store::message_facts&)>;

/// Shows `on_row` the facts of every message accepted at or after `since` (a day or an RFC 3339
/// time), page by page in the order of acceptance; then `done(ok)` runs once, on a store thread
/// (or at once when the store is stopped), ok=false when a page could not be read.
void read_all_facts(std::shared_ptr<store::message_store> store, std::string since,
                    row_handler on_row, std::function<void(bool ok)> done);

/// Feeds a builder for `p` with the facts of every message accepted from the period's first day
/// until now (later ones tell withdrawals and answers), page by page. `done` runs once, on a store
/// thread (or at once when the store is stopped), with ok=false when a page could not be read.
void collect(std::shared_ptr<store::message_store> store, const period& p, collect_handler done);

/// The audit record of a report: who asked for which period and format, and the small-cell
/// suppression threshold when one was asked (`suppressBelow`); no figures.
audit::audit_record report_audit(std::string actor, const period& p, std::string format,
                                 const output_options& options = {});

}  // namespace mxgw::report
