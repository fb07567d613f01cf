// Live trust snapshot (see trust_state.hpp).
#include "gateway/identity/trust_state.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

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
  const auto state = certificate_state_from(json::get_string(doc, "state"));
  if (!state || r.fingerprint.size() != 64 || !is_valid_partner_id(r.partner_id)) {
    error = "a certificate record needs a fingerprint, a partner and a known state";
    return std::nullopt;
  }
  r.state = *state;
  return r;
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
  if (record == nullptr) {
    return decision;
  }
  // A registered certificate pins its partner: it maps a certificate without a partner SAN, and
  // one whose SAN names someone else is ambiguous.
  if (decision.refusal == identity_refusal::no_partner_identity) {
    const partner* p = partners.find(record->partner_id);
    if (p == nullptr) {
      return {identity_refusal::unknown_partner, {}};
    }
    if (!p->enabled) {
      return {identity_refusal::disabled_partner, {}};
    }
    return {identity_refusal::none, p->id};
  }
  if (decision.refusal == identity_refusal::none && decision.partner_id != record->partner_id) {
    return {identity_refusal::ambiguous, {}};
  }
  return decision;
}

bool trust_state::still_trusted(std::string_view partner_id, std::string_view fingerprint,
                                std::chrono::system_clock::time_point now) const {
  const partner* p = partners.find(partner_id);
  if (p == nullptr || !p->enabled) {
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
