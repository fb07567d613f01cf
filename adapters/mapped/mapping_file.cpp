// Loading and checking mapping files (config/adapters/*.json); see mapped.hpp.
#include <algorithm>
#include <cctype>
#include <set>

#include "adapters/mapped/mapped.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/code_tables.hpp"
#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::adapters::mapped {

bool parse_pointer(std::string_view text, pointer_path& out) {
  out.text = std::string(text);
  out.tokens.clear();
  if (text.empty()) {
    return true;
  }
  if (text.front() != '/') {
    return false;
  }
  std::size_t start = 1;
  while (true) {
    const auto slash = text.find('/', start);
    const auto raw = text.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '~') {
        token += raw[i];
      } else if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token += raw[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        return false;  // "~" must be followed by 0 or 1
      }
    }
    out.tokens.push_back(std::move(token));
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

std::vector<std::string> column_values(const rapidjson::Value& entry, std::string_view column) {
  std::vector<std::string> out;
  const auto add = [&](const rapidjson::Value& v) {
    if (v.IsString()) {
      out.emplace_back(v.GetString(), v.GetStringLength());
    } else if (v.IsInt64()) {
      out.push_back(std::to_string(v.GetInt64()));
    }
  };
  if (!entry.IsObject()) {
    return out;
  }
  if (column == "code") {
    add(entry["code"]);
    return out;
  }
  constexpr std::string_view partner_codes = "partnerCodes/";
  if (column.substr(0, partner_codes.size()) == partner_codes) {
    const std::string key(column.substr(partner_codes.size()));
    auto pc = entry.FindMember("partnerCodes");
    if (pc == entry.MemberEnd() || !pc->value.IsObject()) {
      return out;
    }
    auto list = pc->value.FindMember(key.c_str());
    if (list != pc->value.MemberEnd() && list->value.IsArray()) {
      for (const auto& v : list->value.GetArray()) {
        add(v);
      }
    }
    return out;
  }
  auto member = entry.FindMember(std::string(column).c_str());
  if (member != entry.MemberEnd()) {
    add(member->value);
  }
  return out;
}

namespace {

constexpr std::size_t max_id_length = 40;

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// Collects the problems of one file; `file` names it in every problem.
struct checker {
  const std::string& file;
  const pipeline::code_tables& tables;
  const pipeline::schema_set& schemas;
  std::vector<config_problem>& problems;
  std::size_t before = problems.size();

  void problem(const std::string& at, const std::string& reason) {
    problems.push_back({file, at, reason});
  }
  bool ok() const { return problems.size() == before; }

  void only(const rapidjson::Value& object, const std::string& at,
            std::initializer_list<std::string_view> allowed) {
    for (const auto& m : object.GetObject()) {
      const std::string_view name(m.name.GetString(), m.name.GetStringLength());
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        problem(at + "/" + json::escape_pointer_token(name), "is not a member of a mapping file");
      }
    }
  }

  std::string string(const rapidjson::Value& object, const char* name, const std::string& at,
                     bool required) {
    auto it = object.FindMember(name);
    if (it == object.MemberEnd()) {
      if (required) {
        problem(at + "/" + name, "is required");
      }
      return {};
    }
    if (!it->value.IsString() || it->value.GetStringLength() == 0) {
      problem(at + "/" + name, "must be a non-empty string");
      return {};
    }
    return {it->value.GetString(), it->value.GetStringLength()};
  }

  bool flag(const rapidjson::Value& object, const char* name, const std::string& at) {
    auto it = object.FindMember(name);
    if (it == object.MemberEnd()) {
      return false;
    }
    if (!it->value.IsBool()) {
      problem(at + "/" + name, "must be true or false");
      return false;
    }
    return it->value.GetBool();
  }

  // A partner pointer: a JSON Pointer naming object members only (no "*" or index).
  pointer_path partner_pointer(const std::string& text, const std::string& at) {
    pointer_path p;
    if (!parse_pointer(text, p) || p.tokens.empty()) {
      problem(at, "is not a JSON Pointer into the partner's document ('" + text + "')");
      return p;
    }
    for (const auto& t : p.tokens) {
      if (t.empty() || t == "*" ||
          std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
        problem(at, "must name object members only ('" + text + "')");
        break;
      }
    }
    return p;
  }

