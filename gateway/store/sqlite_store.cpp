// The SQLite store: WAL + synchronous=FULL, a versioned schema, group commit of accepts and
// delivery bookkeeping on one writer thread, and look-ups on a reader thread with its own
// read-only connection.
#include "gateway/store/sqlite_store.hpp"

#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/release_step.hpp"
#include "gateway/store/sealed.hpp"
#include "gateway/store/wal_buffer.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace mxgw::store {
namespace {

// ---------------------------------------------------------------------------------------------
// Schema

/// migrations[N - 1] brings a database from version N - 1 to N. Append only: a shipped migration
/// is never edited, because databases in the field already ran it.
constexpr std::array<const char*, sqlite_schema_version> migrations = {
    // 1: accepted messages. The body is kept as the exact submitted bytes.
    R"sql(
      CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        sender      TEXT NOT NULL,
        type        TEXT NOT NULL,
        created     TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        body        BLOB NOT NULL,
        state       TEXT NOT NULL DEFAULT 'accepted'
      );
      CREATE INDEX messages_by_sender ON messages (sender);
    )sql",
    // 2: one delivery row per recipient (the outbox the delivery workers claim from, times in ms
    // since the epoch), and the partners routing considered but excluded (for the status view).
    // Messages stored by version 1 keep their state and get no delivery rows.
    R"sql(
      CREATE TABLE deliveries (
        message_id      TEXT NOT NULL REFERENCES messages (id),
        recipient       TEXT NOT NULL,
        decided_by      TEXT NOT NULL,
        payload         BLOB NOT NULL,
        withheld        TEXT NOT NULL DEFAULT '[]',
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_expires   INTEGER,
        last_error      TEXT NOT NULL DEFAULT '',
        receipt         TEXT NOT NULL DEFAULT '',
        delivered_at    INTEGER,
        dead_since      INTEGER,
        PRIMARY KEY (message_id, recipient)
      );
      CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
      CREATE TABLE exclusions (
        message_id TEXT NOT NULL REFERENCES messages (id),
        partner    TEXT NOT NULL,
        considered TEXT NOT NULL,
        reason     TEXT NOT NULL
      );
      CREATE INDEX exclusions_by_message ON exclusions (message_id);
    )sql",
    // 3: the audit chain (append-only: the triggers stop the gateway itself from ever changing
    // an entry; the hash chain is what exposes anyone else who does), its signed checkpoints,
    // and the administrative state (changes made since the configuration files were read).
    R"sql(
      CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY,
        at         TEXT NOT NULL,
        event      TEXT NOT NULL,
        actor      TEXT NOT NULL,
        partner    TEXT NOT NULL,
        message_id TEXT NOT NULL,
        entry      TEXT NOT NULL,
        hash       TEXT NOT NULL
      );
      CREATE INDEX audit_by_message ON audit (message_id) WHERE message_id <> '';
      CREATE INDEX audit_by_partner ON audit (partner, seq) WHERE partner <> '';
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TABLE audit_checkpoints (
        seq       INTEGER PRIMARY KEY,
        hash      TEXT NOT NULL,
        at        TEXT NOT NULL,
        signer    TEXT NOT NULL,
        signature TEXT NOT NULL
      );
      CREATE TABLE state (
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        version    INTEGER NOT NULL UNIQUE,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL,
        PRIMARY KEY (kind, key)
      );
    )sql",
    // 4: retention. A message whose body was purged keeps its row (metadata, status, audit) with
    // the time of the purge.
    R"sql(
      ALTER TABLE messages ADD COLUMN purged_at INTEGER;
      CREATE INDEX messages_unpurged ON messages (accepted_at) WHERE purged_at IS NULL;
    )sql",
    // 5: claims read only this index. The claim ranks every due row per recipient; with the
    // recipient and the lease in the index it no longer reads each row from the table (where the
    // payload is), which made claims slower the longer the queue grew. It replaces
    // deliveries_due, of which it is an extension.
    R"sql(
      CREATE INDEX deliveries_claim ON deliveries (state, next_attempt_at, recipient, lease_expires);
      DROP INDEX deliveries_due;
    )sql",
    // 6: a recipient that gets the body as stored (canonical, nothing withheld) has no payload
    // of its own: the body is not stored twice. Rows stored before keep their payloads.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN payload_is_body INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 7: no query reads the audit log by message id (the audit queries scan the chain in order),
    // and with message ids random every entry about a message touched a leaf page of this index
    // anywhere in it: some 1.6 pages written per accepted message, a third of the log's growth.
    R"sql(
      DROP INDEX audit_by_message;
    )sql",
    // 8: delivery rows are found by the message's position (messages.seq: 1, 2, 3, ... in the
    // order of acceptance) instead of its id, so their unique index grows at its end instead of
    // taking an insert at a random place per message (message ids are random). The position is a
    // column of its own, not the rowid, which VACUUM may renumber in a table without an INTEGER
    // PRIMARY KEY. The table is rebuilt with its rowids (a claim's leases name them).
    R"sql(
      ALTER TABLE messages ADD COLUMN seq INTEGER;
      UPDATE messages SET seq = rowid;
      CREATE UNIQUE INDEX messages_by_seq ON messages (seq);
      CREATE TABLE deliveries_v8 (
        message_id      TEXT NOT NULL REFERENCES messages (id),
        recipient       TEXT NOT NULL,
        decided_by      TEXT NOT NULL,
        payload         BLOB NOT NULL,
        withheld        TEXT NOT NULL DEFAULT '[]',
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_expires   INTEGER,
        last_error      TEXT NOT NULL DEFAULT '',
        receipt         TEXT NOT NULL DEFAULT '',
        delivered_at    INTEGER,
        dead_since      INTEGER,
        payload_is_body INTEGER NOT NULL DEFAULT 0,
        message_seq     INTEGER NOT NULL
      );
      INSERT INTO deliveries_v8 (rowid, message_id, recipient, decided_by, payload, withheld,
                                 state, attempts, next_attempt_at, lease_owner, lease_expires,
                                 last_error, receipt, delivered_at, dead_since, payload_is_body,
                                 message_seq)
        SELECT d.rowid, d.message_id, d.recipient, d.decided_by, d.payload, d.withheld, d.state,
               d.attempts, d.next_attempt_at, d.lease_owner, d.lease_expires, d.last_error,
               d.receipt, d.delivered_at, d.dead_since, d.payload_is_body, m.seq
          FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id;
      DROP TABLE deliveries;
      ALTER TABLE deliveries_v8 RENAME TO deliveries;
      CREATE UNIQUE INDEX deliveries_by_message ON deliveries (message_seq, recipient);
      CREATE INDEX deliveries_claim ON deliveries (state, next_attempt_at, recipient, lease_expires);
    )sql",
    // 9: two indexes no query reads: messages by sender (the register scans the messages it
    // counts, every other statement finds a message by id or position) and the audit log by
    // partner (the audit queries scan the chain in order). Each cost every commit its own pages
    // in the log: some 3 of the 42 frames of a group commit in benchmark (a).
    R"sql(
      DROP INDEX messages_by_sender;
      DROP INDEX audit_by_partner;
    )sql",
    // 10: the claim index leads with the recipient after the state, so a claim reads each
    // recipient's oldest due rows and stops at as many as it can take. Ordered by due time first,
    // a claim had to number every due row of every recipient to be fair to them, and a queue of
    // thousands made each claim, and so each delivery, slower (benchmark (c)).
    R"sql(
      DROP INDEX deliveries_claim;
      CREATE INDEX deliveries_claim ON deliveries (state, recipient, next_attempt_at);
    )sql",
    // 11: each message's statistical facts (coarse categories for `mxgw report`, sealed like the
    // body when encryption at rest is on), kept when retention purges the body. Messages stored
    // before have none (empty): the report counts them as without facts.
    R"sql(
      ALTER TABLE messages ADD COLUMN facts BLOB NOT NULL DEFAULT x'';
    )sql",
    // 12: four-eyes release. A copy held back by a release rule (`hold`, its id) waits in the
    // state 'held', which no claim reads, until administrators release it (`approvals`: a JSON
    // array of {"by","at"}; `released_at`: ms since the epoch, when it became pending) or reject
    // it. The partial index lists the held copies in the order of their messages without reading
    // any other row. Rows stored before were never held.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN hold TEXT NOT NULL DEFAULT '';
      ALTER TABLE deliveries ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE deliveries ADD COLUMN released_at INTEGER;
      CREATE INDEX deliveries_held ON deliveries (message_seq) WHERE state = 'held';
    )sql",
    // 13: the end of the message's `handling.expires` day (ms since the epoch, UTC), after which
    // its source allows no processing: claims hand it out with each copy, and the delivery
    // service sends none after it. NULL: the message does not expire (every one stored before).
    R"sql(
      ALTER TABLE messages ADD COLUMN expires_at INTEGER;
    )sql",
    // 14: retention finds the expired messages whose data it has not purged yet from this index
    // alone: it lists only messages that expire and still have a body (a few, since retention
    // takes them), so a sweep never reads every message.
    R"sql(
      CREATE INDEX messages_expiring ON messages (expires_at)
        WHERE expires_at IS NOT NULL AND purged_at IS NULL;
    )sql",
    // 15: the keyed digests of each message's persons (docs/persons.md): the persons of other
    // messages sharing a digest of the same kind are found from them. Kept in the order of the
    // messages' positions (a table WITHOUT ROWID whose key leads with the position): a batch's
    // keys are appended to its last pages, and a message's keys are deleted (its withdrawal,
    // retention) as one range. There is no index by digest: digests are random, so one would
    // take a page anywhere in it for every key of every accepted message (measured: 8 µs more
    // of the writer's CPU per message, some 15 % of an accept), while a question about
    // candidates, an administrator's and rare, reads the table once. Messages stored before
    // have no keys. `withdrawn_at` (ms since the epoch) marks a message its sender withdrew
    // (the first withdrawal's time), so that making keys anew (rekey_persons) gives it none.
    // NULL: not withdrawn. Messages withdrawn before are marked from the audit chain: the
    // `message.accepted` entry of each withdrawal names what it took back (`withdraws`), and a
    // withdrawal took back only a message of its own sender (the entry's partner).
    R"sql(
      CREATE TABLE person_keys (
        message_seq INTEGER NOT NULL,
        pointer     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        digest      BLOB NOT NULL,
        PRIMARY KEY (message_seq, pointer, kind, digest)
      ) WITHOUT ROWID;
      ALTER TABLE messages ADD COLUMN withdrawn_at INTEGER;
      UPDATE messages SET withdrawn_at = w.at_ms
        FROM (SELECT json_extract(entry, '$.details.withdraws') AS original, partner,
                     CAST((julianday(min(at)) - 2440587.5) * 86400000 AS INTEGER) AS at_ms
                FROM audit
               WHERE event = 'message.accepted'
                 AND json_extract(entry, '$.details.withdraws') IS NOT NULL
               GROUP BY 1, 2) AS w
       WHERE messages.id = w.original AND messages.sender = w.partner;
    )sql",
    // 16: withdrawals that arrived before the message they take back (the original got a 503
    // and its sender sent it again after the withdrawal, or it was sent later by another path):
    // one row per original and sender, the first withdrawal's id and time (ms since the epoch).
    // When that original is stored, it is stored withdrawn (its copies never handed out) and
    // its row is deleted. Withdrawals stored before whose original is still not stored are
    // found in the audit chain, as in version 15.
    R"sql(
      CREATE TABLE early_withdrawals (
        original   TEXT NOT NULL,
        sender     TEXT NOT NULL,
        withdrawal TEXT NOT NULL,
        at_ms      INTEGER NOT NULL,
        PRIMARY KEY (original, sender)
      ) WITHOUT ROWID;
      INSERT INTO early_withdrawals (original, sender, withdrawal, at_ms)
        SELECT json_extract(entry, '$.details.withdraws'), partner, message_id,
               CAST((julianday(min(at)) - 2440587.5) * 86400000 AS INTEGER)
          FROM audit
         WHERE event = 'message.accepted'
           AND json_extract(entry, '$.details.withdraws') IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM messages
                            WHERE id = json_extract(entry, '$.details.withdraws')
                              AND sender = audit.partner)
         GROUP BY 1, 2;
    )sql",
    // 17: the agreements each copy's content relies on (`relies_on`: names joined by ',', ''
    // for none): a copy rendered with victim data for a holder of `victim-data` is sent only
    // while its recipient still holds it. Copies stored before did not record it; those that can
    // still go out (held, pending, retrying, delivering, dead) are marked when they may carry
    // victim data: a victim identification or a tip from which `no-victim-data-agreement`
    // withheld nothing, unless its body, readable (not sealed, not purged), has no victim field
    // (a victim identification without photos, document numbers, narrative and unmapped; a tip
    // without a possible victim). Marking one too many only stops it going to a partner that
    // does not hold the agreement now (a dead letter "agreement-withdrawn").
    R"sql(
      ALTER TABLE deliveries ADD COLUMN relies_on TEXT NOT NULL DEFAULT '';
      UPDATE deliveries SET relies_on = 'victim-data'
       WHERE state IN ('held', 'pending', 'retrying', 'delivering', 'dead')
         AND instr(withheld, '"no-victim-data-agreement"') = 0
         AND EXISTS (
           SELECT 1 FROM (SELECT type, CAST(body AS TEXT) AS b FROM messages
                           WHERE seq = deliveries.message_seq
                             AND type IN ('victim.identification', 'hotline.tip')) AS m
            WHERE CASE
                    WHEN NOT json_valid(m.b) THEN 1
                    WHEN m.type = 'victim.identification' THEN
                      json_type(m.b, '$.body.person.photos') IS NOT NULL
                      OR json_type(m.b, '$.body.narrative') IS NOT NULL
                      OR json_type(m.b, '$.unmapped') IS NOT NULL
                      OR EXISTS (SELECT 1 FROM json_each(m.b, '$.body.person.documents')
                                  WHERE json_type(value, '$.number') IS NOT NULL)
                    ELSE
                      EXISTS (SELECT 1 FROM json_each(m.b, '$.body.subjects')
                               WHERE json_extract(value, '$.role') = 'possible-victim')
                  END);
    )sql",
    // 18: how many approvals a held copy's release needs under the routing that held it
    // (`approvals_required`; 0: not recorded), so that lowering `release.approvals` afterwards
    // does not lower it (a decision asks for the larger of this and the figure in force). Copies
    // held before did not record it: they get the `release.approvals` of the routing stored
    // here (the one every instance applies; 2 when it sets none), the figure in force when the
    // store is migrated. Without a stored routing (files only), or one that cannot be read, the
    // figure is not known here: they get 5, the most a routing can ask for, since a copy must
    // never need fewer approvals than when it was held. Only held copies are marked.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0;
      UPDATE deliveries SET approvals_required = coalesce(
          (SELECT CASE
                    WHEN NOT json_valid(value) OR json_type(value) <> 'object' THEN 5
                    WHEN json_type(value, '$.release.approvals') IS NULL THEN 2
                    WHEN json_type(value, '$.release.approvals') = 'integer'
                         AND json_extract(value, '$.release.approvals') BETWEEN 1 AND 5
                      THEN json_extract(value, '$.release.approvals')
                    ELSE 5
                  END
             FROM state WHERE kind = 'routing' AND key = 'rules' AND value <> ''),
          5)
       WHERE state = 'held';
    )sql",
};

// Raising sqlite_schema_version without writing its migration must not compile.
static_assert(std::none_of(migrations.begin(), migrations.end(),
                           [](const char* sql) { return sql == nullptr; }),
              "every schema version needs its migration");

/// The writer connection's page cache (PRAGMA cache_size, in KiB). Not larger: when a b-tree
/// page splits, SQLite renumbers the new pages through the lock-byte page's number (page 262,145
/// with 4 KiB pages), so at the end of nearly every write transaction the cache holds a key past
/// the end of the file and SQLite's truncation of the cache walks its whole hash table. With
/// 64 MiB that walk took 8 % of the gateway's CPU in benchmark (a), more than the reads it saved.
constexpr int writer_cache_kib = 8 * 1024;

// Writer statements.
// The schema version, read at the start of every write transaction (see write_batch).
constexpr const char* select_user_version_sql = "PRAGMA user_version";
constexpr const char* select_existing_sql =
    "SELECT sender, body_sha256, accepted_at FROM messages WHERE id = ?1";
constexpr const char* insert_message_sql =
    "INSERT INTO messages (id, sender, type, created, accepted_at, body_sha256, body, state, "
    "facts, expires_at, seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
    "(SELECT coalesce(max(seq), 0) + 1 FROM messages))";
// A copy held for release (?9 names the rule) is stored 'held' (?8), otherwise 'pending'.
constexpr const char* insert_delivery_sql =
    "INSERT INTO deliveries (message_id, recipient, decided_by, payload, withheld, state, "
    "next_attempt_at, payload_is_body, hold, relies_on, approvals_required, message_seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?8, ?6, ?7, ?9, ?10, ?11, "
    "(SELECT seq FROM messages WHERE id = ?1))";
constexpr const char* insert_exclusion_sql =
    "INSERT INTO exclusions (message_id, partner, considered, reason) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* lease_sql =
    "UPDATE deliveries SET state = 'delivering', attempts = attempts + 1, lease_owner = ?2, "
    "lease_expires = ?3 WHERE rowid = ?1";
// A copy whose message its sender withdrew after the withdrawal took back the queued copies (it
// was in flight then: its lease ran out, or its attempt failed) is taken back when next claimed.
constexpr const char* take_back_sql =
    "UPDATE deliveries SET state = 'withdrawn', payload = x'', payload_is_body = 0, "
    "lease_owner = NULL, lease_expires = NULL WHERE rowid = ?1";
// A report counts only while the row is still leased to its sender at the attempt it reports on
// (?6): once the lease ran out and the row was claimed again, the late report of the earlier
// attempt is ignored (the row changes nothing), also when the same owner claimed it again (every
// worker of an instance shares its owner name). A failed attempt at a copy whose message was
// withdrawn while it was in flight takes the copy back ('withdrawn', payload emptied) instead of
// queueing it again or making it a dead letter.
constexpr const char* report_delivered_sql =
    "UPDATE deliveries SET state = 'delivered', delivered_at = ?4, receipt = ?5, "
    "lease_owner = NULL, lease_expires = NULL "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 "
    "AND state = 'delivering' AND lease_owner = ?3 AND attempts = ?6";
