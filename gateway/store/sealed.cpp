// AES-256-GCM sealing of bodies and payloads (see sealed.hpp).
#include "gateway/store/sealed.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/stat.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>
#include <utility>

#include "gateway/common/digest.hpp"
#include "gateway/common/log.hpp"

namespace mxgw::store {
namespace {

constexpr std::string_view magic = "MXE1";
constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;

/// Nonces come from OpenSSL's DRBG in blocks: a RAND_bytes call costs as much as sealing a
/// 2 KB body (OpenSSL 3.0 looks up the DRBG, locks it and checks for a fork each time), and a
/// message is sealed twice. Each thread draws from its own block. A child process must never
/// reuse its parent's remaining bytes (the same nonce under the same key would expose both
/// plain texts), so a fork discards every block.
constexpr std::size_t nonce_block_bytes = 32 * 12 * 16;  // 512 nonces

std::atomic<unsigned> fork_generation{0};

struct nonce_block {
  unsigned char bytes[nonce_block_bytes];
  std::size_t used = nonce_block_bytes;  // empty until the first draw
  unsigned generation = 0;
};

void next_nonce(unsigned char* out, std::size_t size) {
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); });
  });
  thread_local nonce_block block;
  const unsigned generation = fork_generation.load();
  if (block.generation != generation || nonce_block_bytes - block.used < size) {
    if (RAND_bytes(block.bytes, sizeof block.bytes) != 1) {
      block.used = nonce_block_bytes;
      throw std::runtime_error("no random bytes for a nonce");
    }
    block.used = 0;
    block.generation = generation;
  }
  std::memcpy(out, block.bytes + block.used, size);  // public in the record: no need to wipe
  block.used += size;
}

/// AES-256-GCM fetched once (EVP_aes_256_gcm() makes every EVP_EncryptInit_ex look it up).
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

struct cipher_ctx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~cipher_ctx() { EVP_CIPHER_CTX_free(ctx); }
  cipher_ctx() = default;
  cipher_ctx(const cipher_ctx&) = delete;
  cipher_ctx& operator=(const cipher_ctx&) = delete;
};

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (const char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/// 64 hex digits (surrounding white space ignored) -> 32 bytes; false otherwise.
bool parse_key(std::string text, std::array<unsigned char, 32>& out) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.pop_back();
  }
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start])) != 0) {
    ++start;
  }
  const std::string_view digits = std::string_view(text).substr(start);
  if (digits.size() != 64) {
    return false;
  }
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = hex_value(digits[2 * i]);
    const int lo = hex_value(digits[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

data_key load_one(const key_source& source) {
  if (!valid_id(source.id)) {
    throw key_error("store key id '" + source.id +
                    "' must be 1 to 64 letters, digits, '.', '_' or '-'");
  }
  data_key key;
  key.id = source.id;
  std::string text;
  if (!source.file.empty()) {
    struct stat st {};
    if (::stat(source.file.c_str(), &st) != 0) {
      throw key_error("store key '" + source.id + "': cannot read " + source.file.string());
    }
    if ((st.st_mode & 077) != 0) {
      throw key_error("store key '" + source.id + "': " + source.file.string() +
                      " is readable by others (mode must be 0600 or stricter)");
    }
    std::ifstream in(source.file, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    if (!in) {
      throw key_error("store key '" + source.id + "': cannot read " + source.file.string());
    }
    text = content.str();
  } else if (!source.env.empty()) {
    const char* value = std::getenv(source.env.c_str());
    if (value == nullptr) {
      throw key_error("store key '" + source.id + "': environment variable " + source.env +
                      " is not set");
    }
    text = value;
  } else {
    throw key_error("store key '" + source.id + "' names neither a file nor an environment variable");
  }
  if (!parse_key(std::move(text), key.bytes)) {
    throw key_error("store key '" + source.id + "' is not 64 hexadecimal digits (32 bytes)");
  }
  return key;
}

}  // namespace

key_ring key_ring::load(const std::vector<key_source>& sources, const std::string& active) {
  key_ring ring;
  for (const auto& source : sources) {
    ring.add(load_one(source));
  }
  ring.set_active(active);
  return ring;
}

void key_ring::add(data_key key) {
  if (!valid_id(key.id)) {
    throw key_error("store key id '" + key.id + "' is not valid");
  }
  if (keys_.contains(key.id)) {
    throw key_error("store key id '" + key.id + "' is listed twice");
  }
  std::string id = key.id;
  keys_.emplace(std::move(id), std::move(key));
}

void key_ring::set_active(const std::string& id) {
  if (!keys_.contains(id)) {
    throw key_error("the active store key '" + id + "' is not among the keys");
  }
  active_ = id;
}

const data_key& key_ring::active() const {
  return keys_.at(active_);
}

const data_key* key_ring::find(std::string_view id) const {
  auto it = keys_.find(id);
  return it == keys_.end() ? nullptr : &it->second;
}

std::string seal_context(std::string_view message_id, std::string_view purpose) {
  std::string out = "mxgw-store/1";
  out += '\0';
  out += message_id;
  out += '\0';
  out += purpose;
  return out;
}

std::string seal_purpose(value_field field, std::string_view recipient) {
  switch (field) {
    case value_field::body: return "body";
    case value_field::payload: return "to:" + std::string(recipient);
    case value_field::receipt: return "receipt:" + std::string(recipient);
    case value_field::error: return "error:" + std::string(recipient);
    case value_field::facts: return "facts";
  }
  throw std::logic_error("not a value_field this build knows");
}

bool is_sealed(std::string_view bytes) {
  return bytes.substr(0, magic.size()) == magic;
}

std::string_view cut_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return text;
  }
  std::size_t end = max_bytes;
  // text[end] is the first byte left out: while it continues a character, leave that whole
  // character out (at most 3 steps back; invalid UTF-8 is cut where the limit falls).
  for (int step = 0; step < 3 && end > 0; ++step) {
    if ((static_cast<unsigned char>(text[end]) & 0xc0U) != 0x80U) {
      break;
    }
    --end;
  }
  return text.substr(0, end);
}

