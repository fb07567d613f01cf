// Assembly of a gateway (see gateway_instance.hpp).
#include "gateway/cli/gateway_instance.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "adapters/adapter.hpp"
#include "adapters/mapped/mapped.hpp"
#include "gateway/admin/admin_api.hpp"
#include "gateway/admin/admin_state.hpp"
#include "gateway/audit/checkpointer.hpp"
#include "gateway/cli/open_store.hpp"
#include "gateway/cli/translation_set.hpp"
#include "gateway/common/live.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/metrics.hpp"
#include "gateway/delivery/delivery_service.hpp"
#include "gateway/feed/feed_poller.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/peer_identity.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/net/server.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/report/deadlines.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/retention.hpp"
#include "gateway/store/sealed.hpp"

namespace mxgw::cli {

struct gateway_instance::parts {
  config::gateway_config config;
  std::mutex reload_mutex;
  std::shared_ptr<http::partner_api> api;
  std::string api_translation_id;  ///< the provenance id of the set the API translates with
  std::shared_ptr<identity::partner_registry> partners;
  std::shared_ptr<store::message_store> store;
  std::unique_ptr<delivery::delivery_service> delivery;
  std::unique_ptr<audit::checkpointer> checkpoints;  // signs the audit chain head (docs/audit.md)
  std::unique_ptr<store::retention_sweeper> retention;
  std::unique_ptr<report::deadline_watch> deadlines;
  std::shared_ptr<metrics> counters = std::make_shared<metrics>();
  std::shared_ptr<identity::trust_store> trust;
  std::shared_ptr<admin::state_manager> state;
  std::unique_ptr<net::server> server;
  std::unique_ptr<net::server> admin_server;
  std::thread admin_thread;
  /// The schemas and code tables in force (replaced by reload()), for decoding notices.
  std::shared_ptr<live<pipeline::canonical_checker>> feed_checker;
  std::mutex feed_update_mutex;  // one update of the feeds at a time, from the newest state
  std::unique_ptr<feed::feed_poller> feeds;  ///< notice feeds (nullptr: no partner has one)
};

namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fingerprints of the anchors of partners known by pin only (listener.tls.pinned_partner_ca).
std::set<std::string> pinned_only_anchors(const config::tls_settings& tls) {
  std::set<std::string> out;
  for (const auto& file : tls.pinned_partner_cas) {
    for (auto& fingerprint : identity::sha256_fingerprints_of_pem_file(file)) {
      out.insert(std::move(fingerprint));
    }
  }
  return out;
}

// The partner listener's rule: the live trust state decides (chain and CRL were checked before).
// A certificate whose chain ends at an anchor of partners known by pin only names a partner by
// its pinned fingerprint alone.
net::authentication authenticate_partner(const identity::trust_store& trust,
                                         const std::set<std::string>& pinned_only, X509* cert,
                                         X509* anchor) {
  auto facts = identity::facts_of(cert);
  if (!pinned_only.empty()) {
    facts.names_by_san =
        anchor != nullptr && !pinned_only.contains(identity::facts_of(anchor).sha256_fingerprint);
  }
  const auto decision = trust.identify(facts);
  net::authentication out{{}, {}, facts.sha256_fingerprint, facts.serial_hex};
  if (decision.refusal != identity::identity_refusal::none) {
    out.refusal = std::string(identity::to_string(decision.refusal));
  } else {
    out.principal = decision.partner_id;
  }
  return out;
}

// The admin listener's rule: exactly one urn:mxgw:admin:<name> and no partner identity.
net::authentication authenticate_admin(X509* cert) {
  const auto facts = identity::facts_of(cert);
  net::authentication out{{}, {}, facts.sha256_fingerprint, facts.serial_hex};
  std::string name;
  if (auto refusal = identity::admin_refusal(facts, name); !refusal.empty()) {
    out.refusal = std::string(refusal);
  } else {
    out.principal = std::move(name);
  }
  return out;
}

// The feeds to poll in `state`: those of partners that are enabled and not held for a change
// this instance could not apply (docs/admin.md, "State"): the trust state, not the files, says.
std::vector<feed::feed_source> feed_sources(const identity::trust_state& state) {
  std::vector<feed::feed_source> out;
  for (const auto* p : state.partners.all()) {
    if (p->feed && p->enabled && !state.held_for_unapplied_change(p->id)) {
      out.push_back({p->id, *p->feed, p->carry_unmapped});
    }
  }
  return out;
}

}  // namespace

