// Admin API routes (see admin_api.hpp). Logs and audit records carry metadata only.
#include "gateway/admin/admin_api.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <memory>
#include <tuple>

#include "gateway/admin/admin_state.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/metrics.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/delivery/delivery_service.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/peer_identity.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/report/collect.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::admin {

using http::problem;
using http::response;
using writer = rapidjson::Writer<rapidjson::StringBuffer>;
using clock = std::chrono::system_clock;

struct admin_api::context {
  std::shared_ptr<state_manager> state;
  std::shared_ptr<store::message_store> store;
  admin_api_options options;
  std::shared_ptr<metrics> counters;
  std::function<std::string()> extra_metrics;
};

namespace {

using done_fn = std::function<void(response)>;
using query_map = std::map<std::string, std::string, std::less<>>;

response json_response(int status, const std::function<void(writer&)>& fill) {
  rapidjson::StringBuffer buffer;
  writer w(buffer);
  fill(w);
  response r;
  r.status = status;
  r.body.assign(buffer.GetString(), buffer.GetSize());
  return r;
}

void put(writer& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void raw(writer& w, const char* key, std::string_view json_text) {
  w.Key(key);
  w.RawValue(json_text.data(), json_text.size(), rapidjson::kObjectType);
}

response not_found(std::string_view what) {
  return problem(404, "not-found", "Not found", std::string(what));
}

response method_not_allowed(std::string_view allow) {
  auto r = problem(405, "method-not-allowed", "Method not allowed",
                   "This resource answers " + std::string(allow) + " only.");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

response store_failed() {
  auto r = problem(503, "store-unavailable", "Store unavailable",
                   "The store could not complete the request; nothing changed.");
  r.headers.emplace_back("Retry-After", "5");
  return r;
}

response invalid(std::string_view detail, const std::vector<pipeline::field_error>& errors = {}) {
  return problem(422, "invalid-request", "Invalid request", detail, errors);
}

std::vector<pipeline::field_error> field_errors(
    const std::vector<identity::config_problem>& problems) {
  std::vector<pipeline::field_error> out;
  for (const auto& p : problems) {
    out.push_back({p.field.empty() ? "" : p.field, p.reason});
  }
  return out;
}

std::string etag(std::int64_t version) {
  return "\"" + std::to_string(version) + "\"";
}

// If-Match: "12", W/"12" or 12. nullopt when absent; -1 when present but unreadable.
std::optional<std::int64_t> if_match_version(std::string_view header) {
  if (header.empty()) {
    return std::nullopt;
  }
  if (header.starts_with("W/")) {
    header.remove_prefix(2);
  }
  if (header.size() >= 2 && header.front() == '"' && header.back() == '"') {
    header = header.substr(1, header.size() - 2);
  }
  std::int64_t value = -1;
  auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), value);
  if (ec != std::errc() || end != header.data() + header.size() || value < 0) {
    return -1;
  }
  return value;
}

response precondition_failed(std::int64_t current) {
  auto r = problem(412, "precondition-failed", "Precondition failed",
                   "The item changed since the version in If-Match; read it again (current "
                   "version " +
                       std::to_string(current) + ").");
  r.headers.emplace_back("ETag", etag(current));
  return r;
}

bool is_reason_code(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

constexpr std::array<std::string_view, 8> revocation_reasons = {
    "unspecified", "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",  "cessationOfOperation", "certificateHold", "privilegeWithdrawn"};

std::optional<std::int64_t> int_param(const query_map& query, const char* name,
                                      std::int64_t fallback, std::int64_t min, std::int64_t max) {
  auto it = query.find(name);
  if (it == query.end()) {
    return fallback;
  }
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc() || end != it->second.data() + it->second.size() || value < min ||
      value > max) {
    return std::nullopt;
  }
  return value;
}

std::string normalise_fingerprint(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c != ':') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  const bool hex = out.size() == 64 && std::all_of(out.begin(), out.end(), [](char c) {
                     return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                   });
  return hex ? out : std::string();
}

void write_record(writer& w, const identity::certificate_record& r, clock::time_point now) {
  w.StartObject();
  put(w, "fingerprint", r.fingerprint);
  put(w, "serial", r.serial_hex);
  put(w, "partner", r.partner_id);
  put(w, "subject", r.subject);
  put(w, "notBefore", r.not_before);
  put(w, "notAfter", r.not_after);
  std::string state(identity::to_string(r.state));
  if (r.state == identity::certificate_state::retiring) {
    const auto until = parse_rfc3339(r.retiring_until);
    if (!until || now >= *until) {
      state = "retired";  // the overlap has ended; the certificate is refused
    }
  }
  put(w, "state", state);
  if (!r.retiring_until.empty()) {
    put(w, "retiringUntil", r.retiring_until);
  }
  if (!r.revoked_at.empty()) {
    put(w, "revokedAt", r.revoked_at);
    put(w, "reason", r.reason);
  }
  if (!r.replaced_by.empty()) {
    put(w, "replacedBy", r.replaced_by);
  }
  if (!r.recorded_at.empty()) {
    put(w, "recordedAt", r.recorded_at);
  }
  put(w, "source", r.source);
  w.EndObject();
}

// The parsed JSON body, or a 400/415 answer.
std::optional<response> read_body(const http::request& req, rapidjson::Document& doc,
                                  std::size_t max_depth) {
  const std::string type(req.content_type.substr(0, req.content_type.find(';')));
  if (type != "application/json") {
    return problem(415, "unsupported-media-type", "Unsupported media type",
                   "The admin API takes application/json (UTF-8).");
  }
  if (auto error = json::parse_untrusted(req.body, doc, {max_depth})) {
    return problem(400, "malformed-json", "Malformed JSON",
                   error->reason + " at byte " + std::to_string(error->offset));
  }
  if (!doc.IsObject()) {
    return problem(400, "malformed-json", "Malformed JSON", "The body must be a JSON object.");
  }
  return std::nullopt;
}