std::string_view bounded_text(std::string_view text, std::size_t max_bytes) {
  if (is_sealed(text) && text.size() <= max_sealed_size(max_bytes)) {
    return text;
  }
  return cut_utf8(text, max_bytes);
}

std::string unreadable_text(std::string_view why) {
  return "[sealed; does not open: " + std::string(why) + "]";
}

std::string seal(const key_ring& ring, std::string_view plain, std::string_view context) {
  const data_key& key = ring.active();
  std::string out;
  out.reserve(magic.size() + 1 + key.id.size() + nonce_size + plain.size() + tag_size);
  out += magic;
  out += static_cast<char>(key.id.size());
  out += key.id;
  unsigned char nonce[nonce_size];
  next_nonce(nonce, sizeof nonce);
  out.append(reinterpret_cast<const char*>(nonce), sizeof nonce);
  const std::size_t body_at = out.size();
  out.resize(body_at + plain.size() + tag_size);
  auto* body = reinterpret_cast<unsigned char*>(out.data() + body_at);

  cipher_ctx c;
  int len = 0;
  int total = 0;
  const bool ok =
      c.ctx != nullptr && aes_256_gcm() != nullptr &&
      EVP_EncryptInit_ex(c.ctx, aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) == 1 &&
      EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key.bytes.data(), nonce) == 1 &&
      EVP_EncryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) == 1 &&
      EVP_EncryptUpdate(c.ctx, body, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) == 1 &&
      (total = len, EVP_EncryptFinal_ex(c.ctx, body + total, &len) == 1) &&
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, tag_size, body + total + len) == 1;
  if (!ok || static_cast<std::size_t>(total + len) != plain.size()) {
    throw std::runtime_error("AES-256-GCM encryption failed");
  }
  return out;
}

