// `mxgw keys rekey --config FILE` run as a real process: old records end up under the active key
// (the old key can then leave the configuration), a second run changes nothing, a record whose key
// is missing is counted and kept, and a wrong or absent configuration is refused with a clear
// error and no byte of the store changed.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/sqlite_store.hpp"
#include "tests/support/mxgw_process.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::test {
namespace {

/// Every body and payload in the file: (message id, recipient or "") -> bytes.
std::map<std::pair<std::string, std::string>, std::string> stored_values(
    const std::filesystem::path& db_file) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT id, '', body FROM messages UNION ALL "
                               "SELECT message_id, recipient, payload FROM deliveries",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt, 2));
    out[{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
         reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))}] =
        std::string(bytes != nullptr ? bytes : "",
                    static_cast<std::size_t>(sqlite3_column_bytes(stmt, 2)));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

class KeysRekeyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    identity::certs_init({.dir = dir_ / "certs"});
    write_file(dir_ / "partners.json", R"({"partners": [
      {"id": "vn-gialai", "name": "Gia Lai Provincial Police", "country": "VN"}]})");
    store::generate_key_file(dir_ / "old.hex");
    store::generate_key_file(dir_ / "new.hex");
    store::generate_key_file(dir_ / "lost.hex");
    // Records sealed under "old" (and one under "lost", a key the configuration will not name),
    // stored as the gateway stores them.
    accept_under({{"old", dir_ / "old.hex", ""}}, "old", 1, 3);
  }

  void accept_under(const std::vector<store::key_source>& keys, const std::string& active, int from,
                    int to) {
    auto ring = std::make_shared<const store::key_ring>(store::key_ring::load(keys, active));
    store::sqlite_options options;
    options.path = db_file();
    auto sealed = store::encrypt_at_rest(store::open_sqlite_store(options), ring);
    for (int n = from; n <= to; ++n) {
      const std::string id = "00000000-0000-4000-8000-00000000000" + std::to_string(n);
      const std::string body = R"({"name":"CANARY-BODY-)" + std::to_string(n) + R"("})";
      store::message_record r{id, "vn-gialai", "hotline.tip", "2026-11-22T04:38:47Z", "sha", body};
      r.deliveries.push_back({"kh-ratanakiri", "explicit", "CANARY-KH-" + std::to_string(n), "[]"});
      r.deliveries.push_back({"vn-thanhhoa", "explicit", "CANARY-TH-" + std::to_string(n), "[]"});
      std::promise<store::accept_outcome> p;
      sealed->accept(std::move(r), [&p](store::accept_result a) { p.set_value(a.outcome); });
      ASSERT_EQ(p.get_future().get(), store::accept_outcome::stored);
    }
    sealed->stop();
  }

  /// gateway.json with `encryption` as the store's encryption member ("" for none).
  void write_config(const std::string& encryption, const std::string& store_path = "var/mxgw.db") {
    write_file(config_file(), R"({
      "listener": {"address": "127.0.0.1", "port": 0,
        "tls": {"certificate": "certs/server.pem", "private_key": "certs/server.key",
                "partner_ca": ["certs/ca.pem"]}},
      "store": {"path": ")" + store_path +
                                  "\"" +
                                  (encryption.empty() ? "" : ", \"encryption\": " + encryption) +
                                  R"(},
      "partners": "partners.json",
      "schema_dir": ")" + (source_dir() / "config" / "schema").string() +
                                  R"(",
      "mappings_dir": ")" + (source_dir() / "config" / "mappings").string() +
                                  R"("})");
  }

  run_result rekey(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"keys", "rekey", "--config", config_file().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_mxgw(args, dir_.path());
  }

  /// Opens every value with only the keys given; counts those that do not open.
  std::size_t unopenable_with(const std::vector<store::key_source>& keys,
                              const std::string& active) {
    const auto ring = store::key_ring::load(keys, active);
    std::size_t bad = 0;
    for (const auto& [place, bytes] : stored_values(db_file())) {
      const std::string context = store::seal_context(
          place.first, place.second.empty() ? std::string("body") : "to:" + place.second);
      bad += store::open_sealed(ring, bytes, context) ? 0 : 1;
    }
    return bad;
  }

  std::filesystem::path config_file() const { return dir_ / "gateway.json"; }
  std::filesystem::path db_file() const { return dir_ / "var" / "mxgw.db"; }

  temp_dir dir_;
};