std::string string_member(const rapidjson::Value& doc, const char* name) {
  return std::string(json::get_string(doc, name));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The handlers, one per route; each runs with the request's admin name as the actor.

namespace {

struct call {
  const admin_api::context& ctx;
  const http::request& req;  ///< valid only until the handler returns: not in store callbacks
  done_fn done;
  std::string actor;
  std::string peer;  ///< a copy, for logs written from store callbacks

  state_manager& state() const { return *ctx.state; }
  clock::time_point now() const { return ctx.state->trust_store().now(); }

  audit::audit_record record(std::string event, std::string partner,
                             std::vector<std::pair<std::string, std::string>> details = {}) const {
    return {.event = std::move(event),
            .actor = actor,
            .partner = std::move(partner),
            .message_id = {},
            .details = std::move(details)};
  }

  void log_change(std::string_view event, std::string_view partner, int status) const {
    log::info({.event = event,
               .partner = partner,
               .outcome = "admin",
               .peer = peer,
               .detail = actor,
               .status = status});
  }
};

// --- partners -----------------------------------------------------------------------------------

// Why partner `id` is refused although its definition may say enabled: a change of it stored by
// another instance (or found at start) that this instance could not apply. Nothing otherwise.
void write_held(writer& w, const identity::trust_state& trust, const std::string& id) {
  if (trust.held_for_unapplied_change(id)) {
    put(w, "refused", "unapplied-change");
  }
}

void list_partners(const call& c) {
  const auto trust = c.state().trust();
  c.done(json_response(200, [&](writer& w) {
    w.StartObject();
    w.Key("partners");
    w.StartArray();
    for (const auto* p : trust->partners.all()) {
      w.StartObject();
      raw(w, "definition", identity::to_json(*p));
      w.Key("version");
      w.Int64(c.state().version_of(kind_partner, p->id));
      write_held(w, *trust, p->id);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }));
}

void get_partner(const call& c, const std::string& id) {
  const auto trust = c.state().trust();
  const auto* p = trust->partners.find(id);
  if (p == nullptr) {
    return c.done(not_found("There is no partner with this id."));
  }
  const auto version = c.state().version_of(kind_partner, id);
  auto r = json_response(200, [&](writer& w) {
    w.StartObject();
    raw(w, "definition", identity::to_json(*p));
    w.Key("version");
    w.Int64(version);
    write_held(w, *trust, id);
    w.EndObject();
  });
  r.headers.emplace_back("ETag", etag(version));
  c.done(std::move(r));
}

// Persists partner `p` (created or changed) and answers `status` with its definition.
void store_partner(const call& c, identity::partner p, std::optional<std::int64_t> expected,
                   std::string event, std::vector<std::pair<std::string, std::string>> details,
                   int status) {
  const std::string id = p.id;
  store::state_item item{.kind = std::string(kind_partner),
                         .key = id,
                         .value = identity::to_json(p),
                         .version = 0,
                         .changed_at = {},
                         .changed_by = c.actor};
  auto audit = std::vector<audit::audit_record>{c.record(event, id, std::move(details))};
  c.state().change(std::move(item), expected, std::move(audit),
                   [c, id, event, status, body = identity::to_json(p)](store::put_outcome outcome,
                                                                       std::int64_t version) {
                     if (outcome == store::put_outcome::failed) {
                       return c.done(store_failed());
                     }
                     if (outcome == store::put_outcome::conflict) {
                       return c.done(status == 201
                                         ? problem(409, "partner-exists", "Partner exists",
                                                   "A partner with this id exists.")
                                         : precondition_failed(version));
                     }
                     c.log_change(event, id, status);
                     auto r = json_response(status, [&](writer& w) {
                       w.StartObject();
                       raw(w, "definition", body);
                       w.Key("version");
                       w.Int64(version);
                       w.EndObject();
                     });
                     r.headers.emplace_back("ETag", etag(version));
                     if (status == 201) {
                       r.headers.emplace_back("Location", "/admin/v1/partners/" + id);
                     }
                     c.done(std::move(r));
                   });
}

// Reads and checks a partner definition from the body, as partners.json entries are checked.
std::optional<identity::partner> partner_from_body(const call& c) {
  rapidjson::Document doc;
  if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
    c.done(std::move(*refusal));
    return std::nullopt;
  }
  // A rotation's cut-offs and retiring certificates are the export's, read at start only: here a
  // rotation records them, and a definition that carried its own would not change them.
  std::vector<pipeline::field_error> export_only;
  for (const char* member : {"rotationCutoffs", "retiringSha256"}) {
    if (doc.IsObject() && doc.HasMember(member)) {
      export_only.push_back({std::string("/") + member,
                             "is written by the export and read at start only; rotate instead"});
    }
  }
  if (!export_only.empty()) {
    c.done(invalid("A partner definition through the API carries no rotation state.", export_only));
    return std::nullopt;
  }
  std::vector<identity::config_problem> problems;
  auto p =
      identity::partner_registry::parse_partner(doc, "", problems, "body", &c.state().adapters());
  if (!p) {
    c.done(invalid("The partner definition has problems; see errors.", field_errors(problems)));
    return std::nullopt;
  }
  // An attempt must end within its lease, or the copy is claimed and sent again while it runs.
  if (const auto lease = c.ctx.options.delivery_lease; lease.count() > 0) {
    const auto longest = delivery::longest_attempt(lease);
    if (!p->endpoint.empty() && p->delivery.timeout >= longest) {
      c.done(
          invalid("The partner's delivery timeout is not below the delivery lease less its margin.",
                  {{"/delivery/timeout_ms",
                    "must be below " + std::to_string(longest.count()) + " (delivery lease_ms " +
                        std::to_string(lease.count()) + " less its margin of " +
                        std::to_string(delivery::lease_margin(lease).count()) + ")"}}));
      return std::nullopt;
    }
  }
  auto registry = c.state().trust()->partners;
  if (auto clash = registry.put(*p); !clash.empty()) {
    c.done(invalid("A pinned fingerprint belongs to another partner.",
                   {{"/pinnedSha256", "is pinned for another partner already"}}));
    return std::nullopt;
  }
  return p;
}

std::string changed_fields(const identity::partner& before, const identity::partner& after) {
  std::string out;
  auto mark = [&](bool differs, const char* name) {
    if (differs) {
      out += (out.empty() ? "" : ",") + std::string(name);
    }
  };
  mark(before.name != after.name, "name");
  mark(before.country != after.country, "country");
  mark(before.adapter != after.adapter, "adapter");
  mark(before.enabled != after.enabled, "enabled");
  mark(before.endpoint != after.endpoint, "endpoint");
  mark(before.pinned_sha256 != after.pinned_sha256, "pinnedSha256");
  mark(before.revoked_sha256 != after.revoked_sha256, "revokedSha256");
  mark(before.sends != after.sends, "sends");
  mark(before.receives != after.receives, "receives");
  mark(before.agreements != after.agreements, "agreements");
  mark(before.purposes != after.purposes, "purposes");
  mark(before.carry_unmapped != after.carry_unmapped, "carryUnmapped");
  mark(out.empty() && identity::to_json(before) != identity::to_json(after), "other");
  return out;
}

void create_partner(const call& c) {
  auto p = partner_from_body(c);
  if (!p) {
    return;
  }
  if (c.state().trust()->partners.find(p->id) != nullptr) {
    return c.done(problem(409, "partner-exists", "Partner exists",
                          "A partner with this id exists; change it with PUT."));
  }
  std::vector<std::pair<std::string, std::string>> details{
      {"after.enabled", p->enabled ? "true" : "false"}, {"after.adapter", p->adapter}};
  store_partner(c, std::move(*p), 0, "partner.created", std::move(details), 201);
}

void update_partner(const call& c, const std::string& id) {
  const auto trust = c.state().trust();
  const auto* before = trust->partners.find(id);
  if (before == nullptr) {
    return c.done(not_found("There is no partner with this id; create it with POST."));
  }
  const auto current = c.state().version_of(kind_partner, id);
  const auto wanted = if_match_version(c.req.if_match);
  if (wanted && *wanted != current) {
    return c.done(precondition_failed(current));
  }
  auto p = partner_from_body(c);
  if (!p) {
    return;
  }
  if (p->id != id) {
    return c.done(invalid("The id in the body differs from the one in the path.",
                          {{"/id", "must equal the partner id in the path"}}));
  }
  // A revocation carried by the files is never withdrawn by an edit (as a recorded one is not).
  for (const auto& fp : before->revoked_sha256) {
    if (std::find(p->revoked_sha256.begin(), p->revoked_sha256.end(), fp) ==
        p->revoked_sha256.end()) {
      return c.done(
          invalid("A revoked fingerprint cannot be withdrawn.",
                  {{"/revokedSha256", "must keep every fingerprint revoked before: " + fp}}));
    }
  }
  std::vector<std::pair<std::string, std::string>> details{
      {"changed", changed_fields(*before, *p)},
      {"before.enabled", before->enabled ? "true" : "false"},
      {"after.enabled", p->enabled ? "true" : "false"}};
  store_partner(c, std::move(*p), current, "partner.updated", std::move(details), 200);
}

void set_enabled(const call& c, const std::string& id, bool enabled) {
  const auto trust = c.state().trust();
  const auto* before = trust->partners.find(id);
  if (before == nullptr) {
    return c.done(not_found("There is no partner with this id."));
  }
  const auto current = c.state().version_of(kind_partner, id);
  const auto wanted = if_match_version(c.req.if_match);
  if (wanted && *wanted != current) {
    return c.done(precondition_failed(current));
  }
  std::string reason = "unspecified";
  if (!c.req.body.empty()) {
    rapidjson::Document doc;
    if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
      return c.done(std::move(*refusal));
    }
    if (doc.HasMember("reason")) {
      reason = string_member(doc, "reason");
      if (!is_reason_code(reason)) {
        return c.done(invalid("The reason must be a short code.",
                              {{"/reason", "must match ^[a-z0-9-]{1,64}$"}}));
      }
    }
  }
  identity::partner p = *before;
  p.enabled = enabled;
  std::vector<std::pair<std::string, std::string>> details{
      {"before.enabled", before->enabled ? "true" : "false"},
      {"after.enabled", enabled ? "true" : "false"},
      {"reason", reason}};
  store_partner(c, std::move(p), current, enabled ? "partner.enabled" : "partner.disabled",
                std::move(details), 200);
}

// --- certificates -------------------------------------------------------------------------------

void list_certificates(const call& c, std::string_view partner,
                       std::optional<std::int64_t> within_days) {
  const auto trust = c.state().trust();
  const auto now = c.now();
  std::vector<const identity::certificate_record*> records;
  for (const auto& [fp, r] : trust->certificates) {
    if (!partner.empty() && r.partner_id != partner) {
      continue;
    }
    if (within_days) {
      const auto not_after = parse_rfc3339(r.not_after);
      if (!not_after || r.state == identity::certificate_state::revoked ||
          *not_after > now + std::chrono::hours(24 * *within_days)) {
        continue;
      }
    }
    records.push_back(&r);
  }
  std::sort(records.begin(), records.end(), [](const auto* a, const auto* b) {
    return std::tie(a->not_after, a->fingerprint) < std::tie(b->not_after, b->fingerprint);
  });
  c.done(json_response(200, [&](writer& w) {
    w.StartObject();
    w.Key("certificates");
    w.StartArray();
    for (const auto* r : records) {
      write_record(w, *r, now);
    }
    w.EndArray();
    w.EndObject();
  }));
}

void get_certificate(const call& c, const std::string& fingerprint) {
  const auto trust = c.state().trust();
  auto it = trust->certificates.find(normalise_fingerprint(fingerprint));
  if (it == trust->certificates.end()) {
    return c.done(not_found("There is no recorded certificate with this fingerprint."));
  }
  c.done(json_response(200, [&](writer& w) { write_record(w, it->second, c.now()); }));
}

// One state change of a multi-item action, with its audit record.
struct pending_change {
  store::state_item item;
  std::optional<std::int64_t> expected;
  audit::audit_record audit;
};

pending_change record_change(const call& c, const identity::certificate_record& r,
                             std::optional<std::int64_t> expected, audit::audit_record audit) {
  return {store::state_item{.kind = std::string(kind_certificate),
                            .key = r.fingerprint,
                            .value = identity::to_json(r),
                            .version = 0,
                            .changed_at = {},
                            .changed_by = c.actor},
          expected, std::move(audit)};
}

// Persists the changes of one action together, with their audit records, in one transaction
// (a rotation: the new record, the cut-off, each earlier record made retiring). A version that
// changed meanwhile or a store failure stores none of them, so an action is never half done;
// answers with `finish` once all are stored, or with the failure.
void store_changes(call c, std::vector<pending_change> changes, std::function<response()> finish) {
  std::vector<store::state_put> puts;
  std::vector<audit::audit_record> audit;
  for (const auto& change : changes) {
    puts.push_back({change.item, change.expected});
    audit.push_back(change.audit);
  }
  auto state = c.ctx.state;
  state->change_all(
      std::move(puts), std::move(audit),
      [c, changes = std::move(changes), finish = std::move(finish)](
          store::put_outcome outcome, const std::vector<std::int64_t>&) {
        if (outcome == store::put_outcome::failed) {
          return c.done(store_failed());
        }
        if (outcome == store::put_outcome::conflict) {
          return c.done(problem(409, "conflict", "Changed concurrently",
                                "A certificate record or the partner's cut-off changed "
                                "meanwhile, and nothing was stored; read them again."));
        }
        for (const auto& change : changes) {
          c.log_change(change.audit.event, change.audit.partner, 200);
        }
        c.done(finish());
      });
}

struct new_certificate {
  identity::certificate_record record;
  std::string cert_pem;  // empty for a fingerprint alone
};

// Reads "csr", "certificate" or "pinnedSha256" from the body into a record for `partner_id`.
std::optional<new_certificate> certificate_from_body(const call& c, const rapidjson::Document& doc,
                                                     const std::string& partner_id) {
  new_certificate out;
  auto& r = out.record;
  r.partner_id = partner_id;
  const int given = int{doc.HasMember("csr")} + int{doc.HasMember("certificate")} +
                    int{doc.HasMember("pinnedSha256")};
  if (given != 1) {
    c.done(invalid("Give exactly one of csr, certificate or pinnedSha256."));
    return std::nullopt;
  }
  auto validity = c.ctx.options.default_validity;
  if (doc.HasMember("validityDays")) {
    if (!doc["validityDays"].IsInt() || doc["validityDays"].GetInt() < 1 ||
        doc["validityDays"].GetInt() > 825) {
      c.done(invalid("validityDays is out of range.",
                     {{"/validityDays", "must be a whole number from 1 to 825"}}));
      return std::nullopt;
    }
    validity = std::chrono::hours(24 * doc["validityDays"].GetInt());
  }
  try {
    if (doc.HasMember("csr")) {
      if (c.ctx.options.signing_dir.empty()) {
        c.done(problem(409, "no-signing-ca", "No signing CA",
                       "This gateway has no admin.signing_dir; register a certificate instead."));
        return std::nullopt;
      }
      const auto issued = identity::certs_sign_partner_csr(c.ctx.options.signing_dir, partner_id,
                                                           string_member(doc, "csr"), validity);
      out.cert_pem = issued.cert_pem;
      r.source = "enrolled";
    } else if (doc.HasMember("certificate")) {
      out.cert_pem = string_member(doc, "certificate");
      const auto d = identity::describe_certificate(out.cert_pem);
      std::string why;
      if (d.is_ca) {
        why = "is a CA certificate";
      } else if (!d.client_auth) {
        why = "does not carry the clientAuth extended key usage";
      } else if (!d.admin_uris.empty()) {
        why = "names an administrator";
      } else if (!d.partner_uris.empty() &&
                 (d.partner_uris.size() != 1 || d.partner_uris.front() != partner_id)) {
        why = "names another partner";
      } else if (auto until = parse_rfc3339(d.not_after); !until || *until <= c.now()) {
        why = "has expired";
      }
      if (!why.empty()) {
        c.done(invalid("The certificate " + why + ".", {{"/certificate", why}}));
        return std::nullopt;
      }
      r.source = "registered";
    } else {
      r.fingerprint = normalise_fingerprint(string_member(doc, "pinnedSha256"));
      if (r.fingerprint.empty()) {
        c.done(invalid("The fingerprint is not a SHA-256.",
                       {{"/pinnedSha256", "must be 64 hex digits (colons allowed)"}}));
        return std::nullopt;
      }
      r.source = "pinned";
    }
  } catch (const identity::csr_refused& e) {
    c.done(problem(422, "csr-refused", "Certificate request refused", e.what()));
    return std::nullopt;
  } catch (const identity::cert_error& e) {
    c.done(invalid(e.what()));
    return std::nullopt;
  }
  if (!out.cert_pem.empty()) {
    const auto d = identity::describe_certificate(out.cert_pem);
    r.fingerprint = d.sha256_fingerprint;
    r.serial_hex = d.serial_hex;
    r.subject = d.subject;
    r.not_before = d.not_before;
    r.not_after = d.not_after;
  }
  if (c.state().trust()->certificates.contains(r.fingerprint)) {
    c.done(problem(409, "certificate-exists", "Certificate recorded",
                   "This certificate is recorded already."));
    return std::nullopt;
  }
  r.recorded_at = format_rfc3339_ms(c.now());
  return out;
}

response issued_response(const new_certificate& n, clock::time_point now,
                         const std::vector<identity::certificate_record>& retiring,
                         const std::string& cut_off) {
  auto r = json_response(201, [&](writer& w) {
    w.StartObject();
    w.Key("record");
    write_record(w, n.record, now);
    if (!n.cert_pem.empty()) {
      put(w, "certificate", n.cert_pem);
    }
    if (!cut_off.empty()) {
      put(w, "cutOff", cut_off);
    }
    if (!retiring.empty()) {
      w.Key("retiring");
      w.StartArray();
      for (const auto& old : retiring) {
        write_record(w, old, now);
      }
      w.EndArray();
    }
    w.EndObject();
  });
  r.headers.emplace_back("Location", "/admin/v1/certificates/" + n.record.fingerprint);
  return r;
}

void add_certificate(const call& c, const std::string& partner_id, bool rotate) {
  if (c.state().trust()->partners.find(partner_id) == nullptr) {
    return c.done(not_found("There is no partner with this id."));
  }
  rapidjson::Document doc;
  if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
    return c.done(std::move(*refusal));
  }
  auto overlap = c.ctx.options.default_overlap;
  if (doc.HasMember("overlapDays")) {
    if (!rotate || !doc["overlapDays"].IsInt() || doc["overlapDays"].GetInt() < 0 ||
        doc["overlapDays"].GetInt() > 365) {
      return c.done(invalid("overlapDays is out of range or not for this route.",
                            {{"/overlapDays", "must be a whole number from 0 to 365 (rotate)"}}));
    }
    overlap = std::chrono::hours(24 * doc["overlapDays"].GetInt());
  }
  auto added = certificate_from_body(c, doc, partner_id);
  if (!added) {
    return;
  }
  const auto now = parse_rfc3339(added->record.recorded_at).value_or(c.now());
  std::vector<pending_change> changes;
  changes.push_back(record_change(
      c, added->record, 0,
      c.record(added->record.source == "enrolled"
                   ? "cert.enrolled"
                   : (added->record.source == "pinned" ? "cert.pinned" : "cert.registered"),
               partner_id,
               {{"fingerprint", added->record.fingerprint},
                {"serial", added->record.serial_hex},
                {"notAfter", added->record.not_after},
                {"after.state", "active"}})));
  std::vector<identity::certificate_record> retiring;
  std::string cut_off;
  if (rotate) {
    const auto trust = c.state().trust();
    const auto until_at = std::chrono::floor<std::chrono::seconds>(now + overlap);
    const std::string until = format_rfc3339_ms(until_at);
    // Every certificate of the partner from before this moment ends with the overlap, recorded
    // or not (issued offline, pinned in the definition): the cut-off, persisted first. The new
    // certificate, and certificates recorded, pinned or issued from now on, stay.
    identity::rotation_cutoff next{.cut_off = added->record.recorded_at,
                                   .retiring_until = until,
                                   .replaced_by = added->record.fingerprint,
                                   .pinned_before = trust->partners.find(partner_id)->pinned_sha256,
                                   .cut_off_at = now,
                                   .until_at = until_at};
    identity::partner_cutoffs earlier{.partner_id = partner_id, .cutoffs = {}};
    if (auto it = trust->cutoffs.find(partner_id); it != trust->cutoffs.end()) {
      earlier = it->second;
    }
    const auto cutoffs = identity::with_rotation(earlier, std::move(next), now);
    cut_off = added->record.recorded_at;
    changes.push_back(
        {store::state_item{.kind = std::string(kind_cutoff),
                           .key = partner_id,
                           .value = identity::to_json(cutoffs),
                           .version = 0,
                           .changed_at = {},
                           .changed_by = c.actor},
         c.state().version_of(kind_cutoff, partner_id),
         c.record("cert.cutoff", partner_id,
                  {{"cutOff", cut_off},
                   {"retiringUntil", until},
                   {"replacedBy", added->record.fingerprint},
                   {"pinnedBefore", std::to_string(cutoffs.cutoffs.back().pinned_before.size())},
                   {"cutoffs", std::to_string(cutoffs.cutoffs.size())}})});
    // Every recorded certificate of the partner still active keeps working until the overlap
    // ends, and is listed as retiring.
    for (const auto& [fp, r] : trust->certificates) {
      if (r.partner_id != partner_id || r.state != identity::certificate_state::active) {
        continue;
      }
      auto old = r;
      old.state = identity::certificate_state::retiring;
      old.retiring_until = until;
      old.replaced_by = added->record.fingerprint;
      retiring.push_back(old);
      changes.push_back(record_change(c, old, c.state().version_of(kind_certificate, fp),
                                      c.record("cert.rotated", partner_id,
                                               {{"fingerprint", old.fingerprint},
                                                {"serial", old.serial_hex},
                                                {"before.state", "active"},
                                                {"after.state", "retiring"},
                                                {"retiringUntil", until},
                                                {"replacedBy", added->record.fingerprint}})));
    }
  }
  store_changes(c, std::move(changes), [added = std::move(*added), now, retiring, cut_off] {
    return issued_response(added, now, retiring, cut_off);
  });
}

