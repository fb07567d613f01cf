// The admin API under /admin/v1/ (and GET /metrics) on the admin listener: partners,
// certificates, routing rules, queues, dead letters, audit, metrics. JSON in and out; refusals are
// RFC 9457 problem documents. Every change is persisted with its audit record and applied live.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/http/handlers.hpp"
#include "gateway/identity/partner_registry.hpp"

namespace mxgw {
class metrics;
}

namespace mxgw::admin {

class state_manager;

struct admin_api_options {
  std::filesystem::path signing_dir;  ///< `mxgw certs` directory for CSR enrolment; empty: none
  std::chrono::hours default_overlap{24 * 14};
  std::chrono::hours default_validity{24 * 365};
  std::size_t max_json_depth = 32;
  /// persons.match_key is set: GET /admin/v1/messages/{id}/candidates answers (else 409).
  bool persons_matching = false;
  /// Reloads the gateway's reloadable configuration as `actor` (gateway_instance::reload); empty:
  /// POST /admin/v1/reload answers 404.
  std::function<std::vector<identity::config_problem>(const std::string& actor)> reload;
  /// delivery.lease_ms of this instance: a partner definition with an endpoint whose delivery
  /// timeout_ms is not below delivery::longest_attempt of it is refused (422). 0: deliveries are
  /// off, no check.
  std::chrono::milliseconds delivery_lease{0};
};

class admin_api {
 public:
  /// `extra_metrics` returns more exposition text (delivery and listener counters); may be empty.
  admin_api(std::shared_ptr<state_manager> state, std::shared_ptr<store::message_store> store,
            admin_api_options options, std::shared_ptr<metrics> counters,
            std::function<std::string()> extra_metrics);

  /// Routes and answers one request of administrator `req.partner` (the admin name from the
  /// certificate). `done` exactly once, possibly on a store thread.
  void handle(const http::request& req, std::function<void(http::response)> done) const;

  struct context;

 private:
  std::shared_ptr<context> ctx_;
};

}  // namespace mxgw::admin
