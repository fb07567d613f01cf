// Which verification.result settles a request and which messages their own senders took back:
// the one rule the statistics report and the deadline watch share, so that "answered" means the
// same in the report's figures and in the escalations.
#pragma once

#include <algorithm>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/common/text.hpp"

namespace mxgw::report {

/// What the facts of the messages read so far say about withdrawals and answers. Fed in the
/// order of acceptance (the store's read_facts order); message ids compare case-insensitively.
class case_threads {
 public:
  /// A verification.result that names a request in its `inReplyTo`.
  struct answer {
    std::size_t order = 0;  ///< position in the order of acceptance
    std::string sender;
    std::string id;  ///< lower-cased
    std::string accepted_at;
    std::string result;
  };

  /// Notes a case.status from `sender`: with `status` "withdrawn" or "cancelled" and a non-empty
  /// `about`, that message counts as withdrawn by `sender`; any other status is ignored.
  void add_status(std::string_view sender, std::string_view status, std::string_view about) {
    if ((status == "withdrawn" || status == "cancelled") && !about.empty()) {
      withdrawals_.emplace(std::string(sender), ascii_lower(about));
    }
  }

  /// Notes a verification.result (message `id`, accepted `order`-th) answering `in_reply_to`;
  /// ignored when `in_reply_to` is empty.
  void add_result(std::size_t order, std::string_view sender, std::string_view id,
                  std::string_view in_reply_to, std::string_view accepted_at,
                  std::string_view result) {
    if (in_reply_to.empty()) {
      return;
    }
    answers_[ascii_lower(in_reply_to)].push_back({order, std::string(sender), ascii_lower(id),
                                                  std::string(accepted_at), std::string(result)});
  }

  /// True when `sender` withdrew or cancelled its message `id`.
  bool is_withdrawn(std::string_view sender, std::string_view id) const {
    return withdrawals_.count({std::string(sender), ascii_lower(id)}) != 0;
  }

  /// The answer that settles request `id`, accepted `order`-th: the first verification.result
  /// accepted after it that names it, comes from one of its recipients `to` (nullptr, for a
  /// request stored before its facts named them: from anyone) and was not withdrawn by its own
  /// sender. nullptr when there is none (yet).
  const answer* first_answer(std::string_view id, std::size_t order,
                             const std::vector<std::string>* to) const {
    const auto it = answers_.find(ascii_lower(id));
    if (it == answers_.end()) {
      return nullptr;
    }
    for (const auto& a : it->second) {
      const bool from_recipient =
          to == nullptr || std::find(to->begin(), to->end(), a.sender) != to->end();
      if (a.order > order && from_recipient && !is_withdrawn(a.sender, a.id)) {
        return &a;
      }
    }
    return nullptr;
  }

 private:
  std::set<std::pair<std::string, std::string>> withdrawals_;  // (sender, lower-cased id)
  std::map<std::string, std::vector<answer>, std::less<>> answers_;  // by lower-cased inReplyTo
};

}  // namespace mxgw::report