void revoke_certificate(const call& c, const std::string& fingerprint_text) {
  const auto fingerprint = normalise_fingerprint(fingerprint_text);
  const auto trust = c.state().trust();
  identity::certificate_record record;
  if (auto it = trust->certificates.find(fingerprint); it != trust->certificates.end()) {
    record = it->second;
  } else {
    // A fingerprint pinned in a partner definition can be revoked without a record.
    for (const auto* p : trust->partners.all()) {
      if (std::find(p->pinned_sha256.begin(), p->pinned_sha256.end(), fingerprint) !=
          p->pinned_sha256.end()) {
        record.fingerprint = fingerprint;
        record.partner_id = p->id;
        record.source = "pinned";
      }
    }
  }
  if (record.fingerprint.empty()) {
    return c.done(not_found("There is no recorded or pinned certificate with this fingerprint."));
  }
  if (record.state == identity::certificate_state::revoked) {
    return c.done(
        problem(409, "already-revoked", "Already revoked", "This certificate was revoked before."));
  }
  rapidjson::Document doc;
  if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
    return c.done(std::move(*refusal));
  }
  const std::string reason = string_member(doc, "reason");
  if (std::find(revocation_reasons.begin(), revocation_reasons.end(), reason) ==
      revocation_reasons.end()) {
    return c.done(invalid("Give an RFC 5280 revocation reason.",
                          {{"/reason",
                            "must be one of unspecified, keyCompromise, cACompromise, "
                            "affiliationChanged, superseded, cessationOfOperation, "
                            "certificateHold, privilegeWithdrawn"}}));
  }
  const std::string before(identity::to_string(record.state));
  record.state = identity::certificate_state::revoked;
  record.revoked_at = format_rfc3339_ms(c.now());
  record.reason = reason;
  auto audit = c.record("cert.revoked", record.partner_id,
                        {{"fingerprint", record.fingerprint},
                         {"serial", record.serial_hex},
                         {"reason", reason},
                         {"before.state", before},
                         {"after.state", "revoked"}});
  const auto now = c.now();
  // The signing directory's CRL too, when it issued the certificate (for restarts and peers):
  // once the revocation is on the record, so that a store that fails changes nothing.
  std::vector<pending_change> changes;
  changes.push_back(record_change(
      c, record, c.state().version_of(kind_certificate, record.fingerprint), std::move(audit)));
  store_changes(c, std::move(changes),
                [record, now, dir = c.ctx.options.signing_dir] {
                  if (!dir.empty() && !record.serial_hex.empty()) {
                    try {
                      if (identity::certs_dir_knows_serial(dir, record.serial_hex)) {
                        identity::certs_revoke(dir, record.serial_hex);
                      }
                    } catch (const identity::cert_error& e) {
                      log::warn({.event = "admin.crl_not_updated",
                                 .partner = record.partner_id,
                                 .detail = e.what()});
                    }
                  }
                  return json_response(200, [&](writer& w) { write_record(w, record, now); });
                });
}

