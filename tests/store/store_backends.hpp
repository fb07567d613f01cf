// The databases the store contract tests run against: SQLite always, PostgreSQL when
// MXGW_TEST_PG_DSN names a server (scripts/test.sh starts a throwaway cluster and sets it). Each
// test directory gets its own PostgreSQL schema, so tests are isolated like SQLite files are.
#pragma once

#include "gateway/store/message_store.hpp"
#include "gateway/store/pg_store.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace mxgw::store::test_helpers {

using clock_function = std::function<time_point()>;

/// A database a test can open the store on, more than once (reopen tests).
struct backend {
  std::string name;
  /// Opens (or reopens) the store belonging to the test directory `dir`.
  std::function<std::unique_ptr<message_store>(const std::filesystem::path& dir,
                                               clock_function clock)>
      open;
  /// Removes what open() left outside `dir` (PostgreSQL: the schema); may be empty.
  std::function<void(const std::filesystem::path& dir)> cleanup;
};

/// The PostgreSQL server of the tests, or "" when none is configured.
inline std::string pg_test_dsn() {
  const char* dsn = std::getenv("MXGW_TEST_PG_DSN");
  return dsn != nullptr ? dsn : "";
}

/// The schema of the test directory `dir` (a valid identifier derived from its path).
inline std::string pg_schema_for(const std::filesystem::path& dir) {
  return "t_" + std::to_string(std::hash<std::string>{}(dir.string()));
}

/// Runs SQL on the test server from a connection of the test's own; returns the first column of
/// the first row ("" when there is none) and fails the test when the statement fails.
inline std::string pg_exec(const std::string& sql, const std::string& dsn = pg_test_dsn()) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to the test server: " << PQerrorMessage(conn);
    PQfinish(conn);
    return out;
  }
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    ADD_FAILURE() << sql << ": " << PQerrorMessage(conn);
  } else if (PQntuples(r) > 0 && PQnfields(r) > 0) {
    out = PQgetvalue(r, 0, 0);
  }
  PQclear(r);
  PQfinish(conn);
  return out;
}

/// The schema of the test directory `dir`, dropped (with everything in it) when this goes: for
/// tests that read or change the schema itself, such as migrations.
struct pg_scratch_schema {
  explicit pg_scratch_schema(const std::filesystem::path& dir) : name(pg_schema_for(dir)) {}
  ~pg_scratch_schema() { pg_exec("DROP SCHEMA IF EXISTS " + name + " CASCADE"); }
  pg_scratch_schema(const pg_scratch_schema&) = delete;
  pg_scratch_schema& operator=(const pg_scratch_schema&) = delete;

  /// pg_exec with this schema first on the search path.
  std::string query(const std::string& sql) const {
    return pg_exec("SET search_path TO " + name + "; " + sql);
  }

  std::string name;
};

inline postgres_options pg_options_for(const std::filesystem::path& dir, clock_function clock) {
  postgres_options options;
  options.dsn = pg_test_dsn();
  options.schema = pg_schema_for(dir);
  options.clock = std::move(clock);
  return options;
}

/// Why the tests of `b` cannot run here ("" when they can). The PostgreSQL variants are always
/// registered (ctest discovers tests at build time, when the test server is not running yet) and
/// skip, visibly, only when MXGW_TEST_PG_DSN is unset; scripts/test.sh always sets it.
inline std::string unavailable_reason(const backend& b) {
  if (b.name == "postgres" && pg_test_dsn().empty()) {
    return "MXGW_TEST_PG_DSN is not set (scripts/test.sh starts a PostgreSQL cluster)";
  }
  return "";
}

inline std::vector<backend> contract_backends() {
  std::vector<backend> all;
  all.push_back({"sqlite",
                 [](const std::filesystem::path& dir, clock_function clock) {
                   sqlite_options options;
                   options.path = dir / "store.db";
                   options.busy_timeout_ms = 60000;
                   options.clock = std::move(clock);
                   return open_sqlite_store(options);
                 },
                 {}});
  {
    all.push_back({"postgres",
                   [](const std::filesystem::path& dir, clock_function clock) {
                     return open_postgres_store(pg_options_for(dir, std::move(clock)));
                   },
                   [](const std::filesystem::path& dir) {
                     pg_exec("DROP SCHEMA IF EXISTS " + pg_schema_for(dir) + " CASCADE");
                   }});
  }
  return all;
}

/// A backend, plain or behind the encryption-at-rest decorator (name "<backend>_sealed").
struct sealable_backend {
  backend base;
  bool sealed = false;
  std::string name;
};

/// What gtest prints for a parameter (its name, not its bytes).
inline void PrintTo(const sealable_backend& b, std::ostream* os) {
  *os << b.name;
}

/// Every contract backend twice: plain, and behind the encryption-at-rest decorator.
inline std::vector<sealable_backend> sealable_backends() {
  std::vector<sealable_backend> all;
  for (const auto& b : contract_backends()) {
    all.push_back({b, false, b.name});
    all.push_back({b, true, b.name + "_sealed"});
  }
  return all;
}

}  // namespace mxgw::store::test_helpers
