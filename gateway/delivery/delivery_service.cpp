// The delivery loop (see delivery_service.hpp). Everything runs on one strand of a dedicated
// io_context, so the listener's threads never wait for partners and the bookkeeping (in-flight
// counts, claiming) needs no locks.
#include "gateway/delivery/delivery_service.hpp"

#include "gateway/common/metrics.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "gateway/common/log.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::delivery {

namespace asio = boost::asio;

namespace {

// What the audit entry of an outcome says: codes only, never the partner's answer body.
struct audit_outcome {
  std::string error;  // empty, or a code: "http-503", "timeout", "circuit-open", ...
  int status = 0;     // the recipient's HTTP status, 0 when there was none
  std::string limit;  // "retry-limits-reached" when that made it dead
  std::string agreement;  // the agreement the copy relies on and its recipient no longer holds
};

// The first agreement the copy relies on that the recipient does not hold now; empty: none.
std::string missing_agreement(const store::delivery_job& job, const recipient_info& info) {
  for (const auto& needed : job.relies_on) {
    if (std::find(info.agreements.begin(), info.agreements.end(), needed) ==
        info.agreements.end()) {
      return needed;
    }
  }
  return {};
}

}  // namespace

struct delivery_service::impl : std::enable_shared_from_this<delivery_service::impl> {
  impl(delivery_options opts, std::shared_ptr<store::message_store> s, lookup l,
       asio::io_context& io)
      : options(std::move(opts)),
        store(std::move(s)),
        recipients(std::move(l)),
        ioc(io),
        strand(asio::make_strand(ioc)),
        timer(strand),
        // Keep as many connections per partner as may be in flight at once, so a partner whose
        // concurrency is above the default pool size is not reconnected (a full handshake)
        // for every delivery beyond it.
        client(ioc, options.identity, std::max<std::size_t>(8, options.max_in_flight)),
        breakers(options.breaker_failures, options.breaker_open),
        rng(options.seed != 0 ? options.seed : std::random_device{}()) {}

  delivery_options options;
  std::shared_ptr<store::message_store> store;
  lookup recipients;
  asio::io_context& ioc;  // the service's (see delivery_service.hpp): it outlives this state
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  partner_client client;
  circuit_breakers breakers;
  std::mt19937_64 rng;
  std::thread thread;

  // Whether stop() has begun, shared with the store's wakers (delivery_service::waker()).
  struct wake_gate {
    std::mutex mutex;
    bool stopped = false;  // under mutex
  };
  std::shared_ptr<wake_gate> gate = std::make_shared<wake_gate>();

  // Posts a look for due work, unless stop() has begun (any thread). Nothing is posted once it
  // has: the loop may no longer run, and a handler left in its queue would hold this state and
  // its store for ever. The state is locked under the gate's mutex, while the service still holds
  // it (stop() comes first in its destructor), so a waker never drops its last reference.
  static void wake(const std::shared_ptr<wake_gate>& gate, const std::weak_ptr<impl>& weak) {
    std::lock_guard lock(gate->mutex);
    if (gate->stopped) {
      return;
    }
    if (auto self = weak.lock()) {
      auto& loop = self->strand;
      asio::post(loop, [self = std::move(self)] { self->pump(); });
    }
  }

  // Strand-only state.
  bool stopping = false;
  bool claiming = false;
  bool claim_again = false;
  std::size_t in_flight = 0;
  std::map<std::string, std::size_t, std::less<>> in_flight_by_partner;

  std::atomic<std::uint64_t> attempts{0}, delivered{0}, retries{0}, dead{0};

