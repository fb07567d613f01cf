// Schema loading (with $ref inlining) and validation with RapidJSON's SchemaValidator. RapidJSON
// 1.1.0 stops at the first breach; we turn it into a precise pointer (the missing or unexpected
// member itself, not just its parent object) and a readable reason.
#include "gateway/pipeline/schema_set.hpp"

// RapidJSON 1.1.0's own regex engine keeps its search state inside the compiled pattern, so threads
// validating against one SchemaDocument at once corrupt each other (and it stops at an embedded
// NUL); std::regex matching is const and takes the string's length. In 1.1.0, defining
// RAPIDJSON_SCHEMA_USE_INTERNALREGEX (to anything) selects std::regex; defining
// RAPIDJSON_SCHEMA_USE_STDREGEX as well would switch patterns off altogether.
#define RAPIDJSON_SCHEMA_USE_INTERNALREGEX 0

#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <regex>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "gateway/common/json.hpp"

static_assert(RAPIDJSON_SCHEMA_USE_STDREGEX == 1, "schema patterns must be checked by std::regex");

// Patterns are matched by PCRE2 (JIT-compiled): std::regex's backtracking matcher cost a quarter
// of schema validation (some 5 % of the event loop in benchmark (a)). RapidJSON still compiles
// each pattern as a std::regex, as before (a pattern it refuses is reported when the schema is
// loaded), and the specialisations below, declared before anything instantiates the validator,
// also compile it with PCRE2 and match with that. PCRE2 runs without UTF mode, like std::regex
// on char: a pattern sees bytes, and `$` matches only at the very end (PCRE2_DOLLAR_ENDONLY;
// otherwise it would also match before a final newline, where ECMAScript's does not).
namespace rapidjson::internal {
template <>
template <>
Schema<SchemaDocument>::RegexType* Schema<SchemaDocument>::CreatePattern<Value>(const Value& value);
template <>
bool Schema<SchemaDocument>::IsPatternMatch(const RegexType* pattern, const Ch* str,
                                            SizeType length);
}  // namespace rapidjson::internal

namespace mxgw::pipeline {

namespace {

/// The PCRE2 form of each pattern of the loaded schemas, by the std::regex RapidJSON keeps for it.
/// Written while a schema is compiled, read (shared) by every validation.
struct pattern_registry {
  std::shared_mutex mutex;
  std::unordered_map<const void*, const pcre2_code*> by_regex;
};

pattern_registry& patterns() {
  static pattern_registry registry;
  return registry;
}

/// The patterns of one schema: compiled by PCRE2, registered, and released with the schema.
class pattern_set {
 public:
  pattern_set() = default;
  pattern_set(const pattern_set&) = delete;
  pattern_set& operator=(const pattern_set&) = delete;
  ~pattern_set() {
    const std::unique_lock lock(patterns().mutex);
    for (const auto& [regex, code] : codes_) {
      patterns().by_regex.erase(regex);
      pcre2_code_free(code);
    }
  }
  void add(const void* regex, pcre2_code* code) {
    const std::unique_lock lock(patterns().mutex);
    codes_.emplace_back(regex, code);
    patterns().by_regex[regex] = code;
  }
  std::vector<std::string>& refused() { return refused_; }

 private:
  std::vector<std::pair<const void*, pcre2_code*>> codes_;
  std::vector<std::string> refused_;  // patterns neither engine compiled
};

/// The pattern set of the schema being compiled on this thread (none outside compile()).
thread_local pattern_set* compiling = nullptr;

}  // namespace

struct schema_set::compiled {
  rapidjson::Document source;  // the self-contained schema; SchemaDocument points into it
  std::unique_ptr<rapidjson::SchemaDocument> schema;
  /// Set on the envelope only: it says no more of the body than that it is an object (the body's
  /// own schema checks the rest), so the envelope check may skip the body's contents.
  bool body_is_any_object = false;
  /// Destroyed first: the registry forgets this schema's patterns while their std::regex objects
  /// still exist, so a schema compiled meanwhile cannot have one at the same address.
  pattern_set patterns;
};

namespace {

constexpr int max_ref_depth = 32;

struct ref_resolver {
  std::filesystem::path dir;
  std::map<std::string, rapidjson::Document> files;  // by name relative to dir
  std::vector<config_problem>& problems;

  const rapidjson::Document* file(const std::string& name) {
    auto it = files.find(name);
    if (it != files.end()) {
      return &it->second;
    }
    const auto path = dir / name;
    if (name.find("..") != std::string::npos) {
      return nullptr;
    }
    try {
      auto [pos, added] = files.emplace(name, json::parse_file(path.string()));
      return &pos->second;
    } catch (const std::exception& e) {
      problems.push_back({path.string(), "", e.what()});
      return nullptr;
    }
  }

