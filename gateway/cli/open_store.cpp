// Opens the store gateway.json chooses: SQLite (the default) or PostgreSQL.
#include "gateway/cli/open_store.hpp"

#include "gateway/cli/gateway_instance.hpp"
#include "gateway/store/pg_probe.hpp"
#include "gateway/store/pg_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mxgw::cli {

namespace {

// The PostgreSQL options of `settings`, with the password read (never in an error text).
store::postgres_options postgres_options_of(const config::store_settings& settings) {
  store::postgres_options options;
  options.dsn = settings.dsn;
  options.schema = settings.schema;
  options.max_batch = settings.max_batch;
  try {
    options.password = config::read_store_password(settings);
  } catch (const std::runtime_error& e) {
    throw store::store_error(std::string("the PostgreSQL password ") + e.what());
  }
  return options;
}

}  // namespace

std::unique_ptr<store::message_store> open_configured_store(const config::store_settings& settings,
                                                            bool secure_delete) {
  try {
    if (settings.kind == "postgres") {
      return store::open_postgres_store(postgres_options_of(settings));
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

namespace {

// One secret (64 hex digits; a file of mode 0600 or stricter), as a data key is read.
mac_key load_secret(const config::store_key& key, const char* what) {
  try {
    return store::key_ring::load({{key.id, key.file, key.env}}, key.id).active().bytes;
  } catch (const store::key_error& e) {
    throw std::runtime_error(std::string(what) + ": " + e.what());
  }
}

}  // namespace

std::shared_ptr<const pipeline::match_key> load_match_key(const config::person_settings& settings) {
  if (!settings.enabled()) {
    return nullptr;
  }
  auto key = std::make_shared<pipeline::match_key>();
  key->bytes = load_secret(settings.match_key, "persons");
  return key;
}

std::shared_ptr<const mac_key> load_message_id_key(const config::message_id_settings& settings) {
  if (!settings.enabled()) {
    return nullptr;
  }
  return std::make_shared<const mac_key>(load_secret(settings.key, "message_ids"));
}

std::shared_ptr<store::message_store> open_configured_store_with_keys(
    const config::store_settings& settings) {
  const auto keys = load_store_keys(settings);
  std::shared_ptr<store::message_store> opened = open_configured_store(settings);
  return keys ? store::encrypt_at_rest(std::move(opened), keys) : opened;
}

std::vector<config::config_problem> problems_that_stop(
    const std::vector<config::config_problem>& problems,
    const std::vector<std::string_view>& used) {
  const auto is_used = [&used](std::string_view field) {
    return field.empty() || std::any_of(used.begin(), used.end(), [field](std::string_view part) {
             return field == part || (field.starts_with(part) && field[part.size()] == '/');
           });
  };
  // The reasons config::load_gateway_config gives for a part that is absent.
  const auto is_absence = [](std::string_view reason) {
    return reason == "is required" || reason.starts_with("needs at least one ") ||
           reason.ends_with(", which does not exist");
  };
  std::vector<config::config_problem> stopping;
  for (const auto& p : problems) {
    if (is_used(p.field) || !is_absence(p.reason)) {
      stopping.push_back(p);
    }
  }
  return stopping;
}

std::string missing_store_reason(const config::store_settings& settings) {
  if (settings.kind != "postgres") {
    return std::filesystem::is_regular_file(settings.path)
               ? std::string()
               : "there is no store at " + settings.path.string();
  }
  store::pg_store_probe found;
  try {
    found = store::probe_postgres_store(postgres_options_of(settings));
  } catch (const store::store_error& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
  switch (found.state) {
    case store::pg_store_state::present: return {};
    case store::pg_store_state::unreachable:
      // As opening the store would have failed: the store failed, not the request.
      throw std::runtime_error("store: " + found.message);
    case store::pg_store_state::absent:
    case store::pg_store_state::newer: break;
  }
  return found.message;
}

std::shared_ptr<store::message_store> open_existing_store(
    const std::filesystem::path& file, config::gateway_config& config, const char* command,
    bool with_keys, const std::vector<std::string_view>& also_used) {
  std::vector<config::config_problem> problems;
  config = config::load_gateway_config(file, problems);
  std::vector<std::string_view> used{"/store"};
  used.insert(used.end(), also_used.begin(), also_used.end());
  const auto stopping = problems_that_stop(problems, used);
  if (!stopping.empty()) {
    std::cerr << command << ": the configuration has problems; nothing was read\n"
              << format_problems(stopping);
    return nullptr;
  }
  std::shared_ptr<const store::key_ring> keys;
  if (with_keys) {
    try {
      keys = load_store_keys(config.store);
    } catch (const std::runtime_error& e) {
      // The key's id and what is wrong with it, never the key: a configuration problem, as
      // `mxgw config check` reports it.
      std::string reason = e.what();
      if (reason.starts_with("store: ")) {
        reason.erase(0, 7);
      }
      std::cerr << command << ": the configuration has problems; nothing was read\n"
                << format_problems({{file.string(), "/store/encryption", reason}});
      return nullptr;
    }
  }
  // Opening a store creates one when it is missing (and migrates it): a command on an existing
  // store must not verify, count or record into a fresh empty one.
  if (const auto missing = missing_store_reason(config.store); !missing.empty()) {
    std::cerr << command << ": " << missing << "; nothing was read or created\n";
    return nullptr;
  }
  std::shared_ptr<store::message_store> opened = open_configured_store(config.store);
  return keys ? store::encrypt_at_rest(std::move(opened), keys) : opened;
}

}  // namespace mxgw::cli
