// Page by page through read_facts; each page's handler asks for the next one.
#include "gateway/report/collect.hpp"

#include <string>
#include <utility>

namespace mxgw::report {

namespace {

struct reading {
  std::shared_ptr<store::message_store> store;
  std::string since;
  row_handler on_row;
  std::function<void(bool)> done;

  static void next(const std::shared_ptr<reading>& self, std::string after) {
    // The handler holds the reading, not the store's own pointer to it: no cycle outlives the
    // last page.
    self->store->read_facts(self->since, std::move(after), facts_page_rows,
                            [self](store::facts_page page, bool ok) {
                              if (!ok) {
                                self->done(false);
                                return;
                              }
                              for (const auto& row : page.rows) {
                                self->on_row(row);
                              }
                              if (page.next.empty()) {
                                self->done(true);
                                return;
                              }
                              next(self, std::move(page.next));
                            });
  }
};

}  // namespace

void read_all_facts(std::shared_ptr<store::message_store> store, std::string since,
                    row_handler on_row, std::function<void(bool ok)> done) {
  reading::next(std::make_shared<reading>(reading{std::move(store), std::move(since),
                                                  std::move(on_row), std::move(done)}),
                {});
}

void collect(std::shared_ptr<store::message_store> store, const period& p, collect_handler done) {
  auto builder = std::make_shared<statistics_builder>(p);
  auto summary = std::make_shared<collect_summary>();
  // accepted_at is RFC 3339 UTC text: every time on or after the first day sorts at or after
  // the bare date.
  read_all_facts(
      std::move(store), p.from,
      [builder, summary](const store::message_facts& row) {
        builder->add(row);
        ++summary->rows;
        // The sealing decorator hands back facts that do not open as a bracketed note; facts
        // are always a JSON object.
        if (!row.facts.empty() && row.facts.front() != '{') {
          ++summary->unreadable;
        }
      },
      [builder, summary, done = std::move(done)](bool ok) {
        done(ok ? builder : nullptr, *summary, ok);
      });
}

audit::audit_record report_audit(std::string actor, const period& p, std::string format,
                                 const output_options& options) {
  audit::audit_record record{
      .event = "report.generated",
      .actor = std::move(actor),
      .partner = {},
      .message_id = {},
      .details = {{"from", p.from}, {"to", p.to}, {"format", std::move(format)}}};
  if (options.suppress_below) {
    record.details.emplace_back("suppressBelow", std::to_string(*options.suppress_below));
  }
  return record;
}

}  // namespace mxgw::report
