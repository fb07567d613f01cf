// Four-eyes release: the decision on one held copy (see release_step.hpp).
#include "gateway/store/release_step.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

#include "gateway/common/json.hpp"

namespace mxgw::store {

std::string approvals_json(const std::vector<release_approval>& approvals) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartArray();
  for (const auto& approval : approvals) {
    writer.StartObject();
    writer.Key("by");
    writer.String(json::non_null(approval.by),
                  static_cast<rapidjson::SizeType>(approval.by.size()));
    writer.Key("at");
    writer.String(json::non_null(approval.at),
                  static_cast<rapidjson::SizeType>(approval.at.size()));
    writer.EndObject();
  }
  writer.EndArray();
  return {buffer.GetString(), buffer.GetSize()};
}

std::vector<release_approval> parse_approvals(std::string_view text) {
  std::vector<release_approval> approvals;
  rapidjson::Document doc;
  if (json::parse_untrusted(text, doc) || !doc.IsArray()) {
    return approvals;
  }
  for (const auto& entry : doc.GetArray()) {
    if (!entry.IsObject()) {
      continue;
    }
    const std::string_view by = json::get_string(entry, "by");
    if (!by.empty()) {
      approvals.push_back({std::string(by), std::string(json::get_string(entry, "at"))});
    }
  }
  return approvals;
}

release_step decide_held(const release_request& request, std::string_view stored,
                         std::int64_t recorded, const std::string& at) {
  release_step step;
  auto& approvals = step.result.approvals;
  approvals = parse_approvals(stored);
  // A damaged (negative) column asks for nothing more, and never for less than the figure in force.
  const std::size_t at_hold = recorded > 0 ? static_cast<std::size_t>(recorded) : 0;
  const std::size_t required = std::max({request.required, at_hold, std::size_t{1}});
  step.result.required = required;
  const char* event = "release.rejected";
  if (!request.approve) {
    step.result.outcome = release_outcome::rejected;
  } else {
    if (std::any_of(approvals.begin(), approvals.end(),
                    [&](const release_approval& a) { return a.by == request.actor; })) {
      step.result.outcome = release_outcome::already_approved;
      return step;
    }
    approvals.push_back({request.actor, at});
    step.approvals_column = approvals_json(approvals);
    const bool release = approvals.size() >= required;
    step.result.outcome = release ? release_outcome::released : release_outcome::approved;
    event = release ? "release.released" : "release.approved";
  }
  audit::audit_record& entry = step.audit.emplace_back(request.audit);
  entry.event = event;
  entry.details.emplace_back("approvals",
                             std::to_string(approvals.size()) + "/" + std::to_string(required));
  return step;
}

}  // namespace mxgw::store
