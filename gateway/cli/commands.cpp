// Subcommands of `mxgw`, all declared with CLI11 in one style.
#include "gateway/cli/commands.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <iterator>
#include <regex>
#include <thread>

#include "adapters/adapter.hpp"
#include "adapters/mapped/mapped.hpp"
#include "gateway/audit/verify.hpp"
#include "gateway/cli/admin_commands.hpp"
#include "gateway/cli/client.hpp"
#include "gateway/cli/gateway_instance.hpp"
#include "gateway/cli/open_store.hpp"
#include "gateway/cli/persons_command.hpp"
#include "gateway/cli/report_command.hpp"
#include "gateway/cli/translation_set.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/delivery/partner_client.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/sealed.hpp"

namespace mxgw::cli {
namespace {

log::level parse_level(const std::string& name) {
  if (name == "debug")
    return log::level::debug;
  if (name == "warn")
    return log::level::warn;
  if (name == "error")
    return log::level::error;
  return log::level::info;
}

// Loads gateway.json and everything it names; returns every problem found.
std::vector<config::config_problem> check_config(const std::filesystem::path& file,
                                                 config::gateway_config& out) {
  std::vector<config::config_problem> problems;
  out = config::load_gateway_config(file, problems);
  // Tables, schemas, transliteration rules and mapping files; the config-only partners' adapters
  // are installed (process-wide) so that partners.json may name them.
  translation_set translation;
  if (!out.schema_dir.empty() && !out.mappings_dir.empty()) {
    translation = load_translation_set(out, problems);
    std::vector<config::config_problem> reported;  // clashes were reported by the load
    adapters::mapped::install(*translation.mappings, reported);
  }
  if (!out.partners_file.empty()) {
    const auto formats = adapters::adapter_ids();
    auto partners = std::make_shared<identity::partner_registry>(
        identity::partner_registry::load(out.partners_file, problems, &formats));
    if (!out.listener.tls.certificate.empty() && !out.listener.tls.private_key.empty() &&
        problems.empty()) {
      auto accept_all = [](X509*, X509*) { return std::string(); };
      try {
        net::make_server_context(out.listener.tls, accept_all);
      } catch (const std::exception& e) {
        problems.push_back({file.string(), "/listener/tls", e.what()});
      }
      if (out.admin.enabled) {
        try {
          net::make_server_context(out.admin.listener.tls, accept_all, {}, "mxgw-admin");
        } catch (const std::exception& e) {
          problems.push_back({file.string(), "/admin", e.what()});
        }
      }
      // The client certificate, key, anchors and CRLs deliveries and feeds go out with.
      if (out.delivery.enabled) {
        try {
          boost::asio::io_context unused;
          delivery::partner_client probe(unused, partner_client_identity(out));
        } catch (const std::exception& e) {
          problems.push_back({file.string(), "/delivery", e.what()});
        }
      }
    }
  }
  // The keys themselves (format, file mode), as the start would read them; a key file already
  // reported (missing) is not read again.
  const auto reported = [&problems](std::string_view prefix) {
    return std::any_of(problems.begin(), problems.end(),
                       [prefix](const auto& p) { return p.field.starts_with(prefix); });
  };
  if (!reported("/store/encryption")) {
    try {
      load_store_keys(out.store);
    } catch (const std::exception& e) {
      problems.push_back({file.string(), "/store/encryption", e.what()});
    }
  }
  if (!reported("/persons")) {
    try {
      load_match_key(out.persons);
    } catch (const std::exception& e) {
      problems.push_back({file.string(), "/persons/match_key", e.what()});
    }
  }
  if (!reported("/message_ids")) {
    try {
      load_message_id_key(out.message_ids);
    } catch (const std::exception& e) {
      problems.push_back({file.string(), "/message_ids/key", e.what()});
    }
  }
  if (translation.checker && !out.routing_file.empty() && !out.partners_file.empty()) {
    std::vector<config::config_problem> ignored;  // partner problems are reported above
    auto partners = identity::partner_registry::load(out.partners_file, ignored);
    pipeline::routing_rules::load(out.routing_file, problems, partners,
                                  translation.checker->tables());
  }
  return problems;
}

int serve(const std::filesystem::path& config_file) {
  config::gateway_config config;
  auto problems = check_config(config_file, config);
  if (!problems.empty()) {
    std::cerr << format_problems(problems);
    return 2;
  }
  log::init({parse_level(config.log.level), config.log.file});
  // SIGINT/SIGTERM: stop accepting, finish in-flight requests, flush the store, exit 0. The
  // signal set exists before the listener does, so a signal that comes early is queued, not fatal.
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  gateway_instance gateway(config);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      log::info({.event = "gateway.stopping", .detail = signal == SIGINT ? "SIGINT" : "SIGTERM"});
      gateway.stop();
    }
  });
  // SIGHUP: reload code tables, schemas, transliteration rules and mapping files; a refused
  // reload keeps the running set and is logged (gateway_instance::reload).
  boost::asio::signal_set hangups(signals_ioc, SIGHUP);
  std::function<void()> await_hangup = [&] {
    hangups.async_wait([&](const boost::system::error_code& ec, int) {
      if (!ec) {
        log::info({.event = "config.reloading", .detail = "SIGHUP"});
        gateway.reload();
        await_hangup();
      }
    });
  };
  await_hangup();
  std::thread signal_thread([&] { signals_ioc.run(); });
  gateway.run();
  signals_ioc.stop();
  signal_thread.join();
  log::flush();
  return 0;
}

// The input a command was given: FILE, or standard input for "-" (or none). Throws input_error.
std::string read_input(const std::string& file) {
  if (file.empty() || file == "-") {
    std::string text(std::istreambuf_iterator<char>(std::cin), {});
    if (std::cin.bad()) {
      throw input_error("standard input: cannot be read");
    }
    return text;
  }
  return read_given_file(file);
}

// The subcommand chosen, as typed: "audit verify", "certs issue".
std::string command_name(const CLI::App& app) {
  std::string name;
  for (const CLI::App* cmd = &app; !cmd->get_subcommands().empty();) {
    cmd = cmd->get_subcommands().front();
    name += (name.empty() ? "" : " ") + cmd->get_name();
  }
  return name.empty() ? "mxgw" : name;
}

