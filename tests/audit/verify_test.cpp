// Verification of the audit chain on a real SQLite file: an untouched log verifies, and each kind
// of tampering (edit, delete, reorder, truncate, forged checkpoint) fails and names the first bad
// entry.
#include <gtest/gtest.h>

#include "gateway/common/digest.hpp"
#include "tests/audit/audit_fixture.hpp"

namespace mxgw::audit::test {
namespace {

class Verify : public audit_fixture {
 protected:
  // SQL that changes entry `seq` and re-hashes and re-links it and every entry after it, as
  // someone with write access and no signing key would: the chain is consistent again.
  std::string rechained_from(std::int64_t seq) {
    const auto all = rows();
    std::string prev = all[static_cast<std::size_t>(seq - 2)].hash;
    std::string sql;
    for (auto i = static_cast<std::size_t>(seq - 1); i < all.size(); ++i) {
      auto entry = parse_entry(all[i].entry);
      EXPECT_TRUE(entry);
      if (!entry) {
        return {};
      }
      if (entry->seq == seq) {
        entry->record.details = {{"type", "hotline.tip"}};
      }
      const auto row = make_row(entry->seq, entry->at, entry->record, prev);
      sql += "UPDATE audit SET entry = '" + row.entry + "', hash = '" + row.hash +
             "' WHERE seq = " + std::to_string(row.seq) + ";";
      prev = row.hash;
    }
    return sql;
  }

  // 50 entries, checkpoints at 20, 40 and 50.
  void SetUp() override {
    audit_fixture::SetUp();
    append(1, 30);
    append(31, 50);
    checkpoint_at(20);
    checkpoint_at(40);
    checkpoint_at(50);
  }
};

TEST_F(Verify, AnUntouchedLogVerifies) {
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.entries, 50);
  EXPECT_EQ(r.head_seq, 50);
  EXPECT_EQ(r.head_hash, rows().back().hash);
  EXPECT_EQ(r.checkpoints, 3);
  EXPECT_EQ(r.last_checkpoint, 50);
  EXPECT_TRUE(r.problem.empty());
}

TEST_F(Verify, AnUntouchedLogVerifiesAcrossManySmallPages) {
  const auto r = verify({"gateway"}, 7);
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.entries, 50);
  EXPECT_EQ(r.checkpoints, 3);
}

TEST_F(Verify, AnEmptyLogVerifies) {
  close();
  std::filesystem::remove(db_path());
  open();
  const auto r = verify();
  EXPECT_TRUE(r.intact);
  EXPECT_EQ(r.entries, 0);
  EXPECT_EQ(r.head_hash, genesis_hash());
}

TEST_F(Verify, AnEditedEntryIsNamed) {
  tamper("UPDATE audit SET entry = replace(entry, 'vn-gialai', 'kh-kratie') WHERE seq = 17");
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.problem, "altered");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entry 17 was altered: its bytes no longer match its hash");
}

TEST_F(Verify, AnEditedEntryWithAFreshHashIsNamedByTheBrokenLink) {
  // The attacker also recomputes the entry's hash; the next entry still holds the old one.
  const auto original = rows()[16];
  const std::string forged = original.entry.substr(0, original.entry.find("\"details\"")) +
                             R"("details":{"type":"hotline.tip"},"prev":")" +
                             original.entry.substr(original.entry.find("\"prev\":\"") + 8);
  ASSERT_TRUE(parse_entry(forged).has_value()) << forged;
  tamper("UPDATE audit SET entry = '" + forged + "', hash = '" + sha256_hex(forged) +
         "' WHERE seq = 17");
  const auto r = verify();
  EXPECT_EQ(r.problem, "altered");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entry 17 was altered: entry 18 recorded a different hash for it");
}

TEST_F(Verify, AnEditedQueryColumnIsNamed) {
  tamper("UPDATE audit SET partner = 'kh-kratie' WHERE seq = 17");
  const auto r = verify();
  EXPECT_EQ(r.problem, "altered");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entry 17 was altered: its partner column differs from the hashed entry");
}

