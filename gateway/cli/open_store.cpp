// Opens the store gateway.json chooses: SQLite (the default) or PostgreSQL.
#include "gateway/cli/open_store.hpp"

#include "gateway/cli/gateway_instance.hpp"
#include "gateway/store/pg_store.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::cli {

std::unique_ptr<store::message_store> open_configured_store(const config::store_settings& settings,
                                                            bool secure_delete) {
  try {
    if (settings.kind == "postgres") {
      store::postgres_options options;
      options.dsn = settings.dsn;
      options.schema = settings.schema;
      options.max_batch = settings.max_batch;
      try {
        options.password = config::read_store_password(settings);
      } catch (const std::runtime_error& e) {
        throw store::store_error(std::string("the PostgreSQL password ") + e.what());
      }
      return store::open_postgres_store(options);
    }
    return store::open_sqlite_store({.path = settings.path,
                                     .max_batch = settings.max_batch,
                                     .max_size_bytes = settings.max_size_bytes,
                                     .checkpoint_pages = settings.checkpoint_pages,
                                     .wal_limit_pages = settings.wal_limit_pages,
                                     .secure_delete = secure_delete});
  } catch (const store::store_error& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
}

std::shared_ptr<const store::key_ring> load_store_keys(const config::store_settings& settings) {
  if (settings.keys.empty()) {
    return nullptr;
  }
  std::vector<store::key_source> sources;
  for (const auto& k : settings.keys) {
    sources.push_back({k.id, k.file, k.env});
  }
  try {
    return std::make_shared<const store::key_ring>(
        store::key_ring::load(sources, settings.active_key));
  } catch (const store::key_error& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
}

std::string cli_actor() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user != nullptr && *user != '\0' ? user : "unknown");
}

std::shared_ptr<const pipeline::match_key> load_match_key(const config::person_settings& settings) {
  if (!settings.enabled()) {
    return nullptr;
  }
  try {
    // The same format and checks as a data key (64 hex digits; a file of mode 0600 or stricter).
    const auto ring = store::key_ring::load(
        {{settings.match_key.id, settings.match_key.file, settings.match_key.env}},
        settings.match_key.id);
    auto key = std::make_shared<pipeline::match_key>();
    key->bytes = ring.active().bytes;
    return key;
  } catch (const store::key_error& e) {
    throw std::runtime_error(std::string("persons: ") + e.what());
  }
}

std::shared_ptr<store::message_store> open_configured_store_with_keys(
    const config::store_settings& settings) {
  const auto keys = load_store_keys(settings);
  std::shared_ptr<store::message_store> opened = open_configured_store(settings);
  return keys ? store::encrypt_at_rest(std::move(opened), keys) : opened;
}

std::shared_ptr<store::message_store> open_existing_store(const std::filesystem::path& file,
                                                          config::gateway_config& config,
                                                          const char* command, bool with_keys) {
  std::vector<config::config_problem> problems;
  config = config::load_gateway_config(file, problems);
  const bool sqlite = config.store.kind == "sqlite";
  if ((sqlite && config.store.path.empty()) || (!sqlite && config.store.dsn.empty())) {
    std::cerr << format_problems(problems);
    return nullptr;
  }
  if (sqlite && !std::filesystem::is_regular_file(config.store.path)) {
    std::cerr << command << ": there is no store at " << config.store.path.string() << "\n";
    return nullptr;
  }
  if (with_keys) {
    return open_configured_store_with_keys(config.store);
  }
  return open_configured_store(config.store);
}

}  // namespace mxgw::cli
