// Signing and scheduling audit checkpoints (see checkpointer.hpp).
#include "gateway/audit/checkpointer.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <future>
#include <iterator>
#include <stdexcept>

#include "gateway/audit/verify.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/log.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::audit {
namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw std::runtime_error(file.string() + ": cannot be read");
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out((size + 2) / 3 * 4 + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool is_pure_signature_key(EVP_PKEY* key) {
  return EVP_PKEY_is_a(key, "ED25519") == 1 || EVP_PKEY_is_a(key, "ED448") == 1;
}

template <typename T>
T wait(std::future<T>& f) {
  return f.get();  // every store call answers exactly once (at once after stop)
}

}  // namespace

// ---- checkpoint_signer ----

struct checkpoint_signer::impl {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, &EVP_PKEY_free};
  std::string fingerprint;
  std::string certificate_pem;
};

checkpoint_signer::checkpoint_signer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
checkpoint_signer::checkpoint_signer(checkpoint_signer&&) noexcept = default;
checkpoint_signer& checkpoint_signer::operator=(checkpoint_signer&&) noexcept = default;
checkpoint_signer::~checkpoint_signer() = default;

checkpoint_signer checkpoint_signer::load(const std::filesystem::path& certificate,
                                          const std::filesystem::path& private_key) {
  auto p = std::make_unique<impl>();
  const std::string cert_text = read_text(certificate);
  const std::string key_text = read_text(private_key);
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_text.data(), static_cast<int>(cert_text.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr,
      &X509_free);
  if (!cert) {
    throw std::runtime_error(certificate.string() + ": holds no PEM certificate");
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())), &BIO_free);
  // An empty passphrase callback: an encrypted key fails here instead of prompting.
  p->key.reset(key_bio
                   ? PEM_read_bio_PrivateKey(
                         key_bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr)
                   : nullptr);
  if (!p->key) {
    throw std::runtime_error(private_key.string() + ": holds no unencrypted PEM private key");
  }
  if (X509_check_private_key(cert.get(), p->key.get()) != 1) {
    throw std::runtime_error(private_key.string() + ": is not the key of " + certificate.string());
  }
  unsigned char* der = nullptr;
  const int der_size = i2d_X509(cert.get(), &der);
  if (der_size <= 0) {
    throw std::runtime_error(certificate.string() + ": cannot be encoded");
  }
  p->fingerprint =
      sha256_hex(std::string_view(reinterpret_cast<const char*>(der), std::size_t(der_size)));
  OPENSSL_free(der);
  p->certificate_pem = cert_text;
  return checkpoint_signer(std::move(p));
}

const std::string& checkpoint_signer::fingerprint() const {
  return impl_->fingerprint;
}

const std::string& checkpoint_signer::certificate_pem() const {
  return impl_->certificate_pem;
}

checkpoint checkpoint_signer::sign(std::int64_t seq, std::string_view hash,
                                   std::string_view at) const {
  const std::string data = checkpoint_bytes(seq, hash, at);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_PKEY* key = impl_->key.get();
  std::size_t size = 0;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, is_pure_signature_key(key) ? nullptr : EVP_sha256(),
                         nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, bytes, data.size()) != 1) {
    throw std::runtime_error("the checkpoint cannot be signed");
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, bytes,
                     data.size()) != 1) {
    throw std::runtime_error("the checkpoint cannot be signed");
  }
  return {.seq = seq,
          .hash = std::string(hash),
          .at = std::string(at),
          .signer = impl_->fingerprint,
          .signature = base64(reinterpret_cast<const unsigned char*>(signature.data()), size)};
}

// ---- checkpointer ----

checkpointer::checkpointer(std::shared_ptr<store::message_store> store, checkpoint_signer signer,
                           checkpoint_options options)
    : store_(std::move(store)),
      signer_(std::move(signer)),
      options_(options),
      last_time_(std::chrono::steady_clock::now()) {}

checkpointer::~checkpointer() {
  stop();
}

void checkpointer::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(wait_mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, options_.look_interval, [this] { return stopping_; });
      if (stopping_) {
        break;
      }
      lock.unlock();
      run_once(false);
      lock.lock();
    }
  });
}

