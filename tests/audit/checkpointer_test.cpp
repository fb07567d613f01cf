// The checkpointer: signs the chain head with the gateway's key when due and at shutdown, never
// vouches for entries altered since its last checkpoint, and refuses a key that is not the
// certificate's.
#include <gtest/gtest.h>

#include <thread>

#include "gateway/common/log.hpp"
#include "tests/audit/audit_fixture.hpp"

namespace mxgw::audit::test {
namespace {

class Checkpointer : public audit_fixture {
 protected:
  std::shared_ptr<store::message_store> shared() {
    // The checkpointer shares the store; the fixture keeps ownership for tampering.
    return std::shared_ptr<store::message_store>(store_.get(), [](store::message_store*) {});
  }

  // Waits (bounded) until the store holds a checkpoint at `seq`.
  bool checkpoint_appears(std::int64_t seq) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& c : checkpoints()) {
        if (c.seq == seq) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

TEST_F(Checkpointer, SignsTheHeadAndTheLogVerifies) {
  append(1, 12);
  checkpointer cp(shared(), signer(), {});
  const auto c = cp.checkpoint_now();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->seq, 12);
  EXPECT_EQ(c->hash, rows().back().hash);
  EXPECT_EQ(c->signer, signer().fingerprint());
  EXPECT_FALSE(cp.checkpoint_now());  // nothing new to vouch for
  ASSERT_EQ(checkpoints().size(), 1U);
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.message;
  EXPECT_EQ(r.checkpoints, 1);
  cp.stop();
}

TEST_F(Checkpointer, NothingToSignOnAnEmptyChain) {
  checkpointer cp(shared(), signer(), {});
  EXPECT_FALSE(cp.checkpoint_now());
  cp.stop();
  EXPECT_TRUE(checkpoints().empty());
}

TEST_F(Checkpointer, SignsEveryNEntriesOnItsOwn) {
  checkpointer cp(shared(), signer(),
                  {.every_entries = 5,
                   .interval = std::chrono::hours(1),
                   .look_interval = std::chrono::milliseconds(5)});
  cp.start();
  append(1, 7);
  EXPECT_TRUE(checkpoint_appears(7));
  append(8, 9);  // fewer than 5 new entries: not due yet, until shutdown
  append(10, 14);
  EXPECT_TRUE(checkpoint_appears(14));
  cp.stop();
  EXPECT_TRUE(verify().intact);
}

TEST_F(Checkpointer, SignsTheHeadAtShutdown) {
  checkpointer cp(shared(), signer(), {.every_entries = 1000, .interval = std::chrono::hours(1)});
  cp.start();
  append(1, 3);
  cp.stop();
  const auto all = checkpoints();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].seq, 3);
  cp.stop();  // idempotent
  EXPECT_EQ(checkpoints().size(), 1U);
}

TEST_F(Checkpointer, SignsAfterTheIntervalEvenWithFewEntries) {
  checkpointer cp(shared(), signer(),
                  {.every_entries = 1000,
                   .interval = std::chrono::seconds(0),
                   .look_interval = std::chrono::milliseconds(5)});
  cp.start();
  append(1, 2);
  EXPECT_TRUE(checkpoint_appears(2));
  cp.stop();
}

TEST_F(Checkpointer, ContinuesFromTheLastCheckpointAfterARestart) {
  append(1, 5);
  {
    checkpointer cp(shared(), signer(), {});
    ASSERT_TRUE(cp.checkpoint_now());
  }
  close();
  open();
  append(6, 8);
  checkpointer cp(shared(), signer(), {});
  const auto c = cp.checkpoint_now();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->seq, 8);
  EXPECT_TRUE(verify().intact);
}

TEST_F(Checkpointer, NeverVouchesForEntriesAlteredSinceItsLastCheckpoint) {
  const auto log_file = dir_ / "gateway.log";
  log::init({log::level::info, log_file});
  append(1, 5);
  {
    checkpointer cp(shared(), signer(), {});
    ASSERT_TRUE(cp.checkpoint_now());
  }
  append(6, 9);
  tamper("UPDATE audit SET entry = replace(entry, 'vn-gialai', 'kh-kratie') WHERE seq = 7");
  checkpointer cp(shared(), signer(), {});
  EXPECT_FALSE(cp.checkpoint_now());
  append(10, 10);
  EXPECT_FALSE(cp.checkpoint_now());  // stays refused
  cp.stop();
  ASSERT_EQ(checkpoints().size(), 1U);
  EXPECT_EQ(checkpoints()[0].seq, 5);
  log::flush();
  const auto text = mxgw::test::read_file(log_file);
  log::init({});
  EXPECT_NE(text.find("\"audit.chain_broken\""), std::string::npos) << text;
  EXPECT_NE(text.find("entry 7 was altered"), std::string::npos) << text;
}