std::optional<std::string> open_sealed(const key_ring& ring, std::string_view sealed,
                                       std::string_view context, std::string* why) {
  const auto fail = [why](const char* reason) -> std::optional<std::string> {
    if (why != nullptr) {
      *why = reason;
    }
    return std::nullopt;
  };
  if (!is_sealed(sealed) || sealed.size() < magic.size() + 1) {
    return fail("not-sealed");
  }
  const std::size_t id_size = static_cast<unsigned char>(sealed[magic.size()]);
  const std::size_t header = magic.size() + 1 + id_size + nonce_size;
  if (sealed.size() < header + tag_size) {
    return fail("payload-corrupt");
  }
  const data_key* key = ring.find(sealed.substr(magic.size() + 1, id_size));
  if (key == nullptr) {
    return fail("key-unavailable");
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data() + header - nonce_size);
  const std::size_t cipher_size = sealed.size() - header - tag_size;
  const auto* cipher = reinterpret_cast<const unsigned char*>(sealed.data() + header);
  std::string tag(sealed.substr(header + cipher_size, tag_size));
  std::string plain(cipher_size, '\0');

  cipher_ctx c;
  int len = 0;
  int total = 0;
  const bool ok =
      c.ctx != nullptr &&
      aes_256_gcm() != nullptr &&
      EVP_DecryptInit_ex(c.ctx, aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) == 1 &&
      EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key->bytes.data(), nonce) == 1 &&
      EVP_DecryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) == 1 &&
      EVP_DecryptUpdate(c.ctx, reinterpret_cast<unsigned char*>(plain.data()), &len, cipher,
                        static_cast<int>(cipher_size)) == 1 &&
      (total = len,
       EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) == 1) &&
      EVP_DecryptFinal_ex(c.ctx, reinterpret_cast<unsigned char*>(plain.data()) + total, &len) == 1;
  if (!ok) {
    return fail("payload-corrupt");
  }
  return plain;
}

void generate_key_file(const std::filesystem::path& file) {
  if (std::filesystem::exists(file)) {
    throw key_error(file.string() + " exists; a store key is never overwritten");
  }
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    throw key_error("no random bytes for a key");
  }
  const std::string hex = lower_hex(bytes, sizeof bytes) + "\n";
  if (!file.parent_path().empty()) {
    std::filesystem::create_directories(file.parent_path());
  }
  // Created with 0600 from the start: the key is never readable by others, not even briefly.
  const mode_t old = ::umask(077);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  ::umask(old);
  out << hex;
  out.close();
  if (!out) {
    throw key_error("cannot write " + file.string());
  }
  std::filesystem::permissions(file, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write);
}

// ---------------------------------------------------------------------------------------------
// The store decorator

namespace {

// A sealed message body opened for a reader, or nullopt when it does not open (its key missing
// from the ring, its bytes altered), logged as `store.unseal_failed` with what became of it.
std::optional<std::string> open_body_or_log(const key_ring& ring, std::string_view sealed,
                                            std::string_view message_id, std::string_view outcome) {
  std::string why;
  std::optional<std::string> plain;
  try {
    plain = open_sealed(ring, sealed, seal_context(message_id, "body"), &why);
  } catch (const std::exception&) {
    why = "unseal-failed";
  }
  if (!plain) {
    try {
      log::write(log::level::error, {.event = "store.unseal_failed",
                                     .message_id = message_id,
                                     .outcome = outcome,
                                     .reason = why});
    } catch (const std::exception&) {
    }
  }
  return plain;
}

class encrypting_store final : public message_store {
 public:
  encrypting_store(std::shared_ptr<message_store> inner, std::shared_ptr<const key_ring> ring)
      : inner_(std::move(inner)), ring_(std::move(ring)) {}