TEST_F(Verify, ADeletedEntryIsNamed) {
  tamper("DELETE FROM audit WHERE seq = 17");
  const auto r = verify();
  EXPECT_EQ(r.problem, "missing");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entry 17 is missing (16 is followed by 18)");
}

TEST_F(Verify, ADeletedEntryIsNamedEvenWhenTheRestWasRenumbered) {
  tamper("DELETE FROM audit WHERE seq = 17; UPDATE audit SET seq = seq - 1 WHERE seq > 17");
  const auto r = verify();
  EXPECT_EQ(r.problem, "missing");
  EXPECT_EQ(r.message, "entry 17 is missing (16 is followed by 18)");
}

TEST_F(Verify, DeletedEntriesAreNamedAsARange) {
  tamper("DELETE FROM audit WHERE seq BETWEEN 17 AND 19");
  const auto r = verify();
  EXPECT_EQ(r.problem, "missing");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entries 17 to 19 are missing (16 is followed by 20)");
}

TEST_F(Verify, ADeletedFirstEntryIsNamed) {
  tamper("DELETE FROM audit WHERE seq = 1");
  const auto r = verify();
  EXPECT_EQ(r.problem, "missing");
  EXPECT_EQ(r.seq, 1);
  EXPECT_EQ(r.message, "entry 1 is missing (the chain starts at 2)");
}

TEST_F(Verify, TwoSwappedEntriesAreNamed) {
  // Rows keep their seq column; their contents trade places.
  tamper(R"sql(
    CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq = 17;
    CREATE TEMP TABLE b AS SELECT * FROM audit WHERE seq = 18;
    UPDATE audit SET at = b.at, event = b.event, actor = b.actor, partner = b.partner,
           message_id = b.message_id, entry = b.entry, hash = b.hash FROM b WHERE audit.seq = 17;
    UPDATE audit SET at = a.at, event = a.event, actor = a.actor, partner = a.partner,
           message_id = a.message_id, entry = a.entry, hash = a.hash FROM a WHERE audit.seq = 18;
  )sql");
  const auto r = verify();
  EXPECT_EQ(r.problem, "out-of-order");
  EXPECT_EQ(r.seq, 17);
  EXPECT_EQ(r.message, "entries 17 and 18 are out of order");
}

TEST_F(Verify, TwoSwappedEntriesAcrossAPageBoundaryAreNamed) {
  tamper(R"sql(
    UPDATE audit SET seq = -1 WHERE seq = 21;
    UPDATE audit SET seq = 21 WHERE seq = 22;
    UPDATE audit SET seq = 22 WHERE seq = -1;
  )sql");
  const auto r = verify({"gateway"}, 21);  // 21 ends the first page
  EXPECT_EQ(r.problem, "out-of-order");
  EXPECT_EQ(r.message, "entries 21 and 22 are out of order");
}

TEST_F(Verify, ATruncatedTailIsCaughtByACheckpointBeyondIt) {
  tamper("DELETE FROM audit WHERE seq > 45");
  const auto r = verify();
  EXPECT_EQ(r.problem, "truncated");
  EXPECT_EQ(r.seq, 50);
  EXPECT_EQ(r.message, "the chain ends at 45 but a checkpoint vouches for 50");
}

TEST_F(Verify, AForgedCheckpointSignatureIsNamed) {
  tamper("UPDATE audit_checkpoints SET signature = 'AAAA' || substr(signature, 5) WHERE seq = 40");
  const auto r = verify();
  EXPECT_EQ(r.problem, "checkpoint-signature");
  EXPECT_EQ(r.seq, 40);
  EXPECT_EQ(r.message, "checkpoint signature at 40 is invalid");
}