// The tail is cut behind the running gateway's back (the store stays open, as it would in a
// running gateway): the chain now ends before its last checkpoint. That is the alarm, at once,
// and no checkpoint is signed over the cut chain, not even once it has grown past the old end.
TEST_F(Checkpointer, RaisesTheAlarmWhenTheTailIsCutWhileItRuns) {
  const auto log_file = dir_ / "gateway.log";
  log::init({log::level::info, log_file});
  append(1, 8);
  checkpointer cp(shared(), signer(), {});
  ASSERT_TRUE(cp.checkpoint_now());
  {
    raw_db db(db_path());
    db.exec("DROP TRIGGER IF EXISTS audit_no_delete; DELETE FROM audit WHERE seq > 5");
  }
  EXPECT_FALSE(cp.checkpoint_now());
  append(6, 12);  // the gateway goes on writing from the cut end
  EXPECT_FALSE(cp.checkpoint_now());
  cp.stop();  // nor at shutdown
  log::flush();
  const auto text = mxgw::test::read_file(log_file);
  log::init({});
  ASSERT_EQ(checkpoints().size(), 1U);
  EXPECT_EQ(checkpoints()[0].seq, 8);
  const auto alarm = text.find("\"audit.chain_broken\"");
  ASSERT_NE(alarm, std::string::npos) << text;
  const auto line = text.substr(text.rfind('\n', alarm) + 1,
                                text.find('\n', alarm) - text.rfind('\n', alarm) - 1);
  EXPECT_NE(line.find("\"level\":\"critical\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"reason\":\"truncated\""), std::string::npos) << line;
  EXPECT_NE(line.find("the chain ends at 5 but a checkpoint vouches for 8"), std::string::npos)
      << line;
  EXPECT_EQ(text.find("\"audit.chain_broken\"", alarm + 1), std::string::npos)
      << "raised once: " << text;
  // What the inspector's verify says about the same store.
  const auto r = verify();
  EXPECT_FALSE(r.intact);
}

// Cut and written again up to the very seq that was checkpointed, before the checkpointer
// looked: the head has the checkpoint's seq but not its hash. Signing nothing new is not enough;
// the contradiction is the alarm.
TEST_F(Checkpointer, RaisesTheAlarmWhenTheCheckpointedEntryIsReplaced) {
  const auto log_file = dir_ / "gateway.log";
  log::init({log::level::info, log_file});
  append(1, 8);
  checkpointer cp(shared(), signer(), {});
  ASSERT_TRUE(cp.checkpoint_now());
  {
    raw_db db(db_path());
    db.exec("DROP TRIGGER IF EXISTS audit_no_delete; DELETE FROM audit WHERE seq > 5");
  }
  append(6, 8);
  EXPECT_FALSE(cp.checkpoint_now());
  cp.stop();
  log::flush();
  const auto text = mxgw::test::read_file(log_file);
  log::init({});
  ASSERT_EQ(checkpoints().size(), 1U);
  EXPECT_NE(text.find("\"audit.chain_broken\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"reason\":\"checkpoint-mismatch\""), std::string::npos) << text;
}

TEST_F(Checkpointer, AKeyThatIsNotTheCertificatesIsRefused) {
  EXPECT_THROW(checkpoint_signer::load(dir_ / "gateway.pem", dir_ / "other.key"),
               std::runtime_error);
  EXPECT_THROW(checkpoint_signer::load(dir_ / "gateway.key", dir_ / "gateway.key"),
               std::runtime_error);
  EXPECT_THROW(checkpoint_signer::load(dir_ / "missing.pem", dir_ / "gateway.key"),
               std::runtime_error);
}

}  // namespace
}  // namespace mxgw::audit::test
