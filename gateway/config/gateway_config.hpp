// gateway.json: listener, TLS, limits, store, partners, schemas and tables. Loaded once at start;
// every problem is reported with the file and the field, not just the first.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::config {

using identity::config_problem;

/// Limits of the partner listener. Every one is a named knob with its unit in the name.
struct listener_limits {
  std::size_t max_body_bytes = 1024 * 1024;     ///< larger bodies: 413
  std::size_t max_header_bytes = 16 * 1024;     ///< larger request heads: 431
  std::size_t max_connections = 1024;           ///< more concurrent connections are closed at once
  std::size_t max_connections_per_address = 256;  ///< the same, per client IP address
  std::uint32_t handshake_timeout_ms = 10'000;  ///< TLS handshake must finish within this
  std::uint32_t header_timeout_ms = 10'000;     ///< the whole request head must arrive within this
  std::uint32_t body_timeout_ms = 30'000;       ///< the whole body must arrive within this
  std::uint32_t idle_timeout_ms = 60'000;       ///< keep-alive wait for the next request
  std::uint32_t write_timeout_ms = 30'000;      ///< the response must be taken within this
  /// A connection is closed once this long has passed since it was accepted: after the answer in
  /// progress (sent with `Connection: close`), or at once when it is idle. 1..86400.
  std::uint32_t max_connection_lifetime_seconds = 3'600;
  std::size_t max_json_depth = 64;              ///< deepest nesting accepted in a message
};

struct tls_settings {
  std::filesystem::path certificate;               ///< the gateway's server certificate (PEM chain)
  std::filesystem::path private_key;               ///< its key (PEM), readable by the gateway only
  std::vector<std::filesystem::path> partner_cas;  ///< trust anchors for partner certificates
  /// Trust anchors of other agencies, whose certificates name partners by pinned fingerprint
  /// only: a partner SAN URI in a certificate that chains to one of these names no one.
  std::vector<std::filesystem::path> pinned_partner_cas;
  std::vector<std::filesystem::path> crls;         ///< CRLs checked for every client certificate
  std::string min_version = "1.3";                 ///< "1.3" (default) or "1.2"
};

struct listener_settings {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8443;  ///< 0: any free port (tests)
  tls_settings tls;
  listener_limits limits;
};

/// A data key for encryption at rest: 64 hex digits in a file (mode 0600) or an environment variable.
struct store_key {
  std::string id;
  std::filesystem::path file;
  std::string env;
};

struct store_settings {
  std::string kind = "sqlite";  ///< "sqlite" (embedded, one file) or "postgres" (shared server)
  /// Encryption at rest (AES-256-GCM) of bodies and payloads: the keys that can be read with and
  /// the one new records are sealed with. No keys: bodies are stored in clear (a warning at start).
  std::vector<store_key> keys;
  std::string active_key;
  /// Retention: a delivered copy's bytes are purged this many days after delivery, a dead (or
  /// discarded) one this many days after it died; a message's body once no copy needs it.
  std::uint32_t retention_delivered_days = 30;
  std::uint32_t retention_dead_days = 90;
  std::uint32_t retention_sweep_interval_s = 3600;
  std::filesystem::path path;   ///< SQLite file
  std::size_t max_batch = 512;
  std::uint64_t max_size_bytes = 0;  ///< SQLite only; 0: no cap
  /// SQLite only: the background checkpoint's trigger and the write-ahead log's bound, in pages
  /// (store::sqlite_options::checkpoint_pages / wal_limit_pages).
  std::uint32_t checkpoint_pages = 4096;
  std::uint32_t wal_limit_pages = 65536;
  // PostgreSQL only.
  std::string dsn;                      ///< libpq connection string or URI, without a password
  std::filesystem::path password_file;  ///< the password, in a file of mode 0600 (or stricter)
  std::string password_env;             ///< or: the environment variable holding it
  std::string schema;                   ///< schema of mxgw's tables; empty: the default
};

/// The PostgreSQL password named by `store` (password_file, trailing newline removed, or
/// password_env); empty when neither is set. Throws std::runtime_error naming the file or variable
/// (never the password) when the file cannot be read or is open to group or others, or the
/// variable is not set.
std::string read_store_password(const store_settings& store);

