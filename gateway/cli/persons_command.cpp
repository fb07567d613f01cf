// `mxgw persons rekey`: see persons_command.hpp.
#include "gateway/cli/persons_command.hpp"

#include <rapidjson/document.h>

#include <csignal>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "gateway/cli/gateway_instance.hpp"
#include "gateway/cli/open_store.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/pipeline/names.hpp"
#include "gateway/pipeline/persons.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::cli {
namespace {

volatile std::sig_atomic_t stop_signal = 0;

extern "C" void stop_persons_rekey(int signal) {
  stop_signal = signal;
}

}  // namespace

int run_persons_rekey(const std::filesystem::path& config_file, std::size_t batch) {
  // Everything is checked before the store is opened: a refusal changes nothing.
  std::vector<config::config_problem> problems;
  auto config = config::load_gateway_config(config_file, problems);
  pipeline::transliterators translit;
  if (problems.empty() && !config.translit_dir.empty()) {
    translit = pipeline::transliterators::load(config.translit_dir, problems);
  }
  if (!problems.empty()) {
    std::cerr << "persons rekey: the configuration has problems; nothing was changed\n"
              << format_problems(problems);
    return 2;
  }
  std::shared_ptr<const pipeline::match_key> key;
  try {
    key = load_match_key(config.persons);
  } catch (const std::runtime_error& e) {
    std::cerr << "persons rekey: " << e.what() << "; nothing was changed\n";
    return 2;
  }
  if (!key) {
    std::cerr << "persons rekey: " << config_file.string()
              << " names no persons.match_key: there is no key to make digests under; nothing "
                 "was changed\n";
    return 2;
  }
  // No store, or (PostgreSQL) one newer than this build: opening would create or refuse it.
  try {
    if (const auto missing = missing_store_reason(config.store); !missing.empty()) {
      std::cerr << "persons rekey: " << missing << "; nothing was changed\n";
      return 2;
    }
  } catch (const std::runtime_error& e) {
    std::cerr << "persons rekey: " << e.what() << "\n";
    return 2;
  }
  std::shared_ptr<store::message_store> store;
  try {
    store = open_configured_store_with_keys(config.store);  // bodies are opened for the keyer
  } catch (const std::runtime_error& e) {
    std::cerr << "persons rekey: " << e.what() << "\n";
    return 2;
  }

  // A body that does not parse keeps the keys it has (it was checked when it was accepted).
  const pipeline::transliterators* rules = config.translit_dir.empty() ? nullptr : &translit;
  auto keyer = [key, rules](
                   std::string_view,
                   std::string_view body) -> std::optional<std::vector<store::person_key>> {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      return std::nullopt;
    }
    std::vector<store::person_key> keys;
    for (auto& d : pipeline::person_digests_of(doc, *key, rules)) {
      keys.push_back({std::move(d.pointer), std::move(d.kind), std::move(d.digest)});
    }
    return keys;
  };

  stop_signal = 0;
  auto* previous_int = std::signal(SIGINT, stop_persons_rekey);
  auto* previous_term = std::signal(SIGTERM, stop_persons_rekey);
  store::message_store::person_rekey_result total;
  std::size_t batches = 0;
  bool failed = false;
  bool complete = false;
  std::string after;
  while (stop_signal == 0) {
    std::promise<std::pair<store::message_store::person_rekey_result, bool>> done;
    store->rekey_persons(after, batch, keyer,
                         [&done](store::message_store::person_rekey_result r, bool ok) {
                           done.set_value({std::move(r), ok});
                         });
    auto [result, ok] = done.get_future().get();
    if (!ok) {
      failed = true;
      break;
    }
    ++batches;
    total.messages += result.messages;
    total.rekeyed += result.rekeyed;
    total.keys += result.keys;
    if (result.messages < batch) {
      complete = true;
      break;
    }
    after = result.last_id;
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);

  // One audit entry with the counts (never an id or content), whatever the outcome.
  const auto number = [](std::size_t n) { return std::to_string(n); };
  std::vector<audit::audit_record> audit{{.event = "persons.rekeyed",
                                          .actor = cli_actor(),
                                          .partner = {},
                                          .message_id = {},
                                          .details = {{"messages", number(total.messages)},
                                                      {"rekeyed", number(total.rekeyed)},
                                                      {"keys", number(total.keys)},
                                                      {"complete", complete ? "true" : "false"}}}};
  std::promise<bool> audited;
  store->append_audit(std::move(audit), [&audited](bool ok) { audited.set_value(ok); });
  const bool audit_ok = audited.get_future().get();
  store->stop();

  std::cout << "keyed " << total.rekeyed << " of " << total.messages << " messages (" << total.keys
            << " keys) in " << batches << " batches\n";
  if (!audit_ok) {
    std::cerr << "persons rekey: the audit entry could not be written\n";
  }
  if (failed) {
    std::cerr << "persons rekey: the store failed during a batch; that batch was rolled back and "
                 "the earlier ones are kept. Run the command again.\n";
    return 1;
  }
  if (!complete) {
    std::cerr << "persons rekey: stopped by a signal after " << batches
              << " batches; run the command again to finish.\n";
    return 1;
  }
  return audit_ok ? 0 : 1;
}

}  // namespace mxgw::cli
