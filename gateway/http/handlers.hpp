// The partner API's routes: POST /v1/messages, GET /v1/messages/<id>, GET /healthz.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include <optional>

#include "gateway/common/keyed_mac.hpp"
#include "gateway/http/problem.hpp"
#include "gateway/pipeline/canonical_check.hpp"

namespace mxgw::pipeline {
class canonical_checker;
class routing_rules;
class transliterators;
struct match_key;
struct recipient_plan;
}  // namespace mxgw::pipeline
namespace mxgw::adapters {
class adapter;
}
namespace mxgw::identity {
class trust_store;
class partner_registry;
}  // namespace mxgw::identity
namespace mxgw {
class metrics;
template <typename T>
class live;
}  // namespace mxgw
namespace mxgw::store {
class message_store;
}
namespace mxgw::audit {
class refusal_limiter;
}

namespace mxgw::http {

/// One request as the network layer read it. `partner` is the id established from the client
/// certificate; it is never taken from the request.
struct request {
  std::string_view method;
  std::string_view target;
  std::string_view content_type;
  std::string_view body;
  std::string_view partner;  ///< the principal: partner id (partner listener) or admin name
  std::string_view peer;
  std::string_view if_match;  ///< the If-Match header, when sent (admin API)
};

struct api_limits {
  std::size_t max_json_depth = 64;
  std::uint32_t audit_refusals_per_minute = 60;  ///< refusal audit entries per partner a minute
};

class partner_api : public std::enable_shared_from_this<partner_api> {
 public:
  /// `trust` and `rules` are live: every request reads the snapshot in force when it arrives.
  /// `counters` may be null.
  partner_api(std::shared_ptr<const pipeline::canonical_checker> checker,
              std::shared_ptr<const identity::trust_store> trust,
              std::shared_ptr<const live<pipeline::routing_rules>> rules,
              std::shared_ptr<store::message_store> store, api_limits limits = {},
              std::shared_ptr<const pipeline::transliterators> transliterators = nullptr,
              std::shared_ptr<metrics> counters = nullptr, std::string provenance_id = {});

  /// Replaces the checker (schemas, code tables) and the transliteration rules for requests that
  /// start from now on; requests in flight finish with the ones they started with. Thread-safe.
  /// `provenance_id` names the set in each accepted message's audit entry
  /// (cli::translation_set::provenance_id).
  void replace_translation(std::shared_ptr<const pipeline::canonical_checker> checker,
                           std::shared_ptr<const pipeline::transliterators> transliterators,
                           std::string provenance_id = {});

  /// Turns on persons across messages (docs/persons.md): each accepted message is stored with
  /// its persons' digests under `key`. Call once, before the first request; null: off (as it
  /// starts).
  void match_persons(std::shared_ptr<const pipeline::match_key> key) {
    match_key_ = std::move(key);
  }

  /// The secret the ids of partners' messages are derived under (adapters::derived_message_id;
  /// config message_ids.key). Call once, before the first request; null: derived without a key.
  void derive_ids_with(std::shared_ptr<const mac_key> key) { message_id_key_ = std::move(key); }

  /// Routes and answers one request. `done` is called exactly once, possibly on a store thread,
  /// after the request has been fully handled (for an accepted message: after the durable commit).
  /// The request's string views must stay valid until `done` is called.
  void handle(const request& req, std::function<void(response)> done) const;

  /// Accepts a canonical message made inside the gateway on `sender`'s behalf (the notice feed)
  /// exactly as if that partner had POSTed it to /v1/messages: the same checks, routing, policy
  /// and durable store, and the same answer (202, 409, 4xx, 503) to `done`. When `only_to` is
  /// given, recipients outside it are excluded (reason "not-an-earlier-recipient"): a withdrawal
  /// goes to those who received the original and no one else. A `sender` that is disabled or
  /// held for a change this instance could not apply (the live trust state) is refused 403
  /// `disabled-partner`, as its handshake would be: nothing is stored.
  void accept_canonical(std::string sender, std::string canonical,
                        std::optional<std::vector<std::string>> only_to,
                        std::function<void(response)> done) const;

 private:
  /// What one request translates and checks with: taken once when it starts (see reload).
  struct translation {
    std::shared_ptr<const pipeline::canonical_checker> checker;
    std::shared_ptr<const pipeline::transliterators> transliterators;
    std::string provenance_id;  ///< the translation set's id, for the accept's audit entry
  };
  std::shared_ptr<const translation> current_translation() const;

