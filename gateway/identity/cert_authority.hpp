// Certificate tooling for development and enrolment: a CA (ECDSA P-256), server and partner
// certificates, CRLs. OpenSSL's C API only; the `openssl` program is never called.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::identity {

struct cert_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A certificate signing request that the gateway will not sign (weak key, a name it may not
/// ask for, a bad signature, not a CSR). The message says which and is safe to show.
struct csr_refused : cert_error {
  using cert_error::cert_error;
};

/// What to put into a certificate. Defaults give a one-year client certificate.
/// Normalises a serial given as hex ("0x" prefix and ':' separators allowed, any case) to the
/// upper-case form without leading zeros used in issued.json and the admin API. nullopt when it
/// is not hex (or longer than 64 digits).
std::optional<std::string> normalize_serial(std::string_view text);

/// How far a CRL's lastUpdate lies before the moment it is made (as certificates' notBefore).
inline constexpr std::chrono::minutes crl_backdating{5};

struct certificate_request {
  std::string common_name;
  std::vector<std::string> san_uris;     ///< e.g. "urn:mxgw:partner:kh-ratanakiri"
  std::vector<std::string> san_dns;      ///< e.g. "localhost"
  std::vector<std::string> san_ips;      ///< e.g. "127.0.0.1", "::1"
  bool client_auth = true;               ///< extendedKeyUsage clientAuth
  bool server_auth = false;              ///< extendedKeyUsage serverAuth
  bool omit_extended_key_usage = false;  ///< no EKU extension at all (tests of refusal)
  std::chrono::system_clock::time_point not_before =
      std::chrono::system_clock::now() - std::chrono::minutes(5);
  std::chrono::system_clock::time_point not_after =
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365);
};

struct issued_certificate {
  std::string cert_pem;
  std::string key_pem;             ///< PKCS#8 PEM of a fresh ECDSA P-256 key
  std::string serial_hex;          ///< upper-case hex, no separators
  std::string sha256_fingerprint;  ///< lower-case hex of SHA-256 over the DER certificate
};

struct revoked_entry {
  std::string serial_hex;
  std::chrono::system_clock::time_point revoked_at = std::chrono::system_clock::now();
};

/// A certificate authority held in memory (certificate + private key).
class cert_authority {
 public:
  /// Creates a new self-signed CA with a fresh ECDSA P-256 key (basicConstraints CA:TRUE critical,
  /// keyUsage keyCertSign+cRLSign). Throws cert_error on any OpenSSL failure.
  static cert_authority create(const std::string& common_name,
                               std::chrono::system_clock::time_point not_before,
                               std::chrono::system_clock::time_point not_after);
  /// Loads a CA from PEM files. Throws cert_error when unreadable or when key and cert differ.
  static cert_authority load(const std::filesystem::path& cert_pem,
                             const std::filesystem::path& key_pem);

  /// Issues a leaf certificate (CA:FALSE, keyUsage digitalSignature) with a fresh key and a random
  /// 128-bit serial. Throws cert_error.
  issued_certificate issue(const certificate_request& request) const;

  /// Signs the public key of a PEM CSR into a leaf certificate shaped like issue()'s (names,
  /// usage and validity from `request`, never from the CSR). Throws csr_refused when the CSR is
  /// unreadable, its signature does not verify with its own key, its key is weak (RSA < 2048
  /// bits; EC on a curve other than P-256/P-384; anything but RSA, EC, Ed25519), or it asks for a
  /// SAN URI urn:mxgw:partner:* or urn:mxgw:admin:* not in `allowed_uris`. key_pem stays empty.
  issued_certificate sign_csr(const std::string& csr_pem, const certificate_request& request,
                              const std::vector<std::string>& allowed_uris) const;

  /// A CRL (PEM, version 2, SHA-256) listing the given serials, valid until now + `validity`;
  /// its lastUpdate is backdated by `crl_backdating` so that verifiers whose clocks are a little
  /// behind accept it at once. Throws cert_error for a non-positive validity or a bad serial.
  std::string make_crl(const std::vector<revoked_entry>& revoked,
                       std::chrono::hours validity = std::chrono::hours(24 * 30)) const;

  std::string cert_pem() const;
  std::string key_pem() const;

  cert_authority(cert_authority&&) noexcept;
  cert_authority& operator=(cert_authority&&) noexcept;
  ~cert_authority();