// --- routing ------------------------------------------------------------------------------------

// The release settings of `rules` as audit details under `prefix`: `approvals` and
// `releaseRules` (the release rules' ids joined by ','; ids hold no comma). Rules held because a
// stored routing could not be applied here have no settings this instance knows: `held` (the
// reason) instead. Nothing for no rules.
void release_details(std::vector<std::pair<std::string, std::string>>& details,
                     const std::string& prefix, const pipeline::routing_rules* rules) {
  if (rules == nullptr) {
    return;
  }
  if (!rules->held_reason().empty()) {
    details.emplace_back(prefix + "held", rules->held_reason());
    return;
  }
  std::string ids;
  for (const auto& rule : rules->release_rules()) {
    ids += ids.empty() ? rule.id : "," + rule.id;
  }
  details.emplace_back(prefix + "approvals", std::to_string(rules->release_approvals()));
  details.emplace_back(prefix + "releaseRules", ids);
}

void get_routing(const call& c) {
  const auto routing = c.state().routing();
  const auto version = c.state().version_of(kind_routing, routing_key);
  auto r = json_response(200, [&](writer& w) {
    w.StartObject();
    raw(w, "document", routing.document.empty() ? R"({"rules":[]})" : routing.document);
    w.Key("rules");
    w.Uint64(routing.rules ? routing.rules->size() : 0);
    if (routing.rules && !routing.rules->held_reason().empty()) {
      // A stored document this instance could not apply: messages are refused meanwhile, and
      // `document` is the last one that applied. A PUT with this ETag replaces it.
      put(w, "held", routing.rules->held_reason());
    }
    w.Key("version");
    w.Int64(version);
    w.EndObject();
  });
  r.headers.emplace_back("ETag", etag(version));
  c.done(std::move(r));
}

void replace_routing(const call& c) {
  const auto current = c.state().version_of(kind_routing, routing_key);
  const auto wanted = if_match_version(c.req.if_match);
  if (wanted && *wanted != current) {
    return c.done(precondition_failed(current));
  }
  rapidjson::Document doc;
  if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
    return c.done(std::move(*refusal));
  }
  std::vector<identity::config_problem> problems;
  const auto trust = c.state().trust();
  auto rules =
      pipeline::routing_rules::parse(doc, "body", problems, trust->partners, c.state().tables());
  if (!problems.empty()) {
    return c.done(
        invalid("The routing rules have problems; nothing changed.", field_errors(problems)));
  }
  const auto before = c.state().routing();
  // The release settings before and after are on the chain, so that a change of how many
  // administrators release a held copy (or of which copies are held) is seen by whoever reads it.
  std::vector<std::pair<std::string, std::string>> details{
      {"before.rules", std::to_string(before.rules ? before.rules->size() : 0)},
      {"after.rules", std::to_string(rules.size())}};
  release_details(details, "before.", before.rules.get());
  release_details(details, "after.", &rules);
  store::state_item item{.kind = std::string(kind_routing),
                         .key = std::string(routing_key),
                         .value = json::to_string(doc),
                         .version = 0,
                         .changed_at = {},
                         .changed_by = c.actor};
  auto audit =
      std::vector<audit::audit_record>{c.record("routing.replaced", {}, std::move(details))};
  c.state().change(std::move(item), current, std::move(audit),
                   [c](store::put_outcome outcome, std::int64_t version) {
                     if (outcome == store::put_outcome::failed) {
                       return c.done(store_failed());
                     }
                     if (outcome == store::put_outcome::conflict) {
                       return c.done(precondition_failed(version));
                     }
                     c.log_change("routing.replaced", {}, 200);
                     get_routing(c);
                   });
}

// --- queues, dead letters, audit -----------------------------------------------------------------

