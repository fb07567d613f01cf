// Loads and checks the code tables.
#include "gateway/pipeline/code_tables.hpp"

#include <algorithm>

#include "gateway/common/json.hpp"

namespace mxgw::pipeline {

code_tables code_tables::load(const std::filesystem::path& dir,
                              std::vector<config_problem>& problems) {
  code_tables result;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    problems.push_back({dir.string(), "", "is not a directory of code tables"});
    return result;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string file = path.string();
    rapidjson::Document doc;
    try {
      doc = json::parse_file(file);
    } catch (const std::exception& e) {
      problems.push_back({file, "", e.what()});
      continue;
    }
    code_table table;
    table.name = std::string(json::get_string(doc, "table"));
    table.version = std::string(json::get_string(doc, "version"));
    if (table.name.empty()) {
      problems.push_back({file, "/table", "is required (the table's name)"});
      continue;
    }
    if (result.tables_.contains(table.name)) {
      problems.push_back({file, "/table", "names table '" + table.name + "' a second time"});
      continue;
    }
    if (!doc.HasMember("entries") || !doc["entries"].IsArray()) {
      problems.push_back({file, "/entries", "must be an array"});
      continue;
    }
    const auto& entries = doc["entries"];
    for (rapidjson::SizeType i = 0; i < entries.Size(); ++i) {
      const std::string at = "/entries/" + std::to_string(i);
      std::string code(json::get_string(entries[i], "code"));
      if (code.empty()) {
        problems.push_back({file, at + "/code", "is required"});
        continue;
      }
      std::vector<std::string> successors;
      if (entries[i].HasMember("successors") && entries[i]["successors"].IsArray()) {
        for (const auto& s : entries[i]["successors"].GetArray()) {
          if (s.IsString()) {
            successors.emplace_back(s.GetString());
          }
        }
      }
      if (!table.codes.emplace(code, std::move(successors)).second) {
        problems.push_back({file, at + "/code", "duplicates code '" + code + "'"});
      }
    }
    for (rapidjson::SizeType i = 0; i < entries.Size(); ++i) {
      if (!entries[i].IsObject() || !entries[i].HasMember("successors") ||
          !entries[i]["successors"].IsArray()) {
        continue;
      }
      const auto& successors = entries[i]["successors"];
      for (rapidjson::SizeType k = 0; k < successors.Size(); ++k) {
        if (successors[k].IsString() && !table.contains(successors[k].GetString())) {
          problems.push_back(
              {file, "/entries/" + std::to_string(i) + "/successors/" + std::to_string(k),
               "names unknown successor '" + std::string(successors[k].GetString()) + "'"});
        }
      }
    }
    table.attach(std::make_shared<const rapidjson::Document>(std::move(doc)));
    std::string name = table.name;
    result.tables_.emplace(std::move(name), std::move(table));
  }
  return result;
}

std::vector<std::string> code_table::current_units(std::string_view code) const {
  std::set<std::string, std::less<>> current;
  std::set<std::string, std::less<>> seen;
  std::vector<std::string> pending;
  if (contains(code)) {
    pending.emplace_back(code);
  }
  while (!pending.empty()) {
    std::string next = std::move(pending.back());
    pending.pop_back();
    if (!seen.insert(next).second) {
      continue;
    }
    auto it = codes.find(next);
    if (it == codes.end()) {
      continue;
    }
    if (it->second.empty()) {
      current.insert(next);
    } else {
      pending.insert(pending.end(), it->second.begin(), it->second.end());
    }
  }
  return {current.begin(), current.end()};
}

