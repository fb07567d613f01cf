// Subcommands of `mxgw`, all declared with CLI11 in one style.
#include "gateway/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/url/parse.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "gateway/cli/client.hpp"
#include "gateway/cli/gateway_instance.hpp"
#include "gateway/common/log.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/pipeline/canonical_check.hpp"

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
    auto partners = std::make_shared<identity::partner_registry>(
        identity::partner_registry::load(out.partners_file, problems));
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
    pipeline::canonical_checker::load(out.schema_dir, out.mappings_dir, problems);
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