// `mxgw queue dead|replay`: opens the configured store directly (SQLite and PostgreSQL both allow
// the running gateway and this command at once).
int run_queue_command(const std::filesystem::path& config_file, bool replay,
                      const std::string& message_id, const std::string& recipient) {
  config::gateway_config config;
  std::shared_ptr<store::message_store> store;
  try {
    // With its keys: a dead letter's error text is sealed at rest like the message.
    store = open_existing_store(config_file, config, replay ? "queue replay" : "queue dead", true);
  } catch (const std::runtime_error& e) {
    std::cerr << "queue: " << e.what() << "\n";
    return 1;
  }
  if (!store) {
    return 2;
  }
  std::promise<int> result;
  // Outlives the store's handler, which runs on a store thread while we wait below.
  std::string id = message_id;
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (replay) {
    std::vector<audit::audit_record> audit{{.event = "delivery.replayed",
                                            .actor = cli_actor(),
                                            .partner = recipient,
                                            .message_id = id,
                                            .details = {}}};
    store->replay(id, recipient, std::move(audit), [&](bool found, bool ok) {
      if (!ok) {
        std::cerr << "queue replay: the store failed\n";
        result.set_value(1);
      } else if (!found) {
        std::cerr << "queue replay: no dead delivery of " << id << " to " << recipient << "\n";
        result.set_value(1);
      } else {
        std::cout << "replaying " << id << " to " << recipient << "\n";
        result.set_value(0);
      }
    });
  } else {
    // Dead letters name messages, senders and recipients, and hold partners' refusal texts: like
    // the admin API's list, a look at them is in the audit chain (durably) before it is shown.
    store::message_store* const s = store.get();
    store->list_dead(1000, [&result, s](std::vector<store::dead_letter> dead, bool ok) {
      if (!ok) {
        std::cerr << "queue dead: the store failed\n";
        result.set_value(1);
        return;
      }
      std::vector<audit::audit_record> audit{{.event = "deadletters.viewed",
                                              .actor = cli_actor(),
                                              .partner = {},
                                              .message_id = {},
                                              .details = {{"count", std::to_string(dead.size())}}}};
      auto shown = std::make_shared<std::vector<store::dead_letter>>(std::move(dead));
      s->append_audit(std::move(audit), [&result, shown](bool appended) {
        if (!appended) {
          std::cerr << "queue dead: the audit entry could not be written; nothing is shown\n";
          result.set_value(1);
          return;
        }
        for (const auto& d : *shown) {
          std::cout << d.message_id << "  " << d.recipient << "  " << d.type << "  from "
                    << d.sender << "  attempts " << d.attempts << "  since "
                    << format_rfc3339_ms(d.dead_since) << "  "
                    << readable_excerpt(d.last_error, store::max_error_bytes) << "\n";
        }
        result.set_value(0);
      });
    });
  }
  const int status = result.get_future().get();
  store->stop();
  return status;
}

// `mxgw audit verify|query`: opens the configured store directly, like `mxgw queue`; only reads.
using audit_query = audit_filter;

// `mxgw keys rekey`: re-seals every stored value (bodies, facts, payloads, receipts, error texts)
// under the active key, batch by batch, on the configured store (the running gateway may keep
// working meanwhile).
volatile std::sig_atomic_t rekey_stop_signal = 0;

extern "C" void stop_rekey(int signal) {
  rekey_stop_signal = signal;
}

void print_rekey_counts(std::ostream& out, const store::rekey_counts& c) {
  out << "re-sealed " << c.resealed << ", sealed from clear text " << c.sealed_from_clear
      << ", already current " << c.already_current << ", unreadable (key missing) " << c.key_missing
      << ", unreadable (do not open) " << c.corrupt << "; " << c.messages << " messages in "
      << c.batches << " batches\n";
}

int run_rekey(const std::filesystem::path& config_file, std::size_t batch) {
  // Everything is checked before the store is opened: a refusal changes nothing.
  std::vector<config::config_problem> problems;
  auto config = config::load_gateway_config(config_file, problems);
  if (!problems.empty()) {
    std::cerr << "keys rekey: the configuration has problems; nothing was changed\n"
              << format_problems(problems);
    return 2;
  }
  if (config.store.keys.empty()) {
    std::cerr << "keys rekey: " << config_file.string()
              << " names no store.encryption keys: there is no key to re-seal under; nothing was "
                 "changed\n";
    return 2;
  }
  std::vector<store::key_source> sources;
  for (const auto& k : config.store.keys) {
    sources.push_back({k.id, k.file, k.env});
  }
  store::key_ring ring;
  try {
    ring = store::key_ring::load(sources, config.store.active_key);
  } catch (const store::key_error& e) {
    std::cerr << "keys rekey: " << e.what() << "; nothing was changed\n";
    return 2;
  }
  // No store, or (PostgreSQL) one newer than this build: opening would create or refuse it.
  try {
    if (const auto missing = missing_store_reason(config.store); !missing.empty()) {
      std::cerr << "keys rekey: " << missing << "; nothing was changed\n";
      return 2;
    }
  } catch (const std::runtime_error& e) {
    std::cerr << "keys rekey: " << e.what() << "\n";
    return 2;
  }
  std::unique_ptr<store::message_store> store;
  try {
    // secure_delete: the bytes a value is re-sealed over are zeroed, not left in free pages.
    store = open_configured_store(config.store, true);
  } catch (const std::runtime_error& e) {
    std::cerr << "keys rekey: " << e.what() << "\n";
    return 2;
  }
  // SIGINT/SIGTERM stop after the batch in progress (each batch is one transaction, so even a
  // SIGKILL loses nothing: the batch it cut short is rolled back and a second run redoes it).
  rekey_stop_signal = 0;
  auto* previous_int = std::signal(SIGINT, stop_rekey);
  auto* previous_term = std::signal(SIGTERM, stop_rekey);
  store::rekey_options options;
  options.batch_messages = batch;
  options.interrupted = [] { return rekey_stop_signal != 0; };
  const auto counts = store::rekey_store(*store, ring, options);
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);

  // One audit entry with the counts (never an id or content), whatever the outcome.
  const auto number = [](std::size_t n) { return std::to_string(n); };
  std::vector<audit::audit_record> audit{
      {.event = "store.rekeyed",
       .actor = cli_actor(),
       .partner = {},
       .message_id = {},
       .details = {{"activeKey", ring.active().id},
                   {"resealed", number(counts.resealed)},
                   {"sealedFromClear", number(counts.sealed_from_clear)},
                   {"alreadyCurrent", number(counts.already_current)},
                   {"keyMissing", number(counts.key_missing)},
                   {"corrupt", number(counts.corrupt)},
                   {"complete", counts.complete ? "true" : "false"}}}};
  std::promise<bool> audited;
  store->append_audit(std::move(audit), [&audited](bool ok) { audited.set_value(ok); });
  const bool audit_ok = audited.get_future().get();
  store->stop();

  print_rekey_counts(std::cout, counts);
  if (!audit_ok) {
    std::cerr << "keys rekey: the audit entry could not be written\n";
  }
  if (counts.failed) {
    std::cerr << "keys rekey: the store failed during a batch; that batch was rolled back and "
                 "the earlier ones are kept. Run the command again.\n";
    return 1;
  }
  if (!counts.complete) {
    std::cerr << "keys rekey: stopped by a signal after " << counts.batches
              << " batches; run the command again to finish.\n";
    return 1;
  }
  if (counts.key_missing > 0 || counts.corrupt > 0) {
    std::cerr << "keys rekey: " << counts.key_missing + counts.corrupt
              << " values are not under key '" << ring.active().id
              << "' and were left as they are; do not remove the keys they name yet.\n";
    return 1;
  }
  std::cout << "every stored value is sealed under key '" << ring.active().id
            << "'; older keys may now be removed from store.encryption\n";
  return audit_ok ? 0 : 1;
}