TEST_F(Verify, ACheckpointMovedToAnotherHashKeepsAnInvalidSignature) {
  // An attacker who re-hashed the chain points the checkpoint at the new hash; without the
  // gateway's key the signature cannot follow.
  tamper(
      "UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit WHERE seq = 39) "
      "WHERE seq = 40");
  const auto r = verify();
  EXPECT_EQ(r.problem, "checkpoint-signature");
  EXPECT_EQ(r.seq, 40);
}

TEST_F(Verify, ACheckpointSignedWithAnotherKeyUnderOurNameIsInvalid) {
  auto forged = signer("other").sign(45, rows()[44].hash, "2026-11-22T05:00:00.000Z");
  forged.signer = signer("gateway").fingerprint();
  add_checkpoint(forged);
  const auto r = verify();
  EXPECT_EQ(r.problem, "checkpoint-signature");
  EXPECT_EQ(r.seq, 45);
}

TEST_F(Verify, ACheckpointByAnUnknownCertificateIsNamed) {
  checkpoint_at(45, "other");
  auto r = verify();
  EXPECT_EQ(r.problem, "checkpoint-signer");
  EXPECT_EQ(r.seq, 45);
  // Given both certificates (a renewal), it verifies.
  r = verify({"gateway", "other"});
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.checkpoints, 4);
}

TEST_F(Verify, ARehashedChainIsCaughtByTheNextCheckpoint) {
  // Re-chain entries 25.. with a changed entry 25: every hash and link is consistent again.
  tamper(rechained_from(25));
  const auto r = verify();
  EXPECT_EQ(r.problem, "checkpoint-mismatch");
  EXPECT_EQ(r.seq, 40);
  EXPECT_EQ(r.message,
            "checkpoint at 40 does not match entry 40: an entry after entry 20 (the last "
            "checkpoint that matched) was changed and the chain re-hashed");
}

TEST_F(Verify, TheFirstProblemIsReported) {
  tamper("DELETE FROM audit WHERE seq = 30; UPDATE audit SET event = 'x' WHERE seq = 12");
  const auto r = verify();
  EXPECT_EQ(r.seq, 12);
  EXPECT_EQ(r.problem, "altered");
}

