// A message_store that passes every call on to another store. A test that needs a store to
// misbehave in one way (a look-up answered as it stood a moment earlier, a save that fails, a read
// held back) derives from it and overrides only those calls, calling the base for the rest.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/store/message_store.hpp"

namespace mxgw::test {

/// Forwards every call of store::message_store, arguments and handler unchanged, to `inner`.
/// The handlers run wherever the inner store runs them (its own threads).
class forwarding_store : public store::message_store {
 public:
  /// Precondition: `inner` is not null.
  explicit forwarding_store(std::shared_ptr<store::message_store> inner)
      : inner_(std::move(inner)) {}

  void accept(store::message_record record, accept_handler handler) override {
    inner_->accept(std::move(record), std::move(handler));
  }
  void find(std::string id, find_handler handler) override {
    inner_->find(std::move(id), std::move(handler));
  }
  void read_body(std::string id, body_handler handler) override {
    inner_->read_body(std::move(id), std::move(handler));
  }
  void claim_due(std::string owner, std::size_t max_jobs, std::chrono::milliseconds lease,
                 std::vector<store::recipient_cap> caps, claim_handler handler) override {
    inner_->claim_due(std::move(owner), max_jobs, lease, std::move(caps), std::move(handler));
  }
  void report(store::attempt_report report, report_handler handler) override {
    inner_->report(std::move(report), std::move(handler));
  }
  void replay(std::string message_id, std::string recipient, std::vector<audit::audit_record> audit,
              replay_handler handler) override {
    inner_->replay(std::move(message_id), std::move(recipient), std::move(audit),
                   std::move(handler));
  }
  void discard(std::string message_id, std::string recipient, std::string reason,
               std::vector<audit::audit_record> audit, replay_handler handler) override {
    inner_->discard(std::move(message_id), std::move(recipient), std::move(reason),
                    std::move(audit), std::move(handler));
  }
  void purge(store::retention_cut cut, purge_handler handler) override {
    inner_->purge(std::move(cut), std::move(handler));
  }
  void transfer_register(std::string from_month, std::string to_month,
                         register_handler handler) override {
    inner_->transfer_register(std::move(from_month), std::move(to_month), std::move(handler));
  }
  void read_facts(std::string since, std::string after, std::size_t limit,
                  facts_handler handler) override {
    inner_->read_facts(std::move(since), std::move(after), limit, std::move(handler));
  }
  void rewrite_values(std::string after_id, std::size_t max_messages,
                      store::value_rewriter rewriter, rewrite_handler handler) override {
    inner_->rewrite_values(std::move(after_id), max_messages, std::move(rewriter),
                           std::move(handler));
  }
  void find_person_matches(std::string message_id, std::size_t limit,
                           matches_handler handler) override {
    inner_->find_person_matches(std::move(message_id), limit, std::move(handler));
  }
  void rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                     person_rekey_handler handler) override {
    inner_->rekey_persons(std::move(after_id), max_messages, std::move(keyer), std::move(handler));
  }
  void list_held(std::size_t limit, held_handler handler) override {
    inner_->list_held(limit, std::move(handler));
  }
  void read_held(std::string message_id, std::string recipient,
                 held_copy_handler handler) override {
    inner_->read_held(std::move(message_id), std::move(recipient), std::move(handler));
  }
  void decide_release(store::release_request request, release_handler handler) override {
    inner_->decide_release(std::move(request), std::move(handler));
  }
  void queue_stats(queue_handler handler) override { inner_->queue_stats(std::move(handler)); }
  void list_dead(std::size_t limit, dead_handler handler) override {
    inner_->list_dead(limit, std::move(handler));
  }
  void append_audit(std::vector<audit::audit_record> records, report_handler handler) override {
    inner_->append_audit(std::move(records), std::move(handler));
  }
  void read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) override {
    inner_->read_audit(after_seq, limit, std::move(handler));
  }
  void audit_head(head_handler handler) override { inner_->audit_head(std::move(handler)); }
  void add_checkpoint(audit::checkpoint checkpoint, report_handler handler) override {
    inner_->add_checkpoint(std::move(checkpoint), std::move(handler));
  }
  void read_checkpoints(checkpoints_handler handler) override {
    inner_->read_checkpoints(std::move(handler));
  }
  void put_states(std::vector<store::state_put> puts, std::vector<audit::audit_record> audit,
                  puts_handler handler) override {
    inner_->put_states(std::move(puts), std::move(audit), std::move(handler));
  }
  void list_state(std::string kind, std::int64_t after_version, state_handler handler) override {
    inner_->list_state(std::move(kind), after_version, std::move(handler));
  }
  void on_deliveries_due(std::function<void()> callback) override {
    inner_->on_deliveries_due(std::move(callback));
  }
  void approvals_when_held(std::function<std::size_t()> source) override {
    inner_->approvals_when_held(std::move(source));
  }
  bool healthy() const override { return inner_->healthy(); }
  void stop() override { inner_->stop(); }

 private:
  std::shared_ptr<store::message_store> inner_;
};

}  // namespace mxgw::test
