// A store test run on every backend, plain and behind encryption at rest (sealable_backends()):
// the store opened in a test directory of its own on a clock the test moves, and stopped and
// cleaned up afterwards.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "gateway/store/message_store.hpp"
#include "gateway/store/sealed.hpp"
#include "tests/store/store_backends.hpp"
#include "tests/store/store_test_helpers.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::store::test_helpers {

/// One data key "k1" (all bytes 1), active.
inline std::shared_ptr<const key_ring> one_key_ring() {
  auto ring = std::make_shared<key_ring>();
  data_key key;
  key.id = "k1";
  key.bytes.fill(1);
  ring->add(std::move(key));
  ring->set_active("k1");
  return ring;
}

class sealable_store_test : public ::testing::TestWithParam<sealable_backend> {
 protected:
  void SetUp() override {
    if (const auto reason = unavailable_reason(GetParam().base); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
    raw_ = std::shared_ptr<message_store>(GetParam().base.open(dir_.path(), clock_.function()));
    store_ = GetParam().sealed ? encrypt_at_rest(raw_, one_key_ring()) : raw_;
  }

  void TearDown() override {
    for (const auto& s : {store_, raw_}) {
      if (s) {
        s->stop();
      }
    }
    store_.reset();
    raw_.reset();
    if (GetParam().base.cleanup && unavailable_reason(GetParam().base).empty()) {
      GetParam().base.cleanup(dir_.path());
    }
  }

  test::temp_dir dir_;
  manual_clock clock_;
  std::shared_ptr<message_store> raw_;    ///< the store underneath
  std::shared_ptr<message_store> store_;  ///< what the test uses (raw_ or its decorator)
};

}  // namespace mxgw::store::test_helpers