  void accept(message_record record, accept_handler handler) override {
    try {
      record.body = seal(*ring_, record.body, seal_context(record.id, "body"));
      // The facts are coarse categories, but tied to a message id and a time: sealed too.
      if (!record.facts.empty()) {
        record.facts = seal(*ring_, record.facts, seal_context(record.id, "facts"));
      }
      for (auto& plan : record.deliveries) {
        // A recipient of the body gets a sealed empty value in place of a copy: the grant that
        // binds the row to the body, so that whoever can write the file cannot hand the whole
        // body to a recipient from whom fields are withheld by marking its row.
        plan.payload = seal(*ring_, plan.payload_is_body ? std::string_view("") : plan.payload,
                            seal_context(record.id, "to:" + plan.recipient));
      }
      // The person keys go in as they are: their digests are keyed hashes already (HMAC under
      // the match key), and pointers and kinds say nothing about anyone. Sealing them would
      // also make equal digests unequal, and matching compares them in the store.
    } catch (const std::exception&) {
      handler(accept_result{accept_outcome::unavailable, {}, "encryption-failed"});
      return;
    }
    inner_->accept(std::move(record), std::move(handler));
  }

  void read_body(std::string id, body_handler handler) override {
    inner_->read_body(id, [ring = ring_, id, handler = std::move(handler)](
                              std::optional<stored_body> found, bool ok) {
      if (found && is_sealed(found->body)) {
        if (auto plain = open_body_or_log(*ring, found->body, id, "not-read")) {
          found->body = std::move(*plain);
        } else {
          found.reset();
        }
      }
      handler(std::move(found), ok);
    });
  }

  void find(std::string id, find_handler handler) override {
    inner_->find(std::move(id), [this, handler = std::move(handler)](
                                    std::optional<message_status> status, bool ok) {
      if (status) {
        for (auto& r : status->recipients) {
          open_text(r.receipt, status->id, value_field::receipt, r.recipient);
          open_text(r.last_error, status->id, value_field::error, r.recipient);
        }
      }
      handler(std::move(status), ok);
    });
  }

  void claim_due(std::string owner, std::size_t max_jobs, std::chrono::milliseconds lease,
                 std::vector<recipient_cap> caps, claim_handler handler) override {
    inner_->claim_due(
        owner, max_jobs, lease, std::move(caps),
        [this, owner, handler = std::move(handler)](std::vector<delivery_job> jobs, bool ok) {
          std::vector<delivery_job> usable;
          usable.reserve(jobs.size());
          for (auto& job : jobs) {
            std::string why;
            if (open_job(job, why)) {
              usable.push_back(std::move(job));
              continue;
            }
            log::write(log::level::critical, {.event = "store.unseal_failed",
                                              .message_id = job.message_id,
                                              .partner = job.recipient,
                                              .reason = why});
            attempt_report back;
            back.message_id = job.message_id;
            back.recipient = job.recipient;
            back.owner = owner;
            back.attempt = job.attempt;
            back.result = attempt_result::retry;
            back.next_attempt_at = std::chrono::system_clock::now() + std::chrono::minutes(5);
            back.error = why;
            // Not sent: the copy waits for its key without using up its tries (docs/security.md),
            // and a copy held for release and never handed out still reached no one.
            back.attempted = false;
            inner_->report(std::move(back), [](bool) {});
          }
          handler(std::move(usable), ok);
        });
  }

