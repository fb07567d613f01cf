// gateway.json loader: strict (unknown members are errors, so typos do not become silent defaults).
#include "gateway/config/gateway_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gateway/common/json.hpp"
#include "gateway/delivery/delivery_service.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/store/pg_store.hpp"

namespace mxgw::config {
namespace {

class reader {
 public:
  reader(std::string file, std::vector<config_problem>& problems, std::filesystem::path base)
      : file_(std::move(file)), problems_(problems), base_(std::move(base)) {}

  void problem(const std::string& at, const std::string& reason) {
    problems_.push_back({file_, at, reason});
  }

  // Reports members of `object` that are not in `known`.
  void only(const rapidjson::Value& object, const std::string& at,
            std::initializer_list<std::string_view> known) {
    std::set<std::string_view> names(known);
    for (const auto& m : object.GetObject()) {
      if (!names.contains(std::string_view(m.name.GetString(), m.name.GetStringLength()))) {
        problem(at + "/" + json::escape_pointer_token(m.name.GetString()),
                "is not a known setting");
      }
    }
  }

  const rapidjson::Value* object(const rapidjson::Value& parent, const char* name,
                                 const std::string& at) {
    auto it = parent.FindMember(name);
    if (it == parent.MemberEnd()) {
      return nullptr;
    }
    if (!it->value.IsObject()) {
      problem(at + "/" + name, "must be an object");
      return nullptr;
    }
    return &it->value;
  }

  void string(const rapidjson::Value& parent, const char* name, const std::string& at,
              std::string& out) {
    auto it = parent.FindMember(name);
    if (it == parent.MemberEnd()) {
      return;
    }
    if (!it->value.IsString()) {
      problem(at + "/" + name, "must be a string");
      return;
    }
    out = it->value.GetString();
  }

  void path(const rapidjson::Value& parent, const char* name, const std::string& at,
            std::filesystem::path& out, bool must_exist) {
    std::string text;
    string(parent, name, at, text);
    if (text.empty()) {
      return;
    }
    out = resolve(text);
    if (must_exist && !std::filesystem::exists(out)) {
      problem(at + "/" + name, "names " + out.string() + ", which does not exist");
    }
  }

  void paths(const rapidjson::Value& parent, const char* name, const std::string& at,
             std::vector<std::filesystem::path>& out) {
    auto it = parent.FindMember(name);
    if (it == parent.MemberEnd()) {
      return;
    }
    if (!it->value.IsArray()) {
      problem(at + "/" + name, "must be an array of file names");
      return;
    }
    out.clear();
    for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
      const std::string item_at = at + "/" + name + "/" + std::to_string(i);
      if (!it->value[i].IsString()) {
        problem(item_at, "must be a string");
        continue;
      }
      auto p = resolve(it->value[i].GetString());
      if (!std::filesystem::exists(p)) {
        problem(item_at, "names " + p.string() + ", which does not exist");
      }
      out.push_back(std::move(p));
    }
  }

  // A single secret `name` of `parent` ({"file": ...} or {"env": ...}, as a data key), given the
  // id `id`.
  void secret(const rapidjson::Value& parent, const char* name, const std::string& at,
              std::string id, store_key& key) {
    const auto* k = object(parent, name, at);
    if (k == nullptr) {
      return;
    }
    const std::string key_at = at + "/" + name;
    only(*k, key_at, {"file", "env"});
    path(*k, "file", key_at, key.file, true);
    string(*k, "env", key_at, key.env);
    if (key.file.empty() == key.env.empty()) {
      problem(key_at, "needs exactly one of \"file\" and \"env\"");
    }
    key.id = std::move(id);
  }

