// Routing rules, recipient policy, victim-field withholding and per-recipient rendering.
#include "gateway/pipeline/routing.hpp"

#include <rapidjson/pointer.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/partial_date.hpp"

namespace mxgw::pipeline {
namespace {

constexpr std::string_view confidentiality_levels[] = {"restricted", "confidential", "secret"};
constexpr std::string_view victim_data = "victim-data";
constexpr std::string_view withheld_placeholder = "[withheld]";

template <typename List>
bool holds(const List& list, std::string_view value) {
  return std::find(std::begin(list), std::end(list), value) != std::end(list);
}

std::string_view view_of(const rapidjson::Value& v) {
  return v.IsString() ? std::string_view(v.GetString(), v.GetStringLength()) : std::string_view();
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject()) {
    return nullptr;
  }
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// The strings of an array member (non-strings skipped); empty when absent.
std::vector<std::string> strings_of(const rapidjson::Value* array) {
  std::vector<std::string> out;
  if (array != nullptr && array->IsArray()) {
    for (const auto& item : array->GetArray()) {
      if (item.IsString()) {
        out.emplace_back(view_of(item));
      }
    }
  }
  return out;
}

bool is_country_wildcard(std::string_view region) {
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  return region.size() == 4 && region.substr(2) == "-*" && upper(region[0]) && upper(region[1]);
}

// Rule ids appear in decisions beside "explicit" and "earlier-recipient", so they must not be
// those words.
bool is_valid_rule_id(std::string_view id) {
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return !id.empty() && id.size() <= 63 && id.front() != '-' &&
         std::all_of(id.begin(), id.end(), ok) && id != decided_explicitly &&
         id != decided_as_earlier_recipient;
}

// --- rules file ----------------------------------------------------------------------------------

struct rule_reader {
  const std::string& file;
  std::vector<config_problem>& problems;
  const identity::partner_registry& partners;
  const code_tables& tables;
  std::string at;
  bool valid = true;

  void problem(const std::string& field, const std::string& reason) {
    problems.push_back({file, at + field, reason});
    valid = false;
  }

  // A non-empty array of unique strings, each accepted by `check` (which returns a reason or "").
  std::vector<std::string> list(const rapidjson::Value& value, const std::string& field,
                                const std::function<std::string(std::string_view)>& check) {
    std::vector<std::string> out;
    if (!value.IsArray() || value.Empty()) {
      problem(field, "must be a non-empty array of strings (leave it out to match anything)");
      return out;
    }
    for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
      const std::string item_at = field + "/" + std::to_string(i);
      if (!value[i].IsString()) {
        problem(item_at, "must be a string");
        continue;
      }
      std::string_view text = view_of(value[i]);
      if (std::string why = check(text); !why.empty()) {
        problem(item_at, why);
      } else if (holds(out, text)) {
        problem(item_at, "repeats a value listed before");
      } else {
        out.emplace_back(text);
      }
    }
    return out;
  }

  std::string partner_problem(std::string_view id) const {
    return partners.find(id) == nullptr ? "names no partner in the partners file" : "";
  }

  std::string type_problem(std::string_view type) const {
    return holds(identity::canonical_message_types(), type) ? ""
                                                            : "is not a canonical message type";
  }

  std::string region_problem(std::string_view region) const {
    if (is_country_wildcard(region)) {
      const std::string country(region.substr(0, 2));
      if (tables.find("country") != nullptr && !tables.has("country", country)) {
        return "names an unknown country (table 'country')";
      }
      return "";
    }
    const code_table* table = tables.find("region");
    if (table == nullptr || !table->contains(region)) {
      return "is not a known region code (table 'region') or a country wildcard like KH-*";
    }
    auto current = table->current_units(region);
    if (current.size() != 1 || current.front() != region) {
      std::string names;
      for (const auto& code : current) {
        names += (names.empty() ? "" : ", ") + code;
      }
      return "is no longer in force; name the current unit (" + names +
             "): messages carrying the old code match it too";
    }
    return "";
  }

  std::string confidentiality_problem(std::string_view level) const {
    return holds(confidentiality_levels, level)
               ? ""
               : "is not a confidentiality level (restricted, confidential, secret)";
  }