  void report(attempt_report report, report_handler handler) override {
    seal_text(report.receipt, max_receipt_bytes, report.message_id, value_field::receipt,
              report.recipient);
    seal_text(report.error, max_error_bytes, report.message_id, value_field::error,
              report.recipient);
    inner_->report(std::move(report), std::move(handler));
  }
  void replay(std::string message_id, std::string recipient,
              std::vector<audit::audit_record> audit, replay_handler handler) override {
    inner_->replay(std::move(message_id), std::move(recipient), std::move(audit),
                   std::move(handler));
  }
  void discard(std::string message_id, std::string recipient, std::string reason,
               std::vector<audit::audit_record> audit, replay_handler handler) override {
    seal_text(reason, max_error_bytes, message_id, value_field::error, recipient);
    inner_->discard(std::move(message_id), std::move(recipient), std::move(reason),
                    std::move(audit), std::move(handler));
  }
  void queue_stats(queue_handler handler) override { inner_->queue_stats(std::move(handler)); }
  // Four-eyes release. The list is metadata only. A held copy is opened as a claim opens it; one
  // that does not open is not shown (the look-up fails, ok=false, and is logged as a claim's
  // would be): administrators must not approve what they cannot read. A rejection's reason
  // shares the error's column, so it is sealed as a discard reason is.
  void list_held(std::size_t limit, held_handler handler) override {
    inner_->list_held(limit, std::move(handler));
  }
  void read_held(std::string message_id, std::string recipient,
                 held_copy_handler handler) override {
    inner_->read_held(
        std::move(message_id), std::move(recipient),
        [this, handler = std::move(handler)](std::optional<delivery_job> job, bool ok) {
          std::string why;
          if (!job || open_job(*job, why)) {
            handler(std::move(job), ok);
            return;
          }
          log::write(log::level::critical, {.event = "store.unseal_failed",
                                            .message_id = job->message_id,
                                            .partner = job->recipient,
                                            .reason = why});
          handler(std::nullopt, false);
        });
  }
  // Persons across messages: the keys were stored as given (see accept), and a match carries
  // only metadata of the other message, none of it sealed.
  void find_person_matches(std::string message_id, std::size_t limit,
                           matches_handler handler) override {
    inner_->find_person_matches(std::move(message_id), limit, std::move(handler));
  }
  // The keyer is shown the body opened (one stored in clear, before encryption was turned on,
  // as it is). A body that does not open (its key missing from the ring, altered bytes) is not
  // shown: that message keeps the keys it has, and the batch goes on.
  void rekey_persons(std::string after_id, std::size_t max_messages, person_keyer keyer,
                     person_rekey_handler handler) override {
    person_keyer opening = [ring = ring_, keyer = std::move(keyer)](
                               std::string_view message_id,
                               std::string_view body) -> std::optional<std::vector<person_key>> {
      if (!is_sealed(body)) {
        return keyer(message_id, body);
      }
      const auto plain = open_body_or_log(*ring, body, message_id, "keys-kept");
      if (!plain) {
        return std::nullopt;
      }
      return keyer(message_id, *plain);
    };
    inner_->rekey_persons(std::move(after_id), max_messages, std::move(opening),
                          std::move(handler));
  }
  void decide_release(release_request request, release_handler handler) override {
    if (!request.approve) {
      seal_text(request.reason, max_error_bytes, request.message_id, value_field::error,
                request.recipient);
    }
    inner_->decide_release(std::move(request), std::move(handler));
  }
  void purge(retention_cut cut, purge_handler handler) override {
    inner_->purge(std::move(cut), std::move(handler));
  }
  // Raw stored bytes in both directions (the rewriter sees and writes sealed values): rekey uses
  // the store underneath, and so may anyone holding this decorator.
  void rewrite_values(std::string after_id, std::size_t max_messages, value_rewriter rewriter,
                      rewrite_handler handler) override {
    inner_->rewrite_values(std::move(after_id), max_messages, std::move(rewriter),
                           std::move(handler));
  }
  void transfer_register(std::string from_month, std::string to_month,
                         register_handler handler) override {
    inner_->transfer_register(std::move(from_month), std::move(to_month), std::move(handler));
  }
  // Facts that do not open (a key missing from the ring, altered bytes) come back as a short
  // text that is not JSON: the report counts them as messages without facts.
  void read_facts(std::string since, std::string after, std::size_t limit,
                  facts_handler handler) override {
    inner_->read_facts(std::move(since), std::move(after), limit,
                       [this, handler = std::move(handler)](facts_page page, bool ok) {
                         for (auto& row : page.rows) {
                           open_text(row.facts, row.id, value_field::facts, {});
                         }
                         handler(std::move(page), ok);
                       });
  }
  void list_dead(std::size_t limit, dead_handler handler) override {
    inner_->list_dead(
        limit, [this, handler = std::move(handler)](std::vector<dead_letter> dead, bool ok) {
          for (auto& letter : dead) {
            open_text(letter.last_error, letter.message_id, value_field::error, letter.recipient);
          }
          handler(std::move(dead), ok);
        });
  }
  void append_audit(std::vector<audit::audit_record> records, report_handler handler) override {
    inner_->append_audit(std::move(records), std::move(handler));
  }
  void read_audit(std::int64_t after_seq, std::size_t limit, audit_handler handler) override {
    inner_->read_audit(after_seq, limit, std::move(handler));
  }
  void audit_head(head_handler handler) override { inner_->audit_head(std::move(handler)); }
  void add_checkpoint(audit::checkpoint checkpoint, report_handler handler) override {
    inner_->add_checkpoint(std::move(checkpoint), std::move(handler));
  }
  void read_checkpoints(checkpoints_handler handler) override {
    inner_->read_checkpoints(std::move(handler));
  }
  void put_states(std::vector<state_put> puts, std::vector<audit::audit_record> audit,
                  puts_handler handler) override {
    inner_->put_states(std::move(puts), std::move(audit), std::move(handler));
  }
  void list_state(std::string kind, std::int64_t after_version, state_handler handler) override {
    inner_->list_state(std::move(kind), after_version, std::move(handler));
  }
  void on_deliveries_due(std::function<void()> callback) override {
    inner_->on_deliveries_due(std::move(callback));
  }
  void approvals_when_held(std::function<std::size_t()> source) override {
    inner_->approvals_when_held(std::move(source));
  }
  bool healthy() const override { return inner_->healthy(); }
  void stop() override { inner_->stop(); }