delivery::client_identity partner_client_identity(const config::gateway_config& config) {
  const auto& d = config.delivery;
  // Anchors and CRLs both unset (in code) or both defaulted by the parser: the listener's.
  const bool listener_anchors = d.partner_server_ca.empty() && d.partner_server_crl.empty();
  std::vector<std::filesystem::path> listener_cas = config.listener.tls.partner_cas;
  listener_cas.insert(listener_cas.end(), config.listener.tls.pinned_partner_cas.begin(),
                      config.listener.tls.pinned_partner_cas.end());
  return {d.client_certificate.empty() ? config.listener.tls.certificate : d.client_certificate,
          d.client_key.empty() ? config.listener.tls.private_key : d.client_key,
          d.partner_server_ca.empty() ? listener_cas : d.partner_server_ca,
          listener_anchors ? config.listener.tls.crls : d.partner_server_crl};
}

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

gateway_instance::gateway_instance(const config::gateway_config& config, instance_options options)
    : parts_(std::make_unique<parts>()) {
  std::vector<config::config_problem> problems;
  for (const auto& clash : adapters::registry_problems()) {
    problems.push_back({"(build)", "", "adapter '" + clash + "' is registered twice"});
  }
  // Tables, schemas, transliteration rules and mapping files first: config-only partners'
  // adapters must be registered before partners.json names them.
  parts_->config = config;
  auto translation = load_translation_set(config, problems);
  if (problems.empty()) {
    adapters::mapped::install(*translation.mappings, problems);
  }
  const auto& checker = translation.checker;
  const auto formats = adapters::adapter_ids();
  auto partners = std::make_shared<identity::partner_registry>(
      identity::partner_registry::load(config.partners_file, problems, &formats));
  parts_->partners = partners;
  auto rules = std::make_shared<pipeline::routing_rules>();
  std::string routing_document;
  if (!config.routing_file.empty()) {
    *rules =
        pipeline::routing_rules::load(config.routing_file, problems, *partners, checker->tables());
    routing_document = read_text(config.routing_file);
  }
  if (!problems.empty()) {
    throw std::runtime_error("configuration problems:\n" + format_problems(problems));
  }
  const auto keys = load_store_keys(config.store);
  const auto match_key = load_match_key(config.persons);
  if (!match_key) {
    log::info({.event = "persons.matching_off",
               .detail = "no persons.match_key: no candidates of the same person are kept"});
  }
  const auto message_id_key = load_message_id_key(config.message_ids);
  if (!message_id_key) {
    log::warn({.event = "message_ids.unkeyed",
               .detail = "no message_ids.key: the ids of partners' messages can be computed "
                         "ahead by anyone (docs/security.md)"});
  }
  if (!keys) {
    log::warn({.event = "store.encryption_off",
               .detail = "no store.encryption keys: bodies are stored in clear text"});
  }
  parts_->store = open_configured_store(config.store);  // store.kind: sqlite or postgres
  if (keys) {
    parts_->store = store::encrypt_at_rest(std::move(parts_->store), keys);
  }
  parts_->retention = std::make_unique<store::retention_sweeper>(
      parts_->store,
      store::retention_settings{
          .delivered_after = std::chrono::hours(24) * config.store.retention_delivered_days,
          .dead_after = std::chrono::hours(24) * config.store.retention_dead_days,
          .interval = std::chrono::seconds(config.store.retention_sweep_interval_s),
          .actor = "gateway:" + config.delivery.instance,
          .clock = {}});
  // Started with the listeners (run()); a sweep on demand works from here on.
  parts_->deadlines = std::make_unique<report::deadline_watch>(
      parts_->store,
      report::deadline_settings{.interval = std::chrono::seconds(config.deadlines.sweep_interval_s),
                                .lookback = std::chrono::hours(24) * config.deadlines.lookback_days,
                                .held_after = std::chrono::hours(config.deadlines.held_after_hours),
                                .actor = "gateway:" + config.delivery.instance,
                                .clock = options.clock});
  // Audit checkpoints are signed with the listener's key; its certificate identifies the signer.
  try {
    parts_->checkpoints = std::make_unique<audit::checkpointer>(
        parts_->store,
        audit::checkpoint_signer::load(config.listener.tls.certificate,
                                       config.listener.tls.private_key),
        audit::checkpoint_options{
            .every_entries = config.audit.checkpoint_every_entries,
            .interval = std::chrono::seconds(config.audit.checkpoint_interval_s)});
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("audit checkpoints: ") + e.what());
  }
  // The files are the seed (with an export's rotation cut-offs and certificates in their
  // overlap); the store holds every administrative change made since.
  auto seed = std::make_shared<identity::trust_state>(identity::seed_trust_state(*partners));
  parts_->trust = std::make_shared<identity::trust_store>(seed, options.clock);
  auto live_rules = std::make_shared<live<pipeline::routing_rules>>(rules);
  parts_->state = std::make_shared<admin::state_manager>(
      parts_->trust, live_rules, std::move(routing_document), parts_->store,
      std::shared_ptr<const pipeline::code_tables>(checker, &checker->tables()), formats);
  try {
    parts_->state->load_persisted();
  } catch (const std::exception& e) {
    parts_->store->stop();
    throw std::runtime_error(std::string("store: ") + e.what());
  }
  if (config.delivery.enabled) {
    const auto& d = config.delivery;
    delivery::delivery_options delivery_options{
        .identity = partner_client_identity(config),
        .owner = d.instance,
        .lease = std::chrono::milliseconds(d.lease_ms),
        .poll_interval = std::chrono::milliseconds(d.poll_interval_ms),
        .max_in_flight = d.max_in_flight,
        .breaker_failures = static_cast<int>(d.breaker_failures),
        .breaker_open = std::chrono::milliseconds(d.breaker_open_ms),
        .durations = parts_->counters};
    // The partners that can receive, as the live trust state has them now (admin changes).
    delivery_options.current_recipients = [trust = parts_->trust] {
      const auto state = trust->current();  // held while its partners are read
      std::vector<std::string> ids;
      for (const auto* p : state->partners.all()) {
        if (!p->endpoint.empty()) {
          ids.push_back(p->id);
        }
      }
      return ids;
    };
    for (const auto* p : parts_->trust->current()->partners.all()) {
      if (!p->endpoint.empty()) {
        delivery_options.recipients.push_back(p->id);
      }
    }
    // Each look-up reads the trust snapshot in force (partners change while the gateway runs).
    auto lookup =
        [trust = parts_->trust](std::string_view id) -> std::optional<delivery::recipient_info> {
      const auto state = trust->current();
      const auto* p = state->partners.find(id);
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
          .concurrency = static_cast<std::size_t>(std::max(1, p->delivery.concurrency)),
          .agreements = p->agreements};
    };
    parts_->delivery = std::make_unique<delivery::delivery_service>(delivery_options, parts_->store,
                                                                    std::move(lookup));
    // A waker, not the service: the store outlives the service (and calls it from its writer
    // thread), and a waker does nothing once the service is stopped or gone.
    parts_->store->on_deliveries_due(parts_->delivery->waker());
  }
  auto api = std::make_shared<http::partner_api>(
      checker, parts_->trust, live_rules, parts_->store,
      http::api_limits{.max_json_depth = config.listener.limits.max_json_depth,
                       .audit_refusals_per_minute = config.audit.refusals_per_minute},
      translation.transliterators, parts_->counters, translation.provenance_id);
  api->match_persons(match_key);
  api->derive_ids_with(message_id_key);
  parts_->api = api;
  parts_->api_translation_id = translation.provenance_id;
  // What this instance translates with, on the record before any message names it.
  audit_reload("translation.loaded", {},
               {{"translation", translation.provenance_id}, {"set", translation.provenance}});
  auto counters = parts_->counters;
  auto refusal_counter = [counters](std::string listener) {
    return [counters, listener](std::string_view reason) {
      counters->add("mxgw_tls_handshakes_refused_total", "listener=\"" + listener + "\",reason=\"" +
                                                             prometheus_label_value(reason) + "\"");
    };
  };
  net::listener_role partner_role{
      .name = "partner",
      .authenticate =
          [trust = parts_->trust, pinned_only = pinned_only_anchors(config.listener.tls)](
              X509* cert, X509* anchor) {
            return authenticate_partner(*trust, pinned_only, cert, anchor);
          },
      .trust_version = [trust = parts_->trust] { return trust->version(); },
      .handle =
          [api](const http::request& req, std::function<void(http::response)> done) {
            api->handle(req, std::move(done));
          },
      .on_handshake_refused = refusal_counter("partner")};
  parts_->server = std::make_unique<net::server>(config.listener, config.threads, partner_role);
  // Notice feeds are polled with the gateway's client identity; what they bring is accepted
  // through the partner API's own path, as the feed partner. Which feeds run follows the live
  // trust state (administrative changes, at start and while running); a poller exists when a
  // partner has a feed, enabled or not.
  parts_->feed_checker = std::make_shared<live<pipeline::canonical_checker>>(checker);
  {
    const auto state = parts_->trust->current();
    const auto all = state->partners.all();
    if (std::any_of(all.begin(), all.end(), [](const auto* p) { return p->feed.has_value(); })) {
      feed::poller_options feed_options{
          .identity = partner_client_identity(config),
          .max_withdrawals_per_sweep = config.feed.max_withdrawals_per_sweep,
          .metrics = parts_->counters,
          .message_id_key = message_id_key};
      auto accept = [api](std::string sender, std::string canonical,
                          std::optional<std::vector<std::string>> only_to, feed::accept_done done) {
        api->accept_canonical(std::move(sender), std::move(canonical), std::move(only_to),
                              [done = std::move(done)](http::response r) { done(r.status); });
      };
      // The tables in force when a notice is decoded: a reload's from then on.
      auto tables = [checkers = parts_->feed_checker] {
        auto in_force = checkers->get();
        return std::shared_ptr<const pipeline::code_tables>(in_force, &in_force->tables());
      };
      parts_->feeds =
          std::make_unique<feed::feed_poller>(std::move(feed_options), feed_sources(*state),
                                              parts_->store, std::move(tables), std::move(accept));
    }
  }
  // A change of trust closes the open connections it no longer allows: each connection's own
  // certificate is decided on again by the handshake's rule (revoked or retired certificate,
  // disabled partner, a pin removed, a certificate now naming another partner). The poller's
  // ticks change no version (that sweep then costs a comparison a connection) and close those
  // whose overlap ran out.
  parts_->state->on_trust_change(
      [server = parts_->server.get(), trust = parts_->trust, parts = parts_.get()](
          const identity::trust_state& before, const identity::trust_state& after) {
        auto closed = server->close_connections_no_longer_accepted();
        const auto now = trust->now();
        closed += server->close_connections([&](const net::connected_peer& peer) {
          return !after.still_trusted(peer.principal, peer.fingerprint, now);
        });
        if (closed > 0) {
          log::info({.event = "tls.connections_closed",
                     .reason = "trust-changed",
                     .detail = std::to_string(closed) + " connections"});
        }
        // A partner disabled, enabled, held or its feed changed: its feed stops, starts or
        // restarts. The poller's ticks (the same snapshot twice) change nothing. Read under the
        // lock, so that of two changes told at once the newer state is the one left in force.
        if (&before != &after) {
          std::lock_guard lock(parts->feed_update_mutex);
          const auto state = trust->current();
          if (parts->feeds) {
            parts->feeds->update(feed_sources(*state));
          } else if (!feed_sources(*state).empty()) {
            log::warn({.event = "feed.not_started",
                       .reason = "restart-needed",
                       .detail = "a partner has a feed now, but none had when the gateway "
                                 "started: the feed is polled after a restart"});
          }
        }
      });
  if (config.admin.enabled) {
    admin::admin_api_options admin_options{
        .signing_dir = config.admin.signing_dir,
        .default_overlap = std::chrono::hours(24 * config.admin.default_overlap_days),
        .default_validity = std::chrono::hours(24 * config.admin.default_validity_days),
        .max_json_depth = 32,
        .persons_matching = match_key != nullptr,
        // The admin listener lives inside this instance: `this` outlives its requests.
        .reload = [this](const std::string& actor) { return reload(actor); },
        .delivery_lease = config.delivery.enabled
                              ? std::chrono::milliseconds(config.delivery.lease_ms)
                              : std::chrono::milliseconds(0)};
    auto* delivery_ptr = parts_->delivery.get();
    auto* partner_server = parts_->server.get();
    auto* deadlines = parts_->deadlines.get();
    auto extra = [delivery_ptr, partner_server, deadlines] {
      std::string out;
      out +=
          "# HELP mxgw_verifications_overdue Verification requests past their deadline without "
          "an answer, at the last look.\n# TYPE mxgw_verifications_overdue gauge\n"
          "mxgw_verifications_overdue " +
          std::to_string(deadlines->overdue()) + "\n";
      out +=
          "# HELP mxgw_release_overdue Copies held for four-eyes release longer than "
          "deadlines.held_after_hours, at the last look.\n# TYPE mxgw_release_overdue gauge\n"
          "mxgw_release_overdue " +
          std::to_string(deadlines->held_overdue()) + "\n";
      if (delivery_ptr != nullptr) {
        const auto d = delivery_ptr->counters();
        out += "# TYPE mxgw_delivery_attempts_total counter\nmxgw_delivery_attempts_total " +
               std::to_string(d.attempts) + "\n";
        out += "# TYPE mxgw_delivered_total counter\nmxgw_delivered_total " +
               std::to_string(d.delivered) + "\n";
        out += "# TYPE mxgw_delivery_retries_total counter\nmxgw_delivery_retries_total " +
               std::to_string(d.retries) + "\n";
        out += "# TYPE mxgw_delivery_dead_total counter\nmxgw_delivery_dead_total " +
               std::to_string(d.dead) + "\n";
      }
      const auto l = partner_server->counters();
      out += "# TYPE mxgw_partner_requests_total counter\nmxgw_partner_requests_total " +
             std::to_string(l.requests) + "\n";
      out += "# TYPE mxgw_partner_timeouts_total counter\nmxgw_partner_timeouts_total " +
             std::to_string(l.timeouts) + "\n";
      out +=
          "# TYPE mxgw_partner_connections_refused_total counter\n"
          "mxgw_partner_connections_refused_total " +
          std::to_string(l.connections_refused) + "\n";
      out +=
          "# HELP mxgw_partner_peers_no_longer_accepted_total Requests refused on a kept-alive "
          "connection whose certificate expired, was revoked by a CRL in force, or no longer "
          "identifies its partner.\n"
          "# TYPE mxgw_partner_peers_no_longer_accepted_total counter\n"
          "mxgw_partner_peers_no_longer_accepted_total " +
          std::to_string(l.peers_no_longer_accepted) + "\n";
      out +=
          "# TYPE mxgw_partner_connection_lifetimes_ended_total counter\n"
          "mxgw_partner_connection_lifetimes_ended_total " +
          std::to_string(l.lifetimes_ended) + "\n";
      return out;
    };
    auto admin = std::make_shared<admin::admin_api>(parts_->state, parts_->store, admin_options,
                                                    parts_->counters, extra);
    net::listener_role admin_role{
        .name = "admin",
        .authenticate = [](X509* cert, X509*) { return authenticate_admin(cert); },
        .handle =
            [admin](const http::request& req, std::function<void(http::response)> done) {
              admin->handle(req, std::move(done));
            },
        .on_handshake_refused = refusal_counter("admin")};
    parts_->admin_server = std::make_unique<net::server>(config.admin.listener, 1, admin_role);
  }
  parts_->state->start_polling(std::chrono::milliseconds(config.admin.state_poll_ms));
  if (parts_->delivery) {
    parts_->delivery->start();
  }
  parts_->checkpoints->start();
  if (parts_->feeds) {
    parts_->feeds->start();
  }
  log::info({.event = "gateway.started",
             .detail = "listening on " + config.listener.address + ":" +
                       std::to_string(parts_->server->port()) + " with " +
                       std::to_string(parts_->trust->current()->partners.size()) + " partners" +
                       (parts_->admin_server ? ", admin on " + config.admin.listener.address + ":" +
                                                   std::to_string(parts_->admin_server->port())
                                             : std::string())});
}

