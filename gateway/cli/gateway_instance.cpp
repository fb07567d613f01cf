// Assembly of a gateway (see gateway_instance.hpp).
#include "gateway/cli/gateway_instance.hpp"

#include <stdexcept>

#include "adapters/adapter.hpp"
#include "gateway/common/log.hpp"
#include "gateway/delivery/delivery_service.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/server.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/cli/open_store.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::cli {

struct gateway_instance::parts {
  std::shared_ptr<store::message_store> store;
  std::unique_ptr<delivery::delivery_service> delivery;
  std::unique_ptr<net::server> server;
};

std::string format_problems(const std::vector<config::config_problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += p.file;
    if (!p.field.empty()) {
      out += ": " + p.field;
    }
    out += ": " + p.reason + "\n";
  }
  return out;
}

gateway_instance::gateway_instance(const config::gateway_config& config)
    : parts_(std::make_unique<parts>()) {
  std::vector<config::config_problem> problems;
  for (const auto& clash : adapters::registry_problems()) {
    problems.push_back({"(build)", "", "adapter '" + clash + "' is registered twice"});
  }
  const auto formats = adapters::adapter_ids();
  auto partners = std::make_shared<identity::partner_registry>(
      identity::partner_registry::load(config.partners_file, problems, &formats));
  auto checker = std::make_shared<pipeline::canonical_checker>(
      pipeline::canonical_checker::load(config.schema_dir, config.mappings_dir, problems));
  auto rules = std::make_shared<pipeline::routing_rules>();
  if (!config.routing_file.empty()) {
    *rules =
        pipeline::routing_rules::load(config.routing_file, problems, *partners, checker->tables());
  }
  if (!problems.empty()) {
    throw std::runtime_error("configuration problems:\n" + format_problems(problems));
  }
  parts_->store = open_configured_store(config.store);  // store.kind: sqlite or postgres
  if (config.delivery.enabled) {
    const auto& d = config.delivery;
    // Unset: the gateway is the same party in both directions (its listener identity).
    delivery::client_identity identity{
        d.client_certificate.empty() ? config.listener.tls.certificate : d.client_certificate,
        d.client_key.empty() ? config.listener.tls.private_key : d.client_key,
        d.partner_server_ca.empty() ? config.listener.tls.partner_cas : d.partner_server_ca};
    delivery::delivery_options options{
        .identity = identity,
        .owner = d.instance,
        .lease = std::chrono::milliseconds(d.lease_ms),
        .poll_interval = std::chrono::milliseconds(d.poll_interval_ms),
        .max_in_flight = d.max_in_flight,
        .breaker_failures = static_cast<int>(d.breaker_failures),
        .breaker_open = std::chrono::milliseconds(d.breaker_open_ms)};
    for (const auto* p : partners->all()) {
      if (!p->endpoint.empty()) {
        options.recipients.push_back(p->id);
      }
    }
    // The registry is immutable while the gateway runs, so the workers may read it freely.
    auto lookup = [partners](std::string_view id) -> std::optional<delivery::recipient_info> {
      const auto* p = partners->find(id);
      if (p == nullptr || !p->enabled) {
        return std::nullopt;
      }
      const auto* format = adapters::find_adapter(p->adapter);
      return delivery::recipient_info{
          .endpoint = p->endpoint,
          .content_type = format != nullptr ? std::string(format->content_type())
                                            : std::string("application/json"),
          .timeout = p->delivery.timeout,
          .limits = {p->delivery.max_attempts, p->delivery.max_age, p->delivery.backoff_base,
                     p->delivery.backoff_cap},
          .concurrency = static_cast<std::size_t>(std::max(1, p->delivery.concurrency))};
    };
    parts_->delivery =
        std::make_unique<delivery::delivery_service>(options, parts_->store, std::move(lookup));
    parts_->store->on_deliveries_due([service = parts_->delivery.get()] { service->wake(); });
  }
  auto api =
      std::make_shared<http::partner_api>(checker, partners, rules, parts_->store,
                                          http::api_limits{config.listener.limits.max_json_depth});
  parts_->server = std::make_unique<net::server>(config.listener, config.threads, partners, api);
  if (parts_->delivery) {
    parts_->delivery->start();
  }
  log::info({.event = "gateway.started",
             .detail = "listening on " + config.listener.address + ":" +
                       std::to_string(parts_->server->port()) + " with " +
                       std::to_string(partners->size()) + " partners and " +
                       std::to_string(rules->size()) + " routing rules"});
}

gateway_instance::~gateway_instance() {
  stop();
  parts_->server.reset();
  if (parts_->delivery) {
    parts_->delivery->stop();
  }
  parts_->store->stop();
}

std::uint16_t gateway_instance::port() const {
  return parts_->server->port();
}

void gateway_instance::run() {
  parts_->server->run();
  // Every in-flight request has been answered; let deliveries in flight finish (bounded by their
  // timeouts), then flush what the store still holds.
  if (parts_->delivery) {
    parts_->delivery->stop();
  }
  parts_->store->stop();
  log::info({.event = "gateway.stopped"});
}

void gateway_instance::stop() {
  parts_->server->stop();
}

delivery::delivery_service* gateway_instance::delivery() const {
  return parts_->delivery.get();
}

}  // namespace mxgw::cli