  // False (a problem) when `entry` is not an object; a problem for each member not in `known`.
  bool known_members(const rapidjson::Value& entry, const std::set<std::string, std::less<>>& known,
                     const char* names) {
    if (!entry.IsObject()) {
      problem("", "must be an object");
      return false;
    }
    for (const auto& m : entry.GetObject()) {
      if (!known.contains(view_of(m.name))) {
        problem("/" + json::escape_pointer_token(view_of(m.name)),
                std::string("is not a known member (") + names + ")");
      }
    }
    return true;
  }

  // A rule's `id` (valid, and not among `ids` yet: it is added) and `description`.
  template <typename Rule>
  void read_id_and_description(const rapidjson::Value& entry, Rule& rule,
                               std::set<std::string, std::less<>>& ids, const char* duplicate) {
    rule.id = std::string(json::get_string(entry, "id"));
    if (!is_valid_rule_id(rule.id)) {
      problem("/id", "must match ^[a-z0-9][a-z0-9-]{0,62}$ and not be 'explicit'");
    } else if (!ids.insert(rule.id).second) {
      problem("/id", duplicate);
    }
    if (const auto* description = member(entry, "description")) {
      if (!description->IsString()) {
        problem("/description", "must be a string");
      } else {
        rule.description = std::string(view_of(*description));
      }
    }
  }

  // The keys a routing rule and a release rule share; `minors` only for a release rule.
  template <typename Rule>
  void read_match(const rapidjson::Value& match, Rule& rule) {
    constexpr bool release = std::is_same_v<Rule, release_rule>;
    if (!match.IsObject()) {
      problem("/match", "must be an object");
      return;
    }
    static const std::set<std::string, std::less<>> known = {"types", "senders", "regions",
                                                             "confidentiality"};
    for (const auto& m : match.GetObject()) {
      const std::string_view name = view_of(m.name);
      if (!known.contains(name) && !(release && name == "minors")) {
        problem("/match/" + json::escape_pointer_token(name),
                release ? "is not a known match key (types, senders, regions, confidentiality, "
                          "minors)"
                        : "is not a known match key (types, senders, regions, confidentiality)");
      }
    }
    if (const auto* v = member(match, "types")) {
      rule.types = list(*v, "/match/types", [this](auto s) { return type_problem(s); });
    }
    if (const auto* v = member(match, "senders")) {
      rule.senders = list(*v, "/match/senders", [this](auto s) { return partner_problem(s); });
    }
    if (const auto* v = member(match, "regions")) {
      rule.regions = list(*v, "/match/regions", [this](auto s) { return region_problem(s); });
    }
    if (const auto* v = member(match, "confidentiality")) {
      rule.confidentiality =
          list(*v, "/match/confidentiality", [this](auto s) { return confidentiality_problem(s); });
    }
    // A case update and a receipt name no place: with `regions`, the rule could never match one,
    // while its file says it does.
    if (!rule.regions.empty()) {
      for (std::size_t i = 0; i < rule.types.size(); ++i) {
        if (rule.types[i] == "case.status" || rule.types[i] == "receipt") {
          problem("/match/types/" + std::to_string(i),
                  "'" + rule.types[i] +
                      "' names no region, so with `regions` this rule never matches one (give "
                      "it a rule of its own without `regions`)");
        }
      }
    }
    if constexpr (release) {
      if (const auto* v = member(match, "minors")) {
        rule.minors = flag(*v, "/match/minors", "any message");
      }
    }
  }

  // `true`; false or anything else is a problem (leaving the key out is how to say "any").
  bool flag(const rapidjson::Value& value, const std::string& field, const char* any) {
    if (!value.IsTrue()) {
      problem(field, std::string("must be true (leave it out to match ") + any + ")");
      return false;
    }
    return true;
  }

  std::string country_problem(std::string_view country) const {
    const code_table* table = tables.find("country");
    if (table != nullptr ? !table->contains(country) : country.size() != 2) {
      return "is not a known country code (table 'country')";
    }
    return "";
  }

