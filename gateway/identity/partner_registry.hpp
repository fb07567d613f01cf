// Partner definitions and the rule that maps a verified client certificate to exactly one partner.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/fwd.h>

namespace mxgw::identity {

/// The canonical message types (envelope `type`), in the order of the model.
std::span<const std::string_view> canonical_message_types();

/// The purposes data may be processed for (handling.purposes, consent.scope, partner purposes).
std::span<const std::string_view> canonical_purposes();

/// The agreements a partner definition may name ("victim-data").
std::span<const std::string_view> known_agreements();

/// How the gateway delivers to one partner (the partner's `delivery` object).
struct delivery_settings {
  std::chrono::milliseconds timeout{10000};  ///< whole exchange (`timeout_ms`)
  int max_attempts = 12;                     ///< then the dead letters
  std::chrono::seconds max_age{86400};       ///< since accept (`max_age_s`)
  std::chrono::milliseconds backoff_base{
      1000};  ///< backoff before the 1st retry (`backoff_base_ms`)
  std::chrono::milliseconds backoff_cap{300000};  ///< largest retry delay (`backoff_cap_ms`)
  int concurrency = 4;                            ///< deliveries in flight at once
};

/// A notice feed the gateway polls on the partner's behalf (the partner's `feed` object; only for
/// partners with the `interpol` adapter). See docs/configuration.md.
struct feed_settings {
  std::string url;                        ///< base https URL of the notice service
  std::chrono::seconds interval{3600};    ///< sweeps start at least this far apart (`interval_s`)
  std::vector<std::string> notice_types;  ///< "red", "yellow", polled in this order
  int page_size = 160;                    ///< `resultPerPage`, 1..160
  std::filesystem::path token_file;  ///< `auth: "token"`: a bearer token file; empty: mutual TLS
  /// This feed's own cap on the notices one sweep may withdraw (`max_withdrawals_per_sweep`,
  /// 1..100000): a sweep finding more gone withdraws none. Absent: the gateway-wide
  /// `feed.max_withdrawals_per_sweep` of gateway.json applies.
  std::optional<std::uint32_t> max_withdrawals_per_sweep;
};

/// True for a SHA-256 fingerprint as the gateway keeps them: 64 lower-case hex digits.
bool is_hex_sha256(std::string_view s);

/// What one rotation of a partner's certificates decided: from `retiring_until` on, a
/// certificate of the partner is refused unless it is the rotation's new certificate
/// (`replaced_by`), was recorded at or after `cut_off` (its record says so, or it is listed in
/// `recorded_since`), is pinned in the partner definition but not among `pinned_before`, or (any
/// other certificate, known by its partner SAN) was issued at or after `cut_off` (its notBefore,
/// allowing issue_backdating in trust_state.hpp). Kept in the trust state
/// (trust_state::cutoffs); a partners file carries them as `rotationCutoffs`.
struct rotation_cutoff {
  std::string cut_off;         ///< RFC 3339 UTC: when the rotation was made
  std::string retiring_until;  ///< RFC 3339 UTC: the end of the overlap
  std::string replaced_by;     ///< fingerprint of the rotation's new certificate
  /// The partner definition's pins at this and every earlier cut-off: they end with the overlap.
  std::vector<std::string> pinned_before;
  /// Certificates recorded at or after `cut_off` on the gateway that exported this cut-off
  /// (`recordedSince`): the records themselves do not travel with the files, so a gateway rebuilt
  /// from them knows by this list what the exporting one knew by each record's recordedAt (say a
  /// pin from `pinned_before` registered again to trust it again). Empty for a rotation's own.
  std::vector<std::string> recorded_since;
  std::chrono::system_clock::time_point cut_off_at, until_at;  ///< the two times, read
};

/// A recorded certificate still in a rotation's overlap, as a partners file carries it
/// (`retiringSha256`): accepted until `retiring_until`, refused from then on.
struct retiring_certificate {
  std::string sha256;          ///< lower-case hex fingerprint
  std::string retiring_until;  ///< RFC 3339 UTC
};

/// One partner agency, as defined in the partners file.
struct partner {
  std::string id;              ///< e.g. "kh-ratanakiri"; pattern ^[a-z0-9][a-z0-9-]{1,62}$
  std::string name;            ///< display name of the agency (not personal data)
  std::string description;     ///< free text of the administrator (kept for export)
  std::string country;         ///< ISO 3166-1 alpha-2
  std::string adapter = "mx";  ///< wire format of this partner
  bool enabled = true;
  std::vector<std::string> pinned_sha256;  ///< lower-case hex certificate fingerprints
  /// Fingerprints of certificates revoked (or retired) for good, written by the admin API's
  /// export so that files rebuilt from it keep refusing them: a certificate listed here is refused
  /// whatever partner it names. Never shortened by an administrator's change.
  std::vector<std::string> revoked_sha256;
  /// What the partner's certificate rotations still decide, written by the admin API's export so
  /// that files rebuilt from it refuse the same certificates once an overlap ends: its rotation
  /// cut-offs (`rotationCutoffs`, as trust_state::cutoffs holds them) and its recorded
  /// certificates still in an overlap (`retiringSha256`). Read into the trust state a gateway
  /// starts from (seed_trust_state), which keeps them from then on.
  std::vector<rotation_cutoff> rotation_cutoffs;
  std::vector<retiring_certificate> retiring_sha256;
  std::string endpoint;  ///< https URL deliveries are POSTed to; empty = cannot be a recipient
  std::optional<std::vector<std::string>> sends;     ///< message types; nullopt = every type
  std::optional<std::vector<std::string>> receives;  ///< message types; nullopt = every type
  std::vector<std::string> agreements;               ///< e.g. "victim-data"
  std::vector<std::string> purposes;                 ///< purposes the partner processes data for
  delivery_settings delivery;
  bool carry_unmapped = false;  ///< keep partner values without a mapping in `unmapped`
  std::optional<feed_settings> feed;  ///< a notice feed polled for this partner