/// Outbound delivery to partners. Absent members default to the listener's certificate, key and
/// partner trust anchors (the gateway is the same party in both directions).
struct delivery_settings {
  std::filesystem::path client_certificate;              ///< the gateway's client certificate
  std::filesystem::path client_key;                      ///< its key
  std::vector<std::filesystem::path> partner_server_ca;  ///< trust anchors for partner endpoints
  /// CRLs for partner endpoints' certificates; default: the listener's CRLs when
  /// partner_server_ca is the listener's too, else none (no CRL check).
  std::vector<std::filesystem::path> partner_server_crl;
  std::string instance = "mxgw";                         ///< lease owner name of this instance
  std::uint32_t lease_ms = 120'000;        ///< a claimed delivery is retaken after this
  std::uint32_t poll_interval_ms = 1'000;  ///< due retries are looked for at least this often
  std::size_t max_in_flight = 64;          ///< deliveries in progress at once
  std::uint32_t breaker_failures = 5;      ///< consecutive failures that open a circuit
  std::uint32_t breaker_open_ms = 30'000;  ///< how long an open circuit stays open
  bool enabled = true;                     ///< false: accept and store only (no workers)
};

/// The audit chain's checkpoints and limits (docs/audit.md).
struct audit_settings {
  std::uint64_t checkpoint_every_entries = 1000;  ///< sign the head once this many entries are new
  std::uint32_t checkpoint_interval_s = 300;      ///< ... or this long after the last checkpoint
  std::uint32_t refusals_per_minute = 60;         ///< refusal entries per partner a minute
};

/// Verification deadlines (`deadlines` in gateway.json): how often the gateway looks for
/// verification requests past their deadline without an answer, and how far back.
struct deadline_settings {
  std::uint32_t sweep_interval_s = 300;  ///< look this often (and once at start)
  std::uint32_t lookback_days = 180;     ///< requests accepted up to this long ago are watched
  /// A copy held for four-eyes release this long after its message was accepted is escalated.
  std::uint32_t held_after_hours = 24;
};

/// The admin listener (`admin` in gateway.json): present = on. Its own port and its own trust
/// anchors, which must not be partner anchors; certificate and key default to the listener's.
struct admin_settings {
  bool enabled = false;                          ///< true when gateway.json has `admin`
  listener_settings listener;                    ///< tls.partner_cas holds the admin anchors
  std::filesystem::path signing_dir;             ///< `mxgw certs` directory whose CA signs CSRs
  std::uint32_t state_poll_ms = 1'500;           ///< other instances' changes are read this often
  std::uint32_t default_overlap_days = 14;       ///< rotation overlap when a request names none
  std::uint32_t default_validity_days = 365;     ///< certificates signed from a CSR
};

/// Persons across messages (docs/persons.md): the key the persons' digests are made under. No key:
/// no digests are kept and the candidates endpoint says matching is off.
struct person_settings {
  store_key match_key;  ///< id unused ("match"); file or env as for a data key
  bool enabled() const { return !match_key.file.empty() || !match_key.env.empty(); }
};

/// The secret the ids of messages that come in without one (partner formats, feeds) are derived
/// under (docs/security.md, "Message ids"). No key: they are derived without one, and anyone can
/// compute the id another partner's next message will get.
struct message_id_settings {
  store_key key;  ///< id unused ("message-ids"); file or env as for a data key
  bool enabled() const { return !key.file.empty() || !key.env.empty(); }
};

/// Notice feeds polled by the gateway (`feed` in gateway.json; each feed itself is defined on its
/// partner, docs/configuration.md "Notice feeds"). Applies to every feed, each on its own,
/// unless the feed sets its own cap (feed_settings::max_withdrawals_per_sweep).
struct feed_limits {
  /// A sweep of one feed that would withdraw more notices than this withdraws none of them (a
  /// mass disappearance is taken as a broken feed or relay, not as news): they are kept, the
  /// hold is logged and counted, and the next sweep checks again. 1..100000.
  std::uint32_t max_withdrawals_per_sweep = 10;
};

struct log_settings {
  std::string level = "info";
  std::filesystem::path file;  ///< empty: standard error
};

struct gateway_config {
  std::filesystem::path source;  ///< the file this came from
  std::size_t threads = 0;       ///< 0: one per hardware core
  listener_settings listener;
  store_settings store;
  delivery_settings delivery;
  audit_settings audit;
  deadline_settings deadlines;
  admin_settings admin;
  person_settings persons;
  message_id_settings message_ids;
  feed_limits feed;
  std::filesystem::path partners_file;
  std::filesystem::path routing_file;  ///< routing rules; empty: explicit recipients only
  std::filesystem::path schema_dir;
  std::filesystem::path mappings_dir;
  std::filesystem::path translit_dir;  ///< <Script>-Latn.txt ICU rules; empty: no transliteration
  std::filesystem::path adapters_dir;  ///< mapping files of config-only partners; empty: none
  log_settings log;
};

/// Reads `file`. Relative paths inside it are resolved against the file's directory. Unknown
/// members, wrong types, out-of-range values and missing files are appended to `problems`.
gateway_config load_gateway_config(const std::filesystem::path& file,
                                   std::vector<config_problem>& problems);

}  // namespace mxgw::config
