// Assembly of a gateway (see gateway_instance.hpp).
#include "gateway/cli/gateway_instance.hpp"

#include <stdexcept>

#include "adapters/adapter.hpp"
#include "gateway/common/log.hpp"
#include "gateway/delivery/delivery_service.hpp"
#include "gateway/feed/feed_poller.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/server.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::cli {

struct gateway_instance::parts {
  std::shared_ptr<store::message_store> store;
  std::unique_ptr<delivery::delivery_service> delivery;
  std::unique_ptr<net::server> server;
  std::unique_ptr<feed::feed_poller> feeds;  ///< notice feeds (nullptr: no partner has one)
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
  try {
    parts_->store = store::open_sqlite_store({.path = config.store.path,
                                              .max_batch = config.store.max_batch,
                                              .max_size_bytes = config.store.max_size_bytes});
  } catch (const store::store_error& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
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
  // Notice feeds are polled with the gateway's client identity; what they bring is accepted
  // through the partner API's own path, as the feed partner.
  std::vector<feed::feed_source> feeds;
  for (const auto* p : partners->all()) {
    if (p->feed && p->enabled) {
      feeds.push_back({p->id, *p->feed, p->carry_unmapped});
    }
  }
  if (!feeds.empty()) {
    const auto& d = config.delivery;
    feed::poller_options options{
        .identity = {
            d.client_certificate.empty() ? config.listener.tls.certificate : d.client_certificate,
            d.client_key.empty() ? config.listener.tls.private_key : d.client_key,
            d.partner_server_ca.empty() ? config.listener.tls.partner_cas : d.partner_server_ca}};
    auto accept = [api](std::string sender, std::string canonical,
                                 std::optional<std::vector<std::string>> only_to,
                                 feed::accept_done done) {
      api->accept_canonical(std::move(sender), std::move(canonical), std::move(only_to),
                            [done = std::move(done)](http::response r) { done(r.status); });
    };
    parts_->feeds = std::make_unique<feed::feed_poller>(
        std::move(options), std::move(feeds), parts_->store, &checker->tables(), std::move(accept));
    parts_->feeds->start();
  }
  log::info({.event = "gateway.started",
             .detail = "listening on " + config.listener.address + ":" +
                       std::to_string(parts_->server->port()) + " with " +
                       std::to_string(partners->size()) + " partners and " +
                       std::to_string(rules->size()) + " routing rules"});
}

gateway_instance::~gateway_instance() {
  stop();
  if (parts_->feeds) {
    parts_->feeds->stop();
  }
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
  if (parts_->feeds) {
    parts_->feeds->stop();  // nothing new is accepted from the feeds after this
  }
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

feed::feed_poller* gateway_instance::feeds() const {
  return parts_->feeds.get();
}

}  // namespace mxgw::cli