gateway_instance::~gateway_instance() {
  stop();
  parts_->retention.reset();
  parts_->deadlines.reset();
  if (parts_->admin_thread.joinable()) {
    parts_->admin_thread.join();
  }
  parts_->state->stop();
  parts_->admin_server.reset();
  if (parts_->feeds) {
    parts_->feeds->stop();
  }
  parts_->server.reset();
  if (parts_->delivery) {
    parts_->store->on_deliveries_due({});  // the store may commit queued writes after this
    parts_->delivery->stop();
  }
  parts_->checkpoints->stop();
  parts_->store->stop();
}

std::uint16_t gateway_instance::port() const {
  return parts_->server->port();
}

std::uint16_t gateway_instance::admin_port() const {
  return parts_->admin_server ? parts_->admin_server->port() : 0;
}

void gateway_instance::run() {
  parts_->deadlines->start();
  if (parts_->admin_server) {
    parts_->admin_thread = std::thread([server = parts_->admin_server.get()] { server->run(); });
  }
  parts_->server->run();
  if (parts_->feeds) {
    parts_->feeds->stop();  // nothing new is accepted from the feeds after this
  }
  if (parts_->admin_server) {
    parts_->admin_server->stop();
    parts_->admin_thread.join();
  }
  parts_->state->stop();
  // Every in-flight request has been answered; let deliveries in flight finish (bounded by their
  // timeouts), then flush what the store still holds. The store no longer wakes the workers: what
  // it commits from now on is delivered by the next start.
  if (parts_->delivery) {
    parts_->store->on_deliveries_due({});
    parts_->delivery->stop();
  }
  parts_->retention->stop();
  parts_->deadlines->stop();
  parts_->checkpoints->stop();  // the last checkpoint vouches for everything written
  parts_->store->stop();
  log::info({.event = "gateway.stopped"});
}