  void read_to(const rapidjson::Value& to, release_rule& rule) {
    if (!to.IsObject()) {
      problem("/to", "must be an object");
      return;
    }
    static const std::set<std::string, std::less<>> known = {"crossBorder", "countries",
                                                             "partners"};
    for (const auto& m : to.GetObject()) {
      if (!known.contains(view_of(m.name))) {
        problem("/to/" + json::escape_pointer_token(view_of(m.name)),
                "is not a known key (crossBorder, countries, partners)");
      }
    }
    if (const auto* v = member(to, "crossBorder")) {
      rule.cross_border = flag(*v, "/to/crossBorder", "any recipient");
    }
    if (const auto* v = member(to, "countries")) {
      rule.countries = list(*v, "/to/countries", [this](auto s) { return country_problem(s); });
    }
    if (const auto* v = member(to, "partners")) {
      rule.partners = list(*v, "/to/partners", [this](auto s) { return partner_problem(s); });
    }
  }
};

// --- what the message says -----------------------------------------------------------------------

void collect_regions(const rapidjson::Value& v, std::set<std::string, std::less<>>& out) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      std::string_view name = view_of(m.name);
      if (name == "unmapped") {
        continue;
      }
      if ((name == "region" || name == "homeRegion") && m.value.IsObject()) {
        if (const auto* code = member(m.value, "code"); code != nullptr && code->IsString()) {
          out.emplace(view_of(*code));
        }
      }
      collect_regions(m.value, out);
    }
  } else if (v.IsArray()) {
    for (const auto& item : v.GetArray()) {
      collect_regions(item, out);
    }
  }
}

bool region_matches(std::string_view wanted, const std::vector<std::string>& regions) {
  if (is_country_wildcard(wanted)) {
    return std::any_of(regions.begin(), regions.end(), [&](const std::string& code) {
      return code.size() > 3 && std::string_view(code).substr(0, 3) == wanted.substr(0, 3);
    });
  }
  return std::binary_search(regions.begin(), regions.end(), wanted, std::less<>());
}

template <typename Rule>
bool rule_matches(const Rule& rule, std::string_view type, std::string_view sender,
                  std::string_view confidentiality, const std::vector<std::string>& regions) {
  if (!rule.types.empty() && !holds(rule.types, type)) {
    return false;
  }
  if (!rule.senders.empty() && !holds(rule.senders, sender)) {
    return false;
  }
  if (!rule.confidentiality.empty() && !holds(rule.confidentiality, confidentiality)) {
    return false;
  }
  if (!rule.regions.empty() &&
      std::none_of(rule.regions.begin(), rule.regions.end(),
                   [&](const std::string& r) { return region_matches(r, regions); })) {
    return false;
  }
  return true;
}

using time_point = std::chrono::system_clock::time_point;

// A field that only recipients with a victim-data agreement get (and, for a minor, only when the
// sender marked it necessary).
struct sensitive_field {
  std::string pointer;
  bool about_minor = false;
};

void person_fields(const rapidjson::Value& person, const std::string& at, bool minor,
                   std::vector<sensitive_field>& out) {
  if (member(person, "photos") != nullptr) {
    out.push_back({at + "/photos", minor});
  }
  if (const auto* documents = member(person, "documents");
      documents != nullptr && documents->IsArray()) {
    for (rapidjson::SizeType k = 0; k < documents->Size(); ++k) {
      if (member((*documents)[k], "number") != nullptr) {
        out.push_back({at + "/documents/" + std::to_string(k) + "/number", minor});
      }
    }
  }
}

// The victim fields of `message`, a victim's minority judged at the earlier of `created` and `now`.
// With them goes the whole `unmapped` member: what a partner adapter could not map (a document
// scan, an unknown identity document with its number) is carried there verbatim, unchecked.
std::vector<sensitive_field> sensitive_fields(const rapidjson::Value& message, time_point now) {
  std::vector<sensitive_field> out;
  const std::string_view type = json::get_string(message, "type");
  const std::string_view created = json::get_string(message, "created");
  const rapidjson::Value* body = member(message, "body");
  if (body == nullptr) {
    return out;
  }
  if (type == "victim.identification") {
    const rapidjson::Value* person = member(*body, "person");
    const bool minor = person != nullptr && is_possibly_minor(*person, created, now);
    if (person != nullptr) {
      person_fields(*person, "/body/person", minor, out);
    }
    if (member(*body, "narrative") != nullptr) {
      out.push_back({"/body/narrative", minor});
    }
    if (member(message, "unmapped") != nullptr) {
      out.push_back({"/unmapped", minor});
    }
  } else if (type == "hotline.tip") {
    bool any_victim = false;
    bool any_minor = false;
    if (const auto* subjects = member(*body, "subjects");
        subjects != nullptr && subjects->IsArray()) {
      for (rapidjson::SizeType i = 0; i < subjects->Size(); ++i) {
        const auto& subject = (*subjects)[i];
        if (json::get_string(subject, "role") != "possible-victim") {
          continue;
        }
        any_victim = true;
        if (const auto* person = member(subject, "person")) {
          const bool minor = is_possibly_minor(*person, created, now);
          any_minor = any_minor || minor;
          person_fields(*person, "/body/subjects/" + std::to_string(i) + "/person", minor, out);
        }
      }
    }
    if (any_victim && member(*body, "summary") != nullptr) {
      out.push_back({"/body/summary", any_minor});
    }
    if (any_victim && member(message, "unmapped") != nullptr) {
      out.push_back({"/unmapped", any_minor});
    }
  }
  return out;
}