 private:
  /// Opens a job's payload as a worker must be handed it: the body for a recipient of the body
  /// whose grant holds, otherwise its own payload; a value stored before encryption was turned on
  /// is handed out as it is. False (and `why`) when it may not be handed out.
  bool open_job(delivery_job& job, std::string& why) const {
    if (job.payload_is_body && !grant_holds(job, why)) {
      return false;
    }
    if (!is_sealed(job.payload)) {
      return true;  // stored before encryption was turned on
    }
    const std::string place = job.payload_is_body ? std::string("body") : "to:" + job.recipient;
    auto plain = open_sealed(*ring_, job.payload, seal_context(job.message_id, place), &why);
    if (!plain) {
      return false;
    }
    job.payload = std::move(*plain);
    job.body_grant.clear();
    return true;
  }

  /// Whether a row marked as a recipient of the body may be handed it: its grant opens (sealed
  /// for this message and recipient, empty), or it has none and the body is in clear as well
  /// (both stored before encryption was turned on; nothing is then hidden from the file's reader).
  bool grant_holds(const delivery_job& job, std::string& why) const {
    if (!is_sealed(job.body_grant)) {
      why = "payload-corrupt";
      return job.body_grant.empty() && !is_sealed(job.payload);
    }
    auto grant = open_sealed(*ring_, job.body_grant,
                             seal_context(job.message_id, "to:" + job.recipient), &why);
    if (grant && !grant->empty()) {
      why = "payload-corrupt";
      return false;
    }
    return grant.has_value();
  }

  /// Cuts a receipt or error text to what a store keeps, then seals it for its row. Empty stays
  /// empty (nothing to hide; "no receipt" must still read as such). Should sealing fail, the
  /// text is given up rather than the report: the delivery's state matters more than its words.
  void seal_text(std::string& text, std::size_t max_bytes, std::string_view message_id,
                 value_field field, std::string_view recipient) const {
    if (text.empty()) {
      return;
    }
    try {
      text = seal(*ring_, cut_utf8(text, max_bytes),
                  seal_context(message_id, seal_purpose(field, recipient)));
    } catch (const std::exception&) {
      text = field == value_field::error ? "encryption-failed" : "";
    }
  }

  /// Opens a sealed receipt or error text read back from a row; one stored in clear (before
  /// encryption was turned on, or a code of the gateway's own) is shown as it is.
  void open_text(std::string& text, std::string_view message_id, value_field field,
                 std::string_view recipient) const {
    if (!is_sealed(text)) {
      return;
    }
    std::string why;
    auto plain =
        open_sealed(*ring_, text, seal_context(message_id, seal_purpose(field, recipient)), &why);
    text = plain ? std::move(*plain) : unreadable_text(why);
  }

