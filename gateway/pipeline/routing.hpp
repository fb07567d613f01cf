// Routing and recipient policy: who receives a canonical message, who is excluded and why, and
// which victim fields each recipient does not get. Pure functions; no I/O at decision time.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/identity/partner_registry.hpp"
#include "gateway/pipeline/code_tables.hpp"

namespace mxgw::pipeline {

/// Stable reason codes of a routing decision (status endpoint, audit, logs, docs/routing.md).
namespace routing_reason {
// Why a candidate recipient is excluded.
inline constexpr std::string_view is_sender = "is-sender";
inline constexpr std::string_view unknown_partner = "unknown-partner";
inline constexpr std::string_view disabled = "disabled";
inline constexpr std::string_view no_endpoint = "no-endpoint";
inline constexpr std::string_view does_not_receive_type = "does-not-receive-type";
inline constexpr std::string_view not_releasable = "not-releasable";
inline constexpr std::string_view onward_transfer_prohibited = "onward-transfer-prohibited";
inline constexpr std::string_view awaiting_source_consent = "awaiting-source-consent";
inline constexpr std::string_view handling_restricted = "handling-restricted";
inline constexpr std::string_view outside_consent = "outside-consent";
// Why a field is withheld from a recipient.
inline constexpr std::string_view no_victim_data_agreement = "no-victim-data-agreement";
inline constexpr std::string_view minor_data_not_marked_necessary =
    "minor-data-not-marked-necessary";
/// A withdrawal's note (and `unmapped`) for an earlier recipient whose copy a release rule would
/// have held: the withdrawal goes at once, without what no administrator reviewed.
inline constexpr std::string_view not_released = "not-released";
// Why a message cannot be routed at all (the gateway answers 403).
inline constexpr std::string_view sender_may_not_send_type = "sender-may-not-send-type";
inline constexpr std::string_view unknown_sender = "unknown-sender";
// Why a message cannot be routed now (the gateway answers 503): routing_rules::held().
inline constexpr std::string_view routing_held = "routing-held";
}  // namespace routing_reason

/// What a candidate came from: the message's own `recipients`, or a routing rule.
inline constexpr std::string_view decided_explicitly = "explicit";
/// The reason a partner is a candidate for a withdrawal or cancellation (`case.status`): it was a
/// recipient of the message taken back.
inline constexpr std::string_view decided_as_earlier_recipient = "earlier-recipient";

/// One rule of config/routing.json. A message matches when every non-empty list matches; an
/// empty list matches anything.
struct routing_rule {
  std::string id;  ///< unique; appears in decisions as `decided_by` / `considered`
  std::string description;
  std::vector<std::string> types;            ///< message types
  std::vector<std::string> senders;          ///< partner ids
  std::vector<std::string> regions;          ///< region codes (current units) or "KH-*"
  std::vector<std::string> confidentiality;  ///< restricted, confidential, secret
  std::vector<std::string> add;              ///< partner ids that become candidates
};

/// One rule of four-eyes release (`release.rules` in config/routing.json): a copy for a recipient
/// is held until administrators release it when the message matches `match` (the routing rules'
/// keys, plus `minors`) and the recipient matches `to`. Empty lists and false flags match anything.
struct release_rule {
  std::string id;  ///< unique among release and routing rules; appears as the copy's `hold`
  std::string description;
  std::vector<std::string> types;
  std::vector<std::string> senders;
  std::vector<std::string> regions;
  std::vector<std::string> confidentiality;
  bool minors = false;        ///< only messages about a possible minor victim (as for withholding)
  bool cross_border = false;  ///< only recipients of another country than the sender's
  std::vector<std::string> countries;  ///< only recipients of these countries (ISO 3166-1)
  std::vector<std::string> partners;   ///< only these recipients
};

/// Approvals by different administrators that release a held copy when routing.json says nothing.
inline constexpr std::size_t default_release_approvals = 2;
/// The most approvals `release.approvals` may ask for (it is 1 to this).
inline constexpr std::size_t max_release_approvals = 5;

/// The routing rules, in file order.
class routing_rules {
 public:
  /// Loads {"rules":[...]} from `file`. Every problem (unknown member, missing or duplicate id,
  /// unknown type, sender or added partner, unknown or retired region code, unknown
  /// confidentiality, empty list) is appended to `problems` with the file and a JSON Pointer;
  /// rules with a problem are left out, valid rules are kept.
  static routing_rules load(const std::filesystem::path& file,
                            std::vector<config_problem>& problems,
                            const identity::partner_registry& partners, const code_tables& tables);

  /// As load(), from a parsed document; `file` only names the source in problems.
  static routing_rules parse(const rapidjson::Value& doc, const std::string& file,
                             std::vector<config_problem>& problems,
                             const identity::partner_registry& partners, const code_tables& tables);

  /// Rules that route nothing: a routing change this instance could not apply is in force
  /// elsewhere, so routing by the rules it replaced could send a message where the change no
  /// longer allows (or without the hold it adds). Messages are refused (503) while they last.
  /// `reason` is a code (`invalid-routing`, ...).
  static routing_rules held(std::string reason);
  /// The reason of held(); empty for rules that route.
  const std::string& held_reason() const { return held_reason_; }

