// The PostgreSQL store (libpq): versioned schema in `mxgw_schema`, group commit of every write on
// one writer connection, look-ups on a reader connection, claims with FOR UPDATE SKIP LOCKED, the
// audit chain and state versions serialised across instances by a transaction-level advisory
// lock, and reconnection with backoff when the server goes away.
#include "gateway/store/pg_store.hpp"

#include "gateway/common/digest.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/release_step.hpp"
#include "gateway/store/sealed.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace mxgw::store {
namespace {

// ---------------------------------------------------------------------------------------------
// Schema

/// migrations[N - 1] brings a database from version N - 1 to N. Append only: a shipped migration
/// is never edited. Version 1 is the SQLite schema version 3 in PostgreSQL's types: times in ms
/// since the epoch as bigint, bodies and payloads as bytea, and every text a partner can influence
/// (receipts, error texts) as bytea too, because PostgreSQL's text refuses invalid UTF-8 and NUL
/// bytes (a hostile receipt must not fail the batch it is committed with).
constexpr std::array<const char*, postgres_schema_version> migrations = {
    R"sql(
      CREATE TABLE messages (
        id          text PRIMARY KEY,
        sender      text NOT NULL,
        type        text NOT NULL,
        created     text NOT NULL,
        accepted_at text NOT NULL,
        body_sha256 text NOT NULL,
        body        bytea NOT NULL,
        state       text NOT NULL DEFAULT 'accepted'
      );
      CREATE INDEX messages_by_sender ON messages (sender);
      CREATE TABLE deliveries (
        rid             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        message_id      text NOT NULL REFERENCES messages (id),
        recipient       text NOT NULL,
        decided_by      text NOT NULL,
        payload         bytea NOT NULL,
        withheld        text NOT NULL DEFAULT '[]',
        state           text NOT NULL,
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at bigint NOT NULL,
        lease_owner     text,
        lease_expires   bigint,
        last_error      bytea NOT NULL DEFAULT '',
        receipt         bytea NOT NULL DEFAULT '',
        delivered_at    bigint,
        dead_since      bigint,
        PRIMARY KEY (message_id, recipient)
      );
      CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
      CREATE TABLE exclusions (
        pos        bigint GENERATED ALWAYS AS IDENTITY,
        message_id text NOT NULL REFERENCES messages (id),
        partner    text NOT NULL,
        considered text NOT NULL,
        reason     text NOT NULL
      );
      CREATE INDEX exclusions_by_message ON exclusions (message_id, pos);
      CREATE TABLE audit (
        seq        bigint PRIMARY KEY,
        at         text NOT NULL,
        event      text NOT NULL,
        actor      text NOT NULL,
        partner    text NOT NULL,
        message_id text NOT NULL,
        entry      bytea NOT NULL,
        hash       text NOT NULL
      );
      CREATE INDEX audit_by_message ON audit (message_id) WHERE message_id <> '';
      CREATE INDEX audit_by_partner ON audit (partner, seq) WHERE partner <> '';
      CREATE FUNCTION mxgw_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
      CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION mxgw_audit_append_only();
      CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION mxgw_audit_append_only();
      CREATE TABLE audit_checkpoints (
        seq       bigint PRIMARY KEY,
        hash      text NOT NULL,
        at        text NOT NULL,
        signer    text NOT NULL,
        signature text NOT NULL
      );
      CREATE TABLE state (
        kind       text NOT NULL,
        key        text NOT NULL,
        value      text NOT NULL,
        version    bigint NOT NULL UNIQUE,
        changed_at text NOT NULL,
        changed_by text NOT NULL,
        PRIMARY KEY (kind, key)
      );
    )sql",
    // 2: retention. A message whose body was purged keeps its row with the time of the purge.
    R"sql(
      ALTER TABLE messages ADD COLUMN purged_at bigint;
      CREATE INDEX messages_unpurged ON messages (accepted_at) WHERE purged_at IS NULL;
    )sql",
    // 3: a recipient that gets the body as stored (canonical, nothing withheld) has no payload
    // of its own: the body is not stored twice. Rows stored before keep their payloads.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN payload_is_body boolean NOT NULL DEFAULT false;
    )sql",
    // 4: no query reads the audit log by message id (the audit queries scan the chain in order);
    // the index only cost every entry about a message an insert at a random place.
    R"sql(
      DROP INDEX audit_by_message;
    )sql",
    // 5: two more indexes no query reads: messages by sender and the audit log by partner.
    R"sql(
      DROP INDEX messages_by_sender;
      DROP INDEX audit_by_partner;
    )sql",
    // 6: the claim index leads with the recipient after the state, so a claim reads each
    // recipient's oldest due rows and stops at as many as it can take (see claim_candidates_sql).
    R"sql(
      DROP INDEX deliveries_due;
      CREATE INDEX deliveries_claim ON deliveries (state, recipient, next_attempt_at, rid);
    )sql",
    // 7: each message's statistical facts (coarse categories for `mxgw report`, sealed like the
    // body when encryption at rest is on), kept when retention purges the body. Messages stored
    // before have none (empty). A constant default: no rewrite of the table.
    R"sql(
      ALTER TABLE messages ADD COLUMN facts bytea NOT NULL DEFAULT ''::bytea;
    )sql",
    // 8: four-eyes release (SQLite version 12). A copy held back by a release rule (`hold`, its
    // id) waits in the state 'held', which no claim reads, until administrators release it
    // (`approvals`: a JSON array of {"by","at"}; `released_at`: ms since the epoch, when it became
    // pending) or reject it. The partial index finds the held copies without reading any other
    // row. Constant defaults: no rewrite of the table.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN hold text NOT NULL DEFAULT '';
      ALTER TABLE deliveries ADD COLUMN approvals text NOT NULL DEFAULT '[]';
      ALTER TABLE deliveries ADD COLUMN released_at bigint;
      CREATE INDEX deliveries_held ON deliveries (rid) WHERE state = 'held';
    )sql",
    // 9: the end of the message's `handling.expires` day (ms since the epoch, UTC; SQLite
    // version 13), after which its source allows no processing: claims hand it out with each
    // copy. NULL: the message does not expire (every one stored before). No default: no rewrite
    // of the table.
    R"sql(
      ALTER TABLE messages ADD COLUMN expires_at bigint;
    )sql",
    // 10: retention finds the expired messages whose data it has not purged yet from this index
    // alone (SQLite version 14): only messages that expire and still have a body, so a sweep
    // never reads every message.
    R"sql(
      CREATE INDEX messages_expiring ON messages (expires_at)
        WHERE expires_at IS NOT NULL AND purged_at IS NULL;
    )sql",
    // 11: the keyed digests of each message's persons (docs/persons.md; SQLite version 15),
    // found by the message's id (its withdrawal, retention, the keys of the message asked
    // about). There is no index by digest: digests are random, so one would take a page anywhere
    // in it for every key of every accepted message, while a question about candidates, an
    // administrator's and rare, reads the table once. Messages stored before have no keys.
    // `withdrawn_at` (ms since the epoch) marks a message its sender withdrew (the first
    // withdrawal's time), so that making keys anew (rekey_persons) gives it none. NULL: not
    // withdrawn. No default: no rewrite of the table. Messages withdrawn before are marked from
    // the audit chain, as in SQLite's version 15 (an entry is read as json, which keeps any
    // escape jsonb would refuse).
    R"sql(
      CREATE TABLE person_keys (
        message_id text NOT NULL REFERENCES messages (id),
        pointer    text NOT NULL,
        kind       text NOT NULL,
        digest     bytea NOT NULL,
        PRIMARY KEY (message_id, pointer, kind, digest)
      );
      ALTER TABLE messages ADD COLUMN withdrawn_at bigint;
      UPDATE messages AS m SET withdrawn_at = w.at_ms
        FROM (SELECT original, partner,
                     (extract(epoch FROM min(at::timestamptz)) * 1000)::bigint AS at_ms
                FROM (SELECT convert_from(entry, 'UTF8')::json #>> '{details,withdraws}'
                               AS original, partner, at
                        FROM audit WHERE event = 'message.accepted') AS a
               WHERE original IS NOT NULL
               GROUP BY original, partner) AS w
       WHERE m.id = w.original AND m.sender = w.partner;
    )sql",
    // 12: withdrawals that arrived before the message they take back (SQLite version 16): one
    // row per original and sender, the first withdrawal's id and time (ms since the epoch). When
    // that original is stored, it is stored withdrawn and its row deleted. Withdrawals stored
    // before whose original is still not stored are found in the audit chain.
    R"sql(
      CREATE TABLE early_withdrawals (
        original   text NOT NULL,
        sender     text NOT NULL,
        withdrawal text NOT NULL,
        at_ms      bigint NOT NULL,
        PRIMARY KEY (original, sender)
      );
      INSERT INTO early_withdrawals (original, sender, withdrawal, at_ms)
        SELECT DISTINCT ON (original, partner) original, partner, message_id,
               (extract(epoch FROM at::timestamptz) * 1000)::bigint
          FROM (SELECT convert_from(entry, 'UTF8')::json #>> '{details,withdraws}' AS original,
                       partner, message_id, at
                  FROM audit WHERE event = 'message.accepted') AS a
         WHERE original IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.id = a.original AND m.sender = a.partner)
         ORDER BY original, partner, at;
    )sql",
    // 13: the agreements each copy's content relies on (`relies_on`: names joined by ',', ''
    // for none; SQLite version 17): a copy rendered with victim data for a holder of
    // `victim-data` is sent only while its recipient still holds it. Copies stored before that
    // can still go out are marked as in SQLite's version 17: a victim identification or a tip
    // from which `no-victim-data-agreement` withheld nothing, unless its body, readable (not
    // sealed, not purged), has no victim field. A constant default: no rewrite of the table
    // before the update of those rows. The body is read as json (not jsonb, which refuses some
    // escapes a canonical message may hold) only when it is not sealed (magic "MXE1").
    R"sql(
      ALTER TABLE deliveries ADD COLUMN relies_on text NOT NULL DEFAULT '';
      UPDATE deliveries AS d SET relies_on = 'victim-data'
        FROM (SELECT id, type,
                     CASE WHEN length(body) > 0
                               AND substring(body FROM 1 FOR 4) <> '\x4d584531'::bytea
                          THEN convert_from(body, 'UTF8')::json END AS b
                FROM messages WHERE type IN ('victim.identification', 'hotline.tip')) AS m
       WHERE m.id = d.message_id
         AND d.state IN ('held', 'pending', 'retrying', 'delivering', 'dead')
         AND strpos(d.withheld, '"no-victim-data-agreement"') = 0
         AND CASE
               WHEN m.b IS NULL THEN true
               WHEN m.type = 'victim.identification' THEN
                 m.b #> '{body,person,photos}' IS NOT NULL
                 OR m.b #> '{body,narrative}' IS NOT NULL
                 OR m.b -> 'unmapped' IS NOT NULL
                 OR CASE WHEN json_typeof(m.b #> '{body,person,documents}') = 'array'
                         THEN EXISTS (SELECT 1 FROM json_array_elements(
                                                  m.b #> '{body,person,documents}') AS e (doc)
                                       WHERE doc -> 'number' IS NOT NULL)
                         ELSE false END
               ELSE
                 CASE WHEN json_typeof(m.b #> '{body,subjects}') = 'array'
                      THEN EXISTS (SELECT 1 FROM json_array_elements(m.b #> '{body,subjects}')
                                                   AS e (subject)
                                    WHERE subject ->> 'role' = 'possible-victim')
                      ELSE false END
             END;
    )sql",
    // 14: how many approvals a held copy's release needs under the routing that held it
    // (`approvals_required`; 0: not recorded; SQLite version 18), so that lowering
    // `release.approvals` afterwards does not lower it. Copies held before get the
    // `release.approvals` of the routing stored here (2 when it sets none); without a stored
    // routing, or with one that cannot be read, 5 (the most a routing can ask for: a copy must
    // never need fewer approvals than when it was held). The stored document is read as json in
    // a block of its own, so that one that does not parse gives 5 instead of failing the
    // migration.
    R"sql(
      ALTER TABLE deliveries ADD COLUMN approvals_required integer NOT NULL DEFAULT 0;
      DO $$
      DECLARE
        required integer := 5;
        doc json;
      BEGIN
        BEGIN
          SELECT value::json INTO doc FROM state
           WHERE kind = 'routing' AND key = 'rules' AND value <> '';
          IF doc IS NOT NULL AND json_typeof(doc) = 'object' THEN
            IF doc #> '{release,approvals}' IS NULL THEN
              required := 2;
            ELSIF json_typeof(doc #> '{release,approvals}') = 'number'
                  AND (doc #>> '{release,approvals}') IN ('1', '2', '3', '4', '5') THEN
              required := (doc #>> '{release,approvals}')::integer;
            END IF;
          END IF;
        EXCEPTION WHEN others THEN
          required := 5;
        END;
        UPDATE deliveries SET approvals_required = required WHERE state = 'held';
      END
      $$;
    )sql",
};

static_assert(std::none_of(migrations.begin(), migrations.end(),
                           [](const char* sql) { return sql == nullptr; }),
              "every schema version needs its migration");

// Advisory lock purposes; the key also depends on the schema, so two mxgw schemas in one database
// (the tests) do not serialise each other.
constexpr std::string_view lock_migrate = "migrate";
constexpr std::string_view lock_chain = "chain";

// Writer statements.
// ON CONFLICT DO NOTHING: when another instance inserted the same id and has not committed yet,
// this waits for it and then does nothing, so a race between instances ends in duplicate or
// conflict, never in a unique-violation error that would abort the whole batch.
// A message id's lock orders a message against a withdrawal of it on another instance (both
// hold it until COMMIT; each looks for the other only after taking it): either the withdrawal
// waits and then finds the message stored, or the message waits and then finds the withdrawal
// kept for it (early_withdrawals). Two keys (the schema's, the id's): a space apart from the
// single-key locks of the chain and the migrations. The insert takes it as it returns its row
// (a volatile CTE is run once, when first read); a row not inserted needs no look.
#define MXGW_ID_LOCK(param) \
  "pg_advisory_xact_lock(hashtext(current_schema() || ' message-id'), hashtext(" param "))"
constexpr const char* insert_message_sql =
    "WITH id_lock AS (SELECT " MXGW_ID_LOCK("$1") ") "
    "INSERT INTO messages (id, sender, type, created, accepted_at, body_sha256, body, state, "
    "facts, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
    "ON CONFLICT (id) DO NOTHING RETURNING (SELECT 1 FROM id_lock)";
constexpr const char* lock_message_id_sql = "SELECT " MXGW_ID_LOCK("$1");
#undef MXGW_ID_LOCK
// A withdrawal whose original is not stored yet is kept for it (the first one's id and time).
constexpr const char* insert_early_withdrawal_sql =
    "INSERT INTO early_withdrawals (original, sender, withdrawal, at_ms) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING";
// A message arriving after its sender's withdrawal of it: the withdrawal's id and time; the row
// is used up (deleted) as the message is stored withdrawn.
constexpr const char* take_early_withdrawal_sql =
    "DELETE FROM early_withdrawals WHERE original = $1 AND sender = $2 "
    "RETURNING withdrawal, at_ms";
constexpr const char* select_existing_sql =
    "SELECT sender, body_sha256, accepted_at FROM messages WHERE id = $1";
// A copy held for release ($9 names the rule) is stored 'held' ($8), otherwise 'pending'.
constexpr const char* insert_delivery_sql =
    "INSERT INTO deliveries (message_id, recipient, decided_by, payload, withheld, state, "
    "next_attempt_at, payload_is_body, hold, relies_on, approvals_required) "
    "VALUES ($1, $2, $3, $4, $5, $8, $6, $7, $9, $10, $11)";
constexpr const char* insert_exclusion_sql =
    "INSERT INTO exclusions (message_id, partner, considered, reason) VALUES ($1, $2, $3, $4)";

/// A recipient's claims are serialised across instances by the lock of its name (two keys, the
/// schema's and the name's, held until COMMIT), so that the claim that counts the recipient's
/// deliveries in flight (claim_candidates_sql, the next statement: READ COMMITTED reads what was
/// committed before it began) sees every lease another instance's claim took for it. Without
/// the lock, two instances whose claims overlap both count the other's uncommitted leases as
/// none, and a partner with concurrency 1 gets two POSTs at once. The lock is only tried, never
/// waited for: a recipient whose lock another instance holds (its claim is under way) is given
/// nothing in this claim and is taken up at the next, so no batch waits for another instance's
/// claim and the lock cannot be part of a deadlock. $1 the recipients this claim may give rows
/// to; answers those whose lock another instance holds.
constexpr const char* claim_lock_recipients_sql =
    "SELECT c.recipient FROM unnest($1::text[]) AS c (recipient) "
    "WHERE NOT pg_try_advisory_xact_lock(hashtext(current_schema() || ' recipient'), "
    "hashtext(c.recipient))";

/// Due rows, numbered per recipient oldest first and taken by that number (round robin), capped
/// recipients bounded by their caps; read without locks. $1 now, $2 the most rows, $3/$4 the
/// capped recipients and their caps as arrays, $5 the claiming owner. A cap is what the caller
/// allows beside its own deliveries in flight, so each capped recipient's cap is lowered by its
/// rows in flight for other owners (delivering, lease not run out): a partner's concurrency
/// holds across all instances sharing the store. The claimer's own leases are not counted again
/// (the caller has subtracted them). Only rows that can be handed out are read: the
/// recipients with rows in each claimable state (one index seek each, `queued`), then each one's
/// oldest due rows in that state, at most as many as it may take (`due`), from deliveries_claim
/// (state, recipient, next_attempt_at, rid) in due order. Numbering every due row instead made a
/// claim cost as much as the backlog was long.
constexpr const char* claim_candidates_sql = R"sql(
    WITH RECURSIVE queued (state, recipient) AS (
        SELECT s.state, (SELECT d.recipient FROM deliveries AS d WHERE d.state = s.state
                          ORDER BY d.recipient LIMIT 1)
          FROM (VALUES ('pending'), ('retrying'), ('delivering')) AS s (state)
      UNION ALL
        SELECT q.state, (SELECT d.recipient FROM deliveries AS d
                          WHERE d.state = q.state AND d.recipient > q.recipient
                          ORDER BY d.recipient LIMIT 1)
          FROM queued AS q WHERE q.recipient IS NOT NULL
    ),
    caps AS (
      SELECT c.recipient,
             CASE WHEN c.cap <= 0 THEN 0
                  ELSE greatest(c.cap - (SELECT count(*) FROM deliveries AS d
                                          WHERE d.state = 'delivering'
                                            AND d.recipient = c.recipient
                                            AND d.lease_expires > $1::bigint
                                            AND d.lease_owner IS DISTINCT FROM $5::text), 0)
             END AS cap
        FROM unnest($3::text[], $4::bigint[]) AS c (recipient, cap)
    ),
    due AS (
      SELECT x.rid, x.recipient, x.next_attempt_at
        FROM queued AS q LEFT JOIN caps ON caps.recipient = q.recipient
       CROSS JOIN LATERAL (
             SELECT d.rid, d.recipient, d.next_attempt_at FROM deliveries AS d
              WHERE d.state = q.state AND d.recipient = q.recipient
                AND d.next_attempt_at <= CASE WHEN q.state = 'delivering'
                                              THEN 9223372036854775807 ELSE $1::bigint END
                AND (q.state <> 'delivering' OR d.lease_expires <= $1::bigint)
              ORDER BY d.next_attempt_at, d.rid
              LIMIT LEAST($2::bigint, coalesce(caps.cap, $2::bigint))) AS x
       WHERE q.recipient IS NOT NULL
    ),
    ranked AS (
      SELECT rid, recipient, next_attempt_at,
             row_number() OVER (PARTITION BY recipient ORDER BY next_attempt_at, rid) AS turn
        FROM due
    )
    SELECT ranked.rid FROM ranked LEFT JOIN caps ON caps.recipient = ranked.recipient
     WHERE caps.cap IS NULL OR ranked.turn <= caps.cap
     ORDER BY ranked.turn, ranked.next_attempt_at, ranked.rid
     LIMIT $2
  )sql";

/// Leases the candidates that are still claimable and not locked by another instance's claim in
/// flight (SKIP LOCKED: two instances never lease the same row; a skipped row is simply left for
/// the next claim). $1 the candidate rids, $2 now, $3 owner, $4 lease expiry. A candidate whose
/// message its sender withdrew (it was in flight when the withdrawal took back the queued copies,
/// and its lease ran out) is taken back instead: 'withdrawn', payload emptied, and the last
/// column true so that it is not handed out.
constexpr const char* claim_lease_sql = R"sql(
    WITH locked AS (
      SELECT rid FROM deliveries
       WHERE rid = ANY ($1::bigint[])
         AND ((state IN ('pending', 'retrying') AND next_attempt_at <= $2)
              OR (state = 'delivering' AND lease_expires <= $2))
         FOR UPDATE SKIP LOCKED
    )
    UPDATE deliveries AS d
       SET state = CASE WHEN m.withdrawn_at IS NULL THEN 'delivering' ELSE 'withdrawn' END,
           attempts = CASE WHEN m.withdrawn_at IS NULL THEN d.attempts + 1 ELSE d.attempts END,
           lease_owner = CASE WHEN m.withdrawn_at IS NULL THEN $3::text END,
           lease_expires = CASE WHEN m.withdrawn_at IS NULL THEN $4::bigint END,
           payload = CASE WHEN m.withdrawn_at IS NULL THEN d.payload ELSE ''::bytea END,
           payload_is_body = d.payload_is_body AND m.withdrawn_at IS NULL
      FROM locked, messages AS m
     WHERE d.rid = locked.rid AND m.id = d.message_id
    RETURNING d.rid, d.message_id, d.recipient,
              CASE WHEN d.payload_is_body THEN m.body ELSE d.payload END, d.attempts, m.sender,
              m.type, m.accepted_at, d.payload_is_body,
              CASE WHEN d.payload_is_body THEN d.payload ELSE ''::bytea END, d.released_at,
              m.expires_at, m.withdrawn_at IS NOT NULL, d.relies_on
  )sql";

// A report counts only while the row is still leased to its sender at the attempt it reports on
// ($6), as in SQLite's report statements: a late report of an earlier attempt changes nothing,
// also when the same owner (every worker of an instance shares it) claimed the row again.
constexpr const char* report_delivered_sql =
    "UPDATE deliveries SET state = 'delivered', delivered_at = $4, receipt = $5, "
    "lease_owner = NULL, lease_expires = NULL "
    "WHERE message_id = $1 AND recipient = $2 AND state = 'delivering' AND lease_owner = $3 "
    "AND attempts = $6";
// A failed attempt at a copy whose message was withdrawn while it was in flight takes the copy
// back ('withdrawn', payload emptied) instead of queueing it again or making it a dead letter.
// A retry, and a copy given back untried (attempt_report::attempted false: a retry whose claim
// counted no attempt, so its attempts go back to what they were before that claim).
#define MXGW_REPORT_RETRY(attempts)                                                     \
  "UPDATE deliveries AS d "                                                             \
  "SET state = CASE WHEN m.withdrawn_at IS NULL THEN 'retrying' ELSE 'withdrawn' END, " \
  "payload = CASE WHEN m.withdrawn_at IS NULL THEN d.payload ELSE ''::bytea END, "      \
  "payload_is_body = d.payload_is_body AND m.withdrawn_at IS NULL, " attempts           \
  "next_attempt_at = $4, last_error = $5, lease_owner = NULL, lease_expires = NULL "    \
  "FROM messages AS m "                                                                 \
  "WHERE d.message_id = $1 AND d.recipient = $2 AND d.state = 'delivering' "            \
  "AND d.lease_owner = $3 AND d.attempts = $6 AND m.id = d.message_id"
constexpr const char* report_retry_sql = MXGW_REPORT_RETRY("");
constexpr const char* report_give_back_sql = MXGW_REPORT_RETRY("attempts = d.attempts - 1, ");
#undef MXGW_REPORT_RETRY
// A dead letter, and one decided before any sending (attempt_report::attempted false): its
// attempts go back to what they were before the claim (see SQLite's report_dead_sql).
#define MXGW_REPORT_DEAD(attempts)                                                  \
  "UPDATE deliveries AS d "                                                         \
  "SET state = CASE WHEN m.withdrawn_at IS NULL THEN 'dead' ELSE 'withdrawn' END, " \
  "payload = CASE WHEN m.withdrawn_at IS NULL THEN d.payload ELSE ''::bytea END, "  \
  "payload_is_body = d.payload_is_body AND m.withdrawn_at IS NULL, "                \
  "dead_since = CASE WHEN m.withdrawn_at IS NULL THEN $4::bigint END, " attempts    \
  "last_error = $5, lease_owner = NULL, lease_expires = NULL "                      \
  "FROM messages AS m "                                                             \
  "WHERE d.message_id = $1 AND d.recipient = $2 AND d.state = 'delivering' "        \
  "AND d.lease_owner = $3 AND d.attempts = $6 AND m.id = d.message_id"
constexpr const char* report_dead_sql = MXGW_REPORT_DEAD("");
constexpr const char* report_dead_untried_sql = MXGW_REPORT_DEAD("attempts = d.attempts - 1, ");
#undef MXGW_REPORT_DEAD
// A dead letter of a withdrawn message is never replayed; its max_age counts from the replay
// (released_at; see SQLite's replay_sql).
constexpr const char* replay_sql =
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $3, "
    "released_at = $3, dead_since = NULL "
    "WHERE message_id = $1 AND recipient = $2 AND state = 'dead' "
    "AND NOT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND withdrawn_at IS NOT NULL)";
constexpr const char* original_exists_sql = "SELECT 1 FROM messages WHERE id = $1 AND sender = $2";
// The original's mark of withdrawal ($3 the accept's time in ms; the first withdrawal's stays).
// It runs before the withdrawal's other statements: it locks the message's row, which a batch of
// rekey_persons locks too, so the two take turns (see select_rekey_messages_sql).
constexpr const char* mark_withdrawn_sql =
    "UPDATE messages SET withdrawn_at = coalesce(withdrawn_at, $3) WHERE id = $1 AND sender = $2";
constexpr const char* withdraw_sql =
    "UPDATE deliveries SET state = 'withdrawn', payload = ''::bytea, payload_is_body = false "
    "WHERE message_id = $1 AND state IN ('held', 'pending', 'retrying', 'dead') "
    "AND EXISTS (SELECT 1 FROM messages WHERE id = $1 AND sender = $2)";
constexpr const char* discard_sql =
    "UPDATE deliveries SET state = 'discarded', last_error = $3 "
    "WHERE message_id = $1 AND recipient = $2 AND state = 'dead'";

// Person keys (person_keys): a message's keys in one statement ($2..$4 arrays of the digests in
// hex, the kinds and the pointers; a key named twice is kept once), and the original's keys when
// its sender withdraws it, whatever the state of its copies. Retention deletes the keys of the
// messages whose bodies it empties in the same statement (purge_bodies_sql).
constexpr const char* insert_person_keys_sql = R"sql(
    INSERT INTO person_keys (digest, kind, message_id, pointer)
    SELECT decode(k.digest, 'hex'), k.kind, $1, k.pointer
      FROM unnest($2::text[], $3::text[], $4::text[]) AS k (digest, kind, pointer)
    ON CONFLICT DO NOTHING
  )sql";
constexpr const char* withdraw_person_keys_sql =
    "DELETE FROM person_keys WHERE message_id = $1 "
    "AND EXISTS (SELECT 1 FROM messages WHERE id = $1 AND sender = $2)";

// Keys made anew (rekey_persons): the next messages in id order (byte-wise, as on SQLite), each
// with its body when the keyer may see it (a body left, not purged, not withdrawn, its handling
// not expired at $3, now in ms), otherwise an empty one and false. Their rows are locked until
// COMMIT: a withdrawal on another instance marks the row first (mark_withdrawn_sql), so either it
// waits and then deletes the keys written here, or this waits and then reads withdrawn_at. A purge
// skips rows locked here. Then the keys of the batch's messages are deleted ($1 their ids) and the
// new ones inserted (arrays of the message ids, digests in hex, kinds and pointers; a key named
// twice is kept once).
constexpr const char* select_rekey_messages_sql = R"sql(
    SELECT id,
           CASE WHEN length(body) > 0 AND purged_at IS NULL AND withdrawn_at IS NULL
                     AND (expires_at IS NULL OR expires_at > $3)
                THEN body ELSE ''::bytea END,
           length(body) > 0 AND purged_at IS NULL AND withdrawn_at IS NULL
             AND (expires_at IS NULL OR expires_at > $3)
      FROM messages WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2 FOR UPDATE
  )sql";