  // Looks for due work unless a claim is already under way (then it claims again afterwards).
  void pump() {
    if (stopping) {
      return;
    }
    if (claiming) {
      claim_again = true;
      return;
    }
    const std::size_t free_slots =
        options.max_in_flight > in_flight ? options.max_in_flight - in_flight : 0;
    if (free_slots == 0) {
      return;  // a finishing delivery pumps again
    }
    // What each partner may take now: its concurrency less what it has in flight, nothing while
    // its circuit is open. Partners the workers were not told about are bounded by free_slots.
    std::vector<store::recipient_cap> caps;
    const auto partners =
        options.current_recipients ? options.current_recipients() : options.recipients;
    for (const auto& partner : partners) {
      std::size_t cap = 0;
      if (!breakers.blocked(partner)) {
        auto info = recipients(partner);
        const std::size_t limit = info ? std::max<std::size_t>(1, info->concurrency) : 0;
        auto flying = in_flight_by_partner.find(partner);
        const std::size_t busy = flying == in_flight_by_partner.end() ? 0 : flying->second;
        cap = limit > busy ? limit - busy : 0;
        // Half-open: one copy, the probe. More would be given back untried at once, to wait
        // for a circuit that may close as soon as the probe succeeds.
        if (breakers.state_of(partner) == "half-open") {
          cap = std::min<std::size_t>(cap, 1);
        }
      }
      caps.push_back({partner, cap});
    }
    claiming = true;
    // The lease starts when the claim commits, after this: an attempt that ends by this time plus
    // longest_attempt(lease) ends within its lease.
    const auto claimed_from = std::chrono::steady_clock::now();
    // The claim is not work of the io_context: without the guard, a stop() while it waits in
    // the store's queue lets run() return, the answer is posted to a loop that no longer runs,
    // and the claimed deliveries stay leased to this instance until their lease runs out (two
    // minutes by default, also for the instance that starts next).
    store->claim_due(
        options.owner, free_slots, options.lease, std::move(caps),
        [self = shared_from_this(), free_slots, claimed_from, guard = asio::make_work_guard(ioc)](
            std::vector<store::delivery_job> jobs, bool ok) mutable {
          // The state goes with the posted handler: this one is destroyed on the
          // store's thread after the guard may have let the loop end, and must not
          // hold the last reference.
          auto& loop = self->strand;
          asio::post(loop, [self = std::move(self), jobs = std::move(jobs), ok, free_slots,
                            claimed_from]() mutable {
            self->on_claimed(std::move(jobs), ok, free_slots, claimed_from);
          });
        });
  }

  void on_claimed(std::vector<store::delivery_job> jobs, bool ok, std::size_t asked,
                  std::chrono::steady_clock::time_point claimed_from) {
    claiming = false;
    if (!ok) {
      log::error({.event = "delivery.claim_failed", .reason = "store"});
    }
    if (stopping) {
      // Claimed while stopping: give them back, due at once, uncounted (no attempt was made),
      // so the next instance delivers them without waiting for the lease.
      for (auto& job : jobs) {
        finish(std::move(job), store::attempt_result::retry,
               store::time_point(std::chrono::system_clock::now()), "gateway-stopping", {}, false);
      }
      return;
    }
    const bool full_batch = ok && jobs.size() == asked;
    for (auto& job : jobs) {
      attempt(std::move(job), claimed_from);
    }
    if (claim_again || full_batch) {
      claim_again = false;
      pump();
    }
  }

