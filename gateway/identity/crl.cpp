// CRLs for TLS peer checks (see crl.hpp).
#include "gateway/identity/crl.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <stdexcept>

#include "gateway/common/log.hpp"
#include "gateway/identity/peer_identity.hpp"

namespace mxgw::identity {

std::vector<std::shared_ptr<X509>> anchors_of(X509_STORE* store) {
  std::vector<std::shared_ptr<X509>> out;
  X509_STORE_lock(store);
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
      X509_up_ref(cert);
      out.emplace_back(cert, &X509_free);
    }
  }
  X509_STORE_unlock(store);
  return out;
}

crl_batch read_crls(const std::vector<std::shared_ptr<X509>>& anchors,
                    const std::vector<std::filesystem::path>& files,
                    std::vector<config_problem>& problems, std::vector<std::string>& stale) {
  crl_batch out;
  for (const auto& file : files) {
    using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
    bio_ptr bio(BIO_new_file(file.c_str(), "r"), &BIO_free);
    if (!bio) {
      ERR_clear_error();
      problems.push_back({file.string(), "", "cannot open CRL file"});
      continue;
    }
    std::vector<std::shared_ptr<X509_CRL>> read;
    int count = 0;
    bool is_stale = false;
    bool refused = false;
    while (X509_CRL* raw = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
      std::shared_ptr<X509_CRL> crl(raw, &X509_CRL_free);
      ++count;
      const bool vouched = std::any_of(anchors.begin(), anchors.end(), [raw](const auto& ca) {
        return X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_CRL_get_issuer(raw)) == 0 &&
               X509_CRL_verify(raw, X509_get0_pubkey(ca.get())) == 1;
      });
      if (!vouched) {
        problems.push_back(
            {file.string(), "",
             "CRL " + std::to_string(count) + " is not signed by any of the trust anchors"});
        refused = true;
        continue;
      }
      const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(raw);
      is_stale = is_stale || (next_update != nullptr && X509_cmp_current_time(next_update) <= 0);
      read.push_back(std::move(crl));
    }
    ERR_clear_error();  // the loop ends on "no start line" (or a CRL that does not parse)
    if (count == 0) {
      problems.push_back({file.string(), "", "holds no CRL"});
      continue;
    }
    if (refused) {
      continue;
    }
    if (is_stale) {
      stale.push_back(file.string());
    }
    for (auto& crl : read) {
      STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
      for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
        const ASN1_INTEGER* serial =
            X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
        if (BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr)) {
          if (char* hex = BN_bn2hex(bn)) {
            out.revoked_serials.insert(hex);
            OPENSSL_free(hex);
          }
          BN_free(bn);
        }
      }
      out.crls.push_back(std::move(crl));
    }
  }
  return out;
}

void add_crls(X509_STORE* store, const crl_batch& batch) {
  for (const auto& crl : batch.crls) {
    X509_STORE_add_crl(store, crl.get());
  }
  if (!batch.crls.empty()) {
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
}

std::shared_ptr<X509_STORE> make_verify_store(const std::vector<std::shared_ptr<X509>>& anchors,
                                              const crl_batch& batch, int purpose) {
  std::shared_ptr<X509_STORE> store(X509_STORE_new(), &X509_STORE_free);
  if (!store) {
    return nullptr;
  }
  for (const auto& ca : anchors) {
    X509_STORE_add_cert(store.get(), ca.get());
  }
  add_crls(store.get(), batch);
  if (purpose != 0) {
    X509_STORE_set_purpose(store.get(), purpose);
  }
  return store;
}

void log_stale_crls(const std::vector<std::string>& stale) {
  for (const auto& file : stale) {
    log::warn({.event = "tls.crl_stale",
               .detail = file + ": past its nextUpdate; its issuer's certificates are refused "
                                "until a newer CRL is loaded"});
  }
}

void load_crls_into(X509_STORE* store, const std::vector<std::filesystem::path>& files) {
  std::vector<config_problem> problems;
  std::vector<std::string> stale;
  const auto batch = read_crls(anchors_of(store), files, problems, stale);
  if (!problems.empty()) {
    throw std::runtime_error(problems.front().file + ": " + problems.front().reason);
  }
  log_stale_crls(stale);
  add_crls(store, batch);
}

renewed_store renew_store(X509_STORE* current, const std::vector<std::filesystem::path>& files,
                          int purpose, std::vector<config_problem>& problems,
                          std::vector<std::string>& stale) {
  const auto anchors = anchors_of(current);
  const std::size_t before = problems.size();
  renewed_store out{nullptr, read_crls(anchors, files, problems, stale)};
  if (problems.size() != before) {
    return {};
  }
  out.store = make_verify_store(anchors, out.batch, purpose);
  if (!out.store) {
    problems.push_back({"(openssl)", "", "cannot make a certificate store"});
    return {};
  }
  log_stale_crls(stale);
  return out;
}

namespace {

// The issuers whose CRLs `store` consults when it verifies `leaf` and its verified `chain`: the
// leaf's, or every certificate's of the chain with X509_V_FLAG_CRL_CHECK_ALL; none when the store
// checks no CRL.
std::vector<const X509_NAME*> checked_issuers(X509_STORE* store, X509* leaf,
                                              STACK_OF(X509) * chain) {
  const unsigned long flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store));
  if ((flags & X509_V_FLAG_CRL_CHECK) == 0 || leaf == nullptr) {
    return {};
  }
  std::vector<const X509_NAME*> issuers{X509_get_issuer_name(leaf)};
  if ((flags & X509_V_FLAG_CRL_CHECK_ALL) != 0) {
    for (int i = 1; chain != nullptr && i < sk_X509_num(chain); ++i) {
      issuers.push_back(X509_get_issuer_name(sk_X509_value(chain, i)));
    }
  }
  return issuers;
}