// True when the message is about a victim who may be a minor: a victim identification's person, or
// a tip's subject in the role possible-victim (the same persons whose data withholding protects).
bool about_possible_minor(const rapidjson::Value& message, time_point now) {
  const std::string_view type = json::get_string(message, "type");
  const std::string_view created = json::get_string(message, "created");
  const rapidjson::Value* body = member(message, "body");
  if (body == nullptr) {
    return false;
  }
  if (type == "victim.identification") {
    const rapidjson::Value* person = member(*body, "person");
    return person != nullptr && is_possibly_minor(*person, created, now);
  }
  if (type == "hotline.tip") {
    if (const auto* subjects = member(*body, "subjects");
        subjects != nullptr && subjects->IsArray()) {
      for (const auto& subject : subjects->GetArray()) {
        if (json::get_string(subject, "role") != "possible-victim") {
          continue;
        }
        if (const auto* person = member(subject, "person");
            person != nullptr && is_possibly_minor(*person, created, now)) {
          return true;
        }
      }
    }
  }
  return false;
}

// A withdrawal or cancellation takes data back; holding it from those who had that data would
// leave them acting on what is no longer so.
bool takes_back(const rapidjson::Value& message) {
  if (json::get_string(message, "type") != "case.status") {
    return false;
  }
  const rapidjson::Value* body = member(message, "body");
  const std::string_view status = body != nullptr ? json::get_string(*body, "status") : "";
  return status == "withdrawn" || status == "cancelled";
}

bool release_to_matches(const release_rule& rule, const identity::partner& sender,
                        const identity::partner& recipient) {
  if (rule.cross_border && recipient.country == sender.country) {
    return false;
  }
  if (!rule.countries.empty() && !holds(rule.countries, recipient.country)) {
    return false;
  }
  return rule.partners.empty() || holds(rule.partners, recipient.id);
}

rapidjson::Value string_value(std::string_view text, rapidjson::Document::AllocatorType& alloc) {
  return rapidjson::Value(json::non_null(text), static_cast<rapidjson::SizeType>(text.size()), alloc);
}

}  // namespace

// --- routing_rules -------------------------------------------------------------------------------

routing_rules routing_rules::load(const std::filesystem::path& file,
                                  std::vector<config_problem>& problems,
                                  const identity::partner_registry& partners,
                                  const code_tables& tables) {
  const std::string name = file.string();
  rapidjson::Document doc;
  try {
    doc = json::parse_file(name);
  } catch (const std::exception& e) {
    problems.push_back({name, "", e.what()});
    return {};
  }
  return parse(doc, name, problems, partners, tables);
}

routing_rules routing_rules::held(std::string reason) {
  routing_rules rules;
  rules.held_reason_ = std::move(reason);
  return rules;
}

routing_rules routing_rules::parse(const rapidjson::Value& doc, const std::string& file,
                                   std::vector<config_problem>& problems,
                                   const identity::partner_registry& partners,
                                   const code_tables& tables) {
  routing_rules result;
  const rapidjson::Value* list = member(doc, "rules");
  if (list == nullptr || !list->IsArray()) {
    problems.push_back({file, "/rules", "must be an array of routing rules"});
    return result;
  }
  for (const auto& m : doc.GetObject()) {
    std::string_view name = view_of(m.name);
    if (name != "rules" && name != "description" && name != "release") {
      problems.push_back({file, "/" + json::escape_pointer_token(name), "is not a known member"});
    }
  }
  static const std::set<std::string, std::less<>> known = {"id", "description", "match", "add"};
  std::set<std::string, std::less<>> ids;
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    rule_reader reader{file, problems, partners, tables, "/rules/" + std::to_string(i)};
    const auto& entry = (*list)[i];
    if (!reader.known_members(entry, known, "id, description, match, add")) {
      continue;
    }
    routing_rule rule;
    reader.read_id_and_description(entry, rule, ids, "duplicates an earlier rule's id");
    if (const auto* match = member(entry, "match")) {
      reader.read_match(*match, rule);
    }
    if (const auto* add = member(entry, "add")) {
      rule.add = reader.list(*add, "/add", [&](auto s) { return reader.partner_problem(s); });
    } else {
      reader.problem("/add", "is required (the partners this rule adds as recipients)");
    }
    if (reader.valid) {
      result.rules_.push_back(std::move(rule));
    }
  }
  if (const auto* release = member(doc, "release")) {
    result.parse_release(*release, file, problems, partners, tables, ids);
  }
  return result;
}

