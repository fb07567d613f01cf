// Partner API handlers: check, store, answer. Logs carry metadata only.
#include "gateway/http/handlers.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>

#include "adapters/adapter.hpp"
#include "gateway/audit/refusal_limiter.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/live.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/metrics.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/domain_checks.hpp"
#include "gateway/pipeline/facts.hpp"
#include "gateway/pipeline/local_days.hpp"
#include "gateway/pipeline/names.hpp"
#include "gateway/pipeline/partial_date.hpp"
#include "gateway/pipeline/persons.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::http {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

const char* title_of(int status) {
  return status == 400 ? "Malformed JSON" : status == 403 ? "Sender mismatch" : "Invalid message";
}

// `expected`, optionally with charset=utf-8 and nothing else.
bool is_media_type(std::string_view value, std::string_view expected) {
  const std::string v = ascii_lower(value);
  const auto semicolon = v.find(';');
  if (trim(std::string_view(v).substr(0, semicolon)) != expected) {
    return false;
  }
  if (semicolon == std::string::npos) {
    return true;
  }
  const std::string parameter = trim(std::string_view(v).substr(semicolon + 1));
  return parameter == "charset=utf-8" || parameter == "charset=\"utf-8\"";
}

bool is_json_media_type(std::string_view value) {
  return is_media_type(value, "application/json");
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

response json_response(
    int status, const std::function<void(rapidjson::Writer<rapidjson::StringBuffer>&)>& fill) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  fill(w);
  response r;
  r.status = status;
  r.body.assign(buffer.GetString(), buffer.GetSize());
  return r;
}

void put(rapidjson::Writer<rapidjson::StringBuffer>& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(json::non_null(value), static_cast<rapidjson::SizeType>(value.size()));
}

std::string rfc3339(const store::time_point& t) {
  return format_rfc3339_ms(t);
}

// The code of a delivery error: a permanent refusal is kept as "http-<status>: <the partner's
// answer>", every other error is a code alone ("http-503", "tls", an administrator's reason).
std::string_view error_code(std::string_view last_error) {
  return last_error.substr(0, last_error.find(": "));
}

// One recipient's delivery state in a status answer. `own_row`: the caller is that recipient. A
// refusal's text is the recipient's own words to the gateway: the recipient sees them, the sender
// sees only the code (operators read the text in the dead letters), so no free text passes from
// one agency to another outside the exchange's routing. The gateway's own rule names (which
// routing rule added the copy, which release rule held it) are for the sender only: a recipient
// reads the state of its copy, not how the gateway routes.
void write_recipient(rapidjson::Writer<rapidjson::StringBuffer>& w,
                     const store::recipient_status& r, bool own_row) {
  w.StartObject();
  put(w, "partner", r.recipient);
  if (!own_row) {
    put(w, "decidedBy", r.decided_by);
  }
  put(w, "state", r.state);
  w.Key("attempts");
  w.Int(r.attempts);
  if (r.next_attempt_at && (r.state == "retrying" || r.state == "pending")) {
    put(w, "nextAttemptAt", rfc3339(*r.next_attempt_at));
  }
  if (!r.last_error.empty() && r.state != "delivered") {
    // Readable text even for a row written before refusals were cleaned on their way in.
    put(w, "lastError",
        readable_excerpt(own_row ? std::string_view(r.last_error) : error_code(r.last_error),
                         store::max_error_bytes));
  }
  if (r.delivered_at) {
    put(w, "deliveredAt", rfc3339(*r.delivered_at));
  }
  if (!r.hold.empty() && !own_row) {
    put(w, "heldBy", r.hold);
  }
  if (!r.withheld.empty() && r.withheld != "[]") {
    rapidjson::Document withheld;
    withheld.Parse(r.withheld.c_str());
    if (!withheld.HasParseError()) {
      w.Key("withheld");
      withheld.Accept(w);
    }
  }
  w.EndObject();
}

// What `sender` may read in its status answer of the exclusion of `excluded` from its message.
// A partner of the sender's own country: who, and why. Another partner the sender named itself:
// that it was left out, not why (the sender must learn that its message did not go where it
// asked, but a foreign partner must not learn the state of partners of other countries: a Lao
// province disabled, a Vietnamese office without an agreement, an id no partner has). Anything
// else (a candidate of a routing rule in another country): nothing. The gateway has no notion of
// its home country, so a Vietnamese sender reads Lao and Cambodian exclusions as any sender does.
enum class exclusion_view { hidden, without_reason, whole };

exclusion_view exclusion_seen_by(const identity::partner_registry& partners,
                                 std::string_view sender, const store::route_exclusion& excluded) {
  const identity::partner* from = partners.find(sender);
  const identity::partner* left_out = partners.find(excluded.partner);
  if (from != nullptr && left_out != nullptr && !from->country.empty() &&
      from->country == left_out->country) {
    return exclusion_view::whole;
  }
  return excluded.considered == "explicit" ? exclusion_view::without_reason
                                           : exclusion_view::hidden;
}

/// The wire format a recipient reads: its adapter, or null for the canonical model itself (its
/// adapter is mx/1, or one the gateway does not know: it then gets canonical messages too).
const adapters::adapter* wire_format(std::string_view partner_id,
                                     const identity::partner_registry& partners) {
  const identity::partner* recipient = partners.find(partner_id);
  const adapters::adapter* format =
      recipient == nullptr ? nullptr : adapters::find_adapter(recipient->adapter);
  return format != nullptr && format->id() == "mx" ? nullptr : format;
}

std::string withheld_json(const pipeline::recipient_plan& plan) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const auto& f : plan.withheld) {
    w.StartObject();
    put(w, "pointer", f.pointer);
    put(w, "reason", f.reason);
    w.EndObject();
  }
  w.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

response accepted_response(std::string_view id, std::string_view accepted_at) {
  auto r = json_response(202, [&](auto& w) {
    w.StartObject();
    put(w, "id", id);
    put(w, "status", "accepted");
    put(w, "acceptedAt", accepted_at);
    w.EndObject();
  });
  r.headers.emplace_back("Location", "/v1/messages/" + std::string(id));
  return r;
}