// Calls `visit` on each CRL of `store` (under the store's lock).
template <typename Visit>
void for_each_crl(X509_STORE* store, Visit visit) {
  X509_STORE_lock(store);
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (const X509_CRL* crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objects, i))) {
      visit(crl);
    }
  }
  X509_STORE_unlock(store);
}

// Calls `visit` on each CRL of `store` whose issuer is one of `issuers`.
template <typename Visit>
void for_each_crl_of(X509_STORE* store, const std::vector<const X509_NAME*>& issuers, Visit visit) {
  if (issuers.empty()) {
    return;
  }
  for_each_crl(store, [&](const X509_CRL* crl) {
    const X509_NAME* issuer = X509_CRL_get_issuer(crl);
    if (std::any_of(issuers.begin(), issuers.end(),
                    [issuer](const X509_NAME* n) { return X509_NAME_cmp(n, issuer) == 0; })) {
      visit(crl);
    }
  });
}

// The earliest nextUpdate or lastUpdate later than `at` of the CRLs `for_each` visits (it calls
// its argument on each): the first time at which one of them passes its nextUpdate or comes into
// force. time_point::max() when there is none.
template <typename ForEach>
std::chrono::system_clock::time_point earliest_change_after(std::time_t at, ForEach for_each) {
  const auto later = std::chrono::system_clock::from_time_t(at);
  auto until = std::chrono::system_clock::time_point::max();
  auto consider = [&](const ASN1_TIME* time) {
    if (const auto t = time_of(time); t && *t > later) {
      until = std::min(until, *t);
    }
  };
  for_each([&](const X509_CRL* crl) {
    consider(X509_CRL_get0_nextUpdate(crl));
    consider(X509_CRL_get0_lastUpdate(crl));
  });
  return until;
}

// As OpenSSL decides: a CRL whose nextUpdate is not later than the time of the check has expired.
bool is_past_next_update(const X509_CRL* crl, std::time_t at) {
  const auto next_update = time_of(X509_CRL_get0_nextUpdate(crl));
  return next_update && *next_update <= std::chrono::system_clock::from_time_t(at);
}

}  // namespace

std::chrono::system_clock::time_point revocation_decision_until(X509_STORE* store, X509* leaf,
                                                                STACK_OF(X509) * chain,
                                                                std::time_t at) {
  return earliest_change_after(at, [&](const auto& visit) {
    for_each_crl_of(store, checked_issuers(store, leaf, chain), visit);
  });
}

std::chrono::system_clock::time_point next_crl_change(X509_STORE* store, std::time_t at) {
  return earliest_change_after(at, [&](const auto& visit) { for_each_crl(store, visit); });
}

bool rests_on_stale_crl(X509_STORE* store, X509* leaf, STACK_OF(X509) * chain, std::time_t at) {
  bool stale = false;
  for_each_crl_of(store, checked_issuers(store, leaf, chain),
                  [&](const X509_CRL* crl) { stale = stale || is_past_next_update(crl, at); });
  return stale;
}

bool holds_stale_crl(X509_STORE* store, std::time_t at) {
  bool stale = false;
  for_each_crl(store, [&](const X509_CRL* crl) { stale = stale || is_past_next_update(crl, at); });
  return stale;
}

}  // namespace mxgw::identity
