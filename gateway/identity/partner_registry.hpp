// Partner definitions and the rule that maps a verified client certificate to exactly one partner.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::identity {

/// One partner agency, as defined in the partners file.
struct partner {
  std::string id;              ///< e.g. "kh-ratanakiri"; pattern ^[a-z0-9][a-z0-9-]{1,62}$
  std::string name;            ///< display name of the agency (not personal data)
  std::string country;         ///< ISO 3166-1 alpha-2
  std::string adapter = "mx";  ///< wire format of this partner
  bool enabled = true;
  std::vector<std::string> pinned_sha256;  ///< lower-case hex certificate fingerprints
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
};

enum class identity_refusal {
  none,
  no_partner_identity,  ///< neither a partner SAN URI nor a pinned fingerprint
  ambiguous,            ///< several partner ids (SAN URIs, or SAN and pin disagree)
  unknown_partner,      ///< the id names no configured partner
  disabled_partner,     ///< the partner exists but is disabled
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
  /// duplicate pin, bad fingerprint) is appended to `problems`; valid partners are kept.
  static partner_registry load(const std::filesystem::path& file,
                               std::vector<config_problem>& problems);

  /// Adds one partner (tests and programmatic set-up). Returns false on a duplicate id.
  bool add(partner p);

  const partner* find(std::string_view id) const;
  std::size_t size() const { return partners_.size(); }

  /// Decides which partner a verified certificate belongs to: exactly one id, from the SAN URI or
  /// from a pinned fingerprint (when both are present they must agree), enabled.
  identity_decision identify(const certificate_facts& facts) const;

 private:
  std::map<std::string, partner, std::less<>> partners_;
  std::map<std::string, std::string, std::less<>> pins_;  // fingerprint -> partner id
};

/// True when `id` is a syntactically valid partner id.
bool is_valid_partner_id(std::string_view id);

}  // namespace mxgw::identity
