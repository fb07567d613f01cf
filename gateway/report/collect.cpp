// Page by page through read_facts; each page's handler asks for the next one.
#include "gateway/report/collect.hpp"

#include <utility>

namespace mxgw::report {

namespace {

struct collection {
  std::shared_ptr<store::message_store> store;
  std::string since;
  std::shared_ptr<statistics_builder> builder;
  collect_handler done;
  collect_summary summary;

  static void next(const std::shared_ptr<collection>& self, std::string after) {
    // The handler holds the collection, not the store's own pointer to it: no cycle outlives
    // the last page.
    self->store->read_facts(self->since, std::move(after), facts_page_rows,
                            [self](store::facts_page page, bool ok) {
                              if (!ok) {
                                self->done(nullptr, self->summary, false);
                                return;
                              }
                              for (const auto& row : page.rows) {
                                self->builder->add(row);
                                ++self->summary.rows;
                                // The sealing decorator hands back facts that do not open as a
                                // bracketed note; facts are always a JSON object.
                                if (!row.facts.empty() && row.facts.front() != '{') {
                                  ++self->summary.unreadable;
                                }
                              }
                              if (page.next.empty()) {
                                self->done(self->builder, self->summary, true);
                                return;
                              }
                              next(self, std::move(page.next));
                            });
  }
};

}  // namespace

void collect(std::shared_ptr<store::message_store> store, const period& p, collect_handler done) {
  // accepted_at is RFC 3339 UTC text: every time on or after the first day sorts at or after
  // the bare date.
  auto c = std::make_shared<collection>(collection{
      std::move(store), p.from, std::make_shared<statistics_builder>(p), std::move(done), {}});
  collection::next(c, {});
}

audit::audit_record report_audit(std::string actor, const period& p, std::string format) {
  return {.event = "report.generated",
          .actor = std::move(actor),
          .partner = {},
          .message_id = {},
          .details = {{"from", p.from}, {"to", p.to}, {"format", std::move(format)}}};
}

}  // namespace mxgw::report
