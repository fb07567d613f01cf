// Audit chain verification (see verify.hpp).
#include "gateway/audit/verify.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <future>
#include <stdexcept>

#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::audit {
namespace {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

std::optional<std::string> base64_decode(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) {
    --size;  // EVP_DecodeBlock counts the padding as zero bytes
  }
  out.resize(size);
  return out;
}

std::string range_text(std::int64_t first, std::int64_t last) {
  if (first == last) {
    return "entry " + std::to_string(first) + " is";
  }
  if (last == first + 1) {
    return "entries " + std::to_string(first) + " and " + std::to_string(last) + " are";
  }
  return "entries " + std::to_string(first) + " to " + std::to_string(last) + " are";
}

}  // namespace

// ---- signer_keys ----

struct signer_keys::impl {
  std::map<std::string, pkey_ptr, std::less<>> keys;
};

signer_keys::signer_keys() : impl_(std::make_unique<impl>()) {}
signer_keys::~signer_keys() = default;
signer_keys::signer_keys(signer_keys&&) noexcept = default;
signer_keys& signer_keys::operator=(signer_keys&&) noexcept = default;

std::string signer_keys::add_pem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, &X509_free);
  if (!cert) {
    throw std::runtime_error("holds no PEM certificate");
  }
  unsigned char* der = nullptr;
  const int der_size = i2d_X509(cert.get(), &der);
  if (der_size <= 0) {
    throw std::runtime_error("the certificate cannot be encoded");
  }
  const std::string fingerprint =
      sha256_hex(std::string_view(reinterpret_cast<const char*>(der), std::size_t(der_size)));
  OPENSSL_free(der);
  EVP_PKEY* key = X509_get_pubkey(cert.get());  // a new reference
  if (key == nullptr) {
    throw std::runtime_error("the certificate's public key cannot be read");
  }
  impl_->keys.insert_or_assign(fingerprint, pkey_ptr(key));
  return fingerprint;
}

bool signer_keys::knows(const std::string& fingerprint) const {
  return impl_->keys.contains(fingerprint);
}

std::size_t signer_keys::size() const {
  return impl_->keys.size();
}

bool signer_keys::verify(const std::string& fingerprint, const std::string& data,
                         const std::string& signature_b64) const {
  auto it = impl_->keys.find(fingerprint);
  if (it == impl_->keys.end()) {
    return false;
  }
  const auto signature = base64_decode(signature_b64);
  if (!signature) {
    return false;
  }
  EVP_PKEY* key = it->second.get();
  // Ed25519/Ed448 sign the message itself; every other key type signs its SHA-256.
  const bool pure = EVP_PKEY_is_a(key, "ED25519") == 1 || EVP_PKEY_is_a(key, "ED448") == 1;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, pure ? nullptr : EVP_sha256(), nullptr, key) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                          signature->size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

// ---- parse_entry ----