#define MXGW_WITHDRAWN "(SELECT withdrawn_at IS NOT NULL FROM messages WHERE id = ?1)"
// A retry, and a copy given back untried (attempt_report::attempted false: a retry whose claim
// counted no attempt, so its attempts go back to what they were before that claim).
#define MXGW_REPORT_RETRY(attempts)                                                           \
  "UPDATE deliveries SET "                                                                    \
  "state = CASE WHEN " MXGW_WITHDRAWN                                                         \
  " THEN 'withdrawn' ELSE 'retrying' END, "                                                   \
  "payload = CASE WHEN " MXGW_WITHDRAWN                                                       \
  " THEN x'' ELSE payload END, "                                                              \
  "payload_is_body = CASE WHEN " MXGW_WITHDRAWN " THEN 0 ELSE payload_is_body END, " attempts \
  "next_attempt_at = ?4, last_error = ?5, lease_owner = NULL, lease_expires = NULL "          \
  "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 "          \
  "AND state = 'delivering' AND lease_owner = ?3 AND attempts = ?6"
constexpr const char* report_retry_sql = MXGW_REPORT_RETRY("");
constexpr const char* report_give_back_sql = MXGW_REPORT_RETRY("attempts = attempts - 1, ");
#undef MXGW_REPORT_RETRY
// A dead letter, and one decided before any sending (attempt_report::attempted false: its
// message expired, its recipient is gone or lost the agreement, its tries were used up): its
// attempts go back to what they were before the claim, so it never counts as having reached its
// recipient (may_have_reached).
#define MXGW_REPORT_DEAD(attempts)                                                   \
  "UPDATE deliveries SET "                                                           \
  "state = CASE WHEN " MXGW_WITHDRAWN                                                \
  " THEN 'withdrawn' ELSE 'dead' END, "                                              \
  "payload = CASE WHEN " MXGW_WITHDRAWN                                              \
  " THEN x'' ELSE payload END, "                                                     \
  "payload_is_body = CASE WHEN " MXGW_WITHDRAWN                                      \
  " THEN 0 ELSE payload_is_body END, "                                               \
  "dead_since = CASE WHEN " MXGW_WITHDRAWN " THEN NULL ELSE ?4 END, " attempts       \
  "last_error = ?5, lease_owner = NULL, lease_expires = NULL "                       \
  "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 " \
  "AND state = 'delivering' AND lease_owner = ?3 AND attempts = ?6"
constexpr const char* report_dead_sql = MXGW_REPORT_DEAD("");
constexpr const char* report_dead_untried_sql = MXGW_REPORT_DEAD("attempts = attempts - 1, ");
#undef MXGW_REPORT_DEAD
// A dead letter of a withdrawn message is never replayed (the withdrawal took dead letters back
// since 2026-12-07; one left by an earlier version stays dead). A replayed copy's max_age counts
// from the replay, as a released copy's from its release: released_at is the replay time.
constexpr const char* replay_sql =
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?3, "
    "released_at = ?3, dead_since = NULL "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 "
    "AND state = 'dead' AND NOT " MXGW_WITHDRAWN;
#undef MXGW_WITHDRAWN
constexpr const char* original_exists_sql = "SELECT 1 FROM messages WHERE id = ?1 AND sender = ?2";
// The original's mark of withdrawal (?3 the accept's time in ms); the first withdrawal's stays.
constexpr const char* mark_withdrawn_sql =
    "UPDATE messages SET withdrawn_at = coalesce(withdrawn_at, ?3) WHERE id = ?1 AND sender = ?2";
// A withdrawal whose original is not stored yet is kept for it (the first one's id and time).
constexpr const char* insert_early_withdrawal_sql =
    "INSERT INTO early_withdrawals (original, sender, withdrawal, at_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT DO NOTHING";
// A message arriving after its sender's withdrawal of it: the withdrawal's id and time. The row
// is deleted when the message is stored (withdrawn).
constexpr const char* select_early_withdrawal_sql =
    "SELECT withdrawal, at_ms FROM early_withdrawals WHERE original = ?1 AND sender = ?2";
constexpr const char* delete_early_withdrawal_sql =
    "DELETE FROM early_withdrawals WHERE original = ?1 AND sender = ?2";
constexpr const char* withdraw_sql =
    "UPDATE deliveries SET state = 'withdrawn', payload = x'', payload_is_body = 0 "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1 AND sender = ?2) "
    "AND state IN ('held', 'pending', 'retrying', 'dead')";
constexpr const char* discard_sql =
    "UPDATE deliveries SET state = 'discarded', last_error = ?3 "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 "
    "AND state = 'dead'";

// Person keys (person_keys): written with their message (a key named twice is kept once), and
// deleted by its position: the original's when its sender withdraws it (whatever the state of
// its copies), and each message's whose body retention empties (purge_bodies_sql and
// purge_expired_bodies_sql give the positions of the messages they emptied).
constexpr const char* insert_person_key_sql =
    "INSERT INTO person_keys (digest, kind, message_seq, pointer) "
    "VALUES (?1, ?2, (SELECT seq FROM messages WHERE id = ?3), ?4) ON CONFLICT DO NOTHING";
constexpr const char* withdraw_person_keys_sql =
    "DELETE FROM person_keys "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1 AND sender = ?2)";
constexpr const char* delete_person_keys_sql = "DELETE FROM person_keys WHERE message_seq = ?1";

// Keys made anew (rekey_persons): the next messages in id order (byte-wise: TEXT compares with
// BINARY), each with its body when the keyer may see it (a body left, not purged, not withdrawn,
// its handling not expired at ?3, now in ms), otherwise an empty one and 0. Their keys are
// replaced by position.
constexpr const char* select_rekey_messages_sql =
    "SELECT seq, id, CASE WHEN length(body) > 0 AND purged_at IS NULL AND withdrawn_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > ?3) THEN body ELSE x'' END, "
    "length(body) > 0 AND purged_at IS NULL AND withdrawn_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > ?3) "
    "FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2";
constexpr const char* insert_person_key_at_sql =
    "INSERT INTO person_keys (message_seq, pointer, kind, digest) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT DO NOTHING";

// Four-eyes release (write_release): the held row and its approvals, then one of three changes
// to it by rowid, in the same transaction. A released copy is due now and keeps attempts 0; a
// rejected one loses its payload (as a withdrawn one does) and keeps the reason as its error.
constexpr const char* select_held_for_release_sql =
    "SELECT rowid, approvals, approvals_required FROM deliveries "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2 "
    "AND state = 'held'";
constexpr const char* approve_held_sql = "UPDATE deliveries SET approvals = ?2 WHERE rowid = ?1";
constexpr const char* release_held_sql =
    "UPDATE deliveries SET state = 'pending', approvals = ?2, next_attempt_at = ?3, "
    "released_at = ?3 WHERE rowid = ?1";
constexpr const char* reject_held_sql =
    "UPDATE deliveries SET state = 'rejected', payload = x'', payload_is_body = 0, "
    "last_error = ?2 WHERE rowid = ?1";

// Claims (write_claim). Each reads a short range of the index deliveries_claim (state,
// recipient, next_attempt_at): the recipients that have rows in a state (one seek per recipient),
// a recipient's oldest due rows in a state, and the rows of the jobs it hands out. No statement
// visits more due rows than the claim can take, however long the queue.
constexpr const char* claim_next_recipient_sql =
    "SELECT recipient FROM deliveries WHERE state = ?1 AND recipient > ?2 "
    "ORDER BY recipient LIMIT 1";
constexpr const char* claim_due_sql =
    "SELECT rowid, next_attempt_at FROM deliveries "
    "WHERE state = ?1 AND recipient = ?2 AND next_attempt_at <= ?3 "
    "ORDER BY next_attempt_at, rowid LIMIT ?4";
constexpr const char* claim_expired_sql =
    "SELECT rowid, next_attempt_at FROM deliveries "
    "WHERE state = 'delivering' AND recipient = ?1 AND lease_expires <= ?2 "
    "ORDER BY next_attempt_at, rowid LIMIT ?3";
constexpr const char* claim_job_sql =
    "SELECT d.message_id, d.recipient, CASE WHEN d.payload_is_body THEN m.body ELSE d.payload END, "
    "d.attempts, m.sender, m.type, m.accepted_at, d.payload_is_body, "
    "CASE WHEN d.payload_is_body THEN d.payload ELSE x'' END, d.released_at, m.expires_at, "
    "m.withdrawn_at IS NOT NULL, d.relies_on "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq WHERE d.rowid = ?1";
constexpr const char* select_audit_head_sql =
    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
constexpr const char* insert_audit_sql =
    "INSERT INTO audit (seq, at, event, actor, partner, message_id, entry, hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* insert_checkpoint_sql =
    "INSERT INTO audit_checkpoints (seq, hash, at, signer, signature) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* select_state_version_sql =
    "SELECT version, value = '' FROM state WHERE kind = ?1 AND key = ?2";
constexpr const char* select_max_state_version_sql = "SELECT coalesce(max(version), 0) FROM state";
constexpr const char* upsert_state_sql =
    "INSERT INTO state (kind, key, value, version, changed_at, changed_by) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kind, key) DO UPDATE SET "
    "value = excluded.value, version = excluded.version, changed_at = excluded.changed_at, "
    "changed_by = excluded.changed_by";

// Retention: payloads past their time, then bodies none of whose copies still needs them (the
// positions of the messages emptied, whose person keys go in the same transaction).
constexpr const char* purge_payloads_sql =
    "UPDATE deliveries SET payload = x'', payload_is_body = 0, receipt = x'', last_error = x'', "
    "state = CASE WHEN state = 'dead' THEN 'expired' ELSE state END "
    "WHERE rowid IN (SELECT rowid FROM deliveries WHERE (length(payload) > 0 OR payload_is_body "
    "OR length(CAST(receipt AS BLOB)) > 0 OR length(CAST(last_error AS BLOB)) > 0) AND "
    "((state = 'delivered' AND delivered_at < ?1) OR "
    "(state IN ('dead', 'discarded') AND dead_since < ?2)) LIMIT ?3)";
constexpr const char* purge_bodies_sql =
    "UPDATE messages SET body = x'', purged_at = ?3 WHERE rowid IN ("
    "SELECT m.rowid FROM messages AS m WHERE m.purged_at IS NULL AND ("
    "(EXISTS (SELECT 1 FROM deliveries AS d WHERE d.message_seq = m.seq) AND "
    "NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.message_seq = m.seq AND "
    "(length(d.payload) > 0 OR d.payload_is_body OR "
    "d.state IN ('held', 'pending', 'retrying', 'delivering')))) OR "
    "(NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.message_seq = m.seq) AND "
    "m.accepted_at < ?1)) LIMIT ?2) RETURNING seq";

// Retention of expired messages (messages_expiring): first every copy not in delivery, whatever
// its age (a dead or held one becomes "expired"), then the bodies none of whose copies is in
// delivery or still holds anything (the positions of the messages emptied, as above). A message
// keeps its place in the index until its body goes, so its copies are found until they are all
// emptied.
constexpr const char* purge_expired_payloads_sql =
    "UPDATE deliveries SET payload = x'', payload_is_body = 0, receipt = x'', last_error = x'', "
    "state = CASE WHEN state IN ('dead', 'held') THEN 'expired' ELSE state END "
    "WHERE rowid IN (SELECT d.rowid FROM messages AS m "
    "JOIN deliveries AS d ON d.message_seq = m.seq "
    "WHERE m.expires_at IS NOT NULL AND m.expires_at <= ?1 AND m.purged_at IS NULL "
    "AND d.state NOT IN ('pending', 'retrying', 'delivering') "
    "AND (d.state = 'held' OR length(d.payload) > 0 OR d.payload_is_body "
    "OR length(CAST(d.receipt AS BLOB)) > 0 OR length(CAST(d.last_error AS BLOB)) > 0) LIMIT ?2)";
constexpr const char* purge_expired_bodies_sql =
    "UPDATE messages SET body = x'', purged_at = ?3 WHERE rowid IN ("
    "SELECT m.rowid FROM messages AS m "
    "WHERE m.expires_at IS NOT NULL AND m.expires_at <= ?1 AND m.purged_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.message_seq = m.seq AND "
    "(d.state IN ('held', 'pending', 'retrying', 'delivering') OR length(d.payload) > 0 "
    "OR d.payload_is_body OR length(CAST(d.receipt AS BLOB)) > 0 "
    "OR length(CAST(d.last_error AS BLOB)) > 0)) LIMIT ?2) RETURNING seq";

// Re-encryption: the bodies, payloads, receipts and error texts of the next messages in id order,
// and their new bytes. Purged and withdrawn values (empty) are left out: there is nothing in them
// to seal (a body's recipient's payload is shown even when empty: its grant is due).
constexpr const char* select_rewrite_messages_sql =
    "SELECT id, body, facts FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2";
constexpr const char* select_rewrite_payloads_sql =
    "SELECT d.message_id, d.recipient, d.payload, "
    "length(d.payload) > 0 OR d.payload_is_body, d.receipt, d.last_error "
    "FROM messages AS m JOIN deliveries AS d ON d.message_seq = m.seq "
    "WHERE m.id > ?1 AND m.id <= ?2 ORDER BY m.id, d.recipient";
constexpr const char* update_body_sql = "UPDATE messages SET body = ?2 WHERE id = ?1";
constexpr const char* update_facts_sql = "UPDATE messages SET facts = ?2 WHERE id = ?1";
constexpr const char* update_payload_sql =
    "UPDATE deliveries SET payload = ?3 "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2";
constexpr const char* update_receipt_sql =
    "UPDATE deliveries SET receipt = ?3 "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2";
constexpr const char* update_error_sql =
    "UPDATE deliveries SET last_error = ?3 "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) AND recipient = ?2";

// Reader statements.
// Statistical facts in the order of acceptance (the position), from the first message accepted at
// or after ?1; ?2 is the position the previous page ended at.
constexpr const char* select_facts_sql =
    "SELECT seq, id, sender, type, accepted_at, facts FROM messages "
    "WHERE seq > ?2 AND accepted_at >= ?1 ORDER BY seq LIMIT ?3";
constexpr const char* select_register_sql =
    "SELECT partner, direction, month, type, count(*) FROM ("
    "SELECT sender AS partner, 'received-from' AS direction, substr(accepted_at, 1, 7) AS month, "
    "type FROM messages WHERE substr(accepted_at, 1, 7) BETWEEN ?1 AND ?2 "
    "UNION ALL "
    "SELECT d.recipient, 'sent-to', strftime('%Y-%m', d.delivered_at / 1000, 'unixepoch'), m.type "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq WHERE d.state = 'delivered' "
    "AND strftime('%Y-%m', d.delivered_at / 1000, 'unixepoch') BETWEEN ?1 AND ?2) "
    "GROUP BY partner, direction, month, type ORDER BY partner, direction, month, type";
constexpr const char* select_queue_stats_sql =
    "SELECT d.recipient, sum(d.state = 'pending'), sum(d.state = 'delivering'), "
    "sum(d.state = 'retrying'), sum(d.state = 'dead'), sum(d.state = 'delivered'), "
    "sum(d.state = 'discarded'), sum(d.state = 'held'), sum(d.state = 'rejected'), "
    "min(CASE WHEN d.state IN ('held', 'pending', 'delivering', 'retrying') "
    "THEN m.accepted_at END) "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq "
    "GROUP BY d.recipient ORDER BY d.recipient";
constexpr const char* select_audit_sql =
    "SELECT seq, at, event, actor, partner, message_id, entry, hash FROM audit "
    "WHERE seq > ?1 ORDER BY seq LIMIT ?2";
constexpr const char* select_audit_last_sql =
    "SELECT seq, at, event, actor, partner, message_id, entry, hash FROM audit "
    "ORDER BY seq DESC LIMIT 1";
constexpr const char* select_checkpoints_sql =
    "SELECT seq, hash, at, signer, signature FROM audit_checkpoints ORDER BY seq";
constexpr const char* select_state_sql =
    "SELECT kind, key, value, version, changed_at, changed_by FROM state "
    "WHERE version > ?1 AND (?2 = '' OR kind = ?2) ORDER BY version";
constexpr const char* select_status_sql =
    "SELECT id, sender, type, created, accepted_at, state, body_sha256 FROM messages WHERE id = ?1";
constexpr const char* select_recipients_sql =
    "SELECT recipient, decided_by, state, attempts, next_attempt_at, last_error, delivered_at, "
    "receipt, withheld, hold FROM deliveries "
    "WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1) ORDER BY recipient";
constexpr const char* select_exclusions_sql =
    "SELECT partner, considered, reason FROM exclusions WHERE message_id = ?1 ORDER BY rowid";
constexpr const char* select_dead_sql =
    "SELECT d.message_id, d.recipient, m.sender, m.type, d.attempts, d.last_error, d.dead_since "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq "
    "WHERE d.state = 'dead' ORDER BY d.dead_since, d.message_id, d.recipient LIMIT ?1";
// Held copies in the order of their messages (deliveries_held: its entries are ordered by
// message_seq, then rowid, the order of the accept's plans).
constexpr const char* select_held_sql =
    "SELECT d.message_id, d.recipient, m.sender, m.type, m.accepted_at, d.hold, d.approvals, "
    "d.approvals_required "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq "
    "WHERE d.state = 'held' ORDER BY d.message_seq, d.rowid LIMIT ?1";