  void submit(const request& req, std::chrono::steady_clock::time_point start,
              std::function<void(response)> done) const;
  void inbound(const request& req, std::string_view format_id,
               std::chrono::steady_clock::time_point start,
               std::function<void(response)> done) const;
  /// Routes and stores a checked message. One whose handling.expires has passed is refused
  /// (422 handling-expired) unless the store has it already (a store read first).
  /// The sender's country (its partner definition's), for the days of its data-handling dates;
  /// empty when the partner is not defined.
  std::string sender_country(std::string_view partner_id) const;
  void accept(const request& req, std::chrono::steady_clock::time_point start,
              std::function<void(response)> done, std::shared_ptr<const translation> t,
              std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
              const adapters::adapter* format, std::string canonical,
              std::string_view reference,
              const std::vector<std::string>* only_to = nullptr) const;
  /// accept() once expiry is settled. A withdrawal or cancellation looks up the message it takes
  /// back first (a store read), so that its recipients are candidates too.
  void accept_current(const request& req, std::chrono::steady_clock::time_point start,
                      std::function<void(response)> done, std::shared_ptr<const translation> t,
                      std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
                      const adapters::adapter* format, std::string canonical,
                      std::string_view reference, const std::vector<std::string>* only_to) const;
  /// The message a reply answers or a case update is about, as stored: its id, its sender and
  /// the sender's own reference for it (`ref`), so that the reply names it to that sender as the
  /// sender knows it.
  struct answered_message {
    std::string id, sender, reference;
  };
  /// `original_seen`: a withdrawal's original was found and its recipients are among
  /// `earlier_recipients` (message_record::original_seen). `reroute` is called, instead of
  /// answering, when the store says the original committed after the look-up.
  void accept_routed(const request& req, std::chrono::steady_clock::time_point start,
                     std::function<void(response)> done, std::shared_ptr<const translation> t,
                     std::shared_ptr<rapidjson::Document> doc, pipeline::check_result verdict,
                     const adapters::adapter* format, std::string canonical,
                     std::string_view reference, const std::vector<std::string>* only_to,
                     const std::vector<std::string>& earlier_recipients, bool original_seen = false,
                     std::function<void(std::function<void(response)>)> reroute = {},
                     const answered_message* answered = nullptr) const;
  /// Owned copies of what a request carried (the request's views end with the call that started
  /// it), for the store read that comes first: a withdrawal or cancellation being accepted (kept
  /// for a second routing), or a message past its expiry (was it stored before?).
  struct withdrawal;
  /// Looks the original up, then routes and stores the withdrawal with the original's recipients
  /// as candidates; routes once more when the original committed after the look-up.
  void accept_withdrawal(std::shared_ptr<withdrawal> w, std::function<void(response)> done) const;
  void refuse(const request& req, std::chrono::steady_clock::time_point start,
              const std::function<void(response)>& done, response r, std::string_view reason,
              std::string_view message_id) const;
  /// What a resend being refused needs to be answered later: owned copies (see withdrawal).
  struct refused_resend;
  /// Refuses with `refused` (as refuse(); `audit_id` is the id the refusal is recorded under)
  /// unless `req.partner` already stored a message under `id` with the same bytes (SHA-256 of
  /// `req.body`, as the store's duplicate check): a resend of a stored message gets the first
  /// answer again (`format` null: 202; else the format's receipt, naming `reference`) even when
  /// permissions, code tables or routing changed since, and no refusal is recorded. An id stored
  /// by another sender, or with other bytes, gets `refused`, so nothing about it is revealed. A
  /// store read (only on this refusal path); 503 store-unavailable when the store cannot answer.
  void refuse_unless_stored(const request& req, std::chrono::steady_clock::time_point start,
                            std::function<void(response)> done, response refused,
                            std::string_view reason, std::string_view audit_id, std::string_view id,
                            const adapters::adapter* format, std::shared_ptr<const translation> t,
                            std::string_view reference) const;
  /// The recipient's copy in its wire format (`format` null: the canonical model); nullopt when
  /// that format cannot express the message.
  std::optional<std::string> encode_for(const rapidjson::Value& message,
                                        const pipeline::recipient_plan& plan, const translation& t,
                                        const adapters::adapter* format,
                                        const answered_message* answered) const;
  void status(const request& req, std::string_view id, std::function<void(response)> done) const;

  mutable std::mutex translation_mutex_;
  std::shared_ptr<const translation> translation_;  // guarded by translation_mutex_
  std::shared_ptr<const identity::trust_store> trust_;
  std::shared_ptr<const live<pipeline::routing_rules>> rules_;
  std::shared_ptr<metrics> metrics_;
  std::shared_ptr<store::message_store> store_;
  api_limits limits_;
  std::shared_ptr<audit::refusal_limiter> refusal_audit_;  // caps refusal entries (docs/audit.md)
  std::shared_ptr<const pipeline::match_key> match_key_;   // null: persons are not matched
  std::shared_ptr<const mac_key> message_id_key_;          // null: ids derived without a key
};

}  // namespace mxgw::http