void routing_rules::parse_release(const rapidjson::Value& release, const std::string& file,
                                  std::vector<config_problem>& problems,
                                  const identity::partner_registry& partners,
                                  const code_tables& tables,
                                  std::set<std::string, std::less<>>& ids) {
  if (!release.IsObject()) {
    problems.push_back({file, "/release", "must be an object (approvals, rules)"});
    return;
  }
  for (const auto& m : release.GetObject()) {
    std::string_view name = view_of(m.name);
    if (name != "rules" && name != "approvals" && name != "description") {
      problems.push_back({file, "/release/" + json::escape_pointer_token(name),
                          "is not a known member (description, approvals, rules)"});
    }
  }
  if (const auto* approvals = member(release, "approvals")) {
    if (!approvals->IsUint() || approvals->GetUint() < 1 || approvals->GetUint() > 5) {
      problems.push_back({file, "/release/approvals",
                          "must be an integer from 1 to 5 (different administrators who must "
                          "approve a held copy)"});
    } else {
      approvals_ = approvals->GetUint();
    }
  }
  const rapidjson::Value* list = member(release, "rules");
  if (list == nullptr || !list->IsArray()) {
    problems.push_back({file, "/release/rules", "must be an array of release rules"});
    return;
  }
  static const std::set<std::string, std::less<>> known = {"id", "description", "match", "to"};
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    rule_reader reader{file, problems, partners, tables, "/release/rules/" + std::to_string(i)};
    const auto& entry = (*list)[i];
    if (!reader.known_members(entry, known, "id, description, match, to")) {
      continue;
    }
    release_rule rule;
    reader.read_id_and_description(entry, rule, ids,
                                   "duplicates an earlier routing or release rule's id");
    if (const auto* match = member(entry, "match")) {
      reader.read_match(*match, rule);
    }
    if (const auto* to = member(entry, "to")) {
      reader.read_to(*to, rule);
    }
    if (reader.valid) {
      release_.push_back(std::move(rule));
    }
  }
}

bool routing_rules::add(routing_rule rule) {
  if (std::any_of(rules_.begin(), rules_.end(),
                  [&](const routing_rule& r) { return r.id == rule.id; })) {
    return false;
  }
  rules_.push_back(std::move(rule));
  return true;
}

bool routing_rules::add_release(release_rule rule) {
  if (std::any_of(release_.begin(), release_.end(),
                  [&](const release_rule& r) { return r.id == rule.id; })) {
    return false;
  }
  release_.push_back(std::move(rule));
  return true;
}

// --- decisions -----------------------------------------------------------------------------------

const recipient_plan* routing_decision::find(std::string_view partner_id) const {
  auto it = std::find_if(recipients.begin(), recipients.end(),
                         [&](const recipient_plan& r) { return r.partner_id == partner_id; });
  return it == recipients.end() ? nullptr : &*it;
}

std::vector<std::string> message_regions(const rapidjson::Value& message,
                                         const code_tables& tables) {
  std::set<std::string, std::less<>> found;
  collect_regions(message, found);
  std::set<std::string, std::less<>> all(found.begin(), found.end());
  if (const code_table* table = tables.find("region")) {
    for (const auto& code : found) {
      for (auto& current : table->current_units(code)) {
        all.insert(std::move(current));
      }
    }
  }
  return {all.begin(), all.end()};
}