// Person matches (find_person_matches): the message's position, then the keys of other messages
// that share a digest and kind with one of its keys, once per (pointer, kind, other message,
// other pointer) (two digests of one kind may both match), in the header's order. Acceptance is
// accepted_at and then the id, as on PostgreSQL (a batch shares its time), compared byte-wise.
// The table is read once: each key of another message whose digest is among the message's own
// (a set built first from its range of the key) is joined back to the message's keys. A message
// whose handling expired (?3: now in ms) is no candidate and has none, even before the next
// retention sweep empties it and deletes its keys; withdrawn and purged messages have no keys
// left, and are excluded here as well.
constexpr const char* select_message_seq_sql = "SELECT seq FROM messages WHERE id = ?1";
constexpr const char* select_person_matches_sql =
    "SELECT DISTINCT mine.pointer, mine.kind, m.id, other.pointer, m.sender, m.type, "
    "m.accepted_at FROM person_keys AS other "
    "JOIN person_keys AS mine ON mine.message_seq = ?1 AND mine.digest = other.digest "
    "AND mine.kind = other.kind "
    "JOIN messages AS m ON m.seq = other.message_seq "
    "WHERE other.message_seq <> ?1 "
    "AND other.digest IN (SELECT digest FROM person_keys WHERE message_seq = ?1) "
    "AND (m.expires_at IS NULL OR m.expires_at > ?3) AND m.purged_at IS NULL "
    "AND m.withdrawn_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM messages WHERE seq = ?1 AND expires_at <= ?3) "
    "ORDER BY mine.pointer, m.accepted_at, m.id, other.pointer, mine.kind LIMIT ?2";
// One held copy as a claim would hand it out (the columns of claim_job_sql).
constexpr const char* select_held_job_sql =
    "SELECT d.message_id, d.recipient, CASE WHEN d.payload_is_body THEN m.body ELSE d.payload END, "
    "d.attempts, m.sender, m.type, m.accepted_at, d.payload_is_body, "
    "CASE WHEN d.payload_is_body THEN d.payload ELSE x'' END, d.released_at, m.expires_at, "
    "0, d.relies_on "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.message_seq "
    "WHERE d.message_seq = (SELECT seq FROM messages WHERE id = ?1) AND d.recipient = ?2 "
    "AND d.state = 'held'";

// ---------------------------------------------------------------------------------------------
// RAII over the C API

struct connection_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using connection = std::unique_ptr<sqlite3, connection_closer>;

struct statement_finalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

/// Bytes to bind as a BLOB (a plain string_view binds as TEXT).
struct blob_value {
  std::string_view bytes;
};

/// One execution of a prepared statement. Resets it and clears its bindings at scope exit, so a
/// SELECT never keeps its read snapshot open (which would hold back WAL checkpoints) and no binding
/// outlives the bytes it points to (they are bound without copying).
class statement_use {
 public:
  explicit statement_use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~statement_use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;

  int bind_text(int index, std::string_view text) {
    // A null data pointer would bind SQL NULL; an empty string must stay an empty string.
    const char* data = text.data() != nullptr ? text.data() : "";
    // The destructor argument nullptr is SQLITE_STATIC (spelled without its C-style cast).
    return sqlite3_bind_text64(stmt_, index, data, text.size(), nullptr, SQLITE_UTF8);
  }

  int bind_blob(int index, std::string_view bytes) {
    const char* data = bytes.data() != nullptr ? bytes.data() : "";
    return sqlite3_bind_blob64(stmt_, index, data, bytes.size(), nullptr);
  }

  int bind_int64(int index, std::int64_t value) { return sqlite3_bind_int64(stmt_, index, value); }

  /// Binds the values to ?1, ?2, ... in order (std::int64_t, text, blob_value, and
  /// std::optional<std::int64_t>, unset as NULL); stops at the first error and returns it.
  template <typename... Values>
  int bind(const Values&... values) {
    // Views only, made by the caller from strings that outlive the step: the bytes are bound
    // without copying, so a view of a temporary std::string would dangle.
    static_assert(
        ((std::is_same_v<Values, std::int64_t> || std::is_same_v<Values, std::string_view> ||
          std::is_same_v<Values, blob_value> ||
          std::is_same_v<Values, std::optional<std::int64_t>>)&&...),
        "bind takes std::int64_t, std::string_view, blob_value or std::optional<std::int64_t>");
    int index = 0;
    int rc = SQLITE_OK;
    ((rc = rc == SQLITE_OK ? bind_one(++index, values) : rc), ...);
    return rc;
  }

  int step() { return sqlite3_step(stmt_); }

  std::string column_text(int index) const {
    const unsigned char* text = sqlite3_column_text(stmt_, index);
    if (text == nullptr) {
      return {};
    }
    const int size = sqlite3_column_bytes(stmt_, index);
    return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
  }

  std::string column_blob(int index) const {
    const void* bytes = sqlite3_column_blob(stmt_, index);
    if (bytes == nullptr) {
      return {};
    }
    const int size = sqlite3_column_bytes(stmt_, index);
    return std::string(static_cast<const char*>(bytes), static_cast<std::size_t>(size));
  }

  std::int64_t column_int64(int index) const { return sqlite3_column_int64(stmt_, index); }

  bool column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

 private:
  int bind_one(int index, std::int64_t value) { return bind_int64(index, value); }
  int bind_one(int index, std::string_view text) { return bind_text(index, text); }
  int bind_one(int index, const blob_value& blob) { return bind_blob(index, blob.bytes); }
  int bind_one(int index, const std::optional<std::int64_t>& value) {
    return value ? bind_int64(index, *value) : sqlite3_bind_null(stmt_, index);
  }

  sqlite3_stmt* stmt_;
};

// ---------------------------------------------------------------------------------------------
// Helpers

std::string error_text(sqlite3* db, int rc) {
  return db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

[[noreturn]] void fail_open(const std::filesystem::path& path, std::string_view what, sqlite3* db,
                            int rc) {
  throw store_error(path.string() + ": " + std::string(what) + ": " + error_text(db, rc));
}

/// Every connection goes through the WAL buffer (wal_buffer.hpp): one write per commit instead
/// of two per page.
connection open_connection(const std::filesystem::path& path, int flags, int busy_timeout_ms) {
  const char* vfs = nullptr;
  try {
    vfs = register_wal_buffer_vfs();
  } catch (const std::runtime_error& e) {
    throw store_error(path.string() + ": " + e.what());
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.string().c_str(), &raw, flags, vfs);
  connection db(raw);  // closed on every path, also when the open itself failed
  if (rc != SQLITE_OK) {
    fail_open(path, "cannot open the database", raw, rc);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

int exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
}

// Runs `part` (rewrite_values_of, rekey_persons_of) in a savepoint of its own: a caller's function
// that throws (write.failed) undoes that part only, not the accepts and reports it shares the
// transaction with; a store error fails the whole batch, which is rolled back.
template <typename Write>
int in_own_savepoint(sqlite3* db, Write& write, const std::function<int(Write&)>& part) {
  int rc = exec(db, "SAVEPOINT own_part");
  if (rc != SQLITE_OK) {
    return rc;
  }
  write.result = {};
  write.failed = false;
  rc = part(write);
  if (rc != SQLITE_OK) {
    return rc;
  }
  if (write.failed) {
    write.result = {};
    rc = exec(db, "ROLLBACK TO own_part");
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  return exec(db, "RELEASE own_part");
}

void exec_or_throw(sqlite3* db, const char* sql, const std::filesystem::path& path) {
  const int rc = exec(db, sql);
  if (rc != SQLITE_OK) {
    fail_open(path, sql, db, rc);
  }
}

statement prepare(sqlite3* db, const char* sql, const std::filesystem::path& path) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  statement stmt(raw);
  if (rc != SQLITE_OK) {
    fail_open(path, "cannot prepare a statement", db, rc);
  }
  return stmt;
}

/// Runs a statement returning one row and gives its first column as text (used for PRAGMAs).
std::string query_text(sqlite3* db, const std::string& sql, const std::filesystem::path& path) {
  const statement stmt = prepare(db, sql.c_str(), path);
  statement_use use(stmt.get());
  const int rc = use.step();
  if (rc != SQLITE_ROW) {
    fail_open(path, sql, db, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
  }
  return use.column_text(0);
}

std::int64_t query_int(sqlite3* db, const std::string& sql, const std::filesystem::path& path) {
  const std::string text = query_text(db, sql, path);
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    throw store_error(path.string() + ": " + sql + ": unexpected answer '" + text + "'");
  }
}

/// Rolls back when a transaction is still open. SQLite may already have rolled it back by itself
/// (it does on some SQLITE_FULL and I/O errors), in which case there is nothing to do.
void rollback_if_open(sqlite3* db) {
  if (sqlite3_get_autocommit(db) == 0) {
    exec(db, "ROLLBACK");
  }
}

/// An I/O error or corruption: the file can no longer be trusted to hold what we wrote.
bool is_fatal(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

/// "<file>: <SQLite's message> (code N)", for the log; taken before a ROLLBACK overwrites it.
std::string describe_failure(sqlite3* db, int rc, const std::filesystem::path& path) {
  return path.string() + ": " + error_text(db, rc) + " (code " + std::to_string(rc) + ")";
}

/// Logging must never take a store thread down (the sink may fail to allocate or write).
void log_quietly(log::level lvl, const log::fields& fields) noexcept {
  try {
    log::write(lvl, fields);
  } catch (...) {
  }
}

/// fsyncs a directory, so the entries just created in it (a directory, the database file)
/// survive power loss; without it a fresh store could vanish together with its first commits.
void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw store_error("cannot open the directory " + dir.string() + ": " + std::strerror(errno));
  }
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // EINVAL: the file system cannot sync directories at all, so there is nothing to wait for.
  if (rc != 0 && error != EINVAL) {
    throw store_error("cannot sync the directory " + dir.string() + ": " + std::strerror(error));
  }
}

/// Creates the missing directories on the way to `dir` and makes each of them durable.
void create_directories_durably(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> missing;  // deepest first
  std::error_code ec;
  for (std::filesystem::path p = dir; !p.empty() && !std::filesystem::exists(p, ec);
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) {
      break;
    }
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw store_error("cannot create the directory " + dir.string() + ": " + ec.message());
  }
  for (const auto& created : missing) {
    const std::filesystem::path parent = created.parent_path();
    sync_directory(parent.empty() ? std::filesystem::path(".") : parent);
  }
}

/// Brings the schema to sqlite_schema_version in one transaction, or refuses a newer file.
void migrate(sqlite3* db, const std::filesystem::path& path) {
  const auto refuse_newer = [&](std::int64_t found) {
    throw store_error(path.string() + ": schema version " + std::to_string(found) +
                      " is newer than this build of mxgw knows (" +
                      std::to_string(sqlite_schema_version) +
                      "); run a newer mxgw or restore a matching database");
  };
  std::int64_t found = query_int(db, "PRAGMA user_version", path);
  if (found > sqlite_schema_version) {
    refuse_newer(found);
  }
  if (found == sqlite_schema_version) {
    return;
  }
  exec_or_throw(db, "BEGIN IMMEDIATE", path);
  try {
    // Read again under the write lock: another process may have migrated while we waited.
    found = query_int(db, "PRAGMA user_version", path);
    if (found > sqlite_schema_version) {
      refuse_newer(found);
    }
    if (found < 0) {
      throw store_error(path.string() + ": invalid schema version " + std::to_string(found));
    }
    for (std::int64_t version = found + 1; version <= sqlite_schema_version; ++version) {
      exec_or_throw(db, migrations.at(static_cast<std::size_t>(version - 1)), path);
    }
    const std::string set_version =
        "PRAGMA user_version = " + std::to_string(sqlite_schema_version);
    exec_or_throw(db, set_version.c_str(), path);
    exec_or_throw(db, "COMMIT", path);
  } catch (...) {
    rollback_if_open(db);
    throw;
  }
}

/// Caps the database file at max_size_bytes: growing past it fails with SQLITE_FULL, exactly as a
/// full disk does. The setting belongs to the connection and is not stored in the file.
void apply_size_cap(sqlite3* db, std::uint64_t max_size_bytes, const std::filesystem::path& path) {
  const auto page_size = static_cast<std::uint64_t>(query_int(db, "PRAGMA page_size", path));
  constexpr std::uint64_t most_pages = 0xfffffffe;  // SQLite's own upper bound
  const std::uint64_t pages = std::clamp<std::uint64_t>(
      max_size_bytes / std::max<std::uint64_t>(page_size, 1), 1, most_pages);
  // SQLite never sets the cap below the current size; a store already past it simply cannot grow.
  query_int(db, "PRAGMA max_page_count = " + std::to_string(pages), path);
}

/// Times are kept as milliseconds since the epoch (UTC), the precision of accepted_at.
std::int64_t to_ms(time_point t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
  return time_point(std::chrono::milliseconds(ms));
}

/// messages.expires_at of a record: NULL when the message does not expire.
std::optional<std::int64_t> expires_ms(const std::optional<time_point>& expires_at) {
  return expires_at ? std::optional<std::int64_t>(to_ms(*expires_at)) : std::nullopt;
}

std::int64_t clamp_to_int64(std::size_t n) {
  constexpr auto most = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(std::min(n, most));
}

// ---------------------------------------------------------------------------------------------
// Queued work and handler calls

struct accept_write {
  message_record record;
  message_store::accept_handler handler;
  accept_result result;
};

struct claim_write {
  std::string owner;
  std::size_t max_jobs = 0;
  std::chrono::milliseconds lease{0};
  std::vector<recipient_cap> caps;  // sorted by recipient, without repeats
  message_store::claim_handler handler;
  std::vector<delivery_job> jobs;
};

struct report_write {
  attempt_report report;
  message_store::report_handler handler;
};

struct replay_write {
  std::string message_id;
  std::string recipient;
  std::vector<audit::audit_record> audit;
  message_store::replay_handler handler;
  bool found = false;
  std::optional<std::string> discard_reason;  ///< set: a discard, not a replay
};

struct audit_write {
  std::vector<audit::audit_record> records;
  message_store::report_handler handler;
};

struct checkpoint_write {
  audit::checkpoint checkpoint;
  message_store::report_handler handler;
  bool added = false;  // false: a checkpoint for that seq exists (refused, not a store failure)
};

struct purge_write {
  retention_cut cut;
  message_store::purge_handler handler;
  purge_result result;
};

struct state_write {
  std::vector<state_put> puts;
  std::vector<audit::audit_record> audit;
  message_store::puts_handler handler;
  put_outcome outcome = put_outcome::failed;
  std::vector<std::int64_t> versions;  ///< one per put: assigned (applied) or current (conflict)
};

struct rewrite_write {
  std::string after_id;
  std::size_t max_messages = 0;
  value_rewriter rewriter;
  message_store::rewrite_handler handler;
  rewrite_result result;
  bool failed = false;  ///< the rewriter threw: its part was rolled back to its savepoint
};

struct release_write {
  release_request request;
  message_store::release_handler handler;
  release_result result;
  std::vector<audit::audit_record> audit;  ///< the request's entry, completed by the store
};

struct rekey_write {
  std::string after_id;
  std::size_t max_messages = 0;
  message_store::person_keyer keyer;
  message_store::person_rekey_handler handler;
  message_store::person_rekey_result result;
  bool failed = false;  ///< the keyer threw: its part was rolled back to its savepoint
};

/// One piece of work for the writer thread. Accepts, the delivery bookkeeping (claims, reports,
/// replays, release decisions), audit entries and state changes share the queue and the group
/// commit: one transaction, one fsync.
struct pending_write {
  std::variant<accept_write, claim_write, report_write, replay_write, audit_write, checkpoint_write,
               state_write, purge_write, rewrite_write, release_write, rekey_write>
      work;
  bool committed = false;  ///< the transaction that carried it committed
};

struct find_read {
  std::string id;
  message_store::find_handler handler;
};

struct body_read {
  std::string id;
  message_store::body_handler handler;
};

struct dead_read {
  std::size_t limit = 0;
  message_store::dead_handler handler;
};

struct audit_read {
  std::int64_t after_seq = 0;
  std::size_t limit = 0;
  message_store::audit_handler handler;
};

struct register_read {
  std::string from_month;
  std::string to_month;
  message_store::register_handler handler;
};

struct facts_read {
  std::string since;
  std::int64_t after_seq = 0;
  std::size_t limit = 0;
  message_store::facts_handler handler;
};

struct queue_read {
  message_store::queue_handler handler;
};

struct head_read {
  message_store::head_handler handler;
};

struct checkpoints_read {
  message_store::checkpoints_handler handler;
};

struct state_read {
  std::string kind;
  std::int64_t after_version = 0;
  message_store::state_handler handler;
};

struct held_read {
  std::size_t limit = 0;
  message_store::held_handler handler;
};

struct held_job_read {
  std::string message_id;
  std::string recipient;
  message_store::held_copy_handler handler;
};

struct matches_read {
  std::string message_id;
  std::size_t limit = 0;
  message_store::matches_handler handler;
};

using pending_read = std::variant<find_read, body_read, dead_read, audit_read, head_read,
                                  checkpoints_read, state_read, queue_read, register_read,
                                  facts_read, held_read, held_job_read, matches_read>;

accept_result unavailable(const char* reason) {
  return accept_result{accept_outcome::unavailable, {}, reason};
}

// Handlers run on the store's own threads. One that throws must not take the thread (and every
// later accept or look-up) down with it; the outcome it was told is final, so nothing is undone.
template <typename Handler, typename... Args>
void call_quietly(const Handler& handler, Args&&... args) noexcept {
  if (!handler) {
    return;
  }
  try {
    handler(std::forward<Args>(args)...);
  } catch (...) {
  }
}

/// Answers a read that could not be served (store stopped or failed).
void fail_read(pending_read& read) noexcept {
  std::visit(
      [](auto& r) {
        using kind = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<kind, find_read> || std::is_same_v<kind, body_read> ||
                      std::is_same_v<kind, head_read> || std::is_same_v<kind, held_job_read> ||
                      std::is_same_v<kind, matches_read>) {
          call_quietly(r.handler, std::nullopt, false);
        } else if constexpr (std::is_same_v<kind, held_read>) {
          call_quietly(r.handler, std::vector<held_copy>{}, false);
        } else if constexpr (std::is_same_v<kind, dead_read>) {
          call_quietly(r.handler, std::vector<dead_letter>{}, false);
        } else if constexpr (std::is_same_v<kind, audit_read>) {
          call_quietly(r.handler, std::vector<audit::audit_row>{}, false);
        } else if constexpr (std::is_same_v<kind, checkpoints_read>) {
          call_quietly(r.handler, std::vector<audit::checkpoint>{}, false);
        } else if constexpr (std::is_same_v<kind, queue_read>) {
          call_quietly(r.handler, std::vector<queue_stat>{}, false);
        } else if constexpr (std::is_same_v<kind, register_read>) {
          call_quietly(r.handler, std::vector<transfer_count>{}, false);
        } else if constexpr (std::is_same_v<kind, facts_read>) {
          call_quietly(r.handler, facts_page{}, false);
        } else {
          call_quietly(r.handler, std::vector<state_item>{}, false);
        }
      },
      read);
}

