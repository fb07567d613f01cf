// Certificate revocation lists for a TLS peer check (the listeners' client certificates, the
// delivery client's partner endpoints): read from files, trusted only when one of the check's own
// anchors signed them, and put in force in a new verification store that connections take one by
// one, so CRLs can be renewed while connections are open.
#pragma once

#include <openssl/types.h>
#include <openssl/x509.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::identity {

/// The trust anchors (certificates) in `store`, taken under its lock (handshakes in progress may
/// sort its objects meanwhile).
std::vector<std::shared_ptr<X509>> anchors_of(X509_STORE* store);

/// CRLs read from files and checked.
struct crl_batch {
  std::vector<std::shared_ptr<X509_CRL>> crls;
  std::set<std::string> revoked_serials;  ///< every serial they list (upper-case hex)
};

/// Reads every CRL in `files` (PEM, one or more a file). Each must be signed by one of `anchors`:
/// a CRL none of them vouches for is a problem (in force, it would refuse every certificate of
/// its issuer). Problems are (file, "", reason); a file with a problem contributes nothing. A CRL
/// past its nextUpdate is no problem (OpenSSL refuses its issuer's certificates until a newer one
/// comes; it is what the operator gave) but its file is named in `stale`.
crl_batch read_crls(const std::vector<std::shared_ptr<X509>>& anchors,
                    const std::vector<std::filesystem::path>& files,
                    std::vector<config_problem>& problems, std::vector<std::string>& stale);

/// Puts the CRLs in `store` and turns CRL checking on when there are any.
void add_crls(X509_STORE* store, const crl_batch& batch);

/// A new verification store: `anchors` and `batch`'s CRLs; `purpose` (X509_PURPOSE_*) when not 0.
/// Null when OpenSSL cannot make one.
std::shared_ptr<X509_STORE> make_verify_store(const std::vector<std::shared_ptr<X509>>& anchors,
                                              const crl_batch& batch, int purpose);

/// Logs each stale file (`tls.crl_stale`, the file name only).
void log_stale_crls(const std::vector<std::string>& stale);

/// At start: reads `files` against the anchors already in `store` and adds their CRLs to it.
/// Throws std::runtime_error "FILE: REASON" on the first problem; stale files are logged.
void load_crls_into(X509_STORE* store, const std::vector<std::filesystem::path>& files);

/// For a reload: a new verification store with the anchors of `current` (a store that is not
/// changed after start) and the CRLs of `files`, `purpose` as for make_verify_store. On a problem
/// (appended to `problems`) the store is null; stale files are logged and named in `stale`.
struct renewed_store {
  std::shared_ptr<X509_STORE> store;
  crl_batch batch;
};
renewed_store renew_store(X509_STORE* current, const std::vector<std::filesystem::path>& files,
                          int purpose, std::vector<config_problem>& problems,
                          std::vector<std::string>& stale);

/// Until when a revocation decision on `leaf` and its verified `chain` (leaf first, may be null)
/// against `store`, made at `at` (whole seconds, as OpenSSL compares), stands by the passing of
/// time alone: the earliest nextUpdate or lastUpdate later than `at` of the store's CRLs that
/// cover a certificate the store checks (the leaf's issuer; every issuer of the chain with
/// X509_V_FLAG_CRL_CHECK_ALL). From then on a CRL it rested on may be past its nextUpdate, or one
/// not yet in force may be, so the decision must be made again. time_point::max() when the store
/// checks no CRL or none covers the chain. Thread-safe (reads the store under its lock).
std::chrono::system_clock::time_point revocation_decision_until(X509_STORE* store, X509* leaf,
                                                                STACK_OF(X509) * chain,
                                                                std::time_t at);

/// When the passing of time alone next changes what the CRLs of `store` decide: the earliest
/// nextUpdate or lastUpdate later than `at` of any of its CRLs (revocation_decision_until of every
/// chain falls on one of these times). From then on a connection whose decision rested on that CRL
/// must be decided on again. time_point::max() when the store holds no CRL. Thread-safe.
std::chrono::system_clock::time_point next_crl_change(X509_STORE* store, std::time_t at);

/// True when a CRL of `store` that covers `leaf` and its verified `chain` (the CRLs
/// revocation_decision_until looks at) is past its nextUpdate at `at`: verifying the chain at `at`
/// may then be refused `crl-expired` (it is, unless the store also holds a current CRL of that
/// issuer; only verifying decides). False when the store checks no CRL. Thread-safe.
bool rests_on_stale_crl(X509_STORE* store, X509* leaf, STACK_OF(X509) * chain, std::time_t at);

/// True when any CRL of `store` is past its nextUpdate at `at`. Thread-safe.
bool holds_stale_crl(X509_STORE* store, std::time_t at);

}  // namespace mxgw::identity