void queues(const call& c) {
  c.ctx.store->queue_stats([c](std::vector<store::queue_stat> stats, bool ok) {
    if (!ok) {
      return c.done(store_failed());
    }
    c.done(json_response(200, [&](writer& w) {
      w.StartObject();
      w.Key("queues");
      w.StartArray();
      for (const auto& s : stats) {
        w.StartObject();
        put(w, "partner", s.recipient);
        for (auto [name, value] :
             {std::pair{"held", s.held}, std::pair{"pending", s.pending},
              std::pair{"delivering", s.delivering}, std::pair{"retrying", s.retrying},
              std::pair{"dead", s.dead}, std::pair{"delivered", s.delivered},
              std::pair{"discarded", s.discarded}, std::pair{"rejected", s.rejected}}) {
          w.Key(name);
          w.Uint64(value);
        }
        put(w, "oldestWaiting", s.oldest_waiting);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    }));
  });
}

// GET /admin/v1/dead-letters: the dead letters, oldest first. A dead letter's last error may
// quote the message back (a name in the partner's answer), so who read how many is on the audit
// chain (durably) before the list is answered; when that append fails nothing is answered.
void dead_letters(const call& c, const query_map& query) {
  const auto limit = int_param(query, "limit", 100, 1, 1000);
  if (!limit) {
    return c.done(invalid("limit must be a whole number from 1 to 1000."));
  }
  auto store = c.ctx.store;
  store->list_dead(
      static_cast<std::size_t>(*limit), [c, store](std::vector<store::dead_letter> dead, bool ok) {
        if (!ok) {
          return c.done(store_failed());
        }
        auto audit = c.record("deadletters.viewed", {}, {{"count", std::to_string(dead.size())}});
        auto shown = std::make_shared<std::vector<store::dead_letter>>(std::move(dead));
        store->append_audit({audit}, [c, shown](bool appended) {
          if (!appended) {
            return c.done(store_failed());
          }
          c.log_change("deadletters.viewed", {}, 200);
          c.done(json_response(200, [&](writer& w) {
            w.StartObject();
            w.Key("deadLetters");
            w.StartArray();
            for (const auto& d : *shown) {
              w.StartObject();
              put(w, "message", d.message_id);
              put(w, "recipient", d.recipient);
              put(w, "sender", d.sender);
              put(w, "type", d.type);
              w.Key("attempts");
              w.Int(d.attempts);
              put(w, "lastError", readable_excerpt(d.last_error, store::max_error_bytes));
              put(w, "deadSince", format_rfc3339_ms(d.dead_since));
              w.EndObject();
            }
            w.EndArray();
            w.EndObject();
          }));
        });
      });
}

// The body's `reason`, a short code; false when the request was refused (answered already).
bool read_reason_code(const call& c, std::string& reason) {
  rapidjson::Document doc;
  if (auto refusal = read_body(c.req, doc, c.ctx.options.max_json_depth)) {
    c.done(std::move(*refusal));
    return false;
  }
  reason = string_member(doc, "reason");
  if (!is_reason_code(reason)) {
    c.done(
        invalid("Give the reason as a short code.", {{"/reason", "must match ^[a-z0-9-]{1,64}$"}}));
    return false;
  }
  return true;
}

void dead_letter_action(const call& c, const std::string& message, const std::string& recipient,
                        bool replay) {
  std::string id = message;
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (id.size() != 36 || !identity::is_valid_partner_id(recipient)) {
    return c.done(not_found("There is no such dead letter."));
  }
  std::string reason;
  if (!replay && !read_reason_code(c, reason)) {
    return;
  }
  audit::audit_record record{.event = replay ? "delivery.replayed" : "delivery.discarded",
                             .actor = c.actor,
                             .partner = recipient,
                             .message_id = id,
                             .details = {}};
  if (!replay) {
    record.details.emplace_back("reason", reason);
  }
  auto answer = [c, id, recipient, replay](bool found, bool ok) {
    if (!ok) {
      return c.done(store_failed());
    }
    if (!found) {
      return c.done(not_found("There is no dead delivery of this message to this recipient."));
    }
    c.log_change(replay ? "delivery.replayed" : "delivery.discarded", recipient, 200);
    c.done(json_response(200, [&](writer& w) {
      w.StartObject();
      put(w, "message", id);
      put(w, "recipient", recipient);
      put(w, "state", replay ? "pending" : "discarded");
      w.EndObject();
    }));
  };
  if (replay) {
    c.ctx.store->replay(id, recipient, {record}, answer);
  } else {
    c.ctx.store->discard(id, recipient, reason, {record}, answer);
  }
}

// --- four-eyes release ---------------------------------------------------------------------------

std::size_t release_approvals(const call& c) {
  const auto routing = c.state().routing();
  return routing.rules ? routing.rules->release_approvals() : pipeline::default_release_approvals;
}

void write_approvals(writer& w, const std::vector<store::release_approval>& approvals) {
  w.Key("approvals");
  w.StartArray();
  for (const auto& a : approvals) {
    w.StartObject();
    put(w, "by", a.by);
    put(w, "at", a.at);
    w.EndObject();
  }
  w.EndArray();
}

// GET /admin/v1/held: the copies waiting for release, oldest message first (metadata only).
void held_copies(const call& c, const query_map& query) {
  const auto limit = int_param(query, "limit", 100, 1, 1000);
  if (!limit) {
    return c.done(invalid("limit must be a whole number from 1 to 1000."));
  }
  const std::size_t required = release_approvals(c);
  c.ctx.store->list_held(static_cast<std::size_t>(*limit),
                         [c, required](std::vector<store::held_copy> held, bool ok) {
                           if (!ok) {
                             return c.done(store_failed());
                           }
                           c.done(json_response(200, [&](writer& w) {
                             w.StartObject();
                             w.Key("required");
                             w.Uint64(required);
                             w.Key("held");
                             w.StartArray();
                             for (const auto& h : held) {
                               w.StartObject();
                               put(w, "message", h.message_id);
                               put(w, "recipient", h.recipient);
                               put(w, "sender", h.sender);
                               put(w, "type", h.type);
                               put(w, "acceptedAt", h.accepted_at);
                               put(w, "heldBy", h.hold);
                               // The copy's own figure: more than `required` when it was
                               // held under a routing that asked for more.
                               w.Key("required");
                               w.Uint64(std::max(required, h.approvals_required));
                               write_approvals(w, h.approvals);
                               w.EndObject();
                             }
                             w.EndArray();
                             w.EndObject();
                           }));
                         });
}

// A message id from a path: lower case; empty when it cannot be one.
std::string path_message_id(const std::string& segment) {
  std::string id = ascii_lower(segment);
  return id.size() == 36 ? id : std::string();
}

// GET /admin/v1/held/{message}/{recipient}: the copy as it would leave, for the administrators who
// decide on it. It carries personal data: who read which copy is on the audit chain (durably)
// before the copy is answered, and the copy never reaches a log.
void held_copy_view(const call& c, const std::string& message, const std::string& recipient) {
  const std::string id = path_message_id(message);
  if (id.empty() || !identity::is_valid_partner_id(recipient)) {
    return c.done(not_found("There is no such held copy."));
  }
  auto store = c.ctx.store;
  store->read_held(
      id, recipient, [c, id, recipient, store](std::optional<store::delivery_job> job, bool read) {
        if (!read) {
          return c.done(store_failed());
        }
        if (!job) {
          return c.done(not_found("There is no held copy of this message for this recipient."));
        }
        auto audit = c.record("release.viewed", recipient);
        audit.message_id = id;
        auto shown = std::make_shared<store::delivery_job>(std::move(*job));
        store->append_audit({audit}, [c, id, recipient, shown](bool ok) {
          if (!ok) {
            return c.done(store_failed());
          }
          c.log_change("release.viewed", recipient, 200);
          const auto trust = c.state().trust();
          const identity::partner* p = trust->partners.find(recipient);
          c.done(json_response(200, [&](writer& w) {
            w.StartObject();
            put(w, "message", id);
            put(w, "recipient", recipient);
            put(w, "sender", shown->sender);
            put(w, "type", shown->type);
            put(w, "format", p != nullptr ? p->adapter : std::string("mx"));
            put(w, "copy", shown->payload);
            w.EndObject();
          }));
        });
      });
}

// POST /admin/v1/held/{message}/{recipient}/approve | reject: one administrator's decision.
void release_decision(const call& c, const std::string& message, const std::string& recipient,
                      bool approve) {
  const std::string id = path_message_id(message);
  if (id.empty() || !identity::is_valid_partner_id(recipient)) {
    return c.done(not_found("There is no such held copy."));
  }
  // Routing held here (a stored routing this instance could not apply is in force elsewhere):
  // how many approvals it asks for is not known here, and a stand-in figure could release a
  // copy with fewer than the routing in force wants. No decision until routing applies again.
  const auto routing = c.state().routing();
  if (routing.rules && !routing.rules->held_reason().empty()) {
    auto r = problem(503, "routing-held", "Routing held",
                     "The routing in force could not be applied on this gateway, so the number "
                     "of approvals a release needs is not known here; nothing was decided. Try "
                     "again once GET /admin/v1/routing no longer says held, or on another "
                     "instance.");
    r.headers.emplace_back("Retry-After", "30");
    return c.done(std::move(r));
  }
  std::string reason;
  if (!approve && !read_reason_code(c, reason)) {
    return;
  }
  store::release_request request{.message_id = id,
                                 .recipient = recipient,
                                 .actor = c.actor,
                                 .approve = approve,
                                 .reason = reason,
                                 .required = routing.rules ? routing.rules->release_approvals()
                                                           : pipeline::default_release_approvals,
                                 .audit = c.record({}, recipient)};
  request.audit.message_id = id;
  if (!approve) {
    request.audit.details.emplace_back("reason", reason);
  }
  c.ctx.store->decide_release(
      std::move(request), [c, id, recipient](store::release_result result, bool ok) {
        if (!ok) {
          return c.done(store_failed());
        }
        using store::release_outcome;
        if (result.outcome == release_outcome::not_held) {
          return c.done(not_found("There is no held copy of this message for this recipient."));
        }
        if (result.outcome == release_outcome::already_approved) {
          return c.done(problem(409, "already-approved", "Already approved",
                                "You approved this copy before; its release needs the approval of "
                                "another administrator."));
        }
        const char* outcome = result.outcome == release_outcome::released   ? "released"
                              : result.outcome == release_outcome::rejected ? "rejected"
                                                                            : "approved";
        c.log_change(std::string("release.") + outcome, recipient, 200);
        c.done(json_response(200, [&](writer& w) {
          w.StartObject();
          put(w, "message", id);
          put(w, "recipient", recipient);
          put(w, "outcome", outcome);
          put(w, "state",
              result.outcome == release_outcome::released   ? "pending"
              : result.outcome == release_outcome::rejected ? "rejected"
                                                            : "held");
          // What this copy needs: the figure in force, or more when it was held under more.
          w.Key("required");
          w.Uint64(result.required);
          write_approvals(w, result.approvals);
          w.EndObject();
        }));
      });
}

// GET /admin/v1/messages/{id}/candidates: the persons of other messages who may be the same person
// as one of this message's (docs/persons.md). Metadata only (message ids, pointers, senders, types,
// times, the kinds of key shared), never a name; but it links persons across messages, so who
// asked about which message is on the audit chain (durably) before the answer.
void person_candidates(const call& c, const std::string& message, const query_map& query) {
  if (!c.ctx.options.persons_matching) {
    return c.done(problem(409, "persons-matching-off", "Persons are not matched",
                          "This gateway keeps no persons' digests: persons.match_key is not set "
                          "(docs/persons.md)."));
  }
  const auto limit = int_param(query, "limit", 100, 1, 1000);
  if (!limit) {
    return c.done(invalid("limit must be a whole number from 1 to 1000."));
  }
  const std::string id = path_message_id(message);
  if (id.empty()) {
    return c.done(not_found("There is no such message."));
  }
  // At most three kinds of key per pair of persons: one row more than that many pairs tells
  // that the list was cut.
  const std::size_t pairs = static_cast<std::size_t>(*limit);
  const std::size_t rows = 3 * pairs + 1;
  auto store = c.ctx.store;
  store->find_person_matches(
      id, rows,
      [c, id, pairs, rows, store](std::optional<std::vector<store::person_match>> found, bool ok) {
        if (!ok) {
          return c.done(store_failed());
        }
        if (!found) {
          return c.done(not_found("There is no such message."));
        }
        struct candidate {
          std::size_t first;  // its first row in *found
          std::vector<std::string> basis;
        };
        std::vector<candidate> list;
        for (std::size_t i = 0; i < found->size(); ++i) {
          const auto& m = (*found)[i];
          if (list.empty() || (*found)[list.back().first].pointer != m.pointer ||
              (*found)[list.back().first].message_id != m.message_id ||
              (*found)[list.back().first].other_pointer != m.other_pointer) {
            list.push_back({i, {}});
          }
          list.back().basis.push_back(m.kind);
        }
        bool truncated = false;
        if (found->size() == rows) {
          list.pop_back();  // its kinds may go on past the rows read
          truncated = true;
        }
        if (list.size() > pairs) {
          list.resize(pairs);
          truncated = true;
        }
        constexpr std::array<std::string_view, 3> strength = {"document", "name-birth-year",
                                                              "name"};
        for (auto& cand : list) {
          std::sort(cand.basis.begin(), cand.basis.end(), [&](const auto& a, const auto& b) {
            return std::find(strength.begin(), strength.end(), a) <
                   std::find(strength.begin(), strength.end(), b);
          });
        }
        auto audit = c.record("persons.candidates_viewed", {},
                              {{"candidates", std::to_string(list.size())}});
        audit.message_id = id;
        auto shown = std::make_shared<std::vector<store::person_match>>(std::move(*found));
        auto answer = std::make_shared<std::vector<candidate>>(std::move(list));
        store->append_audit({audit}, [c, id, shown, answer, truncated](bool appended) {
          if (!appended) {
            return c.done(store_failed());
          }
          c.log_change("persons.candidates_viewed", {}, 200);
          c.done(json_response(200, [&](writer& w) {
            w.StartObject();
            put(w, "message", id);
            w.Key("candidates");
            w.StartArray();
            for (const auto& cand : *answer) {
              const auto& m = (*shown)[cand.first];
              w.StartObject();
              put(w, "pointer", m.pointer);
              put(w, "message", m.message_id);
              put(w, "otherPointer", m.other_pointer);
              put(w, "sender", m.sender);
              put(w, "type", m.type);
              put(w, "acceptedAt", m.accepted_at);
              w.Key("basis");
              w.StartArray();
              for (const auto& kind : cand.basis) {
                w.String(kind.data(), static_cast<rapidjson::SizeType>(kind.size()));
              }
              w.EndArray();
              w.EndObject();
            }
            w.EndArray();
            w.Key("truncated");
            w.Bool(truncated);
            w.EndObject();
          }));
        });
      });
}

void audit_query(const call& c, const query_map& query) {
  const auto after = int_param(query, "after", 0, 0, INT64_MAX);
  const auto limit = int_param(query, "limit", 100, 1, 1000);
  std::optional<clock::time_point> since, until;
  bool bad_time = false;
  for (auto [name, out] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
    if (auto it = query.find(name); it != query.end()) {
      *out = parse_rfc3339(it->second);
      bad_time = bad_time || !*out;
    }
  }
  if (!after || !limit || bad_time) {
    return c.done(invalid("after, limit (1-1000), since and until (RFC 3339) must be valid."));
  }
  auto want = [query](const char* name) {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  };
  // Pages of the chain are read and filtered until `limit` matches or the chain ends.
  struct scan {
    std::string event, partner, message;
    std::optional<clock::time_point> since, until;
    std::size_t limit;
    std::vector<audit::audit_row> found;
    std::int64_t next = 0;
  };
  auto s = std::make_shared<scan>(scan{want("event"),
                                       want("partner"),
                                       want("message"),
                                       since,
                                       until,
                                       static_cast<std::size_t>(*limit),
                                       {},
                                       *after});
  auto step = std::make_shared<std::function<void()>>();
  *step = [c, s, step, store = c.ctx.store]() {
    store->read_audit(s->next, 500, [c, s, step](std::vector<audit::audit_row> rows, bool ok) {
      if (!ok) {
        *step = nullptr;
        return c.done(store_failed());
      }
      for (const auto& row : rows) {
        s->next = row.seq;
        const auto at = parse_rfc3339(row.at);
        const bool match = (s->event.empty() || row.event == s->event ||
                            (s->event.ends_with(".*") &&
                             row.event.starts_with(s->event.substr(0, s->event.size() - 1)))) &&
                           (s->partner.empty() || row.partner == s->partner) &&
                           (s->message.empty() || row.message_id == s->message) &&
                           (!s->since || (at && *at >= *s->since)) &&
                           (!s->until || (at && *at <= *s->until));
        if (match) {
          s->found.push_back(row);
          if (s->found.size() >= s->limit) {
            break;
          }
        }
      }
      if (rows.size() == 500 && s->found.size() < s->limit) {
        auto next = *step;
        return next();
      }
      *step = nullptr;  // breaks the self-reference
      c.done(json_response(200, [&](writer& w) {
        w.StartObject();
        w.Key("entries");
        w.StartArray();
        for (const auto& row : s->found) {
          w.StartObject();
          w.Key("seq");
          w.Int64(row.seq);
          raw(w, "entry", row.entry);
          put(w, "hash", row.hash);
          w.EndObject();
        }
        w.EndArray();
        w.Key("next");
        w.Int64(s->next);
        w.EndObject();
      }));
    });
  };
  auto first = *step;
  first();
}

// --- statistics ----------------------------------------------------------------------------------

// GET /admin/v1/report?from=YYYY-MM-DD&to=YYYY-MM-DD[&format=json|csv][&suppressBelow=N]: the
// period's statistics (counts only; below N withheld). Who asked for which period is on the audit
// chain before anything is read.
void statistics_report(const call& c, const query_map& query) {
  auto want = [&query](const char* name, const char* fallback) {
    auto it = query.find(name);
    return it == query.end() ? std::string(fallback) : it->second;
  };
  const report::period p{want("from", ""), want("to", "")};
  const std::string format = want("format", "json");
  if (format != "json" && format != "csv") {
    return c.done(invalid("format must be json or csv.", {{"/format", "must be json or csv"}}));
  }
  if (auto error = report::check_period(p)) {
    return c.done(invalid(*error));
  }
  report::output_options options;
  if (auto it = query.find("suppressBelow"); it != query.end()) {
    options.suppress_below = report::parse_suppress_below(it->second);
    if (!options.suppress_below) {
      return c.done(invalid("suppressBelow must be a whole number from " +
                            std::to_string(report::min_suppress_below) + " to " +
                            std::to_string(report::max_suppress_below) + "."));
    }
  }
  const auto now = c.now();
  auto store = c.ctx.store;
  store->append_audit(
      {report::report_audit(c.actor, p, format, options)},
      [c, p, format, options, now, store](bool ok) {
        if (!ok) {
          return c.done(store_failed());
        }
        c.log_change("report.generated", "", 200);
        report::collect(store, p,
                        [c, format, options, now](std::shared_ptr<report::statistics_builder> built,
                                                  report::collect_summary summary, bool read) {
                          if (!read) {
                            return c.done(store_failed());
                          }
                          if (summary.unreadable != 0) {
                            log::warn({.event = "report.facts_unreadable",
                                       .reason = "does-not-open",
                                       .detail = std::to_string(summary.unreadable)});
                          }
                          response r;
                          r.status = 200;
                          if (format == "csv") {
                            r.content_type = "text/csv; charset=utf-8";
                            r.body = built->csv(now, options);
                          } else {
                            r.body = built->json(now, options);
                          }
                          c.done(std::move(r));
                        });
      });
}

// GET /admin/v1/escalations: the open escalations of verification requests past their deadline
// without an answer (report::deadline_watch), oldest deadline first.
// The open escalation items of `kind`, parsed, ordered by `order_member` then key.
std::vector<std::pair<std::string, rapidjson::Document>> open_items(
    std::vector<store::state_item> items, const char* order_member) {
  std::vector<std::pair<std::string, rapidjson::Document>> open;
  for (const auto& item : items) {
    rapidjson::Document doc;
    doc.Parse(item.value.c_str(), item.value.size());
    if (!item.value.empty() && !doc.HasParseError() && doc.IsObject()) {
      open.emplace_back(std::string(json::get_string(doc, order_member)) + item.key,
                        std::move(doc));
    }
  }
  std::sort(open.begin(), open.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return open;
}

// GET /admin/v1/escalations: verification requests past their deadline without an answer, and
// copies held for four-eyes release too long (docs/report.md, docs/release.md).
void escalations(const call& c) {
  auto store = c.ctx.store;
  store->list_state(
      report::escalation_kind, 0, [c, store](std::vector<store::state_item> items, bool ok) {
        if (!ok) {
          return c.done(store_failed());
        }
        auto requests = std::make_shared<std::vector<std::pair<std::string, rapidjson::Document>>>(
            open_items(std::move(items), "deadline"));
        store->list_state(
            report::held_escalation_kind, 0,
            [c, requests](std::vector<store::state_item> held_items, bool held_ok) {
              if (!held_ok) {
                return c.done(store_failed());
              }
              const auto held = open_items(std::move(held_items), "heldSince");
              using entries = std::vector<std::pair<std::string, rapidjson::Document>>;
              const auto write_list = [](writer& w, const char* list, const entries& open,
                                         std::initializer_list<const char*> names) {
                w.Key(list);
                w.StartArray();
                for (const auto& [order, doc] : open) {
                  w.StartObject();
                  for (const char* name : names) {
                    put(w, name, json::get_string(doc, name));
                  }
                  w.EndObject();
                }
                w.EndArray();
              };
              c.done(json_response(200, [&](writer& w) {
                w.StartObject();
                write_list(w, "escalations", *requests,
                           {"messageId", "sender", "deadline", "escalatedAt"});
                write_list(
                    w, "heldCopies", held,
                    {"messageId", "recipient", "sender", "heldBy", "heldSince", "escalatedAt"});
                w.EndObject();
              }));
            });
      });
}

// --- metrics and export
// ---------------------------------------------------------------------------

// POST /admin/v1/reload: what SIGHUP does, as this administrator (on the audit record).
void reload_config(const call& c) {
  if (!c.ctx.options.reload) {
    return c.done(not_found("There is no such resource."));
  }
  const auto problems = c.ctx.options.reload(c.actor);
  if (!problems.empty()) {
    std::vector<pipeline::field_error> errors;
    for (const auto& p : problems) {
      errors.push_back({p.field, p.file + ": " + p.reason});
    }
    return c.done(problem(422, "reload-refused", "Reload refused",
                          "The configuration has problems; nothing was changed.", errors));
  }
  c.log_change("admin.reload", "", 200);
  c.done(json_response(200, [](writer& w) {
    w.StartObject();
    w.Key("reloaded");
    w.Bool(true);
    w.EndObject();
  }));
}

void metrics_text(const call& c) {
  const auto trust = c.state().trust();
  const auto now = c.now();
  std::string certs =
      "# HELP mxgw_certificate_expiry_days Days until a recorded partner "
      "certificate's notAfter (negative: expired).\n"
      "# TYPE mxgw_certificate_expiry_days gauge\n";
  for (const auto& [fp, r] : trust->certificates) {
    const auto not_after = parse_rfc3339(r.not_after);
    if (!not_after || r.state == identity::certificate_state::revoked) {
      continue;
    }
    const double days = std::chrono::duration<double>(*not_after - now).count() / 86400.0;
    certs += "mxgw_certificate_expiry_days{partner=\"" + prometheus_label_value(r.partner_id) +
             "\",serial=\"" + r.serial_hex + "\"} " + std::to_string(days) + "\n";
  }
  // Persisted changes this instance could not apply (their partner or certificate is refused
  // until a change that applies arrives): one series each while it lasts.
  certs +=
      "# HELP mxgw_admin_state_unapplied A stored administrative change this instance could not "
      "apply (1 while it is in force; its partner or certificate is refused).\n"
      "# TYPE mxgw_admin_state_unapplied gauge\n";
  for (const auto& [item, reason] : trust->unapplied_changes) {
    certs += "mxgw_admin_state_unapplied{kind=\"" + prometheus_label_value(item.first) +
             "\",key=\"" + prometheus_label_value(item.second) + "\",reason=\"" +
             prometheus_label_value(reason) + "\"} 1\n";
  }
  std::string text = c.ctx.counters ? c.ctx.counters->render() : std::string();
  if (c.ctx.extra_metrics) {
    text += c.ctx.extra_metrics();
  }
  text += certs;
  c.ctx.store->queue_stats([c, text](std::vector<store::queue_stat> stats, bool ok) {
    std::string out = text;
    if (ok) {
      out +=
          "# HELP mxgw_queue_depth Deliveries waiting per recipient and state.\n"
          "# TYPE mxgw_queue_depth gauge\n";
      for (const auto& s : stats) {
        for (auto [state, value] : {std::pair{"held", s.held}, std::pair{"pending", s.pending},
                                    std::pair{"delivering", s.delivering},
                                    std::pair{"retrying", s.retrying}, std::pair{"dead", s.dead}}) {
          out += "mxgw_queue_depth{partner=\"" + prometheus_label_value(s.recipient) +
                 "\",state=\"" + state + "\"} " + std::to_string(value) + "\n";
        }
      }
    }
    response r;
    r.status = 200;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = std::move(out);
    c.done(std::move(r));
  });
}

// The current partners and routing as files: certificates registered without a partner SAN are
// written as pinnedSha256 so the files alone identify the same peers, and certificates revoked
// (or retired: their overlap has ended) as revokedSha256 of their partner, so that files rebuilt
// from the export keep refusing them; a revoked fingerprint is no longer pinned. A partner's
// rotation cut-offs (rotationCutoffs, each with the certificates recorded since it) and its
// certificates still in an overlap (retiringSha256) are written too, so that a gateway rebuilt
// from the files ends the overlap as this one does.
void export_state(const call& c) {
  if (const auto routing = c.state().routing();
      routing.rules && !routing.rules->held_reason().empty()) {
    // The routing in force could not be read here: exporting the rules it replaced would
    // rebuild a gateway with them.
    return c.done(
        problem(409, "routing-unapplied", "Routing not applied",
                std::string("The stored routing rules could not be applied on this instance (") +
                    routing.rules->held_reason() +
                    "); export from an instance that applies them, or replace them."));
  }
  const auto trust = c.state().trust();
  const auto now = c.now();
  auto refused = [&](const identity::certificate_record& r) {
    if (r.state == identity::certificate_state::revoked) {
      return true;
    }
    const auto until = parse_rfc3339(r.retiring_until);
    return r.state == identity::certificate_state::retiring && (!until || now >= *until);
  };
  auto listed = [](const std::vector<std::string>& list, const std::string& fp) {
    return std::find(list.begin(), list.end(), fp) != list.end();
  };
  identity::partner_registry registry;
  for (const auto* p : trust->partners.all()) {
    identity::partner copy = *p;
    copy.rotation_cutoffs.clear();
    copy.retiring_sha256.clear();
    if (auto it = trust->cutoffs.find(p->id); it != trust->cutoffs.end()) {
      copy.rotation_cutoffs = it->second.cutoffs;  // every one kept still refuses something
    }
    for (const auto& [fp, r] : trust->certificates) {
      if (r.partner_id == p->id && r.state == identity::certificate_state::retiring &&
          !refused(r)) {
        copy.retiring_sha256.push_back({fp, r.retiring_until});
      }
    }
    for (const auto& [fp, r] : trust->certificates) {
      if (r.partner_id != p->id && !listed(p->pinned_sha256, fp)) {
        continue;
      }
      if (refused(r)) {
        if (!listed(copy.revoked_sha256, fp)) {
          copy.revoked_sha256.push_back(fp);
        }
        std::erase(copy.pinned_sha256, fp);
      } else if (r.partner_id == p->id && (r.source == "pinned" || r.source == "registered") &&
                 !listed(copy.pinned_sha256, fp)) {
        copy.pinned_sha256.push_back(fp);
      }
    }
    // A certificate recorded at or after a cut-off is not cut off by it, whatever else it is
    // (say a pin from before the rotation registered again). The records do not travel with the
    // files: each cut-off lists them (recordedSince), with those it listed already (the files
    // this gateway was built from), but not once revoked or retired.
    for (auto& cutoff : copy.rotation_cutoffs) {
      for (const auto& [fp, r] : trust->certificates) {
        const auto recorded_at = parse_rfc3339(r.recorded_at);
        if (r.partner_id == p->id && recorded_at && *recorded_at >= cutoff.cut_off_at &&
            fp != cutoff.replaced_by && !listed(cutoff.recorded_since, fp)) {
          cutoff.recorded_since.push_back(fp);
        }
      }
      std::erase_if(cutoff.recorded_since,
                    [&](const std::string& fp) { return listed(copy.revoked_sha256, fp); });
    }
    registry.put(std::move(copy));
  }
  const auto routing = c.state().routing();
  c.done(json_response(200, [&](writer& w) {
    w.StartObject();
    raw(w, "partners", identity::to_json(registry));
    raw(w, "routing", routing.document.empty() ? R"({"rules":[]})" : routing.document);
    w.EndObject();
  }));
}

}  // namespace

admin_api::admin_api(std::shared_ptr<state_manager> state,
                     std::shared_ptr<store::message_store> store, admin_api_options options,
                     std::shared_ptr<metrics> counters, std::function<std::string()> extra_metrics)
    : ctx_(std::make_shared<context>(context{std::move(state), std::move(store), std::move(options),
                                             std::move(counters), std::move(extra_metrics)})) {
  // Each copy held from now on records the approvals the routing in force asks for, so that
  // lowering `release.approvals` later does not lower what it needs (docs/release.md). Asked on
  // the store's writer thread; the state is held weakly (it holds the store).
  ctx_->store->approvals_when_held(
      [weak = std::weak_ptr<state_manager>(ctx_->state)]() -> std::size_t {
        const auto manager = weak.lock();
        if (!manager) {
          return 0;
        }
        const auto routing = manager->routing();
        if (!routing.rules) {
          return pipeline::default_release_approvals;
        }
        // Routing held since the message was routed: what the routing in force elsewhere asks
        // for is not known here, so the copy asks for the most any routing can.
        return routing.rules->held_reason().empty() ? routing.rules->release_approvals()
                                                    : pipeline::max_release_approvals;
      });
}

void admin_api::handle(const http::request& req, done_fn done) const {
  auto url = boost::urls::parse_origin_form(req.target);
  if (!url) {
    return done(problem(400, "bad-target", "Bad request target",
                        "The request target is not a valid path."));
  }
  std::vector<std::string> seg;
  for (auto segment : url->segments()) {
    seg.emplace_back(segment);
  }
  query_map query;
  for (auto param : url->params()) {
    query[std::string(param.key)] = std::string(param.value);
  }
  // Wraps `done` so the context outlives the request and every answer is counted.
  auto ctx = ctx_;
  call c{*ctx_, req,
         [ctx, done = std::move(done)](response r) {
           if (ctx->counters) {
             ctx->counters->add("mxgw_admin_requests_total",
                                "status=\"" + std::to_string(r.status) + "\"");
           }
           done(std::move(r));
         },
         "admin:" + std::string(req.partner), std::string(req.peer)};
  const std::string_view m = req.method;
  auto only = [&](std::string_view method, const char* allow) {
    if (m != method) {
      c.done(method_not_allowed(allow));
      return false;
    }
    return true;
  };
  if (seg == std::vector<std::string>{"metrics"} ||
      seg == std::vector<std::string>{"admin", "v1", "metrics"}) {
    return only("GET", "GET") ? metrics_text(c) : void();
  }
  if (seg.size() < 3 || seg[0] != "admin" || seg[1] != "v1") {
    return c.done(not_found("There is no such resource."));
  }
  const std::string& area = seg[2];
  const std::size_t n = seg.size();
  if (area == "reload" && n == 3) {
    return only("POST", "POST") ? reload_config(c) : void();
  }
  if (area == "partners") {
    if (n == 3) {
      if (m == "GET") {
        return list_partners(c);
      }
      return only("POST", "GET, POST") ? create_partner(c) : void();
    }
    const std::string& id = seg[3];
    if (n == 4) {
      if (m == "GET") {
        return get_partner(c, id);
      }
      return only("PUT", "GET, PUT") ? update_partner(c, id) : void();
    }
    if (n == 5 && (seg[4] == "disable" || seg[4] == "enable")) {
      return only("POST", "POST") ? set_enabled(c, id, seg[4] == "enable") : void();
    }
    if (n == 5 && seg[4] == "certificates") {
      if (m == "GET") {
        return list_certificates(c, id, std::nullopt);
      }
      return only("POST", "GET, POST") ? add_certificate(c, id, false) : void();
    }
    if (n == 6 && seg[4] == "certificates" && seg[5] == "rotate") {
      return only("POST", "POST") ? add_certificate(c, id, true) : void();
    }
  } else if (area == "certificates") {
    if (n == 3) {
      return only("GET", "GET") ? list_certificates(c, {}, std::nullopt) : void();
    }
    if (n == 4 && seg[3] == "expiring") {
      const auto days = int_param(query, "days", 30, 0, 3650);
      if (!days) {
        return c.done(invalid("days must be a whole number from 0 to 3650."));
      }
      return only("GET", "GET") ? list_certificates(c, {}, *days) : void();
    }
    if (n == 4) {
      return only("GET", "GET") ? get_certificate(c, seg[3]) : void();
    }
    if (n == 5 && seg[4] == "revoke") {
      return only("POST", "POST") ? revoke_certificate(c, seg[3]) : void();
    }
  } else if (area == "routing" && n == 3) {
    if (m == "GET") {
      return get_routing(c);
    }
    return only("PUT", "GET, PUT") ? replace_routing(c) : void();
  } else if (area == "queues" && n == 3) {
    return only("GET", "GET") ? queues(c) : void();
  } else if (area == "dead-letters") {
    if (n == 3) {
      return only("GET", "GET") ? dead_letters(c, query) : void();
    }
    if (n == 6 && (seg[5] == "replay" || seg[5] == "discard")) {
      return only("POST", "POST") ? dead_letter_action(c, seg[3], seg[4], seg[5] == "replay")
                                  : void();
    }
  } else if (area == "held") {
    if (n == 3) {
      return only("GET", "GET") ? held_copies(c, query) : void();
    }
    if (n == 5) {
      return only("GET", "GET") ? held_copy_view(c, seg[3], seg[4]) : void();
    }
    if (n == 6 && (seg[5] == "approve" || seg[5] == "reject")) {
      return only("POST", "POST") ? release_decision(c, seg[3], seg[4], seg[5] == "approve")
                                  : void();
    }
  } else if (area == "messages" && n == 5 && seg[4] == "candidates") {
    return only("GET", "GET") ? person_candidates(c, seg[3], query) : void();
  } else if (area == "audit" && n == 3) {
    return only("GET", "GET") ? audit_query(c, query) : void();
  } else if (area == "escalations" && n == 3) {
    return only("GET", "GET") ? escalations(c) : void();
  } else if (area == "report" && n == 3) {
    return only("GET", "GET") ? statistics_report(c, query) : void();
  } else if (area == "export" && n == 3) {
    return only("GET", "GET") ? export_state(c) : void();
  }
  c.done(not_found("There is no such resource."));
}

}  // namespace mxgw::admin
