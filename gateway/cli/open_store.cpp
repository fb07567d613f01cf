// Opens the store gateway.json chooses: SQLite (the default) or PostgreSQL.
#include "gateway/cli/open_store.hpp"

#include "gateway/store/pg_store.hpp"

#include <stdexcept>
#include <string>

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
                                     .secure_delete = secure_delete});
  } catch (const store::store_error& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
}

}  // namespace mxgw::cli
