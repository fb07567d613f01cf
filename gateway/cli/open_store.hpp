// Opens the store gateway.json chooses (store.kind): the embedded SQLite file or PostgreSQL.
#pragma once

#include "gateway/config/gateway_config.hpp"
#include "gateway/store/message_store.hpp"

#include <memory>

namespace mxgw::cli {

/// Opens the configured store (see docs/storage.md). For PostgreSQL, the password is read from
/// store.password_file or store.password_env here, and kept out of every error text. Throws
/// std::runtime_error prefixed "store: " when the store cannot be opened. `secure_delete`: SQLite
/// overwrites freed bytes with zeros (sqlite_options::secure_delete); PostgreSQL ignores it.
std::unique_ptr<store::message_store> open_configured_store(const config::store_settings& settings,
                                                            bool secure_delete = true);

}  // namespace mxgw::cli