namespace {

/// The reverse index's key of a value: its kind ('s' string, 'i' integer, 'p' partner code), its
/// column or partner, and the value, NUL-separated, written into `key`.
void write_reverse_key(std::string& key, char kind, std::string_view column,
                       std::string_view value) {
  key.clear();
  key.reserve(column.size() + value.size() + 3);
  key += kind;
  key += '\0';
  key += column;
  key += '\0';
  key += value;
}

std::string reverse_key(char kind, std::string_view column, std::string_view value) {
  std::string key;
  write_reverse_key(key, kind, column, value);
  return key;
}

/// Adds one entry to the reverse index: its top-level strings and integers, and its partner codes.
void index_entry(const rapidjson::Value& item,
                 std::unordered_map<std::string, std::vector<const rapidjson::Value*>>& index) {
  const auto add = [&](std::string key) {
    auto& list = index[std::move(key)];
    if (list.empty() || list.back() != &item) {
      list.push_back(&item);
    }
  };
  for (const auto& member : item.GetObject()) {
    const std::string_view column(member.name.GetString(), member.name.GetStringLength());
    if (member.value.IsString()) {
      add(reverse_key('s', column, {member.value.GetString(), member.value.GetStringLength()}));
    } else if (member.value.IsInt64()) {
      add(reverse_key('i', column, std::to_string(member.value.GetInt64())));
    } else if (column == "partnerCodes" && member.value.IsObject()) {
      for (const auto& partner : member.value.GetObject()) {
        if (!partner.value.IsArray()) {
          continue;
        }
        const std::string_view name(partner.name.GetString(), partner.name.GetStringLength());
        for (const auto& code : partner.value.GetArray()) {
          if (code.IsString()) {
            add(reverse_key('p', name, {code.GetString(), code.GetStringLength()}));
          }
        }
      }
    }
  }
}

}  // namespace

void code_table::attach(std::shared_ptr<const rapidjson::Document> document) {
  document_ = std::move(document);
  entries_.clear();
  by_code_.clear();
  reverse_.clear();
  if (!document_ || !document_->IsObject() || !document_->HasMember("entries") ||
      !(*document_)["entries"].IsArray()) {
    return;
  }
  for (const auto& item : (*document_)["entries"].GetArray()) {
    const auto code = json::get_string(item, "code");
    if (!item.IsObject() || code.empty()) {
      continue;
    }
    entries_.push_back(&item);
    by_code_.emplace(std::string(code), &item);  // the first of duplicates (load reports them)
    index_entry(item, reverse_);
  }
}

const std::vector<const rapidjson::Value*>& code_table::indexed(const std::string& key) const {
  static const std::vector<const rapidjson::Value*> none;
  auto it = reverse_.find(key);
  return it == reverse_.end() ? none : it->second;
}

namespace {

/// reverse_key for a look-up, built in a buffer the thread keeps (a look-up per code of every
/// message; most keys are longer than a std::string holds without allocating).
const std::string& lookup_key(char kind, std::string_view column, std::string_view value) {
  thread_local std::string key;
  write_reverse_key(key, kind, column, value);
  return key;
}

}  // namespace

const std::vector<const rapidjson::Value*>& code_table::entries_where(
    std::string_view column, std::string_view value) const {
  return indexed(lookup_key('s', column, value));
}

const std::vector<const rapidjson::Value*>& code_table::entries_where(std::string_view column,
                                                                      std::int64_t value) const {
  return indexed(lookup_key('i', column, std::to_string(value)));
}

const std::vector<const rapidjson::Value*>& code_table::entries_by_partner_code(
    std::string_view partner, std::string_view value) const {
  return indexed(lookup_key('p', partner, value));
}

const rapidjson::Value* code_table::entry(std::string_view code) const {
  auto it = by_code_.find(code);
  return it == by_code_.end() ? nullptr : it->second;
}

const code_table* code_tables::find(std::string_view table) const {
  auto it = tables_.find(table);
  return it == tables_.end() ? nullptr : &it->second;
}

bool code_tables::has(std::string_view table, std::string_view code) const {
  const code_table* t = find(table);
  return t != nullptr && t->contains(code);
}

const rapidjson::Value* code_tables::entry(std::string_view table, std::string_view code) const {
  const code_table* t = find(table);
  return t == nullptr ? nullptr : t->entry(code);
}

std::vector<std::string> code_tables::names() const {
  std::vector<std::string> out;
  for (const auto& [name, table] : tables_) {
    out.push_back(name);
  }
  return out;
}

}  // namespace mxgw::pipeline
