// A read-only look for mxgw's tables in a PostgreSQL database (see pg_probe.hpp).
#include "gateway/store/pg_probe.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace mxgw::store {
namespace {

using connection_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

std::string first_line(const char* text) {
  std::string line = text != nullptr ? text : "";
  line = line.substr(0, line.find('\n'));
  return line;
}

// libpq keywords and values of the DSN, with the password from `options` (never from the DSN)
// and the store's defaults for the connect timeout and the application name.
void connection_parameters(const postgres_options& options, std::vector<std::string>& keywords,
                           std::vector<std::string>& values) {
  if (dsn_has_password(options.dsn)) {  // throws store_error when it does not parse
    throw store_error(
        "the PostgreSQL DSN carries a password; give it in store.password_file or "
        "store.password_env instead");
  }
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.dsn.c_str(), &error);
  PQfreemem(error);
  if (parsed == nullptr) {
    throw store_error("the PostgreSQL DSN does not parse");
  }
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::strcmp(o->keyword, "password") != 0) {
      keywords.emplace_back(o->keyword);
      values.emplace_back(o->val);
    }
  }
  PQconninfoFree(parsed);
  const auto set_default = [&](const std::string& key, const std::string& value) {
    if (std::find(keywords.begin(), keywords.end(), key) == keywords.end()) {
      keywords.push_back(key);
      values.push_back(value);
    }
  };
  if (!options.password.empty()) {
    keywords.emplace_back("password");
    values.push_back(options.password);
  }
  set_default("connect_timeout", std::to_string(std::max(options.connect_timeout_s, 1)));
  set_default("application_name", "mxgw");
}

// Runs a query with text parameters; nullptr (and `error` set) when it fails.
result_ptr query(PGconn* conn, const char* sql, const std::vector<std::string>& params,
                 std::string& error) {
  std::vector<const char*> p;
  for (const auto& v : params) {
    p.push_back(v.c_str());
  }
  result_ptr r(
      PQexecParams(conn, sql, static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0),
      &PQclear);
  const ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    // The primary message only: a DETAIL could quote row values.
    const char* primary = r ? PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    error = primary != nullptr ? primary : first_line(PQerrorMessage(conn));
    return result_ptr(nullptr, &PQclear);
  }
  return r;
}

std::string in_quotes(const std::string& name) {
  return "\"" + name + "\"";
}

}  // namespace

pg_store_probe probe_postgres_store(const postgres_options& options) {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  connection_parameters(options, keywords, values);
  std::vector<const char*> k;
  std::vector<const char*> v;
  for (std::size_t i = 0; i < keywords.size(); ++i) {
    k.push_back(keywords[i].c_str());
    v.push_back(values[i].c_str());
  }
  k.push_back(nullptr);
  v.push_back(nullptr);

  pg_store_probe found;
  const connection_ptr conn(PQconnectdbParams(k.data(), v.data(), 0), &PQfinish);
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    found.message = "cannot connect to PostgreSQL: " +
                    (conn ? first_line(PQerrorMessage(conn.get())) : std::string("out of memory"));
    return found;
  }
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  found.database = PQdb(conn.get());
  // The server answered but could not be asked (permissions, say): as unreachable.
  const auto failed = [&found](const std::string& what, const std::string& error) {
    found.state = pg_store_state::unreachable;
    found.message = "cannot " + what + " (database " + in_quotes(found.database) + "): " + error;
    return found;
  };
  std::string error;
  // Nothing below writes; the session says so too, so no slip can create anything.
  if (!query(conn.get(), "SET default_transaction_read_only = on", {}, error)) {
    return failed("start a read-only session", error);
  }
  found.schema = options.schema;
  if (found.schema.empty()) {
    // As the store: its tables are in the connection's current schema (the search_path's first).
    const result_ptr r = query(conn.get(), "SELECT current_schema()", {}, error);
    if (!r) {
      return failed("read the current schema", error);
    }
    if (PQgetisnull(r.get(), 0, 0) != 0) {
      found.state = pg_store_state::absent;
      found.message = "there is no mxgw store in database " + in_quotes(found.database) +
                      ": no schema of its search_path exists";
      return found;
    }
    found.schema = PQgetvalue(r.get(), 0, 0);
  }
  const std::string where =
      "schema " + in_quotes(found.schema) + " of database " + in_quotes(found.database);
  // The catalogs, not the table itself: readable by every role, and no name resolution.
  const result_ptr table = query(conn.get(),
                                 "SELECT n.nspname IS NOT NULL, c.oid IS NOT NULL "
                                 "FROM (SELECT 1) AS one "
                                 "LEFT JOIN pg_namespace AS n ON n.nspname = $1 "
                                 "LEFT JOIN pg_class AS c ON c.relnamespace = n.oid "
                                 "AND c.relname = 'mxgw_schema' AND c.relkind = 'r'",
                                 {found.schema}, error);
  if (!table) {
    return failed("look the schema up", error);
  }
  const bool schema_exists = std::strcmp(PQgetvalue(table.get(), 0, 0), "t") == 0;
  const bool table_exists = std::strcmp(PQgetvalue(table.get(), 0, 1), "t") == 0;
  if (!table_exists) {
    found.state = pg_store_state::absent;
    found.message =
        "there is no mxgw store in " + where +
        (schema_exists ? " (the schema has no table mxgw_schema)" : " (the schema does not exist)");
    return found;
  }
  char* name = PQescapeIdentifier(conn.get(), found.schema.c_str(), found.schema.size());
  if (name == nullptr) {
    return failed("quote the schema name", first_line(PQerrorMessage(conn.get())));
  }
  const std::string select = std::string("SELECT max(version) FROM ") + name + ".mxgw_schema";
  PQfreemem(name);
  const result_ptr version = query(conn.get(), select.c_str(), {}, error);
  if (!version) {
    return failed("read the schema version in schema " + in_quotes(found.schema), error);
  }
  found.version =
      PQgetisnull(version.get(), 0, 0) != 0 ? 0 : std::atoi(PQgetvalue(version.get(), 0, 0));
  if (found.version < 1) {
    found.version = 0;
    found.state = pg_store_state::absent;
    found.message = "there is no mxgw store in " + where + " (mxgw_schema records no version)";
    return found;
  }
  if (found.version > postgres_schema_version) {
    found.state = pg_store_state::newer;
    found.message = "the mxgw store in " + where + " is at schema version " +
                    std::to_string(found.version) + ", newer than this build of mxgw knows (" +
                    std::to_string(postgres_schema_version) + "); run a newer mxgw";
    return found;
  }
  found.state = pg_store_state::present;
  return found;
}

}  // namespace mxgw::store
