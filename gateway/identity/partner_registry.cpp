// Partner definitions and certificate-to-partner mapping.
#include "gateway/identity/partner_registry.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>

#include "gateway/common/json.hpp"

namespace mxgw::identity {
namespace {

bool is_hex_sha256(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Accepts "AB:CD:..." or "abcd..." and returns lower-case hex without separators.
std::string normalise_fingerprint(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ':') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace

std::string_view to_string(identity_refusal refusal) {
  switch (refusal) {
    case identity_refusal::none: return "none";
    case identity_refusal::no_partner_identity: return "no-partner-identity";
    case identity_refusal::ambiguous: return "ambiguous-identity";
    case identity_refusal::unknown_partner: return "unknown-partner";
    case identity_refusal::disabled_partner: return "disabled-partner";
  }
  return "unknown";
}

bool is_valid_partner_id(std::string_view id) {
  if (id.size() < 2 || id.size() > 63) {
    return false;
  }
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return id.front() != '-' && std::all_of(id.begin(), id.end(), ok);
}

partner_registry partner_registry::load(const std::filesystem::path& file,
                                        std::vector<config_problem>& problems) {
  partner_registry registry;
  const std::string name = file.string();
  rapidjson::Document doc;
  try {
    doc = json::parse_file(name);
  } catch (const std::exception& e) {
    problems.push_back({name, "", e.what()});
    return registry;
  }
  if (!doc.IsObject() || !doc.HasMember("partners") || !doc["partners"].IsArray()) {
    problems.push_back({name, "/partners", "must be an array of partner definitions"});
    return registry;
  }
  static const std::set<std::string, std::less<>> known = {
      "id", "name", "country", "adapter", "enabled", "pinnedSha256", "description"};
  const auto& list = doc["partners"];
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const std::string at = "/partners/" + std::to_string(i);
    const auto& entry = list[i];
    if (!entry.IsObject()) {
      problems.push_back({name, at, "must be an object"});
      continue;
    }
    bool valid = true;
    auto problem = [&](const std::string& field, const std::string& reason) {
      problems.push_back({name, at + field, reason});
      valid = false;
    };
    for (const auto& member : entry.GetObject()) {
      if (!known.contains(std::string_view(member.name.GetString()))) {
        problem("/" + json::escape_pointer_token(member.name.GetString()),
                "is not a known setting");
      }
    }
    partner p;
    p.id = std::string(json::get_string(entry, "id"));
    if (!is_valid_partner_id(p.id)) {
      problem("/id", "must match ^[a-z0-9][a-z0-9-]{1,62}$");
    }
    p.name = std::string(json::get_string(entry, "name"));
    if (p.name.empty()) {
      problem("/name", "is required");
    }
    p.country = std::string(json::get_string(entry, "country"));
    if (p.country.size() != 2 || !std::isupper(static_cast<unsigned char>(p.country[0])) ||
        !std::isupper(static_cast<unsigned char>(p.country[1]))) {
      problem("/country", "must be an ISO 3166-1 alpha-2 code");
    }
    if (entry.HasMember("adapter")) {
      p.adapter = std::string(json::get_string(entry, "adapter"));
      if (p.adapter != "mx") {
        problem("/adapter", "names an unknown adapter (known: mx)");
      }
    }
    if (entry.HasMember("enabled")) {
      if (!entry["enabled"].IsBool()) {
        problem("/enabled", "must be true or false");
      } else {
        p.enabled = entry["enabled"].GetBool();
      }
    }
    if (entry.HasMember("pinnedSha256")) {
      const auto& pins = entry["pinnedSha256"];
      if (!pins.IsArray()) {
        problem("/pinnedSha256", "must be an array of SHA-256 fingerprints");
      } else {
        for (rapidjson::SizeType k = 0; k < pins.Size(); ++k) {
          const std::string field = "/pinnedSha256/" + std::to_string(k);
          std::string fp = pins[k].IsString() ? normalise_fingerprint(pins[k].GetString()) : "";
          if (!is_hex_sha256(fp)) {
            problem(field, "must be 64 hex digits (colons allowed)");
          } else if (registry.pins_.contains(fp)) {
            problem(field, "is pinned for another partner already");
          } else if (std::find(p.pinned_sha256.begin(), p.pinned_sha256.end(), fp) !=
                     p.pinned_sha256.end()) {
            problem(field, "repeats a fingerprint listed before");
          } else {
            p.pinned_sha256.push_back(fp);
          }
        }
      }
    }
    if (valid && !registry.add(p)) {
      problem("/id", "duplicates an earlier partner");
    }
  }
  return registry;
}

bool partner_registry::add(partner p) {
  if (partners_.contains(p.id)) {
    return false;
  }
  for (const auto& fp : p.pinned_sha256) {
    if (pins_.contains(fp)) {
      return false;
    }
  }
  for (const auto& fp : p.pinned_sha256) {
    pins_.emplace(fp, p.id);
  }
  std::string id = p.id;
  partners_.emplace(std::move(id), std::move(p));
  return true;
}

const partner* partner_registry::find(std::string_view id) const {
  auto it = partners_.find(id);
  return it == partners_.end() ? nullptr : &it->second;
}

identity_decision partner_registry::identify(const certificate_facts& facts) const {
  std::set<std::string, std::less<>> ids(facts.partner_uris.begin(), facts.partner_uris.end());
  if (auto pin = pins_.find(facts.sha256_fingerprint); pin != pins_.end()) {
    ids.insert(pin->second);
  }
  if (ids.empty()) {
    return {identity_refusal::no_partner_identity, {}};
  }
  if (ids.size() > 1) {
    return {identity_refusal::ambiguous, {}};
  }
  const partner* p = find(*ids.begin());
  if (p == nullptr) {
    return {identity_refusal::unknown_partner, {}};
  }
  if (!p->enabled) {
    return {identity_refusal::disabled_partner, {}};
  }
  return {identity_refusal::none, p->id};
}

}  // namespace mxgw::identity
