// The partner API's routes: POST /v1/messages, GET /v1/messages/<id>, GET /healthz.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include <optional>

#include "gateway/http/problem.hpp"
#include "gateway/pipeline/canonical_check.hpp"

namespace mxgw::pipeline {
class canonical_checker;
class routing_rules;
struct recipient_plan;
}  // namespace mxgw::pipeline
namespace mxgw::adapters {
class adapter;
}
namespace mxgw::identity {
class partner_registry;
}
namespace mxgw::store {
class message_store;
}

namespace mxgw::http {

/// One request as the network layer read it. `partner` is the id established from the client
/// certificate; it is never taken from the request.
struct request {
  std::string_view method;
  std::string_view target;
  std::string_view content_type;
  std::string_view body;
  std::string_view partner;
  std::string_view peer;
};

struct api_limits {
  std::size_t max_json_depth = 64;
};

class partner_api {
 public:
  partner_api(std::shared_ptr<const pipeline::canonical_checker> checker,
              std::shared_ptr<const identity::partner_registry> partners,
              std::shared_ptr<const pipeline::routing_rules> rules,
              std::shared_ptr<store::message_store> store, api_limits limits = {});

  /// Routes and answers one request. `done` is called exactly once, possibly on a store thread,
  /// after the request has been fully handled (for an accepted message: after the durable commit).
  /// The request's string views must stay valid until `done` is called.
  void handle(const request& req, std::function<void(response)> done) const;

  /// Accepts a canonical message made inside the gateway on `sender`'s behalf (the notice feed)
  /// exactly as if that partner had POSTed it to /v1/messages: the same checks, routing, policy
  /// and durable store, and the same answer (202, 409, 4xx, 503) to `done`. When `only_to` is
  /// given, recipients outside it are excluded (reason "not-an-earlier-recipient"): a withdrawal
  /// goes to those who received the original and no one else.
  void accept_canonical(std::string sender, std::string canonical,
                        std::optional<std::vector<std::string>> only_to,
                        std::function<void(response)> done) const;

 private:
  void submit(const request& req, std::chrono::steady_clock::time_point start,
              std::function<void(response)> done) const;
  void inbound(const request& req, std::string_view format_id,
               std::chrono::steady_clock::time_point start,
               std::function<void(response)> done) const;
  void accept(const request& req, std::chrono::steady_clock::time_point start,
              std::function<void(response)> done, std::shared_ptr<rapidjson::Document> doc,
              pipeline::check_result verdict, const adapters::adapter* format,
              std::string canonical, std::string_view reference,
              const std::vector<std::string>* only_to = nullptr) const;
  void refuse(const request& req, std::chrono::steady_clock::time_point start,
              const std::function<void(response)>& done, response r, std::string_view reason,
              std::string_view message_id) const;
  std::optional<std::string> encode_for(const rapidjson::Value& message,
                                        const pipeline::recipient_plan& plan) const;
  void status(const request& req, std::string_view id, std::function<void(response)> done) const;

  std::shared_ptr<const pipeline::canonical_checker> checker_;
  std::shared_ptr<const identity::partner_registry> partners_;
  std::shared_ptr<const pipeline::routing_rules> rules_;
  std::shared_ptr<store::message_store> store_;
  api_limits limits_;
};

}  // namespace mxgw::http