  // Copies `in` into `out`, replacing every {"$ref": ...} with the referenced schema (itself
  // resolved). `file_name` is the file `in` came from, for "#/..." references.
  bool inline_refs(const rapidjson::Value& in, rapidjson::Value& out,
                   rapidjson::Document::AllocatorType& alloc, const std::string& file_name,
                   int depth) {
    if (depth > max_ref_depth) {
      problems.push_back({(dir / file_name).string(), "", "references nest too deep (a cycle?)"});
      return false;
    }
    if (in.IsObject() && in.HasMember("$ref") && in["$ref"].IsString()) {
      const std::string ref = in["$ref"].GetString();
      const auto hash = ref.find('#');
      const std::string target_file = hash == 0 ? file_name : ref.substr(0, hash);
      const std::string pointer = hash == std::string::npos ? "" : ref.substr(hash + 1);
      const rapidjson::Document* doc = file(target_file);
      const rapidjson::Value* target = nullptr;
      if (doc != nullptr) {
        // An invalid pointer (no leading "/") has no tokens and would resolve to the whole file.
        const rapidjson::Pointer parsed(pointer.c_str());
        target = pointer.empty() ? doc : parsed.IsValid() ? parsed.Get(*doc) : nullptr;
      }
      if (target == nullptr) {
        problems.push_back({(dir / file_name).string(), "", "unresolvable $ref '" + ref + "'"});
        return false;
      }
      return inline_refs(*target, out, alloc, target_file, depth + 1);
    }
    if (in.IsObject()) {
      out.SetObject();
      for (const auto& m : in.GetObject()) {
        rapidjson::Value v;
        if (!inline_refs(m.value, v, alloc, file_name, depth)) {
          return false;
        }
        out.AddMember(rapidjson::Value(m.name, alloc), v, alloc);
      }
      return true;
    }
    if (in.IsArray()) {
      out.SetArray();
      for (const auto& e : in.GetArray()) {
        rapidjson::Value v;
        if (!inline_refs(e, v, alloc, file_name, depth)) {
          return false;
        }
        out.PushBack(v, alloc);
      }
      return true;
    }
    out.CopyFrom(in, alloc);
    return true;
  }
};

std::string stringify(const rapidjson::Pointer& pointer) {
  rapidjson::StringBuffer buffer;
  pointer.Stringify(buffer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string reason_for(std::string_view keyword, const rapidjson::Value* schema) {
  auto number = [&](const char* name) {
    if (schema != nullptr && schema->HasMember(name) && (*schema)[name].IsNumber()) {
      return std::to_string(static_cast<long long>((*schema)[name].GetDouble()));
    }
    return std::string("?");
  };
  if (keyword == "type" && schema != nullptr && schema->HasMember("type")) {
    const auto& t = (*schema)["type"];
    return "has the wrong type (expected " +
           (t.IsString() ? std::string(t.GetString()) : json::to_string(t)) + ")";
  }
  if (keyword == "additionalProperties")
    return "is not a known member";
  if (keyword == "enum")
    return "is not one of the allowed values";
  if (keyword == "pattern")
    return "does not have the required form";
  if (keyword == "minLength")
    return "is shorter than " + number("minLength") + " characters";
  if (keyword == "maxLength")
    return "is longer than " + number("maxLength") + " characters";
  if (keyword == "minItems")
    return "has fewer than " + number("minItems") + " items";
  if (keyword == "maxItems")
    return "has more than " + number("maxItems") + " items";
  if (keyword == "minimum")
    return "is below the minimum " + number("minimum");
  if (keyword == "maximum")
    return "is above the maximum " + number("maximum");
  if (keyword == "uniqueItems")
    return "has repeated items";
  if (keyword == "minProperties")
    return "has too few members";
  if (keyword == "maxProperties")
    return "has too many members";
  if (keyword == "oneOf" || keyword == "anyOf")
    return "matches none of the allowed forms";
  if (keyword == "not")
    return "has a form that is not allowed";
  if (keyword == "dependencies")
    return "lacks a member that another member requires";
  return "breaks the schema rule '" + std::string(keyword) + "'";
}

// Is `name` allowed by `properties`/`patternProperties` of `schema`?
bool member_declared(const rapidjson::Value& schema, const std::string& name) {
  if (schema.HasMember("properties") && schema["properties"].IsObject() &&
      schema["properties"].HasMember(name.c_str())) {
    return true;
  }
  if (schema.HasMember("patternProperties") && schema["patternProperties"].IsObject()) {
    for (const auto& p : schema["patternProperties"].GetObject()) {
      try {
        if (std::regex_search(name, std::regex(p.name.GetString()))) {
          return true;
        }
      } catch (const std::regex_error&) {
        return true;
      }
    }
  }
  return false;
}

/// The validator keeps its state (a context per value, a sub-validator per branch of every
/// allOf/anyOf/oneOf it enters, stacks of paths) in a pool: a bump allocator over a block each
/// thread keeps, instead of a malloc and a free for each of those (about a fifth of a check's
/// time went to the C allocator). The pool is released when the validation ends.
using pooled_validator =
    rapidjson::GenericSchemaValidator<rapidjson::SchemaDocument,
                                      rapidjson::BaseReaderHandler<rapidjson::UTF8<>, void>,
                                      rapidjson::MemoryPoolAllocator<>>;

constexpr std::size_t validator_block_bytes = std::size_t{64} << 10;

/// What the validator sees of a message when it checks the envelope: every member, but the body
/// (when it is an object) as an empty object. The envelope schema says only that the body is an
/// object; the body's own schema checks the rest. Without this, the envelope check walked the
/// whole body for nothing (a fifth of a check).
bool accept_envelope(const rapidjson::Value& message, pooled_validator& validator) {
  if (!message.IsObject()) {
    return message.Accept(validator);
  }
  if (!validator.StartObject()) {
    return false;
  }
  for (const auto& m : message.GetObject()) {
    if (!validator.Key(m.name.GetString(), m.name.GetStringLength(), false)) {
      return false;
    }
    const bool accepted =
        std::string_view(m.name.GetString(), m.name.GetStringLength()) == "body" &&
                m.value.IsObject()
            ? validator.StartObject() && validator.EndObject(0)
            : m.value.Accept(validator);
    if (!accepted) {
      return false;
    }
  }
  return validator.EndObject(message.MemberCount());
}

/// True when `schema` says of its member `name` only that it is an object ({"type": "object"},
/// perhaps with a description) and has no keyword that could apply other schemas to it.
bool says_only_object(const rapidjson::Value& schema, const char* name) {
  if (!schema.IsObject()) {
    return false;
  }
  for (const char* reaching : {"patternProperties", "dependencies", "allOf", "anyOf", "oneOf",
                               "not"}) {
    if (schema.HasMember(reaching)) {
      return false;
    }
  }
  const auto properties = schema.FindMember("properties");
  if (properties == schema.MemberEnd() || !properties->value.IsObject()) {
    return false;
  }
  const auto member = properties->value.FindMember(name);
  if (member == properties->value.MemberEnd() || !member->value.IsObject()) {
    return false;
  }
  const rapidjson::Value& rule = member->value;
  if (!rule.HasMember("type") || rule["type"] != "object") {
    return false;
  }
  return std::all_of(rule.MemberBegin(), rule.MemberEnd(), [](const auto& m) {
    const std::string_view key(m.name.GetString(), m.name.GetStringLength());
    return key == "type" || key == "description";
  });
}

bool validate(const schema_set::compiled& c, const rapidjson::Value& instance,
              const std::string& prefix, std::vector<field_error>& errors) {
  thread_local std::vector<char> block(validator_block_bytes);
  rapidjson::MemoryPoolAllocator<> pool(block.data(), block.size());
  pooled_validator validator(*c.schema, &pool);
  const bool accepted =
      c.body_is_any_object ? accept_envelope(instance, validator) : instance.Accept(validator);
  if (accepted) {
    return true;
  }
  const std::string at = prefix + stringify(validator.GetInvalidDocumentPointer());
  const std::string keyword = validator.GetInvalidSchemaKeyword();
  const rapidjson::Value* schema = validator.GetInvalidSchemaPointer().Get(c.source);
  const rapidjson::Value* object = validator.GetInvalidDocumentPointer().Get(instance);
  const std::size_t before = errors.size();
  if (keyword == "required" && schema != nullptr && object != nullptr && object->IsObject() &&
      schema->HasMember("required") && (*schema)["required"].IsArray()) {
    for (const auto& name : (*schema)["required"].GetArray()) {
      if (name.IsString() && !object->HasMember(name)) {
        errors.push_back({at + "/" + json::escape_pointer_token(name.GetString()), "is required"});
      }
    }
  } else if (keyword == "additionalProperties" && schema != nullptr &&
             validator.GetInvalidDocumentPointer().GetTokenCount() > 0) {
    // RapidJSON appends a member's name to the pointer before it checks the name: the pointer
    // names the first unexpected member. List every undeclared member of its object.
    const auto member = validator.GetInvalidDocumentPointer();
    const rapidjson::Pointer parent(member.GetTokens(), member.GetTokenCount() - 1);
    const rapidjson::Value* object_value = parent.Get(instance);
    if (object_value != nullptr && object_value->IsObject()) {
      const std::string parent_at = prefix + stringify(parent);
      for (const auto& m : object_value->GetObject()) {
        const std::string name(m.name.GetString(), m.name.GetStringLength());
        if (!member_declared(*schema, name)) {
          errors.push_back(
              {parent_at + "/" + json::escape_pointer_token(name), "is not a known member"});
        }
      }
    }
  }
  if (errors.size() == before) {
    errors.push_back({at.empty() ? "" : at, reason_for(keyword, schema)});
  }
  return false;
}

std::unique_ptr<schema_set::compiled> compile(ref_resolver& resolver, const std::string& name) {
  const rapidjson::Document* raw = resolver.file(name);
  if (raw == nullptr) {
    if (resolver.problems.empty() ||
        resolver.problems.back().file != (resolver.dir / name).string()) {
      resolver.problems.push_back({(resolver.dir / name).string(), "", "is missing"});
    }
    return nullptr;
  }
  auto c = std::make_unique<schema_set::compiled>();
  if (!resolver.inline_refs(*raw, c->source, c->source.GetAllocator(), name, 0)) {
    return nullptr;
  }
  compiling = &c->patterns;
  try {
    c->schema = std::make_unique<rapidjson::SchemaDocument>(c->source);
  } catch (...) {
    compiling = nullptr;
    throw;
  }
  compiling = nullptr;
  // RapidJSON leaves a pattern it cannot compile out of the check altogether: a schema that
  // meant to restrict a value would accept anything there. Refuse the schema instead.
  for (const std::string& pattern : c->patterns.refused()) {
    resolver.problems.push_back(
        {(resolver.dir / name).string(), "", "pattern '" + pattern + "' does not compile"});
  }
  if (!c->patterns.refused().empty()) {
    return nullptr;
  }
  return c;
}

}  // namespace

schema_set::schema_set() = default;
schema_set::~schema_set() = default;
schema_set::schema_set(schema_set&&) noexcept = default;
schema_set& schema_set::operator=(schema_set&&) noexcept = default;

schema_set schema_set::load(const std::filesystem::path& dir,
                            std::vector<config_problem>& problems) {
  schema_set set;
  ref_resolver resolver{dir, {}, problems};
  set.envelope_ = compile(resolver, "envelope.json");
  if (set.envelope_) {
    set.envelope_->body_is_any_object = says_only_object(set.envelope_->source, "body");
  }
  std::error_code ec;
  const auto body_dir = dir / "body";
  if (!std::filesystem::is_directory(body_dir, ec)) {
    problems.push_back({body_dir.string(), "", "is not a directory of body schemas"});
    return set;
  }
  for (const auto& entry : std::filesystem::directory_iterator(body_dir)) {
    if (entry.path().extension() != ".json") {
      continue;
    }
    const std::string type = entry.path().stem().string();
    if (auto c = compile(resolver, "body/" + entry.path().filename().string())) {
      set.bodies_.emplace(type, std::move(c));
    }
  }
  return set;
}

std::vector<std::string> schema_set::types() const {
  std::vector<std::string> out;
  for (const auto& [type, c] : bodies_) {
    out.push_back(type);
  }
  return out;
}

bool schema_set::has_type(std::string_view type) const {
  return bodies_.find(type) != bodies_.end();
}

bool schema_set::validate_envelope(const rapidjson::Value& message,
                                   std::vector<field_error>& errors) const {
  if (!envelope_) {
    errors.push_back({"", "no envelope schema is loaded"});
    return false;
  }
  return validate(*envelope_, message, "", errors);
}

bool schema_set::validate_body(std::string_view type, const rapidjson::Value& body,
                               std::vector<field_error>& errors) const {
  auto it = bodies_.find(type);
  if (it == bodies_.end()) {
    errors.push_back({"/type", "has no body schema"});
    return false;
  }
  return validate(*it->second, body, "/body", errors);
}

namespace {

// Does `schema` (self-contained, references inlined) define the member path `tokens[at...]`?
bool schema_knows(const rapidjson::Value& schema, const std::vector<std::string>& tokens,
                  std::size_t at, int depth) {
  if (at == tokens.size()) {
    return true;
  }
  if (!schema.IsObject() || depth > 64) {
    return false;
  }
  for (const char* combinator : {"allOf", "anyOf", "oneOf"}) {
    if (auto it = schema.FindMember(combinator); it != schema.MemberEnd() && it->value.IsArray()) {
      for (const auto& branch : it->value.GetArray()) {
        if (schema_knows(branch, tokens, at, depth + 1)) {
          return true;
        }
      }
    }
  }
  const std::string& token = tokens[at];
  if (auto it = schema.FindMember("properties"); it != schema.MemberEnd() && it->value.IsObject()) {
    if (auto p = it->value.FindMember(token.c_str()); p != it->value.MemberEnd()) {
      return schema_knows(p->value, tokens, at + 1, depth + 1);
    }
  }
  const bool index =
      token == "*" ||
      (!token.empty() && std::all_of(token.begin(), token.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; }));
  if (auto it = schema.FindMember("items"); index && it != schema.MemberEnd()) {
    return schema_knows(it->value, tokens, at + 1, depth + 1);
  }
  if (auto it = schema.FindMember("additionalProperties");
      it != schema.MemberEnd() && it->value.IsObject()) {
    return schema_knows(it->value, tokens, at + 1, depth + 1);
  }
  return false;
}

}  // namespace

bool schema_set::knows_pointer(std::string_view type, std::string_view pointer) const {
  std::vector<std::string> tokens;
  if (pointer.empty() || pointer.front() != '/') {
    return false;
  }
  std::size_t start = 1;
  while (true) {
    const auto slash = pointer.find('/', start);
    std::string token(pointer.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    std::string unescaped;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        unescaped += token[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        unescaped += token[i];
      }
    }
    tokens.push_back(std::move(unescaped));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  if (tokens.front() == "body") {
    auto it = bodies_.find(type);
    return it != bodies_.end() && schema_knows(it->second->source, tokens, 1, 0);
  }
  return envelope_ && schema_knows(envelope_->source, tokens, 0, 0);
}

}  // namespace mxgw::pipeline

namespace rapidjson::internal {

template <>
template <>
Schema<SchemaDocument>::RegexType* Schema<SchemaDocument>::CreatePattern<Value>(
    const Value& value) {
  if (!value.IsString()) {
    return nullptr;
  }
  RegexType* regex = nullptr;
  void* memory = allocator_->Malloc(sizeof(RegexType));
  try {
    regex = new (memory) RegexType(value.GetString(), std::size_t(value.GetStringLength()),
                                   std::regex_constants::ECMAScript);
  } catch (const std::regex_error&) {
    AllocatorType::Free(memory);
    regex = nullptr;
  }
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      regex == nullptr
          ? nullptr
          : pcre2_compile(reinterpret_cast<PCRE2_SPTR>(value.GetString()), value.GetStringLength(),
                          PCRE2_DOLLAR_ENDONLY, &error, &offset, nullptr);
  if (code != nullptr) {
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT (unsupported), it interprets
  }
  if (mxgw::pipeline::compiling != nullptr) {
    if (regex == nullptr) {
      mxgw::pipeline::compiling->refused().emplace_back(value.GetString(), value.GetStringLength());
    } else if (code != nullptr) {
      mxgw::pipeline::compiling->add(regex, code);
      code = nullptr;
    }
  }
  pcre2_code_free(code);  // not registered: std::regex matches it
  return regex;
}

template <>
bool Schema<SchemaDocument>::IsPatternMatch(const RegexType* pattern, const Ch* str,
                                            SizeType length) {
  const pcre2_code* code = nullptr;
  {
    auto& registry = mxgw::pipeline::patterns();
    const std::shared_lock lock(registry.mutex);
    const auto found = registry.by_regex.find(pattern);
    if (found != registry.by_regex.end()) {
      code = found->second;
    }
  }
  if (code == nullptr) {
    std::match_results<const Ch*> r;
    return std::regex_search(str, str + length, r, *pattern);
  }
  struct match_data_deleter {
    void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
  };
  // One pair is enough: only whether it matches counts (a match that does not fit is rc 0).
  thread_local std::unique_ptr<pcre2_match_data, match_data_deleter> data(
      pcre2_match_data_create(1, nullptr));
  if (!data) {
    std::match_results<const Ch*> r;
    return std::regex_search(str, str + length, r, *pattern);
  }
  const int rc =
      pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(str), length, 0, 0, data.get(), nullptr);
  if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH) {
    return rc >= 0;
  }
  // A limit of PCRE2's (its JIT stack: "^(/[^/]*)*$" over a thousand slashes): std::regex, which
  // has none, decides, as it did before PCRE2 was used.
  std::match_results<const Ch*> r;
  return std::regex_search(str, str + length, r, *pattern);
}

}  // namespace rapidjson::internal