TEST_F(Verify, ALargeLogVerifiesPageByPage) {
  // 50 + 49,950 entries read 1000 at a time: memory holds one page, whatever the length.
  for (int first = 51; first <= 50'000; first += 4'995) {
    append(first, first + 4'994);
  }
  checkpoint_at(50'000);
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.entries, 50'000);
  EXPECT_EQ(r.checkpoints, 4);
  tamper("DELETE FROM audit WHERE seq = 43210");
  EXPECT_EQ(verify().message, "entry 43210 is missing (43209 is followed by 43211)");
}

// ---- the verifier on rows in memory (orders the database cannot easily produce) ----

std::vector<audit_row> chain(int count) {
  std::vector<audit_row> out;
  std::string prev(genesis_hash());
  for (int n = 1; n <= count; ++n) {
    out.push_back(make_row(n, "2026-11-22T04:38:47.123Z", event_record(n), prev));
    prev = out.back().hash;
  }
  return out;
}

verify_report run(const std::vector<audit_row>& rows) {
  signer_keys none;
  chain_verifier v({}, none);
  for (const auto& row : rows) {
    if (!v.add(row)) {
      break;
    }
  }
  return v.finish();
}

// --- external anchors: what was logged or printed outside the store ---

TEST_F(Verify, ATailCutWithItsCheckpointsIsCaughtByTheLoggedCheckpoint) {
  const auto logged = rows()[49].hash;  // the checkpoint at 50, as the log line has it
  tamper("DELETE FROM audit WHERE seq > 45; DELETE FROM audit_checkpoints WHERE seq > 45");
  EXPECT_TRUE(verify().intact) << "the store alone cannot show it";
  const auto r = verify({"gateway"}, 1000,
                        {{.seq = 50, .hash = logged, .checkpoint = true, .source = "log:7"}});
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.problem, "truncated");
  EXPECT_EQ(r.seq, 50);
  EXPECT_EQ(r.message, "the chain ends at 45 but the anchor of log:7 names entry 50");
}

TEST_F(Verify, AChainRehashedAfterItsLastCheckpointIsCaughtByAnAnchor) {
  // Entries 45.. changed and re-chained, and the checkpoint at 50 removed: 40 still matches.
  const auto printed = rows()[49].hash;  // the head an earlier verify printed
  tamper("DELETE FROM audit_checkpoints WHERE seq = 50;" + rechained_from(45));
  EXPECT_TRUE(verify().intact) << "the store alone cannot show it";
  const auto r = verify({"gateway"}, 1000, {{.seq = 50, .hash = printed, .source = "head.txt:1"}});
  EXPECT_EQ(r.problem, "anchor-mismatch");
  EXPECT_EQ(r.seq, 50);
  EXPECT_EQ(r.message,
            "entry 50 does not match the anchor of head.txt:1: the chain was changed and re-hashed "
            "at or before entry 50");
}

TEST_F(Verify, ALoggedCheckpointMissingFromTheStoreIsNamed) {
  const auto logged = rows()[39].hash;
  tamper("DELETE FROM audit_checkpoints WHERE seq = 40");
  const auto r = verify({"gateway"}, 1000,
                        {{.seq = 40, .hash = logged, .checkpoint = true, .source = "log:3"}});
  EXPECT_EQ(r.problem, "checkpoint-missing");
  EXPECT_EQ(r.seq, 40);
  EXPECT_EQ(r.message,
            "the checkpoint at 40 logged in log:3 is no longer in the store: checkpoints were "
            "removed");
  // Given as a printed head instead, the entry itself is what is checked: it holds.
  EXPECT_TRUE(
      verify({"gateway"}, 1000, {{.seq = 40, .hash = logged, .source = "head.txt:1"}}).intact);
}

TEST_F(Verify, AnchorsThatHoldAreCounted) {
  const auto all = rows();
  const auto r = verify({"gateway"}, 7,
                        {{.seq = 20, .hash = all[19].hash, .checkpoint = true, .source = "log:1"},
                         {.seq = 33, .hash = all[32].hash, .source = "head.txt:1"},
                         {.seq = 50, .hash = all[49].hash, .checkpoint = true, .source = "log:2"}});
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.anchors, 3);
  EXPECT_EQ(r.last_anchor, 50);
}

TEST(ReadAnchors, TakesCheckpointLinesFromALogAndSkipsTheRest) {
  const std::string hash(64, 'a');
  const std::string other(64, 'b');
  const std::string log =
      R"({"time":"2026-12-07T14:40:14.202Z","level":"info","event":"message.accepted"})"
      "\n"
      R"({"time":"2026-12-07T14:40:15.000Z","level":"info","event":"audit.checkpoint","detail":"seq 110 hash )" +
      hash + R"( signer )" + other + R"("})" +
      "\n\n"
      "audit log intact: 120 entries, head 120 " +
      other +
      "\n2 signed checkpoints verified, the last at 110\nentries 111 to 120 are not yet vouched "
      "for by a checkpoint\n  7 " +
      hash + "\n";
  std::string error;
  const auto anchors = read_anchors(log, "gateway.log", error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_EQ(anchors.size(), 3U);
  EXPECT_EQ(anchors[0].seq, 110);
  EXPECT_EQ(anchors[0].hash, hash);
  EXPECT_TRUE(anchors[0].checkpoint);
  EXPECT_EQ(anchors[0].source, "gateway.log:2");
  EXPECT_EQ(anchors[1].seq, 120);
  EXPECT_EQ(anchors[1].hash, other);
  EXPECT_FALSE(anchors[1].checkpoint);
  EXPECT_EQ(anchors[2].seq, 7);
  EXPECT_EQ(anchors[2].source, "gateway.log:7");
}

