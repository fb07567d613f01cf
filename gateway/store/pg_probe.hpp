// Looks for an mxgw store in a PostgreSQL database without creating or changing anything, for the
// commands that work on an existing gateway's store (opening the store itself would create the
// schema and run every migration).
#pragma once

#include "gateway/store/pg_store.hpp"

#include <string>

namespace mxgw::store {

/// What probe_postgres_store found.
enum class pg_store_state {
  present,      ///< mxgw's tables at a schema version this build knows
  absent,       ///< no mxgw store: the schema does not exist, or holds no versioned mxgw_schema
  newer,        ///< an mxgw store of a schema version newer than postgres_schema_version
  unreachable,  ///< the server could not be reached or asked (connection, authentication, query)
};

struct pg_store_probe {
  pg_store_state state = pg_store_state::unreachable;
  int version = 0;       ///< the schema version found (present, newer); 0 otherwise
  std::string database;  ///< the database connected to (empty when unreachable)
  std::string schema;    ///< the schema looked in: options.schema, else the connection's current
  /// One sentence for the operator naming the schema and database (never the password): e.g.
  /// "there is no mxgw store in schema \"x\" of database \"y\"". Empty when present.
  std::string message;
};

/// Looks for the store open_postgres_store(options) would open: connects once (options.password,
/// options.connect_timeout_s; a read-only session), and reads whether `<schema>.mxgw_schema`
/// exists and the highest version it records. An empty options.schema means the connection's
/// current schema, as for the store. Creates nothing, changes nothing, and takes no lock.
/// Throws store_error (never quoting the DSN) when the DSN does not parse or carries a password.
pg_store_probe probe_postgres_store(const postgres_options& options);

}  // namespace mxgw::store