constexpr const char* delete_rekeyed_keys_sql =
    "DELETE FROM person_keys WHERE message_id = ANY ($1::text[])";
constexpr const char* insert_rekeyed_keys_sql = R"sql(
    INSERT INTO person_keys (digest, kind, message_id, pointer)
    SELECT decode(k.digest, 'hex'), k.kind, k.message_id, k.pointer
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
           AS k (message_id, digest, kind, pointer)
    ON CONFLICT DO NOTHING
  )sql";

// Four-eyes release (write_release): the held row, locked until COMMIT, so an instance deciding
// on the same copy at the same time waits and then reads the approvals this one committed (or
// finds the copy no longer held). Then one of three changes to it. A released copy is due now
// and keeps attempts 0; a rejected one loses its payload (as a withdrawn one does) and keeps the
// reason as its error.
constexpr const char* select_held_for_release_sql =
    "SELECT rid, approvals, approvals_required FROM deliveries "
    "WHERE message_id = $1 AND recipient = $2 AND state = 'held' FOR UPDATE";
constexpr const char* approve_held_sql = "UPDATE deliveries SET approvals = $2 WHERE rid = $1";
constexpr const char* release_held_sql =
    "UPDATE deliveries SET state = 'pending', approvals = $2, next_attempt_at = $3, "
    "released_at = $3 WHERE rid = $1";