bool is_possibly_minor(const rapidjson::Value& person, std::string_view created,
                       std::optional<std::chrono::system_clock::time_point> now) {
  if (!person.IsObject()) {
    return false;
  }
  if (const auto* minor = member(person, "minor"); minor != nullptr && minor->IsTrue()) {
    return true;
  }
  // An estimated range that reaches below 18 (a lower bound under 18, or none: `{"max": 40}`
  // says nothing against 15) may be a minor's.
  if (const auto* estimate = member(person, "ageEstimate"); estimate != nullptr) {
    const auto* min = member(*estimate, "min");
    if (min == nullptr || !min->IsInt() || min->GetInt() < 18) {
      return true;
    }
  }
  const auto* birth = member(person, "birthDate");
  if (birth == nullptr || !birth->IsString()) {
    return false;
  }
  auto born = latest_day_of(view_of(*birth));
  auto at = parse_rfc3339(created);
  if (!born || !at) {
    return true;  // cannot tell: the stricter default
  }
  // A `created` in the future (only its format is checked) must not make a child an adult.
  if (now && *now < *at) {
    at = now;
  }
  const std::chrono::year_month_day today{std::chrono::floor<std::chrono::days>(*at)};
  // Under 18 until the 18th birthday (a 29 February birthday falls on 1 March in other years).
  const auto adult =
      std::make_tuple(static_cast<int>(born->year()) + 18, static_cast<unsigned>(born->month()),
                      static_cast<unsigned>(born->day()));
  const auto judged =
      std::make_tuple(static_cast<int>(today.year()), static_cast<unsigned>(today.month()),
                      static_cast<unsigned>(today.day()));
  return judged < adult;
}