 private:
  struct impl;
  explicit cert_authority(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Lower-case hex SHA-256 of the DER encoding of the first certificate in `cert_pem`.
/// Throws cert_error when the PEM holds no certificate.
std::string sha256_fingerprint_of_pem(const std::string& cert_pem);

/// Lower-case hex SHA-256 of the DER encoding of every certificate in the PEM bundle `pem`, in
/// file order: what a TLS context loads from such a file as trust anchors ("CERTIFICATE" and
/// "TRUSTED CERTIFICATE" blocks). Empty when it holds none or a block is malformed (a TLS context
/// refuses such a file). Never throws for bad input.
std::vector<std::string> sha256_fingerprints_of_pem_bundle(const std::string& pem);

/// The same for the anchor file `pem_file`; empty when it cannot be read.
std::vector<std::string> sha256_fingerprints_of_pem_file(const std::filesystem::path& pem_file);

/// Writes `contents` to `path` atomically (temp file + rename) with the given mode (0600 for keys,
/// 0644 for certificates). The file never exists with wider permissions. Throws cert_error.
void write_file_with_mode(const std::filesystem::path& path, const std::string& contents,
                          unsigned mode);

/// The on-disk development/enrolment directory used by `mxgw certs`:
///   DIR/ca.pem, DIR/ca.key (0600)          the CA
///   DIR/server.pem, DIR/server.key (0600)  the gateway's server certificate (localhost, 127.0.0.1,
///   ::1) DIR/crl.pem                            the current CRL (empty list at init)
///   DIR/issued.json                        serial, subject, SAN, not-after, fingerprint, revoked
///   flag
/// init refuses to overwrite an existing CA unless `force` is set.
struct certs_dir_options {
  std::filesystem::path dir;
  std::string ca_name = "mxgw development CA";
  bool force = false;
};
void certs_init(const certs_dir_options& options);

/// Issues DIR-signed client certificate for partner `partner_id` (SAN URI urn:mxgw:partner:<id>)
/// into PREFIX.pem and PREFIX.key (0600); records it in issued.json. Returns the result.
issued_certificate certs_issue_partner(const std::filesystem::path& dir,
                                       const std::string& partner_id,
                                       const std::filesystem::path& out_prefix,
                                       std::chrono::hours validity = std::chrono::hours(24 * 365));

/// Marks the certificate with this serial (or the certificate in this PEM file) revoked in
/// issued.json and rewrites DIR/crl.pem. Throws cert_error when the serial is unknown.
void certs_revoke(const std::filesystem::path& dir, const std::string& serial_or_cert_file);

/// Signs a partner's CSR with the CA in DIR (SAN URI urn:mxgw:partner:<id>, clientAuth, `validity`
/// from now) and records it in issued.json. Throws csr_refused (see sign_csr) or cert_error.
issued_certificate certs_sign_partner_csr(const std::filesystem::path& dir,
                                          const std::string& partner_id, const std::string& csr_pem,
                                          std::chrono::hours validity);

/// The administrators' trust anchor in DIR (admin-ca.pem, admin-ca.key 0600, admin-crl.pem; made
/// when missing, kept otherwise) and one admin client certificate for `admin_name` (SAN URI
/// urn:mxgw:admin:<name>, clientAuth, one year): admin.pem/admin.key for "dev",
/// admin-<name>.pem/.key otherwise. The admin CA is separate from the partner CA on purpose.
void certs_init_admin(const std::filesystem::path& dir, const std::string& admin_name);

/// True when issued.json in DIR records a certificate with this serial.
bool certs_dir_knows_serial(const std::filesystem::path& dir, const std::string& serial_hex);

/// What the gateway reads from a certificate someone hands in.
struct certificate_description {
  std::string serial_hex, sha256_fingerprint, subject, not_before, not_after;  // RFC 3339 times
  std::vector<std::string> partner_uris, admin_uris;
  bool is_ca = false;
  bool client_auth = false;
};
/// Throws cert_error when the PEM holds no certificate.
certificate_description describe_certificate(const std::string& cert_pem);

/// One line per issued certificate, for `mxgw certs list`.
struct issued_record {
  std::string serial_hex, subject, san_uri, not_after, sha256_fingerprint;
  bool revoked = false;
};
std::vector<issued_record> certs_list(const std::filesystem::path& dir);

}  // namespace mxgw::identity
