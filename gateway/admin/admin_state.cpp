// Administrative state: persist, apply, poll (see admin_state.hpp).
#include "gateway/admin/admin_state.hpp"

#include <future>
#include <stdexcept>

#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/pipeline/routing.hpp"

namespace mxgw::admin {

state_manager::state_manager(std::shared_ptr<identity::trust_store> trust,
                             std::shared_ptr<live<pipeline::routing_rules>> rules,
                             std::string routing_document,
                             std::shared_ptr<store::message_store> store,
                             std::shared_ptr<const pipeline::code_tables> tables,
                             std::vector<std::string> adapters)
    : trust_(std::move(trust)),
      rules_(std::move(rules)),
      store_(std::move(store)),
      tables_(std::move(tables)),
      adapters_(std::move(adapters)),
      routing_document_(std::move(routing_document)) {}

state_manager::~state_manager() {
  stop();
}

void state_manager::on_trust_change(trust_listener listener) {
  std::lock_guard lock(mutex_);
  listener_ = std::move(listener);
}

void state_manager::load_persisted() {
  std::promise<std::pair<std::vector<store::state_item>, bool>> result;
  store_->list_state({}, 0, [&](std::vector<store::state_item> items, bool ok) {
    result.set_value({std::move(items), ok});
  });
  auto [items, ok] = result.get_future().get();
  if (!ok) {
    throw std::runtime_error("the store's administrative state cannot be read");
  }
  apply(items);
  advance_polled_version(items);
  log::info({.event = "admin.state_loaded",
             .detail = std::to_string(items.size()) + " persisted changes applied"});
}

namespace {

// A partner's rotation cut-offs are of kind "cutoff", keyed by the partner id.
bool refuses_partner(std::string_view kind) {
  return kind == kind_partner || kind == kind_cutoff;
}

}  // namespace

void state_manager::apply(const std::vector<store::state_item>& items) {
  std::unique_lock lock(mutex_);
  const auto before = trust_->current();
  auto next = std::make_shared<identity::trust_state>(*before);
  std::shared_ptr<const pipeline::routing_rules> next_rules;
  std::string next_document;
  bool trust_changed = false;
  for (const auto& item : items) {
    auto& known = versions_[{item.kind, item.key}];
    if (item.version != 0 && item.version <= known) {
      continue;  // already applied (our own change read back by the poller, or an older read
                 // racing a newer write): applying it again would change nothing
    }
    const std::string source = "state:" + item.kind + "/" + item.key;
    // A change of a partner or of its certificates that this instance cannot apply must not
    // leave what it changed as it was (that fails open: a partner disabled or a certificate
    // revoked elsewhere would still be served here). What it names is refused instead until a
    // change of the same item that can be applied arrives; its version counts as applied, so
    // that an administrator can replace it from this instance (If-Match).
    auto hold = [&](std::string_view reason) {
      const bool partner_id = identity::is_valid_partner_id(item.key);
      log::error({.event = "admin.state_unapplied",
                  .partner = refuses_partner(item.kind) && partner_id ? item.key : "",
                  .reason = reason,
                  .detail = source + ": refused until a change that can be applied"});
      next->unapplied_changes[{item.kind, item.key}] = std::string(reason);
      if (item.kind == kind_partner) {
        // Disabled for every part of the gateway (identity, routing, delivery).
        if (const auto* old = next->partners.find(item.key); old != nullptr && old->enabled) {
          identity::partner disabled = *old;
          disabled.enabled = false;
          next->partners.put(std::move(disabled));
        }
      } else if (item.kind == kind_certificate) {
        // The fingerprint is refused as if revoked (a record this instance cannot read may be
        // a revocation).
        auto& record = next->certificates[item.key];
        record.fingerprint = item.key;
        record.state = identity::certificate_state::revoked;
        record.reason = "unapplied-change";
        if (record.source.empty()) {
          record.source = "unapplied";
        }
      }
      trust_changed = true;
      known = item.version;
    };
    if (item.kind == kind_partner) {
      if (item.value.empty()) {
        hold("partner-deleted");  // partners are disabled, never deleted
        continue;
      }
      rapidjson::Document doc;
      std::vector<identity::config_problem> problems;
      std::optional<identity::partner> p;
      if (!json::parse_untrusted(item.value, doc)) {
        p = identity::partner_registry::parse_partner(doc, "", problems, source, &adapters_);
      }
      if (!p || p->id != item.key) {
        hold("invalid-partner");
        continue;
      }
      if (auto clash = next->partners.put(std::move(*p)); !clash.empty()) {
        hold("pin-conflict");
        continue;
      }
      next->unapplied_changes.erase({item.kind, item.key});
      trust_changed = true;
    } else if (item.kind == kind_certificate) {
      if (item.value.empty()) {
        next->certificates.erase(item.key);
        next->unapplied_changes.erase({item.kind, item.key});
        trust_changed = true;
      } else {
        std::string error;
        auto record = identity::certificate_from_json(item.value, error);
        if (!record || record->fingerprint != item.key) {
          hold("invalid-certificate-record");
          continue;
        }
        next->certificates[record->fingerprint] = std::move(*record);
        next->unapplied_changes.erase({item.kind, item.key});
        trust_changed = true;
      }
    } else if (item.kind == kind_cutoff) {
      std::string error;
      auto cutoffs =
          item.value.empty() ? std::nullopt : identity::cutoffs_from_json(item.value, error);
      if (!cutoffs || cutoffs->partner_id != item.key) {
        hold(item.value.empty() ? "cutoff-deleted" : "invalid-cutoff");
        continue;
      }
      next->cutoffs[item.key] = std::move(*cutoffs);
      next->unapplied_changes.erase({item.kind, item.key});
      trust_changed = true;
    } else if (item.kind == kind_routing && item.key == routing_key) {
      // Rules this instance cannot read are in force elsewhere: routing by the ones they
      // replaced could send a message where they no longer allow, or without the release hold
      // they add. Routing is held (messages are refused with 503) until rules that apply arrive.
      rapidjson::Document doc;
      std::vector<identity::config_problem> problems;
      std::shared_ptr<pipeline::routing_rules> rules;
      if (!item.value.empty() && !json::parse_untrusted(item.value, doc) && doc.IsObject()) {
        rules = std::make_shared<pipeline::routing_rules>(
            pipeline::routing_rules::parse(doc, source, problems, next->partners, *tables_));
      }
      if (!rules || !problems.empty()) {
        const std::string reason = item.value.empty() ? "routing-deleted" : "invalid-routing";
        log::error({.event = "admin.state_unapplied",
                    .reason = reason,
                    .detail = source + ": messages are refused until routing that can be applied"});
        next->unapplied_changes[{item.kind, item.key}] = reason;
        trust_changed = true;
        next_rules =
            std::make_shared<pipeline::routing_rules>(pipeline::routing_rules::held(reason));
        next_document = routing_document_;  // the last document that applied, for reading
        known = item.version;
        continue;
      }
      if (next->unapplied_changes.erase({item.kind, item.key}) > 0) {
        trust_changed = true;
      }
      next_rules = std::move(rules);
      next_document = item.value;
    } else {
      continue;  // kinds other parts own ("feed", ...)
    }
    known = item.version;
  }
  if (trust_changed) {
    trust_->replace(next);
  }
  if (next_rules) {
    rules_->set(next_rules);
    routing_document_ = std::move(next_document);
  }
  auto listener = listener_;
  lock.unlock();
  // Connections of what is no longer trusted are closed outside the lock.
  if (trust_changed && listener) {
    listener(*before, *next);
  }
}

void state_manager::change(store::state_item item, std::optional<std::int64_t> expected_version,
                           std::vector<audit::audit_record> audit,
                           std::function<void(store::put_outcome, std::int64_t)> done) {
  auto copy = item;
  store_->put_state(std::move(item), expected_version, std::move(audit),
                    [this, copy = std::move(copy), done = std::move(done)](
                        store::put_outcome outcome, std::int64_t version) mutable {
                      if (outcome == store::put_outcome::applied) {
                        // Applied here at once; the poller's position is not moved, so another
                        // instance's change with a lower version is still read at its next tick.
                        copy.version = version;
                        apply({copy});
                      }
                      done(outcome, version);
                    });
}

void state_manager::change_all(
    std::vector<store::state_put> puts, std::vector<audit::audit_record> audit,
    std::function<void(store::put_outcome, std::vector<std::int64_t>)> done) {
  std::vector<store::state_item> items;
  items.reserve(puts.size());
  for (const auto& put : puts) {
    items.push_back(put.item);
  }
  store_->put_states(
      std::move(puts), std::move(audit),
      [this, items = std::move(items), done = std::move(done)](
          store::put_outcome outcome, std::vector<std::int64_t> versions) mutable {
        if (outcome == store::put_outcome::applied && versions.size() == items.size()) {
          // All applied here at once, in one snapshot (their versions increase in the order
          // given, as apply() wants them); as for change(), the poller's position is not moved.
          for (std::size_t i = 0; i < items.size(); ++i) {
            items[i].version = versions[i];
          }
          apply(items);
        }
        done(outcome, std::move(versions));
      });
}

void state_manager::advance_polled_version(const std::vector<store::state_item>& items) {
  std::lock_guard lock(mutex_);
  for (const auto& item : items) {
    polled_version_ = std::max(polled_version_, item.version);
  }
}

std::int64_t state_manager::version_of(std::string_view kind, std::string_view key) const {
  std::lock_guard lock(mutex_);
  auto it = versions_.find(std::pair<std::string, std::string>(kind, key));
  return it == versions_.end() ? 0 : it->second;
}

routing_state state_manager::routing() const {
  std::lock_guard lock(mutex_);
  return {rules_->get(), routing_document_};
}

void state_manager::start_polling(std::chrono::milliseconds interval) {
  poller_ = std::thread([this, interval] { poll_loop(interval); });
}

void state_manager::stop() {
  {
    std::lock_guard lock(poll_mutex_);
    stopping_ = true;
  }
  poll_wake_.notify_all();
  if (poller_.joinable()) {
    poller_.join();
  }
}

void state_manager::poll_loop(std::chrono::milliseconds interval) {
  for (;;) {
    {
      std::unique_lock lock(poll_mutex_);
      if (poll_wake_.wait_for(lock, interval, [this] { return stopping_; })) {
        return;
      }
    }
    std::int64_t after = 0;
    {
      std::lock_guard lock(mutex_);
      after = polled_version_;
    }
    std::promise<std::pair<std::vector<store::state_item>, bool>> result;
    store_->list_state({}, after, [&](std::vector<store::state_item> items, bool ok) {
      result.set_value({std::move(items), ok});
    });
    auto [items, ok] = result.get_future().get();
    if (!ok) {
      continue;  // a failed store is reported by /healthz; the next tick tries again
    }
    if (!items.empty()) {
      // Everything up to the newest version read is applied now (this instance's own changes
      // among them are skipped as already applied); the store commits versions in order, so no
      // lower version can appear later.
      apply(items);
      advance_polled_version(items);
    }
    // Overlap windows end with time, not with a change: let the listener close what expired.
    trust_listener listener;
    {
      std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) {
      const auto state = trust_->current();
      listener(*state, *state);
    }
  }
}

}  // namespace mxgw::admin