  template <typename Int>
  void number(const rapidjson::Value& parent, const char* name, const std::string& at, Int& out,
              std::uint64_t min, std::uint64_t max) {
    auto it = parent.FindMember(name);
    if (it == parent.MemberEnd()) {
      return;
    }
    if (!it->value.IsUint64() || it->value.GetUint64() < min || it->value.GetUint64() > max) {
      problem(at + "/" + name,
              "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
      return;
    }
    out = static_cast<Int>(it->value.GetUint64());
  }

  std::filesystem::path resolve(const std::string& text) const {
    std::filesystem::path p(text);
    return p.is_absolute() ? p : (base_ / p).lexically_normal();
  }

 private:
  std::string file_;
  std::vector<config_problem>& problems_;
  std::filesystem::path base_;
};

}  // namespace

gateway_config load_gateway_config(const std::filesystem::path& file,
                                   std::vector<config_problem>& problems) {
  gateway_config config;
  config.source = file;
  rapidjson::Document doc;
  try {
    doc = json::parse_file(file.string());
  } catch (const std::exception& e) {
    problems.push_back({file.string(), "", e.what()});
    return config;
  }
  if (!doc.IsObject()) {
    problems.push_back({file.string(), "", "must be a JSON object"});
    return config;
  }
  const auto base = std::filesystem::absolute(file).parent_path();
  reader r(file.string(), problems, base);
  r.only(doc, "",
         {"threads", "listener", "store", "delivery", "audit", "deadlines", "admin", "partners",
          "routing", "schema_dir", "mappings_dir", "translit_dir", "adapters_dir", "log", "persons",
          "message_ids", "feed", "description"});
  r.number(doc, "threads", "", config.threads, 0, 256);

  if (const auto* l = r.object(doc, "listener", "")) {
    const std::string at = "/listener";
    r.only(*l, at, {"address", "port", "tls", "limits"});
    r.string(*l, "address", at, config.listener.address);
    r.number(*l, "port", at, config.listener.port, 0, 65535);
    if (const auto* t = r.object(*l, "tls", at)) {
      const std::string tat = at + "/tls";
      auto& tls = config.listener.tls;
      r.only(
          *t, tat,
          {"certificate", "private_key", "partner_ca", "pinned_partner_ca", "crl", "min_version"});
      r.path(*t, "certificate", tat, tls.certificate, true);
      r.path(*t, "private_key", tat, tls.private_key, true);
      r.paths(*t, "partner_ca", tat, tls.partner_cas);
      r.paths(*t, "pinned_partner_ca", tat, tls.pinned_partner_cas);
      r.paths(*t, "crl", tat, tls.crls);
      r.string(*t, "min_version", tat, tls.min_version);
      if (tls.min_version != "1.3" && tls.min_version != "1.2") {
        r.problem(tat + "/min_version", "must be \"1.3\" or \"1.2\"");
      }
      if (!t->HasMember("certificate")) {
        r.problem(tat + "/certificate", "is required");
      }
      if (!t->HasMember("private_key")) {
        r.problem(tat + "/private_key", "is required");
      }
      if (tls.partner_cas.empty() &&
          (!t->HasMember("partner_ca") || t->FindMember("partner_ca")->value.IsArray())) {
        r.problem(tat + "/partner_ca", "needs at least one trust anchor");
      }
    } else {
      r.problem(at + "/tls", "is required");
    }
    if (const auto* m = r.object(*l, "limits", at)) {
      const std::string mat = at + "/limits";
      auto& lim = config.listener.limits;
      r.only(
          *m, mat,
          {"max_body_bytes", "max_header_bytes", "max_connections", "max_connections_per_address",
           "handshake_timeout_ms", "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms",
           "write_timeout_ms", "max_connection_lifetime_seconds", "max_json_depth"});
      r.number(*m, "max_body_bytes", mat, lim.max_body_bytes, 1024, 64ULL * 1024 * 1024);
      r.number(*m, "max_header_bytes", mat, lim.max_header_bytes, 1024, 1024 * 1024);
      r.number(*m, "max_connections", mat, lim.max_connections, 1, 1'000'000);
      r.number(*m, "max_connections_per_address", mat, lim.max_connections_per_address, 1,
               1'000'000);
      r.number(*m, "handshake_timeout_ms", mat, lim.handshake_timeout_ms, 100, 600'000);
      r.number(*m, "header_timeout_ms", mat, lim.header_timeout_ms, 100, 600'000);
      r.number(*m, "body_timeout_ms", mat, lim.body_timeout_ms, 100, 3'600'000);
      r.number(*m, "idle_timeout_ms", mat, lim.idle_timeout_ms, 100, 3'600'000);
      r.number(*m, "write_timeout_ms", mat, lim.write_timeout_ms, 100, 3'600'000);
      // Bounded so that no connection outlives a day on the identity of its handshake alone.
      r.number(*m, "max_connection_lifetime_seconds", mat, lim.max_connection_lifetime_seconds, 1,
               86'400);
      r.number(*m, "max_json_depth", mat, lim.max_json_depth, 8, 256);
    }
  } else {
    r.problem("/listener", "is required");
  }

  if (const auto* s = r.object(doc, "store", "")) {
    auto& st = config.store;
    r.only(*s, "/store",
           {"kind", "path", "max_batch", "max_size_bytes", "checkpoint_pages", "wal_limit_pages",
            "dsn", "password_file", "password_env", "schema", "encryption", "retention"});
    if (const auto* t = r.object(*s, "retention", "/store")) {
      r.only(*t, "/store/retention", {"delivered_days", "dead_days", "sweep_interval_s"});
      r.number(*t, "delivered_days", "/store/retention", config.store.retention_delivered_days, 1,
               36'500);
      r.number(*t, "dead_days", "/store/retention", config.store.retention_dead_days, 1, 36'500);
      r.number(*t, "sweep_interval_s", "/store/retention",
               config.store.retention_sweep_interval_s, 1, 86'400);
    }
    r.string(*s, "kind", "/store", st.kind);
    r.path(*s, "path", "/store", st.path, false);
    r.number(*s, "max_batch", "/store", st.max_batch, 1, 100'000);
    r.number(*s, "max_size_bytes", "/store", st.max_size_bytes, 0, UINT64_MAX);
    r.number(*s, "checkpoint_pages", "/store", st.checkpoint_pages, 1, 1U << 24);
    r.number(*s, "wal_limit_pages", "/store", st.wal_limit_pages, 1, 1U << 24);
    if (st.wal_limit_pages < st.checkpoint_pages) {
      r.problem("/store/wal_limit_pages",
                "must be at least checkpoint_pages (" + std::to_string(st.checkpoint_pages) + ")");
    }
    r.string(*s, "dsn", "/store", st.dsn);
    r.path(*s, "password_file", "/store", st.password_file, false);
    r.string(*s, "password_env", "/store", st.password_env);
    r.string(*s, "schema", "/store", st.schema);
    const auto only_for = [&](const char* member, const char* kind) {
      if (s->HasMember(member)) {
        r.problem(std::string("/store/") + member,
                  std::string("is a setting of kind \"") + kind + "\" only");
      }
    };
    if (st.kind == "sqlite") {
      for (const char* member : {"dsn", "password_file", "password_env", "schema"}) {
        only_for(member, "postgres");
      }
    } else if (st.kind == "postgres") {
      for (const char* member : {"path", "max_size_bytes", "checkpoint_pages", "wal_limit_pages"}) {
        only_for(member, "sqlite");
      }
    } else {
      r.problem("/store/kind", "must be \"sqlite\" or \"postgres\"");
    }
  }
  if (const auto* s = r.object(doc, "store", "")) {
    if (const auto* e = r.object(*s, "encryption", "/store")) {
      r.only(*e, "/store/encryption", {"active", "keys"});
      r.string(*e, "active", "/store/encryption", config.store.active_key);
      const auto keys = e->FindMember("keys");
      if (keys == e->MemberEnd() || !keys->value.IsArray() || keys->value.Empty()) {
        r.problem("/store/encryption/keys", "must be a non-empty array of {id, file | env}");
      } else {
        for (rapidjson::SizeType i = 0; i < keys->value.Size(); ++i) {
          const std::string at = "/store/encryption/keys/" + std::to_string(i);
          const auto& k = keys->value[i];
          if (!k.IsObject()) {
            r.problem(at, "must be an object {id, file | env}");
            continue;
          }
          r.only(k, at, {"id", "file", "env"});
          store_key key;
          r.string(k, "id", at, key.id);
          r.path(k, "file", at, key.file, true);
          r.string(k, "env", at, key.env);
          if (key.id.empty()) {
            r.problem(at + "/id", "is required");
          }
          if (key.file.empty() == key.env.empty()) {
            r.problem(at, "needs exactly one of \"file\" and \"env\"");
          }
          for (const auto& other : config.store.keys) {
            if (!key.id.empty() && other.id == key.id) {
              r.problem(at + "/id", "'" + key.id + "' is listed twice");
            }
          }
          config.store.keys.push_back(std::move(key));
        }
        bool active_known = false;
        for (const auto& key : config.store.keys) {
          active_known = active_known || key.id == config.store.active_key;
        }
        if (!active_known) {
          r.problem("/store/encryption/active", "must name one of the keys");
        }
      }
    }
  }
  if (const auto* p = r.object(doc, "persons", "")) {
    r.only(*p, "/persons", {"match_key"});
    r.secret(*p, "match_key", "/persons", "match", config.persons.match_key);
  }
  if (const auto* m = r.object(doc, "message_ids", "")) {
    r.only(*m, "/message_ids", {"key"});
    r.secret(*m, "key", "/message_ids", "message-ids", config.message_ids.key);
  }
  if (config.store.kind == "sqlite" && config.store.path.empty()) {
    r.problem("/store/path", "is required");
  }
  if (config.store.kind == "postgres") {
    // Problems name the member, never the DSN's text or the password.
    const auto& st = config.store;
    if (st.dsn.empty()) {
      r.problem("/store/dsn", "is required");
    } else {
      try {
        if (store::dsn_has_password(st.dsn)) {
          r.problem("/store/dsn",
                    "must not carry a password; use store.password_file or store.password_env");
        }
      } catch (const store::store_error& e) {
        r.problem("/store/dsn", e.what());
      }
    }
    if (!st.password_file.empty() && !st.password_env.empty()) {
      r.problem("/store/password_env", "and store.password_file exclude each other");
    } else {
      try {
        read_store_password(st);
      } catch (const std::runtime_error& e) {
        r.problem(st.password_file.empty() ? "/store/password_env" : "/store/password_file",
                  e.what());
      }
    }
  }

  {
    auto& d = config.delivery;
    d.client_certificate = config.listener.tls.certificate;
    d.client_key = config.listener.tls.private_key;
    // A partner's server may chain to its own agency's CA: every listener anchor.
    d.partner_server_ca = config.listener.tls.partner_cas;
    d.partner_server_ca.insert(d.partner_server_ca.end(),
                               config.listener.tls.pinned_partner_cas.begin(),
                               config.listener.tls.pinned_partner_cas.end());
    d.partner_server_crl = config.listener.tls.crls;
    if (const auto* o = r.object(doc, "delivery", "")) {
      const std::string at = "/delivery";
      r.only(*o, at,
             {"enabled", "client_certificate", "client_key", "partner_server_ca",
              "partner_server_crl", "instance", "lease_ms", "poll_interval_ms", "max_in_flight",
              "breaker_failures", "breaker_open_ms"});
      if (auto it = o->FindMember("enabled"); it != o->MemberEnd()) {
        if (it->value.IsBool()) {
          d.enabled = it->value.GetBool();
        } else {
          r.problem(at + "/enabled", "must be true or false");
        }
      }
      r.path(*o, "client_certificate", at, d.client_certificate, true);
      r.path(*o, "client_key", at, d.client_key, true);
      r.paths(*o, "partner_server_ca", at, d.partner_server_ca);
      if (o->HasMember("partner_server_ca")) {
        d.partner_server_crl.clear();  // the listener's CRLs belong to the listener's anchors
      }
      r.paths(*o, "partner_server_crl", at, d.partner_server_crl);
      r.string(*o, "instance", at, d.instance);
      if (d.instance.empty()) {
        r.problem(at + "/instance", "must not be empty");
      }
      r.number(*o, "lease_ms", at, d.lease_ms, 1000, 3'600'000);
      r.number(*o, "poll_interval_ms", at, d.poll_interval_ms, 10, 600'000);
      r.number(*o, "max_in_flight", at, d.max_in_flight, 1, 100'000);
      r.number(*o, "breaker_failures", at, d.breaker_failures, 1, 1000);
      r.number(*o, "breaker_open_ms", at, d.breaker_open_ms, 100, 3'600'000);
    }
  }
  if (const auto* a = r.object(doc, "audit", "")) {
    r.only(*a, "/audit",
           {"checkpoint_every_entries", "checkpoint_interval_s", "refusals_per_minute"});
    r.number(*a, "checkpoint_every_entries", "/audit", config.audit.checkpoint_every_entries, 1,
             100'000'000);
    r.number(*a, "checkpoint_interval_s", "/audit", config.audit.checkpoint_interval_s, 1, 86'400);
    r.number(*a, "refusals_per_minute", "/audit", config.audit.refusals_per_minute, 1, 100'000);
  }
  if (const auto* d = r.object(doc, "deadlines", "")) {
    r.only(*d, "/deadlines", {"sweep_interval_s", "lookback_days", "held_after_hours"});
    r.number(*d, "sweep_interval_s", "/deadlines", config.deadlines.sweep_interval_s, 1, 86'400);
    r.number(*d, "lookback_days", "/deadlines", config.deadlines.lookback_days, 1, 3'650);
    r.number(*d, "held_after_hours", "/deadlines", config.deadlines.held_after_hours, 1, 8'760);
  }
  if (const auto* f = r.object(doc, "feed", "")) {
    r.only(*f, "/feed", {"max_withdrawals_per_sweep"});
    r.number(*f, "max_withdrawals_per_sweep", "/feed", config.feed.max_withdrawals_per_sweep, 1,
             100'000);
  }
  if (const auto* a = r.object(doc, "admin", "")) {
    const std::string at = "/admin";
    auto& admin = config.admin;
    admin.enabled = true;
    admin.listener.port = 9443;
    admin.listener.tls.certificate = config.listener.tls.certificate;
    admin.listener.tls.private_key = config.listener.tls.private_key;
    admin.listener.limits = listener_limits{};
    r.only(*a, at,
           {"address", "port", "certificate", "private_key", "admin_cas", "crl", "signing_dir",
            "state_poll_ms", "default_overlap_days", "default_validity_days", "description"});
    r.string(*a, "address", at, admin.listener.address);
    r.number(*a, "port", at, admin.listener.port, 0, 65535);
    r.path(*a, "certificate", at, admin.listener.tls.certificate, true);
    r.path(*a, "private_key", at, admin.listener.tls.private_key, true);
    r.paths(*a, "admin_cas", at, admin.listener.tls.partner_cas);
    r.paths(*a, "crl", at, admin.listener.tls.crls);
    r.path(*a, "signing_dir", at, admin.signing_dir, true);
    r.number(*a, "state_poll_ms", at, admin.state_poll_ms, 100, 600'000);
    r.number(*a, "default_overlap_days", at, admin.default_overlap_days, 0, 365);
    r.number(*a, "default_validity_days", at, admin.default_validity_days, 1, 825);
    if (admin.listener.tls.partner_cas.empty()) {
      r.problem(at + "/admin_cas", "needs at least one administrators' trust anchor");
    }
    if (config.listener.port != 0 && admin.listener.port == config.listener.port &&
        admin.listener.address == config.listener.address) {
      r.problem(at + "/port", "must differ from the partner listener's port");
    }
    // The admin anchors must not also be partner anchors: a partner's certificate would then
    // chain on the admin port, and an admin's on the partner port. A file is a bundle and every
    // certificate in it is an anchor, so every one on each side is compared with every one on
    // the other.
    auto fingerprints = [](const std::filesystem::path& pem_file) -> std::set<std::string> {
      const auto all = identity::sha256_fingerprints_of_pem_file(pem_file);
      return {all.begin(), all.end()};
    };
    // Other agencies' anchors (pinned_partner_ca) count too: their CA must not issue admins.
    std::vector<std::filesystem::path> partner_files = config.listener.tls.partner_cas;
    partner_files.insert(partner_files.end(), config.listener.tls.pinned_partner_cas.begin(),
                         config.listener.tls.pinned_partner_cas.end());
    std::vector<std::set<std::string>> partner_anchors;
    for (const auto& partner_ca : partner_files) {
      partner_anchors.push_back(fingerprints(partner_ca));
    }
    const auto& admin_cas = admin.listener.tls.partner_cas;
    for (std::size_t i = 0; i < admin_cas.size(); ++i) {
      const auto admin_anchors = fingerprints(admin_cas[i]);
      if (std::filesystem::exists(admin_cas[i]) && admin_anchors.empty()) {
        r.problem(at + "/admin_cas/" + std::to_string(i), "holds no PEM certificate");
      }
      for (std::size_t j = 0; j < partner_anchors.size(); ++j) {
        const auto& partner_ca = partner_files[j];
        const bool shared =
            std::any_of(admin_anchors.begin(), admin_anchors.end(),
                        [&](const std::string& fp) { return partner_anchors[j].count(fp) != 0; });
        if (admin_cas[i].lexically_normal() == partner_ca.lexically_normal() || shared) {
          r.problem(at + "/admin_cas/" + std::to_string(i),
                    "is also a partner trust anchor (" + partner_ca.string() +
                        "); administrators need their own CA");
        }
      }
    }
  }
  r.path(doc, "routing", "", config.routing_file, true);
  r.path(doc, "partners", "", config.partners_file, true);
  r.path(doc, "schema_dir", "", config.schema_dir, true);
  r.path(doc, "mappings_dir", "", config.mappings_dir, true);
  r.path(doc, "translit_dir", "", config.translit_dir, true);
  r.path(doc, "adapters_dir", "", config.adapters_dir, true);
  for (auto [name, value] :
       {std::pair{"/partners", &config.partners_file}, std::pair{"/schema_dir", &config.schema_dir},
        std::pair{"/mappings_dir", &config.mappings_dir}}) {
    if (value->empty()) {
      r.problem(name, "is required");
    }
  }

  // Every attempt must end within its lease, or the copy is claimed and sent again while the
  // attempt still runs: each partner's delivery timeout_ms must be below the lease less its
  // margin (partners with an endpoint; one given an endpoint later is checked by the admin API).
  // The partners file's own problems are reported where it is loaded.
  std::error_code absent;
  if (config.delivery.enabled && !config.partners_file.empty() &&
      std::filesystem::is_regular_file(config.partners_file, absent)) {
    const std::chrono::milliseconds lease(config.delivery.lease_ms);
    const auto longest = delivery::longest_attempt(lease);
    std::vector<identity::config_problem> ignored;
    const auto partners = identity::partner_registry::load(config.partners_file, ignored);
    for (const auto* p : partners.all()) {
      if (!p->endpoint.empty() && p->delivery.timeout >= longest) {  // those delivered to
        r.problem("/delivery/lease_ms",
                  "must exceed every partner's delivery timeout_ms by its margin (" +
                      std::to_string(delivery::lease_margin(lease).count()) + " ms): partner '" +
                      p->id + "' has timeout_ms " + std::to_string(p->delivery.timeout.count()) +
                      "; lower it below " + std::to_string(longest.count()) + " or raise lease_ms");
      }
    }
  }

  if (const auto* lg = r.object(doc, "log", "")) {
    r.only(*lg, "/log", {"level", "file"});
    r.string(*lg, "level", "/log", config.log.level);
    if (config.log.level != "debug" && config.log.level != "info" && config.log.level != "warn" &&
        config.log.level != "error") {
      r.problem("/log/level", "must be one of debug, info, warn, error");
    }
    r.path(*lg, "file", "/log", config.log.file, false);
  }
  return config;
}

std::string read_store_password(const store_settings& store) {
  if (!store.password_env.empty()) {
    const char* value = std::getenv(store.password_env.c_str());
    if (value == nullptr) {
      throw std::runtime_error("names the environment variable " + store.password_env +
                               ", which is not set");
    }
    return value;
  }
  if (store.password_file.empty()) {
    return {};
  }
  const std::string name = store.password_file.string();
  struct stat info {};
  if (::stat(name.c_str(), &info) != 0) {
    throw std::runtime_error("names " + name + ", which cannot be read");
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw std::runtime_error("names " + name +
                             ", which group or others may read or write (chmod 0600 it)");
  }
  std::ifstream in(store.password_file, std::ios::binary);
  if (!in) {
    throw std::runtime_error("names " + name + ", which cannot be read");
  }
  std::string password(std::istreambuf_iterator<char>(in), {});
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  return password;
}

}  // namespace mxgw::config