response method_not_allowed(std::string_view allow) {
  auto r = problem(405, "method-not-allowed", "Method not allowed",
                   "This resource answers " + std::string(allow) + " only.");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

}  // namespace

partner_api::partner_api(std::shared_ptr<const pipeline::canonical_checker> checker,
                         std::shared_ptr<const identity::trust_store> trust,
                         std::shared_ptr<const live<pipeline::routing_rules>> rules,
                         std::shared_ptr<store::message_store> store, api_limits limits,
                         std::shared_ptr<const pipeline::transliterators> transliterators,
                         std::shared_ptr<metrics> counters, std::string provenance_id)
    : translation_(std::make_shared<const translation>(
          translation{std::move(checker), std::move(transliterators), std::move(provenance_id)})),
      trust_(std::move(trust)),
      rules_(std::move(rules)),
      metrics_(std::move(counters)),
      store_(std::move(store)),
      limits_(limits),
      refusal_audit_(std::make_shared<audit::refusal_limiter>(
          std::max<std::uint32_t>(1, limits.audit_refusals_per_minute))) {}

void partner_api::replace_translation(
    std::shared_ptr<const pipeline::canonical_checker> checker,
    std::shared_ptr<const pipeline::transliterators> transliterators, std::string provenance_id) {
  auto next = std::make_shared<const translation>(
      translation{std::move(checker), std::move(transliterators), std::move(provenance_id)});
  std::lock_guard lock(translation_mutex_);
  translation_.swap(next);
}

std::shared_ptr<const partner_api::translation> partner_api::current_translation() const {
  std::lock_guard lock(translation_mutex_);
  return translation_;
}

void partner_api::handle(const request& req, std::function<void(response)> done) const {
  const auto start = std::chrono::steady_clock::now();
  auto url = boost::urls::parse_origin_form(req.target);
  if (!url) {
    done(problem(400, "bad-target", "Bad request target",
                 "The request target is not a valid path."));
    return;
  }
  std::vector<std::string> segments;
  for (auto segment : url->segments()) {
    segments.emplace_back(segment);
  }
  if (segments == std::vector<std::string>{"healthz"}) {
    if (req.method != "GET") {
      done(method_not_allowed("GET"));
      return;
    }
    const bool ok = store_->healthy();
    done(json_response(ok ? 200 : 503, [&](auto& w) {
      w.StartObject();
      put(w, "status", ok ? "ok" : "store-failed");
      w.EndObject();
    }));
    return;
  }
  if (segments.size() == 2 && segments[0] == "v1" && segments[1] == "messages") {
    if (req.method != "POST") {
      done(method_not_allowed("POST"));
      return;
    }
    submit(req, start, std::move(done));
    return;
  }
  if (segments.size() == 3 && segments[0] == "v1" && segments[1] == "inbound") {
    if (req.method != "POST") {
      done(method_not_allowed("POST"));
      return;
    }
    inbound(req, segments[2], start, std::move(done));
    return;
  }
  if (segments.size() == 3 && segments[0] == "v1" && segments[1] == "messages") {
    if (req.method != "GET") {
      done(method_not_allowed("GET"));
      return;
    }
    status(req, segments[2], std::move(done));
    return;
  }
  done(problem(404, "not-found", "Not found", "There is no such resource."));
}

