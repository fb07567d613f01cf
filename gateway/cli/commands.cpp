// Subcommands of `mxgw`, all declared with CLI11 in one style.
#include "gateway/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cstdlib>
#include <csignal>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <thread>

#include "adapters/adapter.hpp"
#include "gateway/cli/client.hpp"
#include "gateway/cli/gateway_instance.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/sim/partner_sim.hpp"
#include "gateway/store/message_store.hpp"

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
  if (!out.partners_file.empty()) {
    const auto formats = adapters::adapter_ids();
    auto partners = std::make_shared<identity::partner_registry>(
        identity::partner_registry::load(out.partners_file, problems, &formats));
    if (!out.listener.tls.certificate.empty() && !out.listener.tls.private_key.empty() &&
        problems.empty()) {
      try {
        net::make_server_context(out.listener.tls, partners);
      } catch (const std::exception& e) {
        problems.push_back({file.string(), "/listener/tls", e.what()});
      }
    }
  }
  if (!out.schema_dir.empty() && !out.mappings_dir.empty()) {
    auto checker = pipeline::canonical_checker::load(out.schema_dir, out.mappings_dir, problems);
    if (!out.routing_file.empty() && !out.partners_file.empty()) {
      std::vector<config::config_problem> ignored;  // partner problems are reported above
      auto partners = identity::partner_registry::load(out.partners_file, ignored);
      pipeline::routing_rules::load(out.routing_file, problems, partners, checker.tables());
    }
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
  std::thread signal_thread([&] { signals_ioc.run(); });
  gateway.run();
  signals_ioc.stop();
  signal_thread.join();
  log::flush();
  return 0;
}

