// Partner definitions and certificate-to-partner mapping.
#include "gateway/identity/partner_registry.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>

#include <boost/url/parse.hpp>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::identity {

bool is_hex_sha256(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

namespace {

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

constexpr std::array<std::string_view, 7> message_types = {
    "victim.identification", "person.wanted", "hotline.tip", "verification.request",
    "verification.result",   "case.status",   "receipt"};
constexpr std::array<std::string_view, 5> purposes = {
    "investigation", "victim-protection", "repatriation", "identity-verification", "statistics"};
constexpr std::array<std::string_view, 1> agreements = {"victim-data"};

bool contains(std::span<const std::string_view> list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

std::string joined(std::span<const std::string_view> list) {
  std::string out;
  for (auto item : list) {
    out += (out.empty() ? "" : ", ") + std::string(item);
  }
  return out;
}

using problem_fn = std::function<void(const std::string& field, const std::string& reason)>;

// Why `text` is not acceptable as a partner endpoint, or empty when it is.
std::string endpoint_problem(std::string_view text) {
  auto url = boost::urls::parse_absolute_uri(text);
  if (!url) {
    return "must be an absolute https URL, e.g. https://127.0.0.1:9101/v1/messages";
  }
  if (url->scheme_id() != boost::urls::scheme::https) {
    return "must use https (deliveries go over mutual TLS)";
  }
  if (!url->has_authority() || url->encoded_host().empty()) {
    return "must name a host";
  }
  if (url->has_userinfo()) {
    return "must not carry user information (partners authenticate by certificate)";
  }
  if (url->has_port()) {
    const auto port = url->port();
    unsigned long value = 0;
    const bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) {
      value = std::stoul(std::string(port));
    }
    if (!digits || value == 0 || value > 65535) {
      return "has an invalid port";
    }
  }
  if (url->has_fragment()) {
    return "must not have a fragment";
  }
  return {};
}

// Reads an array of unique strings, each one of `allowed`; returns false after reporting.
bool read_codes(const rapidjson::Value& value, const std::string& field,
                std::span<const std::string_view> allowed, std::string_view what,
                const problem_fn& problem, std::vector<std::string>& out) {
  if (!value.IsArray()) {
    problem(field, "must be an array of " + std::string(what) + "s");
    return false;
  }
  bool ok = true;
  for (rapidjson::SizeType k = 0; k < value.Size(); ++k) {
    const std::string at = field + "/" + std::to_string(k);
    if (!value[k].IsString()) {
      problem(at, "must be a string");
      ok = false;
      continue;
    }
    std::string_view code(value[k].GetString(), value[k].GetStringLength());
    if (!contains(allowed, code)) {
      problem(at, "is not a known " + std::string(what) + " (known: " + joined(allowed) + ")");
      ok = false;
    } else if (std::find(out.begin(), out.end(), code) != out.end()) {
      problem(at, "repeats a " + std::string(what) + " listed before");
      ok = false;
    } else {
      out.emplace_back(code);
    }
  }
  return ok;
}

// Reads one integer delivery setting within [min, max].
void read_setting(const rapidjson::Value& object, const char* name, std::int64_t min,
                  std::int64_t max, const std::string& at, const problem_fn& problem,
                  const std::function<void(std::int64_t)>& store) {
  if (!object.HasMember(name)) {
    return;
  }
  const auto& value = object[name];
  if (!value.IsInt64() || value.GetInt64() < min || value.GetInt64() > max) {
    problem(at + "/" + name,
            "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    return;
  }
  store(value.GetInt64());
}

void read_delivery(const rapidjson::Value& value, const std::string& at, const problem_fn& problem,
                   delivery_settings& out) {
  if (!value.IsObject()) {
    problem(at, "must be an object of delivery settings");
    return;
  }
  static const std::set<std::string, std::less<>> known = {"timeout_ms",     "max_attempts",
                                                           "max_age_s",      "backoff_base_ms",
                                                           "backoff_cap_ms", "concurrency"};
  for (const auto& member : value.GetObject()) {
    if (!known.contains(std::string_view(member.name.GetString()))) {
      problem(at + "/" + json::escape_pointer_token(member.name.GetString()),
              "is not a known delivery setting");
    }
  }
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  read_setting(value, "timeout_ms", 100, 600000, at, problem,
               [&](std::int64_t v) { out.timeout = milliseconds(v); });
  read_setting(value, "max_attempts", 1, 1000, at, problem,
               [&](std::int64_t v) { out.max_attempts = static_cast<int>(v); });
  read_setting(value, "max_age_s", 1, 90 * 86400, at, problem,
               [&](std::int64_t v) { out.max_age = seconds(v); });
  read_setting(value, "backoff_base_ms", 1, 3600000, at, problem,
               [&](std::int64_t v) { out.backoff_base = milliseconds(v); });
  read_setting(value, "backoff_cap_ms", 1, 86400000, at, problem,
               [&](std::int64_t v) { out.backoff_cap = milliseconds(v); });
  read_setting(value, "concurrency", 1, 256, at, problem,
               [&](std::int64_t v) { out.concurrency = static_cast<int>(v); });
  if (out.backoff_cap < out.backoff_base) {
    problem(at + (value.HasMember("backoff_cap_ms") ? "/backoff_cap_ms" : "/backoff_base_ms"),
            "the backoff cap must not be below the backoff base");
  }
}

// Writes one partner in the partners-file form (members in the order a person would write them).
template <typename Writer>
void write_partner(Writer& w, const partner& p) {
  auto str = [&](const char* key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  auto list = [&](const char* key, const std::vector<std::string>& values) {
    w.Key(key);
    w.StartArray();
    for (const auto& v : values) {
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndArray();
  };
  w.StartObject();
  str("id", p.id);
  str("name", p.name);
  str("country", p.country);
  str("adapter", p.adapter);
  w.Key("enabled");
  w.Bool(p.enabled);
  if (!p.endpoint.empty()) {
    str("endpoint", p.endpoint);
  }
  if (!p.pinned_sha256.empty()) {
    list("pinnedSha256", p.pinned_sha256);
  }
  if (!p.revoked_sha256.empty()) {
    list("revokedSha256", p.revoked_sha256);
  }
  if (!p.rotation_cutoffs.empty()) {
    w.Key("rotationCutoffs");
    w.StartArray();
    for (const auto& c : p.rotation_cutoffs) {
      w.StartObject();
      str("cutOff", c.cut_off);
      str("retiringUntil", c.retiring_until);
      str("replacedBy", c.replaced_by);
      list("pinnedBefore", c.pinned_before);
      if (!c.recorded_since.empty()) {
        list("recordedSince", c.recorded_since);
      }
      w.EndObject();
    }
    w.EndArray();
  }
  if (!p.retiring_sha256.empty()) {
    w.Key("retiringSha256");
    w.StartArray();
    for (const auto& r : p.retiring_sha256) {
      w.StartObject();
      str("sha256", r.sha256);
      str("retiringUntil", r.retiring_until);
      w.EndObject();
    }
    w.EndArray();
  }
  if (p.sends) {
    list("sends", *p.sends);
  }
  if (p.receives) {
    list("receives", *p.receives);
  }
  if (!p.agreements.empty()) {
    list("agreements", p.agreements);
  }
  if (!p.purposes.empty()) {
    list("purposes", p.purposes);
  }
  w.Key("delivery");
  w.StartObject();
  w.Key("timeout_ms");
  w.Int64(p.delivery.timeout.count());
  w.Key("max_attempts");
  w.Int(p.delivery.max_attempts);
  w.Key("max_age_s");
  w.Int64(p.delivery.max_age.count());
  w.Key("backoff_base_ms");
  w.Int64(p.delivery.backoff_base.count());
  w.Key("backoff_cap_ms");
  w.Int64(p.delivery.backoff_cap.count());
  w.Key("concurrency");
  w.Int(p.delivery.concurrency);
  w.EndObject();
  if (p.carry_unmapped) {
    w.Key("carryUnmapped");
    w.Bool(true);
  }
  if (p.feed) {
    w.Key("feed");
    w.StartObject();
    str("url", p.feed->url);
    w.Key("interval_s");
    w.Int64(p.feed->interval.count());
    list("notice_types", p.feed->notice_types);
    w.Key("page_size");
    w.Int(p.feed->page_size);
    if (!p.feed->token_file.empty()) {
      str("auth", "token");
      str("token_file", p.feed->token_file.string());
    }
    if (p.feed->max_withdrawals_per_sweep) {
      w.Key("max_withdrawals_per_sweep");
      w.Uint(*p.feed->max_withdrawals_per_sweep);
    }
    w.EndObject();
  }
  if (!p.description.empty()) {
    str("description", p.description);
  }
  w.EndObject();
}

// Reads one fingerprint (64 hex digits, colons allowed) at `field`; empty after reporting.
std::string read_fingerprint(const rapidjson::Value& value, const std::string& field,
                             const problem_fn& problem) {
  std::string fp = value.IsString() ? normalise_fingerprint(value.GetString()) : "";
  if (!is_hex_sha256(fp)) {
    problem(field, "must be 64 hex digits (colons allowed)");
    return {};
  }
  return fp;
}

// Reads the RFC 3339 time `name` of `object` (at `at`); nullopt after reporting.
std::optional<std::chrono::system_clock::time_point> read_time(const rapidjson::Value& object,
                                                               const char* name,
                                                               const std::string& at,
                                                               const problem_fn& problem,
                                                               std::string& text) {
  const std::string field = at + "/" + name;
  if (!object.HasMember(name) || !object[name].IsString()) {
    problem(field, "is required: an RFC 3339 time");
    return std::nullopt;
  }
  text.assign(object[name].GetString(), object[name].GetStringLength());
  auto t = parse_rfc3339(text);
  if (!t) {
    problem(field, "must be an RFC 3339 time");
  }
  return t;
}

// Walks the array `value` of member `name` of a partner (one object per entry, with only the
// members `known`, listed as `members` in a problem): calls `read(entry, at, flag)` for each, where
// `at` is the entry's JSON Pointer and `flag` reports a problem; the result is kept only when
// nothing was flagged.
template <typename T>
void read_entries(
    const rapidjson::Value& value, const std::string& name,
    const std::set<std::string, std::less<>>& known, const std::string& what,
    const std::string& members, const problem_fn& problem, std::vector<T>& out,
    const std::function<T(const rapidjson::Value&, const std::string&, const problem_fn&)>& read) {
  if (!value.IsArray()) {
    problem("/" + name, "must be an array of " + what + "s");
    return;
  }
  for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
    const std::string at = "/" + name + "/" + std::to_string(i);
    const auto& entry = value[i];
    if (!entry.IsObject()) {
      problem(at, "must be an object with " + members);
      continue;
    }
    bool valid = true;
    const problem_fn flag = [&](const std::string& field, const std::string& reason) {
      problem(field, reason);
      valid = false;
    };
    for (const auto& member : entry.GetObject()) {
      if (!known.contains(std::string_view(member.name.GetString()))) {
        flag(at + "/" + json::escape_pointer_token(member.name.GetString()),
             "is not a known member of a " + what);
      }
    }
    T item = read(entry, at, flag);
    if (valid) {
      out.push_back(std::move(item));
    }
  }
}

// Reads the optional list of distinct fingerprints `name` of a cut-off `entry` (at `at`).
void read_cutoff_fingerprints(const rapidjson::Value& entry, const char* name,
                              const std::string& at, const problem_fn& flag,
                              std::vector<std::string>& out) {
  if (!entry.HasMember(name)) {
    return;
  }
  const auto& list = entry[name];
  if (!list.IsArray()) {
    flag(at + "/" + name, "must be an array of SHA-256 fingerprints");
    return;
  }
  for (rapidjson::SizeType k = 0; k < list.Size(); ++k) {
    const std::string field = at + "/" + name + "/" + std::to_string(k);
    std::string fp = read_fingerprint(list[k], field, flag);
    if (fp.empty()) {
      continue;
    }
    if (std::find(out.begin(), out.end(), fp) != out.end()) {
      flag(field, "repeats a fingerprint listed before");
    } else {
      out.push_back(std::move(fp));
    }
  }
}

// Reads `rotationCutoffs` (rotation_cutoff, as the export writes them): each with its cut-off
// and overlap end (not before the cut-off's second), the rotation's new certificate (one per
// cut-off), the pins it ends and the certificates recorded since it (each list distinct
// fingerprints; recordedSince is absent from exports older than it).
void read_rotation_cutoffs(const rapidjson::Value& value, const problem_fn& problem,
                           std::vector<rotation_cutoff>& out) {
  read_entries<rotation_cutoff>(
      value, "rotationCutoffs",
      {"cutOff", "retiringUntil", "replacedBy", "pinnedBefore", "recordedSince"},
      "rotation cut-off", "cutOff, retiringUntil, replacedBy and pinnedBefore", problem, out,
      [&out](const rapidjson::Value& entry, const std::string& at, const problem_fn& flag) {
        rotation_cutoff c;
        const auto cut_off_at = read_time(entry, "cutOff", at, flag, c.cut_off);
        const auto until_at = read_time(entry, "retiringUntil", at, flag, c.retiring_until);
        // A rotation ends its overlap on a whole second: with no overlap, up to a second before.
        if (cut_off_at && until_at &&
            *until_at < std::chrono::floor<std::chrono::seconds>(*cut_off_at)) {
          flag(at + "/retiringUntil", "is before cutOff");
        }
        if (!entry.HasMember("replacedBy")) {
          flag(at + "/replacedBy", "is required: the rotation's new certificate's fingerprint");
        } else {
          c.replaced_by = read_fingerprint(entry["replacedBy"], at + "/replacedBy", flag);
          for (const auto& earlier : out) {
            if (!c.replaced_by.empty() && earlier.replaced_by == c.replaced_by) {
              flag(at + "/replacedBy", "repeats the new certificate of an earlier cut-off");
            }
          }
        }
        read_cutoff_fingerprints(entry, "pinnedBefore", at, flag, c.pinned_before);
        read_cutoff_fingerprints(entry, "recordedSince", at, flag, c.recorded_since);
        if (cut_off_at && until_at) {
          c.cut_off_at = *cut_off_at;
          c.until_at = *until_at;
        }
        return c;
      });
}

// Reads `retiringSha256` (retiring_certificate): distinct fingerprints, each with the end of
// its overlap.
void read_retiring(const rapidjson::Value& value, const problem_fn& problem,
                   std::vector<retiring_certificate>& out) {
  read_entries<retiring_certificate>(
      value, "retiringSha256", {"sha256", "retiringUntil"}, "retiring certificate",
      "sha256 and retiringUntil", problem, out,
      [&out](const rapidjson::Value& entry, const std::string& at, const problem_fn& flag) {
        retiring_certificate r;
        if (!entry.HasMember("sha256")) {
          flag(at + "/sha256", "is required: the certificate's fingerprint");
        } else {
          r.sha256 = read_fingerprint(entry["sha256"], at + "/sha256", flag);
          for (const auto& earlier : out) {
            if (!r.sha256.empty() && earlier.sha256 == r.sha256) {
              flag(at + "/sha256", "repeats a fingerprint listed before");
            }
          }
        }
        read_time(entry, "retiringUntil", at, flag, r.retiring_until);
        return r;
      });
}

// Reads a partner's `feed` (see feed_settings); paths are relative to the partners file.
void read_feed(const rapidjson::Value& value, const std::string& at,
               const std::filesystem::path& base_dir, const partner& p, const problem_fn& problem,
               feed_settings& out) {
  if (!value.IsObject()) {
    problem(at,
            "must be an object (url, interval_s, notice_types, page_size, auth, "
            "max_withdrawals_per_sweep)");
    return;
  }
  if (p.adapter != "interpol") {
    problem(at, "only a partner with \"adapter\": \"interpol\" has a notice feed");
  }
  static const std::set<std::string, std::less<>> known = {"url",
                                                           "interval_s",
                                                           "notice_types",
                                                           "page_size",
                                                           "auth",
                                                           "token_file",
                                                           "max_withdrawals_per_sweep",
                                                           "description"};
  for (const auto& member : value.GetObject()) {
    if (!known.contains(std::string_view(member.name.GetString()))) {
      problem(at + "/" + json::escape_pointer_token(member.name.GetString()),
              "is not a known feed setting");
    }
  }
  const std::string_view url = json::get_string(value, "url");
  if (!value.HasMember("url")) {
    problem(at + "/url", "is required: the https base URL of the notice service");
  } else if (const auto why = url.empty() ? "must be an https URL string" : endpoint_problem(url);
             !why.empty()) {
    problem(at + "/url", why);
  } else {
    out.url = std::string(url);
  }
  read_setting(value, "interval_s", 1, 7 * 86400, at, problem,
               [&](std::int64_t v) { out.interval = std::chrono::seconds(v); });
  read_setting(value, "page_size", 1, 160, at, problem,
               [&](std::int64_t v) { out.page_size = static_cast<int>(v); });
  // The same range as the gateway-wide feed.max_withdrawals_per_sweep it overrides.
  read_setting(value, "max_withdrawals_per_sweep", 1, 100'000, at, problem, [&](std::int64_t v) {
    out.max_withdrawals_per_sweep = static_cast<std::uint32_t>(v);
  });
  static constexpr std::array<std::string_view, 2> polled = {"red", "yellow"};
  if (!value.HasMember("notice_types")) {
    problem(at + "/notice_types", "is required: red, yellow or both");
  } else if (value["notice_types"].IsArray() && value["notice_types"].Empty()) {
    problem(at + "/notice_types", "needs at least one notice type (red, yellow)");
  } else {
    read_codes(value["notice_types"], at + "/notice_types", polled,
               "polled notice type (UN notices are not routed)", problem, out.notice_types);
  }
  const std::string_view auth = value.HasMember("auth") ? json::get_string(value, "auth") : "mtls";
  if (auth == "token") {
    const std::string_view file = json::get_string(value, "token_file");
    if (file.empty()) {
      problem(at + "/token_file", "is required with \"auth\": \"token\"");
    } else {
      out.token_file = base_dir / std::filesystem::path(std::string(file));
      std::error_code ec;
      if (!std::filesystem::is_regular_file(out.token_file, ec)) {
        problem(at + "/token_file", "is not a readable file: " + out.token_file.string());
      }
    }
  } else if (auth != "mtls") {
    problem(at + "/auth", "must be \"mtls\" (the gateway's client certificate) or \"token\"");
  } else if (value.HasMember("token_file")) {
    problem(at + "/token_file", "is used only with \"auth\": \"token\"");
  }
  // The feed sends the notices' messages and the withdrawals as this partner.
  std::vector<std::string_view> needed = {"case.status"};
  for (const auto& type : out.notice_types) {
    needed.push_back(type == "red" ? "person.wanted" : "victim.identification");
  }
  for (auto type : needed) {
    if (!p.may_send(type)) {
      problem(at, "needs the partner to send " + std::string(type) + " (add it to sends)");
    }
  }
}

}  // namespace

std::string to_json(const partner& p) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  write_partner(w, p);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string to_json(const partner_registry& registry) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("partners");
  w.StartArray();
  for (const auto* p : registry.all()) {
    write_partner(w, *p);
  }
  w.EndArray();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::span<const std::string_view> canonical_message_types() {
  return message_types;
}

std::span<const std::string_view> canonical_purposes() {
  return purposes;
}

std::span<const std::string_view> known_agreements() {
  return agreements;
}

bool partner::may_send(std::string_view type) const {
  return !sends || std::find(sends->begin(), sends->end(), type) != sends->end();
}

bool partner::may_receive(std::string_view type) const {
  return !receives || std::find(receives->begin(), receives->end(), type) != receives->end();
}

bool partner::has_agreement(std::string_view agreement) const {
  return std::find(agreements.begin(), agreements.end(), agreement) != agreements.end();
}

std::string_view to_string(identity_refusal refusal) {
  switch (refusal) {
    case identity_refusal::none: return "none";
    case identity_refusal::no_partner_identity: return "no-partner-identity";
    case identity_refusal::ambiguous: return "ambiguous-identity";
    case identity_refusal::unknown_partner: return "unknown-partner";
    case identity_refusal::disabled_partner: return "disabled-partner";
    case identity_refusal::revoked_certificate: return "revoked-certificate";
    case identity_refusal::retired_certificate: return "retired-certificate";
    case identity_refusal::admin_certificate: return "admin-certificate";
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

namespace {

// True when the partners-file entry `entry` pins `fingerprint` or lists it as retiring (read
// leniently: the entry's own problems are reported where it is parsed).
bool names_fingerprint(const rapidjson::Value& entry, const std::string& fingerprint) {
  if (!entry.IsObject()) {
    return false;
  }
  if (entry.HasMember("pinnedSha256") && entry["pinnedSha256"].IsArray()) {
    for (const auto& pin : entry["pinnedSha256"].GetArray()) {
      if (pin.IsString() && normalise_fingerprint(pin.GetString()) == fingerprint) {
        return true;
      }
    }
  }
  if (entry.HasMember("retiringSha256") && entry["retiringSha256"].IsArray()) {
    for (const auto& r : entry["retiringSha256"].GetArray()) {
      if (r.IsObject() && r.HasMember("sha256") && r["sha256"].IsString() &&
          normalise_fingerprint(r["sha256"].GetString()) == fingerprint) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::optional<partner> partner_registry::parse_partner(
    const rapidjson::Value& entry, const std::string& at, std::vector<config_problem>& problems,
    const std::string& file, const std::vector<std::string>* known_adapters) {
  if (!entry.IsObject()) {
    problems.push_back({file, at, "must be an object"});
    return std::nullopt;
  }
  static const std::set<std::string, std::less<>> known = {"id",
                                                           "name",
                                                           "country",
                                                           "adapter",
                                                           "enabled",
                                                           "pinnedSha256",
                                                           "revokedSha256",
                                                           "rotationCutoffs",
                                                           "retiringSha256",
                                                           "description",
                                                           "sends",
                                                           "receives",
                                                           "endpoint",
                                                           "purposes",
                                                           "delivery",
                                                           "agreements",
                                                           "carryUnmapped",
                                                           "feed"};
  bool valid = true;
  auto problem = [&](const std::string& field, const std::string& reason) {
    problems.push_back({file, at + field, reason});
    valid = false;
  };
  for (const auto& member : entry.GetObject()) {
    if (!known.contains(std::string_view(member.name.GetString()))) {
      problem("/" + json::escape_pointer_token(member.name.GetString()), "is not a known setting");
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
  p.description = std::string(json::get_string(entry, "description"));
  p.country = std::string(json::get_string(entry, "country"));
  if (p.country.size() != 2 || !std::isupper(static_cast<unsigned char>(p.country[0])) ||
      !std::isupper(static_cast<unsigned char>(p.country[1]))) {
    problem("/country", "must be an ISO 3166-1 alpha-2 code");
  }
  if (entry.HasMember("adapter")) {
    p.adapter = std::string(json::get_string(entry, "adapter"));
    if (known_adapters != nullptr && std::find(known_adapters->begin(), known_adapters->end(),
                                               p.adapter) == known_adapters->end()) {
      std::string listed;
      for (const auto& a : *known_adapters) {
        listed += (listed.empty() ? "" : ", ") + a;
      }
      problem("/adapter", "names an unknown adapter (known: " + listed + ")");
    } else if (!is_valid_partner_id(p.adapter)) {
      problem("/adapter", "is not a valid adapter id");
    }
  }
  if (entry.HasMember("carryUnmapped")) {
    if (!entry["carryUnmapped"].IsBool()) {
      problem("/carryUnmapped", "must be true or false");
    } else {
      p.carry_unmapped = entry["carryUnmapped"].GetBool();
    }
  }
  if (entry.HasMember("enabled")) {
    if (!entry["enabled"].IsBool()) {
      problem("/enabled", "must be true or false");
    } else {
      p.enabled = entry["enabled"].GetBool();
    }
  }
  // pinnedSha256 and revokedSha256: lists of distinct fingerprints.
  auto read_fingerprints = [&](const char* name, std::vector<std::string>& out) {
    if (!entry.HasMember(name)) {
      return;
    }
    const auto& list = entry[name];
    const std::string at_list = std::string("/") + name;
    if (!list.IsArray()) {
      problem(at_list, "must be an array of SHA-256 fingerprints");
      return;
    }
    for (rapidjson::SizeType k = 0; k < list.Size(); ++k) {
      const std::string field = at_list + "/" + std::to_string(k);
      std::string fp = list[k].IsString() ? normalise_fingerprint(list[k].GetString()) : "";
      if (!is_hex_sha256(fp)) {
        problem(field, "must be 64 hex digits (colons allowed)");
      } else if (std::find(out.begin(), out.end(), fp) != out.end()) {
        problem(field, "repeats a fingerprint listed before");
      } else {
        out.push_back(fp);
      }
    }
  };
  read_fingerprints("pinnedSha256", p.pinned_sha256);
  read_fingerprints("revokedSha256", p.revoked_sha256);
  for (std::size_t k = 0; k < p.pinned_sha256.size(); ++k) {
    if (std::find(p.revoked_sha256.begin(), p.revoked_sha256.end(), p.pinned_sha256[k]) !=
        p.revoked_sha256.end()) {
      problem("/pinnedSha256/" + std::to_string(k), "is revoked (listed in revokedSha256)");
    }
  }
  if (entry.HasMember("rotationCutoffs")) {
    read_rotation_cutoffs(entry["rotationCutoffs"], problem, p.rotation_cutoffs);
  }
  if (entry.HasMember("retiringSha256")) {
    read_retiring(entry["retiringSha256"], problem, p.retiring_sha256);
  }
  for (std::size_t k = 0; k < p.retiring_sha256.size(); ++k) {
    if (std::find(p.revoked_sha256.begin(), p.revoked_sha256.end(), p.retiring_sha256[k].sha256) !=
        p.revoked_sha256.end()) {
      problem("/retiringSha256/" + std::to_string(k) + "/sha256",
              "is revoked (listed in revokedSha256)");
    }
  }
  // The export lists a certificate recorded since a cut-off only while its record is in force.
  for (std::size_t i = 0; i < p.rotation_cutoffs.size(); ++i) {
    const auto& recorded = p.rotation_cutoffs[i].recorded_since;
    for (std::size_t k = 0; k < recorded.size(); ++k) {
      if (std::find(p.revoked_sha256.begin(), p.revoked_sha256.end(), recorded[k]) !=
          p.revoked_sha256.end()) {
        problem("/rotationCutoffs/" + std::to_string(i) + "/recordedSince/" + std::to_string(k),
                "is revoked (listed in revokedSha256)");
      }
    }
  }
  if (entry.HasMember("endpoint")) {
    const auto& endpoint = entry["endpoint"];
    std::string why = endpoint.IsString()
                          ? endpoint_problem({endpoint.GetString(), endpoint.GetStringLength()})
                          : "must be an https URL string";
    if (!why.empty()) {
      problem("/endpoint", why);
    } else {
      p.endpoint.assign(endpoint.GetString(), endpoint.GetStringLength());
    }
  }
  for (const char* direction : {"sends", "receives"}) {
    if (entry.HasMember(direction)) {
      std::vector<std::string> types;
      if (read_codes(entry[direction], std::string("/") + direction, message_types,
                     "message type", problem, types)) {
        (std::string_view(direction) == "sends" ? p.sends : p.receives) = std::move(types);
      }
    }
  }
  if (entry.HasMember("agreements")) {
    read_codes(entry["agreements"], "/agreements", agreements, "agreement", problem, p.agreements);
  }
  if (entry.HasMember("purposes")) {
    read_codes(entry["purposes"], "/purposes", purposes, "purpose", problem, p.purposes);
  }
  if (entry.HasMember("delivery")) {
    read_delivery(entry["delivery"], "/delivery", problem, p.delivery);
  }
  if (entry.HasMember("feed")) {
    read_feed(entry["feed"], "/feed", std::filesystem::path(file).parent_path(), p, problem,
              p.feed.emplace());
  }
  if (!valid) {
    return std::nullopt;
  }
  return p;
}

partner_registry partner_registry::load(const std::filesystem::path& file,
                                        std::vector<config_problem>& problems,
                                        const std::vector<std::string>* known_adapters) {
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
  const auto& list = doc["partners"];
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const std::string at = "/partners/" + std::to_string(i);
    auto p = parse_partner(list[i], at, problems, name, known_adapters);
    if (!p) {
      continue;
    }
    bool pins_free = true;
    for (std::size_t k = 0; k < p->pinned_sha256.size(); ++k) {
      if (registry.pins_.contains(p->pinned_sha256[k])) {
        problems.push_back({name, at + "/pinnedSha256/" + std::to_string(k),
                            "is pinned for another partner already"});
        pins_free = false;
      }
    }
    // A retiring certificate is recorded for its partner (it pins it): no other partner may
    // pin it or list it as retiring, before or after this entry.
    for (std::size_t k = 0; k < p->retiring_sha256.size(); ++k) {
      const std::string& fp = p->retiring_sha256[k].sha256;
      const bool pinned_elsewhere =
          std::any_of(list.Begin(), list.End(), [&](const rapidjson::Value& other) {
            return &other != &list[i] && names_fingerprint(other, fp);
          });
      if (pinned_elsewhere) {
        problems.push_back({name, at + "/retiringSha256/" + std::to_string(k) + "/sha256",
                            "is pinned or retiring for another partner"});
        pins_free = false;
      }
    }
    if (pins_free && !registry.add(std::move(*p))) {
      problems.push_back({name, at + "/id", "duplicates an earlier partner"});
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
  index(p);
  std::string id = p.id;
  partners_.emplace(std::move(id), std::move(p));
  return true;
}

void partner_registry::index(const partner& p) {
  for (const auto& fp : p.pinned_sha256) {
    pins_.emplace(fp, p.id);
  }
  for (const auto& fp : p.revoked_sha256) {
    ++revoked_[fp];
  }
}

void partner_registry::unindex(const partner& p) {
  for (const auto& fp : p.pinned_sha256) {
    pins_.erase(fp);
  }
  for (const auto& fp : p.revoked_sha256) {
    if (auto it = revoked_.find(fp); it != revoked_.end() && --it->second <= 0) {
      revoked_.erase(it);
    }
  }
}

bool partner_registry::is_revoked(std::string_view fingerprint) const {
  return revoked_.contains(fingerprint);
}

std::string_view partner_registry::pinned_by(std::string_view fingerprint) const {
  auto it = pins_.find(fingerprint);
  return it == pins_.end() ? std::string_view() : std::string_view(it->second);
}

std::string partner_registry::put(partner p) {
  for (const auto& fp : p.pinned_sha256) {
    if (auto it = pins_.find(fp); it != pins_.end() && it->second != p.id) {
      return fp;
    }
  }
  if (auto old = partners_.find(p.id); old != partners_.end()) {
    unindex(old->second);
    partners_.erase(old);
  }
  index(p);
  std::string id = p.id;
  partners_.emplace(std::move(id), std::move(p));
  return {};
}

const partner* partner_registry::find(std::string_view id) const {
  auto it = partners_.find(id);
  return it == partners_.end() ? nullptr : &it->second;
}

std::vector<const partner*> partner_registry::all() const {
  std::vector<const partner*> out;
  out.reserve(partners_.size());
  for (const auto& [id, p] : partners_) {
    out.push_back(&p);
  }
  return out;
}

identity_decision partner_registry::identify(const certificate_facts& facts) const {
  if (!facts.admin_uris.empty()) {
    return {identity_refusal::admin_certificate, {}};  // an admin certificate is never a partner
  }
  if (is_revoked(facts.sha256_fingerprint)) {
    return {identity_refusal::revoked_certificate, {}};
  }
  // Another agency's CA may put any partner's URI into a certificate it issues: from such an
  // anchor only the pinned fingerprint counts.
  std::set<std::string, std::less<>> ids;
  if (facts.names_by_san) {
    ids.insert(facts.partner_uris.begin(), facts.partner_uris.end());
  }
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