  std::vector<std::string> types(const rapidjson::Value& object, const std::string& at) {
    std::vector<std::string> out;
    auto it = object.FindMember("types");
    if (it == object.MemberEnd()) {
      return out;
    }
    if (!it->value.IsArray() || it->value.Empty()) {
      problem(at + "/types", "must be a non-empty array of canonical types");
      return out;
    }
    for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
      const auto& t = it->value[i];
      if (!t.IsString() || !schemas.has_type(t.GetString())) {
        problem(at + "/types/" + std::to_string(i), "is not a canonical message type");
        continue;
      }
      out.emplace_back(t.GetString());
    }
    return out;
  }

  // A canonical pointer, checked against the schemas of every type it applies to.
  pointer_path canonical_pointer(const std::string& text, const std::string& at,
                                 const std::vector<std::string>& applies_to, bool star_allowed) {
    pointer_path p;
    if (!parse_pointer(text, p) || p.tokens.empty()) {
      problem(at, "is not a JSON Pointer into the canonical message ('" + text + "')");
      return p;
    }
    for (const auto& t : p.tokens) {
      if (t == "*" && !star_allowed) {
        problem(at, "uses '*' without a `select` ('" + text + "')");
        return p;
      }
      if (!t.empty() &&
          std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
        problem(at, "uses an array index; use '*' with `select` ('" + text + "')");
        return p;
      }
    }
    const std::string& first = p.tokens.front();
    if (p.tokens.size() == 1 && (first == "mx" || first == "id" || first == "type" ||
                                 first == "sender" || first == "ref")) {
      problem(at, "names '" + text +
                      "', which the adapter sets itself (sender from the certificate, id from "
                      "the reference, type from the kind)");
      return p;
    }
    for (const auto& type : applies_to) {
      if (!schemas.knows_pointer(type, text)) {
        problem(at, "names unknown canonical field '" + text + "' (message type " + type + ")");
        break;
      }
    }
    return p;
  }

  // table + column of a code field; also refuses a column whose reverse mapping is ambiguous.
  void code_column(const std::string& table_name, const std::string& column,
                   const std::string& at) {
    const pipeline::code_table* table = tables.find(table_name);
    if (table == nullptr) {
      problem(at + "/table", "names unknown code table '" + table_name + "'");
      return;
    }
    std::map<std::string, std::string> reverse;  // upper-cased partner value -> code
    bool any = false;
    for (const auto* entry : table->entries()) {
      const std::string code(json::get_string(*entry, "code"));
      for (const auto& v : column_values(*entry, column)) {
        any = true;
        auto [it, added] = reverse.emplace(upper(v), code);
        if (!added && it->second != code) {
          problem(at + "/column", "is ambiguous in table '" + table_name + "': '" + v +
                                      "' stands for both " + it->second + " and " + code);
          return;
        }
      }
    }
    if (!any) {
      problem(at + "/column",
              "names a column no entry of table '" + table_name + "' has ('" + column + "')");
    }
  }
};

std::shared_ptr<const rapidjson::Document> copy_of(const rapidjson::Value& v) {
  auto doc = std::make_shared<rapidjson::Document>();
  doc->CopyFrom(v, doc->GetAllocator());
  return doc;
}

}  // namespace