routing_decision route(const rapidjson::Value& message, std::string_view sender,
                       const identity::partner_registry& partners, const routing_rules& rules,
                       const code_tables& tables,
                       const std::vector<std::string>& earlier_recipients, time_point now) {
  routing_decision decision;
  if (!rules.held_reason().empty()) {
    decision.error = routing_reason::routing_held;
    return decision;
  }
  const std::string_view type = json::get_string(message, "type");
  const identity::partner* from = partners.find(sender);
  if (from == nullptr) {
    decision.error = routing_reason::unknown_sender;
    return decision;
  }
  if (!from->may_send(type)) {
    decision.error = routing_reason::sender_may_not_send_type;
    return decision;
  }

  // Candidates: explicit recipients first, then each matching rule's additions; the first
  // reason a partner became a candidate is the one kept.
  struct candidate {
    std::string partner_id;
    std::string reason;
  };
  std::vector<candidate> candidates;
  auto propose = [&](std::string_view id, std::string_view why) {
    if (std::none_of(candidates.begin(), candidates.end(),
                     [&](const candidate& c) { return c.partner_id == id; })) {
      candidates.push_back({std::string(id), std::string(why)});
    }
  };
  for (const auto& id : strings_of(member(message, "recipients"))) {
    propose(id, decided_explicitly);
  }
  for (const auto& id : earlier_recipients) {
    propose(id, decided_as_earlier_recipient);
  }
  const rapidjson::Value* handling = member(message, "handling");
  static const rapidjson::Value no_object(rapidjson::kObjectType);
  const rapidjson::Value& h = handling != nullptr ? *handling : no_object;
  const auto regions = message_regions(message, tables);
  for (const auto& rule : rules.rules()) {
    if (rule_matches(rule, type, sender, json::get_string(h, "confidentiality"), regions)) {
      decision.matched_rules.push_back(rule.id);
      for (const auto& id : rule.add) {
        propose(id, rule.id);
      }
    }
  }

  // Policy, per candidate; the first failing check is the reason.
  const rapidjson::Value* releasable = member(h, "releasableTo");
  const auto releasable_to = strings_of(releasable);
  const std::string_view onward = json::get_string(h, "onwardTransfer");
  const auto codes = strings_of(member(h, "codes"));
  const bool restricted_codes = holds(codes, "H2") || holds(codes, "H3");
  const bool consent_basis = json::get_string(message, "legalBasis") == "consent";
  const rapidjson::Value* consent = nullptr;
  if (const auto* body = member(message, "body")) {
    consent = member(*body, "consent");
  }
  const auto is_true = [](const rapidjson::Value* v) { return v != nullptr && v->IsTrue(); };
  const bool consent_given = consent != nullptr && is_true(member(*consent, "given"));
  const auto consent_scope = strings_of(consent != nullptr ? member(*consent, "scope") : nullptr);
  // A child cannot consent alone: about a victim who may be a minor, consent counts only when a
  // parent or guardian gave it.
  const bool consent_valid =
      consent_basis && consent_given &&
      (is_true(member(*consent, "guardian")) || !about_possible_minor(message, now));
  // A withdrawal or cancellation takes data back: those who had that data hear of it whatever the
  // rest of the policy says of new data (it gives them none).
  const bool withdrawal = takes_back(message);
  const auto had_it = [&](std::string_view id) {
    return withdrawal && std::find(earlier_recipients.begin(), earlier_recipients.end(), id) !=
                             earlier_recipients.end();
  };

  auto exclusion_reason = [&](const candidate& c) -> std::string_view {
    // The sender named it, or it had the message a withdrawal takes back: not a third party.
    const bool explicit_recipient =
        c.reason == decided_explicitly || c.reason == decided_as_earlier_recipient;
    if (c.partner_id == sender) {
      return routing_reason::is_sender;
    }
    const identity::partner* p = partners.find(c.partner_id);
    if (p == nullptr) {
      return routing_reason::unknown_partner;
    }
    if (!p->enabled) {
      return routing_reason::disabled;
    }
    if (p->endpoint.empty()) {
      return routing_reason::no_endpoint;
    }
    if (!p->may_receive(type)) {
      return routing_reason::does_not_receive_type;
    }
    if (releasable != nullptr && !holds(releasable_to, p->id) &&
        !holds(releasable_to, p->country)) {
      return routing_reason::not_releasable;
    }
    if (!explicit_recipient && onward == "prohibited") {
      return routing_reason::onward_transfer_prohibited;
    }
    if (!explicit_recipient && onward == "with-source-consent") {
      return routing_reason::awaiting_source_consent;
    }
    if (!explicit_recipient && restricted_codes) {
      return routing_reason::handling_restricted;
    }
    if (consent_basis && !had_it(c.partner_id) &&
        (!consent_valid ||
         std::none_of(p->purposes.begin(), p->purposes.end(),
                      [&](const std::string& purpose) { return holds(consent_scope, purpose); }))) {
      return routing_reason::outside_consent;
    }
    return {};
  };

  // Release rules the message matches; each recipient is then held by the first whose `to` holds.
  std::vector<const release_rule*> holding;
  if (!rules.release_rules().empty()) {
    const std::string_view confidentiality = json::get_string(h, "confidentiality");
    std::optional<bool> minor;
    for (const auto& rule : rules.release_rules()) {
      if (!rule_matches(rule, type, sender, confidentiality, regions)) {
        continue;
      }
      if (rule.minors) {
        if (!minor) {
          minor = about_possible_minor(message, now);
        }
        if (!*minor) {
          continue;
        }
      }
      holding.push_back(&rule);
    }
  }

  const auto fields = sensitive_fields(message, now);
  const rapidjson::Value* necessary = member(h, "minorDataNecessary");
  const bool minor_data_necessary = necessary != nullptr && necessary->IsTrue();
  for (const auto& c : candidates) {
    if (auto why = exclusion_reason(c); !why.empty()) {
      decision.excluded.push_back({c.partner_id, c.reason, std::string(why)});
      continue;
    }
    recipient_plan plan{c.partner_id, c.reason, {}};
    const identity::partner& recipient = *partners.find(c.partner_id);
    const bool agreement = recipient.has_agreement(victim_data);
    for (const auto* rule : holding) {
      if (release_to_matches(*rule, *from, recipient)) {
        plan.held_by = rule->id;
        break;
      }
    }
    // A withdrawal is not held from those who had the message it takes back: they must stop
    // acting on it now. What in it no one reviewed (its note; what a partner format could not map)
    // is left out of their copy instead. To anyone else it is held like any message.
    if (!plan.held_by.empty() && had_it(c.partner_id)) {
      plan.held_by.clear();
      for (const char* unreviewed : {"/body/note", "/unmapped"}) {
        if (rapidjson::Pointer(unreviewed).Get(message) != nullptr) {
          plan.withheld.push_back({unreviewed, std::string(routing_reason::not_released)});
        }
      }
    }
    for (const auto& field : fields) {
      if (!agreement) {
        plan.withheld.push_back(
            {field.pointer, std::string(routing_reason::no_victim_data_agreement)});
      } else if (field.about_minor && !minor_data_necessary) {
        plan.withheld.push_back(
            {field.pointer, std::string(routing_reason::minor_data_not_marked_necessary)});
      }
    }
    // A victim field left in the copy (withheld for no reason at all) makes the copy one that
    // only a holder of the agreement may receive: delivery checks it again before every attempt.
    const bool victim_data_left =
        std::any_of(fields.begin(), fields.end(), [&](const sensitive_field& field) {
          return std::none_of(plan.withheld.begin(), plan.withheld.end(),
                              [&](const withheld_field& w) { return w.pointer == field.pointer; });
        });
    if (victim_data_left) {
      plan.relies_on.emplace_back(victim_data);
    }
    decision.recipients.push_back(std::move(plan));
  }
  return decision;
}