void checkpointer::stop() {
  {
    const std::lock_guard lock(wait_mutex_);
    if (stopped_) {
      return;
    }
    stopping_ = true;
    stopped_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  run_once(true);
}

std::optional<checkpoint> checkpointer::checkpoint_now() {
  return run_once(true);
}

// Raised once: later rounds return before looking (broken_), so the alarm is not repeated every
// look_interval, and nothing is signed until the gateway is restarted.
void checkpointer::report_broken(std::string_view reason, const std::string& finding) {
  if (!broken_) {
    log::write(log::level::critical,
               {.event = "audit.chain_broken",
                .reason = reason,
                .detail = finding + "; no further checkpoints are signed (run mxgw audit verify)"});
  }
  broken_ = true;
}

// The last checkpoint in the store is where the next check of the links starts. One signed by
// this key must verify; one by another certificate (before a renewal) is taken as it is.
bool checkpointer::load_anchor() {
  std::promise<std::pair<std::vector<checkpoint>, bool>> p;
  auto f = p.get_future();
  store_->read_checkpoints([&p](std::vector<checkpoint> c, bool ok) {
    p.set_value({std::move(c), ok});
  });
  auto [checkpoints, ok] = wait(f);
  if (!ok) {
    return false;
  }
  last_seq_ = 0;
  last_hash_ = std::string(genesis_hash());
  if (!checkpoints.empty()) {
    const checkpoint& last = checkpoints.back();
    if (last.signer == signer_.fingerprint()) {
      signer_keys own;
      own.add_pem(signer_.certificate_pem());
      if (!own.verify(last.signer, checkpoint_bytes(last.seq, last.hash, last.at),
                      last.signature)) {
        report_broken("checkpoint-signature", "checkpoint at " + std::to_string(last.seq) +
                                                  " does not verify with this gateway's key");
        return false;
      }
    }
    last_seq_ = last.seq;
    last_hash_ = last.hash;
  }
  anchored_ = true;
  return true;
}

std::optional<checkpoint> checkpointer::run_once(bool forced) {
  const std::lock_guard lock(run_mutex_);
  if (broken_ || (!anchored_ && !load_anchor())) {
    return std::nullopt;
  }
  // Is a checkpoint due? The head is one indexed read.
  std::promise<std::pair<std::optional<audit_row>, bool>> hp;
  auto hf = hp.get_future();
  store_->audit_head([&hp](std::optional<audit_row> head, bool ok) {
    hp.set_value({std::move(head), ok});
  });
  auto [head, ok] = wait(hf);
  if (!ok) {
    return std::nullopt;
  }
  // A head behind the last checkpoint, or at it with another hash, contradicts what was signed:
  // the tail was cut (and perhaps written again) behind the gateway's back. Signing that head
  // would vouch for the cut, so it is the alarm instead.
  const std::int64_t head_seq = head ? head->seq : 0;
  if (head_seq < last_seq_) {
    report_broken("truncated", "the chain ends at " + std::to_string(head_seq) +
                                   " but a checkpoint vouches for " + std::to_string(last_seq_));
    return std::nullopt;
  }
  if (head_seq == last_seq_ && head && head->hash != last_hash_) {
    report_broken("checkpoint-mismatch", "checkpoint at " + std::to_string(last_seq_) +
                                             " does not match entry " + std::to_string(last_seq_) +
                                             ": the chain was cut and written again, or "
                                             "the entry was changed");
    return std::nullopt;
  }
  if (!head || head->seq == last_seq_) {
    return std::nullopt;  // nothing new to vouch for
  }
  const bool due = forced ||
                   static_cast<std::uint64_t>(head->seq - last_seq_) >= options_.every_entries ||
                   std::chrono::steady_clock::now() - last_time_ >= options_.interval;
  if (!due) {
    return std::nullopt;
  }
  // Never vouch for entries that no longer link to what was vouched for last time.
  signer_keys no_keys;
  chain_verifier verifier({}, no_keys);
  verifier.resume_after(last_seq_, last_hash_);
  std::int64_t after = last_seq_;
  while (after < head->seq) {
    std::promise<std::pair<std::vector<audit_row>, bool>> p;
    auto f = p.get_future();
    store_->read_audit(after, options_.page_size, [&p](std::vector<audit_row> rows, bool read) {
      p.set_value({std::move(rows), read});
    });
    auto [rows, read_ok] = wait(f);
    if (!read_ok) {
      return std::nullopt;
    }
    bool going = !rows.empty();
    for (const auto& row : rows) {
      if (row.seq > head->seq) {
        going = false;
        break;
      }
      if (!verifier.add(row)) {
        going = false;
        break;
      }
      after = row.seq;
    }
    if (!going) {
      break;
    }
  }
  const verify_report report = verifier.finish();
  if (!report.intact || report.head_seq != head->seq) {
    report_broken(
        report.problem.empty() ? std::string_view("head-moved") : std::string_view(report.problem),
        report.message);
    return std::nullopt;
  }
  checkpoint c;
  try {
    c = signer_.sign(report.head_seq, report.head_hash,
                     format_rfc3339_ms(std::chrono::system_clock::now()));
  } catch (const std::exception& e) {
    log::error({.event = "audit.checkpoint_failed", .reason = "sign", .detail = e.what()});
    return std::nullopt;
  }
  std::promise<bool> ap;
  auto af = ap.get_future();
  store_->add_checkpoint(c, [&ap](bool added) { ap.set_value(added); });
  if (!wait(af)) {
    // Another instance checkpointed this seq first, or the store failed: read the anchor again.
    anchored_ = false;
    log::warn({.event = "audit.checkpoint_failed", .reason = "store"});
    return std::nullopt;
  }
  last_seq_ = c.seq;
  last_hash_ = c.hash;
  last_time_ = std::chrono::steady_clock::now();
  // The log is a second, external copy of what was vouched for.
  log::info({.event = "audit.checkpoint",
             .detail = "seq " + std::to_string(c.seq) + " hash " + c.hash + " signer " + c.signer});
  return c;
}

}  // namespace mxgw::audit