  /// True when the partner may send messages of `type` (`sends` absent = every type).
  bool may_send(std::string_view type) const;
  /// True when the partner accepts messages of `type` (`receives` absent = every type).
  bool may_receive(std::string_view type) const;
  /// True when the partner definition names `agreement`.
  bool has_agreement(std::string_view agreement) const;
};

/// A problem found while loading configuration: which file, which field, what is wrong.
struct config_problem {
  std::string file;
  std::string field;  ///< JSON Pointer into the file
  std::string reason;
};

/// Facts taken from a client certificate that has already passed chain verification.
struct certificate_facts {
  std::vector<std::string> partner_uris;  ///< ids from SAN URIs urn:mxgw:partner:<id>
  std::string sha256_fingerprint;         ///< lower-case hex over the DER certificate
  std::vector<std::string> admin_uris;    ///< names from SAN URIs urn:mxgw:admin:<name>
  std::string serial_hex;                 ///< upper-case hex, no separators
  /// The certificate's notBefore (nullopt when unknown): a partner's rotation cut-off refuses,
  /// after the overlap, certificates issued before it.
  std::optional<std::chrono::system_clock::time_point> not_before;
  /// False when the certificate chains to an anchor of partners known by pin only
  /// (listener.tls.pinned_partner_ca): its partner SAN URIs then name no one.
  bool names_by_san = true;
};

enum class identity_refusal {
  none,
  no_partner_identity,  ///< neither a partner SAN URI nor a pinned fingerprint
  ambiguous,            ///< several partner ids (SAN URIs, or SAN and pin disagree)
  unknown_partner,      ///< the id names no configured partner
  disabled_partner,     ///< the partner exists but is disabled
  revoked_certificate,  ///< the certificate was revoked by an administrator
  retired_certificate,  ///< the certificate was replaced and its overlap window has ended
  admin_certificate,    ///< an administrator's certificate (SAN urn:mxgw:admin:...) is no partner
};

/// Short stable code for logs and metrics ("unknown-partner", ...).
std::string_view to_string(identity_refusal refusal);

struct identity_decision {
  identity_refusal refusal = identity_refusal::none;
  std::string partner_id;  ///< set when refusal == none
};

class partner_registry {
 public:
  partner_registry() = default;

  /// Loads {"partners":[...]} from `file`. Every problem (unknown member, bad id, duplicate id,
  /// duplicate pin, bad fingerprint, bad rotation cut-off or retiring certificate, a retiring
  /// fingerprint another partner pins or lists as retiring, endpoint that is not an https URL,
  /// unknown message type, agreement or purpose, bad delivery setting) is appended to `problems`
  /// with the file and a JSON Pointer; valid partners are kept. With `known_adapters`, an `adapter`
  /// not in the list is a problem too (the gateway passes the adapter registry's ids).
  static partner_registry load(const std::filesystem::path& file,
                               std::vector<config_problem>& problems,
                               const std::vector<std::string>* known_adapters = nullptr);

  /// Reads one partner definition (an element of the file's `partners` array) with the same
  /// checks as load(); problems are appended with `file` and `at` + the member's pointer.
  /// Fingerprints pinned by other partners are not checked here (put() and load() do that).
  static std::optional<partner> parse_partner(const rapidjson::Value& entry, const std::string& at,
                                              std::vector<config_problem>& problems,
                                              const std::string& file,
                                              const std::vector<std::string>* known_adapters);

  /// Adds one partner (tests and programmatic set-up). Returns false on a duplicate id.
  bool add(partner p);

  /// Adds or replaces the partner with p.id. Returns the first fingerprint pinned by another
  /// partner (and changes nothing), or an empty string when it was stored.
  std::string put(partner p);

  /// The partner with `id`, or nullptr.
  const partner* find(std::string_view id) const;
  std::size_t size() const { return partners_.size(); }

  /// Every partner, ordered by id.
  std::vector<const partner*> all() const;

  /// Decides which partner a verified certificate belongs to: exactly one id, from the SAN URI or
  /// from a pinned fingerprint (when both are present they must agree), enabled. A fingerprint
  /// any partner lists in revokedSha256 is refused first (revoked_certificate).
  identity_decision identify(const certificate_facts& facts) const;

  /// True when some partner lists `fingerprint` in its revokedSha256.
  bool is_revoked(std::string_view fingerprint) const;

  /// The partner that pins `fingerprint` in its definition (pinnedSha256), or empty.
  std::string_view pinned_by(std::string_view fingerprint) const;

 private:
  void index(const partner& p);
  void unindex(const partner& p);

  std::map<std::string, partner, std::less<>> partners_;
  std::map<std::string, std::string, std::less<>> pins_;  // fingerprint -> partner id
  std::map<std::string, int, std::less<>> revoked_;       // fingerprint -> partners listing it
};

/// One partner as a partners-file entry (compact JSON); parse_partner() reads it back.
std::string to_json(const partner& p);

/// The whole registry as a partners file ({"partners": [...]}, indented), ordered by id.
std::string to_json(const partner_registry& registry);

/// True when `id` is a syntactically valid partner id.
bool is_valid_partner_id(std::string_view id);

}  // namespace mxgw::identity