constexpr const char* reject_held_sql =
    "UPDATE deliveries SET state = 'rejected', payload = ''::bytea, payload_is_body = false, "
    "last_error = $2 WHERE rid = $1";

// Re-encryption: the bodies, payloads, receipts and error texts of the next messages in id order,
// locked until COMMIT so another instance's withdrawal, purge or report waits for the new bytes
// instead of racing them. Empty values are left out (a body's recipient's payload is shown even
// when empty: its grant is due).
constexpr const char* select_rewrite_messages_sql =
    "SELECT id, body, facts FROM messages WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE";
constexpr const char* select_rewrite_payloads_sql =
    "SELECT message_id, recipient, payload, length(payload) > 0 OR payload_is_body, receipt, "
    "last_error FROM deliveries WHERE message_id > $1 AND message_id <= $2 "
    "ORDER BY message_id, recipient FOR UPDATE";
constexpr const char* update_body_sql = "UPDATE messages SET body = $2 WHERE id = $1";
constexpr const char* update_facts_sql = "UPDATE messages SET facts = $2 WHERE id = $1";
constexpr const char* update_payload_sql =
    "UPDATE deliveries SET payload = $3 WHERE message_id = $1 AND recipient = $2";
constexpr const char* update_receipt_sql =
    "UPDATE deliveries SET receipt = $3 WHERE message_id = $1 AND recipient = $2";
constexpr const char* update_error_sql =
    "UPDATE deliveries SET last_error = $3 WHERE message_id = $1 AND recipient = $2";

// Retention: payloads past their time, then bodies none of whose copies still needs them. Rows
// another instance holds are skipped (the next sweep takes them). The body statements delete the
// person keys of the messages they empty and give the count of bodies emptied.
constexpr const char* purge_payloads_sql = R"sql(
    UPDATE deliveries SET payload = ''::bytea, payload_is_body = false, receipt = ''::bytea,
           last_error = ''::bytea,
           state = CASE WHEN state = 'dead' THEN 'expired' ELSE state END
     WHERE rid IN (SELECT rid FROM deliveries
                    WHERE (length(payload) > 0 OR payload_is_body OR length(receipt) > 0
                           OR length(last_error) > 0)
                      AND ((state = 'delivered' AND delivered_at < $1)
                           OR (state IN ('dead', 'discarded') AND dead_since < $2))
                    LIMIT $3 FOR UPDATE SKIP LOCKED)
  )sql";
constexpr const char* purge_bodies_sql = R"sql(
    WITH emptied AS (
      UPDATE messages SET body = ''::bytea, purged_at = $3
       WHERE id IN (SELECT m.id FROM messages AS m
                     WHERE m.purged_at IS NULL
                       AND ((EXISTS (SELECT 1 FROM deliveries AS d WHERE d.message_id = m.id)
                             AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                                              WHERE d.message_id = m.id
                                                AND (length(d.payload) > 0
                                                     OR d.payload_is_body
                                                     OR d.state IN ('held', 'pending', 'retrying',
                                                                    'delivering'))))
                            OR (NOT EXISTS (SELECT 1 FROM deliveries AS d
                                             WHERE d.message_id = m.id)
                                AND m.accepted_at < $1))
                     LIMIT $2 FOR UPDATE OF m SKIP LOCKED)
      RETURNING id
    ), unkeyed AS (
      DELETE FROM person_keys WHERE message_id IN (SELECT id FROM emptied)
    )
    SELECT count(*) FROM emptied
  )sql";

// Retention of expired messages (messages_expiring): first every copy not in delivery, whatever
// its age (a dead or held one becomes "expired"), then the bodies none of whose copies is in
// delivery or still holds anything (their person keys with them, as above). A message keeps its
// place in the index until its body goes, so its copies are found until they are all emptied.
constexpr const char* purge_expired_payloads_sql = R"sql(
    UPDATE deliveries SET payload = ''::bytea, payload_is_body = false, receipt = ''::bytea,
           last_error = ''::bytea,
           state = CASE WHEN state IN ('dead', 'held') THEN 'expired' ELSE state END
     WHERE rid IN (SELECT d.rid FROM messages AS m JOIN deliveries AS d ON d.message_id = m.id
                    WHERE m.expires_at IS NOT NULL AND m.expires_at <= $1
                      AND m.purged_at IS NULL
                      AND d.state NOT IN ('pending', 'retrying', 'delivering')
                      AND (d.state = 'held' OR length(d.payload) > 0 OR d.payload_is_body
                           OR length(d.receipt) > 0 OR length(d.last_error) > 0)
                    LIMIT $2 FOR UPDATE OF d SKIP LOCKED)
  )sql";
constexpr const char* purge_expired_bodies_sql = R"sql(
    WITH emptied AS (
      UPDATE messages SET body = ''::bytea, purged_at = $3
       WHERE id IN (SELECT m.id FROM messages AS m
                     WHERE m.expires_at IS NOT NULL AND m.expires_at <= $1
                       AND m.purged_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                                        WHERE d.message_id = m.id
                                          AND (d.state IN ('held', 'pending', 'retrying',
                                                           'delivering')
                                               OR length(d.payload) > 0 OR d.payload_is_body
                                               OR length(d.receipt) > 0
                                               OR length(d.last_error) > 0))
                     LIMIT $2 FOR UPDATE OF m SKIP LOCKED)
      RETURNING id
    ), unkeyed AS (
      DELETE FROM person_keys WHERE message_id IN (SELECT id FROM emptied)
    )
    SELECT count(*) FROM emptied
  )sql";

constexpr const char* lock_sql = "SELECT pg_advisory_xact_lock($1)";
// A write transaction begins, and reads the schema version in the same round trip (see
// write_batch).
constexpr const char* begin_reading_schema_version_sql =
    "BEGIN; SELECT max(version) FROM mxgw_schema";
constexpr const char* select_audit_head_sql =
    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
constexpr const char* insert_audit_sql =
    "INSERT INTO audit (seq, at, event, actor, partner, message_id, entry, hash) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr const char* insert_checkpoint_sql =
    "INSERT INTO audit_checkpoints (seq, hash, at, signer, signature) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (seq) DO NOTHING";
constexpr const char* select_state_version_sql =
    "SELECT version, value = '' FROM state WHERE kind = $1 AND key = $2";
constexpr const char* select_max_state_version_sql = "SELECT coalesce(max(version), 0) FROM state";
constexpr const char* upsert_state_sql =
    "INSERT INTO state (kind, key, value, version, changed_at, changed_by) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, key) DO UPDATE SET "
    "value = excluded.value, version = excluded.version, changed_at = excluded.changed_at, "
    "changed_by = excluded.changed_by";

// Reader statements.
constexpr const char* select_body_sql = "SELECT sender, body FROM messages WHERE id = $1";
constexpr const char* select_status_sql =
    "SELECT id, sender, type, created, accepted_at, state, body_sha256 FROM messages WHERE id = $1";
constexpr const char* select_recipients_sql =
    "SELECT recipient, decided_by, state, attempts, next_attempt_at, last_error, delivered_at, "
    "receipt, withheld, hold FROM deliveries WHERE message_id = $1 ORDER BY recipient";
constexpr const char* select_exclusions_sql =
    "SELECT partner, considered, reason FROM exclusions WHERE message_id = $1 ORDER BY pos";
constexpr const char* select_dead_sql =
    "SELECT d.message_id, d.recipient, m.sender, m.type, d.attempts, d.last_error, d.dead_since "
    "FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id "
    "WHERE d.state = 'dead' ORDER BY d.dead_since, d.message_id, d.recipient LIMIT $1";
// Held copies, oldest message first (accepted_at; then rid, the order of the inserts: of the
// messages of one batch and of one message's plans), read through deliveries_held.
constexpr const char* select_held_sql =
    "SELECT d.message_id, d.recipient, m.sender, m.type, m.accepted_at, d.hold, d.approvals, "
    "d.approvals_required "
    "FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id WHERE d.state = 'held' "
    "ORDER BY m.accepted_at COLLATE \"C\", d.rid LIMIT $1";
// One held copy as a claim would hand it out (the columns of claim_lease_sql after the rid).
constexpr const char* select_held_job_sql =
    "SELECT d.message_id, d.recipient, "
    "CASE WHEN d.payload_is_body THEN m.body ELSE d.payload END, d.attempts, m.sender, m.type, "
    "m.accepted_at, d.payload_is_body, "
    "CASE WHEN d.payload_is_body THEN d.payload ELSE ''::bytea END, d.released_at, m.expires_at, "
    "d.relies_on "
    "FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id "
    "WHERE d.message_id = $1 AND d.recipient = $2 AND d.state = 'held'";
constexpr const char* select_queue_stats_sql =
    "SELECT d.recipient, count(*) FILTER (WHERE d.state = 'pending'), "
    "count(*) FILTER (WHERE d.state = 'delivering'), "
    "count(*) FILTER (WHERE d.state = 'retrying'), count(*) FILTER (WHERE d.state = 'dead'), "
    "count(*) FILTER (WHERE d.state = 'delivered'), "
    "count(*) FILTER (WHERE d.state = 'discarded'), "
    "count(*) FILTER (WHERE d.state = 'held'), count(*) FILTER (WHERE d.state = 'rejected'), "
    "coalesce(min(m.accepted_at) FILTER (WHERE d.state IN ('held', 'pending', 'delivering', "
    "'retrying')), '') "
    "FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id "
    "GROUP BY d.recipient ORDER BY d.recipient";
// Person matches (find_person_matches; SQLite's select_person_matches_sql): whether the message
// is stored, then the keys of other messages that share a digest and kind with one of its keys,
// once per (pointer, kind, other message, other pointer), in the header's order: acceptance is
// accepted_at and then the id (a batch shares its time), every text compared byte-wise. A message
// whose handling expired ($3: now in ms) is no candidate and has none, as on SQLite.
constexpr const char* select_message_exists_sql = "SELECT 1 FROM messages WHERE id = $1";
constexpr const char* select_person_matches_sql = R"sql(
    SELECT pointer, kind, id, other_pointer, sender, type, accepted_at FROM (
      SELECT DISTINCT mine.pointer, mine.kind, m.id, other.pointer AS other_pointer, m.sender,
             m.type, m.accepted_at
        FROM person_keys AS other
        JOIN person_keys AS mine ON mine.message_id = $1 AND mine.digest = other.digest
                                AND mine.kind = other.kind
        JOIN messages AS m ON m.id = other.message_id
       WHERE other.message_id <> $1
         AND other.digest IN (SELECT digest FROM person_keys WHERE message_id = $1)
         AND (m.expires_at IS NULL OR m.expires_at > $3) AND m.purged_at IS NULL
         AND m.withdrawn_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND expires_at <= $3)) AS t
     ORDER BY pointer COLLATE "C", accepted_at COLLATE "C", id COLLATE "C",
              other_pointer COLLATE "C", kind COLLATE "C"
     LIMIT $2
  )sql";
// Statistical facts in the order of acceptance: by accepted_at, then id (a batch shares its
// time), compared byte-wise so that the cursor ($2, $3) and the order agree whatever the
// database's collation. No index: a report is rare and reads most of the table anyway.
constexpr const char* select_facts_sql =
    "SELECT id, sender, type, accepted_at, facts FROM messages "
    "WHERE accepted_at COLLATE \"C\" >= $1 "
    "AND (accepted_at COLLATE \"C\", id COLLATE \"C\") > ($2, $3) "
    "ORDER BY accepted_at COLLATE \"C\", id COLLATE \"C\" LIMIT $4";
