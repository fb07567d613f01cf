// Opens the store gateway.json chooses (store.kind): the embedded SQLite file or PostgreSQL.
#pragma once

#include "gateway/common/keyed_mac.hpp"
#include "gateway/config/gateway_config.hpp"
#include "gateway/pipeline/persons.hpp"
#include "gateway/store/message_store.hpp"
#include "gateway/store/sealed.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::cli {

/// Opens the configured store (see docs/storage.md). For PostgreSQL, the password is read from
/// store.password_file or store.password_env here, and kept out of every error text. Throws
/// std::runtime_error prefixed "store: " when the store cannot be opened. `secure_delete`: SQLite
/// overwrites freed bytes with zeros (sqlite_options::secure_delete); PostgreSQL ignores it.
std::unique_ptr<store::message_store> open_configured_store(const config::store_settings& settings,
                                                            bool secure_delete = true);

/// The key ring store.encryption names, or nullptr when it names no keys. Load it before the
/// store is opened, so a bad key stops a command before anything is touched. Throws
/// std::runtime_error prefixed "store: " naming the key id and what is wrong (never the key).
std::shared_ptr<const store::key_ring> load_store_keys(const config::store_settings& settings);

/// The actor of an operator's command on the store itself: "cli:<$USER>" ("cli:unknown" without
/// one). No authentication here: whoever can open the store (and its keys) is trusted; the admin
/// API is the authenticated path.
std::string cli_actor();

/// The key persons' digests are made under (persons.match_key; docs/persons.md), or nullptr when
/// none is set (matching off). Throws std::runtime_error prefixed "persons: " naming what is wrong
/// with the file or variable (never the key).
std::shared_ptr<const pipeline::match_key> load_match_key(const config::person_settings& settings);

/// The key the ids of messages that come in without one are derived under (message_ids.key;
/// docs/security.md), or nullptr when none is set. Throws std::runtime_error prefixed
/// "message_ids: " naming what is wrong with the file or variable (never the key).
std::shared_ptr<const mac_key> load_message_id_key(const config::message_id_settings& settings);

/// The configured store with its keys: wrapped in store::encrypt_at_rest when store.encryption
/// names keys (so what a command reads is opened and what it writes is sealed), as it is for
/// the gateway. Throws as load_store_keys and open_configured_store do.
std::shared_ptr<store::message_store> open_configured_store_with_keys(
    const config::store_settings& settings);

/// The problems of a configuration that stop a command which reads only some of it: every
/// problem, except that a part the command does not read (a pointer outside `used`, e.g.
/// "/store") is missing, is incomplete or names a file that does not exist. So a misspelled or
/// wrong setting anywhere stops it, while a copy of the configuration that names only what the
/// command needs (an inspector's, for `audit verify`) is enough.
std::vector<config::config_problem> problems_that_stop(
    const std::vector<config::config_problem>& problems, const std::vector<std::string_view>& used);

/// Why a command on an existing store must not open the one `settings` name, or "" when it may:
/// opening creates a missing store (and migrates an older one), so an empty store would
/// "verify" or count nothing. SQLite: "there is no store at PATH". PostgreSQL, looked at read
/// only first (store::probe_postgres_store): "there is no mxgw store in schema \"S\" of
/// database \"D\" (...)", or the store's schema version is newer than this build. Creates
/// nothing. Throws std::runtime_error prefixed "store: " when the PostgreSQL server cannot be
/// reached or asked, the DSN is refused, or the password cannot be read (never quoting it).
std::string missing_store_reason(const config::store_settings& settings);

/// For a command on an existing gateway's store (`mxgw audit`, `queue dead|replay`, `register`,
/// `report`): loads `file` into `config` and opens the store it names, with its keys when
/// `with_keys`. nullptr, with the reason on standard error prefixed by `command`, before anything
/// is read or created: when the configuration has problems (problems_that_stop with "/store" and
/// `also_used`; every one is listed), a key of store.encryption cannot be loaded (`with_keys`), or
/// there is no such store (missing_store_reason: no SQLite file, no mxgw store in the PostgreSQL
/// schema, or one newer than this build). Throws std::runtime_error prefixed "store: " when the
/// store itself cannot be reached or opened.
std::shared_ptr<store::message_store> open_existing_store(
    const std::filesystem::path& file, config::gateway_config& config, const char* command,
    bool with_keys = false, const std::vector<std::string_view>& also_used = {});

}  // namespace mxgw::cli
