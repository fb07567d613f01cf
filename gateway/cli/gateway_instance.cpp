// Assembly of a gateway (see gateway_instance.hpp).
#include "gateway/cli/gateway_instance.hpp"

#include <stdexcept>

#include "gateway/common/log.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/server.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::cli {

struct gateway_instance::parts {
  std::shared_ptr<store::message_store> store;
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
  auto partners = std::make_shared<identity::partner_registry>(
      identity::partner_registry::load(config.partners_file, problems));
  auto checker = std::make_shared<pipeline::canonical_checker>(
      pipeline::canonical_checker::load(config.schema_dir, config.mappings_dir, problems));
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
  auto api = std::make_shared<http::partner_api>(
      checker, parts_->store, http::api_limits{config.listener.limits.max_json_depth});
  parts_->server = std::make_unique<net::server>(config.listener, config.threads, partners, api);
  log::info({.event = "gateway.started",
             .detail = "listening on " + config.listener.address + ":" +
                       std::to_string(parts_->server->port()) + " with " +
                       std::to_string(partners->size()) + " partners"});
}

gateway_instance::~gateway_instance() {
  stop();
  parts_->server.reset();
  parts_->store->stop();
}

std::uint16_t gateway_instance::port() const {
  return parts_->server->port();
}

void gateway_instance::run() {
  parts_->server->run();
  // Every in-flight request has been answered; flush what the store still holds.
  parts_->store->stop();
  log::info({.event = "gateway.stopped"});
}

void gateway_instance::stop() {
  parts_->server->stop();
}

}  // namespace mxgw::cli