/// Calls the handler of a write with its outcome: the result when its transaction committed,
/// otherwise the failure (for an accept, `unavailable` with `failure` as the reason).
void answer(pending_write& write, const char* failure) noexcept {
  const bool committed = write.committed;
  failure = failure != nullptr ? failure : "store-error";
  std::visit(
      [&](auto& w) {
        using kind = std::decay_t<decltype(w)>;
        if constexpr (std::is_same_v<kind, accept_write>) {
          call_quietly(w.handler, committed ? std::move(w.result) : unavailable(failure));
        } else if constexpr (std::is_same_v<kind, claim_write>) {
          call_quietly(w.handler, committed ? std::move(w.jobs) : std::vector<delivery_job>{},
                       committed);
        } else if constexpr (std::is_same_v<kind, report_write> ||
                             std::is_same_v<kind, audit_write>) {
          call_quietly(w.handler, committed);
        } else if constexpr (std::is_same_v<kind, checkpoint_write>) {
          call_quietly(w.handler, committed && w.added);
        } else if constexpr (std::is_same_v<kind, state_write>) {
          const put_outcome outcome = committed ? w.outcome : put_outcome::failed;
          call_quietly(
              w.handler, outcome,
              outcome == put_outcome::failed ? std::vector<std::int64_t>{} : std::move(w.versions));
        } else if constexpr (std::is_same_v<kind, purge_write>) {
          call_quietly(w.handler, committed ? w.result : purge_result{}, committed);
        } else if constexpr (std::is_same_v<kind, rewrite_write>) {
          const bool ok = committed && !w.failed;
          call_quietly(w.handler, ok ? std::move(w.result) : rewrite_result{}, ok);
        } else if constexpr (std::is_same_v<kind, rekey_write>) {
          const bool ok = committed && !w.failed;
          call_quietly(w.handler, ok ? std::move(w.result) : message_store::person_rekey_result{},
                       ok);
        } else if constexpr (std::is_same_v<kind, release_write>) {
          call_quietly(w.handler, committed ? std::move(w.result) : release_result{}, committed);
        } else {
          call_quietly(w.handler, committed && w.found, committed);
        }
      },
      write.work);
}

bool is_accept(const pending_write& write) {
  return std::holds_alternative<accept_write>(write.work);
}

/// Writes that only add rows (new messages, audit entries, checkpoints, state): on a full disk
/// they are refused, while the bookkeeping of deliveries gets a transaction of its own.
bool adds_rows(const pending_write& write) {
  return is_accept(write) || std::holds_alternative<audit_write>(write.work) ||
         std::holds_alternative<checkpoint_write>(write.work) ||
         std::holds_alternative<state_write>(write.work) ||
         std::holds_alternative<rewrite_write>(write.work) ||
         std::holds_alternative<rekey_write>(write.work);
}