int run_audit_verify(const std::filesystem::path& config_file,
                     const std::vector<std::string>& certificates,
                     const std::vector<std::string>& anchor_files) {
  // The external anchors first: a file that cannot be used is an error before the store is read.
  std::vector<audit::external_anchor> anchors;
  for (const auto& file : anchor_files) {
    std::string text;
    try {
      text = read_given_file(file);
    } catch (const input_error& e) {
      std::cerr << "audit verify: " << e.what() << "\n";
      return 2;
    }
    std::string error;
    auto read = audit::read_anchors(text, file, error);
    if (!error.empty()) {
      std::cerr << "audit verify: " << error << "\n";
      return 2;
    }
    if (read.empty()) {
      std::cerr << "audit verify: " << file
                << ": holds no anchor (an audit.checkpoint log line, the summary of mxgw audit "
                   "verify, or \"SEQ HASH\")\n";
      return 2;
    }
    anchors.insert(anchors.end(), std::make_move_iterator(read.begin()),
                   std::make_move_iterator(read.end()));
  }
  config::gateway_config config;
  // The listener's certificate is read when no --certificate is given: a problem with it stops.
  auto store = open_existing_store(config_file, config, "audit verify", false,
                                   certificates.empty()
                                       ? std::vector<std::string_view>{"/listener/tls/certificate"}
                                       : std::vector<std::string_view>{});
  if (!store) {
    return 2;
  }
  // The checkpoints' signer: the gateway's certificate, or the ones given (renewals).
  std::vector<std::filesystem::path> files(certificates.begin(), certificates.end());
  if (files.empty() && !config.listener.tls.certificate.empty()) {
    files.push_back(config.listener.tls.certificate);
  }
  audit::signer_keys keys;
  for (const auto& file : files) {
    try {
      keys.add_pem(read_given_file(file));
    } catch (const input_error& e) {
      std::cerr << "audit verify: " << e.what() << "\n";
      store->stop();
      return 2;
    } catch (const std::exception& e) {
      std::cerr << "audit verify: " << file.string() << ": " << e.what() << "\n";
      store->stop();
      return 2;
    }
  }
  const auto report = audit::verify_store(*store, keys, 1000, std::move(anchors));
  store->stop();
  if (report.problem == "unreadable") {
    std::cerr << "audit verify: " << report.message << "\n";
    return 2;
  }
  if (!report.intact) {
    std::cout << "audit log NOT intact: " << report.message << "\n"
              << "(" << report.entries << " entries read; the chain was sound up to entry "
              << report.head_seq << ")\n";
    return 1;
  }
  std::cout << "audit log intact: " << report.entries << " entries, head " << report.head_seq << " "
            << report.head_hash << "\n"
            << report.checkpoints << " signed checkpoints verified";
  if (report.last_checkpoint > 0) {
    std::cout << ", the last at " << report.last_checkpoint;
  }
  std::cout << "\n";
  if (!anchor_files.empty()) {
    std::cout << report.anchors << " external anchors matched";
    if (report.last_anchor > 0) {
      std::cout << ", the last at " << report.last_anchor;
    }
    std::cout << "\n";
  }
  if (report.last_checkpoint < report.head_seq) {
    std::cout << "entries " << report.last_checkpoint + 1 << " to " << report.head_seq
              << " are not yet vouched for by a checkpoint\n";
  }
  return 0;
}

std::optional<std::string> query_time(const std::string& text, const char* option) {
  if (text.empty()) {
    return std::string();
  }
  const auto t = parse_rfc3339(text);
  // The clock's nanosecond range ends in 2262; later years would wrap around.
  if (!t || text.substr(0, 4) > "2261") {
    std::cerr << "audit query: " << option
              << " must be an RFC 3339 date-time before 2262, e.g. 2026-11-22T00:00:00Z\n";
    return std::nullopt;
  }
  return format_rfc3339_ms(*t);  // the entries' own form, so strings compare as times
}

