// Administrative state while the gateway runs: the configuration files are the seed, the store
// holds every change since (kinds "partner", "certificate", "cutoff", "routing"). Changes are
// persisted with their audit records, then applied live by publishing new immutable snapshots; a
// poller applies the changes other instances sharing the store made.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/audit/audit.hpp"
#include "gateway/common/live.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::pipeline {
class routing_rules;
class code_tables;
}  // namespace mxgw::pipeline

namespace mxgw::admin {

inline constexpr std::string_view kind_partner = "partner";
inline constexpr std::string_view kind_certificate = "certificate";
inline constexpr std::string_view kind_routing = "routing";
/// A partner's rotation cut-offs (identity::partner_cutoffs), keyed by the partner id.
inline constexpr std::string_view kind_cutoff = "cutoff";
inline constexpr std::string_view routing_key = "rules";

/// The routing rules in force and the document they were read from (for GET and export).
struct routing_state {
  std::shared_ptr<const pipeline::routing_rules> rules;
  std::string document;  ///< the routing file's JSON text ("" when there is none)
};

class state_manager {
 public:
  /// Told after each applied change, with the snapshot before and after.
  using trust_listener =
      std::function<void(const identity::trust_state& before, const identity::trust_state& after)>;

  state_manager(std::shared_ptr<identity::trust_store> trust,
                std::shared_ptr<live<pipeline::routing_rules>> rules, std::string routing_document,
                std::shared_ptr<store::message_store> store,
                std::shared_ptr<const pipeline::code_tables> tables,
                std::vector<std::string> adapters);
  ~state_manager();
  state_manager(const state_manager&) = delete;
  state_manager& operator=(const state_manager&) = delete;

  /// Reads every persisted change and applies it over the seed (blocking; at start). First the
  /// seed's partner definitions give up their rotationCutoffs and retiringSha256 (an export's)
  /// to the snapshot, as identity::seed_trust_state does. Throws std::runtime_error when the
  /// store cannot be read.
  void load_persisted();

  /// Polls list_state(after the newest version the poller has read) every `interval` on a thread
  /// of its own and applies what other instances changed; also calls the listener at each tick so
  /// connections of certificates whose overlap ended are closed. Only reads of the store (this
  /// poller and load_persisted) move that position: a change made through this instance does
  /// not, so another instance's change committed before it is never skipped.
  void start_polling(std::chrono::milliseconds interval);
  void stop();

  /// Set before start_polling and before the first change.
  void on_trust_change(trust_listener listener);

  /// Persists `item` (optimistic concurrency with `expected_version`), with `audit` in the same
  /// transaction, then applies it. `done(outcome, version)` runs on a store thread.
  void change(store::state_item item, std::optional<std::int64_t> expected_version,
              std::vector<audit::audit_record> audit,
              std::function<void(store::put_outcome, std::int64_t)> done);

  /// Persists several items that belong together (a rotation's new record, cut-off and retiring
  /// records) with all of `audit` in one transaction (store::message_store::put_states): a put
  /// whose expected version no longer matches stores none of them (conflict), nor does a store
  /// failure (failed). Once stored, applies them all at once (one new snapshot).
  /// `done(outcome, versions)` runs on a store thread, with the versions put_states gave.
  void change_all(std::vector<store::state_put> puts, std::vector<audit::audit_record> audit,
                  std::function<void(store::put_outcome, std::vector<std::int64_t>)> done);

  /// The version of item (kind, key) as last applied; 0 when it is only in the seed files.
  std::int64_t version_of(std::string_view kind, std::string_view key) const;

  std::shared_ptr<const identity::trust_state> trust() const { return trust_->current(); }
  const identity::trust_store& trust_store() const { return *trust_; }
  routing_state routing() const;
  const pipeline::code_tables& tables() const { return *tables_; }
  const std::vector<std::string>& adapters() const { return adapters_; }

  /// Applies items as if read from the store (in version order; versions no newer than the one
  /// already applied for the same item are skipped, so applying an item twice is a no-op).
  /// Does not move the poller's position. A partner, certificate or cut-off item that cannot be
  /// applied fails closed: logged as an error (`admin.state_unapplied`), listed in the
  /// snapshot's unapplied_changes, its partner refused and disabled (partner), its partner refused
  /// (cut-off) or its fingerprint refused as revoked (certificate), until a change of the same
  /// item that can be applied arrives. A routing item that cannot be applied is logged and
  /// skipped (the rules in force stay).
  void apply(const std::vector<store::state_item>& items);

 private:
  void poll_loop(std::chrono::milliseconds interval);
  /// Moves the poller's position to the newest version among `items` (read from the store).
  void advance_polled_version(const std::vector<store::state_item>& items);

  std::shared_ptr<identity::trust_store> trust_;
  std::shared_ptr<live<pipeline::routing_rules>> rules_;
  std::shared_ptr<store::message_store> store_;
  std::shared_ptr<const pipeline::code_tables> tables_;
  std::vector<std::string> adapters_;

  mutable std::mutex mutex_;  // guards the members below; apply() holds it while it builds
  std::string routing_document_;
  std::map<std::pair<std::string, std::string>, std::int64_t, std::less<>> versions_;
  std::int64_t polled_version_ = 0;  ///< every version up to this one was read from the store
  trust_listener listener_;

  std::mutex poll_mutex_;
  std::condition_variable poll_wake_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace mxgw::admin