constexpr const char* select_register_sql = R"sql(
    SELECT partner, direction, month, type, count(*) FROM (
      SELECT sender AS partner, 'received-from' AS direction, substr(accepted_at, 1, 7) AS month,
             type
        FROM messages WHERE substr(accepted_at, 1, 7) BETWEEN $1 AND $2
      UNION ALL
      SELECT d.recipient, 'sent-to',
             to_char(to_timestamp(d.delivered_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM'), m.type
        FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id
       WHERE d.state = 'delivered'
         AND to_char(to_timestamp(d.delivered_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM')
             BETWEEN $1 AND $2) AS t
     GROUP BY partner, direction, month, type
     ORDER BY partner COLLATE "C", direction COLLATE "C", month COLLATE "C", type COLLATE "C"
  )sql";
constexpr const char* select_audit_sql =
    "SELECT seq, at, event, actor, partner, message_id, entry, hash FROM audit "
    "WHERE seq > $1 ORDER BY seq LIMIT $2";
constexpr const char* select_audit_last_sql =
    "SELECT seq, at, event, actor, partner, message_id, entry, hash FROM audit "
    "ORDER BY seq DESC LIMIT 1";
constexpr const char* select_checkpoints_sql =
    "SELECT seq, hash, at, signer, signature FROM audit_checkpoints ORDER BY seq";
constexpr const char* select_state_sql =
    "SELECT kind, key, value, version, changed_at, changed_by FROM state "
    "WHERE version > $1 AND ($2 = '' OR kind = $2) ORDER BY version";

// ---------------------------------------------------------------------------------------------
// libpq, wrapped

struct result_clear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_clear>;

struct conn_finish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_finish>;

/// One statement parameter: text, binary bytes (bytea) or NULL.
struct param {
  std::string value;
  bool binary = false;
  bool null = false;
};

param text(std::string_view v) {
  return {std::string(v), false, false};
}
param bytes(std::string_view v) {
  return {std::string(v), true, false};
}
param number(std::int64_t v) {
  return {std::to_string(v), false, false};
}
/// A nullable bigint: SQL NULL when unset.
param number_or_null(const std::optional<std::int64_t>& v) {
  return v ? number(*v) : param{{}, false, true};
}

/// How a failed statement is to be treated. Only SQLSTATE and PostgreSQL's primary message are
/// kept: the DETAIL of an error may quote row values (message content), which must not be logged.
struct db_error {
  std::string sqlstate;  ///< five characters, or empty when the connection failed
  std::string message;   ///< the primary message (never the DETAIL)
  bool connection_lost = false;
  /// Not the server's error: a newer mxgw migrated the schema (postgres_store::write_batch).
  bool schema_newer = false;
};

/// A text array literal for $n::text[] ("{"a","b"}"), every element quoted and escaped.
std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? "\"" : ",\"";
    for (const char c : values[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string int_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i == 0 ? "" : ",") + std::to_string(values[i]);
  }
  return out + "}";
}

/// A connection used by exactly one thread, with its statements prepared on first use.
class pg_connection {
 public:
  pg_connection(std::vector<std::string> keywords, std::vector<std::string> values,
                std::string schema)
      : keywords_(std::move(keywords)), values_(std::move(values)), schema_(std::move(schema)) {}

  /// Connects and sets the session up. Returns false (error in `error`) when that fails.
  bool connect(db_error& error) {
    conn_.reset();
    prepared_.clear();
    std::vector<const char*> k;
    std::vector<const char*> v;
    for (std::size_t i = 0; i < keywords_.size(); ++i) {
      k.push_back(keywords_[i].c_str());
      v.push_back(values_[i].c_str());
    }
    k.push_back(nullptr);
    v.push_back(nullptr);
    conn_.reset(PQconnectdbParams(k.data(), v.data(), 0));
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
      error = {"", conn_ ? first_line(PQerrorMessage(conn_.get())) : "out of memory", true};
      conn_.reset();
      return false;
    }
    // Server notices ("relation already exists, skipping") are not for the log or stderr.
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
    // Durable commits: COMMIT returns only once the WAL is flushed (and, when the server has
    // synchronous standbys, once they have it too), so every `stored` survives a crash of the
    // server. The server default could have been lowered; the session says what mxgw needs.
    if (!exec_simple("SET synchronous_commit = on", error) ||
        !exec_simple("SET default_transaction_isolation = 'read committed'", error) ||
        !exec_simple("SET client_encoding = 'UTF8'", error)) {
      conn_.reset();
      return false;
    }
    if (!schema_.empty()) {
      // The schema name is bound as a quoted identifier, never spliced in raw.
      char* quoted = PQescapeIdentifier(conn_.get(), schema_.c_str(), schema_.size());
      if (quoted == nullptr) {
        error = {"", "cannot quote the schema name", false};
        conn_.reset();
        return false;
      }
      const std::string set = std::string("SET search_path TO ") + quoted;
      PQfreemem(quoted);
      if (!exec_simple(set, error)) {
        conn_.reset();
        return false;
      }
    }
    return true;
  }

  bool connected() const { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }
  void drop() {
    conn_.reset();
    prepared_.clear();
  }
  PGconn* raw() const { return conn_.get(); }

  /// Runs a statement without parameters (several allowed; the migrations).
  bool exec_simple(const std::string& sql, db_error& error) {
    result_ptr r(PQexec(conn_.get(), sql.c_str()));
    return check(r, error);
  }

  /// Runs `sql` (one or more statements without parameters, in one round trip) and gives the
  /// last statement's result; nullptr with `error` set when any of them fails.
  result_ptr query_simple(const char* sql, db_error& error) {
    if (!conn_) {
      error = {"", "not connected", true};
      return nullptr;
    }
    result_ptr r(PQexec(conn_.get(), sql));
    return check(r, error) ? std::move(r) : nullptr;
  }

  /// Runs a prepared statement (prepared on this connection the first time it is used). Returns
  /// nullptr with `error` set when it fails.
  result_ptr exec(const char* sql, const std::vector<param>& params, db_error& error) {
    if (!conn_) {
      error = {"", "not connected", true};
      return nullptr;
    }
    auto found = prepared_.find(sql);
    if (found == prepared_.end()) {
      const std::string name = "s" + std::to_string(prepared_.size());
      result_ptr p(PQprepare(conn_.get(), name.c_str(), sql, 0, nullptr));
      if (!check(p, error)) {
        return nullptr;
      }
      found = prepared_.emplace(sql, name).first;
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const auto& p : params) {
      values.push_back(p.null ? nullptr : p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
    result_ptr r(PQexecPrepared(conn_.get(), found->second.c_str(), static_cast<int>(params.size()),
                                values.data(), lengths.data(), formats.data(), 0));
    if (!check(r, error)) {
      return nullptr;
    }
    return r;
  }

 private:
  static std::string first_line(const char* message) {
    std::string text = message != nullptr ? message : "";
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
  }

  bool check(const result_ptr& r, db_error& error) {
    const ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      return true;
    }
    error = {};
    if (r) {
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
      error.sqlstate = state != nullptr ? state : "";
      error.message = primary != nullptr ? primary : first_line(PQerrorMessage(conn_.get()));
    } else {
      error.message = first_line(PQerrorMessage(conn_.get()));
    }
    // Class 08 (connection exception) and 57P (the server shut down, or this backend was
    // terminated) mean this connection is gone, not that the statement was bad.
    error.connection_lost = PQstatus(conn_.get()) != CONNECTION_OK ||
                            error.sqlstate.rfind("08", 0) == 0 ||
                            error.sqlstate.rfind("57P", 0) == 0;
    return false;
  }

  std::vector<std::string> keywords_;
  std::vector<std::string> values_;  // may hold the password: never logged
  std::string schema_;
  conn_ptr conn_;
  std::unordered_map<const char*, std::string> prepared_;  // by the SQL text's address
};

std::string get_text(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col) != 0) {
    return {};
  }
  return std::string(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col)));
}

std::string get_bytes(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col) != 0) {
    return {};
  }
  std::size_t size = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, col)), &size);
  if (raw == nullptr) {
    throw std::bad_alloc();
  }
  std::string out(reinterpret_cast<const char*>(raw), size);
  PQfreemem(raw);
  return out;
}

std::int64_t get_int(const PGresult* r, int row, int col) {
  const char* v = PQgetvalue(r, row, col);
  std::int64_t out = 0;
  std::from_chars(v, v + PQgetlength(r, row, col), out);
  return out;
}

bool get_bool(const PGresult* r, int row, int col) {
  return PQgetvalue(r, row, col)[0] == 't';
}

std::int64_t affected(const result_ptr& r) {
  const char* n = PQcmdTuples(r.get());
  std::int64_t out = 0;
  std::from_chars(n, n + std::strlen(n), out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with the SQLite store's semantics

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

void log_quietly(log::level lvl, const log::fields& fields) noexcept {
  try {
    log::write(lvl, fields);
  } catch (...) {
  }
}

/// A 64-bit advisory lock key for `purpose` within `schema` (FNV-1a; stable across builds).
std::int64_t lock_key(std::string_view schema, std::string_view purpose) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto mix = [&h](std::string_view s) {
    for (const char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ULL;
    }
  };
  mix("mxgw/");
  mix(schema);
  mix("/");
  mix(purpose);
  return static_cast<std::int64_t>(h);
}

/// Splits a DSN into libpq keywords and values (URI or key=value form). Throws store_error with
/// libpq's reason, never with the string itself (it could carry a password by mistake).
void parse_dsn(const std::string& dsn, std::vector<std::string>& keywords,
               std::vector<std::string>& values, bool& has_password) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    std::string reason = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) {
      reason.pop_back();
    }
    // libpq quotes the offending keyword at most, never the value.
    throw store_error("the PostgreSQL DSN does not parse: " + reason);
  }
  has_password = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) {
      continue;
    }
    if (std::strcmp(o->keyword, "password") == 0) {
      has_password = o->val[0] != '\0';
      continue;
    }
    keywords.emplace_back(o->keyword);
    values.emplace_back(o->val);
  }
  PQconninfoFree(options);
}

// ---------------------------------------------------------------------------------------------
// Queued work (the same shapes as the SQLite store's)

struct accept_write {
  message_record record;
  message_store::accept_handler handler;
  accept_result result;
  std::vector<audit::audit_record> audit_copy;  ///< the audit as stored, when it differs
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
  std::optional<std::string> discard_reason;
};

struct audit_write {
  std::vector<audit::audit_record> records;
  message_store::report_handler handler;
};

struct checkpoint_write {
  audit::checkpoint checkpoint;
  message_store::report_handler handler;
  bool added = false;
};

struct state_write {
  std::vector<state_put> puts;
  std::vector<audit::audit_record> audit;
  message_store::puts_handler handler;
  put_outcome outcome = put_outcome::failed;
  std::vector<std::int64_t> versions;  ///< one per put: assigned (applied) or current (conflict)
};

struct purge_write {
  retention_cut cut;
  message_store::purge_handler handler;
  purge_result result;
  std::vector<audit::audit_record> audit;  // built once the counts are known
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

struct pending_write {
  std::variant<accept_write, claim_write, report_write, replay_write, audit_write, checkpoint_write,
               state_write, purge_write, rewrite_write, release_write, rekey_write>
      work;
  bool committed = false;
  /// The audit records this write appends in the chain phase (set by the first phase).
  const std::vector<audit::audit_record>* audit = nullptr;
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
struct register_read {
  std::string from_month;
  std::string to_month;
  message_store::register_handler handler;
};

struct facts_read {
  std::string since;
  std::string after_time;  ///< the cursor: the previous page's last accepted_at and id
  std::string after_id;
  std::size_t limit = 0;
  message_store::facts_handler handler;
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

/// Thrown inside a batch when a statement failed; carries the error out of the nested helpers.
struct batch_failure {
  db_error error;
};

/// A deadlock between instances (or a serialisation failure): the batch is run again.
bool is_retryable(const db_error& e) {
  return e.sqlstate == "40P01" || e.sqlstate == "40001";
}

/// The reason code a failed batch's accepts get (`unavailable`).
const char* failure_reason(const db_error& e) {
  if (e.schema_newer) {
    return "schema-newer";
  }
  if (e.connection_lost) {
    return "store-unreachable";
  }
  if (e.sqlstate == "53100") {
    return "disk-full";
  }
  return "store-error";
}

/// Data corruption reported by the server: the only error that stops this store for good (the
/// server's own fsync failures make it PANIC and restart, which is a connection loss here).
bool is_fatal(const db_error& e) {
  return e.schema_newer || e.sqlstate == "XX001" || e.sqlstate == "XX002";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The implementation

class postgres_store final : public message_store {
 public:
  explicit postgres_store(const postgres_options& options);
  ~postgres_store() override { stop(); }
  postgres_store(const postgres_store&) = delete;
  postgres_store& operator=(const postgres_store&) = delete;

  void accept(message_record record, accept_handler handler) override {
    submit(pending_write{accept_write{std::move(record), std::move(handler), {}}});
  }
  void find(std::string id, find_handler handler) override {
    submit_read(find_read{std::move(id), std::move(handler)});
  }
  void read_body(std::string id, body_handler handler) override {
    submit_read(body_read{std::move(id), std::move(handler)});
  }
  void claim_due(std::string owner, std::size_t max_jobs, std::chrono::milliseconds lease,
                 std::vector<recipient_cap> caps, claim_handler handler) override {
    std::sort(caps.begin(), caps.end(), [](const recipient_cap& a, const recipient_cap& b) {
      return a.recipient != b.recipient ? a.recipient < b.recipient : a.max_jobs < b.max_jobs;
    });
    caps.erase(std::unique(caps.begin(), caps.end(),
                           [](const recipient_cap& a, const recipient_cap& b) {
                             return a.recipient == b.recipient;
                           }),
               caps.end());
    submit(pending_write{
        claim_write{std::move(owner), max_jobs, lease, std::move(caps), std::move(handler), {}}});
  }
  void report(attempt_report report, report_handler handler) override {
    submit(pending_write{report_write{std::move(report), std::move(handler)}});
  }
  void replay(std::string message_id, std::string recipient, std::vector<audit::audit_record> audit,
              replay_handler handler) override {
    submit(pending_write{replay_write{std::move(message_id),
                                      std::move(recipient),
                                      std::move(audit),
                                      std::move(handler),
                                      false,
                                      {}}});
  }
  void discard(std::string message_id, std::string recipient, std::string reason,
               std::vector<audit::audit_record> audit, replay_handler handler) override {
    submit(pending_write{replay_write{std::move(message_id), std::move(recipient), std::move(audit),
                                      std::move(handler), false, std::move(reason)}});
  }
  void queue_stats(queue_handler handler) override { submit_read(queue_read{std::move(handler)}); }
  void purge(retention_cut cut, purge_handler handler) override {
    submit(pending_write{purge_write{std::move(cut), std::move(handler), {}, {}}});
  }
  void rewrite_values(std::string after_id, std::size_t max_messages, value_rewriter rewriter,
                      rewrite_handler handler) override {
    submit(pending_write{rewrite_write{
        std::move(after_id), max_messages, std::move(rewriter), std::move(handler), {}, false}});
  }
  void rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                     person_rekey_handler handler) override {
    submit(pending_write{rekey_write{
        std::move(after_id), max_messages, std::move(keyer), std::move(handler), {}, false}});
  }
  void transfer_register(std::string from_month, std::string to_month,
                         register_handler handler) override {
    submit_read(register_read{std::move(from_month), std::move(to_month), std::move(handler)});
  }
  /// The cursor is the last row's accepted_at and id, joined by a newline.
  void read_facts(std::string since, std::string after, std::size_t limit,
                  facts_handler handler) override {
    std::string after_time;
    std::string after_id;
    if (!after.empty()) {
      const auto cut = after.find('\n');
      if (cut == std::string::npos) {
        call_quietly(handler, facts_page{}, false);  // not a cursor of this store's
        return;
      }
      after_time = after.substr(0, cut);
      after_id = after.substr(cut + 1);
    }
    submit_read(facts_read{std::move(since), std::move(after_time), std::move(after_id), limit,
                           std::move(handler)});
  }
  void list_dead(std::size_t limit, dead_handler handler) override {
    submit_read(dead_read{limit, std::move(handler)});
  }
  void list_held(std::size_t limit, held_handler handler) override {
    submit_read(held_read{limit, std::move(handler)});
  }
  void read_held(std::string message_id, std::string recipient,
                 held_copy_handler handler) override {
    submit_read(held_job_read{std::move(message_id), std::move(recipient), std::move(handler)});
  }
  void find_person_matches(std::string message_id, std::size_t limit,
                           matches_handler handler) override {
    submit_read(matches_read{std::move(message_id), limit, std::move(handler)});
  }
  void decide_release(release_request request, release_handler handler) override {
    submit(pending_write{release_write{std::move(request), std::move(handler), {}, {}}});
  }
  void append_audit(std::vector<audit::audit_record> records, report_handler handler) override {
    submit(pending_write{audit_write{std::move(records), std::move(handler)}});
  }
  void read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) override {
    submit_read(audit_read{after_seq, limit, std::move(handler)});
  }
  void audit_head(head_handler handler) override { submit_read(head_read{std::move(handler)}); }
  void add_checkpoint(audit::checkpoint checkpoint, report_handler handler) override {
    submit(pending_write{checkpoint_write{std::move(checkpoint), std::move(handler), false}});
  }
  void read_checkpoints(checkpoints_handler handler) override {
    submit_read(checkpoints_read{std::move(handler)});
  }
  void put_states(std::vector<state_put> puts, std::vector<audit::audit_record> audit,
                  puts_handler handler) override {
    submit(pending_write{state_write{
        std::move(puts), std::move(audit), std::move(handler), put_outcome::failed, {}}});
  }
  void list_state(std::string kind, std::int64_t after_version, state_handler handler) override {
    submit_read(state_read{std::move(kind), after_version, std::move(handler)});
  }
  void on_deliveries_due(std::function<void()> callback) override {
    const std::lock_guard lock(due_mutex_);
    deliveries_due_ = std::move(callback);
  }
  void approvals_when_held(std::function<std::size_t()> source) override {
    const std::lock_guard lock(held_mutex_);
    approvals_when_held_ = std::move(source);
  }
  bool healthy() const override { return healthy_.load(); }
  void stop() override;