int run_audit_query(const std::filesystem::path& config_file, audit_query query) {
  const auto since = query_time(query.since, "--since");
  const auto until = query_time(query.until, "--until");
  if (!since || !until) {
    return 2;
  }
  std::transform(query.message_id.begin(), query.message_id.end(), query.message_id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  config::gateway_config config;
  auto store = open_existing_store(config_file, config, "audit query");
  if (!store) {
    return 2;
  }
  // A scan in pages (bounded memory); the filters are applied here.
  std::size_t printed = 0;
  std::int64_t after = 0;
  int status = 0;
  constexpr std::size_t page = 1000;
  for (;;) {
    std::promise<std::pair<std::vector<audit::audit_row>, bool>> p;
    auto f = p.get_future();
    store->read_audit(after, page, [&p](std::vector<audit::audit_row> rows, bool ok) {
      p.set_value({std::move(rows), ok});
    });
    auto [rows, ok] = f.get();
    if (!ok) {
      std::cerr << "audit query: the store failed\n";
      status = 1;
      break;
    }
    bool more = rows.size() == page;
    for (const auto& row : rows) {
      if ((!since->empty() && row.at < *since) || (!until->empty() && row.at > *until) ||
          (!query.partner.empty() && row.partner != query.partner) ||
          (!query.message_id.empty() && row.message_id != query.message_id) ||
          (!query.event.empty() && row.event != query.event)) {
        continue;
      }
      print_audit_entry(row);
      if (query.limit != 0 && ++printed >= query.limit) {
        more = false;
        break;
      }
    }
    if (!more) {
      break;
    }
    after = rows.back().seq;
  }
  store->stop();
  return status;
}

// `mxgw translate`: decode with one adapter, check as the gateway would, encode with another.
// `mxgw register`: the transfer register (per partner, month, direction and type: counts only),
// for the cross-border transfer assessment the data-protection law requires.
int run_register_command(const std::filesystem::path& config_file, const std::string& from,
                         const std::string& to) {
  static const std::regex month(R"(\d{4}-(0[1-9]|1[0-2]))");
  if (!std::regex_match(from, month) || !std::regex_match(to, month)) {
    std::cerr << "register: --from and --to are months, YYYY-MM\n";
    return 2;
  }
  if (from > to) {  // YYYY-MM compare as text as they do as months
    std::cerr << "register: --from " << from << " is after --to " << to << "\n";
    return 2;
  }
  config::gateway_config config;
  auto store = open_existing_store(config_file, config, "register");
  if (!store) {
    return 2;
  }
  std::promise<int> result;
  store->transfer_register(from, to, [&](std::vector<store::transfer_count> rows, bool ok) {
    if (!ok) {
      std::cerr << "register: the store failed\n";
      result.set_value(1);
      return;
    }
    std::cout << "partner\tdirection\tmonth\ttype\tcount\n";
    for (const auto& r : rows) {
      std::cout << r.partner << "\t" << r.direction << "\t" << r.month << "\t" << r.type << "\t"
                << r.count << "\n";
    }
    result.set_value(0);
  });
  const int status = result.get_future().get();
  store->stop();
  return status;
}

int run_translate(const std::filesystem::path& config_file, const std::string& from,
                  const std::string& to, const std::string& sender, const std::string& recipient,
                  const std::string& input) {
  std::vector<config::config_problem> problems;
  auto config = config::load_gateway_config(config_file, problems);
  // What a translation reads: a problem there, or a misspelled setting anywhere, stops it.
  problems = problems_that_stop(problems,
                                {"/schema_dir", "/mappings_dir", "/translit_dir", "/adapters_dir"});
  if (!problems.empty()) {
    std::cerr << "translate: the configuration has problems\n" << format_problems(problems);
    return 2;
  }
  // Mapping files first: a config-only partner's format is an adapter like any other.
  auto translation = load_translation_set(config, problems);
  if (problems.empty()) {
    adapters::mapped::install(*translation.mappings, problems);
  }
  if (!problems.empty()) {
    std::cerr << format_problems(problems);
    return 2;
  }
  const auto& checker = *translation.checker;
  const auto* decoder = adapters::find_adapter(from);
  const auto* encoder = adapters::find_adapter(to);
  if (decoder == nullptr || encoder == nullptr) {
    std::string known;
    for (const auto& id : adapters::adapter_ids()) {
      known += (known.empty() ? "" : ", ") + id;
    }
    std::cerr << "translate: unknown adapter '" << (decoder == nullptr ? from : to)
              << "' (known: " << known << ")\n";
    return 2;
  }
  auto print_errors = [](std::string_view what, const std::vector<pipeline::field_error>& errors) {
    std::cerr << "translate: " << what << "\n";
    for (const auto& e : errors) {
      std::cerr << "  " << (e.pointer.empty() ? "(document)" : e.pointer) << ": " << e.reason
                << "\n";
    }
  };
  // The id the gateway would give the message needs the gateway's id key; an operator who may
  // not read it still gets the translation, with an id that is not the gateway's.
  std::shared_ptr<const mac_key> id_key;
  try {
    id_key = load_message_id_key(config.message_ids);
  } catch (const std::exception& e) {
    std::cerr << "translate: " << e.what() << "; the id below is not the one the gateway gives\n";
  }
  const adapters::adapter_context in_ctx{.tables = &checker.tables(),
                                         .sender = sender,
                                         .transliterators = translation.transliterators.get(),
                                         .message_id_key = id_key.get()};
  auto decoded = decoder->decode(input, in_ctx);
  if (decoded.status != 0) {
    print_errors("the input cannot be read as " + from, decoded.errors);
    return 1;
  }
  const std::string canonical = json::to_string(decoded.message);
  // Offline there is no certificate: the message's own sender stands for the partner.
  const std::string claimed(json::get_string(decoded.message, "sender"));
  rapidjson::Document doc;
  auto verdict = checker.check(canonical, claimed, doc);
  if (verdict.status != 0) {
    print_errors("the canonical message is not valid: " + verdict.detail, verdict.errors);
    return 1;
  }
  auto encoded = encoder->encode(
      doc, {.tables = &checker.tables(), .sender = claimed, .recipient = recipient});
  if (encoded.status != 0) {
    print_errors("the message cannot be expressed as " + to, encoded.errors);
    return 1;
  }
  std::cout << encoded.bytes << "\n";
  return 0;
}

// Parses the command line and runs the command; sets `command` (its name, for messages) and
// `failure_status` (what it exits with when it fails) once the command line is parsed.
int run_command(int argc, char** argv, std::string& command, int& failure_status) {
  CLI::App app{"mxgw: the Mekong eXchange GateWay for cross-border trafficking-case messages"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mxgw 0.1.0");

  // serve
  std::filesystem::path config_file = "config/gateway.json";
  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway");
  serve_cmd->add_option("--config", config_file, "gateway.json")->check(CLI::ExistingFile);

  // config check
  auto* config_cmd = app.add_subcommand("config", "Configuration tools");
  config_cmd->require_subcommand(1);
  auto* check_cmd =
      config_cmd->add_subcommand("check", "Load and check a configuration; list every problem");
  check_cmd->add_option("--config", config_file, "gateway.json")->required();
  std::filesystem::path export_dir;
  auto* export_cmd = config_cmd->add_subcommand(
      "export", "Write a running gateway's current partners and routing rules as files");
  export_cmd->add_option("--out", export_dir, "directory for partners.json and routing.json")
      ->required();
  auto* reload_cmd = config_cmd->add_subcommand(
      "reload",
      "Make a running gateway reload its tables, mapping files and CRLs (as SIGHUP does)");

  // certs
  auto* certs_cmd = app.add_subcommand("certs", "Development CA and partner certificates");
  certs_cmd->require_subcommand(1);
  std::filesystem::path certs_dir;
  bool force = false;
  auto* init_cmd = certs_cmd->add_subcommand(
      "init",
      "Create a development CA, a localhost server certificate and an admin CA + certificate");
  init_cmd->add_option("--dir", certs_dir, "certificate directory")->required();
  init_cmd->add_flag("--force", force, "replace an existing CA");
  std::string partner_id;
  std::filesystem::path out_prefix;
  int days = 365;
  auto* issue_cmd = certs_cmd->add_subcommand("issue", "Issue a partner client certificate");
  issue_cmd->add_option("--dir", certs_dir, "certificate directory")->required();
  issue_cmd->add_option("--partner", partner_id, "partner id")->required();
  issue_cmd->add_option("--out", out_prefix, "writes PREFIX.pem and PREFIX.key")->required();
  issue_cmd->add_option("--days", days, "validity in days")->check(CLI::Range(1, 825));
  admin_target admin_api_target;
  std::string serial, cert_file, fingerprint, revoke_reason = "unspecified";
  auto* revoke_cmd = certs_cmd->add_subcommand(
      "revoke",
      "Revoke a certificate: in a running gateway at once (--admin-url), or in a local "
      "directory's crl.pem (--dir)");
  revoke_cmd->add_option("--dir", certs_dir,
                         "local certificate directory (instead of --admin-url)");
  auto* serial_opt = revoke_cmd->add_option("--serial", serial, "serial number (hex)");
  auto* cert_opt =
      revoke_cmd->add_option("--certificate", cert_file, "the certificate (PEM file) to revoke")
          ->excludes(serial_opt);
  revoke_cmd->add_option("--fingerprint", fingerprint, "SHA-256 fingerprint (with --admin-url)")
      ->excludes(serial_opt)
      ->excludes(cert_opt);
  revoke_cmd->add_option("--reason", revoke_reason,
                         "RFC 5280 reason, e.g. keyCompromise (with --admin-url)");
  add_admin_options(revoke_cmd, admin_api_target, false);
  auto* list_cmd = certs_cmd->add_subcommand("list", "List issued or recorded certificates");
  list_cmd->add_option("--dir", certs_dir, "local certificate directory (instead of --admin-url)");
  add_admin_options(list_cmd, admin_api_target, false);
  std::string admin_name = "dev";
  auto* admin_cert_cmd = certs_cmd->add_subcommand(
      "admin", "Create the admin CA in DIR if missing and issue an admin certificate");
  admin_cert_cmd->add_option("--dir", certs_dir, "certificate directory")->required();
  admin_cert_cmd->add_option("--name", admin_name, "administrator name (urn:mxgw:admin:NAME)");

  // certs sign-csr / rotate / expiring: against a running gateway's admin API (sign-csr and
  // expiring also work on a local --dir)
  std::filesystem::path csr_file, cert_out;
  int overlap_days = -1;
  auto* sign_cmd = certs_cmd->add_subcommand(
      "sign-csr", "Sign a partner's certificate request (weak keys and foreign names refused)");
  sign_cmd->add_option("--partner", partner_id, "partner id")->required();
  sign_cmd->add_option("--csr", csr_file, "PEM certificate request")
      ->required()
      ->check(CLI::ExistingFile);
  sign_cmd->add_option("--out", cert_out, "where to write the certificate (PEM)")->required();
  sign_cmd->add_option("--days", days, "validity in days")->check(CLI::Range(1, 825));
  sign_cmd->add_option("--dir", certs_dir, "local certificate directory (instead of --admin-url)");
  add_admin_options(sign_cmd, admin_api_target, false);
  auto* rotate_cmd = certs_cmd->add_subcommand(
      "rotate",
      "Sign a replacement; the partner's current certificates keep working until the "
      "overlap ends");
  rotate_cmd->add_option("--partner", partner_id, "partner id")->required();
  rotate_cmd->add_option("--csr", csr_file, "PEM certificate request")
      ->required()
      ->check(CLI::ExistingFile);
  rotate_cmd->add_option("--out", cert_out, "where to write the certificate (PEM)")->required();
  rotate_cmd->add_option("--overlap-days", overlap_days, "overlap window (default: the gateway's)")
      ->check(CLI::Range(0, 365));
  add_admin_options(rotate_cmd, admin_api_target, true);
  int within_days = 30;
  auto* expiring_cmd =
      certs_cmd->add_subcommand("expiring", "Certificates whose notAfter is within N days");
  expiring_cmd->add_option("--days", within_days, "days from now")->check(CLI::Range(0, 3650));
  expiring_cmd->add_option("--dir", certs_dir,
                           "local certificate directory (instead of --admin-url)");
  add_admin_options(expiring_cmd, admin_api_target, false);

  // partners: against a running gateway's admin API
  auto* partners_cmd = app.add_subcommand("partners", "Partners of a running gateway (admin API)");
  partners_cmd->require_subcommand(1);
  auto* partners_list_cmd = partners_cmd->add_subcommand("list", "List partners");
  add_admin_options(partners_list_cmd, admin_api_target, true);
  auto* partners_show_cmd = partners_cmd->add_subcommand("show", "Show one partner");
  partners_show_cmd->add_option("id", partner_id, "partner id")->required();
  add_admin_options(partners_show_cmd, admin_api_target, true);
  std::string disable_reason = "unspecified";
  auto* partners_disable_cmd = partners_cmd->add_subcommand(
      "disable", "Disable a partner: its handshakes fail and its open connections close");
  partners_disable_cmd->add_option("id", partner_id, "partner id")->required();
  partners_disable_cmd->add_option("--reason", disable_reason, "short reason code");
  add_admin_options(partners_disable_cmd, admin_api_target, true);
  add_admin_options(export_cmd, admin_api_target, true);
  add_admin_options(reload_cmd, admin_api_target, true);

  // keys: data keys for encryption at rest
  auto* keys_cmd = app.add_subcommand("keys", "Data keys for encryption of the store at rest");
  keys_cmd->require_subcommand(1);
  std::filesystem::path key_out;
  auto* keygen_cmd = keys_cmd->add_subcommand(
      "generate", "Write a new random AES-256 key (64 hex digits, mode 0600); never overwrites");
  keygen_cmd->add_option("--out", key_out, "key file")->required();
  std::size_t rekey_batch = 100;
  auto* rekey_cmd = keys_cmd->add_subcommand(
      "rekey", "Re-seal every stored value not sealed under the active key, in batches");
  rekey_cmd->add_option("--config", config_file, "gateway.json")->required();
  rekey_cmd->add_option("--batch", rekey_batch, "messages (with their payloads) per transaction")
      ->check(CLI::Range(1, 100000));

  // send
  std::string url, method = "POST", input;
  client_tls tls;
  auto* send_cmd = app.add_subcommand("send", "Send a message (or GET a status) over mutual TLS");
  send_cmd->add_option("--url", url, "e.g. https://localhost:8443/v1/messages")->required();
  send_cmd->add_option("--cert", tls.cert, "client certificate")
      ->required()
      ->check(CLI::ExistingFile);
  send_cmd->add_option("--key", tls.key, "client key")->required()->check(CLI::ExistingFile);
  send_cmd->add_option("--ca", tls.ca, "CA of the gateway's certificate")
      ->required()
      ->check(CLI::ExistingFile);
  send_cmd->add_option("--method", method, "HTTP method")->check(CLI::IsMember({"GET", "POST"}));
  send_cmd->add_option("file", input, "message file, or - for standard input");

  // partner-sim
  sim::partner_sim_options sim_options;
  std::string sim_listen;
  auto* sim_cmd = app.add_subcommand(
      "partner-sim", "Run a stand-in partner endpoint: receipts, deduplication, fault switches");
  sim_cmd->add_option("--listen", sim_listen, "ADDR:PORT, or [V6ADDR]:PORT (port 0: any free)")
      ->required()
      ->check([](const std::string& value) {
        return sim::parse_listen(value) ? std::string()
                                        : std::string("expected ADDR:PORT, e.g. 127.0.0.1:9443");
      });
  sim_cmd->add_option("--format", sim_options.format, "message format (mx or an adapter id)");
  sim_cmd->add_option("--mappings", sim_options.mappings_dir,
                      "code tables for partner formats (config/mappings)");
  sim_cmd->add_option("--cert", sim_options.cert, "server certificate")
      ->required()
      ->check(CLI::ExistingFile);
  sim_cmd->add_option("--key", sim_options.key, "server key")->required()->check(CLI::ExistingFile);
  sim_cmd->add_option("--ca", sim_options.ca, "CA that client certificates must chain to")
      ->required()
      ->check(CLI::ExistingFile);
  sim_cmd->add_option("--fail-first", sim_options.faults.fail_first,
                      "answer 503 to the first N POSTs");
  sim_cmd
      ->add_option("--fail-rate", sim_options.faults.fail_rate,
                   "answer 503 with this probability (0..1)")
      ->check(CLI::Range(0.0, 1.0));
  sim_cmd->add_option("--latency-ms", sim_options.faults.latency_ms, "delay every answer");
  sim_cmd
      ->add_option("--always-status", sim_options.faults.always_status,
                   "answer this status to every POST, recording nothing (e.g. 400)")
      ->check(CLI::Range(200, 599));
  sim_cmd->add_option("--down-for-ms", sim_options.faults.down_for_ms,
                      "refuse connections for this long after start");
  sim_cmd->add_option("--seed", sim_options.faults.seed, "seed of the --fail-rate generator");
  sim_cmd
      ->add_option("--fixtures", sim_options.fixtures_dir,
                   "with --format interpol: notice fixtures DIR/red/*.json, DIR/yellow/*.json")
      ->check(CLI::ExistingDirectory);
  sim_cmd->add_option("--fail-page", sim_options.feed_fail_page,
                      "with --format interpol: TYPE:PAGE answers 503 once (e.g. red:2)");
  sim_cmd->add_option("--fail-detail", sim_options.feed_fail_detail,
                      "with --format interpol: ENTITY_ID's detail answers 502 (e.g. 2026/10001)");
  sim_cmd->add_flag("--verbose", sim_options.verbose,
                    "one line per request (id and outcome, never content) on stderr");

  // translate
  std::string from_format, to_format, translate_sender, translate_recipient, translate_input;
  auto* translate_cmd = app.add_subcommand(
      "translate", "Convert a message offline: partner format -> canonical -> partner format");
  translate_cmd->add_option("--from", from_format, "adapter of the input (mx, kh-cnp, ...)")
      ->required();
  translate_cmd->add_option("--to", to_format, "adapter of the output")->required();
  translate_cmd->add_option("--config", config_file, "gateway.json (for schemas and tables)");
  translate_cmd->add_option("--sender", translate_sender,
                            "partner id the input comes from (partner formats)");
  translate_cmd->add_option("--recipient", translate_recipient, "partner id the output is for");
  translate_cmd->add_option("file", translate_input, "input file, or - for standard input");

  bool config_given = false;
  // register: the transfer register
  std::string register_from = "2000-01", register_to = "9999-12";
  auto* register_cmd = app.add_subcommand(
      "register", "Transfer register: messages per partner, month, direction and type (counts)");
  register_cmd->add_option("--config", config_file, "gateway.json")->required();
  register_cmd->add_option("--from", register_from, "first month, YYYY-MM");
  register_cmd->add_option("--to", register_to, "last month, YYYY-MM");

  // report: the statistics of a period (counts without identities), local or admin API
  report_request report_req;
  auto* report_cmd = app.add_subcommand(
      "report",
      "Statistics of a period without identities: victims, wanted persons, tips, verifications");
  report_cmd->add_option("--config", config_file, "gateway.json (instead of --admin-url)")
      ->each([&](const std::string&) { config_given = true; });
  add_admin_options(report_cmd, admin_api_target, false);
  report_cmd->add_option("--from", report_req.from, "first day, YYYY-MM-DD (UTC)")->required();
  report_cmd->add_option("--to", report_req.to, "last day, YYYY-MM-DD (UTC), inclusive")
      ->required();
  report_cmd->add_option("--format", report_req.format, "json (default) or csv");
  // Taken as text and checked by the command, so a bad value is refused like a bad day.
  report_cmd->add_option_function<std::string>(
      "--suppress-below", [&](const std::string& k) { report_req.suppress_below = k; },
      "withhold counts below this threshold, 2 to 1000 (small-cell suppression)");

  // queue: dead letters on the local store (the running gateway picks replays up at its next
  // poll), or through a running gateway's admin API
  auto* queue_cmd = app.add_subcommand("queue", "Delivery queue and dead letters");
  queue_cmd->require_subcommand(1);
  auto* dead_cmd = queue_cmd->add_subcommand("dead", "List dead letters: ids, recipient, sender, attempts, last error");
  dead_cmd->add_option("--config", config_file, "gateway.json (instead of --admin-url)")
      ->each([&](const std::string&) { config_given = true; });
  add_admin_options(dead_cmd, admin_api_target, false);
  std::string replay_id, replay_recipient, discard_reason;
  auto* replay_cmd = queue_cmd->add_subcommand("replay", "Deliver a dead letter again");
  replay_cmd->add_option("--config", config_file, "gateway.json (instead of --admin-url)")
      ->each([&](const std::string&) { config_given = true; });
  replay_cmd->add_option("--message", replay_id, "message id")->required();
  replay_cmd->add_option("--recipient", replay_recipient, "recipient partner id")->required();
  add_admin_options(replay_cmd, admin_api_target, false);
  auto* discard_cmd = queue_cmd->add_subcommand(
      "discard", "Give a dead letter up for good, with a reason (admin API)");
  discard_cmd->add_option("--message", replay_id, "message id")->required();
  discard_cmd->add_option("--recipient", replay_recipient, "recipient partner id")->required();
  discard_cmd->add_option("--reason", discard_reason, "short reason code, e.g. partner-retired")
      ->required();
  add_admin_options(discard_cmd, admin_api_target, true);
  auto* depth_cmd = queue_cmd->add_subcommand(
      "depth", "Deliveries per recipient and state, and the oldest waiting (admin API)");
  add_admin_options(depth_cmd, admin_api_target, true);

  // release: four-eyes release of held copies, through a running gateway's admin API only (each
  // decision is an administrator's, known by its certificate)
  auto* release_cmd = app.add_subcommand(
      "release", "Copies held until two administrators release them (admin API)");
  release_cmd->require_subcommand(1);
  std::string release_id, release_recipient, release_reason;
  auto* release_list_cmd =
      release_cmd->add_subcommand("list", "Held copies: message, recipient, rule, approvals");
  add_admin_options(release_list_cmd, admin_api_target, true);
  auto* release_show_cmd = release_cmd->add_subcommand(
      "show", "Print a held copy as it would leave (the reading is audited)");
  auto* release_approve_cmd = release_cmd->add_subcommand(
      "approve", "Approve a held copy's release, as this administrator");
  auto* release_reject_cmd =
      release_cmd->add_subcommand("reject", "Refuse a held copy's release: it is never delivered");
  for (auto* cmd : {release_show_cmd, release_approve_cmd, release_reject_cmd}) {
    cmd->add_option("--message", release_id, "message id")->required();
    cmd->add_option("--recipient", release_recipient, "recipient partner id")->required();
    add_admin_options(cmd, admin_api_target, true);
  }
  release_reject_cmd
      ->add_option("--reason", release_reason, "short reason code, e.g. not-necessary")
      ->required();

  // escalations: what waits too long (admin API)
  auto* escalations_cmd = app.add_subcommand(
      "escalations",
      "Verification requests past their deadline and copies held too long (admin API)");
  add_admin_options(escalations_cmd, admin_api_target, true);

  // persons: candidates of the same person in other messages, through a running gateway's admin
  // API only (each question is an administrator's, audited)
  auto* persons_cmd =
      app.add_subcommand("persons", "The same person across messages: candidates (admin API)");
  persons_cmd->require_subcommand(1);
  std::string persons_message;
  auto* candidates_cmd = persons_cmd->add_subcommand(
      "candidates",
      "Persons of other messages who may be the same as one of this message's (audited)");
  candidates_cmd->add_option("--message", persons_message, "message id")->required();
  add_admin_options(candidates_cmd, admin_api_target, true);
  std::size_t persons_batch = 200;
  auto* persons_rekey_cmd = persons_cmd->add_subcommand(
      "rekey",
      "Make every stored message's persons' digests anew under persons.match_key (the store "
      "itself; gateways may run)");
  persons_rekey_cmd->add_option("--config", config_file, "gateway.json")->required();
  // A batch holds the store's write lock while its bodies are opened and keyed (some 100 µs a
  // message): 1,000 stay well inside the gateways' busy timeout.
  persons_rekey_cmd->add_option("--batch", persons_batch, "messages per transaction (1-1000)")
      ->check(CLI::Range(1, 1000));

  // audit: verify the chain and its signed checkpoints; query entries (JSON lines)
  auto* audit_cmd = app.add_subcommand("audit", "The tamper-evident audit log");
  audit_cmd->require_subcommand(1);
  std::vector<std::string> audit_certificates;
  std::vector<std::string> audit_anchors;
  auto* audit_verify_cmd = audit_cmd->add_subcommand(
      "verify", "Check every entry and signed checkpoint; name the first bad entry");
  audit_verify_cmd->add_option("--config", config_file, "gateway.json")->required();
  audit_verify_cmd->add_option(
      "--certificate", audit_certificates,
      "certificate (PEM) that signed checkpoints; repeat for renewals (default: the listener's)");
  audit_verify_cmd->add_option(
      "--anchor", audit_anchors,
      "the gateway's log (its audit.checkpoint lines), an earlier verify's summary, or SEQ HASH "
      "lines, kept outside the store; repeat for several files");
  audit_query query;
  auto* audit_query_cmd = audit_cmd->add_subcommand("query", "Print audit entries as JSON lines");
  audit_query_cmd->add_option("--config", config_file, "gateway.json (instead of --admin-url)")
      ->each([&](const std::string&) { config_given = true; });
  add_admin_options(audit_query_cmd, admin_api_target, false);
  audit_query_cmd->add_option("--since", query.since, "entries at or after (RFC 3339)");
  audit_query_cmd->add_option("--until", query.until, "entries at or before (RFC 3339)");
  audit_query_cmd->add_option("--partner", query.partner, "partner id");
  audit_query_cmd->add_option("--message", query.message_id, "message id");
  audit_query_cmd->add_option("--event", query.event, "event, e.g. message.accepted");
  audit_query_cmd
      ->add_option("--limit", query.limit, "at most this many entries (0: all)")
      // Checked as text: a size_t would take -1 as "as many as there are".
      ->check(
          [](const std::string& value) {
            return !value.empty() && value.size() <= 18 &&
                           std::all_of(value.begin(), value.end(),
                                       [](unsigned char c) { return std::isdigit(c) != 0; })
                       ? std::string()
                       : std::string("a whole number, 0 (all) or more");
          },
          "NUMBER");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  command = command_name(app);
  // What a failure nobody foresaw exits with: 1 ("failed") for most commands, 2 ("cannot check",
  // "cannot translate") where 1 is a verdict: audit verify's "not intact", translate's "the
  // message is refused". Never a verdict the command did not reach.
  failure_status = *audit_verify_cmd || *translate_cmd ? 2 : 1;
  try {
    if (!admin_api_target.url.empty()) {
      // Before anything is asked: a URL or a missing certificate is bad usage, not a failure.
      if (const auto problem = admin_target_problem(admin_api_target)) {
        std::cerr << command << ": " << *problem << "\n";
        return 2;
      }
    }
    if (*serve_cmd) {
      return serve(config_file);
    }
    if (*check_cmd) {
      config::gateway_config config;
      auto problems = check_config(config_file, config);
      if (!problems.empty()) {
        std::cerr << format_problems(problems);
        return 2;
      }
      std::cout << config_file.string() << ": ok\n";
      return 0;
    }
    if (*init_cmd) {
      identity::certs_init({.dir = certs_dir, .force = force});
      std::cout << "development CA, server certificate, admin CA and admin certificate (admin.pem) "
                   "written to "
                << certs_dir.string() << "\n";
      return 0;
    }
    if ((*issue_cmd || *sign_cmd || *rotate_cmd) && !identity::is_valid_partner_id(partner_id)) {
      std::cerr << command
                << ": --partner is a partner id: lower-case letters, digits and '-', 2 to 63 "
                   "characters, starting with a letter or digit\n";
      return 2;
    }
    if (*issue_cmd) {
      auto issued = identity::certs_issue_partner(certs_dir, partner_id, out_prefix,
                                                  std::chrono::hours(24 * days));
      std::cout << "issued " << out_prefix.string() << ".pem for partner " << partner_id
                << " (serial " << issued.serial_hex << ", sha256 " << issued.sha256_fingerprint
                << ")\n";
      return 0;
    }
    if (*revoke_cmd && !admin_api_target.url.empty()) {
      if (!certs_dir.empty()) {
        std::cerr << "certs revoke: give --admin-url or --dir, not both\n";
        return 2;
      }
      return admin_revoke(admin_api_target, fingerprint, cert_file, serial, revoke_reason);
    }
    if (*revoke_cmd) {
      if (certs_dir.empty()) {
        std::cerr << "certs revoke: give --admin-url (a running gateway) or --dir\n";
        return 2;
      }
      if (!fingerprint.empty()) {
        std::cerr << "certs revoke: --fingerprint goes with --admin-url; give --serial or "
                     "--certificate\n";
        return 2;
      }
      if (serial.empty() && cert_file.empty()) {
        std::cerr << "certs revoke: give --serial or --certificate\n";
        return 2;
      }
      identity::certs_revoke(certs_dir, serial.empty() ? cert_file : serial);
      std::cout << "revoked; " << (certs_dir / "crl.pem").string()
                << " rewritten (a running gateway loads it at its next start; revoke through its "
                   "admin API to refuse the certificate at once)\n";
      return 0;
    }
    if (*list_cmd && !admin_api_target.url.empty()) {
      return admin_list_certificates(admin_api_target);
    }
    if (*list_cmd) {
      if (certs_dir.empty()) {
        std::cerr << "certs list: give --admin-url (a running gateway) or --dir\n";
        return 2;
      }
      for (const auto& r : identity::certs_list(certs_dir)) {
        std::cout << r.serial_hex << "  " << (r.revoked ? "revoked" : "valid  ") << "  "
                  << r.not_after << "  " << r.subject << "  " << r.san_uri << "\n";
      }
      return 0;
    }
    if (*keygen_cmd) {
      store::generate_key_file(key_out);
      std::cout << "store key written to " << key_out.string()
                << " (add it to store.encryption.keys in gateway.json)\n";
      return 0;
    }
    if (*rekey_cmd) {
      return run_rekey(config_file, rekey_batch);
    }
    if (*admin_cert_cmd) {
      identity::certs_init_admin(certs_dir, admin_name);
      std::cout << "admin certificate for " << admin_name << " written to " << certs_dir.string()
                << "\n";
      return 0;
    }
    if (*sign_cmd || *rotate_cmd) {
      const std::string csr = read_input(csr_file.string());
      std::string cert_pem;
      if (*sign_cmd && admin_api_target.url.empty()) {
        if (certs_dir.empty()) {
          std::cerr << "certs sign-csr: give --admin-url (a running gateway) or --dir\n";
          return 2;
        }
        cert_pem = identity::certs_sign_partner_csr(certs_dir, partner_id, csr,
                                                    std::chrono::hours(24 * days))
                       .cert_pem;
      } else {
        std::string body =
            "{\"csr\":" + json_quoted(csr) + ",\"validityDays\":" + std::to_string(days);
        if (*rotate_cmd && overlap_days >= 0) {
          body += ",\"overlapDays\":" + std::to_string(overlap_days);
        }
        body += "}";
        const auto r = admin_request(
            admin_api_target, "POST",
            "/admin/v1/partners/" + partner_id + "/certificates" + (*rotate_cmd ? "/rotate" : ""),
            body);
        if (int status = report_failure(*rotate_cmd ? "certs rotate" : "certs sign-csr", r)) {
          return status;
        }
        auto doc = parse_answer(r.body);
        cert_pem = std::string(json::get_string(doc, "certificate"));
        if (doc.HasMember("retiring")) {
          for (const auto& old : doc["retiring"].GetArray()) {
            std::cout << "retiring " << json::get_string(old, "serial") << " until "
                      << json::get_string(old, "retiringUntil") << "\n";
          }
        }
        if (const auto cut = json::get_string(doc, "cutOff"); !cut.empty()) {
          // Every other certificate of the partner, recorded or not, ends with the overlap.
          std::cout << "cut-off " << cut << ": every earlier certificate of " << partner_id
                    << " is refused after the overlap\n";
        }
      }
      identity::write_file_with_mode(cert_out, cert_pem, 0644);
      const auto d = identity::describe_certificate(cert_pem);
      std::cout << "signed " << cert_out.string() << " for partner " << partner_id << " (serial "
                << d.serial_hex << ", not after " << d.not_after << ")\n";
      return 0;
    }
    if (*expiring_cmd) {
      if (admin_api_target.url.empty()) {
        if (certs_dir.empty()) {
          std::cerr << "certs expiring: give --admin-url (a running gateway) or --dir\n";
          return 2;
        }
        const auto limit = std::chrono::system_clock::now() + std::chrono::hours(24 * within_days);
        for (const auto& r : identity::certs_list(certs_dir)) {
          const auto not_after = parse_rfc3339(r.not_after);
          if (!r.revoked && not_after && *not_after <= limit) {
            std::cout << r.serial_hex << "  " << r.not_after << "  " << r.subject << "  "
                      << r.san_uri << "\n";
          }
        }
        return 0;
      }
      const auto r =
          admin_request(admin_api_target, "GET",
                        "/admin/v1/certificates/expiring?days=" + std::to_string(within_days));
      if (int status = report_failure("certs expiring", r)) {
        return status;
      }
      for (const auto& c : parse_answer(r.body)["certificates"].GetArray()) {
        print_certificate_line(c);
      }
      return 0;
    }
    if (*partners_list_cmd) {
      const auto r = admin_request(admin_api_target, "GET", "/admin/v1/partners");
      if (int status = report_failure("partners list", r)) {
        return status;
      }
      const auto answer = parse_answer(r.body);
      for (const auto& p : answer["partners"].GetArray()) {
        const auto& d = p["definition"];
        std::cout << json::get_string(d, "id") << "  "
                  << (d["enabled"].GetBool() ? "enabled " : "disabled") << "  "
                  << json::get_string(d, "country") << "  " << json::get_string(d, "adapter")
                  << "  " << json::get_string(d, "name") << "\n";
      }
      return 0;
    }
    if (*partners_show_cmd || *partners_disable_cmd) {
      const auto r =
          *partners_show_cmd
              ? admin_request(admin_api_target, "GET", "/admin/v1/partners/" + partner_id)
              : admin_request(admin_api_target, "POST",
                              "/admin/v1/partners/" + partner_id + "/disable",
                              "{\"reason\":" + json_quoted(disable_reason) + "}");
      if (int status =
              report_failure(*partners_show_cmd ? "partners show" : "partners disable", r)) {
        return status;
      }
      std::cout << json::to_string(parse_answer(r.body)["definition"]) << "\n";
      return 0;
    }
    if (*export_cmd) {
      const auto r = admin_request(admin_api_target, "GET", "/admin/v1/export");
      if (int status = report_failure("config export", r)) {
        return status;
      }
      auto doc = parse_answer(r.body);
      std::filesystem::create_directories(export_dir);
      identity::write_file_with_mode(export_dir / "partners.json",
                                     json::to_string(doc["partners"]) + "\n", 0644);
      identity::write_file_with_mode(export_dir / "routing.json",
                                     json::to_string(doc["routing"]) + "\n", 0644);
      std::cout << "wrote " << (export_dir / "partners.json").string() << " and "
                << (export_dir / "routing.json").string() << "\n";
      return 0;
    }
    if (*reload_cmd) {
      // The problems (file, entry, reason) come back in the problem document's errors.
      const auto r = admin_request(admin_api_target, "POST", "/admin/v1/reload", "");
      if (int status = report_failure("config reload", r)) {
        return status;
      }
      std::cout << "reloaded\n";
      return 0;
    }
    if (*sim_cmd) {
      const auto listen = *sim::parse_listen(sim_listen);  // checked by the option's validator
      sim_options.address = listen.address;
      sim_options.port = listen.port;
      return sim::run_partner_sim_command(sim_options);
    }
    if (*translate_cmd) {
      return run_translate(config_file, from_format, to_format, translate_sender,
                           translate_recipient, read_input(translate_input));
    }
    if (*register_cmd) {
      return run_register_command(config_file, register_from, register_to);
    }
    if (*audit_verify_cmd) {
      return run_audit_verify(config_file, audit_certificates, audit_anchors);
    }
    const bool through_admin_api = !admin_api_target.url.empty();
    if ((*audit_query_cmd || *dead_cmd || *replay_cmd || *report_cmd) &&
        through_admin_api == config_given) {
      std::cerr << (*audit_query_cmd ? "audit query"
                    : *dead_cmd      ? "queue dead"
                    : *report_cmd    ? "report"
                                     : "queue replay")
                << ": give --admin-url (a running gateway) or --config (its store), one of them\n";
      return 2;
    }
    if (*report_cmd) {
      return through_admin_api ? admin_report(admin_api_target, report_req)
                               : run_report_command(config_file, report_req);
    }
    if (*audit_query_cmd) {
      return through_admin_api ? admin_audit_query(admin_api_target, query)
                               : run_audit_query(config_file, query);
    }
    if (*dead_cmd && through_admin_api) {
      return admin_dead_letters(admin_api_target);
    }
    if ((*replay_cmd && through_admin_api) || *discard_cmd) {
      return admin_dead_letter_action(admin_api_target, replay_id, replay_recipient,
                                      replay_cmd->parsed(), discard_reason);
    }
    if (*depth_cmd) {
      return admin_queue_depth(admin_api_target);
    }
    if (*escalations_cmd) {
      return admin_escalations(admin_api_target);
    }
    if (*persons_rekey_cmd) {
      return run_persons_rekey(config_file, persons_batch);
    }
    if (*candidates_cmd) {
      return admin_person_candidates(admin_api_target, persons_message);
    }
    if (*release_list_cmd) {
      return admin_release_list(admin_api_target);
    }
    if (*release_show_cmd) {
      return admin_release_show(admin_api_target, release_id, release_recipient);
    }
    if (*release_approve_cmd || *release_reject_cmd) {
      return admin_release_decide(admin_api_target, release_id, release_recipient,
                                  release_approve_cmd->parsed(), release_reason);
    }
    if (*dead_cmd || *replay_cmd) {
      return run_queue_command(config_file, replay_cmd->parsed(), replay_id, replay_recipient);
    }
    if (*send_cmd) {
      std::string error;
      const auto target = parse_https_url(url, error);
      if (!target) {
        std::cerr << "send: --url " << error << "\n";
        return 2;
      }
      const std::string body = method == "POST" ? read_input(input) : std::string();
      auto result = https_request(target->host, target->port, tls, method, target->target, body);
      if (result.status == 0) {
        std::cerr << "send: " << result.error << "\n";
        return 1;
      }
      std::cout << result.status << " " << result.body << "\n";
      return result.status < 300 ? 0 : 1;
    }
  } catch (const input_error& e) {
    std::cerr << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << command << ": " << e.what() << "\n";
    return failure_status;
  }
  return 2;
}

}  // namespace

int run(int argc, char** argv) {
  std::string command = "mxgw";
  int failure_status = 1;
  int status = run_command(argc, argv, command, failure_status);
  // The result goes to standard output: a write that failed there (a full disk, say)
  // is a failure to report, never an exit status 0 with nothing written.
  errno = 0;
  std::cout.flush();
  if (!std::cout) {
    const int error = errno;
    std::cerr << command << ": the result could not be written to standard output"
              << (error != 0 ? std::string(": ") + std::strerror(error) : std::string()) << "\n";
    if (status == 0) {
      status = failure_status;
    }
  }
  return status;
}

}  // namespace mxgw::cli