std::optional<parsed_entry> parse_entry(const std::string& entry) {
  rapidjson::Document doc;
  if (json::parse_untrusted(entry, doc, {.max_depth = 4}) || !doc.IsObject()) {
    return std::nullopt;
  }
  auto text = [&](const char* name, std::string& out) {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsString()) {
      return false;
    }
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  parsed_entry e;
  auto seq = doc.FindMember("seq");
  auto details = doc.FindMember("details");
  if (seq == doc.MemberEnd() || !seq->value.IsInt64() || details == doc.MemberEnd() ||
      !details->value.IsObject() || !text("at", e.at) || !text("event", e.record.event) ||
      !text("actor", e.record.actor) || !text("partner", e.record.partner) ||
      !text("message", e.record.message_id) || !text("prev", e.prev)) {
    return std::nullopt;
  }
  e.seq = seq->value.GetInt64();
  for (const auto& m : details->value.GetObject()) {
    if (!m.value.IsString()) {
      return std::nullopt;
    }
    e.record.details.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                                  std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  // Canonical form only: the same members, in the same order, written the same way.
  if (entry_bytes(e.seq, e.at, e.record, e.prev) != entry) {
    return std::nullopt;
  }
  return e;
}

// ---- chain_verifier ----

chain_verifier::chain_verifier(std::vector<checkpoint> checkpoints, const signer_keys& keys)
    : keys_(keys), hash_(genesis_hash()) {
  for (auto& c : checkpoints) {
    const std::int64_t seq = c.seq;
    checkpoints_.insert_or_assign(seq, std::move(c));
  }
}

void chain_verifier::resume_after(std::int64_t seq, std::string hash) {
  seq_ = seq;
  anchor_ = seq;
  hash_ = std::move(hash);
  checkpoints_.erase(checkpoints_.begin(), checkpoints_.upper_bound(seq));
}

bool chain_verifier::fail(std::string problem, std::int64_t seq, std::string message) {
  failed_ = true;
  report_.problem = std::move(problem);
  report_.seq = seq;
  report_.message = std::move(message);
  return false;
}

bool chain_verifier::add(const audit_row& row) {
  if (failed_) {
    return false;
  }
  ++report_.entries;
  // The row's own integrity first: its bytes against its hash (computed once: the gateway's
  // checkpointer runs this for every entry it vouches for), then the bytes' form.
  const bool hash_holds = sha256_hex(row.entry) == row.hash;
  std::optional<parsed_entry> entry;
  if (hash_holds) {
    entry = parse_entry(row.entry);
  }
  if (gap_) {
    // The row before this one skipped ahead; this row tells a reordering from a deletion.
    return judge_gap(entry ? &*entry : nullptr);
  }
  if (!hash_holds) {
    return fail(
        "altered", row.seq,
        "entry " + std::to_string(row.seq) + " was altered: its bytes no longer match its hash");
  }
  if (!entry) {
    return fail("altered", row.seq,
                "entry " + std::to_string(row.seq) + " was altered: it is not a well-formed entry");
  }
  const std::int64_t expected = seq_ + 1;
  if (entry->seq > expected) {
    gap_ = true;
    gap_seq_ = entry->seq;
    return true;
  }
  if (entry->seq < expected) {
    return fail("out-of-order", entry->seq,
                "entries " + std::to_string(entry->seq) + " and " + std::to_string(seq_) +
                    " are out of order: entry " + std::to_string(entry->seq) +
                    " appears again after entry " + std::to_string(seq_));
  }
  return check_row(row, *entry);
}

bool chain_verifier::check_row(const audit_row& row, const parsed_entry& entry) {
  const std::string where = "entry " + std::to_string(entry.seq);
  if (entry.prev != hash_) {
    // Entry seq_ was rewritten with a fresh hash (its successor still holds the old one); at the
    // start of the chain (or of a resumed check) the link itself is what changed.
    if (seq_ == anchor_) {
      return fail("altered", entry.seq,
                  where + " was altered: it does not link to " +
                      (seq_ == 0 ? std::string("the start of the chain")
                                 : "entry " + std::to_string(seq_)));
    }
    return fail("altered", seq_,
                "entry " + std::to_string(seq_) + " was altered: entry " +
                    std::to_string(entry.seq) + " recorded a different hash for it");
  }
  // The query columns must say what the hashed bytes say.
  const std::pair<const char*, bool> columns[] = {
      {"seq", row.seq == entry.seq},
      {"at", row.at == entry.at},
      {"event", row.event == entry.record.event},
      {"actor", row.actor == entry.record.actor},
      {"partner", row.partner == entry.record.partner},
      {"message_id", row.message_id == entry.record.message_id}};
  for (const auto& [column, same] : columns) {
    if (!same) {
      return fail("altered", entry.seq,
                  where + " was altered: its " + column + " column differs from the hashed entry");
    }
  }
  if (auto c = checkpoints_.find(entry.seq); c != checkpoints_.end()) {
    if (!check_checkpoint(c->second, &row)) {
      return false;
    }
  }
  if (!check_anchors(row)) {
    return false;
  }
  seq_ = entry.seq;
  hash_ = row.hash;
  report_.head_seq = seq_;
  return true;
}

void chain_verifier::expect(std::vector<external_anchor> anchors) {
  for (auto& a : anchors) {
    const auto seq = a.seq;
    anchors_.emplace(seq, std::move(a));
  }
}

bool chain_verifier::check_anchors(const audit_row& row) {
  const auto [first, last] = anchors_.equal_range(row.seq);
  for (auto it = first; it != last; ++it) {
    const auto& a = it->second;
    const std::string at = std::to_string(row.seq);
    if (a.hash != row.hash) {
      return fail("anchor-mismatch", row.seq,
                  "entry " + at + " does not match the anchor of " + a.source +
                      ": the chain was changed and re-hashed at or before entry " + at);
    }
    if (a.checkpoint && !checkpoints_.contains(row.seq)) {
      return fail("checkpoint-missing", row.seq,
                  "the checkpoint at " + at + " logged in " + a.source +
                      " is no longer in the store: checkpoints were removed");
    }
    ++report_.anchors;
    report_.last_anchor = row.seq;
  }
  return true;
}

bool chain_verifier::check_checkpoint(const checkpoint& c, const audit_row* row) {
  const std::string at = std::to_string(c.seq);
  if (!keys_.knows(c.signer)) {
    return fail("checkpoint-signer", c.seq,
                "checkpoint at " + at + " was signed by an unknown certificate (sha256 " +
                    c.signer + "); give every certificate the gateway has used");
  }
  if (!keys_.verify(c.signer, checkpoint_bytes(c.seq, c.hash, c.at), c.signature)) {
    return fail("checkpoint-signature", c.seq, "checkpoint signature at " + at + " is invalid");
  }
  if (row != nullptr && row->hash != c.hash) {
    return fail("checkpoint-mismatch", c.seq,
                "checkpoint at " + at + " does not match entry " + at + ": an entry after " +
                    (matched_ == 0 ? std::string("the start of the chain")
                                   : "entry " + std::to_string(matched_) +
                                         " (the last checkpoint that matched)") +
                    " was changed and the chain re-hashed");
  }
  matched_ = c.seq;
  ++report_.checkpoints;
  report_.last_checkpoint = c.seq;
  return true;
}

bool chain_verifier::judge_gap(const parsed_entry* next) {
  const std::int64_t expected = seq_ + 1;
  const std::string before =
      seq_ == 0 ? std::string("the chain starts at ") : std::to_string(seq_) + " is followed by ";
  if (next != nullptr && next->seq == expected) {
    // The missing entry comes right after: the two were swapped.
    return fail("out-of-order", expected,
                "entries " + std::to_string(expected) + " and " + std::to_string(gap_seq_) +
                    " are out of order");
  }
  if (next != nullptr && next->seq == expected + 1 && gap_seq_ != expected + 1) {
    // The chain goes on from `expected` as if nothing happened: the row stands in its place.
    return fail("out-of-order", expected,
                "entries " + std::to_string(expected) + " and " + std::to_string(gap_seq_) +
                    " are out of order: entry " + std::to_string(gap_seq_) + " stands where " +
                    std::to_string(expected) + " belongs");
  }
  return fail(
      "missing", expected,
      range_text(expected, gap_seq_ - 1) + " missing (" + before + std::to_string(gap_seq_) + ")");
}

verify_report chain_verifier::finish() {
  if (!failed_ && gap_) {
    judge_gap(nullptr);
  }
  if (!failed_) {
    // Checkpoints beyond the last entry: the tail was cut off (once their signature holds).
    for (const auto& [seq, c] : checkpoints_) {
      if (seq <= seq_) {
        continue;
      }
      if (check_checkpoint(c, nullptr)) {
        fail("truncated", seq,
             "the chain ends at " + std::to_string(seq_) + " but a checkpoint vouches for " +
                 std::to_string(seq));
      }
      break;
    }
  }
  if (!failed_) {
    // An anchor beyond the last entry: the tail was cut, and the checkpoints with it.
    if (auto beyond = anchors_.upper_bound(seq_); beyond != anchors_.end()) {
      fail("truncated", beyond->first,
           "the chain ends at " + std::to_string(seq_) + " but the anchor of " +
               beyond->second.source + " names entry " + std::to_string(beyond->first));
    }
  }
  report_.intact = !failed_;
  report_.head_seq = seq_;
  report_.head_hash = hash_;
  return report_;
}

// ---- external anchors ----

namespace {

bool is_hash(std::string_view h) {
  return h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::optional<std::int64_t> positive(std::string_view text) {
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n <= 0) {
    return std::nullopt;
  }
  return n;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
      ++i;
    }
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
      ++i;
    }
    if (i > start) {
      out.push_back(line.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace

std::vector<external_anchor> read_anchors(std::string_view text, const std::string& name,
                                          std::string& error) {
  std::vector<external_anchor> out;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++number;
    const std::string source = name + ":" + std::to_string(number);
    auto bad = [&](const std::string& what) {
      error = source + ": " + what;
      out.clear();
      return out;
    };
    auto w = words(line);
    if (w.empty()) {
      continue;
    }
    // seq_text and hash view into `line` or into `doc`, which lives until they are read.
    rapidjson::Document doc;
    std::string_view seq_text, hash;
    bool checkpoint = false;
    if (w.front().front() == '{') {
      if (json::parse_untrusted(line, doc) || !doc.IsObject()) {
        return bad("not a JSON log line");
      }
      if (json::get_string(doc, "event") != "audit.checkpoint") {
        continue;  // the rest of a gateway's log
      }
      // "seq N hash H signer S", as the checkpointer logs it.
      const auto d = words(json::get_string(doc, "detail"));
      if (d.size() < 4 || d[0] != "seq" || d[2] != "hash") {
        return bad("an audit.checkpoint line without \"seq N hash H\"");
      }
      seq_text = d[1];
      hash = d[3];
      checkpoint = true;
    } else if (line.find("signed checkpoints verified") != std::string_view::npos ||
               line.find("external anchors matched") != std::string_view::npos ||
               line.find("not yet vouched for by a checkpoint") != std::string_view::npos) {
      continue;  // the rest of a summary of mxgw audit verify
    } else if (w.size() == 2) {
      seq_text = w[0];
      hash = w[1];
    } else if (w.size() == 8 && line.starts_with("audit log intact:") && w[5] == "head") {
      seq_text = w[6];
      hash = w[7];
    } else {
      return bad(
          "neither an audit.checkpoint log line, the summary of mxgw audit verify, nor \"SEQ "
          "HASH\"");
    }
    const auto seq = positive(seq_text);
    if (!seq) {
      return bad("the entry number is not a positive whole number");
    }
    if (!is_hash(hash)) {
      return bad("the hash is not 64 lower-case hex digits");
    }
    out.push_back(
        {.seq = *seq, .hash = std::string(hash), .checkpoint = checkpoint, .source = source});
  }
  return out;
}

// ---- verify_store ----

verify_report verify_store(store::message_store& store, const signer_keys& keys,
                           std::size_t page_size, std::vector<external_anchor> anchors) {
  verify_report unreadable;
  unreadable.problem = "unreadable";
  unreadable.message = "the audit log could not be read from the store";

  std::promise<std::pair<std::vector<checkpoint>, bool>> cp;
  auto cf = cp.get_future();
  store.read_checkpoints([&cp](std::vector<checkpoint> c, bool ok) {
    cp.set_value({std::move(c), ok});
  });
  auto [checkpoints, ok] = cf.get();
  if (!ok) {
    return unreadable;
  }
  chain_verifier verifier(std::move(checkpoints), keys);
  verifier.expect(std::move(anchors));
  std::int64_t after = 0;
  for (;;) {
    std::promise<std::pair<std::vector<audit_row>, bool>> p;
    auto f = p.get_future();
    store.read_audit(after, page_size, [&p](std::vector<audit_row> rows, bool read) {
      p.set_value({std::move(rows), read});
    });
    auto [rows, read_ok] = f.get();
    if (!read_ok) {
      return unreadable;
    }
    bool going = true;
    for (const auto& row : rows) {
      if (!verifier.add(row)) {
        going = false;
        break;
      }
    }
    if (!going || rows.size() < page_size) {
      break;
    }
    after = rows.back().seq;
  }
  return verifier.finish();
}

}  // namespace mxgw::audit
