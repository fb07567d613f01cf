// Signed checkpoints of the audit chain: every N entries or T seconds (and at clean shutdown) the
// gateway signs the chain head with its own key, after checking that the entries since its last
// checkpoint still link up, so it never vouches for a chain someone altered behind its back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "gateway/audit/audit.hpp"

namespace mxgw::store {
class message_store;
}

namespace mxgw::audit {

/// The gateway's signing identity: its private key and the certificate that carries the public key.
class checkpoint_signer {
 public:
  /// Loads the key (PEM, unencrypted) and the first certificate of `certificate` (PEM). Throws
  /// std::runtime_error naming the file when either cannot be read or they do not belong together.
  static checkpoint_signer load(const std::filesystem::path& certificate,
                                const std::filesystem::path& private_key);

  checkpoint_signer(checkpoint_signer&&) noexcept;
  checkpoint_signer& operator=(checkpoint_signer&&) noexcept;
  ~checkpoint_signer();

  /// Lower-case hex SHA-256 of the certificate's DER (a checkpoint's `signer`).
  const std::string& fingerprint() const;

  /// The certificate (PEM), for verification by the same process.
  const std::string& certificate_pem() const;

  /// A checkpoint for entry `seq` with hash `hash`, signed now-ish at `at`: SHA-256 with ECDSA or
  /// RSA, or pure Ed25519/Ed448, over checkpoint_bytes(), base64. Throws std::runtime_error when
  /// OpenSSL fails.
  checkpoint sign(std::int64_t seq, std::string_view hash, std::string_view at) const;

 private:
  struct impl;
  explicit checkpoint_signer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

struct checkpoint_options {
  std::uint64_t every_entries = 1000;             ///< sign once the head is this many entries ahead
  std::chrono::seconds interval{300};             ///< ... or this long after the last checkpoint
  std::chrono::milliseconds look_interval{1000};  ///< how often the chain head is looked at
  std::size_t page_size = 1000;                   ///< entries read at once when checking the links
};

/// Runs the checkpoints of one gateway on a thread of its own. Store calls are waited for on that
/// thread (or on the caller's, for checkpoint_now), never on a store thread.
class checkpointer {
 public:
  checkpointer(std::shared_ptr<store::message_store> store, checkpoint_signer signer,
               checkpoint_options options);
  ~checkpointer();
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  /// Starts the thread that looks at the head every look_interval.
  void start();

  /// Signs the current head now unless it is already vouched for. Returns the checkpoint written,
  /// or nullopt when there was nothing new, the store failed, or the chain contradicts the last
  /// checkpoint: the entries since it do not link up, or the head is behind it (the tail was cut;
  /// reason "truncated") or at it with another hash. A contradiction is logged once as critical
  /// "audit.chain_broken", and from then on nothing is signed.
  /// Thread-safe (calls are serialised).
  std::optional<checkpoint> checkpoint_now();

  /// Stops the thread and signs the head one last time (clean shutdown). Call before the store
  /// stops. Idempotent.
  void stop();

 private:
  std::optional<checkpoint> run_once(bool forced);
  bool load_anchor();
  /// Logs "audit.chain_broken" (critical) with `reason` (a verify_report problem code) and the
  /// finding, the first time only, and stops all further signing.
  void report_broken(std::string_view reason, const std::string& finding);

  std::shared_ptr<store::message_store> store_;
  checkpoint_signer signer_;
  checkpoint_options options_;

  std::mutex run_mutex_;  // one checkpoint round at a time
  bool anchored_ = false;
  std::int64_t last_seq_ = 0;  // the last checkpoint (0: none yet)
  std::string last_hash_;
  std::chrono::steady_clock::time_point last_time_;
  bool broken_ = false;  // reported once; no checkpoint is signed while broken

  std::mutex wait_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace mxgw::audit