void gateway_instance::stop() {
  parts_->server->stop();
  if (parts_->admin_server) {
    parts_->admin_server->stop();
  }
}

delivery::delivery_service* gateway_instance::delivery() const {
  return parts_->delivery.get();
}

feed::feed_poller* gateway_instance::feeds() const {
  return parts_->feeds.get();
}

report::deadline_watch& gateway_instance::deadlines() const {
  return *parts_->deadlines;
}

void gateway_instance::audit_reload(std::string event, const std::string& actor,
                                    std::vector<std::pair<std::string, std::string>> details) {
  parts_->store->append_audit(
      {{.event = std::move(event),
        .actor = actor.empty() ? "gateway:" + parts_->config.delivery.instance : actor,
        .details = std::move(details)}},
      [](bool ok) {
        if (!ok) {
          log::error({.event = "audit.append_failed", .reason = "store"});
        }
      });
}

std::vector<config::config_problem> gateway_instance::reload(const std::string& actor) {
  std::lock_guard lock(parts_->reload_mutex);
  const auto& config = parts_->config;
  std::vector<config::config_problem> problems;
  auto next = load_translation_set(config, problems);
  // The mapping files must still be the ones partners.json was checked against.
  for (const auto& id : next.mappings->ids()) {
    if (!adapters::mapped::installed(id)) {
      problems.push_back({next.mappings->find(id)->file, "/id",
                          "adds adapter '" + id + "'; a new mapping file needs a restart"});
    }
  }
  for (const auto& id : adapters::adapter_ids()) {
    if (adapters::mapped::installed(id) && !next.mappings->find(id)) {
      problems.push_back(
          {config.adapters_dir.string(), "",
           "no longer has a mapping file for adapter '" + id + "'; removing one needs a restart"});
    }
  }
  // The routing rules stay; they must still agree with the new tables.
  if (!config.routing_file.empty() && next.checker) {
    pipeline::routing_rules::load(config.routing_file, problems, *parts_->partners,
                                  next.checker->tables());
  }
  // The CRL files read anew for each listener; put in force only when nothing else is refused.
  std::vector<std::string> stale;
  const auto outbound_crls = partner_client_identity(config).server_crls;
  const auto partner_crls =
      parts_->server ? parts_->server->read_crls(config.listener.tls.crls, problems, stale)
                     : net::verify_store_update{};
  const auto delivery_crls = parts_->delivery
                                 ? parts_->delivery->read_crls(outbound_crls, problems, stale)
                                 : delivery::client_crls{};
  const auto feed_crls = parts_->feeds ? parts_->feeds->read_crls(outbound_crls, problems, stale)
                                       : delivery::client_crls{};
  const auto admin_crls =
      parts_->admin_server
          ? parts_->admin_server->read_crls(config.admin.listener.tls.crls, problems, stale)
          : net::verify_store_update{};
  if (problems.empty()) {
    adapters::mapped::install(*next.mappings, problems);
  }
  if (!problems.empty()) {
    // File and entry only: reasons can quote configuration text; `mxgw config check` and the
    // returned problems carry them.
    for (const auto& p : problems) {
      log::warn({.event = "config.reload_refused",
                 .reason = "config-problem",
                 .detail = p.file + (p.field.empty() ? "" : ": " + p.field)});
    }
    audit_reload("config.reload_refused", actor, {{"problems", std::to_string(problems.size())}});
    return problems;
  }
  // Recorded before any message translated with the new set can name it (one writer queue).
  if (next.provenance_id != parts_->api_translation_id) {
    audit_reload("translation.loaded", actor,
                 {{"translation", next.provenance_id}, {"set", next.provenance}});
  }
  parts_->api_translation_id = next.provenance_id;
  parts_->api->replace_translation(next.checker, next.transliterators, next.provenance_id);
  parts_->feed_checker->set(next.checker);  // the feeds decode their next notice with these
  std::size_t closed = 0;
  if (parts_->server) {
    closed += parts_->server->put_in_force(partner_crls);
  }
  if (parts_->admin_server) {
    closed += parts_->admin_server->put_in_force(admin_crls);
  }
  if (parts_->delivery) {
    parts_->delivery->put_in_force(delivery_crls);
  }
  if (parts_->feeds) {
    parts_->feeds->put_in_force(feed_crls);
  }
  // An operator's act that changes what is accepted and who is served: on the record.
  audit_reload("config.reloaded", actor,
               {{"translation", next.provenance_id},
                {"codeTables", std::to_string(next.checker->tables().names().size())},
                {"mappingFiles", std::to_string(next.mappings->size())},
                {"crls", std::to_string(partner_crls.crls + admin_crls.crls + delivery_crls.crls)},
                {"connectionsClosed", std::to_string(closed)}});
  log::info({.event = "config.reloaded",
             .detail = std::to_string(next.checker->tables().names().size()) + " code tables, " +
                       std::to_string(next.mappings->size()) + " mapping files, " +
                       std::to_string(partner_crls.crls + admin_crls.crls + delivery_crls.crls) +
                       " CRLs; " + std::to_string(closed) +
                       " open connections refused by the new CRLs closed"});
  return problems;
}

}  // namespace mxgw::cli