bool mapping_set::add(const rapidjson::Value& doc, const std::string& file,
                      const pipeline::code_tables& tables, const pipeline::schema_set& schemas,
                      std::vector<config_problem>& problems) {
  checker c{file, tables, schemas, problems};
  if (!doc.IsObject()) {
    c.problem("", "must be a JSON object");
    return false;
  }
  c.only(doc, "",
         {"id", "description", "format", "kind", "reference", "dates", "partnerConstants",
          "constants", "fields", "receipt"});
  auto spec = std::make_shared<mapping_spec>();
  spec->file = file;
  spec->id = c.string(doc, "id", "", true);
  if (!spec->id.empty()) {
    const bool well_formed =
        spec->id.size() <= max_id_length &&
        std::all_of(spec->id.begin(), spec->id.end(), [](char ch) {
          return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
        });
    if (!well_formed) {
      c.problem("/id", "must be lower-case letters, digits and '-' (at most 40)");
    } else if (specs_.contains(spec->id)) {
      c.problem("/id", "'" + spec->id + "' is already the id of " + specs_.at(spec->id)->file);
    }
  }

  // The format constant: checked on decode, written on encode, named in messages.
  if (auto it = doc.FindMember("format"); it != doc.MemberEnd() && it->value.IsObject()) {
    c.only(it->value, "/format", {"pointer", "value"});
    constant_rule format;
    format.at = "/format";
    format.pointer =
        c.partner_pointer(c.string(it->value, "pointer", "/format", true), "/format/pointer");
    spec->format_name = c.string(it->value, "value", "/format", true);
    format.value = copy_of(rapidjson::Value(rapidjson::StringRef(spec->format_name.c_str())));
    spec->partner_constants.push_back(std::move(format));
  } else {
    c.problem("/format", "is required: {\"pointer\": ..., \"value\": ...}");
  }

  std::vector<std::string> all_types;
  if (auto it = doc.FindMember("kind"); it != doc.MemberEnd() && it->value.IsObject()) {
    c.only(it->value, "/kind", {"pointer", "values"});
    spec->kind_pointer =
        c.partner_pointer(c.string(it->value, "pointer", "/kind", true), "/kind/pointer");
    auto values = it->value.FindMember("values");
    if (values == it->value.MemberEnd() || !values->value.IsObject() ||
        values->value.MemberCount() == 0) {
      c.problem("/kind/values", "must map each partner kind to a canonical type");
    } else {
      for (const auto& m : values->value.GetObject()) {
        const std::string kind(m.name.GetString(), m.name.GetStringLength());
        const std::string at = "/kind/values/" + json::escape_pointer_token(kind);
        if (!m.value.IsString() || !schemas.has_type(m.value.GetString())) {
          c.problem(at, "is not a canonical message type");
          continue;
        }
        const std::string type = m.value.GetString();
        if (std::find(all_types.begin(), all_types.end(), type) != all_types.end()) {
          c.problem(at, "maps a second kind to " + type + " (encoding would be ambiguous)");
          continue;
        }
        all_types.push_back(type);
        spec->kinds.emplace_back(kind, type);
      }
    }
  } else {
    c.problem("/kind", "is required: {\"pointer\": ..., \"values\": {...}}");
  }
  spec->reference = c.partner_pointer(c.string(doc, "reference", "", true), "/reference");

  if (auto it = doc.FindMember("dates"); it != doc.MemberEnd()) {
    if (!it->value.IsObject()) {
      c.problem("/dates", "must be an object");
    } else {
      c.only(it->value, "/dates", {"era", "localOffsetMinutes"});
      const std::string e = c.string(it->value, "era", "/dates", false);
      if (e == "buddhist") {
        spec->calendar = era::buddhist;
      } else if (!e.empty() && e != "common") {
        c.problem("/dates/era", "must be \"common\" or \"buddhist\"");
      }
      auto offset = it->value.FindMember("localOffsetMinutes");
      if (offset != it->value.MemberEnd()) {
        if (!offset->value.IsInt() || offset->value.GetInt() < -720 ||
            offset->value.GetInt() > 840) {
          c.problem("/dates/localOffsetMinutes", "must be an integer from -720 to 840");
        } else {
          spec->offset_minutes = offset->value.GetInt();
        }
      }
    }
  }
  const auto types_or_all = [&](const std::vector<std::string>& t) {
    return t.empty() ? all_types : t;
  };

  if (auto it = doc.FindMember("partnerConstants"); it != doc.MemberEnd()) {
    if (!it->value.IsArray()) {
      c.problem("/partnerConstants", "must be an array");
    } else {
      for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
        const std::string at = "/partnerConstants/" + std::to_string(i);
        const auto& item = it->value[i];
        if (!item.IsObject() || !item.HasMember("value")) {
          c.problem(at, "must be {\"partner\": ..., \"value\": ...}");
          continue;
        }
        c.only(item, at, {"partner", "value", "types"});
        constant_rule rule{at,
                           c.partner_pointer(c.string(item, "partner", at, true), at + "/partner"),
                           copy_of(item["value"]), c.types(item, at)};
        spec->partner_constants.push_back(std::move(rule));
      }
    }
  }
  if (auto it = doc.FindMember("constants"); it != doc.MemberEnd()) {
    if (!it->value.IsArray()) {
      c.problem("/constants", "must be an array");
    } else {
      for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
        const std::string at = "/constants/" + std::to_string(i);
        const auto& item = it->value[i];
        if (!item.IsObject() || !item.HasMember("value")) {
          c.problem(at, "must be {\"canonical\": ..., \"value\": ...}");
          continue;
        }
        c.only(item, at, {"canonical", "value", "types"});
        auto types = c.types(item, at);
        constant_rule rule{at,
                           c.canonical_pointer(c.string(item, "canonical", at, true),
                                               at + "/canonical", types_or_all(types), false),
                           copy_of(item["value"]), types};
        spec->canonical_constants.push_back(std::move(rule));
      }
    }
  }

  auto fields = doc.FindMember("fields");
  if (fields == doc.MemberEnd() || !fields->value.IsArray()) {
    c.problem("/fields", "must be an array of field rules");
  } else {
    for (rapidjson::SizeType i = 0; i < fields->value.Size(); ++i) {
      const std::string at = "/fields/" + std::to_string(i);
      const auto& item = fields->value[i];
      if (!item.IsObject()) {
        c.problem(at, "must be an object");
        continue;
      }
      c.only(item, at,
             {"partner", "canonical", "transform", "table", "column", "values", "era", "list",
              "wrap", "required", "direction", "types", "select", "init", "note"});
      field_rule rule;
      rule.at = at;
      rule.types = c.types(item, at);
      rule.partner = c.partner_pointer(c.string(item, "partner", at, true), at + "/partner");
      auto select = item.FindMember("select");
      if (select != item.MemberEnd()) {
        if (!select->value.IsObject() || select->value.MemberCount() == 0) {
          c.problem(at + "/select", "must be an object of member values");
        } else {
          rule.select = copy_of(select->value);
        }
      }
      auto init = item.FindMember("init");
      if (init != item.MemberEnd()) {
        if (!init->value.IsObject()) {
          c.problem(at + "/init", "must be an object of member values");
        } else {
          rule.init = copy_of(init->value);
        }
      }
      const std::string canonical = c.string(item, "canonical", at, true);
      rule.canonical = c.canonical_pointer(canonical, at + "/canonical", types_or_all(rule.types),
                                           rule.select != nullptr);
      if (rule.select &&
          std::count(rule.canonical.tokens.begin(), rule.canonical.tokens.end(), "*") != 1) {
        c.problem(at + "/select", "needs exactly one '*' in the canonical pointer");
      }
      if (!rule.canonical.tokens.empty() && rule.canonical.tokens.back() == "*") {
        c.problem(at + "/canonical", "must name a member, not an element ('*' last)");
      }
      const std::string kind = c.string(item, "transform", at, false);
      static const std::map<std::string, transform, std::less<>> transforms{
          {"text", transform::text},
          {"integer", transform::integer},
          {"boolean", transform::boolean},
          {"date", transform::date},
          {"datetime", transform::datetime},
          {"code", transform::code},
          {"name-parts", transform::name_parts}};
      if (!kind.empty()) {
        auto t = transforms.find(kind);
        if (t == transforms.end()) {
          c.problem(at + "/transform",
                    "must be one of text, integer, boolean, date, datetime, code, name-parts");
        } else {
          rule.kind = t->second;
        }
      }
      const bool inline_values = item.HasMember("values");
      rule.table = c.string(item, "table", at, rule.kind == transform::code && !inline_values);
      rule.column = c.string(item, "column", at, false);
      if (rule.kind == transform::code && inline_values) {
        const auto& values = item["values"];
        std::set<std::string> seen;
        if (!rule.table.empty()) {
          c.problem(at + "/values", "cannot be combined with \"table\"");
        } else if (!values.IsObject() || values.MemberCount() == 0) {
          c.problem(at + "/values", "must map each partner code to a canonical code");
        } else {
          for (const auto& m : values.GetObject()) {
            const std::string code(m.name.GetString(), m.name.GetStringLength());
            if (!m.value.IsString() || !seen.insert(upper(code)).second) {
              c.problem(at + "/values/" + json::escape_pointer_token(code),
                        "must be a string, once per partner code");
              continue;
            }
            rule.values.emplace_back(code, m.value.GetString());
          }
        }
      } else if (rule.kind == transform::code) {
        if (rule.column.empty()) {
          rule.column = "code";
        }
        if (!rule.table.empty()) {
          c.code_column(rule.table, rule.column, at);
        }
      } else if (!rule.table.empty() || item.HasMember("column") || inline_values) {
        c.problem(at + "/table", "is only for \"transform\": \"code\"");
      }
      rule.calendar = spec->calendar;
      const std::string e = c.string(item, "era", at, false);
      if (e == "buddhist") {
        rule.calendar = era::buddhist;
      } else if (e == "common") {
        rule.calendar = era::common;
      } else if (!e.empty()) {
        c.problem(at + "/era", "must be \"common\" or \"buddhist\"");
      }
      rule.list = c.flag(item, "list", at);
      rule.wrap = c.flag(item, "wrap", at);
      rule.required = c.flag(item, "required", at);
      if (rule.list && rule.wrap) {
        c.problem(at + "/wrap", "cannot be combined with \"list\"");
      }
      const std::string direction = c.string(item, "direction", at, false);
      if (direction == "decode") {
        rule.encode = false;
      } else if (direction == "encode") {
        rule.decode = false;
      } else if (!direction.empty() && direction != "both") {
        c.problem(at + "/direction", "must be \"both\", \"decode\" or \"encode\"");
      }
      spec->fields.push_back(std::move(rule));
    }
  }

  if (auto it = doc.FindMember("receipt"); it != doc.MemberEnd()) {
    const auto& r = it->value;
    if (!r.IsObject()) {
      c.problem("/receipt", "must be an object");
    } else {
      c.only(r, "/receipt",
             {"kind", "id", "replyTo", "acceptedAt", "recipient", "sender", "constants"});
      auto& receipt = spec->receipt;
      receipt.present = true;
      receipt.kind = c.string(r, "kind", "/receipt", true);
      receipt.id = c.partner_pointer(c.string(r, "id", "/receipt", true), "/receipt/id");
      receipt.reply_to =
          c.partner_pointer(c.string(r, "replyTo", "/receipt", true), "/receipt/replyTo");
      receipt.accepted_at =
          c.partner_pointer(c.string(r, "acceptedAt", "/receipt", true), "/receipt/acceptedAt");
      if (r.HasMember("recipient")) {
        receipt.recipient =
            c.partner_pointer(c.string(r, "recipient", "/receipt", true), "/receipt/recipient");
      }
      if (r.HasMember("sender")) {
        receipt.sender =
            c.partner_pointer(c.string(r, "sender", "/receipt", true), "/receipt/sender");
      }
      if (auto k = r.FindMember("constants"); k != r.MemberEnd()) {
        if (!k->value.IsArray()) {
          c.problem("/receipt/constants", "must be an array");
        } else {
          for (rapidjson::SizeType i = 0; i < k->value.Size(); ++i) {
            const std::string at = "/receipt/constants/" + std::to_string(i);
            const auto& item = k->value[i];
            if (!item.IsObject() || !item.HasMember("value")) {
              c.problem(at, "must be {\"partner\": ..., \"value\": ...}");
              continue;
            }
            c.only(item, at, {"partner", "value"});
            receipt.constants.push_back(
                {at,
                 c.partner_pointer(c.string(item, "partner", at, true), at + "/partner"),
                 copy_of(item["value"]),
                 {}});
          }
        }
      }
    }
  }
  if (!c.ok()) {
    return false;
  }
  specs_.emplace(spec->id, std::move(spec));
  return true;
}

mapping_set mapping_set::load(const std::filesystem::path& dir, const pipeline::code_tables& tables,
                              const pipeline::schema_set& schemas,
                              std::vector<config_problem>& problems) {
  mapping_set result;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    problems.push_back({dir.string(), "", "is not a directory of mapping files"});
    return result;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    rapidjson::Document doc;
    try {
      doc = json::parse_file(path.string());
    } catch (const std::exception& e) {
      problems.push_back({path.string(), "", e.what()});
      continue;
    }
    result.add(doc, path.string(), tables, schemas, problems);
  }
  return result;
}

std::vector<std::string> mapping_set::ids() const {
  std::vector<std::string> out;
  for (const auto& [id, spec] : specs_) {
    out.push_back(id);
  }
  return out;
}

std::shared_ptr<const mapping_spec> mapping_set::find(std::string_view id) const {
  auto it = specs_.find(id);
  return it == specs_.end() ? nullptr : it->second;
}

}  // namespace mxgw::adapters::mapped