  void attempt(store::delivery_job job, std::chrono::steady_clock::time_point claimed_from) {
    if (job.expires_at && std::chrono::system_clock::now() >= *job.expires_at) {
      // The source allows no processing after handling.expires: the copy is not sent, and a
      // replay cannot send it either.
      log::warn({.event = "delivery.attempt",
                 .message_id = job.message_id,
                 .partner = job.recipient,
                 .message_type = job.type,
                 .outcome = "dead",
                 .reason = "handling-expired"});
      finish(std::move(job), store::attempt_result::dead, {}, "handling-expired", {}, false,
             {"handling-expired", 0, "handling-expired"});
      return;
    }
    auto info = recipients(job.recipient);
    if (!info || info->endpoint.empty()) {
      // The recipient was removed or lost its endpoint after routing: an operator must act.
      finish(std::move(job), store::attempt_result::dead, {}, "recipient-not-deliverable", {},
             false);
      return;
    }
    if (const auto missing = missing_agreement(job, *info); !missing.empty()) {
      // The copy was rendered for a holder of an agreement (victim data left in it) and the
      // recipient no longer holds it: the copy is not sent, and a replay or a release meets the
      // same check. The log and the audit name the agreement, never what the copy holds.
      log::warn({.event = "delivery.attempt",
                 .message_id = job.message_id,
                 .partner = job.recipient,
                 .message_type = job.type,
                 .outcome = "dead",
                 .reason = "agreement-withdrawn"});
      audit_outcome outcome{"agreement-withdrawn", 0, "agreement-withdrawn"};
      outcome.agreement = missing;
      finish(std::move(job), store::attempt_result::dead, {}, "agreement-withdrawn", {}, false,
             std::move(outcome));
      return;
    }
    if (job.attempt > info->limits.max_attempts) {
      // The last allowed attempt outlived its lease (its worker died, or hung) and the copy was
      // claimed again: the limits are reached all the same. Not sent.
      log::warn({.event = "delivery.attempt",
                 .message_id = job.message_id,
                 .partner = job.recipient,
                 .message_type = job.type,
                 .outcome = "dead",
                 .reason = "attempts-exhausted"});
      finish(std::move(job), store::attempt_result::dead, {}, "attempts-exhausted", {}, false,
             {"attempts-exhausted", 0, "retry-limits-reached"});
      return;
    }
    // The attempt ends within its lease, whatever the partner's timeout: one that outlived it
    // would be claimed and sent again while it still ran, and its late outcome ignored.
    const auto lease_left = std::chrono::duration_cast<std::chrono::milliseconds>(
        claimed_from + longest_attempt(options.lease) - std::chrono::steady_clock::now());
    if (lease_left <= std::chrono::milliseconds(0)) {
      // The claim took the whole lease in the store's queue: give the copy back untried.
      finish(std::move(job), store::attempt_result::retry,
             store::time_point(std::chrono::system_clock::now()), "lease-too-short", {}, false);
      return;
    }
    if (!breakers.allow(job.recipient)) {
      // Circuit open (it opened while the claim waited in the store's queue): give the delivery
      // back untried, due when the circuit may close. A half-open circuit whose probe is out has
      // its time behind it: due at once, and not claimed before the probe's outcome (its cap is
      // 0 meanwhile).
      const auto now = std::chrono::system_clock::now();
      const auto until = breakers.open_until(job.recipient);
      finish(std::move(job), store::attempt_result::retry,
             store::time_point(until && *until > now ? *until : now), "circuit-open", {}, false);
      return;
    }
    ++in_flight;
    ++in_flight_by_partner[job.recipient];
    ++attempts;
    const auto started = std::chrono::steady_clock::now();
    auto endpoint = info->endpoint;
    const auto timeout = std::min(info->timeout, lease_left);
    auto payload = job.payload;
    client.post(job.recipient, endpoint, std::move(payload), info->content_type, timeout,
                [self = shared_from_this(), job = std::move(job), info = *info,
                 started](post_result result) mutable {
                  asio::post(self->strand, [self, job = std::move(job), info = std::move(info),
                                            result = std::move(result), started]() mutable {
                    self->on_result(std::move(job), info, std::move(result), started);
                  });
                });
  }