/// Why a new record cannot be stored as given (a bug upstream, not the partner's doing), or null.
/// Checked before anything is written, so one bad record never fails the records it is batched
/// with (a second delivery row for a recipient would break the primary key mid-batch).
const char* invalid_record(const message_record& record) {
  std::set<std::string_view> recipients;
  for (const auto& plan : record.deliveries) {
    if (plan.recipient.empty()) {
      return "empty-recipient";
    }
    if (!recipients.insert(plan.recipient).second) {
      return "duplicate-recipient";
    }
  }
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The implementation

struct sqlite_store::impl {
  explicit impl(const sqlite_options& options);

  void start();
  void submit(pending_write write);
  void submit_read(pending_read read);
  void set_deliveries_due(std::function<void()> callback);
  void set_approvals_when_held(std::function<std::size_t()> source);
  /// The approvals a copy held now needs by the source (0 without one); writer thread.
  std::int64_t approvals_when_held();
  void stop();
  sqlite_store_stats stats() const;

  // Writer thread.
  void writer_loop();
  void commit_batch(std::vector<pending_write>& batch);
  const char* try_transaction(std::vector<pending_write>& batch, bool bookkeeping_only);
  int write_batch(std::vector<pending_write>& batch, bool bookkeeping_only);
  int check_schema_version();
  int write_record(accept_write& write, const std::string& accepted_at, std::int64_t now_ms);
  int insert_message(const message_record& record, const std::string& accepted_at);
  int delete_person_keys(const std::vector<std::int64_t>& message_seqs);
  int write_claim(claim_write& write, std::int64_t now_ms);
  int write_report(const report_write& write, std::int64_t now_ms, const std::string& at);
  int write_replay(replay_write& write, std::int64_t now_ms, const std::string& at);
  int write_release(release_write& write, std::int64_t now_ms, const std::string& at);
  int append_audit_rows(const std::vector<audit::audit_record>& records, const std::string& at);
  int write_checkpoint(checkpoint_write& write);
  int write_state(state_write& write, const std::string& at);
  int write_purge(purge_write& write, std::int64_t now_ms, const std::string& at);
  int rewrite_values_of(rewrite_write& write);
  int rekey_persons_of(rekey_write& write);
  const char* failure_reason(int rc);
  void notify_deliveries_due();
  time_point now() const;

  // The write-ahead log: the commit hook (writer thread), the wait at the bound (writer thread)
  // and the checkpointer thread.
  static int on_wal_commit(void* self, sqlite3* db, const char* schema, int pages);
  void request_checkpoint();
  bool checkpoint_running();
  void wait_for_checkpoint();
  void checkpointer_loop();
  void run_checkpoint();
  void close_checkpointer();

  // Reader thread.
  void reader_loop();
  void answer_find(const find_read& job);
  void answer_body(const body_read& job);
  int read_status(const std::string& id, std::optional<message_status>& status);
  void answer_dead(const dead_read& job);
  void answer_audit(const audit_read& job);
  void answer_head(const head_read& job);
  void answer_checkpoints(const checkpoints_read& job);
  void answer_state(const state_read& job);
  void answer_queue(const queue_read& job);
  void answer_register(const register_read& job);
  void answer_facts(const facts_read& job);
  void answer_held(const held_read& job);
  void answer_held_job(const held_job_read& job);
  void answer_matches(const matches_read& job);
  int read_person_matches(const matches_read& job,
                          std::optional<std::vector<person_match>>& matches);
  int read_audit_rows(sqlite3_stmt* stmt, std::vector<audit::audit_row>& rows);
  void reader_failed(int rc);

  void close_queues();

  const std::filesystem::path path_;
  const std::size_t max_batch_;
  const std::uint64_t checkpoint_pages_;
  const std::uint64_t wal_limit_pages_;
  const std::function<time_point()> clock_;  // empty: the system clock

  /// The writer connection's prepared statements (only the writer thread uses them).
  struct writer_statements {
    statement select_user_version;
    statement select_existing;
    statement insert_message;
    statement insert_delivery;
    statement insert_exclusion;
    statement lease;
    statement take_back;
    statement report_delivered;
    statement report_retry;
    statement report_give_back;
    statement report_dead;
    statement report_dead_untried;
    statement replay;
    statement discard;
    statement withdraw;
    statement mark_withdrawn;
    statement original_exists;
    statement insert_early_withdrawal;
    statement select_early_withdrawal;
    statement delete_early_withdrawal;
    statement insert_person_key;
    statement withdraw_person_keys;
    statement delete_person_keys;
    statement select_rekey_messages;
    statement insert_person_key_at;
    statement purge_payloads;
    statement purge_bodies;
    statement purge_expired_payloads;
    statement purge_expired_bodies;
    statement select_audit_head;
    statement insert_audit;
    statement insert_checkpoint;
    statement select_state_version;
    statement select_max_state_version;
    statement upsert_state;
    statement select_rewrite_messages;
    statement select_rewrite_payloads;
    statement update_body;
    statement update_facts;
    statement update_payload;
    statement update_receipt;
    statement update_error;
    statement claim_next_recipient;
    statement claim_due;
    statement claim_expired;
    statement claim_job;
    statement select_held_for_release;
    statement approve_held;
    statement release_held;
    statement reject_held;
  };

  /// The reader connection's prepared statements (only the reader thread uses them).
  struct reader_statements {
    statement select_status;
    statement select_recipients;
    statement select_exclusions;
    statement select_dead;
    statement select_queue_stats;
    statement select_register;
    statement select_facts;
    statement select_audit;
    statement select_audit_last;
    statement select_checkpoints;
    statement select_state;
    statement select_held;
    statement select_held_job;
    statement select_message_seq;
    statement select_person_matches;
  };

  /// The chain's last (seq, hash) as seen inside the open transaction; read at the first append
  /// of each transaction (so a rolled-back batch leaves nothing stale behind).
  std::optional<std::pair<std::int64_t, std::string>> chain_head_;

  // Connections are declared before their statements so the statements are finalized first.
  connection writer_db_;  // used only by the constructor, then only by the writer thread
  std::optional<writer_statements> writer_sql_;
  connection reader_db_;  // used only by the constructor, then only by the reader thread
  std::optional<reader_statements> reader_sql_;
  connection checkpoint_db_;  // used only by the constructor, then only by the checkpointer

  // Cleared on the first I/O error or corruption seen by either thread, or when a newer build
  // has migrated the file; never set again.
  std::atomic<bool> healthy_{true};
  // Why the store stopped when it was not an I/O error ("schema-newer"; set before healthy_ is
  // cleared), and what the log says about it (stop_detail_: writer thread only).
  std::atomic<const char*> stopped_because_{nullptr};
  std::string stop_detail_;
  const char* stop_reason() const {
    const char* why = stopped_because_.load();
    return why != nullptr ? why : "io-error";
  }

  mutable std::mutex write_mutex_;  // guards writes_ and writes_closed_
  std::condition_variable write_cv_;
  std::deque<pending_write> writes_;
  bool writes_closed_ = false;

  std::mutex read_mutex_;  // guards reads_ and reads_closed_
  std::condition_variable read_cv_;
  std::deque<pending_read> reads_;
  bool reads_closed_ = false;

  // Guards checkpoint_wanted_, checkpoint_closed_, checkpoint_started_, checkpoint_finished_.
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_cv_;       // wakes the checkpointer
  std::condition_variable checkpoint_done_cv_;  // wakes a writer waiting at the bound
  bool checkpoint_wanted_ = false;
  bool checkpoint_closed_ = false;
  std::uint64_t checkpoint_started_ = 0;   // runs begun, numbered from 1
  std::uint64_t checkpoint_finished_ = 0;  // the number of the last run that ended

  std::mutex due_mutex_;  // guards deliveries_due_
  std::function<void()> deliveries_due_;

  std::mutex held_mutex_;  // guards approvals_when_held_
  std::function<std::size_t()> approvals_when_held_;

  std::mutex stop_mutex_;  // serialises stop(); guards stopped_ and the joins
  bool stopped_ = false;
  std::thread writer_;
  std::thread reader_;
  std::thread checkpointer_;
  std::thread::id writer_id_;
  std::thread::id reader_id_;

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> records_committed_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
  std::atomic<std::size_t> largest_batch_{0};
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> checkpoint_waits_{0};
  std::atomic<std::uint64_t> wal_pages_{0};
  std::atomic<std::uint64_t> largest_wal_pages_{0};
  std::atomic<std::uint64_t> checkpointed_pages_{0};  // log pages the last checkpoint had copied
};

sqlite_store::impl::impl(const sqlite_options& options)
    : path_(options.path),
      max_batch_(std::max<std::size_t>(options.max_batch, 1)),
      checkpoint_pages_(std::max<std::uint64_t>(options.checkpoint_pages, 1)),
      wal_limit_pages_(std::max<std::uint64_t>(options.wal_limit_pages, checkpoint_pages_)),
      clock_(options.clock) {
  if (path_.empty()) {
    throw store_error("the store path is empty");
  }
  const std::filesystem::path parent =
      path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
  create_directories_durably(parent);

  // SQLITE_OPEN_NOMUTEX: SQLite's per-connection mutex is not needed, because each connection is
  // handed to exactly one thread once this constructor is done.
  writer_db_ =
      open_connection(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      options.busy_timeout_ms);
  sqlite3* db = writer_db_.get();
  if (sqlite3_db_readonly(db, "main") == 1) {
    throw store_error(path_.string() + ": the database file is read-only");
  }
  const std::string journal_mode = query_text(db, "PRAGMA journal_mode = WAL", path_);
  if (journal_mode != "wal") {
    throw store_error(path_.string() + ": cannot switch to WAL mode (journal_mode is " +
                      journal_mode + ")");
  }
  // FULL: the WAL is fsynced at every commit, so a commit that returned SQLITE_OK (and with it
  // every `stored` answer) survives power loss, not only a crash of this process.
  exec_or_throw(db, "PRAGMA synchronous = FULL", path_);
  exec_or_throw(db, "PRAGMA foreign_keys = ON", path_);
  // The writer's page cache (see writer_cache_kib for why it is not larger).
  exec_or_throw(db, ("PRAGMA cache_size = -" + std::to_string(writer_cache_kib)).c_str(), path_);
  if (options.secure_delete) {
    exec_or_throw(db, "PRAGMA secure_delete = ON", path_);
  }
  migrate(db, path_);
  sync_directory(parent);  // the database file's own entry (and its -wal's) in the directory
  if (options.max_size_bytes > 0) {
    apply_size_cap(db, options.max_size_bytes, path_);
  }
  writer_sql_.emplace();
  writer_sql_->select_user_version = prepare(db, select_user_version_sql, path_);
  writer_sql_->select_existing = prepare(db, select_existing_sql, path_);
  writer_sql_->insert_message = prepare(db, insert_message_sql, path_);
  writer_sql_->insert_delivery = prepare(db, insert_delivery_sql, path_);
  writer_sql_->insert_exclusion = prepare(db, insert_exclusion_sql, path_);
  writer_sql_->lease = prepare(db, lease_sql, path_);
  writer_sql_->take_back = prepare(db, take_back_sql, path_);
  writer_sql_->report_delivered = prepare(db, report_delivered_sql, path_);
  writer_sql_->report_retry = prepare(db, report_retry_sql, path_);
  writer_sql_->report_give_back = prepare(db, report_give_back_sql, path_);
  writer_sql_->report_dead = prepare(db, report_dead_sql, path_);
  writer_sql_->report_dead_untried = prepare(db, report_dead_untried_sql, path_);
  writer_sql_->replay = prepare(db, replay_sql, path_);
  writer_sql_->discard = prepare(db, discard_sql, path_);
  writer_sql_->withdraw = prepare(db, withdraw_sql, path_);
  writer_sql_->mark_withdrawn = prepare(db, mark_withdrawn_sql, path_);
  writer_sql_->original_exists = prepare(db, original_exists_sql, path_);
  writer_sql_->insert_early_withdrawal = prepare(db, insert_early_withdrawal_sql, path_);
  writer_sql_->select_early_withdrawal = prepare(db, select_early_withdrawal_sql, path_);
  writer_sql_->delete_early_withdrawal = prepare(db, delete_early_withdrawal_sql, path_);
  writer_sql_->insert_person_key = prepare(db, insert_person_key_sql, path_);
  writer_sql_->withdraw_person_keys = prepare(db, withdraw_person_keys_sql, path_);
  writer_sql_->delete_person_keys = prepare(db, delete_person_keys_sql, path_);
  writer_sql_->select_rekey_messages = prepare(db, select_rekey_messages_sql, path_);
  writer_sql_->insert_person_key_at = prepare(db, insert_person_key_at_sql, path_);
  writer_sql_->purge_payloads = prepare(db, purge_payloads_sql, path_);
  writer_sql_->purge_bodies = prepare(db, purge_bodies_sql, path_);
  writer_sql_->purge_expired_payloads = prepare(db, purge_expired_payloads_sql, path_);
  writer_sql_->purge_expired_bodies = prepare(db, purge_expired_bodies_sql, path_);
  writer_sql_->select_audit_head = prepare(db, select_audit_head_sql, path_);
  writer_sql_->insert_audit = prepare(db, insert_audit_sql, path_);
  writer_sql_->insert_checkpoint = prepare(db, insert_checkpoint_sql, path_);
  writer_sql_->select_state_version = prepare(db, select_state_version_sql, path_);
  writer_sql_->select_max_state_version = prepare(db, select_max_state_version_sql, path_);
  writer_sql_->upsert_state = prepare(db, upsert_state_sql, path_);
  writer_sql_->select_rewrite_messages = prepare(db, select_rewrite_messages_sql, path_);
  writer_sql_->select_rewrite_payloads = prepare(db, select_rewrite_payloads_sql, path_);
  writer_sql_->update_body = prepare(db, update_body_sql, path_);
  writer_sql_->update_facts = prepare(db, update_facts_sql, path_);
  writer_sql_->update_payload = prepare(db, update_payload_sql, path_);
  writer_sql_->update_receipt = prepare(db, update_receipt_sql, path_);
  writer_sql_->update_error = prepare(db, update_error_sql, path_);
  writer_sql_->claim_next_recipient = prepare(db, claim_next_recipient_sql, path_);
  writer_sql_->claim_due = prepare(db, claim_due_sql, path_);
  writer_sql_->claim_expired = prepare(db, claim_expired_sql, path_);
  writer_sql_->claim_job = prepare(db, claim_job_sql, path_);
  writer_sql_->select_held_for_release = prepare(db, select_held_for_release_sql, path_);
  writer_sql_->approve_held = prepare(db, approve_held_sql, path_);
  writer_sql_->release_held = prepare(db, release_held_sql, path_);
  writer_sql_->reject_held = prepare(db, reject_held_sql, path_);
  // No checkpoint on the commit path: SQLite's automatic one would run inside the COMMIT of
  // whichever batch crosses its threshold, copying pages and fsyncing the database file while
  // that batch's accepts wait. The hook (it replaces the automatic checkpoint) only counts the
  // log's pages and wakes the checkpointer thread. journal_size_limit gives the disk back after
  // a burst: when the log starts over, a file grown past twice the checkpoint interval is cut.
  sqlite3_wal_autocheckpoint(db, 0);
  sqlite3_wal_hook(db, &impl::on_wal_commit, this);
  const std::int64_t page_size = query_int(db, "PRAGMA page_size", path_);
  query_int(db,
            "PRAGMA journal_size_limit = " +
                std::to_string(static_cast<std::int64_t>(2 * checkpoint_pages_) * page_size),
            path_);

  reader_db_ =
      open_connection(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, options.busy_timeout_ms);
  sqlite3* rdb = reader_db_.get();
  reader_sql_.emplace();
  reader_sql_->select_status = prepare(rdb, select_status_sql, path_);
  reader_sql_->select_recipients = prepare(rdb, select_recipients_sql, path_);
  reader_sql_->select_exclusions = prepare(rdb, select_exclusions_sql, path_);
  reader_sql_->select_dead = prepare(rdb, select_dead_sql, path_);
  reader_sql_->select_audit = prepare(rdb, select_audit_sql, path_);
  reader_sql_->select_queue_stats = prepare(rdb, select_queue_stats_sql, path_);
  reader_sql_->select_register = prepare(rdb, select_register_sql, path_);
  reader_sql_->select_facts = prepare(rdb, select_facts_sql, path_);
  reader_sql_->select_audit_last = prepare(rdb, select_audit_last_sql, path_);
  reader_sql_->select_checkpoints = prepare(rdb, select_checkpoints_sql, path_);
  reader_sql_->select_state = prepare(rdb, select_state_sql, path_);
  reader_sql_->select_held = prepare(rdb, select_held_sql, path_);
  reader_sql_->select_held_job = prepare(rdb, select_held_job_sql, path_);
  reader_sql_->select_message_seq = prepare(rdb, select_message_seq_sql, path_);
  reader_sql_->select_person_matches = prepare(rdb, select_person_matches_sql, path_);

  // The checkpointer writes the database file, so it needs a read-write connection; the query
  // opens the log on it (a checkpoint on a connection that never read the file would do nothing).
  checkpoint_db_ =
      open_connection(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, options.busy_timeout_ms);
  exec_or_throw(checkpoint_db_.get(), "PRAGMA synchronous = FULL", path_);
  query_int(checkpoint_db_.get(), "SELECT count(*) FROM sqlite_master", path_);
}

void sqlite_store::impl::start() {
  checkpointer_ = std::thread([this] { checkpointer_loop(); });
  try {
    writer_ = std::thread([this] { writer_loop(); });
    writer_id_ = writer_.get_id();
  } catch (const std::system_error& e) {
    close_checkpointer();
    checkpointer_.join();
    throw store_error(path_.string() + ": cannot start the writer thread: " + e.what());
  }
  try {
    reader_ = std::thread([this] { reader_loop(); });
    reader_id_ = reader_.get_id();
  } catch (const std::system_error& e) {
    close_queues();
    writer_.join();
    close_checkpointer();
    checkpointer_.join();
    throw store_error(path_.string() + ": cannot start the reader thread: " + e.what());
  }
}

void sqlite_store::impl::submit(pending_write write) {
  const char* refusal = nullptr;
  {
    const std::lock_guard lock(write_mutex_);
    if (writes_closed_) {
      refusal = "stopped";
    } else if (!healthy_) {
      refusal = stop_reason();
    } else {
      try {
        writes_.push_back(std::move(write));  // strong guarantee: on failure, write is intact
      } catch (...) {
        refusal = "store-error";
      }
    }
  }
  if (refusal == nullptr) {
    write_cv_.notify_one();
    return;
  }
  answer(write, refusal);
}

void sqlite_store::impl::submit_read(pending_read read) {
  bool queued = false;
  {
    const std::lock_guard lock(read_mutex_);
    if (!reads_closed_ && healthy_) {
      try {
        reads_.push_back(std::move(read));
        queued = true;
      } catch (...) {
      }
    }
  }
  if (queued) {
    read_cv_.notify_one();
    return;
  }
  fail_read(read);
}

void sqlite_store::impl::set_deliveries_due(std::function<void()> callback) {
  const std::lock_guard lock(due_mutex_);
  deliveries_due_ = std::move(callback);
}

void sqlite_store::impl::set_approvals_when_held(std::function<std::size_t()> source) {
  const std::lock_guard lock(held_mutex_);
  approvals_when_held_ = std::move(source);
}

std::int64_t sqlite_store::impl::approvals_when_held() {
  std::function<std::size_t()> source;
  {
    const std::lock_guard lock(held_mutex_);
    source = approvals_when_held_;
  }
  return source ? clamp_to_int64(source()) : 0;
}

void sqlite_store::impl::close_queues() {
  {
    const std::lock_guard lock(write_mutex_);
    writes_closed_ = true;
  }
  write_cv_.notify_all();
  {
    const std::lock_guard lock(read_mutex_);
    reads_closed_ = true;
  }
  read_cv_.notify_all();
}

void sqlite_store::impl::stop() {
  const std::thread::id self = std::this_thread::get_id();
  if (self == writer_id_ || self == reader_id_) {
    // Called from inside a handler: joining would wait for this very thread. Refuse new work now;
    // the owner's stop() or the destructor drains and joins.
    close_queues();
    return;
  }
  const std::lock_guard lock(stop_mutex_);
  if (stopped_) {
    return;
  }
  stopped_ = true;
  // Closing the queues refuses new work; both threads still finish what is already queued
  // (queued accepts are committed, not dropped) and exit when their queue is empty.
  close_queues();
  if (writer_.joinable()) {
    writer_.join();
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  // After the writer: it may be waiting for a checkpoint at the bound until its queue is empty.
  // A checkpoint in flight finishes first; one only requested is dropped (the close does it).
  close_checkpointer();
  if (checkpointer_.joinable()) {
    checkpointer_.join();
  }
  // The threads are gone, so the connections are ours again. The writer closes last: the last
  // connection to close checkpoints the WAL into the database file and removes it.
  reader_sql_.reset();
  reader_db_.reset();
  checkpoint_db_.reset();
  writer_sql_.reset();
  writer_db_.reset();
}

sqlite_store_stats sqlite_store::impl::stats() const {
  sqlite_store_stats s;
  s.commits = commits_.load();
  s.records_committed = records_committed_.load();
  s.failed_batches = failed_batches_.load();
  s.largest_batch = largest_batch_.load();
  s.checkpoints = checkpoints_.load();
  s.checkpoint_waits = checkpoint_waits_.load();
  s.wal_pages = wal_pages_.load();
  s.largest_wal_pages = largest_wal_pages_.load();
  const std::lock_guard lock(write_mutex_);
  s.queued = writes_.size();
  return s;
}

time_point sqlite_store::impl::now() const {
  return clock_ ? clock_() : std::chrono::system_clock::now();
}

// ---- writer thread ----

void sqlite_store::impl::writer_loop() {
  std::vector<pending_write> batch;
  for (;;) {
    {
      std::unique_lock lock(write_mutex_);
      // Sleep only while there is nothing to write. There is no timer: a lone record on an idle
      // store is committed at once. Under load, writes pile up in the queue while the previous
      // batch waits for its fsync, and the next round takes them all (up to max_batch) into one
      // transaction: that is the group commit, one fsync for many accepts and reports.
      write_cv_.wait(lock, [this] { return !writes_.empty() || writes_closed_; });
      if (writes_.empty()) {
        return;  // closed, and everything queued before the close has been answered
      }
      const auto take = static_cast<std::ptrdiff_t>(std::min(writes_.size(), max_batch_));
      std::move(writes_.begin(), writes_.begin() + take, std::back_inserter(batch));
      writes_.erase(writes_.begin(), writes_.begin() + take);
    }
    // The lock is released here, so submitters never wait for SQLite, only for a queue push.
    commit_batch(batch);
    batch.clear();
    // At the bound, the writer waits for one checkpoint run, started while it writes nothing, to
    // copy the log's tail; a run already in flight would make it wait for two, so it goes on
    // writing while one is, up to twice the bound.
    const std::uint64_t pages = wal_pages_.load();
    if (pages >= wal_limit_pages_ && (pages >= 2 * wal_limit_pages_ || !checkpoint_running())) {
      wait_for_checkpoint();
    }
  }
}

// ---- the write-ahead log ----

int sqlite_store::impl::on_wal_commit(void* self, sqlite3*, const char*, int pages) {
  // Runs on the writer thread inside each COMMIT, after the log is synced: count, and wake.
  auto* store = static_cast<impl*>(self);
  const auto now_pages = static_cast<std::uint64_t>(std::max(pages, 0));
  store->wal_pages_.store(now_pages);
  std::uint64_t largest = store->largest_wal_pages_.load();
  while (now_pages > largest &&
         !store->largest_wal_pages_.compare_exchange_weak(largest, now_pages)) {
  }
  // Pages no checkpoint has copied yet: past the last run's end, or all of them when the log has
  // started over since. A run for every checkpoint_pages of them, not one after every commit:
  // back-to-back checkpoints would take a core from the event loop, each with two fsyncs.
  const std::uint64_t copied = store->checkpointed_pages_.load();
  const std::uint64_t pending = now_pages >= copied ? now_pages - copied : now_pages;
  if (pending >= store->checkpoint_pages_) {
    store->request_checkpoint();
  }
  return SQLITE_OK;
}

void sqlite_store::impl::request_checkpoint() {
  {
    const std::lock_guard lock(checkpoint_mutex_);
    checkpoint_wanted_ = true;
  }
  checkpoint_cv_.notify_one();
}

bool sqlite_store::impl::checkpoint_running() {
  const std::lock_guard lock(checkpoint_mutex_);
  return checkpoint_started_ != checkpoint_finished_;
}

void sqlite_store::impl::wait_for_checkpoint() {
  // The log is past its bound: a passive checkpoint that runs while nothing is committed reaches
  // the log's end, and the next transaction then writes the log from its beginning again. So the
  // writer takes no new batch until a checkpoint that began after this point has ended. (Queued
  // writes wait meanwhile; that is the back-pressure a disk slower than the load must give.)
  checkpoint_waits_.fetch_add(1);
  std::unique_lock lock(checkpoint_mutex_);
  const std::uint64_t needed = checkpoint_started_ + 1;
  checkpoint_wanted_ = true;
  checkpoint_cv_.notify_one();
  checkpoint_done_cv_.wait(lock,
                           [&] { return checkpoint_finished_ >= needed || checkpoint_closed_; });
}

void sqlite_store::impl::close_checkpointer() {
  {
    const std::lock_guard lock(checkpoint_mutex_);
    checkpoint_closed_ = true;
  }
  checkpoint_cv_.notify_all();
  checkpoint_done_cv_.notify_all();
}

void sqlite_store::impl::checkpointer_loop() {
  for (;;) {
    std::uint64_t run = 0;
    {
      std::unique_lock lock(checkpoint_mutex_);
      checkpoint_cv_.wait(lock, [this] { return checkpoint_wanted_ || checkpoint_closed_; });
      if (checkpoint_closed_) {
        return;  // the writer's connection checkpoints the rest when it closes
      }
      checkpoint_wanted_ = false;
      run = ++checkpoint_started_;
    }
    if (healthy_) {
      run_checkpoint();
    }
    {
      const std::lock_guard lock(checkpoint_mutex_);
      checkpoint_finished_ = run;
    }
    checkpoint_done_cv_.notify_all();
  }
}

void sqlite_store::impl::run_checkpoint() {
  // PASSIVE: copies what no reader still needs, without taking the writer's lock, so commits go
  // on meanwhile. It syncs the log, copies its pages into the database file and syncs that.
  sqlite3* db = checkpoint_db_.get();
  int log_pages = 0;
  int copied_pages = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_pages, &copied_pages);
  if (rc == SQLITE_OK) {
    checkpointed_pages_.store(static_cast<std::uint64_t>(std::max(copied_pages, 0)));
    checkpoints_.fetch_add(1);
    return;
  }
  if ((rc & 0xff) == SQLITE_BUSY) {
    return;  // another process is checkpointing the same file; the next request tries again
  }
  const std::string detail = describe_failure(db, rc, path_);
  if (is_fatal(rc)) {
    // A failed write or fsync of the database file: as on the commit path, fail-stop.
    healthy_ = false;
    log_quietly(log::level::critical, {.event = "store.fail_stop",
                                       .outcome = "unavailable",
                                       .reason = "io-error",
                                       .detail = detail});
    return;
  }
  const char* reason = (rc & 0xff) == SQLITE_FULL ? "disk-full" : "store-error";
  log_quietly(log::level::error, {.event = "store.checkpoint_failed",
                                  .outcome = "failed",
                                  .reason = reason,
                                  .detail = detail});
}

void sqlite_store::impl::commit_batch(std::vector<pending_write>& batch) {
  const char* failure = nullptr;
  if (!healthy_) {
    // Fail-stop: after an I/O error (or a newer build's migration) the writer connection is
    // never used again.
    failure = stop_reason();
  } else {
    failure = try_transaction(batch, false);
    const bool disk_full = failure != nullptr && std::strcmp(failure, "disk-full") == 0;
    if (disk_full && std::any_of(batch.begin(), batch.end(), adds_rows) &&
        !std::all_of(batch.begin(), batch.end(), adds_rows)) {
      // The whole batch was rolled back and its accepts are refused. Its claims, reports and
      // replays only update rows in place, so they get one more transaction of their own: a
      // full disk must not also stall deliveries (every unrecorded receipt means a redelivery).
      try_transaction(batch, true);
    }
  }
  // Handlers run only now: for `stored`, COMMIT has returned SQLITE_OK, so the row is durable.
  bool due = false;
  for (auto& write : batch) {
    if (write.committed) {
      if (const auto* a = std::get_if<accept_write>(&write.work)) {
        due = due || (a->result.outcome == accept_outcome::stored &&
                      std::any_of(a->record.deliveries.begin(), a->record.deliveries.end(),
                                  [](const delivery_plan& plan) { return plan.hold.empty(); }));
      } else if (const auto* r = std::get_if<replay_write>(&write.work)) {
        due = due || r->found;
      } else if (const auto* d = std::get_if<release_write>(&write.work)) {
        due = due || d->result.outcome == release_outcome::released;  // a copy became due
      }
    }
    answer(write, failure);
  }
  if (due) {
    notify_deliveries_due();
  }
}

const char* sqlite_store::impl::try_transaction(std::vector<pending_write>& batch,
                                                bool bookkeeping_only) {
  int rc = SQLITE_ERROR;
  try {
    rc = write_batch(batch, bookkeeping_only);
  } catch (...) {
    rc = SQLITE_NOMEM;  // only allocation (or an injected clock) can throw in there
  }
  if (rc != SQLITE_OK) {
    const std::string detail = stopped_because_.load() != nullptr
                                   ? stop_detail_
                                   : describe_failure(writer_db_.get(), rc, path_);
    // Nothing of a failed batch may stay behind, whichever statement failed (also COMMIT).
    rollback_if_open(writer_db_.get());
    const char* failure = failure_reason(rc);
    const bool fatal = !healthy_;
    log_quietly(fatal ? log::level::critical : log::level::error,
                {.event = fatal ? "store.fail_stop" : "store.batch_failed",
                 .outcome = "unavailable",
                 .reason = failure,
                 .detail = detail});
    failed_batches_.fetch_add(1);
    return failure;
  }
  std::size_t carried = 0;
  std::uint64_t answered = 0;
  for (auto& write : batch) {
    if (bookkeeping_only && adds_rows(write)) {
      continue;
    }
    write.committed = true;
    ++carried;
    if (const auto* a = std::get_if<accept_write>(&write.work)) {
      answered += a->result.outcome != accept_outcome::unavailable ? 1 : 0;
    }
  }
  commits_.fetch_add(1);
  records_committed_.fetch_add(answered);
  std::size_t largest = largest_batch_.load();
  while (carried > largest && !largest_batch_.compare_exchange_weak(largest, carried)) {
  }
  return nullptr;
}

const char* sqlite_store::impl::failure_reason(int rc) {
  if (const char* why = stopped_because_.load()) {
    return why;
  }
  if ((rc & 0xff) == SQLITE_FULL) {
    return "disk-full";
  }
  if (is_fatal(rc)) {
    // A failed write or fsync leaves the file in a state we cannot know (the kernel may have
    // dropped the dirty pages), so retrying could report a commit that never reached the disk.
    healthy_ = false;
    return "io-error";
  }
  return "store-error";
}

void sqlite_store::impl::notify_deliveries_due() {
  std::function<void()> callback;
  {
    const std::lock_guard lock(due_mutex_);
    callback = deliveries_due_;
  }
  call_quietly(callback);
}

int sqlite_store::impl::write_batch(std::vector<pending_write>& batch, bool bookkeeping_only) {
  sqlite3* db = writer_db_.get();
  // IMMEDIATE takes the write lock up front, so no statement in the batch can hit SQLITE_BUSY
  // half-way (another process could hold the file; busy_timeout covers the wait here).
  int rc = exec(db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    return rc;
  }
  rc = check_schema_version();
  if (rc != SQLITE_OK) {
    return rc;
  }
  // One time for the batch: all of its records become durable at the same commit, and claims
  // judge due times and leases against the same instant.
  const time_point batch_time = now();
  const std::string accepted_at = format_rfc3339_ms(batch_time);
  const std::int64_t now_ms = to_ms(batch_time);
  chain_head_.reset();
  // Queue order: a claim sees the rows of accepts and reports queued before it.
  for (auto& write : batch) {
    if (bookkeeping_only && adds_rows(write)) {
      continue;
    }
    rc = std::visit(
        [&](auto& w) {
          using kind = std::decay_t<decltype(w)>;
          if constexpr (std::is_same_v<kind, accept_write>) {
            return write_record(w, accepted_at, now_ms);
          } else if constexpr (std::is_same_v<kind, claim_write>) {
            return write_claim(w, now_ms);
          } else if constexpr (std::is_same_v<kind, report_write>) {
            return write_report(w, now_ms, accepted_at);
          } else if constexpr (std::is_same_v<kind, replay_write>) {
            return write_replay(w, now_ms, accepted_at);
          } else if constexpr (std::is_same_v<kind, release_write>) {
            return write_release(w, now_ms, accepted_at);
          } else if constexpr (std::is_same_v<kind, audit_write>) {
            return append_audit_rows(w.records, accepted_at);
          } else if constexpr (std::is_same_v<kind, checkpoint_write>) {
            return write_checkpoint(w);
          } else if constexpr (std::is_same_v<kind, purge_write>) {
            return write_purge(w, now_ms, accepted_at);
          } else if constexpr (std::is_same_v<kind, rewrite_write>) {
            return in_own_savepoint<rewrite_write>(
                writer_db_.get(), w, [this](rewrite_write& x) { return rewrite_values_of(x); });
          } else if constexpr (std::is_same_v<kind, rekey_write>) {
            return in_own_savepoint<rekey_write>(
                writer_db_.get(), w, [this](rekey_write& x) { return rekey_persons_of(x); });
          } else {
            return write_state(w, accepted_at);
          }
        },
        write.work);
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  return exec(db, "COMMIT");
}

// A newer mxgw may migrate the file while this one runs (another process on the same file, or a
// command of the newer build run before this gateway was restarted). What it stores from then on
// may mean something this build would ignore or misread, so this build must not write to the
// file again: it stops as after an I/O error. Read under the write lock, so no batch of this build
// commits after the migration did.
int sqlite_store::impl::check_schema_version() {
  statement_use use(writer_sql_->select_user_version.get());
  const int rc = use.step();
  if (rc != SQLITE_ROW) {
    return rc;
  }
  const std::int64_t found = use.column_int64(0);
  if (found <= sqlite_schema_version) {
    return SQLITE_OK;
  }
  stopped_because_ = "schema-newer";
  stop_detail_ = path_.string() + ": schema version " + std::to_string(found) +
                 " is newer than this build of mxgw knows (" +
                 std::to_string(sqlite_schema_version) +
                 "); a newer mxgw migrated the file, so this one writes no more: restart the "
                 "gateway with the newer build";
  healthy_ = false;
  return SQLITE_SCHEMA;
}

int sqlite_store::impl::write_record(accept_write& write, const std::string& accepted_at,
                                     std::int64_t now_ms) {
  const message_record& record = write.record;
  {
    // This connection sees the rows inserted earlier in the same (still open) transaction, so a
    // second copy of an id within one batch is judged against the first, exactly as it would be
    // against a row from an earlier batch.
    statement_use use(writer_sql_->select_existing.get());
    int rc = use.bind_text(1, record.id);
    if (rc != SQLITE_OK) {
      return rc;
    }
    rc = use.step();
    if (rc == SQLITE_ROW) {
      const bool same =
          use.column_text(0) == record.sender && use.column_text(1) == record.body_sha256;
      if (same) {
        // A duplicate writes nothing: its delivery rows exist since the first accept.
        write.result = accept_result{accept_outcome::duplicate, use.column_text(2), {}};
      } else {
        write.result = accept_result{accept_outcome::conflict, {}, {}};
      }
      return SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  if (const char* invalid = invalid_record(record)) {
    log_quietly(log::level::error,
                {.event = "store.invalid_record", .outcome = "unavailable", .reason = invalid});
    write.result = unavailable("invalid-record");
    return SQLITE_OK;
  }
  // A withdrawal routed without its original, which is stored now (committed after the look-up,
  // or earlier in this batch): its copies may be out, so routing must see it. Nothing is written.
  if (!record.withdraws.empty() && !record.original_seen) {
    statement_use use(writer_sql_->original_exists.get());
    int rc = use.bind(std::string_view(record.withdraws), std::string_view(record.sender));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_ROW) {
      write.result = accept_result{accept_outcome::reroute, {}, {}};
      return SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  // Its sender withdrew it before it arrived (the withdrawal's id and time), or not.
  std::optional<std::pair<std::string, std::int64_t>> early;
  {
    statement_use use(writer_sql_->select_early_withdrawal.get());
    int rc = use.bind(std::string_view(record.id), std::string_view(record.sender));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_ROW) {
      early.emplace(use.column_text(0), use.column_int64(1));
    } else if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  // Every row of a new record is written here, inside the batch's transaction: the message, one
  // delivery row per recipient (due at once) and the exclusions. All of them commit or none does.
  int rc = insert_message(record, accepted_at);
  if (rc != SQLITE_OK) {
    return rc;
  }
  if (early) {
    // Stored withdrawn, as if the withdrawal had come after it: marked with the withdrawal's
    // time, every copy 'withdrawn' without its payload, no person keys; the withdrawal is used.
    for (statement* sql : {&writer_sql_->mark_withdrawn, &writer_sql_->delete_early_withdrawal}) {
      statement_use use(sql->get());
      rc = sql == &writer_sql_->mark_withdrawn
               ? use.bind(std::string_view(record.id), std::string_view(record.sender),
                          early->second)
               : use.bind(std::string_view(record.id), std::string_view(record.sender));
      if (rc == SQLITE_OK) {
        rc = use.step();
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
    }
  }
  // The approvals a held copy's release needs under the routing in force, asked once per accept.
  std::optional<std::int64_t> approvals_now;
  for (const auto& plan : record.deliveries) {
    const std::string relies_on = relies_on_column(plan.relies_on);
    std::int64_t approvals_required = 0;
    if (!plan.hold.empty()) {
      if (plan.approvals_required != 0) {
        approvals_required = clamp_to_int64(plan.approvals_required);
      } else {
        if (!approvals_now) {
          approvals_now = approvals_when_held();
        }
        approvals_required = *approvals_now;
      }
    }
    statement_use use(writer_sql_->insert_delivery.get());
    std::string_view copy_state = plan.hold.empty() ? "pending" : "held";
    if (early) {
      copy_state = "withdrawn";
    }
    rc = use.bind(std::string_view(record.id), std::string_view(plan.recipient),
                  std::string_view(plan.decided_by),
                  blob_value{early ? std::string_view() : std::string_view(plan.payload)},
                  plan.withheld.empty() ? std::string_view("[]") : std::string_view(plan.withheld),
                  now_ms, std::int64_t{plan.payload_is_body && !early ? 1 : 0}, copy_state,
                  std::string_view(plan.hold), std::string_view(relies_on), approvals_required);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  for (const auto& exclusion : record.exclusions) {
    statement_use use(writer_sql_->insert_exclusion.get());
    rc = use.bind(std::string_view(record.id), std::string_view(exclusion.partner),
                  std::string_view(exclusion.considered), std::string_view(exclusion.reason));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  for (const auto& key : early ? std::span<const person_key>() : std::span(record.person_keys)) {
    statement_use use(writer_sql_->insert_person_key.get());
    rc = use.bind(blob_value{key.digest}, std::string_view(key.kind), std::string_view(record.id),
                  std::string_view(key.pointer));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  if (!record.withdraws.empty()) {
    // The original is marked withdrawn (rekey_persons gives it no keys again), its copies not yet
    // out are taken back, and its persons are matched no more (all of its keys, whatever the
    // state of its copies).
    {
      statement_use use(writer_sql_->mark_withdrawn.get());
      rc = use.bind(std::string_view(record.withdraws), std::string_view(record.sender), now_ms);
      if (rc == SQLITE_OK) {
        rc = use.step();
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
    }
    if (sqlite3_changes(writer_db_.get()) == 0) {
      // The original is not stored (yet): it will be stored withdrawn when it comes.
      statement_use use(writer_sql_->insert_early_withdrawal.get());
      rc = use.bind(std::string_view(record.withdraws), std::string_view(record.sender),
                    std::string_view(record.id), now_ms);
      if (rc == SQLITE_OK) {
        rc = use.step();
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
    }
    for (statement* sql : {&writer_sql_->withdraw, &writer_sql_->withdraw_person_keys}) {
      statement_use use(sql->get());
      rc = use.bind(std::string_view(record.withdraws), std::string_view(record.sender));
      if (rc == SQLITE_OK) {
        rc = use.step();
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
    }
  }
  write.result = accept_result{accept_outcome::stored, accepted_at, {}};
  if (early) {
    write.result.withdrawn_by = early->first;
    // The accept's entry says which withdrawal took it back (a copy: a batch may run again).
    std::vector<audit::audit_record> audit = record.audit;
    for (auto& entry : audit) {
      if (entry.event == "message.accepted") {
        entry.details.emplace_back("withdrawnBy", early->first);
      }
    }
    return append_audit_rows(audit, accepted_at);
  }
  return append_audit_rows(record.audit, accepted_at);
}

int sqlite_store::impl::insert_message(const message_record& record,
                                       const std::string& accepted_at) {
  statement_use use(writer_sql_->insert_message.get());
  // A message routing found no recipient for is kept (lose nothing) but marked for operators.
  const std::string_view state = record.deliveries.empty() ? "undeliverable" : "accepted";
  int rc = use.bind(std::string_view(record.id), std::string_view(record.sender),
                    std::string_view(record.type), std::string_view(record.created),
                    std::string_view(accepted_at), std::string_view(record.body_sha256),
                    blob_value{record.body}, state, blob_value{record.facts},
                    expires_ms(record.expires_at));
  if (rc != SQLITE_OK) {
    return rc;
  }
  rc = use.step();
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int sqlite_store::impl::delete_person_keys(const std::vector<std::int64_t>& message_seqs) {
  for (const std::int64_t seq : message_seqs) {
    statement_use use(writer_sql_->delete_person_keys.get());
    int rc = use.bind(seq);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  return SQLITE_OK;
}

namespace {

/// A due row as the claim ranks it: its recipient's turn (1 for the recipient's oldest due row),
/// then next_attempt_at, then rowid.
struct due_row {
  std::size_t turn = 0;
  std::int64_t next_attempt_at = 0;
  std::int64_t rowid = 0;
};

bool by_age(const due_row& a, const due_row& b) {
  return std::tie(a.next_attempt_at, a.rowid) < std::tie(b.next_attempt_at, b.rowid);
}
bool by_turn(const due_row& a, const due_row& b) {
  return std::tie(a.turn, a.next_attempt_at, a.rowid) <
         std::tie(b.turn, b.next_attempt_at, b.rowid);
}

/// Appends the (rowid, next_attempt_at) rows a claim statement yields.
int read_due_rows(statement_use& use, std::vector<due_row>& out) {
  int rc = SQLITE_OK;
  while ((rc = use.step()) == SQLITE_ROW) {
    out.push_back({0, use.column_int64(1), use.column_int64(0)});
  }
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

}  // namespace

int sqlite_store::impl::write_claim(claim_write& write, std::int64_t now_ms) {
  write.jobs.clear();  // a batch may run twice (the disk-full retry)
  if (write.max_jobs == 0) {
    return SQLITE_OK;
  }
  const std::int64_t max_jobs = clamp_to_int64(write.max_jobs);
  // The recipients with rows that may be due, and in which of the states: pending, retrying, or
  // leased (an expired lease). Only those states are read for each.
  constexpr std::array<const char*, 3> states = {"pending", "retrying", "delivering"};
  std::vector<std::pair<std::string, unsigned>> found;  // (recipient, 1 << state index)
  for (std::size_t s = 0; s < states.size(); ++s) {
    std::string after;
    for (;;) {
      statement_use use(writer_sql_->claim_next_recipient.get());
      int rc = use.bind(std::string_view(states[s]), std::string_view(after));
      if (rc != SQLITE_OK) {
        return rc;
      }
      rc = use.step();
      if (rc == SQLITE_DONE) {
        break;
      }
      if (rc != SQLITE_ROW) {
        return rc;
      }
      after = use.column_text(0);
      found.emplace_back(after, 1U << s);
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::pair<std::string, unsigned>> recipients;  // one entry each, states or-ed
  for (auto& [recipient, bit] : found) {
    if (!recipients.empty() && recipients.back().first == recipient) {
      recipients.back().second |= bit;
    } else {
      recipients.emplace_back(std::move(recipient), bit);
    }
  }

  // Each recipient's oldest due rows, at most as many as it may take, numbered by age: its turns.
  // Only these can be picked, so no other due row is read.
  std::vector<due_row> picked;
  std::vector<due_row> rows;
  for (const auto& [recipient, in_states] : recipients) {
    std::int64_t limit = max_jobs;
    const auto cap = std::lower_bound(
        write.caps.begin(), write.caps.end(), recipient,
        [](const recipient_cap& c, const std::string& r) { return c.recipient < r; });
    if (cap != write.caps.end() && cap->recipient == recipient) {
      limit = std::min(limit, clamp_to_int64(cap->max_jobs));
    }
    if (limit == 0) {
      continue;
    }
    rows.clear();
    for (std::size_t s = 0; s < 2; ++s) {  // pending, retrying: due by next_attempt_at
      if ((in_states & (1U << s)) == 0) {
        continue;
      }
      statement_use use(writer_sql_->claim_due.get());
      int rc = use.bind(std::string_view(states[s]), std::string_view(recipient), now_ms, limit);
      if (rc == SQLITE_OK) {
        rc = read_due_rows(use, rows);
      }
      if (rc != SQLITE_OK) {
        return rc;
      }
    }
    if ((in_states & (1U << 2)) != 0) {  // delivering: due when its lease has run out
      statement_use use(writer_sql_->claim_expired.get());
      int rc = use.bind(std::string_view(recipient), now_ms, limit);
      if (rc == SQLITE_OK) {
        rc = read_due_rows(use, rows);
      }
      if (rc != SQLITE_OK) {
        return rc;
      }
    }
    std::sort(rows.begin(), rows.end(), by_age);
    const auto take = std::min(rows.size(), static_cast<std::size_t>(limit));
    for (std::size_t i = 0; i < take; ++i) {
      rows[i].turn = i + 1;
      picked.push_back(rows[i]);
    }
  }
  // Round robin: every recipient's first turn, then every one's second, ...; oldest first within
  // a round.
  std::sort(picked.begin(), picked.end(), by_turn);
  if (picked.size() > write.max_jobs) {
    picked.resize(write.max_jobs);
  }

  // Read the jobs first, then lease them: no row is updated under a running SELECT.
  std::vector<std::int64_t> rowids;
  std::vector<std::int64_t> taken_back;
  rowids.reserve(picked.size());
  for (const due_row& row : picked) {
    statement_use use(writer_sql_->claim_job.get());
    int rc = use.bind(row.rowid);
    if (rc != SQLITE_OK) {
      return rc;
    }
    rc = use.step();
    if (rc == SQLITE_DONE) {
      continue;  // its message row is missing (never so when mxgw wrote the file): left out
    }
    if (rc != SQLITE_ROW) {
      return rc;
    }
    if (use.column_int64(11) != 0) {
      taken_back.push_back(row.rowid);  // its message was withdrawn while it was in flight
      continue;
    }
    rowids.push_back(row.rowid);
    delivery_job job;
    job.message_id = use.column_text(0);
    job.recipient = use.column_text(1);
    job.payload = use.column_blob(2);
    job.attempt = static_cast<int>(use.column_int64(3)) + 1;
    job.sender = use.column_text(4);
    job.type = use.column_text(5);
    job.accepted_at = parse_rfc3339(use.column_text(6)).value_or(time_point{});
    job.payload_is_body = use.column_int64(7) != 0;
    job.body_grant = use.column_blob(8);
    if (!use.column_is_null(9)) {
      job.released_at = from_ms(use.column_int64(9));
    }
    if (!use.column_is_null(10)) {
      job.expires_at = from_ms(use.column_int64(10));
    }
    job.relies_on = relies_on_of(use.column_text(12));
    write.jobs.push_back(std::move(job));
  }
  // Saturating: an absurdly long lease must not overflow into the past.
  const std::int64_t lease_ms = std::max<std::int64_t>(write.lease.count(), 0);
  const std::int64_t lease_expires = lease_ms > std::numeric_limits<std::int64_t>::max() - now_ms
                                         ? std::numeric_limits<std::int64_t>::max()
                                         : now_ms + lease_ms;
  for (const std::int64_t rowid : rowids) {
    statement_use use(writer_sql_->lease.get());
    int rc = use.bind(rowid, std::string_view(write.owner), lease_expires);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  for (const std::int64_t rowid : taken_back) {
    statement_use use(writer_sql_->take_back.get());
    int rc = use.bind(rowid);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  return SQLITE_OK;
}

int sqlite_store::impl::write_report(const report_write& write, std::int64_t now_ms,
                                     const std::string& at) {
  const attempt_report& report = write.report;
  sqlite3_stmt* stmt = nullptr;
  std::int64_t when = now_ms;
  std::string_view text = bounded_text(report.error, max_error_bytes);
  switch (report.result) {
    case attempt_result::delivered:
      stmt = writer_sql_->report_delivered.get();
      text = bounded_text(report.receipt, max_receipt_bytes);
      break;
    case attempt_result::retry:
      stmt =
          report.attempted ? writer_sql_->report_retry.get() : writer_sql_->report_give_back.get();
      when = to_ms(report.next_attempt_at);
      break;
    case attempt_result::dead:
      stmt = report.attempted ? writer_sql_->report_dead.get()
                              : writer_sql_->report_dead_untried.get();
      break;
  }
  if (stmt == nullptr) {
    return SQLITE_MISUSE;  // not an attempt_result this build knows
  }
  statement_use use(stmt);
  // No row changes when the lease or the attempt moved on: the report is ignored, and that is
  // not an error.
  // The text is bound as bytes: a partner's answer (invalid UTF-8, NUL) or a sealed value.
  int rc = use.bind(std::string_view(report.message_id), std::string_view(report.recipient),
                    std::string_view(report.owner), when, blob_value{text},
                    static_cast<std::int64_t>(report.attempt));
  if (rc == SQLITE_OK) {
    rc = use.step();
  }
  if (rc != SQLITE_DONE) {
    return rc;
  }
  // The outcome's audit entries only when it took effect (not for a report of a lost lease).
  if (sqlite3_changes(writer_db_.get()) > 0) {
    return append_audit_rows(report.audit, at);
  }
  return SQLITE_OK;
}

int sqlite_store::impl::write_replay(replay_write& write, std::int64_t now_ms,
                                     const std::string& at) {
  write.found = false;
  int rc = SQLITE_OK;
  if (write.discard_reason) {
    statement_use use(writer_sql_->discard.get());
    rc = use.bind(std::string_view(write.message_id), std::string_view(write.recipient),
                  blob_value{bounded_text(*write.discard_reason, max_error_bytes)});
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
  } else {
    statement_use use(writer_sql_->replay.get());
    rc = use.bind(std::string_view(write.message_id), std::string_view(write.recipient), now_ms);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
  }
  if (rc != SQLITE_DONE) {
    return rc;
  }
  write.found = sqlite3_changes(writer_db_.get()) > 0;
  return write.found ? append_audit_rows(write.audit, at) : SQLITE_OK;
}

int sqlite_store::impl::write_release(release_write& write, std::int64_t now_ms,
                                      const std::string& at) {
  // A batch may run twice (the disk-full retry): start from nothing each time.
  write.result = {};
  write.audit.clear();
  const release_request& request = write.request;
  std::int64_t rowid = 0;
  std::string stored;
  std::int64_t recorded = 0;
  {
    statement_use use(writer_sql_->select_held_for_release.get());
    int rc = use.bind(std::string_view(request.message_id), std::string_view(request.recipient));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_DONE) {
      return SQLITE_OK;  // not_held: nothing written, nothing audited
    }
    if (rc != SQLITE_ROW) {
      return rc;
    }
    rowid = use.column_int64(0);
    stored = use.column_text(1);
    recorded = use.column_int64(2);
  }
  release_step step = decide_held(request, stored, recorded, at);
  write.result = std::move(step.result);
  int rc = SQLITE_DONE;
  switch (write.result.outcome) {
    case release_outcome::already_approved:
    case release_outcome::not_held: return SQLITE_OK;
    case release_outcome::rejected: {
      statement_use use(writer_sql_->reject_held.get());
      rc = use.bind(rowid, blob_value{bounded_text(request.reason, max_error_bytes)});
      rc = rc == SQLITE_OK ? use.step() : rc;
      break;
    }
    case release_outcome::approved: {
      statement_use use(writer_sql_->approve_held.get());
      rc = use.bind(rowid, std::string_view(step.approvals_column));
      rc = rc == SQLITE_OK ? use.step() : rc;
      break;
    }
    case release_outcome::released: {
      statement_use use(writer_sql_->release_held.get());
      rc = use.bind(rowid, std::string_view(step.approvals_column), now_ms);
      rc = rc == SQLITE_OK ? use.step() : rc;
      break;
    }
  }
  if (rc != SQLITE_DONE) {
    return rc;
  }
  write.audit = std::move(step.audit);
  return append_audit_rows(write.audit, at);
}

int sqlite_store::impl::append_audit_rows(const std::vector<audit::audit_record>& records,
                                          const std::string& at) {
  if (records.empty()) {
    return SQLITE_OK;
  }
  if (!chain_head_) {
    statement_use use(writer_sql_->select_audit_head.get());
    const int rc = use.step();
    if (rc == SQLITE_ROW) {
      chain_head_.emplace(use.column_int64(0), use.column_text(1));
    } else if (rc == SQLITE_DONE) {
      chain_head_.emplace(0, std::string(audit::genesis_hash()));
    } else {
      return rc;
    }
  }
  for (const auto& record : records) {
    const audit::audit_row row =
        audit::make_row(chain_head_->first + 1, at, record, chain_head_->second);
    statement_use use(writer_sql_->insert_audit.get());
    int rc = use.bind(row.seq, std::string_view(row.at), std::string_view(row.event),
                      std::string_view(row.actor), std::string_view(row.partner),
                      std::string_view(row.message_id), std::string_view(row.entry),
                      std::string_view(row.hash));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
    chain_head_.emplace(row.seq, row.hash);
  }
  return SQLITE_OK;
}

int sqlite_store::impl::write_checkpoint(checkpoint_write& write) {
  const audit::checkpoint& c = write.checkpoint;
  statement_use use(writer_sql_->insert_checkpoint.get());
  int rc = use.bind(c.seq, std::string_view(c.hash), std::string_view(c.at),
                    std::string_view(c.signer), std::string_view(c.signature));
  if (rc == SQLITE_OK) {
    rc = use.step();
  }
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    write.added = false;  // one checkpoint per seq; the batch goes on
    return SQLITE_OK;
  }
  write.added = rc == SQLITE_DONE;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int sqlite_store::impl::write_state(state_write& write, const std::string& at) {
  write.outcome = put_outcome::failed;
  write.versions.clear();
  if (write.puts.empty() || repeats_an_item(write.puts)) {
    return SQLITE_OK;  // nothing written; the rest of the batch goes on
  }
  // Every expected version is checked before anything is written: one that does not match
  // stores none of the puts (and none of the audit records).
  bool all_match = true;
  for (const state_put& put : write.puts) {
    std::int64_t current = 0;
    bool exists = false;
    statement_use use(writer_sql_->select_state_version.get());
    int rc = use.bind(std::string_view(put.item.kind), std::string_view(put.item.key));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_ROW) {
      current = use.column_int64(0);
      exists = use.column_int64(1) == 0;  // a deleted item keeps an empty tombstone row
    } else if (rc != SQLITE_DONE) {
      return rc;
    }
    const bool matches = !put.expected_version ||
                         (*put.expected_version == 0 ? !exists : *put.expected_version == current);
    all_match = all_match && matches;
    write.versions.push_back(current);
  }
  if (!all_match) {
    write.outcome = put_outcome::conflict;
    return SQLITE_OK;
  }
  std::int64_t next = 0;
  {
    statement_use use(writer_sql_->select_max_state_version.get());
    const int rc = use.step();
    if (rc != SQLITE_ROW) {
      return rc;
    }
    next = use.column_int64(0) + 1;
  }
  // One version each, in the order given; a failed statement fails the batch (rolled back).
  for (std::size_t i = 0; i < write.puts.size(); ++i, ++next) {
    state_put& put = write.puts[i];
    statement_use use(writer_sql_->upsert_state.get());
    int rc = use.bind(std::string_view(put.item.kind), std::string_view(put.item.key),
                      std::string_view(put.item.value), next, std::string_view(at),
                      std::string_view(put.item.changed_by));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
    put.item.version = next;
    put.item.changed_at = at;
    write.versions[i] = next;
  }
  write.outcome = put_outcome::applied;
  return append_audit_rows(write.audit, at);
}

int sqlite_store::impl::write_purge(purge_write& write, std::int64_t now_ms,
                                    const std::string& at) {
  const retention_cut& cut = write.cut;
  const std::int64_t max_rows = clamp_to_int64(std::max<std::size_t>(cut.max_rows, 1));
  write.result = {};
  // Runs one purge statement with its parameters; `changed` gets the rows it emptied.
  const auto purge_with = [this](statement& sql, std::size_t& changed, const auto&... values) {
    statement_use use(sql.get());
    int rc = use.bind(values...);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_DONE) {
      changed = static_cast<std::size_t>(sqlite3_changes(writer_db_.get()));
      return SQLITE_OK;
    }
    return rc;
  };
  // Runs one of the two body statements; `changed` gets the bodies it emptied. It returns their
  // messages' positions, and their person keys are deleted in the same transaction.
  const auto purge_bodies_with = [this](statement& sql, std::size_t& changed,
                                        const auto&... values) {
    std::vector<std::int64_t> emptied;
    {
      statement_use use(sql.get());
      int rc = use.bind(values...);
      while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = use.step();
        if (rc == SQLITE_ROW) {
          emptied.push_back(use.column_int64(0));
        }
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
    }
    changed = emptied.size();
    return delete_person_keys(emptied);
  };
  // Expired messages first, whatever their age; then what is past its time. Both count against
  // the same max_rows of each kind.
  std::size_t expired_payloads = 0;
  std::size_t expired_bodies = 0;
  if (cut.expired_before) {
    const std::int64_t expired_ms = to_ms(*cut.expired_before);
    int rc =
        purge_with(writer_sql_->purge_expired_payloads, expired_payloads, expired_ms, max_rows);
    if (rc == SQLITE_OK) {
      rc = purge_bodies_with(writer_sql_->purge_expired_bodies, expired_bodies, expired_ms,
                             max_rows, now_ms);
    }
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  std::size_t payloads = 0;
  if (const std::int64_t left = max_rows - clamp_to_int64(expired_payloads); left > 0) {
    const int rc = purge_with(writer_sql_->purge_payloads, payloads, to_ms(cut.delivered_before),
                              to_ms(cut.dead_before), left);
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  std::size_t bodies = 0;
  if (const std::int64_t left = max_rows - clamp_to_int64(expired_bodies); left > 0) {
    const std::string delivered_before = format_rfc3339_ms(cut.delivered_before);
    const int rc = purge_bodies_with(writer_sql_->purge_bodies, bodies,
                                     std::string_view(delivered_before), left, now_ms);
    if (rc != SQLITE_OK) {
      return rc;
    }
  }
  write.result.payloads = expired_payloads + payloads;
  write.result.bodies = expired_bodies + bodies;
  write.result.expired = expired_payloads + expired_bodies;
  if (write.result.payloads == 0 && write.result.bodies == 0) {
    return SQLITE_OK;
  }
  std::vector<std::pair<std::string, std::string>> details = {
      {"payloads", std::to_string(write.result.payloads)},
      {"bodies", std::to_string(write.result.bodies)},
      {"deliveredBefore", format_rfc3339_ms(cut.delivered_before)},
      {"deadBefore", format_rfc3339_ms(cut.dead_before)}};
  if (cut.expired_before) {
    details.emplace_back("expired", std::to_string(write.result.expired));
  }
  return append_audit_rows({{.event = "retention.purged",
                             .actor = cut.actor,
                             .partner = {},
                             .message_id = {},
                             .details = std::move(details)}},
                           at);
}

int sqlite_store::impl::rewrite_values_of(rewrite_write& write) {
  std::vector<stored_value> values;
  {
    statement_use use(writer_sql_->select_rewrite_messages.get());
    int rc = use.bind(std::string_view(write.after_id),
                      clamp_to_int64(std::max<std::size_t>(write.max_messages, 1)));
    if (rc != SQLITE_OK) {
      return rc;
    }
    while ((rc = use.step()) == SQLITE_ROW) {
      write.result.last_id = use.column_text(0);
      ++write.result.messages;
      std::string body = use.column_blob(1);
      if (!body.empty()) {
        values.push_back({write.result.last_id, {}, std::move(body), value_field::body});
      }
      if (std::string facts = use.column_blob(2); !facts.empty()) {
        values.push_back({write.result.last_id, {}, std::move(facts), value_field::facts});
      }
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  if (write.result.messages == 0) {
    return SQLITE_OK;
  }
  {
    statement_use use(writer_sql_->select_rewrite_payloads.get());
    int rc = use.bind(std::string_view(write.after_id), std::string_view(write.result.last_id));
    if (rc != SQLITE_OK) {
      return rc;
    }
    while ((rc = use.step()) == SQLITE_ROW) {
      const std::string id = use.column_text(0);
      const std::string recipient = use.column_text(1);
      if (use.column_int64(3) != 0) {
        values.push_back({id, recipient, use.column_blob(2), value_field::payload});
      }
      if (std::string receipt = use.column_blob(4); !receipt.empty()) {
        values.push_back({id, recipient, std::move(receipt), value_field::receipt});
      }
      if (std::string error = use.column_blob(5); !error.empty()) {
        values.push_back({id, recipient, std::move(error), value_field::error});
      }
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  write.result.values = values.size();
  for (const auto& value : values) {
    std::optional<std::string> replacement;
    try {
      replacement = write.rewriter(value);
    } catch (...) {
      write.failed = true;  // the caller's failure, not the store's: only this part is undone
      return SQLITE_OK;
    }
    if (!replacement || *replacement == value.bytes) {
      continue;
    }
    // The body and the facts are the message's own; the others are a delivery row's.
    const bool of_message = value.field == value_field::body || value.field == value_field::facts;
    sqlite3_stmt* update = writer_sql_->update_body.get();
    switch (value.field) {
      case value_field::body: break;
      case value_field::facts: update = writer_sql_->update_facts.get(); break;
      case value_field::payload: update = writer_sql_->update_payload.get(); break;
      case value_field::receipt: update = writer_sql_->update_receipt.get(); break;
      case value_field::error: update = writer_sql_->update_error.get(); break;
    }
    statement_use use(update);
    int rc = of_message ? use.bind(std::string_view(value.message_id), blob_value{*replacement})
                        : use.bind(std::string_view(value.message_id),
                                   std::string_view(value.recipient), blob_value{*replacement});
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
    ++write.result.rewritten;
  }
  return SQLITE_OK;
}

int sqlite_store::impl::rekey_persons_of(rekey_write& write) {
  struct rekey_message {
    std::int64_t seq = 0;
    std::string id;
    std::string body;
    bool shown = false;
  };
  std::vector<rekey_message> messages;
  {
    statement_use use(writer_sql_->select_rekey_messages.get());
    int rc = use.bind(std::string_view(write.after_id),
                      clamp_to_int64(std::max<std::size_t>(write.max_messages, 1)), to_ms(now()));
    if (rc != SQLITE_OK) {
      return rc;
    }
    while ((rc = use.step()) == SQLITE_ROW) {
      messages.push_back(
          {use.column_int64(0), use.column_text(1), use.column_blob(2), use.column_int64(3) != 0});
    }
    if (rc != SQLITE_DONE) {
      return rc;
    }
  }
  for (const auto& message : messages) {
    write.result.last_id = message.id;
    ++write.result.messages;
    std::optional<std::vector<person_key>> keys;
    if (message.shown) {
      try {
        keys = write.keyer(message.id, message.body);
      } catch (...) {
        write.failed = true;  // the caller's failure, not the store's: only this part is undone
        return SQLITE_OK;
      }
      if (!keys) {
        continue;  // its keys are left as they are
      }
    }
    // A message not shown (its body gone, or withdrawn) keeps no keys; a shown one gets the
    // keyer's in place of its own.
    int rc = delete_person_keys({message.seq});
    if (rc != SQLITE_OK) {
      return rc;
    }
    if (!keys) {
      continue;
    }
    for (const auto& key : *keys) {
      statement_use use(writer_sql_->insert_person_key_at.get());
      rc = use.bind(message.seq, std::string_view(key.pointer), std::string_view(key.kind),
                    blob_value{key.digest});
      if (rc == SQLITE_OK) {
        rc = use.step();
      }
      if (rc != SQLITE_DONE) {
        return rc;
      }
      write.result.keys += static_cast<std::size_t>(sqlite3_changes(writer_db_.get()));
    }
    ++write.result.rekeyed;
  }
  return SQLITE_OK;
}

// ---- reader thread ----

void sqlite_store::impl::reader_loop() {
  for (;;) {
    std::optional<pending_read> job;
    {
      std::unique_lock lock(read_mutex_);
      read_cv_.wait(lock, [this] { return !reads_.empty() || reads_closed_; });
      if (reads_.empty()) {
        return;  // closed and drained
      }
      job.emplace(std::move(reads_.front()));
      reads_.pop_front();
    }
    std::visit(
        [this](const auto& r) {
          using kind = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<kind, find_read>) {
            answer_find(r);
          } else if constexpr (std::is_same_v<kind, body_read>) {
            answer_body(r);
          } else if constexpr (std::is_same_v<kind, dead_read>) {
            answer_dead(r);
          } else if constexpr (std::is_same_v<kind, audit_read>) {
            answer_audit(r);
          } else if constexpr (std::is_same_v<kind, head_read>) {
            answer_head(r);
          } else if constexpr (std::is_same_v<kind, checkpoints_read>) {
            answer_checkpoints(r);
          } else if constexpr (std::is_same_v<kind, queue_read>) {
            answer_queue(r);
          } else if constexpr (std::is_same_v<kind, register_read>) {
            answer_register(r);
          } else if constexpr (std::is_same_v<kind, facts_read>) {
            answer_facts(r);
          } else if constexpr (std::is_same_v<kind, held_read>) {
            answer_held(r);
          } else if constexpr (std::is_same_v<kind, held_job_read>) {
            answer_held_job(r);
          } else if constexpr (std::is_same_v<kind, matches_read>) {
            answer_matches(r);
          } else {
            answer_state(r);
          }
        },
        *job);
  }
}

void sqlite_store::impl::answer_find(const find_read& job) {
  if (!healthy_) {
    call_quietly(job.handler, std::nullopt, false);
    return;
  }
  std::optional<message_status> status;
  int rc = SQLITE_ERROR;
  try {
    rc = read_status(job.id, status);
  } catch (...) {
    rollback_if_open(reader_db_.get());
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) {
    call_quietly(job.handler, std::move(status), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::nullopt, false);
}

void sqlite_store::impl::answer_body(const body_read& job) {
  if (!healthy_) {
    call_quietly(job.handler, std::nullopt, false);
    return;
  }
  // Rare (a reply's look-up of what it answers): prepared for the call.
  sqlite3* db = reader_db_.get();
  sqlite3_stmt* raw = nullptr;
  int rc =
      sqlite3_prepare_v2(db, "SELECT sender, body FROM messages WHERE id = ?1", -1, &raw, nullptr);
  const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
  std::optional<stored_body> found;
  if (rc == SQLITE_OK) {
    rc =
        sqlite3_bind_text(raw, 1, job.id.data(), static_cast<int>(job.id.size()), SQLITE_TRANSIENT);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      const auto* sender = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
      const auto* body = static_cast<const char*>(sqlite3_column_blob(raw, 1));
      found =
          stored_body{.sender = sender != nullptr ? sender : "",
                      .body = std::string(body != nullptr ? body : "",
                                          static_cast<std::size_t>(sqlite3_column_bytes(raw, 1)))};
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc == SQLITE_OK) {
    call_quietly(job.handler, std::move(found), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::nullopt, false);
}

int sqlite_store::impl::read_status(const std::string& id, std::optional<message_status>& status) {
  sqlite3* db = reader_db_.get();
  // One read transaction, so the message, its delivery rows and its exclusions come from the same
  // commit. It ends before the handler runs (a held snapshot would hold back WAL checkpoints).
  int rc = exec(db, "BEGIN");
  if (rc != SQLITE_OK) {
    return rc;
  }
  const auto finish = [db](int result) {
    if (result == SQLITE_OK) {
      result = exec(db, "COMMIT");
    }
    if (result != SQLITE_OK) {
      rollback_if_open(db);
    }
    return result;
  };
  {
    statement_use use(reader_sql_->select_status.get());
    rc = use.bind_text(1, id);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_DONE) {
      return finish(SQLITE_OK);  // unknown id
    }
    if (rc != SQLITE_ROW) {
      return finish(rc);
    }
    status.emplace();
    status->id = use.column_text(0);
    status->sender = use.column_text(1);
    status->type = use.column_text(2);
    status->created = use.column_text(3);
    status->accepted_at = use.column_text(4);
    status->state = use.column_text(5);
    status->body_sha256 = use.column_text(6);
  }
  {
    statement_use use(reader_sql_->select_recipients.get());
    rc = use.bind_text(1, id);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      recipient_status r;
      r.recipient = use.column_text(0);
      r.decided_by = use.column_text(1);
      r.state = use.column_text(2);
      r.attempts = static_cast<int>(use.column_int64(3));
      if (r.state == "pending" || r.state == "retrying") {
        r.next_attempt_at = from_ms(use.column_int64(4));
      }
      r.last_error = use.column_blob(5);
      if (!use.column_is_null(6)) {
        r.delivered_at = from_ms(use.column_int64(6));
      }
      r.receipt = use.column_blob(7);
      r.withheld = use.column_text(8);
      r.hold = use.column_text(9);
      status->recipients.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) {
      status.reset();
      return finish(rc);
    }
  }
  {
    statement_use use(reader_sql_->select_exclusions.get());
    rc = use.bind_text(1, id);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      status->exclusions.push_back(
          route_exclusion{use.column_text(0), use.column_text(1), use.column_text(2)});
    }
    if (rc != SQLITE_DONE) {
      status.reset();
      return finish(rc);
    }
  }
  return finish(SQLITE_OK);
}

void sqlite_store::impl::answer_dead(const dead_read& job) {
  if (!healthy_) {
    call_quietly(job.handler, std::vector<dead_letter>{}, false);
    return;
  }
  std::vector<dead_letter> dead;
  int rc = SQLITE_ERROR;
  try {
    // Scoped so the read snapshot ends before the handler runs.
    statement_use use(reader_sql_->select_dead.get());
    rc = use.bind_int64(1, clamp_to_int64(job.limit));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      dead_letter letter;
      letter.message_id = use.column_text(0);
      letter.recipient = use.column_text(1);
      letter.sender = use.column_text(2);
      letter.type = use.column_text(3);
      letter.attempts = static_cast<int>(use.column_int64(4));
      letter.last_error = use.column_blob(5);
      letter.dead_since = from_ms(use.column_int64(6));
      dead.push_back(std::move(letter));
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE) {
    call_quietly(job.handler, std::move(dead), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<dead_letter>{}, false);
}

int sqlite_store::impl::read_audit_rows(sqlite3_stmt* stmt, std::vector<audit::audit_row>& rows) {
  for (;;) {
    const int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
      return rc;
    }
    audit::audit_row row;
    const auto text = [stmt](int i) {
      const unsigned char* t = sqlite3_column_text(stmt, i);
      return t == nullptr ? std::string()
                          : std::string(reinterpret_cast<const char*>(t),
                                        static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
    };
    row.seq = sqlite3_column_int64(stmt, 0);
    row.at = text(1);
    row.event = text(2);
    row.actor = text(3);
    row.partner = text(4);
    row.message_id = text(5);
    row.entry = text(6);
    row.hash = text(7);
    rows.push_back(std::move(row));
  }
}

void sqlite_store::impl::answer_audit(const audit_read& job) {
  std::vector<audit::audit_row> rows;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_audit.get());
    rc = use.bind(job.after_seq, clamp_to_int64(job.limit));
    if (rc == SQLITE_OK) {
      rc = read_audit_rows(reader_sql_->select_audit.get(), rows);
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(rows), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<audit::audit_row>{}, false);
}

void sqlite_store::impl::answer_head(const head_read& job) {
  std::vector<audit::audit_row> rows;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_audit_last.get());
    rc = read_audit_rows(reader_sql_->select_audit_last.get(), rows);
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    std::optional<audit::audit_row> head;
    if (!rows.empty()) {
      head = std::move(rows.front());
    }
    call_quietly(job.handler, std::move(head), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::nullopt, false);
}

void sqlite_store::impl::answer_checkpoints(const checkpoints_read& job) {
  std::vector<audit::checkpoint> checkpoints;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_checkpoints.get());
    for (;;) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      checkpoints.push_back({.seq = use.column_int64(0),
                             .hash = use.column_text(1),
                             .at = use.column_text(2),
                             .signer = use.column_text(3),
                             .signature = use.column_text(4)});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(checkpoints), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<audit::checkpoint>{}, false);
}

void sqlite_store::impl::answer_state(const state_read& job) {
  std::vector<state_item> items;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_state.get());
    rc = use.bind(job.after_version, std::string_view(job.kind));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      items.push_back({.kind = use.column_text(0),
                       .key = use.column_text(1),
                       .value = use.column_text(2),
                       .version = use.column_int64(3),
                       .changed_at = use.column_text(4),
                       .changed_by = use.column_text(5)});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(items), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<state_item>{}, false);
}

void sqlite_store::impl::answer_queue(const queue_read& job) {
  std::vector<queue_stat> stats;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_queue_stats.get());
    for (;;) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      const auto count = [&use](int i) { return static_cast<std::size_t>(use.column_int64(i)); };
      stats.push_back({.recipient = use.column_text(0),
                       .held = count(7),
                       .pending = count(1),
                       .delivering = count(2),
                       .retrying = count(3),
                       .dead = count(4),
                       .delivered = count(5),
                       .discarded = count(6),
                       .rejected = count(8),
                       .oldest_waiting = use.column_text(9)});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(stats), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<queue_stat>{}, false);
}

void sqlite_store::impl::answer_register(const register_read& job) {
  std::vector<transfer_count> rows;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_register.get());
    rc = use.bind(std::string_view(job.from_month), std::string_view(job.to_month));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      rows.push_back({.partner = use.column_text(0),
                      .direction = use.column_text(1),
                      .month = use.column_text(2),
                      .type = use.column_text(3),
                      .count = static_cast<std::size_t>(use.column_int64(4))});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(rows), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<transfer_count>{}, false);
}

void sqlite_store::impl::answer_facts(const facts_read& job) {
  facts_page page;
  std::int64_t last_seq = job.after_seq;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_facts.get());
    rc = use.bind(std::string_view(job.since), job.after_seq,
                  clamp_to_int64(std::max<std::size_t>(job.limit, 1)));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      last_seq = use.column_int64(0);
      page.rows.push_back({.id = use.column_text(1),
                           .sender = use.column_text(2),
                           .type = use.column_text(3),
                           .accepted_at = use.column_text(4),
                           .facts = use.column_blob(5)});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    if (page.rows.size() >= std::max<std::size_t>(job.limit, 1)) {
      page.next = std::to_string(last_seq);
    }
    call_quietly(job.handler, std::move(page), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, facts_page{}, false);
}

void sqlite_store::impl::answer_held(const held_read& job) {
  std::vector<held_copy> held;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_held.get());
    rc = use.bind_int64(1, clamp_to_int64(job.limit));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      held.push_back({.message_id = use.column_text(0),
                      .recipient = use.column_text(1),
                      .sender = use.column_text(2),
                      .type = use.column_text(3),
                      .accepted_at = use.column_text(4),
                      .hold = use.column_text(5),
                      .approvals = parse_approvals(use.column_text(6)),
                      .approvals_required = static_cast<std::size_t>(
                          std::max<std::int64_t>(use.column_int64(7), 0))});
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(held), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::vector<held_copy>{}, false);
}

void sqlite_store::impl::answer_held_job(const held_job_read& job) {
  std::optional<delivery_job> held;
  int rc = SQLITE_ERROR;
  try {
    statement_use use(reader_sql_->select_held_job.get());
    rc = use.bind(std::string_view(job.message_id), std::string_view(job.recipient));
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_ROW) {
      // The columns of a claim (write_claim), but nothing is leased: attempt 0.
      held.emplace();
      held->message_id = use.column_text(0);
      held->recipient = use.column_text(1);
      held->payload = use.column_blob(2);
      held->attempt = 0;
      held->sender = use.column_text(4);
      held->type = use.column_text(5);
      held->accepted_at = parse_rfc3339(use.column_text(6)).value_or(time_point{});
      held->payload_is_body = use.column_int64(7) != 0;
      held->body_grant = use.column_blob(8);
      if (!use.column_is_null(9)) {
        held->released_at = from_ms(use.column_int64(9));
      }
      if (!use.column_is_null(10)) {
        held->expires_at = from_ms(use.column_int64(10));
      }
      held->relies_on = relies_on_of(use.column_text(12));
      rc = SQLITE_DONE;
    }
  } catch (...) {
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && healthy_) {
    call_quietly(job.handler, std::move(held), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::nullopt, false);
}

void sqlite_store::impl::answer_matches(const matches_read& job) {
  std::optional<std::vector<person_match>> matches;
  int rc = SQLITE_ERROR;
  try {
    rc = read_person_matches(job, matches);
  } catch (...) {
    rollback_if_open(reader_db_.get());
    rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK && healthy_) {
    call_quietly(job.handler, std::move(matches), true);
    return;
  }
  reader_failed(rc);
  call_quietly(job.handler, std::nullopt, false);
}

int sqlite_store::impl::read_person_matches(const matches_read& job,
                                            std::optional<std::vector<person_match>>& matches) {
  sqlite3* db = reader_db_.get();
  // One read transaction, so "not stored" and the matches come from the same commit.
  int rc = exec(db, "BEGIN");
  if (rc != SQLITE_OK) {
    return rc;
  }
  const auto finish = [db, &matches](int result) {
    if (result == SQLITE_OK) {
      result = exec(db, "COMMIT");
    }
    if (result != SQLITE_OK) {
      matches.reset();
      rollback_if_open(db);
    }
    return result;
  };
  std::int64_t seq = 0;
  {
    statement_use use(reader_sql_->select_message_seq.get());
    rc = use.bind_text(1, job.message_id);
    if (rc == SQLITE_OK) {
      rc = use.step();
    }
    if (rc == SQLITE_DONE) {
      return finish(SQLITE_OK);  // not stored: nullopt
    }
    if (rc != SQLITE_ROW) {
      return finish(rc);
    }
    seq = use.column_int64(0);
  }
  matches.emplace();
  {
    statement_use use(reader_sql_->select_person_matches.get());
    rc = use.bind(seq, clamp_to_int64(job.limit), to_ms(now()));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = use.step();
      if (rc != SQLITE_ROW) {
        break;
      }
      matches->push_back({.pointer = use.column_text(0),
                          .kind = use.column_text(1),
                          .message_id = use.column_text(2),
                          .other_pointer = use.column_text(3),
                          .sender = use.column_text(4),
                          .type = use.column_text(5),
                          .accepted_at = use.column_text(6)});
    }
  }
  return finish(rc == SQLITE_DONE ? SQLITE_OK : rc);
}

void sqlite_store::impl::reader_failed(int rc) {
  if (is_fatal(rc)) {
    // The same disk as the writer's: an I/O error or corruption here stops the whole store.
    healthy_ = false;
    log_quietly(log::level::critical, {.event = "store.fail_stop",
                                       .reason = "io-error",
                                       .detail = describe_failure(reader_db_.get(), rc, path_)});
  }
}

// ---------------------------------------------------------------------------------------------
// The public faces

sqlite_store::sqlite_store(const sqlite_options& options) : impl_(std::make_unique<impl>(options)) {
  impl_->start();
}

sqlite_store::~sqlite_store() {
  stop();
}

void sqlite_store::accept(message_record record, accept_handler handler) {
  impl_->submit(pending_write{accept_write{std::move(record), std::move(handler), {}}});
}

void sqlite_store::find(std::string id, find_handler handler) {
  impl_->submit_read(find_read{std::move(id), std::move(handler)});
}

void sqlite_store::read_body(std::string id, body_handler handler) {
  impl_->submit_read(body_read{std::move(id), std::move(handler)});
}

void sqlite_store::claim_due(std::string owner, std::size_t max_jobs,
                             std::chrono::milliseconds lease, std::vector<recipient_cap> caps,
                             claim_handler handler) {
  // One cap per recipient (the smallest when named twice), in a stable order.
  std::sort(caps.begin(), caps.end(), [](const recipient_cap& a, const recipient_cap& b) {
    return a.recipient != b.recipient ? a.recipient < b.recipient : a.max_jobs < b.max_jobs;
  });
  caps.erase(std::unique(caps.begin(), caps.end(),
                         [](const recipient_cap& a, const recipient_cap& b) {
                           return a.recipient == b.recipient;
                         }),
             caps.end());
  impl_->submit(pending_write{
      claim_write{std::move(owner), max_jobs, lease, std::move(caps), std::move(handler), {}}});
}

void sqlite_store::report(attempt_report report, report_handler handler) {
  impl_->submit(pending_write{report_write{std::move(report), std::move(handler)}});
}

void sqlite_store::replay(std::string message_id, std::string recipient,
                          std::vector<audit::audit_record> audit, replay_handler handler) {
  impl_->submit(pending_write{replay_write{std::move(message_id), std::move(recipient),
                                           std::move(audit), std::move(handler), false, {}}});
}

void sqlite_store::discard(std::string message_id, std::string recipient, std::string reason,
                           std::vector<audit::audit_record> audit, replay_handler handler) {
  impl_->submit(pending_write{replay_write{std::move(message_id), std::move(recipient),
                                           std::move(audit), std::move(handler), false,
                                           std::move(reason)}});
}

void sqlite_store::purge(retention_cut cut, purge_handler handler) {
  impl_->submit(pending_write{purge_write{std::move(cut), std::move(handler), {}}});
}

void sqlite_store::rewrite_values(std::string after_id, std::size_t max_messages,
                                  value_rewriter rewriter, rewrite_handler handler) {
  impl_->submit(pending_write{rewrite_write{
      std::move(after_id), max_messages, std::move(rewriter), std::move(handler), {}, false}});
}

void sqlite_store::rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                                 person_rekey_handler handler) {
  impl_->submit(pending_write{rekey_write{
      std::move(after_id), max_messages, std::move(keyer), std::move(handler), {}, false}});
}

void sqlite_store::transfer_register(std::string from_month, std::string to_month,
                                     register_handler handler) {
  impl_->submit_read(
      register_read{std::move(from_month), std::move(to_month), std::move(handler)});
}

void sqlite_store::read_facts(std::string since, std::string after, std::size_t limit,
                              facts_handler handler) {
  // The cursor is the position of the previous page's last message. Anything else is refused:
  // reading from the start again would count rows twice.
  std::int64_t after_seq = 0;
  if (!after.empty()) {
    const auto* end = after.data() + after.size();
    const auto [ptr, ec] = std::from_chars(after.data(), end, after_seq);
    if (ec != std::errc{} || ptr != end || after_seq < 0) {
      call_quietly(handler, facts_page{}, false);
      return;
    }
  }
  impl_->submit_read(facts_read{std::move(since), after_seq, limit, std::move(handler)});
}

void sqlite_store::queue_stats(queue_handler handler) {
  impl_->submit_read(queue_read{std::move(handler)});
}

void sqlite_store::list_dead(std::size_t limit, dead_handler handler) {
  impl_->submit_read(dead_read{limit, std::move(handler)});
}

void sqlite_store::list_held(std::size_t limit, held_handler handler) {
  impl_->submit_read(held_read{limit, std::move(handler)});
}

void sqlite_store::read_held(std::string message_id, std::string recipient,
                             held_copy_handler handler) {
  impl_->submit_read(
      held_job_read{std::move(message_id), std::move(recipient), std::move(handler)});
}

void sqlite_store::find_person_matches(std::string message_id, std::size_t limit,
                                       matches_handler handler) {
  impl_->submit_read(matches_read{std::move(message_id), limit, std::move(handler)});
}

void sqlite_store::decide_release(release_request request, release_handler handler) {
  impl_->submit(pending_write{release_write{std::move(request), std::move(handler), {}, {}}});
}

void sqlite_store::on_deliveries_due(std::function<void()> callback) {
  impl_->set_deliveries_due(std::move(callback));
}

void sqlite_store::approvals_when_held(std::function<std::size_t()> source) {
  impl_->set_approvals_when_held(std::move(source));
}

bool sqlite_store::healthy() const {
  return impl_->healthy_.load();
}

void sqlite_store::stop() {
  impl_->stop();
}

sqlite_store_stats sqlite_store::stats() const {
  return impl_->stats();
}

void sqlite_store::append_audit(std::vector<audit::audit_record> records,
                                report_handler handler) {
  impl_->submit(pending_write{audit_write{std::move(records), std::move(handler)}});
}

void sqlite_store::read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) {
  impl_->submit_read(audit_read{after_seq, limit, std::move(handler)});
}

void sqlite_store::audit_head(head_handler handler) {
  impl_->submit_read(head_read{std::move(handler)});
}

void sqlite_store::add_checkpoint(audit::checkpoint checkpoint, report_handler handler) {
  impl_->submit(pending_write{checkpoint_write{std::move(checkpoint), std::move(handler), false}});
}

void sqlite_store::read_checkpoints(checkpoints_handler handler) {
  impl_->submit_read(checkpoints_read{std::move(handler)});
}

void sqlite_store::put_states(std::vector<state_put> puts, std::vector<audit::audit_record> audit,
                              puts_handler handler) {
  impl_->submit(pending_write{
      state_write{std::move(puts), std::move(audit), std::move(handler), put_outcome::failed, {}}});
}

void sqlite_store::list_state(std::string kind, std::int64_t after_version,
                              state_handler handler) {
  impl_->submit_read(state_read{std::move(kind), after_version, std::move(handler)});
}

std::unique_ptr<message_store> open_sqlite_store(const sqlite_options& options) {
  return std::make_unique<sqlite_store>(options);
}

std::size_t count_messages(const std::filesystem::path& db) {
  const connection conn = open_connection(db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, 5000);
  const std::int64_t rows = query_int(conn.get(), "SELECT count(*) FROM messages", db);
  return static_cast<std::size_t>(rows);
}

}  // namespace mxgw::store