  std::shared_ptr<message_store> inner_;
  std::shared_ptr<const key_ring> ring_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Re-encryption under the active key

namespace {

/// What became of one value in a batch. Kept per value (not counted as the rewriter runs): a
/// store may run a batch more than once (PostgreSQL after a deadlock), and only the last run
/// committed.
enum class rekey_fate { resealed, sealed_from_clear, current, key_missing, corrupt };

/// The key id a sealed value names ("" when its header is cut short).
std::string_view sealed_key_id(std::string_view sealed) {
  if (sealed.size() < magic.size() + 1) {
    return {};
  }
  const std::size_t id_size = static_cast<unsigned char>(sealed[magic.size()]);
  if (sealed.size() < magic.size() + 1 + id_size + nonce_size + tag_size) {
    return {};
  }
  return sealed.substr(magic.size() + 1, id_size);
}

}  // namespace

rekey_counts rekey_store(message_store& store, const key_ring& ring, const rekey_options& options) {
  rekey_counts counts;
  const data_key& active = ring.active();  // throws on a ring without an active key
  std::string cursor;
  for (;;) {
    if (options.interrupted && options.interrupted()) {
      return counts;  // between batches: everything counted so far is committed
    }
    std::map<std::tuple<std::string, std::string, value_field>, rekey_fate> fates;
    value_rewriter rewriter = [&ring, &active,
                               &fates](const stored_value& value) -> std::optional<std::string> {
      const std::string context =
          seal_context(value.message_id, seal_purpose(value.field, value.recipient));
      rekey_fate& fate = fates[{value.message_id, value.recipient, value.field}];
      if (!is_sealed(value.bytes)) {
        fate = rekey_fate::sealed_from_clear;  // stored before encryption was turned on
        return seal(ring, value.bytes, context);
      }
      if (sealed_key_id(value.bytes) == active.id) {
        fate = rekey_fate::current;  // not opened: a current record is left exactly as it is
        return std::nullopt;
      }
      std::string why;
      auto plain = open_sealed(ring, value.bytes, context, &why);
      if (!plain) {
        fate = why == "key-unavailable" ? rekey_fate::key_missing : rekey_fate::corrupt;
        return std::nullopt;  // left intact: it opens again once its key is configured
      }
      fate = rekey_fate::resealed;
      // The same context: the new record is bound to the same message and recipient.
      return seal(ring, *plain, context);
    };
    std::promise<std::pair<rewrite_result, bool>> done;
    auto answer = done.get_future();
    store.rewrite_values(cursor, std::max<std::size_t>(options.batch_messages, 1),
                         std::move(rewriter), [&done](rewrite_result result, bool ok) {
                           done.set_value({std::move(result), ok});
                         });
    auto [result, ok] = answer.get();
    if (!ok) {
      counts.failed = true;
      return counts;
    }
    if (result.messages == 0) {
      counts.complete = true;
      return counts;
    }
    ++counts.batches;
    counts.messages += result.messages;
    for (const auto& [place, fate] : fates) {
      switch (fate) {
        case rekey_fate::resealed: ++counts.resealed; break;
        case rekey_fate::sealed_from_clear: ++counts.sealed_from_clear; break;
        case rekey_fate::current: ++counts.already_current; break;
        case rekey_fate::key_missing: ++counts.key_missing; break;
        case rekey_fate::corrupt: ++counts.corrupt; break;
      }
    }
    if (options.progress) {
      options.progress(counts);
    }
    cursor = std::move(result.last_id);
  }
}

std::shared_ptr<message_store> encrypt_at_rest(std::shared_ptr<message_store> inner,
                                               std::shared_ptr<const key_ring> ring) {
  return std::make_shared<encrypting_store>(std::move(inner), std::move(ring));
}

}  // namespace mxgw::store
