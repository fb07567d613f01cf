// Live trust snapshot (see trust_state.hpp).
#include "gateway/identity/trust_state.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::identity {

std::string_view to_string(certificate_state state) {
  switch (state) {
    case certificate_state::active: return "active";
    case certificate_state::retiring: return "retiring";
    case certificate_state::revoked: return "revoked";
  }
  return "unknown";
}

std::optional<certificate_state> certificate_state_from(std::string_view text) {
  for (auto s :
       {certificate_state::active, certificate_state::retiring, certificate_state::revoked}) {
    if (to_string(s) == text) {
      return s;
    }
  }
  return std::nullopt;
}

std::string to_json(const certificate_record& r) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto put = [&](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  put("fingerprint", r.fingerprint);
  put("serial", r.serial_hex);
  put("partner", r.partner_id);
  put("subject", r.subject);
  put("notBefore", r.not_before);
  put("notAfter", r.not_after);
  put("state", std::string(to_string(r.state)));
  put("retiringUntil", r.retiring_until);
  put("revokedAt", r.revoked_at);
  put("reason", r.reason);
  put("source", r.source);
  put("replacedBy", r.replaced_by);
  if (!r.recorded_at.empty()) {
    put("recordedAt", r.recorded_at);
  }
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<certificate_record> certificate_from_json(std::string_view text, std::string& error) {
  rapidjson::Document doc;
  if (auto e = json::parse_untrusted(text, doc)) {
    error = "not JSON: " + e->reason;
    return std::nullopt;
  }
  if (!doc.IsObject()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  certificate_record r;
  r.fingerprint = json::get_string(doc, "fingerprint");
  r.serial_hex = json::get_string(doc, "serial");
  r.partner_id = json::get_string(doc, "partner");
  r.subject = json::get_string(doc, "subject");
  r.not_before = json::get_string(doc, "notBefore");
  r.not_after = json::get_string(doc, "notAfter");
  r.retiring_until = json::get_string(doc, "retiringUntil");
  r.revoked_at = json::get_string(doc, "revokedAt");
  r.reason = json::get_string(doc, "reason");
  r.source = json::get_string(doc, "source");
  r.replaced_by = json::get_string(doc, "replacedBy");
  r.recorded_at = json::get_string(doc, "recordedAt");
  const auto state = certificate_state_from(json::get_string(doc, "state"));
  if (!state || r.fingerprint.size() != 64 || !is_valid_partner_id(r.partner_id)) {
    error = "a certificate record needs a fingerprint, a partner and a known state";
    return std::nullopt;
  }
  r.state = *state;
  return r;
}

namespace {

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Appends the SHA-256 fingerprints listed in `array` (an array) to `out`; false when one is not.
bool read_fingerprints(const rapidjson::Value& array, std::vector<std::string>& out) {
  for (const auto& fp : array.GetArray()) {
    if (!fp.IsString() || !is_hex_sha256({fp.GetString(), fp.GetStringLength()})) {
      return false;
    }
    out.emplace_back(fp.GetString(), fp.GetStringLength());
  }
  return true;
}

}  // namespace

std::string to_json(const partner_cutoffs& cutoffs) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto put = [&](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  put("partner", cutoffs.partner_id);
  w.Key("cutoffs");
  w.StartArray();
  for (const auto& c : cutoffs.cutoffs) {
    w.StartObject();
    put("cutOff", c.cut_off);
    put("retiringUntil", c.retiring_until);
    put("replacedBy", c.replaced_by);
    w.Key("pinnedBefore");
    w.StartArray();
    for (const auto& fp : c.pinned_before) {
      w.String(fp.data(), static_cast<rapidjson::SizeType>(fp.size()));
    }
    w.EndArray();
    if (!c.recorded_since.empty()) {
      w.Key("recordedSince");
      w.StartArray();
      for (const auto& fp : c.recorded_since) {
        w.String(fp.data(), static_cast<rapidjson::SizeType>(fp.size()));
      }
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<partner_cutoffs> cutoffs_from_json(std::string_view text, std::string& error) {
  rapidjson::Document doc;
  if (auto e = json::parse_untrusted(text, doc)) {
    error = "not JSON: " + e->reason;
    return std::nullopt;
  }
  if (!doc.IsObject() || !doc.HasMember("cutoffs") || !doc["cutoffs"].IsArray()) {
    error = "not an object with a cutoffs array";
    return std::nullopt;
  }
  partner_cutoffs out;
  out.partner_id = json::get_string(doc, "partner");
  if (!is_valid_partner_id(out.partner_id)) {
    error = "no valid partner id";
    return std::nullopt;
  }
  for (const auto& entry : doc["cutoffs"].GetArray()) {
    rotation_cutoff c;
    if (!entry.IsObject() || !entry.HasMember("pinnedBefore") || !entry["pinnedBefore"].IsArray()) {
      error = "a cut-off needs cutOff, retiringUntil, replacedBy and pinnedBefore";
      return std::nullopt;
    }
    const auto& pins = entry["pinnedBefore"];
    c.cut_off = json::get_string(entry, "cutOff");
    c.retiring_until = json::get_string(entry, "retiringUntil");
    c.replaced_by = json::get_string(entry, "replacedBy");
    const auto at = parse_rfc3339(c.cut_off);
    const auto until = parse_rfc3339(c.retiring_until);
    if (!at || !until) {
      error = "a cut-off needs two RFC 3339 times (cutOff, retiringUntil)";
      return std::nullopt;
    }
    c.cut_off_at = *at;
    c.until_at = *until;
    if (!is_hex_sha256(c.replaced_by)) {
      error = "a cut-off's replacedBy must be a SHA-256 fingerprint";
      return std::nullopt;
    }
    if (!read_fingerprints(pins, c.pinned_before)) {
      error = "pinnedBefore must list SHA-256 fingerprints";
      return std::nullopt;
    }
    // Absent from items stored before it, and from a rotation's own.
    if (entry.HasMember("recordedSince")) {
      const auto& recorded = entry["recordedSince"];
      if (!recorded.IsArray()) {
        error = "recordedSince must be an array of SHA-256 fingerprints";
        return std::nullopt;
      }
      if (!read_fingerprints(recorded, c.recorded_since)) {
        error = "recordedSince must list SHA-256 fingerprints";
        return std::nullopt;
      }
    }
    out.cutoffs.push_back(std::move(c));
  }
  return out;
}

partner_cutoffs with_rotation(const partner_cutoffs& earlier, rotation_cutoff next,
                              std::chrono::system_clock::time_point now) {
  partner_cutoffs out;
  out.partner_id = earlier.partner_id;
  const rotation_cutoff* latest_ended = nullptr;
  for (const auto& c : earlier.cutoffs) {
    for (const auto& pin : c.pinned_before) {
      if (!contains(next.pinned_before, pin)) {
        next.pinned_before.push_back(pin);
      }
    }
    if (c.until_at >= next.until_at) {
      continue;  // next refuses all it refuses, and no later
    }
    if (c.until_at <= now) {
      if (latest_ended == nullptr || c.cut_off_at >= latest_ended->cut_off_at) {
        latest_ended = &c;
      }
      continue;
    }
    out.cutoffs.push_back(c);
  }
  if (latest_ended != nullptr) {
    out.cutoffs.insert(out.cutoffs.begin(), *latest_ended);
  }
  out.cutoffs.push_back(std::move(next));
  return out;
}

void issue_times::remember(const std::string& fingerprint,
                           std::chrono::system_clock::time_point not_before) {
  std::lock_guard lock(mutex_);
  if (times_.size() >= max_entries && !times_.contains(fingerprint)) {
    times_.clear();
  }
  times_[fingerprint] = not_before;
}

std::optional<std::chrono::system_clock::time_point> issue_times::find(
    std::string_view fingerprint) const {
  std::lock_guard lock(mutex_);
  auto it = times_.find(fingerprint);
  if (it == times_.end()) {
    return std::nullopt;
  }
  return it->second;
}

bool trust_state::held_for_unapplied_change(std::string_view partner_id) const {
  if (unapplied_changes.empty()) {
    return false;
  }
  const std::string id(partner_id);
  return unapplied_changes.contains({"partner", id}) || unapplied_changes.contains({"cutoff", id});
}

bool trust_state::cut_off(std::string_view partner_id, std::string_view fingerprint,
                          std::optional<std::chrono::system_clock::time_point> not_before,
                          std::chrono::system_clock::time_point now) const {
  const auto found = cutoffs.find(partner_id);
  if (found == cutoffs.end()) {
    return false;
  }
  const auto record = certificates.find(fingerprint);
  const auto recorded_at =
      record == certificates.end() ? std::nullopt : parse_rfc3339(record->second.recorded_at);
  const bool pinned_here = partners.pinned_by(fingerprint) == partner_id;
  for (const auto& c : found->second.cutoffs) {
    if (now < c.until_at) {
      continue;  // still inside this rotation's overlap
    }
    // The rotation's new certificate, or one recorded since: by its record here, or by the
    // cut-off's recorded_since (recorded on the gateway whose export this one was built from).
    if (fingerprint == c.replaced_by || (recorded_at && *recorded_at >= c.cut_off_at) ||
        contains(c.recorded_since, fingerprint)) {
      continue;
    }
    if (contains(c.pinned_before, fingerprint)) {
      return true;  // a pin from before the rotation ends with the overlap
    }
    if (pinned_here) {
      continue;  // pinned since
    }
    // notBefore has whole seconds: one issued in the cut-off's second counts as after it.
    const auto issued_from =
        std::chrono::floor<std::chrono::seconds>(c.cut_off_at) - issue_backdating;
    if (!not_before || *not_before < issued_from) {
      return true;  // issued before the cut-off (or not known to be issued after it)
    }
  }
  return false;
}

identity_decision trust_state::identify(const certificate_facts& facts,
                                        std::chrono::system_clock::time_point now) const {
  if (!facts.admin_uris.empty()) {
    return {identity_refusal::admin_certificate, {}};
  }
  const auto it = certificates.find(facts.sha256_fingerprint);
  const certificate_record* record = it == certificates.end() ? nullptr : &it->second;
  if (record != nullptr && record->state == certificate_state::revoked) {
    return {identity_refusal::revoked_certificate, {}};
  }
  if (record != nullptr && record->state == certificate_state::retiring) {
    const auto until = parse_rfc3339(record->retiring_until);
    if (!until || now >= *until) {
      return {identity_refusal::retired_certificate, {}};
    }
  }
  auto decision = partners.identify(facts);
  if (record != nullptr) {
    // A registered certificate pins its partner: it maps a certificate without a partner SAN,
    // and one whose SAN names someone else is ambiguous.
    if (decision.refusal == identity_refusal::no_partner_identity) {
      const partner* p = partners.find(record->partner_id);
      if (p == nullptr) {
        return {identity_refusal::unknown_partner, {}};
      }
      if (!p->enabled) {
        return {identity_refusal::disabled_partner, {}};
      }
      decision = {identity_refusal::none, p->id};
    } else if (decision.refusal == identity_refusal::none &&
               decision.partner_id != record->partner_id) {
      return {identity_refusal::ambiguous, {}};
    }
  }
  if (decision.refusal != identity_refusal::none) {
    return decision;
  }
  // A change of this partner this instance could not apply: refused until one that applies.
  if (held_for_unapplied_change(decision.partner_id)) {
    return {identity_refusal::disabled_partner, {}};
  }
  if (cutoffs.contains(decision.partner_id)) {
    if (cut_off(decision.partner_id, facts.sha256_fingerprint, facts.not_before, now)) {
      return {identity_refusal::retired_certificate, {}};
    }
    // Kept for still_trusted(): an open connection is judged by the fingerprint alone.
    if (facts.not_before) {
      seen_issue_times->remember(facts.sha256_fingerprint, *facts.not_before);
    }
  }
  return decision;
}

bool trust_state::still_trusted(std::string_view partner_id, std::string_view fingerprint,
                                std::chrono::system_clock::time_point now) const {
  const partner* p = partners.find(partner_id);
  if (p == nullptr || !p->enabled || held_for_unapplied_change(partner_id) ||
      partners.is_revoked(fingerprint)) {
    return false;
  }
  if (cutoffs.contains(partner_id) &&
      cut_off(partner_id, fingerprint, seen_issue_times->find(fingerprint), now)) {
    return false;
  }
  const auto it = certificates.find(fingerprint);
  if (it == certificates.end()) {
    return true;
  }
  if (it->second.state == certificate_state::revoked || it->second.partner_id != partner_id) {
    return false;
  }
  if (it->second.state == certificate_state::retiring) {
    const auto until = parse_rfc3339(it->second.retiring_until);
    return until && now < *until;
  }
  return true;
}

trust_state seed_trust_state(const partner_registry& partners) {
  trust_state seed;
  for (const partner* p : partners.all()) {
    partner definition = *p;
    if (!definition.rotation_cutoffs.empty()) {
      seed.cutoffs[definition.id] =
          partner_cutoffs{.partner_id = definition.id, .cutoffs = definition.rotation_cutoffs};
    }
    for (const auto& retiring : definition.retiring_sha256) {
      certificate_record record;
      record.fingerprint = retiring.sha256;
      record.partner_id = definition.id;
      record.state = certificate_state::retiring;
      record.retiring_until = retiring.retiring_until;
      record.source = "file";
      seed.certificates.emplace(record.fingerprint, std::move(record));
    }
    definition.rotation_cutoffs.clear();
    definition.retiring_sha256.clear();
    seed.partners.add(std::move(definition));
  }
  return seed;
}

trust_store::trust_store(std::shared_ptr<const trust_state> initial, clock_fn clock)
    : state_(std::move(initial)), clock_(std::move(clock)) {}

std::shared_ptr<const trust_state> trust_store::current() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void trust_store::replace(std::shared_ptr<const trust_state> next) {
  std::lock_guard lock(mutex_);
  state_ = std::move(next);
  version_.fetch_add(1, std::memory_order_release);
}

std::chrono::system_clock::time_point trust_store::now() const {
  return clock_ ? clock_() : std::chrono::system_clock::now();
}

identity_decision trust_store::identify(const certificate_facts& facts) const {
  return current()->identify(facts, now());
}

}  // namespace mxgw::identity