std::string read_input(const std::string& file) {
  if (file.empty() || file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw std::runtime_error(file + ": cannot be read");
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `mxgw queue dead|replay`: opens the configured store directly (SQLite allows the running
// gateway and this command at once).
int run_queue_command(const std::filesystem::path& config_file, bool replay,
                      const std::string& message_id, const std::string& recipient) {
  std::vector<config::config_problem> problems;
  auto config = config::load_gateway_config(config_file, problems);
  if (config.store.path.empty()) {
    std::cerr << format_problems(problems);
    return 2;
  }
  auto store = store::open_sqlite_store({.path = config.store.path});
  std::promise<int> result;
  // Outlives the store's handler, which runs on a store thread while we wait below.
  std::string id = message_id;
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (replay) {
    // The operator as the system knows them (no authentication here: whoever can open the store
    // file is trusted; the admin API is the authenticated path).
    const char* user = std::getenv("USER");
    std::vector<audit::audit_record> audit{
        {.event = "delivery.replayed",
         .actor = std::string("cli:") + (user != nullptr && *user != '\0' ? user : "unknown"),
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
    store->list_dead(1000, [&](std::vector<store::dead_letter> dead, bool ok) {
      if (!ok) {
        std::cerr << "queue dead: the store failed\n";
        result.set_value(1);
        return;
      }
      for (const auto& d : dead) {
        std::cout << d.message_id << "  " << d.recipient << "  " << d.type << "  from " << d.sender
                  << "  attempts " << d.attempts << "  since " << format_rfc3339_ms(d.dead_since)
                  << "  " << d.last_error << "\n";
      }
      result.set_value(0);
    });
  }
  const int status = result.get_future().get();
  store->stop();
  return status;
}

// `mxgw translate`: decode with one adapter, check as the gateway would, encode with another.
int run_translate(const std::filesystem::path& config_file, const std::string& from,
                  const std::string& to, const std::string& sender, const std::string& recipient,
                  const std::string& input) {
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
  std::vector<config::config_problem> problems;
  auto config = config::load_gateway_config(config_file, problems);
  if (config.schema_dir.empty() || config.mappings_dir.empty()) {
    std::cerr << format_problems(problems);
    return 2;
  }
  problems.clear();
  auto checker =
      pipeline::canonical_checker::load(config.schema_dir, config.mappings_dir, problems);
  if (!problems.empty()) {
    std::cerr << format_problems(problems);
    return 2;
  }
  auto print_errors = [](std::string_view what, const std::vector<pipeline::field_error>& errors) {
    std::cerr << "translate: " << what << "\n";
    for (const auto& e : errors) {
      std::cerr << "  " << (e.pointer.empty() ? "(document)" : e.pointer) << ": " << e.reason
                << "\n";
    }
  };
  const adapters::adapter_context in_ctx{.tables = &checker.tables(), .sender = sender};
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

}  // namespace

int run(int argc, char** argv) {
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

  // certs
  auto* certs_cmd = app.add_subcommand("certs", "Development CA and partner certificates");
  certs_cmd->require_subcommand(1);
  std::filesystem::path certs_dir;
  bool force = false;
  auto* init_cmd = certs_cmd->add_subcommand(
      "init", "Create a development CA and a localhost server certificate");
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
  std::string serial, cert_file;
  auto* revoke_cmd =
      certs_cmd->add_subcommand("revoke", "Revoke a certificate and rewrite crl.pem");
  revoke_cmd->add_option("--dir", certs_dir, "certificate directory")->required();
  auto* serial_opt = revoke_cmd->add_option("--serial", serial, "serial number (hex)");
  revoke_cmd->add_option("--cert", cert_file, "certificate file")->excludes(serial_opt);
  auto* list_cmd = certs_cmd->add_subcommand("list", "List issued certificates");
  list_cmd->add_option("--dir", certs_dir, "certificate directory")->required();

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
  sim_cmd->add_option("--fixtures", sim_options.fixtures_dir,
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

  // queue: dead letters on the local store (the running gateway picks replays up at its next poll)
  auto* queue_cmd = app.add_subcommand("queue", "Delivery queue and dead letters");
  queue_cmd->require_subcommand(1);
  auto* dead_cmd = queue_cmd->add_subcommand("dead", "List dead letters (metadata only)");
  dead_cmd->add_option("--config", config_file, "gateway.json")->required();
  std::string replay_id, replay_recipient;
  auto* replay_cmd = queue_cmd->add_subcommand("replay", "Deliver a dead letter again");
  replay_cmd->add_option("--config", config_file, "gateway.json")->required();
  replay_cmd->add_option("--message", replay_id, "message id")->required();
  replay_cmd->add_option("--recipient", replay_recipient, "recipient partner id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
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
      std::cout << "development CA and server certificate written to " << certs_dir.string()
                << "\n";
      return 0;
    }
    if (*issue_cmd) {
      auto issued = identity::certs_issue_partner(certs_dir, partner_id, out_prefix,
                                                  std::chrono::hours(24 * days));
      std::cout << "issued " << out_prefix.string() << ".pem for partner " << partner_id
                << " (serial " << issued.serial_hex << ", sha256 " << issued.sha256_fingerprint
                << ")\n";
      return 0;
    }
    if (*revoke_cmd) {
      if (serial.empty() && cert_file.empty()) {
        std::cerr << "certs revoke: give --serial or --cert\n";
        return 2;
      }
      identity::certs_revoke(certs_dir, serial.empty() ? cert_file : serial);
      std::cout << "revoked; " << (certs_dir / "crl.pem").string()
                << " rewritten (restart the gateway to load it)\n";
      return 0;
    }
    if (*list_cmd) {
      for (const auto& r : identity::certs_list(certs_dir)) {
        std::cout << r.serial_hex << "  " << (r.revoked ? "revoked" : "valid  ") << "  "
                  << r.not_after << "  " << r.subject << "  " << r.san_uri << "\n";
      }
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
    if (*dead_cmd || *replay_cmd) {
      return run_queue_command(config_file, replay_cmd->parsed(), replay_id, replay_recipient);
    }
    if (*send_cmd) {
      auto parsed = boost::urls::parse_absolute_uri(url);
      if (!parsed || parsed->scheme() != "https" || !parsed->has_authority()) {
        std::cerr << "send: --url must be an https:// URL\n";
        return 2;
      }
      const std::string host(parsed->encoded_host());
      const std::uint16_t port = parsed->has_port() ? parsed->port_number() : 443;
      std::string target(parsed->encoded_path());
      if (target.empty()) {
        target = "/";
      }
      const std::string body = method == "POST" ? read_input(input) : std::string();
      auto result = https_request(host, port, tls, method, target, body);
      if (result.status == 0) {
        std::cerr << "send: " << result.error << "\n";
        return 1;
      }
      std::cout << result.status << " " << result.body << "\n";
      return result.status < 300 ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "mxgw: " << e.what() << "\n";
    return 1;
  }
  return 2;
}

}  // namespace mxgw::cli