  /// Appends a rule without checking it (tests, programmatic set-up). False on a duplicate id.
  bool add(routing_rule rule);
  /// Appends a release rule without checking it. False on a duplicate id.
  bool add_release(release_rule rule);
  void set_release_approvals(std::size_t approvals) { approvals_ = approvals; }

  const std::vector<routing_rule>& rules() const { return rules_; }
  std::size_t size() const { return rules_.size(); }
  /// The release rules (`release.rules`), in file order.
  const std::vector<release_rule>& release_rules() const { return release_; }
  /// How many different administrators must approve a held copy (`release.approvals`, 1-5).
  std::size_t release_approvals() const { return approvals_; }

 private:
  void parse_release(const rapidjson::Value& release, const std::string& file,
                     std::vector<config_problem>& problems,
                     const identity::partner_registry& partners, const code_tables& tables,
                     std::set<std::string, std::less<>>& ids);

  std::vector<routing_rule> rules_;
  std::vector<release_rule> release_;
  std::size_t approvals_ = default_release_approvals;
  std::string held_reason_;
};

/// A field of the message that one recipient does not get.
struct withheld_field {
  std::string pointer;  ///< JSON Pointer into the message as submitted
  std::string reason;   ///< routing_reason::no_victim_data_agreement, ...
};

/// One recipient the message goes to.
struct recipient_plan {
  std::string partner_id;
  std::string decided_by;  ///< "explicit" or the id of the rule that added it first
  std::vector<withheld_field> withheld;
  /// The first release rule that holds this recipient's copy until administrators release it;
  /// empty: it goes at once. A withdrawal or cancellation is never held.
  std::string held_by = {};
  /// The agreements this recipient's copy relies on: data only their holders may receive is in
  /// it ("victim-data" when a victim field is left in). Delivery sends the copy only while the
  /// recipient still holds each of them. Empty: the copy carries nothing agreement-only.
  std::vector<std::string> relies_on = {};
};

/// One candidate that does not receive the message.
struct exclusion {
  std::string partner_id;
  std::string considered;  ///< "explicit" or the id of the rule that proposed it first
  std::string reason;      ///< a routing_reason code
};

/// The full, explainable outcome of routing one message.
struct routing_decision {
  /// Empty, or why the sender may not send this message at all (routing_reason::
  /// sender_may_not_send_type, routing_reason::unknown_sender): the gateway refuses it with 403
  /// and stores nothing. Recipients and exclusions are then empty.
  std::string error;
  std::vector<std::string> matched_rules;  ///< ids of the rules the message matched, in order
  std::vector<recipient_plan> recipients;  ///< in candidate order: explicit first, then rules
  std::vector<exclusion> excluded;         ///< in candidate order

  /// The plan for `partner_id`, or nullptr when it is not a recipient.
  const recipient_plan* find(std::string_view partner_id) const;
};

/// Every region code in `message` (any member named `region` or `homeRegion` whose object has a
/// `code`, outside `unmapped`), plus the units in force that retired codes stand for today.
/// Sorted, unique.
std::vector<std::string> message_regions(const rapidjson::Value& message,
                                         const code_tables& tables);

/// True when the canonical `person` is (possibly) under 18 when judged: `minor` is true,
/// `ageEstimate.max` is below 18, or `birthDate` (its latest possible day, for a partial date) is
/// less than 18 years before the day judged. That day is `created`'s (RFC 3339), or `now`'s when
/// `now` is given and earlier: a `created` in the future (only its format is checked) does not
/// make a child an adult. An unreadable `created` with a birth date counts as a minor (the
/// stricter default).
bool is_possibly_minor(const rapidjson::Value& person, std::string_view created,
                       std::optional<std::chrono::system_clock::time_point> now = std::nullopt);

/// Decides who receives `message` (schema- and domain-valid) sent by the authenticated `sender`:
/// candidates are the explicit `recipients`, then `earlier_recipients` (for a withdrawal or
/// cancellation: the recipients of the message it takes back; spared, like explicit ones, by the
/// checks that only limit what rules add), then every matching rule's `add`; policy then excludes
/// candidates (see routing_reason) and marks the victim fields each remaining recipient may not
/// get (with a victim's fields, the whole `unmapped` member), and which copies release rules
/// hold. `now` is the time of routing: a victim is judged a minor at the earlier of `created`
/// and `now` (the default reads the clock at the call; tests pass a fixed time). Pure otherwise:
/// reads only its arguments.
routing_decision route(
    const rapidjson::Value& message, std::string_view sender,
    const identity::partner_registry& partners, const routing_rules& rules,
    const code_tables& tables, const std::vector<std::string>& earlier_recipients = {},
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

/// The canonical JSON that `plan`'s recipient gets: the withheld fields removed (a required one,
/// hotline.tip's `summary`, is replaced by {"text": "[withheld]"}) and the envelope member
/// `withheld` listing each [{pointer, reason}] (appended to one the message already carries). With
/// nothing withheld, the message as it is.
std::string render_for(const rapidjson::Value& message, const recipient_plan& plan);

/// The decision as JSON for the status endpoint and the audit (metadata only, no message content):
/// {"error"?, "matchedRules": [...], "recipients": [{"partner", "decidedBy", "withheld":
/// [{"pointer", "reason"}], "heldBy"?}], "excluded": [{"partner", "considered", "reason"}]}.
std::string to_json(const routing_decision& decision);

}  // namespace mxgw::pipeline