  postgres_store_stats stats() const;

 private:
  /// Reconnection state of one connection (each used by one thread only).
  struct link {
    pg_connection conn;
    std::chrono::steady_clock::time_point next_attempt{};
    std::chrono::milliseconds backoff{0};
    bool lost = false;  ///< the loss was logged; the next success logs the reconnect
  };

  void start();
  void submit(pending_write write);
  void submit_read(pending_read read);
  void close_queues();
  time_point now() const { return clock_ ? clock_() : std::chrono::system_clock::now(); }
  bool ensure_connected(link& l, const char* which);
  void connection_failed(link& l, const db_error& e, const char* which);

  // Writer thread.
  void writer_loop();
  void commit_batch(std::vector<pending_write>& batch);
  void write_batch(std::vector<pending_write>& batch);
  result_ptr run(const char* sql, const std::vector<param>& params);
  /// Takes the lock of message id `id` until COMMIT (see insert_message_sql). Returns true.
  bool lock_message_id(std::string_view id) {
    run(lock_message_id_sql, {text(id)});
    return true;
  }
  void write_record(pending_write& write, accept_write& w, const std::string& at,
                    std::int64_t now_ms);
  void write_claim(claim_write& w, std::int64_t now_ms);
  void write_report(pending_write& write, report_write& w, std::int64_t now_ms);
  void write_replay(pending_write& write, replay_write& w, std::int64_t now_ms);
  void write_release(pending_write& write, release_write& w, std::int64_t now_ms,
                     const std::string& at);
  void write_purge(pending_write& write, purge_write& w, std::int64_t now_ms);
  void write_rewrite(rewrite_write& w);
  void write_rekey(rekey_write& w);
  void write_chain_phase(std::vector<pending_write>& batch, const std::string& at);
  void write_state(state_write& w, const std::string& at,
                   const std::function<std::pair<std::int64_t, std::string>&()>& chain_head);
  void append_rows(const std::vector<audit::audit_record>& records, const std::string& at,
                   std::pair<std::int64_t, std::string>& head);
  void notify_deliveries_due();

  // Reader thread.
  void reader_loop();
  void serve(pending_read& read);
  result_ptr read_query(const char* sql, const std::vector<param>& params);
  std::optional<message_status> read_status(const std::string& id);
  std::optional<std::vector<person_match>> read_person_matches(const matches_read& job);
  static std::vector<audit::audit_row> audit_rows(const PGresult* r);

  const std::string schema_;
  const std::size_t max_batch_;
  const std::chrono::milliseconds reconnect_min_;
  const std::chrono::milliseconds reconnect_max_;
  const std::function<time_point()> clock_;
  std::int64_t chain_lock_ = 0;  // set at open, from the schema the tables are in

  link writer_link_;
  link reader_link_;

  std::atomic<bool> healthy_{true};
  // Why the store stopped when it was not corruption ("schema-newer"; set before healthy_ is
  // cleared).
  std::atomic<const char*> stopped_because_{nullptr};
  const char* stop_reason() const {
    const char* why = stopped_because_.load();
    return why != nullptr ? why : "io-error";
  }

  mutable std::mutex write_mutex_;
  std::condition_variable write_cv_;
  std::deque<pending_write> writes_;
  bool writes_closed_ = false;

  std::mutex read_mutex_;
  std::condition_variable read_cv_;
  std::deque<pending_read> reads_;
  bool reads_closed_ = false;

  std::mutex due_mutex_;
  std::function<void()> deliveries_due_;
  std::mutex held_mutex_;  // guards approvals_when_held_
  std::function<std::size_t()> approvals_when_held_;