const std::string old_and_new = R"({"active": "new", "keys": [
    {"id": "old", "file": "old.hex"}, {"id": "new", "file": "new.hex"}]})";

TEST_F(KeysRekeyCli, OldRecordsAreResealedAndTheOldKeyCanGo) {
  write_config(old_and_new);
  ASSERT_EQ(unopenable_with({{"new", dir_ / "new.hex", ""}}, "new"), 9U);

  auto r = rekey({"--batch", "2"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("re-sealed 9, sealed from clear text 0, already current 0, unreadable "
                       "(key missing) 0, unreadable (do not open) 0; 3 messages in 2 batches"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("older keys may now be removed"), std::string::npos) << r.out;
  // With the old key gone, every body and payload opens.
  EXPECT_EQ(unopenable_with({{"new", dir_ / "new.hex", ""}}, "new"), 0U);
  // No clear text in the file or beside it.
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "var")) {
    EXPECT_EQ(read_file(entry.path()).find("CANARY"), std::string::npos) << entry.path();
  }

  // Run again (as after an interruption): nothing left to do, no byte changed.
  const auto before = stored_values(db_file());
  r = rekey();
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("re-sealed 0, sealed from clear text 0, already current 9"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(stored_values(db_file()), before);

  // The runs are in the audit chain, as counts.
  r = run_mxgw({"audit", "query", "--config", config_file().string(), "--event", "store.rekeyed"},
               dir_.path());
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find(R"("resealed":"9")"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("CANARY"), std::string::npos);
}

TEST_F(KeysRekeyCli, ARecordWhoseKeyIsMissingIsReportedAndKept) {
  accept_under({{"lost", dir_ / "lost.hex", ""}}, "lost", 4, 4);
  write_config(old_and_new);
  const auto before = stored_values(db_file());
  const auto r = rekey();
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.out.find("re-sealed 9, sealed from clear text 0, already current 0, unreadable "
                       "(key missing) 3"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("3 values are not under key 'new' and were left as they are"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("00000000-0000-4000-8000-000000000004"), std::string::npos)
      << "counted, never named";
  const auto after = stored_values(db_file());
  for (const char* recipient : {"", "kh-ratanakiri", "vn-thanhhoa"}) {
    const std::pair<std::string, std::string> place{"00000000-0000-4000-8000-000000000004",
                                                    recipient};
    EXPECT_EQ(after.at(place), before.at(place)) << recipient;
  }
}

TEST_F(KeysRekeyCli, AWrongOrAbsentConfigurationIsRefusedAndChangesNothing) {
  const std::string before = read_file(db_file());
  const auto refused = [&](const char* what, const std::string& expected) {
    const auto r = rekey();
    EXPECT_EQ(r.exit_status, 2) << what << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << what << ": " << r.err;
    EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(read_file(db_file()), before) << what;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "var" / "mxgw.db-wal")) << what;
  };

  refused("no configuration file", "gateway.json");
  write_config("");
  refused("no keys", "names no store.encryption keys");
  write_config(R"({"active": "newer", "keys": [{"id": "old", "file": "old.hex"}]})");
  refused("an active key that is not listed",
          "/store/encryption/active: must name one of the keys");
  ::chmod((dir_ / "new.hex").c_str(), 0644);
  write_config(old_and_new);
  refused("a key file open to others", "readable by others");
  ::chmod((dir_ / "new.hex").c_str(), 0600);
  write_config(old_and_new, "var/elsewhere.db");
  refused("no store at the path", "there is no store at");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "var" / "elsewhere.db")) << "none is created";
  EXPECT_EQ(unopenable_with({{"old", dir_ / "old.hex", ""}}, "old"), 0U);
}

}  // namespace
}  // namespace mxgw::test
