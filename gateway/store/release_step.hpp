// Four-eyes release, the part both stores share: a held copy's approvals as its column keeps them,
// and what one administrator's decision does to them. The stores only read the held row and write
// what this decides, in the transaction of the decision.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/store/message_store.hpp"

namespace mxgw::store {

/// A held copy's approvals as the column keeps them: [{"by":"admin:a","at":"..."}, ...].
std::string approvals_json(const std::vector<release_approval>& approvals);

/// The approvals column read back. A value that does not parse, and entries without an actor,
/// count as no approval: a damaged column can only ask for more approvals, never for fewer.
std::vector<release_approval> parse_approvals(std::string_view text);

/// What a decision does to a held copy.
struct release_step {
  release_result result;                   ///< the outcome and the copy's approvals after it
  std::string approvals_column;            ///< for approved and released: the column's new value
  std::vector<audit::audit_record> audit;  ///< the request's entry, completed; empty: none
};

/// Applies `request` to a held copy whose approvals column is `stored` and whose release needed
/// `recorded` approvals when it was held (its `approvals_required` column; 0: none recorded), at
/// `at` (the commit's time): a rejection, a repeated approval (already_approved: nothing to
/// write), an approval that leaves the copy held, or the one that reaches the approvals required
/// and releases it. Those are the larger of request.required and `recorded`, at least 1: a figure
/// lowered since the copy was held does not lower what it needs. The audit entry gets its event
/// and the detail `approvals` ("<given>/<required>").
release_step decide_held(const release_request& request, std::string_view stored,
                         std::int64_t recorded, const std::string& at);

}  // namespace mxgw::store