TEST(ReadAnchors, NamesTheLineThatIsNotAnAnchor) {
  const std::string hash(64, 'a');
  const std::pair<std::string, std::string> cases[] = {
      {"12 " + hash + "\nhello world again\n",
       "f:2: neither an audit.checkpoint log line, the summary of mxgw audit verify, nor \"SEQ "
       "HASH\""},
      {"0 " + hash, "f:1: the entry number is not a positive whole number"},
      {"12x " + hash, "f:1: the entry number is not a positive whole number"},
      {"12 " + std::string(64, 'A'), "f:1: the hash is not 64 lower-case hex digits"},
      {"12 abc", "f:1: the hash is not 64 lower-case hex digits"},
      {"{\"event\":\"audit.checkpoint\"", "f:1: not a JSON log line"},
      {R"({"event":"audit.checkpoint","detail":"seq 5"})",
       "f:1: an audit.checkpoint line without \"seq N hash H\""},
  };
  for (const auto& [text, message] : cases) {
    std::string error;
    EXPECT_TRUE(read_anchors(text, "f", error).empty()) << text;
    EXPECT_EQ(error, message) << text;
  }
}

TEST(ChainVerifier, ADistantSwapNamesBothEntries) {
  auto rows = chain(30);
  std::swap(rows[16].entry, rows[19].entry);  // entries 17 and 20, seq columns unchanged
  std::swap(rows[16].hash, rows[19].hash);
  std::swap(rows[16].event, rows[19].event);
  const auto r = run(rows);
  EXPECT_EQ(r.problem, "out-of-order");
  EXPECT_EQ(r.message, "entries 17 and 20 are out of order: entry 20 stands where 17 belongs");
}

TEST(ChainVerifier, ARepeatedEntryIsOutOfOrder) {
  auto rows = chain(10);
  auto copy = rows[4];
  copy.seq = 11;
  rows.push_back(copy);
  const auto r = run(rows);
  EXPECT_EQ(r.problem, "out-of-order");
  EXPECT_EQ(r.seq, 5);
}

TEST(ChainVerifier, AnEntryNotInCanonicalFormIsAltered) {
  auto rows = chain(5);
  rows[2].entry.insert(1, " ");  // same members, other bytes
  rows[2].hash = sha256_hex(rows[2].entry);
  const auto r = run(rows);
  EXPECT_EQ(r.problem, "altered");
  EXPECT_EQ(r.seq, 3);
  EXPECT_EQ(r.message, "entry 3 was altered: it is not a well-formed entry");
}

TEST(ChainVerifier, ResumesAfterAVouchedEntry) {
  auto rows = chain(10);
  signer_keys none;
  chain_verifier v({}, none);
  v.resume_after(6, rows[5].hash);
  for (std::size_t i = 6; i < rows.size(); ++i) {
    EXPECT_TRUE(v.add(rows[i]));
  }
  const auto r = v.finish();
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.head_seq, 10);

  chain_verifier w({}, none);
  w.resume_after(6, rows[4].hash);  // the wrong anchor
  EXPECT_FALSE(w.add(rows[6]));
  EXPECT_EQ(w.finish().message, "entry 7 was altered: it does not link to entry 6");
}

TEST(ParseEntry, RoundTripsEntryBytes) {
  const audit_record record{.event = "e",
                            .actor = "a",
                            .partner = "p",
                            .message_id = "m",
                            .details = {{"z", "1"}, {"a", "\"quoted\"\n"}}};
  const auto bytes = entry_bytes(3, "2026-01-01T00:00:00.000Z", record, genesis_hash());
  const auto parsed = parse_entry(bytes);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->seq, 3);
  EXPECT_EQ(parsed->record.details, record.details);  // order kept
  EXPECT_FALSE(parse_entry("{}"));
  EXPECT_FALSE(parse_entry("not json"));
  EXPECT_FALSE(parse_entry(bytes.substr(0, bytes.size() - 1)));
}

}  // namespace
}  // namespace mxgw::audit::test