namespace {

// A refusal in the sender's own format: problem documents for canonical senders, the partner
// format's error body otherwise.
response refusal(const adapters::adapter* format, int status, std::string_view code,
                 std::string_view title, std::string_view detail,
                 const std::vector<pipeline::field_error>& errors = {}) {
  if (format == nullptr || format->id() == "mx") {
    return problem(status, code, title, detail, errors);
  }
  response r;
  r.status = status;
  r.content_type = std::string(format->content_type());
  r.body = format->encode_error(status, title, errors);
  return r;
}

// The answer to an accepted message, and again to each resend of it: 202 naming the id for a
// canonical sender, 200 with a receipt in its own format for a partner format's sender.
response accepted_answer(const adapters::adapter* format, const adapters::receipt_info& receipt,
                         const pipeline::code_tables& tables) {
  if (format == nullptr) {
    return accepted_response(receipt.message_id, receipt.accepted_at);
  }
  response r;
  r.status = 200;
  r.content_type = std::string(format->content_type());
  r.body = format->encode_receipt(receipt, {.tables = &tables, .recipient = receipt.recipient});
  return r;
}

// ---- audit entries: metadata only (ids, codes, partner ids, JSON Pointers), never content ----

// Records a refusal unless the partner has used up its allowance this minute (then it is only
// counted, and the count rides on its next recorded refusal). Nothing else changes, so the entry
// is appended on its own; the answer does not wait for it.
void audit_refusal(store::message_store& store, audit::refusal_limiter& limiter,
                   std::string_view partner, std::string_view message_id, int status,
                   std::string_view reason) {
  const auto suppressed = limiter.admit(partner);
  if (!suppressed) {
    return;
  }
  audit::audit_record record{
      .event = "message.refused",
      .actor = "partner:" + std::string(partner),
      .partner = std::string(partner),
      .message_id = std::string(message_id),
      .details = {{"status", std::to_string(status)}, {"reason", std::string(reason)}}};
  if (*suppressed > 0) {
    record.details.emplace_back("suppressed", std::to_string(*suppressed));
  }
  store.append_audit({std::move(record)}, [](bool ok) {
    if (!ok) {
      log::error({.event = "audit.append_failed", .reason = "store"});
    }
  });
}

// The message a `case.status` withdrawn or cancelled takes back (its about.messageId, lower
// case), or "" for any other message.
std::string withdrawn_message(const rapidjson::Document& doc, std::string_view type) {
  if (type != "case.status" || !doc.HasMember("body") || !doc["body"].IsObject()) {
    return {};
  }
  const auto& body = doc["body"];
  const std::string_view status = json::get_string(body, "status");
  const auto about = body.FindMember("about");
  if ((status == "withdrawn" || status == "cancelled") && about != body.MemberEnd() &&
      about->value.IsObject()) {
    return ascii_lower(json::get_string(about->value, "messageId"));
  }
  return {};
}

// The id of the earlier message `doc` names for its recipients (`inReplyTo`; else a receipt's
// `body.inReplyTo` or a case update's `body.about.messageId`), lower case; empty when it names
// none. A recipient that sent that message is told which one by its own reference.
std::string answered_id(const rapidjson::Document& doc, std::string_view type) {
  std::string_view id = json::get_string(doc, "inReplyTo");
  const auto body = doc.FindMember("body");
  if (id.empty() && body != doc.MemberEnd() && body->value.IsObject()) {
    if (type == "receipt") {
      id = json::get_string(body->value, "inReplyTo");
    } else if (type == "case.status") {
      if (const auto about = body->value.FindMember("about");
          about != body->value.MemberEnd() && about->value.IsObject()) {
        id = json::get_string(about->value, "messageId");
      }
    }
  }
  return pipeline::is_uuid(ascii_lower(id)) ? ascii_lower(id) : std::string();
}

// The end (UTC) of the day `handling.expires` names: the source allows no processing from then on.
// nullopt when the message does not expire.
std::optional<store::time_point> expiry_of(const rapidjson::Value& message,
                                           std::string_view source_country) {
  const auto handling = message.FindMember("handling");
  if (handling == message.MemberEnd() || !handling->value.IsObject()) {
    return std::nullopt;
  }
  const auto day = pipeline::latest_day_of(json::get_string(handling->value, "expires"));
  if (!day) {
    return std::nullopt;
  }
  // The day is the source's: it ends at midnight in the sender's country, not in UTC.
  return pipeline::end_of_day_in(*day, source_country);
}

// The accept's entry: enough to explain the routing decision (rules matched, each recipient and
// what decided it and what was withheld, each exclusion and why), committed with the message.
audit::audit_record accepted_audit(const store::message_record& record,
                                   const adapters::adapter* format,
                                   const std::vector<std::string>& matched_rules,
                                   const std::string& translation) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("matchedRules");
  w.StartArray();
  for (const auto& rule : matched_rules) {
    w.String(rule.data(), static_cast<rapidjson::SizeType>(rule.size()));
  }
  w.EndArray();
  w.Key("recipients");
  w.StartArray();
  for (const auto& d : record.deliveries) {
    w.StartObject();
    put(w, "partner", d.recipient);
    put(w, "decidedBy", d.decided_by);
    w.Key("withheld");
    const std::string withheld = d.withheld.empty() ? "[]" : d.withheld;  // our own JSON
    w.RawValue(withheld.data(), withheld.size(), rapidjson::kArrayType);
    if (!d.hold.empty()) {
      put(w, "heldBy", d.hold);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("excluded");
  w.StartArray();
  for (const auto& e : record.exclusions) {
    w.StartObject();
    put(w, "partner", e.partner);
    put(w, "considered", e.considered);
    put(w, "reason", e.reason);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {.event = "message.accepted",
          .actor = "partner:" + record.sender,
          .partner = record.sender,
          .message_id = record.id,
          .details = {{"type", record.type},
                      {"format", format == nullptr ? "mx" : std::string(format->id())},
                      {"sha256", record.body_sha256},
                      {"routing", std::string(buffer.GetString(), buffer.GetSize())},
                      // Which tables, rules and mapping files decoded it and made each
                      // recipient's copy (translation.loaded has what the id stands for).
                      {"translation", translation}}};
}

}  // namespace

void partner_api::submit(const request& req, std::chrono::steady_clock::time_point start,
                         std::function<void(response)> done) const {
  if (!is_json_media_type(req.content_type)) {
    refuse(req, start, done,
           problem(415, "unsupported-media-type", "Unsupported media type",
                   "POST /v1/messages takes application/json (UTF-8)."),
           "unsupported-media-type", {});
    return;
  }
  const auto t = current_translation();
  auto doc = std::make_shared<rapidjson::Document>();
  auto verdict = t->checker->check(req.body, req.partner, *doc, {limits_.max_json_depth});
  if (verdict.status != 0) {
    // A resend of a stored message gets the first answer even if the code tables changed since.
    const auto claimed_id = json::get_string(*doc, "id");
    refuse_unless_stored(req, start, std::move(done),
                         problem(verdict.status, verdict.problem, title_of(verdict.status),
                                 verdict.detail, verdict.errors),
                         verdict.problem,
                         pipeline::is_uuid(claimed_id) ? claimed_id : std::string_view{},
                         verdict.status == 400 ? std::string_view{} : claimed_id, nullptr, t, {});
    return;
  }
  // A person named only in Khmer or Lao, or in Vietnamese with diacritics, gets a Latin
  // transliteration (docs/canonical.md, "Names"); the message is stored as enriched.
  std::string canonical(req.body);
  if (t->transliterators && pipeline::add_transliterations(*doc, t->transliterators.get()) > 0) {
    canonical = json::to_string(*doc);
  }
  accept(req, start, std::move(done), t, std::move(doc), std::move(verdict), nullptr,
         std::move(canonical), {});
}

void partner_api::inbound(const request& req, std::string_view format_id,
                          std::chrono::steady_clock::time_point start,
                          std::function<void(response)> done) const {
  const adapters::adapter* format = adapters::find_adapter(format_id);
  if (format == nullptr || format->id() == "mx") {
    done(problem(404, "not-found", "Not found",
                 "There is no such inbound format; canonical messages go to /v1/messages."));
    return;
  }
  const auto trust = trust_->current();
  const identity::partner* sender = trust->partners.find(req.partner);
  if (sender == nullptr || sender->adapter != format->id()) {
    refuse(req, start, done,
           problem(403, "wrong-format", "Wrong format for this partner",
                   "This partner is not set up to send this format."),
           "wrong-format", {});
    return;
  }
  if (!is_media_type(req.content_type, format->content_type())) {
    refuse(req, start, done,
           refusal(format, 415, "unsupported-media-type", "Unsupported media type",
                   "This format is sent as " + std::string(format->content_type()) + " (UTF-8)."),
           "unsupported-media-type", {});
    return;
  }
  // Partner bytes -> canonical (NFC, transliterated); then exactly the canonical checks.
  const auto t = current_translation();
  const adapters::adapter_context ctx{.tables = &t->checker->tables(),
                                      .sender = std::string(req.partner),
                                      .carry_unmapped = sender->carry_unmapped,
                                      .transliterators = t->transliterators.get(),
                                      .message_id_key = message_id_key_.get()};
  auto decoded = format->decode(req.body, ctx);
  // The id and reference the decoder derived, when it got that far (a resend of a stored message
  // gets the first answer even if the code tables changed since).
  const bool has_id = decoded.message.IsObject();
  const std::string_view decoded_id = has_id ? json::get_string(decoded.message, "id") : "";
  const std::string_view reference = has_id ? json::get_string(decoded.message, "ref") : "";
  if (decoded.status != 0) {
    refuse_unless_stored(
        req, start, std::move(done),
        refusal(format, decoded.status,
                decoded.status == 400 ? "malformed-message" : "unmappable-message",
                decoded.status == 400 ? "Malformed message" : "Message cannot be translated",
                "See errors.", decoded.errors),
        decoded.status == 400 ? "malformed-message" : "unmappable-message", {}, decoded_id, format,
        t, reference);
    return;
  }
  std::string canonical = json::to_string(decoded.message);
  auto doc = std::make_shared<rapidjson::Document>();
  auto verdict = t->checker->check(canonical, req.partner, *doc, {limits_.max_json_depth});
  if (verdict.status != 0) {
    refuse_unless_stored(req, start, std::move(done),
                         refusal(format, verdict.status, verdict.problem, title_of(verdict.status),
                                 verdict.detail, verdict.errors),
                         verdict.problem, {}, decoded_id, format, t, reference);
    return;
  }
  accept(req, start, std::move(done), t, std::move(doc), std::move(verdict), format,
         std::move(canonical), reference);
}

void partner_api::accept_canonical(std::string sender, std::string canonical,
                                   std::optional<std::vector<std::string>> only_to,
                                   std::function<void(response)> done) const {
  // The strings outlive every synchronous use of the request; accept() copies what it keeps.
  const request req{.method = "POST",
                    .target = "/v1/messages",
                    .content_type = "application/json",
                    .body = canonical,
                    .partner = sender,
                    .peer = "feed"};
  const auto start = std::chrono::steady_clock::now();
  // No handshake stands before this path: a partner the listener would refuse as disabled (an
  // administrator disabled it, or a change of it this instance could not apply holds it) sends
  // nothing through it either, with the handshake's refusal code.
  const auto trust = trust_->current();
  const identity::partner* from = trust->partners.find(sender);
  if (from != nullptr && (!from->enabled || trust->held_for_unapplied_change(sender))) {
    const std::string code(identity::to_string(identity::identity_refusal::disabled_partner));
    refuse(req, start, done,
           problem(403, code, "Partner disabled",
                   "This partner is disabled; nothing it sends is accepted."),
           code, {});
    return;
  }
  auto doc = std::make_shared<rapidjson::Document>();
  const auto t = current_translation();
  auto verdict = t->checker->check(canonical, sender, *doc, {limits_.max_json_depth});
  if (verdict.status != 0) {
    refuse(req, start, done,
           problem(verdict.status, verdict.problem, title_of(verdict.status), verdict.detail,
                   verdict.errors),
           verdict.problem, {});
    return;
  }
  accept(req, start, std::move(done), t, std::move(doc), std::move(verdict), nullptr, canonical,
         {}, only_to ? &*only_to : nullptr);
}

void partner_api::refuse(const request& req, std::chrono::steady_clock::time_point start,
                         const std::function<void(response)>& done, response r,
                         std::string_view reason, std::string_view message_id) const {
  if (metrics_) {
    metrics_->add("mxgw_messages_refused_total",
                  "reason=\"" + prometheus_label_value(reason) + "\"");
    metrics_->observe("mxgw_submit_duration_seconds", "outcome=\"refused\"",
                      ms_since(start) / 1000.0);
  }
  log::info({.event = "message.refused",
             .message_id = message_id,
             .partner = req.partner,
             .outcome = "refused",
             .reason = reason,
             .peer = req.peer,
             .status = r.status,
             .latency_ms = ms_since(start)});
  audit_refusal(*store_, *refusal_audit_, req.partner, message_id, r.status, reason);
  done(std::move(r));
}

struct partner_api::refused_resend {
  std::string partner, peer, reason, audit_id, id, body_sha256, reference;
  std::chrono::steady_clock::time_point start;
  response refused;
  const adapters::adapter* format = nullptr;
  std::shared_ptr<const translation> t;

  /// A request naming these copies, for refuse() (valid while this lives).
  request again() const { return {.partner = partner, .peer = peer}; }
};

void partner_api::refuse_unless_stored(const request& req,
                                       std::chrono::steady_clock::time_point start,
                                       std::function<void(response)> done, response refused,
                                       std::string_view reason, std::string_view audit_id,
                                       std::string_view id, const adapters::adapter* format,
                                       std::shared_ptr<const translation> t,
                                       std::string_view reference) const {
  const std::string message_id = ascii_lower(id);
  if (!pipeline::is_uuid(message_id)) {
    refuse(req, start, done, std::move(refused), reason, audit_id);
    return;
  }
  auto resend = std::make_shared<refused_resend>(
      refused_resend{std::string(req.partner), std::string(req.peer), std::string(reason),
                     std::string(audit_id), message_id, sha256_hex(req.body),
                     std::string(reference), start, std::move(refused), format, std::move(t)});
  // 503 rather than the refusal when the store cannot say: a sender told "refused" may issue the
  // message again under a new id, and its recipients would get it twice.
  auto unavailable = [](const refused_resend& r) {
    auto answer = refusal(r.format, 503, "store-unavailable", "Store unavailable",
                          "The message could not be checked against the store and was not "
                          "accepted; try again later.");
    answer.headers.emplace_back("Retry-After", "5");
    return answer;
  };
  store_->find(message_id, [weak = weak_from_this(), resend, unavailable, done = std::move(done)](
                               std::optional<store::message_status> found, bool ok) mutable {
    const auto self = weak.lock();
    if (!self) {
      return;
    }
    if (!ok) {
      done(unavailable(*resend));
      return;
    }
    if (!found || found->sender != resend->partner) {
      // Unknown, or another sender's: exactly the refusal, so nothing about it is revealed.
      self->refuse(resend->again(), resend->start, done, std::move(resend->refused), resend->reason,
                   resend->audit_id);
      return;
    }
    if (found->body_sha256 != resend->body_sha256) {
      // The same id with other bytes: refused as it would be without the stored message.
      self->refuse(resend->again(), resend->start, done, std::move(resend->refused), resend->reason,
                   resend->audit_id);
      return;
    }
    // These very bytes from this sender: the message stored (what accept() judges a duplicate),
    // answered as its first accept was.
    const double latency_ms = ms_since(resend->start);
    if (self->metrics_) {
      self->metrics_->observe("mxgw_submit_duration_seconds", "outcome=\"duplicate\"",
                              latency_ms / 1000.0);
    }
    auto answer = accepted_answer(
        resend->format, {resend->id, resend->reference, found->accepted_at, resend->partner},
        resend->t->checker->tables());
    log::info({.event = "message.duplicate",
               .message_id = resend->id,
               .partner = resend->partner,
               .outcome = "duplicate",
               .peer = resend->peer,
               .status = answer.status,
               .latency_ms = latency_ms});
    done(std::move(answer));
  });
}

struct partner_api::withdrawal {
  std::string method, target, content_type, body, partner, peer, reference;
  std::optional<std::vector<std::string>> only_to;
  std::chrono::steady_clock::time_point start;
  std::shared_ptr<const translation> t;
  std::shared_ptr<rapidjson::Document> doc;
  pipeline::check_result verdict;
  const adapters::adapter* format = nullptr;
  std::string canonical;
  std::string original;  ///< the id of the message taken back (or answered)
  int routings = 0;      ///< how often it was routed so far

  /// Copies of what `req` and the checks gave, for a store read before the accept goes on.
  static std::shared_ptr<withdrawal> park(
      const request& req, std::string_view reference, const std::vector<std::string>* only_to,
      std::chrono::steady_clock::time_point start, std::shared_ptr<const translation> t,
      std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
      const adapters::adapter* format, std::string canonical, std::string original) {
    return std::make_shared<withdrawal>(withdrawal{
        std::string(req.method), std::string(req.target), std::string(req.content_type),
        std::string(req.body), std::string(req.partner), std::string(req.peer),
        std::string(reference), only_to != nullptr ? std::optional(*only_to) : std::nullopt, start,
        std::move(t), std::move(doc), std::move(verdict), format, std::move(canonical),
        std::move(original), 0});
  }

  /// The request again, viewing these copies (valid while this lives).
  request again() const {
    return {.method = method,
            .target = target,
            .content_type = content_type,
            .body = body,
            .partner = partner,
            .peer = peer};
  }
};

std::string partner_api::sender_country(std::string_view partner_id) const {
  const auto trust = trust_->current();
  const identity::partner* sender = trust->partners.find(partner_id);
  return sender != nullptr ? sender->country : std::string();
}

void partner_api::accept(const request& req, std::chrono::steady_clock::time_point start,
                         std::function<void(response)> done, std::shared_ptr<const translation> t,
                         std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
                         const adapters::adapter* format, std::string canonical,
                         std::string_view reference,
                         const std::vector<std::string>* only_to) const {
  // The source allows no processing after handling.expires. A message past it is refused, unless
  // it was stored before (a resend gets the first answer again) or it takes data back.
  const auto expires_at = expiry_of(*doc, sender_country(req.partner));
  if (!expires_at || std::chrono::system_clock::now() < *expires_at ||
      !withdrawn_message(*doc, verdict.type).empty()) {
    accept_current(req, start, std::move(done), std::move(t), std::move(doc), std::move(verdict),
                   format, std::move(canonical), reference, only_to);
    return;
  }
  auto parked = withdrawal::park(req, reference, only_to, start, std::move(t), std::move(doc),
                                 std::move(verdict), format, std::move(canonical), std::string());
  const std::string id = parked->verdict.id;
  store_->find(id, [weak = weak_from_this(), parked, done = std::move(done)](
                       std::optional<store::message_status> found, bool ok) mutable {
    const auto self = weak.lock();
    if (!self) {
      return;
    }
    const request again = parked->again();
    if (!ok) {
      auto r = refusal(parked->format, 503, "store-unavailable", "Store unavailable",
                       "The message could not be checked against the store and was not "
                       "accepted; try again later.");
      r.headers.emplace_back("Retry-After", "5");
      done(std::move(r));
      return;
    }
    if (found && found->sender == parked->partner) {
      self->accept_current(again, parked->start, std::move(done), parked->t, parked->doc,
                           parked->verdict, parked->format, parked->canonical, parked->reference,
                           parked->only_to ? &*parked->only_to : nullptr);
      return;
    }
    self->refuse(again, parked->start, done,
                 refusal(parked->format, 422, "handling-expired", "Expired",
                         "handling.expires has passed: its source allows no processing of this "
                         "message after that day, so it was not accepted.",
                         {{"/handling/expires", "has passed"}}),
                 "handling-expired", parked->verdict.id);
  });
}

void partner_api::accept_current(const request& req, std::chrono::steady_clock::time_point start,
                                 std::function<void(response)> done,
                                 std::shared_ptr<const translation> t,
                                 std::shared_ptr<rapidjson::Document> doc,
                                 pipeline::check_result verdict, const adapters::adapter* format,
                                 std::string canonical, std::string_view reference,
                                 const std::vector<std::string>* only_to) const {
  std::string taken_back = withdrawn_message(*doc, verdict.type);
  if (taken_back.empty()) {
    std::string answers = answered_id(*doc, verdict.type);
    if (answers.empty()) {
      accept_routed(req, start, std::move(done), std::move(t), std::move(doc), std::move(verdict),
                    format, std::move(canonical), reference, only_to, {});
      return;
    }
    // A reply or a case update: the message it answers or is about is read first, so that a
    // recipient who sent that message is told which one by its own reference (a KH msg_no), not
    // by the gateway id.
    auto parked =
        withdrawal::park(req, reference, only_to, start, std::move(t), std::move(doc),
                         std::move(verdict), format, std::move(canonical), std::move(answers));
    const std::string id = parked->original;
    store_->read_body(id, [weak = weak_from_this(), parked, done = std::move(done)](
                              std::optional<store::stored_body> found, bool) mutable {
      const auto self = weak.lock();
      if (!self) {
        return;
      }
      // Without it (unknown, purged, a store that failed) the reply names the gateway id.
      answered_message answered{.id = parked->original, .sender = {}, .reference = {}};
      if (found) {
        rapidjson::Document original;
        if (!json::parse_untrusted(found->body, original) && original.IsObject()) {
          answered.sender = found->sender;
          answered.reference = std::string(json::get_string(original, "ref"));
        }
      }
      const request again = parked->again();
      self->accept_routed(again, parked->start, std::move(done), parked->t, parked->doc,
                          parked->verdict, parked->format, parked->canonical, parked->reference,
                          parked->only_to ? &*parked->only_to : nullptr, {}, false, {}, &answered);
    });
    return;
  }
  // A withdrawal or cancellation must reach everyone who may have had the message it takes back,
  // not only those its sender remembers to name: the recipients of that message (when it is the
  // same sender's) are looked up first.
  accept_withdrawal(
      withdrawal::park(req, reference, only_to, start, std::move(t), std::move(doc),
                       std::move(verdict), format, std::move(canonical), std::move(taken_back)),
      std::move(done));
}

void partner_api::accept_withdrawal(std::shared_ptr<withdrawal> w,
                                    std::function<void(response)> done) const {
  ++w->routings;
  const std::string original = w->original;
  store_->find(original, [weak = weak_from_this(), w, done = std::move(done)](
                             std::optional<store::message_status> found, bool ok) mutable {
    const auto self = weak.lock();
    if (!ok || !self) {
      // Without the earlier recipients the withdrawal would reach too few: not accepted.
      auto r = refusal(w->format, 503, "store-unavailable", "Store unavailable",
                       "The message could not be stored durably and was not accepted; try "
                       "again later.");
      r.headers.emplace_back("Retry-After", "5");
      log::error({.event = "message.refused",
                  .message_id = w->verdict.id,
                  .partner = w->partner,
                  .outcome = "unavailable",
                  .reason = "store-unavailable",
                  .peer = w->peer,
                  .status = 503,
                  .latency_ms = ms_since(w->start)});
      done(std::move(r));
      return;
    }
    std::vector<std::string> earlier;
    const bool seen = found && found->sender == w->partner;
    if (seen) {
      for (const auto& r : found->recipients) {
        // Only those the copy may have reached: the withdrawal takes a held copy back, and
        // telling its recipient would tell it that the message exists, as the status endpoint
        // never does.
        if (store::may_have_reached(r)) {
          earlier.push_back(r.recipient);
        }
      }
    }
    // The original committed between the look-up and the withdrawal's own commit: look again
    // (once; a second time is a store that does not agree with itself: 503).
    auto reroute = [weak, w](std::function<void(response)> answer) {
      const auto api = weak.lock();
      if (api && w->routings < 2) {
        api->accept_withdrawal(w, std::move(answer));
        return;
      }
      auto r = refusal(w->format, 503, "store-unavailable", "Store unavailable",
                       "The message could not be stored durably and was not accepted; try "
                       "again later.");
      r.headers.emplace_back("Retry-After", "5");
      answer(std::move(r));
    };
    const request again = w->again();
    self->accept_routed(again, w->start, std::move(done), w->t, w->doc, w->verdict, w->format,
                        w->canonical, w->reference, w->only_to ? &*w->only_to : nullptr, earlier,
                        seen, std::move(reroute));
  });
}

void partner_api::accept_routed(
    const request& req, std::chrono::steady_clock::time_point start,
    std::function<void(response)> done, std::shared_ptr<const translation> t,
    std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
    const adapters::adapter* format, std::string canonical, std::string_view reference,
    const std::vector<std::string>* only_to, const std::vector<std::string>& earlier_recipients,
    bool original_seen, std::function<void(std::function<void(response)>)> reroute,
    const answered_message* answered) const {
  // Decide who receives it (routing rules, then policy per recipient) before storing, so the
  // message and its delivery rows are committed together.
  const auto trust = trust_->current();
  const auto rules = rules_->get();
  const auto decision = pipeline::route(*doc, req.partner, trust->partners, *rules,
                                        t->checker->tables(), earlier_recipients);
  if (decision.error == pipeline::routing_reason::routing_held) {
    // The routing rules in force elsewhere could not be applied here: routing by the rules
    // they replaced could send the message where it may no longer go. Nothing is stored.
    auto r = refusal(format, 503, "routing-unavailable", "Routing unavailable",
                     "The routing rules could not be applied on this gateway; the message was "
                     "not accepted. Try again later.");
    r.headers.emplace_back("Retry-After", "30");
    refuse_unless_stored(req, start, std::move(done), std::move(r), decision.error, verdict.id,
                         verdict.id, format, t, reference);
    return;
  }
  if (!decision.error.empty()) {
    // A resend of a stored message gets the first answer even if the sender may no longer send
    // its type.
    refuse_unless_stored(
        req, start, std::move(done),
        refusal(format, 403, "not-permitted", "Not permitted",
                "This partner may not send messages of this type through the gateway.",
                {{"/type", "is not among the types this partner may send"}}),
        decision.error, verdict.id, verdict.id, format, t, reference);
    return;
  }
  const std::string partner(req.partner);
  store::message_record record{verdict.id,           partner,
                               verdict.type,         verdict.created,
                               sha256_hex(req.body), std::move(canonical)};
  for (const auto& plan : decision.recipients) {
    if (only_to != nullptr &&
        std::find(only_to->begin(), only_to->end(), plan.partner_id) == only_to->end()) {
      record.exclusions.push_back({plan.partner_id, plan.decided_by, "not-an-earlier-recipient"});
      continue;
    }
    // A canonical recipient from whom nothing is withheld gets the message as it was accepted:
    // the store keeps no second copy of it.
    const adapters::adapter* wire = wire_format(plan.partner_id, trust->partners);
    if (wire == nullptr && plan.withheld.empty()) {
      record.deliveries.push_back({.recipient = plan.partner_id,
                                   .decided_by = plan.decided_by,
                                   .payload_is_body = true,
                                   .hold = plan.held_by,
                                   .relies_on = plan.relies_on});
      continue;
    }
    // Each recipient gets its own copy (withheld fields removed), in its own format.
    auto payload = encode_for(*doc, plan, *t, wire, answered);
    if (!payload) {
      record.exclusions.push_back({plan.partner_id, plan.decided_by, "format-cannot-express"});
      continue;
    }
    record.deliveries.push_back({.recipient = plan.partner_id,
                                 .decided_by = plan.decided_by,
                                 .payload = std::move(*payload),
                                 .withheld = withheld_json(plan),
                                 .hold = plan.held_by,
                                 .relies_on = plan.relies_on});
  }
  for (const auto& e : decision.excluded) {
    record.exclusions.push_back({e.partner_id, e.considered, e.reason});
  }
  // A withdrawal or cancellation takes back the queued copies of the message it is about (the
  // store does it in the same transaction, and only for the same sender's message).
  record.withdraws = withdrawn_message(*doc, record.type);
  record.original_seen = original_seen;
  record.expires_at = expiry_of(*doc, sender_country(partner));
  // Coarse categories for the statistics (`mxgw report`), kept after retention purges the body.
  // A verification request's facts name its recipients: only their answers settle it.
  std::vector<std::string> recipients;
  for (const auto& d : record.deliveries) {
    recipients.push_back(d.recipient);
  }
  // Ages at the earlier of `created` and now, as routing judges minority.
  record.facts = pipeline::facts_of(*doc, partner, t->checker->tables(), &recipients,
                                    std::chrono::system_clock::now());
  // Keyed digests of the persons it names, for candidates of the same person in other messages.
  if (match_key_) {
    for (auto& d : pipeline::person_digests_of(*doc, *match_key_, t->transliterators.get())) {
      record.person_keys.push_back({std::move(d.pointer), std::move(d.kind), std::move(d.digest)});
    }
  }
  record.audit.push_back(accepted_audit(record, format, decision.matched_rules, t->provenance_id));
  if (!record.withdraws.empty()) {
    record.audit.back().details.emplace_back("withdraws", record.withdraws);
  }
  // Earlier recipients of the message a withdrawal takes back whose format has no way to say so
  // (KH-CNP, LA-MPS): they hold data its source withdrew, and only people can tell them.
  std::vector<std::string> unreachable;
  if (!record.withdraws.empty()) {
    for (const auto& e : record.exclusions) {
      if (e.reason == "format-cannot-express" &&
          std::find(earlier_recipients.begin(), earlier_recipients.end(), e.partner) !=
              earlier_recipients.end()) {
        unreachable.push_back(e.partner);
      }
    }
  }
  std::string peer(req.peer);
  adapters::receipt_info receipt{verdict.id, std::string(reference), {}, partner};
  // The handler runs on the store's own thread while the store is alive, so it holds the store
  // by pointer: were it to hold the last reference, the store would be destroyed on its writer
  // thread, which cannot join itself (std::terminate at exit, seen in fuzz.http_request).
  store::message_store* const store = store_.get();
  store_->accept(
      std::move(record),
      [done = std::move(done), id = verdict.id, type = verdict.type, partner, peer, start, format,
       receipt, t, store, refusals = refusal_audit_, counters = metrics_,
       reroute = std::move(reroute), unreachable = std::move(unreachable),
       original = record.withdraws](store::accept_result result) mutable {
        if (result.outcome == store::accept_outcome::reroute && reroute) {
          reroute(std::move(done));  // answered by the second routing
          return;
        }
        log::fields f{.event = "message.accepted",
                      .message_id = id,
                      .partner = partner,
                      .message_type = type,
                      .peer = peer};
        response r;
        switch (result.outcome) {
          case store::accept_outcome::stored:
          case store::accept_outcome::duplicate:
            if (result.outcome == store::accept_outcome::duplicate) {
              f.event = "message.duplicate";
              f.outcome = "duplicate";
            } else {
              f.outcome = "accepted";
              if (!result.withdrawn_by.empty()) {
                // Its sender withdrew it before it arrived: stored withdrawn, sent to no one.
                f.reason = "withdrawn-before-arrival";
              }
            }
            receipt.accepted_at = result.accepted_at;
            r = accepted_answer(format, receipt, t->checker->tables());
            break;
          case store::accept_outcome::conflict:
            f.event = "message.refused";
            f.outcome = "refused";
            f.reason = "id-conflict";
            r = refusal(format, 409, "id-conflict", "Message id already used",
                        "A different message with this id was accepted before; a new message needs "
                        "a new id.");
            audit_refusal(*store, *refusals, partner, id, 409, "id-conflict");
            break;
          case store::accept_outcome::reroute:  // (only a withdrawal asks for it: see above)
          case store::accept_outcome::unavailable:
            f.event = "message.refused";
            f.outcome = "unavailable";
            // (a view: of the result, which outlives `f`, or of a literal)
            f.reason = result.reason.empty() ? std::string_view("reroute")
                                             : std::string_view(result.reason);
            r = refusal(
                format, 503, "store-unavailable", "Store unavailable",
                "The message could not be stored durably and was not accepted; try again later.");
            r.headers.emplace_back("Retry-After", "5");
            break;
        }
        f.status = r.status;
        f.latency_ms = ms_since(start);
        if (counters) {
          if (result.outcome == store::accept_outcome::stored) {
            counters->add("mxgw_messages_accepted_total");
          } else if (result.outcome != store::accept_outcome::duplicate) {
            counters->add("mxgw_messages_refused_total",
                          "reason=\"" + std::string(f.reason) + "\"");
          }
          const char* outcome = "refused";  // id-conflict
          switch (result.outcome) {
            case store::accept_outcome::stored:
              outcome = "accepted";
              break;
            case store::accept_outcome::duplicate:
              outcome = "duplicate";
              break;
            case store::accept_outcome::unavailable:
            case store::accept_outcome::reroute: outcome = "unavailable"; break;
            case store::accept_outcome::conflict:
              break;
          }
          counters->observe("mxgw_submit_duration_seconds",
                            std::string("outcome=\"") + outcome + "\"", f.latency_ms / 1000.0);
        }
        log::write(r.status >= 500 ? log::level::error : log::level::info, f);
        if (result.outcome == store::accept_outcome::stored) {
          for (const auto& recipient : unreachable) {
            const std::string detail = "the withdrawal of " + original +
                                       " cannot be said in this recipient's format: tell it "
                                       "another way that the message no longer stands";
            log::error({.event = "withdrawal.unreachable",
                        .message_id = id,
                        .partner = recipient,
                        .reason = "format-cannot-express",
                        .detail = detail});
            if (counters) {
              counters->add("mxgw_withdrawals_unreachable_total", "partner=\"" + recipient + "\"");
            }
          }
        }
        done(std::move(r));
      });
}

std::optional<std::string> partner_api::encode_for(const rapidjson::Value& message,
                                                   const pipeline::recipient_plan& plan,
                                                   const translation& t,
                                                   const adapters::adapter* format,
                                                   const answered_message* answered) const {
  std::string canonical = pipeline::render_for(message, plan);
  if (format == nullptr) {
    return canonical;
  }
  rapidjson::Document copy;
  copy.Parse(canonical.c_str(), canonical.size());
  // The reference the recipient gave the message answered, when the recipient sent it.
  const bool theirs = answered != nullptr && answered->sender == plan.partner_id;
  auto encoded =
      format->encode(copy, {.tables = &t.checker->tables(),
                            .sender = json::get_string(message, "sender").data(),
                            .recipient = plan.partner_id,
                            .answered_id = theirs ? answered->id : std::string(),
                            .answered_reference = theirs ? answered->reference : std::string()});
  if (encoded.status != 0) {
    return std::nullopt;
  }
  return std::move(encoded.bytes);
}

void partner_api::status(const request& req, std::string_view id,
                         std::function<void(response)> done) const {
  const std::string wanted = ascii_lower(id);
  std::string partner(req.partner);
  if (!pipeline::is_uuid(wanted)) {
    done(problem(404, "not-found", "Not found", "There is no such message for this partner."));
    return;
  }
  // The partners as they are now: which exclusions the sender may read depends on countries.
  store_->find(wanted, [done = std::move(done), partner, trust = trust_->current()](
                           std::optional<store::message_status> s, bool ok) {
    if (!ok) {
      auto r = problem(503, "store-unavailable", "Store unavailable", "Try again later.");
      r.headers.emplace_back("Retry-After", "5");
      done(std::move(r));
      return;
    }
    // Visible to its sender (every recipient, and why partners of its own country were left
    // out) and to each recipient (its own row only, without the gateway's rule names). Anyone
    // else gets exactly the answer of an unknown id, so the endpoint does not reveal that the
    // message exists. So does a recipient whose copy was held for release and never handed to it
    // (held, refused, withdrawn while held): nothing of the message has left the country, not
    // even that it exists.
    const bool is_sender = s && s->sender == partner;
    const store::recipient_status* own_row = nullptr;
    if (s && !is_sender) {
      for (const auto& r : s->recipients) {
        if (r.recipient == partner && store::may_have_reached(r)) {
          own_row = &r;
        }
      }
    }
    if (!s || (!is_sender && own_row == nullptr)) {
      done(problem(404, "not-found", "Not found", "There is no such message for this partner."));
      return;
    }
    done(json_response(200, [&](auto& w) {
      w.StartObject();
      put(w, "id", s->id);
      put(w, "type", s->type);
      put(w, "sender", s->sender);
      put(w, "created", s->created);
      put(w, "acceptedAt", s->accepted_at);
      put(w, "status", s->state);
      w.Key("recipients");
      w.StartArray();
      for (const auto& r : s->recipients) {
        if (is_sender || &r == own_row) {
          write_recipient(w, r, &r == own_row);
        }
      }
      w.EndArray();
      if (is_sender) {
        w.Key("excluded");
        w.StartArray();
        for (const auto& e : s->exclusions) {
          const auto view = exclusion_seen_by(trust->partners, partner, e);
          if (view == exclusion_view::hidden) {
            continue;
          }
          w.StartObject();
          put(w, "partner", e.partner);
          put(w, "considered", e.considered);
          put(w, "reason", view == exclusion_view::whole ? e.reason : "not-available");
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndObject();
    }));
  });
}

}  // namespace mxgw::http