std::string render_for(const rapidjson::Value& message, const recipient_plan& plan) {
  if (plan.withheld.empty()) {
    return json::to_string(message);
  }
  rapidjson::Document doc;
  auto& alloc = doc.GetAllocator();
  doc.CopyFrom(message, alloc);
  const bool tip = json::get_string(message, "type") == "hotline.tip";
  for (const auto& field : plan.withheld) {
    rapidjson::Pointer pointer(field.pointer.c_str());
    if (!pointer.IsValid()) {
      continue;
    }
    if (tip && field.pointer == "/body/summary") {
      // Required by the schema: replaced by a marker instead of removed.
      rapidjson::Value marker(rapidjson::kObjectType);
      marker.AddMember("text", string_value(withheld_placeholder, alloc), alloc);
      pointer.Set(doc, marker, alloc);
    } else {
      pointer.Erase(doc);
    }
  }
  // The envelope says what is missing: appended to what the message already lists, placed before
  // the body so a reader meets it first.
  rapidjson::Value list(rapidjson::kArrayType);
  if (auto it = doc.FindMember("withheld"); it != doc.MemberEnd()) {
    if (it->value.IsArray()) {
      list = std::move(it->value);
    }
    doc.RemoveMember(it);
  }
  for (const auto& field : plan.withheld) {
    rapidjson::Value entry(rapidjson::kObjectType);
    entry.AddMember("pointer", string_value(field.pointer, alloc), alloc);
    entry.AddMember("reason", string_value(field.reason, alloc), alloc);
    list.PushBack(entry, alloc);
  }
  rapidjson::Value out(rapidjson::kObjectType);
  for (auto& m : doc.GetObject()) {
    if (view_of(m.name) == "body") {
      out.AddMember("withheld", list, alloc);
    }
    out.AddMember(m.name, m.value, alloc);
  }
  if (!out.HasMember("withheld")) {
    out.AddMember("withheld", list, alloc);
  }
  return json::to_string(out);
}

std::string to_json(const routing_decision& decision) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& alloc = doc.GetAllocator();
  auto str = [&](std::string_view s) { return string_value(s, alloc); };
  if (!decision.error.empty()) {
    doc.AddMember("error", str(decision.error), alloc);
  }
  rapidjson::Value matched(rapidjson::kArrayType);
  for (const auto& id : decision.matched_rules) {
    matched.PushBack(str(id), alloc);
  }
  doc.AddMember("matchedRules", matched, alloc);
  rapidjson::Value recipients(rapidjson::kArrayType);
  for (const auto& r : decision.recipients) {
    rapidjson::Value entry(rapidjson::kObjectType);
    entry.AddMember("partner", str(r.partner_id), alloc);
    entry.AddMember("decidedBy", str(r.decided_by), alloc);
    rapidjson::Value withheld(rapidjson::kArrayType);
    for (const auto& w : r.withheld) {
      rapidjson::Value field(rapidjson::kObjectType);
      field.AddMember("pointer", str(w.pointer), alloc);
      field.AddMember("reason", str(w.reason), alloc);
      withheld.PushBack(field, alloc);
    }
    entry.AddMember("withheld", withheld, alloc);
    if (!r.held_by.empty()) {
      entry.AddMember("heldBy", str(r.held_by), alloc);
    }
    recipients.PushBack(entry, alloc);
  }
  doc.AddMember("recipients", recipients, alloc);
  rapidjson::Value excluded(rapidjson::kArrayType);
  for (const auto& e : decision.excluded) {
    rapidjson::Value entry(rapidjson::kObjectType);
    entry.AddMember("partner", str(e.partner_id), alloc);
    entry.AddMember("considered", str(e.considered), alloc);
    entry.AddMember("reason", str(e.reason), alloc);
    excluded.PushBack(entry, alloc);
  }
  doc.AddMember("excluded", excluded, alloc);
  return json::to_string(doc);
}

}  // namespace mxgw::pipeline