  void on_result(store::delivery_job job, const recipient_info& info, post_result result,
                 std::chrono::steady_clock::time_point started) {
    --in_flight;
    if (--in_flight_by_partner[job.recipient] == 0) {
      in_flight_by_partner.erase(job.recipient);
    }
    const auto kind = classify_status(result.status);
    breakers.record(job.recipient, kind);
    const double latency =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    const std::string error =
        result.status == 0 ? result.error : "http-" + std::to_string(result.status);
    // One duration per attempt, by recipient (a configured partner id) and outcome.
    const auto observe = [&](std::string_view outcome) {
      if (options.durations) {
        options.durations->observe("mxgw_delivery_duration_seconds",
                                   "partner=\"" + prometheus_label_value(job.recipient) +
                                       "\",outcome=\"" + std::string(outcome) + "\"",
                                   latency / 1000.0);
      }
    };
    log::fields f{.event = "delivery.attempt",
                  .message_id = job.message_id,
                  .partner = job.recipient,
                  .message_type = job.type,
                  .status = result.status,
                  .latency_ms = latency};
    if (kind == failure_kind::none) {
      f.outcome = "delivered";
      if (result.body_cut) {
        f.reason = "receipt-cut";  // over max_post_answer_bytes: delivered all the same
      }
      log::info(f);
      observe("delivered");
      finish(std::move(job), store::attempt_result::delivered, {}, {}, std::move(result.body), true,
             {{}, result.status});
      return;
    }
    if (kind == failure_kind::permanent) {
      // The partner's reason is kept with the dead letter (store), not in the log.
      f.outcome = "dead";
      f.reason = "refused-by-recipient";
      log::warn(f);
      observe("dead");
      // Shown to operators and the sender (dead letters, status): readable UTF-8 whatever the
      // partner sent, cut before a character (Khmer and Lao letters take three bytes each).
      std::string reason = error;
      if (!result.body.empty()) {
        reason += ": " + readable_excerpt(result.body, 400);
      }
      finish(std::move(job), store::attempt_result::dead, {}, reason, {}, true,
             {error, result.status});
      return;
    }
    // max_age counts from when the copy was last put in the queue: a copy held for release
    // (four-eyes) starts its time when administrators released it, and a replayed dead letter
    // when it was replayed (the store keeps both as released_at), not when it was accepted.
    const auto age_base =
        job.released_at ? std::max(job.accepted_at, *job.released_at) : job.accepted_at;
    auto next =
        next_attempt(info.limits, job.attempt, age_base, std::chrono::system_clock::now(), rng);
    f.reason = error;
    if (!next) {
      f.outcome = "dead";
      log::warn(f);
      observe("dead");
      finish(std::move(job), store::attempt_result::dead, {}, error + " (retry limits reached)", {},
             true, {error, result.status, "retry-limits-reached"});
      return;
    }
    f.outcome = "retrying";
    log::info(f);
    observe("retrying");
    finish(std::move(job), store::attempt_result::retry, *next, error, {}, true,
           {error, result.status});
  }

  // `attempted` false: the copy was not sent on this claim (given back untried, or a dead letter
  // decided before sending); the report says so, so that the claim uses up none of its tries and
  // a copy never sent does not count as one that may have reached its recipient. A dead letter is
  // counted as one either way.
  void finish(store::delivery_job job, store::attempt_result result, store::time_point next,
              std::string error, std::string receipt, bool attempted = true,
              audit_outcome outcome = audit_outcome()) {
    if (attempted || result == store::attempt_result::dead) {
      switch (result) {
        case store::attempt_result::delivered: ++delivered; break;
        case store::attempt_result::retry: ++retries; break;
        case store::attempt_result::dead: ++dead; break;
      }
    }
    // The error given to the store may carry the partner's answer; the audit gets the code.
    if (outcome.error.empty() && result != store::attempt_result::delivered) {
      outcome.error = error;
    }
    store::attempt_report report{job.message_id, job.recipient,    options.owner,     result,
                                 next,           std::move(error), std::move(receipt)};
    // The attempt it reports on: every worker of this instance claims as options.owner, so the
    // owner alone does not tell this attempt from a later claim of the same row (its lease ran
    // out while this attempt hung); the store ignores the report once the row moved on.
    report.attempt = job.attempt;
    // A copy given back untried (stopping, open circuit) was no attempt, and keeps every one of
    // its tries; nor was a dead letter decided before sending (expired, recipient gone, agreement
    // withdrawn, attempts exhausted).
    report.attempted = attempted;
    report.audit.push_back(outcome_audit(job, result, next, outcome));
    // Work of the io_context like the claim: a report still waiting in the store when stop()
    // ran would otherwise post its answer to a loop that no longer runs, and that handler would
    // keep this impl (and the loop that holds it) alive forever.
    store->report(std::move(report), [self = shared_from_this(),
                                      guard = asio::make_work_guard(ioc)](bool ok) mutable {
      if (!ok) {
        log::error({.event = "delivery.report_failed", .reason = "store"});
      }
      auto& loop = self->strand;  // the state goes with the handler, as a claim's does
      asio::post(loop, [self = std::move(self)] { self->pump(); });
    });
  }

