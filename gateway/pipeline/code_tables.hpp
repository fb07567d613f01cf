// Code tables loaded from config/mappings/: which canonical codes exist (country, region, ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/identity/partner_registry.hpp"

namespace mxgw::pipeline {

using identity::config_problem;

/// One table: its codes, each with the successors that replace it when it is no longer valid.
struct code_table {
  std::string name;
  std::string version;
  std::map<std::string, std::vector<std::string>, std::less<>> codes;  // code -> successors
  bool contains(std::string_view code) const { return codes.find(code) != codes.end(); }

  /// The codes in force that `code` stands for today: `code` itself when it has no successors,
  /// else its successors' current units, followed transitively (cycles are cut). Sorted, unique;
  /// empty when the table does not hold `code`.
  std::vector<std::string> current_units(std::string_view code) const;

  /// The entry object for `code` as the table file has it (`code`, `labels`, `alpha3`,
  /// `iso639_1`, `partnerCode`, `partnerCodes`, ...), or nullptr when the table does not hold
  /// `code` or was not loaded from a file. Adapters read the partner columns from here.
  const rapidjson::Value* entry(std::string_view code) const;

  /// Every entry object in file order (for reverse lookups by a partner column); empty when the
  /// table was not loaded from a file.
  const std::vector<const rapidjson::Value*>& entries() const { return entries_; }

  /// Reverse lookups without scanning the table (adapters do several per message): the entries,
  /// in file order, whose top-level member `column` is the string `value`, whose `column` is the
  /// integer `value`, or whose `partnerCodes[partner]` array lists `value`. Empty when none.
  const std::vector<const rapidjson::Value*>& entries_where(std::string_view column,
                                                            std::string_view value) const;
  const std::vector<const rapidjson::Value*>& entries_where(std::string_view column,
                                                            std::int64_t value) const;
  const std::vector<const rapidjson::Value*>& entries_by_partner_code(
      std::string_view partner, std::string_view value) const;

  /// Keeps `document` (the parsed file) alive and indexes its valid entries; used by load().
  void attach(std::shared_ptr<const rapidjson::Document> document);

 private:
  const std::vector<const rapidjson::Value*>& indexed(const std::string& key) const;

  std::shared_ptr<const rapidjson::Document> document_;  // shared: copies stay cheap and valid
  std::vector<const rapidjson::Value*> entries_;         // into *document_
  std::map<std::string, const rapidjson::Value*, std::less<>> by_code_;
  // "s\0column\0value", "i\0column\0number", "p\0partner\0value" -> entries in file order.
  std::unordered_map<std::string, std::vector<const rapidjson::Value*>> reverse_;
};

class code_tables {
 public:
  /// Loads every *.json in `dir`. Duplicate codes, unknown successors, a missing `table` name and
  /// two files naming the same table are reported in `problems` with file and entry.
  static code_tables load(const std::filesystem::path& dir, std::vector<config_problem>& problems);

  /// The named table, or nullptr.
  const code_table* find(std::string_view table) const;

  /// True when `table` exists and holds `code` (current or historical).
  bool has(std::string_view table, std::string_view code) const;

  /// The raw entry for `code` in `table` (see code_table::entry), or nullptr.
  const rapidjson::Value* entry(std::string_view table, std::string_view code) const;

  std::vector<std::string> names() const;

 private:
  std::map<std::string, code_table, std::less<>> tables_;
};

}  // namespace mxgw::pipeline