  /// What approvals_when_held_ says a copy held now needs (0 without a source); writer thread.
  std::int64_t approvals_when_held_now() {
    std::function<std::size_t()> source;
    {
      const std::lock_guard lock(held_mutex_);
      source = approvals_when_held_;
    }
    return source ? clamp_to_int64(source()) : 0;
  }

  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::thread writer_;
  std::thread reader_;
  std::thread::id writer_id_;
  std::thread::id reader_id_;

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> records_committed_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
  std::atomic<std::uint64_t> retried_batches_{0};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::size_t> largest_batch_{0};
};

namespace {

struct connection_settings {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
};

connection_settings settings_for(const postgres_options& options) {
  connection_settings s;
  bool has_password = false;
  parse_dsn(options.dsn, s.keywords, s.values, has_password);
  if (has_password) {
    throw store_error(
        "the PostgreSQL DSN carries a password; give it in store.password_file or "
        "store.password_env instead");
  }
  const auto set = [&s](const std::string& key, const std::string& value) {
    const auto at = std::find(s.keywords.begin(), s.keywords.end(), key);
    if (at == s.keywords.end()) {
      s.keywords.push_back(key);
      s.values.push_back(value);
    } else {
      s.values[static_cast<std::size_t>(at - s.keywords.begin())] = value;
    }
  };
  if (!options.password.empty()) {
    set("password", options.password);
  }
  if (std::find(s.keywords.begin(), s.keywords.end(), "connect_timeout") == s.keywords.end()) {
    set("connect_timeout", std::to_string(std::max(options.connect_timeout_s, 1)));
  }
  if (std::find(s.keywords.begin(), s.keywords.end(), "application_name") == s.keywords.end()) {
    set("application_name", "mxgw");
  }
  return s;
}

}  // namespace

postgres_store::postgres_store(const postgres_options& options)
    : schema_(options.schema),
      max_batch_(std::max<std::size_t>(options.max_batch, 1)),
      reconnect_min_(std::max(options.reconnect_min, std::chrono::milliseconds(1))),
      reconnect_max_(std::max(options.reconnect_max, options.reconnect_min)),
      clock_(options.clock),
      writer_link_{pg_connection({}, {}, {}), {}, {}, false},
      reader_link_{pg_connection({}, {}, {}), {}, {}, false} {
  const connection_settings s = settings_for(options);
  writer_link_.conn = pg_connection(s.keywords, s.values, schema_);
  reader_link_.conn = pg_connection(s.keywords, s.values, schema_);

  // The writer's connection first: it creates the schema and runs the migrations.
  pg_connection& w = writer_link_.conn;
  db_error error;
  if (!w.connect(error)) {
    throw store_error("cannot connect to PostgreSQL: " + error.message);
  }
  const auto fail = [&w](const std::string& what, const db_error& e) {
    db_error ignored;
    w.exec_simple("ROLLBACK", ignored);
    throw store_error(what + ": " + e.message +
                      (e.sqlstate.empty() ? "" : " (" + e.sqlstate + ")"));
  };
  // Migrations run in one transaction under an advisory lock, so instances starting together
  // create the schema and migrate once; the version is read under the lock.
  if (!w.exec_simple("BEGIN", error) || !w.exec("SELECT pg_advisory_xact_lock($1)",
                                                {number(lock_key(schema_, lock_migrate))}, error)) {
    fail("cannot lock the schema for migration", error);
  }
  if (!schema_.empty()) {
    // Created only when missing, so a role that may use but not create schemas still works.
    const result_ptr r =
        w.exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {text(schema_)}, error);
    if (!r) {
      fail("cannot look the schema up", error);
    }
    if (PQntuples(r.get()) == 0) {
      char* quoted = PQescapeIdentifier(w.raw(), schema_.c_str(), schema_.size());
      const std::string create = std::string("CREATE SCHEMA ") + (quoted != nullptr ? quoted : "");
      PQfreemem(quoted);
      if (!w.exec_simple(create, error)) {
        fail("cannot create the schema " + schema_, error);
      }
    }
  }
  if (!w.exec_simple("CREATE TABLE IF NOT EXISTS mxgw_schema (version integer NOT NULL)", error)) {
    fail("cannot prepare the schema", error);
  }
  const result_ptr found = w.exec("SELECT max(version) FROM mxgw_schema", {}, error);
  if (!found) {
    fail("cannot read the schema version", error);
  }
  const std::int64_t version = PQgetisnull(found.get(), 0, 0) != 0 ? 0 : get_int(found.get(), 0, 0);
  if (version > postgres_schema_version) {
    db_error ignored;
    w.exec_simple("ROLLBACK", ignored);
    throw store_error("PostgreSQL schema version " + std::to_string(version) +
                      " is newer than this build of mxgw knows (" +
                      std::to_string(postgres_schema_version) +
                      "); run a newer mxgw or restore a matching database");
  }
  for (std::int64_t v = version + 1; v <= postgres_schema_version; ++v) {
    if (!w.exec_simple(migrations.at(static_cast<std::size_t>(v - 1)), error)) {
      fail("migration to schema version " + std::to_string(v) + " failed", error);
    }
  }
  if (version < postgres_schema_version) {
    if (!w.exec_simple("DELETE FROM mxgw_schema", error) ||
        !w.exec("INSERT INTO mxgw_schema (version) VALUES ($1)", {number(postgres_schema_version)},
                error)) {
      fail("cannot record the schema version", error);
    }
  }
  if (!w.exec_simple("COMMIT", error)) {
    fail("cannot commit the migration", error);
  }
  // The chain's lock is named after the schema the tables really are in (an empty store.schema
  // and "public" are the same tables, so they must be the same lock).
  const result_ptr current = w.exec("SELECT current_schema()", {}, error);
  if (!current) {
    fail("cannot read the current schema", error);
  }
  chain_lock_ = lock_key(get_text(current.get(), 0, 0), lock_chain);
  if (!reader_link_.conn.connect(error)) {
    throw store_error("cannot connect to PostgreSQL: " + error.message);
  }
  start();
}

void postgres_store::start() {
  writer_ = std::thread([this] { writer_loop(); });
  writer_id_ = writer_.get_id();
  try {
    reader_ = std::thread([this] { reader_loop(); });
    reader_id_ = reader_.get_id();
  } catch (const std::system_error& e) {
    close_queues();
    writer_.join();
    throw store_error(std::string("cannot start the reader thread: ") + e.what());
  }
}

void postgres_store::submit(pending_write write) {
  const char* refusal = nullptr;
  {
    const std::lock_guard lock(write_mutex_);
    if (writes_closed_) {
      refusal = "stopped";
    } else if (!healthy_) {
      refusal = stop_reason();
    } else {
      try {
        writes_.push_back(std::move(write));
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

void postgres_store::submit_read(pending_read read) {
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

void postgres_store::close_queues() {
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

void postgres_store::stop() {
  const std::thread::id self = std::this_thread::get_id();
  if (self == writer_id_ || self == reader_id_) {
    close_queues();
    return;
  }
  const std::lock_guard lock(stop_mutex_);
  if (stopped_) {
    return;
  }
  stopped_ = true;
  close_queues();
  if (writer_.joinable()) {
    writer_.join();
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  writer_link_.conn.drop();
  reader_link_.conn.drop();
}

postgres_store_stats postgres_store::stats() const {
  postgres_store_stats s;
  s.commits = commits_.load();
  s.records_committed = records_committed_.load();
  s.failed_batches = failed_batches_.load();
  s.retried_batches = retried_batches_.load();
  s.reconnects = reconnects_.load();
  s.largest_batch = largest_batch_.load();
  const std::lock_guard lock(write_mutex_);
  s.queued = writes_.size();
  return s;
}

bool postgres_store::ensure_connected(link& l, const char* which) {
  if (l.conn.connected()) {
    return true;
  }
  const auto t = std::chrono::steady_clock::now();
  if (t < l.next_attempt) {
    return false;  // backing off: answer `unavailable` at once instead of waiting
  }
  db_error error;
  if (l.conn.connect(error)) {
    l.backoff = std::chrono::milliseconds(0);
    if (l.lost) {
      l.lost = false;
      reconnects_.fetch_add(1);
      log_quietly(log::level::warn, {.event = "store.reconnected", .detail = which});
    }
    return true;
  }
  connection_failed(l, error, which);
  return false;
}

void postgres_store::connection_failed(link& l, const db_error& e, const char* which) {
  l.conn.drop();
  l.backoff = l.backoff.count() == 0 ? reconnect_min_ : std::min(l.backoff * 2, reconnect_max_);
  l.next_attempt = std::chrono::steady_clock::now() + l.backoff;
  if (!l.lost) {
    // Logged once per loss: libpq's first line names host and port, never the password.
    l.lost = true;
    log_quietly(log::level::error, {.event = "store.connection_lost",
                                    .outcome = "unavailable",
                                    .reason = which,
                                    .detail = e.message});
  }
}

// ---- writer thread ----

void postgres_store::writer_loop() {
  std::vector<pending_write> batch;
  for (;;) {
    {
      std::unique_lock lock(write_mutex_);
      write_cv_.wait(lock, [this] { return !writes_.empty() || writes_closed_; });
      if (writes_.empty()) {
        return;
      }
      const auto take = static_cast<std::ptrdiff_t>(std::min(writes_.size(), max_batch_));
      std::move(writes_.begin(), writes_.begin() + take, std::back_inserter(batch));
      writes_.erase(writes_.begin(), writes_.begin() + take);
    }
    commit_batch(batch);
    batch.clear();
  }
}

result_ptr postgres_store::run(const char* sql, const std::vector<param>& params) {
  db_error error;
  result_ptr r = writer_link_.conn.exec(sql, params, error);
  if (!r) {
    throw batch_failure{std::move(error)};
  }
  return r;
}

void postgres_store::commit_batch(std::vector<pending_write>& batch) {
  const char* failure = nullptr;
  if (!healthy_) {
    failure = stop_reason();
  } else if (!ensure_connected(writer_link_, "writer")) {
    failure = "store-unreachable";
  } else {
    // A deadlock with another instance's batch is not an error of this batch: run it again.
    constexpr int most_runs = 4;
    for (int run_no = 1;; ++run_no) {
      db_error error;
      try {
        write_batch(batch);
        break;
      } catch (const batch_failure& f) {
        error = f.error;
      } catch (...) {
        error = {"", "out of memory", false};
      }
      for (auto& write : batch) {
        write.committed = false;
      }
      if (!error.connection_lost) {
        db_error ignored;
        writer_link_.conn.exec_simple("ROLLBACK", ignored);
      }
      if (is_retryable(error) && run_no < most_runs) {
        retried_batches_.fetch_add(1);
        continue;
      }
      failure = failure_reason(error);
      if (is_fatal(error)) {
        if (error.schema_newer) {
          stopped_because_ = failure;
        }
        healthy_ = false;
      }
      failed_batches_.fetch_add(1);
      if (error.connection_lost) {
        // A COMMIT cut off may or may not have happened: the batch is answered `unavailable`,
        // and a resent message is then `stored` or `duplicate` with its first acceptedAt.
        connection_failed(writer_link_, error, "writer");
      } else {
        log_quietly(healthy_ ? log::level::error : log::level::critical,
                    {.event = healthy_ ? "store.batch_failed" : "store.fail_stop",
                     .outcome = "unavailable",
                     .reason = failure,
                     .detail = error.sqlstate.empty() ? error.message
                                                      : error.sqlstate + ": " + error.message});
      }
      break;
    }
  }
  bool due = false;
  for (auto& write : batch) {
    if (write.committed) {
      if (const auto* a = std::get_if<accept_write>(&write.work)) {
        due = due || (a->result.outcome == accept_outcome::stored &&
                      std::any_of(a->record.deliveries.begin(), a->record.deliveries.end(),
                                  [](const delivery_plan& plan) { return plan.hold.empty(); }));
      } else if (const auto* r = std::get_if<replay_write>(&write.work)) {
        due = due || (r->found && !r->discard_reason);
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

void postgres_store::notify_deliveries_due() {
  std::function<void()> callback;
  {
    const std::lock_guard lock(due_mutex_);
    callback = deliveries_due_;
  }
  call_quietly(callback);
}

void postgres_store::write_batch(std::vector<pending_write>& batch) {
  // A newer mxgw may have migrated the schema while this one runs (instances upgraded one by
  // one). What it stores from then on may mean something this build would ignore or misread, so
  // this build writes no more: it stops as after corruption, from the first batch that begins
  // after the migration committed.
  {
    db_error error;
    const result_ptr r = writer_link_.conn.query_simple(begin_reading_schema_version_sql, error);
    if (!r) {
      throw batch_failure{std::move(error)};
    }
    const std::int64_t found = PQgetisnull(r.get(), 0, 0) != 0 ? 0 : get_int(r.get(), 0, 0);
    if (found > postgres_schema_version) {
      throw batch_failure{db_error{
          .sqlstate = {},
          .message = "schema version " + std::to_string(found) +
                     " is newer than this build of mxgw knows (" +
                     std::to_string(postgres_schema_version) +
                     "); a newer mxgw migrated the schema, so this one writes no more: restart "
                     "this instance with the newer build",
          .connection_lost = false,
          .schema_newer = true}};
    }
  }
  const time_point batch_time = now();
  const std::string at = format_rfc3339_ms(batch_time);
  const std::int64_t now_ms = to_ms(batch_time);
  // First phase, in queue order: everything that touches messages and deliveries. The audit
  // records of writes that took effect are only noted here.
  for (auto& write : batch) {
    write.audit = nullptr;
    std::visit(
        [&](auto& w) {
          using kind = std::decay_t<decltype(w)>;
          if constexpr (std::is_same_v<kind, accept_write>) {
            write_record(write, w, at, now_ms);
          } else if constexpr (std::is_same_v<kind, claim_write>) {
            write_claim(w, now_ms);
          } else if constexpr (std::is_same_v<kind, report_write>) {
            write_report(write, w, now_ms);
          } else if constexpr (std::is_same_v<kind, replay_write>) {
            write_replay(write, w, now_ms);
          } else if constexpr (std::is_same_v<kind, release_write>) {
            write_release(write, w, now_ms, at);
          } else if constexpr (std::is_same_v<kind, audit_write>) {
            write.audit = &w.records;
          } else if constexpr (std::is_same_v<kind, purge_write>) {
            write_purge(write, w, now_ms);
          } else if constexpr (std::is_same_v<kind, rewrite_write>) {
            write_rewrite(w);
          } else if constexpr (std::is_same_v<kind, rekey_write>) {
            write_rekey(w);
          }
        },
        write.work);
  }
  // Second phase: the chain, checkpoints and state, under the advisory lock (see
  // write_chain_phase), then COMMIT, which releases the lock.
  write_chain_phase(batch, at);
  run("COMMIT", {});

  std::size_t carried = batch.size();
  std::uint64_t answered = 0;
  for (auto& write : batch) {
    write.committed = true;
    if (const auto* a = std::get_if<accept_write>(&write.work)) {
      answered += a->result.outcome != accept_outcome::unavailable ? 1 : 0;
    }
  }
  commits_.fetch_add(1);
  records_committed_.fetch_add(answered);
  std::size_t largest = largest_batch_.load();
  while (carried > largest && !largest_batch_.compare_exchange_weak(largest, carried)) {
  }
}

void postgres_store::write_record(pending_write& write, accept_write& w, const std::string& at,
                                  std::int64_t now_ms) {
  const message_record& record = w.record;
  if (const char* invalid = invalid_record(record)) {
    // Judge the id first as SQLite does: a duplicate of a stored message stays a duplicate.
    const result_ptr r = run(select_existing_sql, {text(record.id)});
    if (PQntuples(r.get()) == 0) {
      log_quietly(log::level::error,
                  {.event = "store.invalid_record", .outcome = "unavailable", .reason = invalid});
      w.result = unavailable("invalid-record");
      return;
    }
  } else if (!record.withdraws.empty() && lock_message_id(record.withdraws) &&
             !record.original_seen &&
             PQntuples(
                 run(original_exists_sql, {text(record.withdraws), text(record.sender)}).get()) ==
                 1 &&
             PQntuples(run(select_existing_sql, {text(record.id)}).get()) == 0) {
    // A withdrawal routed without its original, which is stored now (committed after the
    // look-up, by any instance): its copies may be out, so routing must see it. Nothing written.
    w.result = accept_result{accept_outcome::reroute, {}, {}};
    return;
  } else {
    const std::string_view state = record.deliveries.empty() ? "undeliverable" : "accepted";
    const result_ptr inserted =
        run(insert_message_sql,
            {text(record.id), text(record.sender), text(record.type), text(record.created),
             text(at), text(record.body_sha256), bytes(record.body), text(state),
             bytes(record.facts), number_or_null(expires_ms(record.expires_at))});
    if (PQntuples(inserted.get()) == 1) {
      // Its sender withdrew it before it arrived: stored withdrawn, as if the withdrawal had come
      // after it (marked with the withdrawal's time, every copy 'withdrawn' without its payload,
      // no person keys); the withdrawal kept for it is used up.
      const result_ptr early =
          run(take_early_withdrawal_sql, {text(record.id), text(record.sender)});
      const bool withdrawn = PQntuples(early.get()) == 1;
      std::string withdrawn_by;
      if (withdrawn) {
        run(mark_withdrawn_sql, {text(record.id), text(record.sender),
                                 number(std::stoll(get_text(early.get(), 0, 1)))});
        withdrawn_by = get_text(early.get(), 0, 0);
      }
      // The approvals a held copy's release needs under the routing in force, asked once.
      std::optional<std::int64_t> approvals_now;
      for (const auto& plan : record.deliveries) {
        std::int64_t approvals_required = 0;
        if (!plan.hold.empty()) {
          if (plan.approvals_required != 0) {
            approvals_required = clamp_to_int64(plan.approvals_required);
          } else {
            if (!approvals_now) {
              approvals_now = approvals_when_held_now();
            }
            approvals_required = *approvals_now;
          }
        }
        std::string_view copy_state = plan.hold.empty() ? "pending" : "held";
        if (withdrawn) {
          copy_state = "withdrawn";
        }
        run(insert_delivery_sql,
            {text(record.id), text(plan.recipient), text(plan.decided_by),
             bytes(withdrawn ? std::string_view() : std::string_view(plan.payload)),
             text(plan.withheld.empty() ? std::string_view("[]") : plan.withheld), number(now_ms),
             text(plan.payload_is_body && !withdrawn ? "true" : "false"), text(copy_state),
             text(plan.hold), text(relies_on_column(plan.relies_on)), number(approvals_required)});
      }
      for (const auto& e : record.exclusions) {
        run(insert_exclusion_sql,
            {text(record.id), text(e.partner), text(e.considered), text(e.reason)});
      }
      if (!record.person_keys.empty() && !withdrawn) {
        std::vector<std::string> digests;
        std::vector<std::string> kinds;
        std::vector<std::string> pointers;
        for (const auto& key : record.person_keys) {
          digests.push_back(lower_hex(reinterpret_cast<const unsigned char*>(key.digest.data()),
                                      key.digest.size()));
          kinds.push_back(key.kind);
          pointers.push_back(key.pointer);
        }
        run(insert_person_keys_sql, {text(record.id), text(text_array(digests)),
                                     text(text_array(kinds)), text(text_array(pointers))});
      }
      if (!record.withdraws.empty()) {
        // The original is marked withdrawn first (its row lock orders this against a batch of
        // rekey_persons), its copies not yet out are taken back, and its persons are matched no
        // more (all of its keys, whatever the state of its copies).
        if (affected(run(mark_withdrawn_sql,
                         {text(record.withdraws), text(record.sender), number(now_ms)})) == 0) {
          // The original is not stored (yet): it will be stored withdrawn when it comes.
          run(insert_early_withdrawal_sql,
              {text(record.withdraws), text(record.sender), text(record.id), number(now_ms)});
        }
        run(withdraw_sql, {text(record.withdraws), text(record.sender)});
        run(withdraw_person_keys_sql, {text(record.withdraws), text(record.sender)});
      }
      w.result = accept_result{accept_outcome::stored, at, {}};
      write.audit = &record.audit;
      if (withdrawn) {
        // The accept's entry says which withdrawal took it back (a copy: a batch may run again).
        w.audit_copy = record.audit;
        for (auto& entry : w.audit_copy) {
          if (entry.event == "message.accepted") {
            entry.details.emplace_back("withdrawnBy", withdrawn_by);
          }
        }
        write.audit = &w.audit_copy;
        w.result.withdrawn_by = std::move(withdrawn_by);
      }
      return;
    }
  }
  // The id exists: committed by an earlier batch or another instance (ON CONFLICT waited for
  // it), or inserted earlier in this very transaction. Judge the record against that row.
  const result_ptr r = run(select_existing_sql, {text(record.id)});
  if (PQntuples(r.get()) == 0) {
    // Cannot happen under READ COMMITTED (the conflicting row committed); fail safe.
    throw batch_failure{{"", "the conflicting message row vanished", false}};
  }
  if (get_text(r.get(), 0, 0) == record.sender && get_text(r.get(), 0, 1) == record.body_sha256) {
    w.result = accept_result{accept_outcome::duplicate, get_text(r.get(), 0, 2), {}};
  } else {
    w.result = accept_result{accept_outcome::conflict, {}, {}};
  }
}

void postgres_store::write_claim(claim_write& w, std::int64_t now_ms) {
  w.jobs.clear();  // a batch may run again (deadlock retry)
  if (w.max_jobs == 0) {
    return;
  }
  std::vector<std::string> capped;
  std::vector<std::int64_t> caps;
  std::vector<std::string> allowed;  // capped recipients that may be given rows
  for (const auto& c : w.caps) {
    capped.push_back(c.recipient);
    caps.push_back(clamp_to_int64(c.max_jobs));
    if (c.max_jobs > 0) {
      allowed.push_back(c.recipient);
    }
  }
  if (!allowed.empty()) {
    // Another instance claiming for a recipient right now: nothing for it in this claim (its
    // leases may not be counted yet); the next claim takes it up. w.caps stays as given, for a
    // batch run again after a deadlock. (w.caps is sorted by recipient: claim_due.)
    const result_ptr busy = run(claim_lock_recipients_sql, {text(text_array(allowed))});
    for (int i = 0; i < PQntuples(busy.get()); ++i) {
      const std::string recipient = get_text(busy.get(), i, 0);
      const auto at = std::lower_bound(capped.begin(), capped.end(), recipient);
      if (at != capped.end() && *at == recipient) {
        caps[static_cast<std::size_t>(at - capped.begin())] = 0;
      }
    }
  }
  const result_ptr candidates =
      run(claim_candidates_sql, {number(now_ms), number(clamp_to_int64(w.max_jobs)),
                                 text(text_array(capped)), text(int_array(caps)), text(w.owner)});
  const int n = PQntuples(candidates.get());
  if (n == 0) {
    return;
  }
  std::vector<std::int64_t> rids;
  std::map<std::int64_t, std::size_t> order;  // rid -> position in the fair order
  for (int i = 0; i < n; ++i) {
    rids.push_back(get_int(candidates.get(), i, 0));
    order.emplace(rids.back(), static_cast<std::size_t>(i));
  }
  const std::int64_t lease_ms = std::max<std::int64_t>(w.lease.count(), 0);
  const std::int64_t lease_expires = lease_ms > std::numeric_limits<std::int64_t>::max() - now_ms
                                         ? std::numeric_limits<std::int64_t>::max()
                                         : now_ms + lease_ms;
  const result_ptr leased = run(claim_lease_sql, {text(int_array(rids)), number(now_ms),
                                                  text(w.owner), number(lease_expires)});
  std::vector<std::pair<std::size_t, delivery_job>> jobs;
  const int m = PQntuples(leased.get());
  for (int i = 0; i < m; ++i) {
    const PGresult* r = leased.get();
    delivery_job job;
    job.message_id = get_text(r, i, 1);
    job.recipient = get_text(r, i, 2);
    job.payload = get_bytes(r, i, 3);
    job.attempt = static_cast<int>(get_int(r, i, 4));  // already attempts + 1
    job.sender = get_text(r, i, 5);
    job.type = get_text(r, i, 6);
    job.accepted_at = parse_rfc3339(get_text(r, i, 7)).value_or(time_point{});
    job.payload_is_body = get_bool(r, i, 8);
    job.body_grant = get_bytes(r, i, 9);
    if (PQgetisnull(r, i, 10) == 0) {
      job.released_at = from_ms(get_int(r, i, 10));
    }
    if (PQgetisnull(r, i, 11) == 0) {
      job.expires_at = from_ms(get_int(r, i, 11));
    }
    if (get_bool(r, i, 12)) {
      continue;  // taken back: its message was withdrawn while it was in flight
    }
    job.relies_on = relies_on_of(get_text(r, i, 13));
    jobs.emplace_back(order[get_int(r, i, 0)], std::move(job));
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [position, job] : jobs) {
    w.jobs.push_back(std::move(job));
  }
}

void postgres_store::write_report(pending_write& write, report_write& w, std::int64_t now_ms) {
  const attempt_report& report = w.report;
  const char* sql = nullptr;
  std::int64_t when = now_ms;
  std::string_view detail = bounded_text(report.error, max_error_bytes);
  switch (report.result) {
    case attempt_result::delivered:
      sql = report_delivered_sql;
      detail = bounded_text(report.receipt, max_receipt_bytes);
      break;
    case attempt_result::retry:
      sql = report.attempted ? report_retry_sql : report_give_back_sql;
      when = to_ms(report.next_attempt_at);
      break;
    case attempt_result::dead:
      sql = report.attempted ? report_dead_sql : report_dead_untried_sql;
      break;
  }
  if (sql == nullptr) {
    throw batch_failure{{"", "unknown attempt result", false}};
  }
  const result_ptr r =
      run(sql, {text(report.message_id), text(report.recipient), text(report.owner), number(when),
                bytes(detail), number(report.attempt)});
  if (affected(r) > 0) {
    write.audit = &report.audit;  // only a report that took effect is audited
  }
}

void postgres_store::write_replay(pending_write& write, replay_write& w, std::int64_t now_ms) {
  w.found = false;
  const result_ptr r =
      w.discard_reason ? run(discard_sql, {text(w.message_id), text(w.recipient),
                                           bytes(bounded_text(*w.discard_reason, max_error_bytes))})
                       : run(replay_sql, {text(w.message_id), text(w.recipient), number(now_ms)});
  w.found = affected(r) > 0;
  if (w.found) {
    write.audit = &w.audit;
  }
}

void postgres_store::write_release(pending_write& write, release_write& w, std::int64_t now_ms,
                                   const std::string& at) {
  w.result = {};  // a batch may run again (deadlock retry)
  w.audit.clear();
  const release_request& request = w.request;
  const result_ptr held =
      run(select_held_for_release_sql, {text(request.message_id), text(request.recipient)});
  if (PQntuples(held.get()) == 0) {
    return;  // not_held: nothing written, nothing audited
  }
  const std::int64_t rid = get_int(held.get(), 0, 0);
  release_step step =
      decide_held(request, get_text(held.get(), 0, 1), get_int(held.get(), 0, 2), at);
  w.result = std::move(step.result);
  switch (w.result.outcome) {
    case release_outcome::already_approved:
    case release_outcome::not_held: return;
    case release_outcome::rejected:
      run(reject_held_sql, {number(rid), bytes(bounded_text(request.reason, max_error_bytes))});
      break;
    case release_outcome::approved:
      run(approve_held_sql, {number(rid), text(step.approvals_column)});
      break;
    case release_outcome::released:
      run(release_held_sql, {number(rid), text(step.approvals_column), number(now_ms)});
      break;
  }
  w.audit = std::move(step.audit);
  write.audit = &w.audit;
}

void postgres_store::write_purge(pending_write& write, purge_write& w, std::int64_t now_ms) {
  w.result = {};  // a batch may run again (deadlock retry)
  w.audit.clear();
  const std::int64_t max_rows = clamp_to_int64(std::max<std::size_t>(w.cut.max_rows, 1));
  // Expired messages first, whatever their age; then what is past its time. Both count against
  // the same max_rows of each kind.
  std::size_t expired_payloads = 0;
  std::size_t expired_bodies = 0;
  if (w.cut.expired_before) {
    const std::int64_t expired_ms = to_ms(*w.cut.expired_before);
    expired_payloads = static_cast<std::size_t>(
        affected(run(purge_expired_payloads_sql, {number(expired_ms), number(max_rows)})));
    expired_bodies = static_cast<std::size_t>(get_int(
        run(purge_expired_bodies_sql, {number(expired_ms), number(max_rows), number(now_ms)}).get(),
        0, 0));
  }
  std::size_t payloads = 0;
  if (const std::int64_t left = max_rows - clamp_to_int64(expired_payloads); left > 0) {
    payloads = static_cast<std::size_t>(
        affected(run(purge_payloads_sql, {number(to_ms(w.cut.delivered_before)),
                                          number(to_ms(w.cut.dead_before)), number(left)})));
  }
  const std::string delivered_before = format_rfc3339_ms(w.cut.delivered_before);
  std::size_t bodies = 0;
  if (const std::int64_t left = max_rows - clamp_to_int64(expired_bodies); left > 0) {
    bodies = static_cast<std::size_t>(get_int(
        run(purge_bodies_sql, {text(delivered_before), number(left), number(now_ms)}).get(), 0, 0));
  }
  w.result.payloads = expired_payloads + payloads;
  w.result.bodies = expired_bodies + bodies;
  w.result.expired = expired_payloads + expired_bodies;
  if (w.result.payloads == 0 && w.result.bodies == 0) {
    return;
  }
  std::vector<std::pair<std::string, std::string>> details = {
      {"payloads", std::to_string(w.result.payloads)},
      {"bodies", std::to_string(w.result.bodies)},
      {"deliveredBefore", delivered_before},
      {"deadBefore", format_rfc3339_ms(w.cut.dead_before)}};
  if (w.cut.expired_before) {
    details.emplace_back("expired", std::to_string(w.result.expired));
  }
  w.audit.push_back({.event = "retention.purged",
                     .actor = w.cut.actor,
                     .partner = {},
                     .message_id = {},
                     .details = std::move(details)});
  write.audit = &w.audit;
}

void postgres_store::write_rewrite(rewrite_write& w) {
  w.result = {};  // a batch may run again (deadlock retry)
  w.failed = false;
  // A savepoint of its own: a rewriter that throws undoes its own changes, not the accepts and
  // reports it shares the transaction with.
  run("SAVEPOINT rewrite_values", {});
  const std::int64_t most = clamp_to_int64(std::max<std::size_t>(w.max_messages, 1));
  std::vector<stored_value> values;
  {
    const result_ptr r = run(select_rewrite_messages_sql, {text(w.after_id), number(most)});
    const int rows = PQntuples(r.get());
    for (int i = 0; i < rows; ++i) {
      w.result.last_id = get_text(r.get(), i, 0);
      std::string body = get_bytes(r.get(), i, 1);
      if (!body.empty()) {
        values.push_back({w.result.last_id, {}, std::move(body), value_field::body});
      }
      if (std::string facts = get_bytes(r.get(), i, 2); !facts.empty()) {
        values.push_back({w.result.last_id, {}, std::move(facts), value_field::facts});
      }
    }
    w.result.messages = static_cast<std::size_t>(rows);
  }
  if (w.result.messages > 0) {
    const result_ptr r =
        run(select_rewrite_payloads_sql, {text(w.after_id), text(w.result.last_id)});
    const int rows = PQntuples(r.get());
    for (int i = 0; i < rows; ++i) {
      const std::string id = get_text(r.get(), i, 0);
      const std::string recipient = get_text(r.get(), i, 1);
      if (get_bool(r.get(), i, 3)) {
        values.push_back({id, recipient, get_bytes(r.get(), i, 2), value_field::payload});
      }
      if (std::string receipt = get_bytes(r.get(), i, 4); !receipt.empty()) {
        values.push_back({id, recipient, std::move(receipt), value_field::receipt});
      }
      if (std::string error = get_bytes(r.get(), i, 5); !error.empty()) {
        values.push_back({id, recipient, std::move(error), value_field::error});
      }
    }
  }
  w.result.values = values.size();
  for (const auto& value : values) {
    std::optional<std::string> replacement;
    try {
      replacement = w.rewriter(value);
    } catch (...) {
      w.failed = true;  // the caller's failure, not the store's: only this part is undone
      break;
    }
    if (!replacement || *replacement == value.bytes) {
      continue;
    }
    const char* update = update_payload_sql;
    switch (value.field) {
      case value_field::body:
        run(update_body_sql, {text(value.message_id), bytes(*replacement)});
        update = nullptr;
        break;
      case value_field::facts:
        run(update_facts_sql, {text(value.message_id), bytes(*replacement)});
        update = nullptr;
        break;
      case value_field::payload: break;
      case value_field::receipt: update = update_receipt_sql; break;
      case value_field::error: update = update_error_sql; break;
    }
    if (update != nullptr) {
      run(update, {text(value.message_id), text(value.recipient), bytes(*replacement)});
    }
    ++w.result.rewritten;
  }
  if (w.failed) {
    w.result = {};
    run("ROLLBACK TO SAVEPOINT rewrite_values", {});
  }
  run("RELEASE SAVEPOINT rewrite_values", {});
}

void postgres_store::write_rekey(rekey_write& w) {
  w.result = {};  // a batch may run again (deadlock retry)
  w.failed = false;
  // A savepoint of its own, as for rewrite_values: a keyer that throws undoes its own changes,
  // not the accepts and reports it shares the transaction with.
  run("SAVEPOINT rekey_persons", {});
  const std::int64_t most = clamp_to_int64(std::max<std::size_t>(w.max_messages, 1));
  const result_ptr r =
      run(select_rekey_messages_sql, {text(w.after_id), number(most), number(to_ms(now()))});
  const int rows = PQntuples(r.get());
  std::vector<std::string> replaced;  // messages whose keys go: not shown, or newly keyed
  std::vector<std::string> key_ids;
  std::vector<std::string> digests;
  std::vector<std::string> kinds;
  std::vector<std::string> pointers;
  for (int i = 0; i < rows && !w.failed; ++i) {
    std::string id = get_text(r.get(), i, 0);
    w.result.last_id = id;
    ++w.result.messages;
    if (!get_bool(r.get(), i, 2)) {
      replaced.push_back(std::move(id));  // its body is gone or it was withdrawn: no keys
      continue;
    }
    std::optional<std::vector<person_key>> keys;
    try {
      keys = w.keyer(id, get_bytes(r.get(), i, 1));
    } catch (...) {
      w.failed = true;  // the caller's failure, not the store's: only this part is undone
      break;
    }
    if (!keys) {
      continue;  // its keys are left as they are
    }
    for (const auto& key : *keys) {
      key_ids.push_back(id);
      digests.push_back(
          lower_hex(reinterpret_cast<const unsigned char*>(key.digest.data()), key.digest.size()));
      kinds.push_back(key.kind);
      pointers.push_back(key.pointer);
    }
    replaced.push_back(std::move(id));
    ++w.result.rekeyed;
  }
  if (!w.failed && !replaced.empty()) {
    run(delete_rekeyed_keys_sql, {text(text_array(replaced))});
    if (!key_ids.empty()) {
      const result_ptr inserted =
          run(insert_rekeyed_keys_sql, {text(text_array(key_ids)), text(text_array(digests)),
                                        text(text_array(kinds)), text(text_array(pointers))});
      w.result.keys = static_cast<std::size_t>(affected(inserted));
    }
  }
  if (w.failed) {
    w.result = {};
    run("ROLLBACK TO SAVEPOINT rekey_persons", {});
  }
  run("RELEASE SAVEPOINT rekey_persons", {});
}

void postgres_store::write_chain_phase(std::vector<pending_write>& batch, const std::string& at) {
  const bool needed = std::any_of(batch.begin(), batch.end(), [](const pending_write& w) {
    return (w.audit != nullptr && !w.audit->empty()) ||
           std::holds_alternative<checkpoint_write>(w.work) ||
           std::holds_alternative<state_write>(w.work);
  });
  if (!needed) {
    return;
  }
  // One lock for the chain and the state versions, taken only now, after every row lock of the
  // first phase: a transaction that holds it never waits for another instance's rows, so it
  // cannot take part in a deadlock. It is held until COMMIT, so the next instance reads the head
  // (and the highest state version) this transaction committed: one chain, versions committed
  // in order (a poller of list_state never skips a version that commits late).
  run(lock_sql, {number(chain_lock_)});
  std::optional<std::pair<std::int64_t, std::string>> head;
  const auto chain_head = [&]() -> std::pair<std::int64_t, std::string>& {
    if (!head) {
      const result_ptr r = run(select_audit_head_sql, {});
      head = PQntuples(r.get()) == 1
                 ? std::make_pair(get_int(r.get(), 0, 0), get_text(r.get(), 0, 1))
                 : std::make_pair(std::int64_t{0}, std::string(audit::genesis_hash()));
    }
    return *head;
  };
  for (auto& write : batch) {
    if (auto* c = std::get_if<checkpoint_write>(&write.work)) {
      const audit::checkpoint& k = c->checkpoint;
      const result_ptr r = run(insert_checkpoint_sql, {number(k.seq), text(k.hash), text(k.at),
                                                       text(k.signer), text(k.signature)});
      c->added = affected(r) > 0;  // one checkpoint per seq; a second is refused, not an error
      continue;
    }
    if (auto* s = std::get_if<state_write>(&write.work)) {
      write_state(*s, at, chain_head);
      continue;
    }
    if (write.audit != nullptr && !write.audit->empty()) {
      append_rows(*write.audit, at, chain_head());
    }
  }
}

// Under the chain lock: every expected version is checked before anything is written, so one that
// does not match stores none of the puts (and none of the audit records); then one version each,
// in the order given. A failed statement throws and the whole batch is rolled back.
void postgres_store::write_state(
    state_write& w, const std::string& at,
    const std::function<std::pair<std::int64_t, std::string>&()>& chain_head) {
  w.outcome = put_outcome::failed;
  w.versions.clear();
  if (w.puts.empty() || repeats_an_item(w.puts)) {
    return;  // nothing written; the rest of the batch goes on
  }
  bool all_match = true;
  for (const state_put& put : w.puts) {
    std::int64_t current = 0;
    bool exists = false;
    const result_ptr r = run(select_state_version_sql, {text(put.item.kind), text(put.item.key)});
    if (PQntuples(r.get()) == 1) {
      current = get_int(r.get(), 0, 0);
      exists = !get_bool(r.get(), 0, 1);  // a deleted item keeps an empty tombstone
    }
    const bool matches = !put.expected_version ||
                         (*put.expected_version == 0 ? !exists : *put.expected_version == current);
    all_match = all_match && matches;
    w.versions.push_back(current);
  }
  if (!all_match) {
    w.outcome = put_outcome::conflict;
    return;
  }
  const result_ptr max = run(select_max_state_version_sql, {});
  std::int64_t next = get_int(max.get(), 0, 0) + 1;
  for (std::size_t i = 0; i < w.puts.size(); ++i, ++next) {
    state_put& put = w.puts[i];
    run(upsert_state_sql, {text(put.item.kind), text(put.item.key), text(put.item.value),
                           number(next), text(at), text(put.item.changed_by)});
    put.item.version = next;
    put.item.changed_at = at;
    w.versions[i] = next;
  }
  w.outcome = put_outcome::applied;
  if (!w.audit.empty()) {
    append_rows(w.audit, at, chain_head());
  }
}

void postgres_store::append_rows(const std::vector<audit::audit_record>& records,
                                 const std::string& at,
                                 std::pair<std::int64_t, std::string>& head) {
  for (const auto& record : records) {
    const audit::audit_row row = audit::make_row(head.first + 1, at, record, head.second);
    run(insert_audit_sql,
        {number(row.seq), text(row.at), text(row.event), text(row.actor), text(row.partner),
         text(row.message_id), bytes(row.entry), text(row.hash)});
    head = {row.seq, row.hash};
  }
}

// ---- reader thread ----

void postgres_store::reader_loop() {
  for (;;) {
    std::optional<pending_read> job;
    {
      std::unique_lock lock(read_mutex_);
      read_cv_.wait(lock, [this] { return !reads_.empty() || reads_closed_; });
      if (reads_.empty()) {
        return;
      }
      job.emplace(std::move(reads_.front()));
      reads_.pop_front();
    }
    serve(*job);
  }
}

result_ptr postgres_store::read_query(const char* sql, const std::vector<param>& params) {
  db_error error;
  result_ptr r = reader_link_.conn.exec(sql, params, error);
  if (!r) {
    throw batch_failure{std::move(error)};
  }
  return r;
}

std::vector<audit::audit_row> postgres_store::audit_rows(const PGresult* r) {
  std::vector<audit::audit_row> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    audit::audit_row row;
    row.seq = get_int(r, i, 0);
    row.at = get_text(r, i, 1);
    row.event = get_text(r, i, 2);
    row.actor = get_text(r, i, 3);
    row.partner = get_text(r, i, 4);
    row.message_id = get_text(r, i, 5);
    row.entry = get_bytes(r, i, 6);
    row.hash = get_text(r, i, 7);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::optional<message_status> postgres_store::read_status(const std::string& id) {
  // One snapshot for the message, its delivery rows and its exclusions.
  read_query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {});
  std::optional<message_status> status;
  const result_ptr m = read_query(select_status_sql, {text(id)});
  if (PQntuples(m.get()) == 1) {
    status.emplace();
    status->id = get_text(m.get(), 0, 0);
    status->sender = get_text(m.get(), 0, 1);
    status->type = get_text(m.get(), 0, 2);
    status->created = get_text(m.get(), 0, 3);
    status->accepted_at = get_text(m.get(), 0, 4);
    status->state = get_text(m.get(), 0, 5);
    status->body_sha256 = get_text(m.get(), 0, 6);
    const result_ptr d = read_query(select_recipients_sql, {text(id)});
    for (int i = 0; i < PQntuples(d.get()); ++i) {
      const PGresult* r = d.get();
      recipient_status s;
      s.recipient = get_text(r, i, 0);
      s.decided_by = get_text(r, i, 1);
      s.state = get_text(r, i, 2);
      s.attempts = static_cast<int>(get_int(r, i, 3));
      if (s.state == "pending" || s.state == "retrying") {
        s.next_attempt_at = from_ms(get_int(r, i, 4));
      }
      s.last_error = get_bytes(r, i, 5);
      if (PQgetisnull(r, i, 6) == 0) {
        s.delivered_at = from_ms(get_int(r, i, 6));
      }
      s.receipt = get_bytes(r, i, 7);
      s.withheld = get_text(r, i, 8);
      s.hold = get_text(r, i, 9);
      status->recipients.push_back(std::move(s));
    }
    const result_ptr x = read_query(select_exclusions_sql, {text(id)});
    for (int i = 0; i < PQntuples(x.get()); ++i) {
      status->exclusions.push_back(
          {get_text(x.get(), i, 0), get_text(x.get(), i, 1), get_text(x.get(), i, 2)});
    }
  }
  read_query("COMMIT", {});
  return status;
}

std::optional<std::vector<person_match>> postgres_store::read_person_matches(
    const matches_read& job) {
  // One snapshot for "not stored" and the matches.
  read_query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {});
  std::optional<std::vector<person_match>> matches;
  if (PQntuples(read_query(select_message_exists_sql, {text(job.message_id)}).get()) == 1) {
    const result_ptr res =
        read_query(select_person_matches_sql,
                   {text(job.message_id), number(clamp_to_int64(job.limit)), number(to_ms(now()))});
    matches.emplace();
    for (int i = 0; i < PQntuples(res.get()); ++i) {
      const PGresult* p = res.get();
      matches->push_back({.pointer = get_text(p, i, 0),
                          .kind = get_text(p, i, 1),
                          .message_id = get_text(p, i, 2),
                          .other_pointer = get_text(p, i, 3),
                          .sender = get_text(p, i, 4),
                          .type = get_text(p, i, 5),
                          .accepted_at = get_text(p, i, 6)});
    }
  }
  read_query("COMMIT", {});
  return matches;
}

void postgres_store::serve(pending_read& read) {
  if (!healthy_ || !ensure_connected(reader_link_, "reader")) {
    fail_read(read);
    return;
  }
  try {
    std::visit(
        [this](auto& r) {
          using kind = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<kind, find_read>) {
            auto status = read_status(r.id);
            call_quietly(r.handler, std::move(status), true);
          } else if constexpr (std::is_same_v<kind, body_read>) {
            const result_ptr res = read_query(select_body_sql, {text(r.id)});
            std::optional<stored_body> found;
            if (PQntuples(res.get()) == 1) {
              found = stored_body{.sender = get_text(res.get(), 0, 0),
                                  .body = get_bytes(res.get(), 0, 1)};
            }
            call_quietly(r.handler, std::move(found), true);
          } else if constexpr (std::is_same_v<kind, dead_read>) {
            const result_ptr res = read_query(select_dead_sql, {number(clamp_to_int64(r.limit))});
            std::vector<dead_letter> dead;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              dead.push_back({get_text(p, i, 0), get_text(p, i, 1), get_text(p, i, 2),
                              get_text(p, i, 3), static_cast<int>(get_int(p, i, 4)),
                              get_bytes(p, i, 5), from_ms(get_int(p, i, 6))});
            }
            call_quietly(r.handler, std::move(dead), true);
          } else if constexpr (std::is_same_v<kind, audit_read>) {
            const result_ptr res = read_query(
                select_audit_sql, {number(r.after_seq), number(clamp_to_int64(r.limit))});
            call_quietly(r.handler, audit_rows(res.get()), true);
          } else if constexpr (std::is_same_v<kind, head_read>) {
            const result_ptr res = read_query(select_audit_last_sql, {});
            auto rows = audit_rows(res.get());
            std::optional<audit::audit_row> head;
            if (!rows.empty()) {
              head = std::move(rows.front());
            }
            call_quietly(r.handler, std::move(head), true);
          } else if constexpr (std::is_same_v<kind, checkpoints_read>) {
            const result_ptr res = read_query(select_checkpoints_sql, {});
            std::vector<audit::checkpoint> checkpoints;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              checkpoints.push_back({get_int(p, i, 0), get_text(p, i, 1), get_text(p, i, 2),
                                     get_text(p, i, 3), get_text(p, i, 4)});
            }
            call_quietly(r.handler, std::move(checkpoints), true);
          } else if constexpr (std::is_same_v<kind, register_read>) {
            const result_ptr res =
                read_query(select_register_sql, {text(r.from_month), text(r.to_month)});
            std::vector<transfer_count> rows;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              rows.push_back({get_text(p, i, 0), get_text(p, i, 1), get_text(p, i, 2),
                              get_text(p, i, 3), static_cast<std::size_t>(get_int(p, i, 4))});
            }
            call_quietly(r.handler, std::move(rows), true);
          } else if constexpr (std::is_same_v<kind, facts_read>) {
            const std::int64_t most = clamp_to_int64(std::max<std::size_t>(r.limit, 1));
            const result_ptr res = read_query(select_facts_sql, {text(r.since), text(r.after_time),
                                                                 text(r.after_id), number(most)});
            facts_page page;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              page.rows.push_back({get_text(p, i, 0), get_text(p, i, 1), get_text(p, i, 2),
                                   get_text(p, i, 3), get_bytes(p, i, 4)});
            }
            if (static_cast<std::int64_t>(page.rows.size()) >= most) {
              page.next = page.rows.back().accepted_at + "\n" + page.rows.back().id;
            }
            call_quietly(r.handler, std::move(page), true);
          } else if constexpr (std::is_same_v<kind, queue_read>) {
            const result_ptr res = read_query(select_queue_stats_sql, {});
            std::vector<queue_stat> stats;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              const auto count = [p, i](int c) {
                return static_cast<std::size_t>(get_int(p, i, c));
              };
              stats.push_back({.recipient = get_text(p, i, 0),
                               .held = count(7),
                               .pending = count(1),
                               .delivering = count(2),
                               .retrying = count(3),
                               .dead = count(4),
                               .delivered = count(5),
                               .discarded = count(6),
                               .rejected = count(8),
                               .oldest_waiting = get_text(p, i, 9)});
            }
            call_quietly(r.handler, std::move(stats), true);
          } else if constexpr (std::is_same_v<kind, held_read>) {
            const result_ptr res = read_query(select_held_sql, {number(clamp_to_int64(r.limit))});
            std::vector<held_copy> held;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              held.push_back({.message_id = get_text(p, i, 0),
                              .recipient = get_text(p, i, 1),
                              .sender = get_text(p, i, 2),
                              .type = get_text(p, i, 3),
                              .accepted_at = get_text(p, i, 4),
                              .hold = get_text(p, i, 5),
                              .approvals = parse_approvals(get_text(p, i, 6)),
                              .approvals_required = static_cast<std::size_t>(
                                  std::max<std::int64_t>(get_int(p, i, 7), 0))});
            }
            call_quietly(r.handler, std::move(held), true);
          } else if constexpr (std::is_same_v<kind, matches_read>) {
            auto matches = read_person_matches(r);
            call_quietly(r.handler, std::move(matches), true);
          } else if constexpr (std::is_same_v<kind, held_job_read>) {
            const result_ptr res =
                read_query(select_held_job_sql, {text(r.message_id), text(r.recipient)});
            std::optional<delivery_job> job;
            if (PQntuples(res.get()) == 1) {
              // The columns of a claim (write_claim), but nothing is leased: attempt 0.
              const PGresult* p = res.get();
              job.emplace();
              job->message_id = get_text(p, 0, 0);
              job->recipient = get_text(p, 0, 1);
              job->payload = get_bytes(p, 0, 2);
              job->attempt = 0;
              job->sender = get_text(p, 0, 4);
              job->type = get_text(p, 0, 5);
              job->accepted_at = parse_rfc3339(get_text(p, 0, 6)).value_or(time_point{});
              job->payload_is_body = get_bool(p, 0, 7);
              job->body_grant = get_bytes(p, 0, 8);
              if (PQgetisnull(p, 0, 9) == 0) {
                job->released_at = from_ms(get_int(p, 0, 9));
              }
              if (PQgetisnull(p, 0, 10) == 0) {
                job->expires_at = from_ms(get_int(p, 0, 10));
              }
              job->relies_on = relies_on_of(get_text(p, 0, 11));
            }
            call_quietly(r.handler, std::move(job), true);
          } else {
            const result_ptr res =
                read_query(select_state_sql, {number(r.after_version), text(r.kind)});
            std::vector<state_item> items;
            for (int i = 0; i < PQntuples(res.get()); ++i) {
              const PGresult* p = res.get();
              items.push_back({get_text(p, i, 0), get_text(p, i, 1), get_text(p, i, 2),
                               get_int(p, i, 3), get_text(p, i, 4), get_text(p, i, 5)});
            }
            call_quietly(r.handler, std::move(items), true);
          }
        },
        read);
  } catch (const batch_failure& f) {
    if (f.error.connection_lost) {
      connection_failed(reader_link_, f.error, "reader");
    } else {
      db_error ignored;
      reader_link_.conn.exec_simple("ROLLBACK", ignored);
      if (is_fatal(f.error)) {
        healthy_ = false;
      }
      log_quietly(log::level::error, {.event = "store.read_failed",
                                      .reason = failure_reason(f.error),
                                      .detail = f.error.sqlstate + ": " + f.error.message});
    }
    fail_read(read);
  } catch (...) {
    db_error ignored;
    reader_link_.conn.exec_simple("ROLLBACK", ignored);
    fail_read(read);
  }
}

// ---------------------------------------------------------------------------------------------
// Public functions

std::unique_ptr<message_store> open_postgres_store(const postgres_options& options) {
  return std::make_unique<postgres_store>(options);
}

postgres_store_stats postgres_stats(const message_store& store) {
  if (const auto* pg = dynamic_cast<const postgres_store*>(&store)) {
    return pg->stats();
  }
  return {};
}

bool dsn_has_password(const std::string& dsn) {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  bool has_password = false;
  parse_dsn(dsn, keywords, values, has_password);
  return has_password;
}

}  // namespace mxgw::store