  audit::audit_record outcome_audit(const store::delivery_job& job, store::attempt_result result,
                                    store::time_point next, const audit_outcome& outcome) const {
    audit::audit_record record{
        .event = result == store::attempt_result::delivered ? "delivery.delivered"
                 : result == store::attempt_result::retry   ? "delivery.retry"
                                                            : "delivery.dead",
        .actor = "gateway:" + options.owner,
        .partner = job.recipient,
        .message_id = job.message_id,
        .details = {{"sender", job.sender}, {"attempt", std::to_string(job.attempt)}}};
    if (outcome.status != 0) {
      record.details.emplace_back("status", std::to_string(outcome.status));
    }
    if (!outcome.error.empty()) {
      record.details.emplace_back("error", outcome.error);
    }
    if (!outcome.limit.empty()) {
      record.details.emplace_back("limit", outcome.limit);
    }
    if (!outcome.agreement.empty()) {
      record.details.emplace_back("agreement", outcome.agreement);
    }
    if (result == store::attempt_result::retry) {
      record.details.emplace_back("nextAttemptAt", format_rfc3339_ms(next));
    }
    return record;
  }

  void schedule_poll() {
    if (stopping) {
      return;
    }
    timer.expires_after(options.poll_interval);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->pump();
        self->schedule_poll();
      }
    });
  }
};

delivery_service::delivery_service(delivery_options options,
                                   std::shared_ptr<store::message_store> store, lookup recipients)
    : ioc_(std::make_unique<asio::io_context>()),
      impl_(std::make_shared<impl>(std::move(options), std::move(store), std::move(recipients),
                                   *ioc_)) {}

delivery_service::~delivery_service() {
  stop();
  // What is left in the loop (a handler posted as it ran out of work, or everything when it never
  // ran) holds the state: destroying the io_context destroys those handlers, and with them the
  // last references to the state and its store, while the loop's services still exist.
  impl_.reset();
  ioc_.reset();
}

void delivery_service::start() {
  asio::post(impl_->strand, [self = impl_] {
    self->pump();
    self->schedule_poll();
  });
  impl_->thread = std::thread([self = impl_] { self->ioc.run(); });
}

void delivery_service::stop() {
  {
    std::lock_guard lock(impl_->gate->mutex);
    impl_->gate->stopped = true;  // a wake from now on posts nothing
  }
  if (!impl_->thread.joinable()) {
    return;
  }
  asio::post(impl_->strand, [self = impl_] {
    self->stopping = true;
    self->timer.cancel();
    self->client.close_idle();
  });
  // In-flight deliveries finish (each is bounded by its timeout); then run() runs out of work.
  impl_->thread.join();
}

void delivery_service::wake() {
  impl::wake(impl_->gate, impl_);
}

std::function<void()> delivery_service::waker() const {
  return [gate = impl_->gate, weak = std::weak_ptr<impl>(impl_)] { impl::wake(gate, weak); };
}

delivery_counters delivery_service::counters() const {
  return {impl_->attempts.load(), impl_->delivered.load(), impl_->retries.load(),
          impl_->dead.load()};
}

std::string delivery_service::circuit_state(std::string_view partner) const {
  return impl_->breakers.state_of(partner);
}

client_crls delivery_service::read_crls(const std::vector<std::filesystem::path>& files,
                                        std::vector<identity::config_problem>& problems,
                                        std::vector<std::string>& stale) const {
  return impl_->client.read_crls(files, problems, stale);
}

void delivery_service::put_in_force(const client_crls& crls) {
  impl_->client.put_in_force(crls);
}

}  // namespace mxgw::delivery
