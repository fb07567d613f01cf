// The declarative mapping adapter: decode, encode, receipts and errors driven by a mapping file
// (see mapped.hpp and docs/adapters/mapping-files.md), and the process-wide set of installed
// mappings that the registered adapters read.
#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>

#include "adapters/common/message_ids.hpp"
#include "adapters/common/references.hpp"
#include "adapters/mapped/mapped.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/pipeline/code_tables.hpp"

namespace mxgw::adapters::mapped {
namespace {

using value = rapidjson::Value;
constexpr std::size_t max_errors = 100;
constexpr std::size_t max_reference_bytes = 128;
constexpr std::size_t max_name_parts = 10;

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

std::string_view view_of(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

// A partner's value named in an error: codes only, cut to 64 bytes on a UTF-8 boundary.
std::string quoted_code(std::string_view text) {
  constexpr std::size_t max_bytes = 64;
  if (text.size() <= max_bytes) {
    return "'" + std::string(text) + "'";
  }
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return "'" + std::string(text.substr(0, cut)) + "...'";
}

bool applies(const std::vector<std::string>& types, std::string_view type) {
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

// The member at `p` (object members only), or nullptr.
const value* find_at(const value& root, const pointer_path& p) {
  const value* at = &root;
  for (const auto& token : p.tokens) {
    if (!at->IsObject()) {
      return nullptr;
    }
    auto it = at->FindMember(token.c_str());
    if (it == at->MemberEnd()) {
      return nullptr;
    }
    at = &it->value;
  }
  return at;
}

bool matches(const value& element, const value* select) {
  if (select == nullptr) {
    return true;
  }
  if (!element.IsObject()) {
    return false;
  }
  for (const auto& m : select->GetObject()) {
    auto it = element.FindMember(m.name);
    if (it == element.MemberEnd() || it->value != m.value) {
      return false;
    }
  }
  return true;
}

// The canonical value at `p`, stepping into the element that matches `select` at "*".
const value* find_canonical(const value& root, const pointer_path& p, const value* select) {
  const value* at = &root;
  for (const auto& token : p.tokens) {
    if (token == "*") {
      if (!at->IsArray()) {
        return nullptr;
      }
      const value* found = nullptr;
      for (const auto& element : at->GetArray()) {
        if (matches(element, select)) {
          found = &element;
          break;
        }
      }
      if (found == nullptr) {
        return nullptr;
      }
      at = found;
      continue;
    }
    if (!at->IsObject()) {
      return nullptr;
    }
    auto it = at->FindMember(token.c_str());
    if (it == at->MemberEnd()) {
      return nullptr;
    }
    at = &it->value;
  }
  return at;
}

// The slot at `p` in `root`, made when missing (objects, and at "*" an element with the members
// of `select`). Returns nullptr when something in the way has another type.
value* make_at(value& root, const pointer_path& p, const value* select,
               rapidjson::Document::AllocatorType& a) {
  value* at = &root;
  for (std::size_t i = 0; i < p.tokens.size(); ++i) {
    const std::string& token = p.tokens[i];
    if (token == "*") {
      if (at->IsNull()) {
        at->SetArray();
      }
      if (!at->IsArray()) {
        return nullptr;
      }
      value* found = nullptr;
      for (auto& element : at->GetArray()) {
        if (matches(element, select)) {
          found = &element;
          break;
        }
      }
      if (found == nullptr) {
        value element(rapidjson::kObjectType);
        if (select != nullptr) {
          for (const auto& m : select->GetObject()) {
            element.AddMember(value(m.name, a), value(m.value, a), a);
          }
        }
        at->PushBack(element, a);
        found = &(*at)[at->Size() - 1];
      }
      at = found;
      continue;
    }
    if (at->IsNull()) {
      at->SetObject();
    }
    if (!at->IsObject()) {
      return nullptr;
    }
    auto it = at->FindMember(token.c_str());
    if (it == at->MemberEnd()) {
      at->AddMember(value(token.c_str(), static_cast<rapidjson::SizeType>(token.size()), a),
                    value(), a);
      at = &(*at)[token.c_str()];
    } else {
      at = &it->value;
    }
  }
  return at;
}

// The canonical place of the message a case update is about.
constexpr std::string_view about_pointer = "/body/about/messageId";

// True when `rule` carries the name of an earlier message: the one answered (`inReplyTo`; a
// receipt's `body.inReplyTo`) or the one a case update is about (`body.about.messageId`). The
// partner names it by a reference, which need not be a gateway id.
bool names_answered(const field_rule& rule) {
  return rule.kind == transform::text && !rule.list && !rule.wrap &&
         (rule.canonical.text == "/inReplyTo" || rule.canonical.text == "/body/inReplyTo" ||
          rule.canonical.text == about_pointer);
}

// Under which a partner's reference to a message the gateway cannot name becomes a receipt's
// placeholder `body.inReplyTo`. A mapping id has no ':', so it never equals a partner's id.
std::string reply_to_namespace(const mapping_spec& spec) {
  return spec.id + ":reply-to";
}

std::string kind_of_type(const mapping_spec& spec, std::string_view type) {
  for (const auto& [kind, t] : spec.kinds) {
    if (t == type) {
      return kind;
    }
  }
  return {};
}

// --- decoding --------------------------------------------------------------------------------

class decoder {
 public:
  decoder(const mapping_spec& spec, const adapter_context& ctx) : spec_(spec), ctx_(ctx) {}

  decode_result run(std::string_view bytes) {
    decode_result result;
    rapidjson::Document in;
    if (auto error = json::parse_untrusted(bytes, in)) {
      result.status = 400;
      result.errors.push_back({"", "not acceptable JSON at byte offset " +
                                       std::to_string(error->offset) + ": " + error->reason});
      return result;
    }
    if (!in.IsObject()) {
      result.status = 400;
      result.errors.push_back({"", "must be a JSON object (" + spec_.format_name + ")"});
      return result;
    }
    const std::string type = envelope(in);
    if (status_ == 400 || type.empty()) {
      result.status = status_ == 0 ? 422 : status_;
      result.errors = std::move(errors_);
      return result;
    }
    if (ctx_.tables == nullptr) {
      result.status = 500;
      result.errors.push_back({"", "code tables are not loaded"});
      return result;
    }
    for (const auto& rule : spec_.fields) {
      if (rule.decode && applies(rule.types, type)) {
        field(in, rule);
      }
    }
    // A reference to the message answered that names no gateway message is kept verbatim
    // under its partner pointer and as the thread, unless the partner named one itself.
    if (!foreign_reference_.empty()) {
      const auto text = [&](std::string_view s) {
        return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a());
      };
      if (!unmapped_.HasMember(foreign_at_.c_str())) {
        unmapped_.AddMember(text(foreign_at_), text(foreign_reference_), a());
      }
      if (!out_.HasMember("caseRef")) {
        out_.AddMember("caseRef", text(foreign_reference_), a());
      }
    }
    for (const auto& rule : spec_.canonical_constants) {
      if (applies(rule.types, type)) {
        if (value* slot = make_at(out_, rule.pointer, nullptr, a());
            slot != nullptr && slot->IsNull()) {
          slot->CopyFrom(*rule.value, a());
        }
      }
    }
    unknown_members(in, type);
    if (!errors_.empty()) {
      result.status = 422;
      result.errors = std::move(errors_);
      return result;
    }
    if (unmapped_.MemberCount() > 0) {
      out_.AddMember("unmapped", unmapped_, a());
    }
    result.message = std::move(out_);
    return result;
  }

 private:
  rapidjson::Document::AllocatorType& a() { return out_.GetAllocator(); }

  void fail(const std::string& at, const std::string& reason) {
    if (errors_.size() < max_errors) {
      errors_.push_back({at, reason});
    }
  }

  // A partner value the mapping does not know: an error, or kept in `unmapped` when allowed.
  void unknown(const std::string& at, const value& v, const std::string& reason) {
    if (ctx_.carry_unmapped) {
      unmapped_.AddMember(value(at.c_str(), static_cast<rapidjson::SizeType>(at.size()), a()),
                          value(v, a()), a());
    } else {
      fail(at, reason);
    }
  }

  static bool missing(const value* v) {
    return v == nullptr || v->IsNull() || (v->IsString() && v->GetStringLength() == 0);
  }

  // Format constants, kind, reference; returns the canonical type ("" when it cannot be told).
  std::string envelope(const rapidjson::Document& in) {
    for (const auto& rule : spec_.partner_constants) {
      if (!rule.types.empty()) {
        continue;  // checked once the type is known
      }
      const value* v = find_at(in, rule.pointer);
      if (v == nullptr || *v != *rule.value) {
        status_ = 400;
        fail(rule.pointer.text, "must be " + json::to_string(*rule.value));
      }
    }
    if (status_ == 400) {
      return {};
    }
    const value* kind = find_at(in, spec_.kind_pointer);
    std::string type;
    if (missing(kind)) {
      fail(spec_.kind_pointer.text, "is required");
    } else if (!kind->IsString()) {
      fail(spec_.kind_pointer.text, "must be a string");
    } else {
      for (const auto& [k, t] : spec_.kinds) {
        if (k == view_of(*kind)) {
          type = t;
        }
      }
      if (type.empty()) {
        fail(spec_.kind_pointer.text, "unknown message kind " + quoted_code(view_of(*kind)));
      }
    }
    const value* reference = find_at(in, spec_.reference);
    std::string ref;
    if (missing(reference)) {
      fail(spec_.reference.text, "is required");
    } else if (!reference->IsString() || reference->GetStringLength() > max_reference_bytes) {
      fail(spec_.reference.text, "must be a string of at most 128 bytes");
    } else {
      ref = std::string(view_of(*reference));
    }
    if (type.empty() || ref.empty()) {
      return {};
    }
    for (const auto& rule : spec_.partner_constants) {
      if (!rule.types.empty() && applies(rule.types, type)) {
        const value* v = find_at(in, rule.pointer);
        if (v == nullptr || *v != *rule.value) {
          fail(rule.pointer.text, "must be " + json::to_string(*rule.value));
        }
      }
    }
    out_.SetObject();
    const auto text = [&](std::string_view s) {
      return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a());
    };
    out_.AddMember("mx", "1", a());
    out_.AddMember("id", text(derived_message_id(ctx_.message_id_key, ctx_.sender, ref)), a());
    out_.AddMember("type", text(type), a());
    out_.AddMember("sender", text(ctx_.sender), a());
    out_.AddMember("ref", text(ref), a());
    kind_ = std::string(view_of(*kind));
    return type;
  }

  // One partner value -> its canonical value; nullopt (with an error or an unmapped entry).
  std::optional<value> one(const field_rule& rule, const value& v, const std::string& at) {
    switch (rule.kind) {
      case transform::text:
        if (v.IsString()) {
          return value(v, a());
        }
        if (v.IsInt64()) {
          const std::string s = std::to_string(v.GetInt64());
          return value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a());
        }
        fail(at, "must be a string");
        return std::nullopt;
      case transform::integer:
        if (v.IsInt64()) {
          return value(v.GetInt64());
        }
        fail(at, "must be an integer");
        return std::nullopt;
      case transform::boolean:
        if (v.IsBool()) {
          return value(v.GetBool());
        }
        fail(at, "must be true or false");
        return std::nullopt;
      case transform::date:
      case transform::datetime: {
        if (!v.IsString()) {
          fail(at, "must be a string");
          return std::nullopt;
        }
        std::string error;
        const auto converted = rule.kind == transform::date
                                   ? dmy_to_partial(view_of(v), rule.calendar, error)
                                   : local_to_utc(view_of(v), rule.calendar, error);
        if (!converted) {
          fail(at, error);
          return std::nullopt;
        }
        return value(converted->c_str(), static_cast<rapidjson::SizeType>(converted->size()), a());
      }
      case transform::code: {
        std::string code_text;
        if (v.IsString()) {
          code_text = std::string(view_of(v));
        } else if (v.IsInt64()) {
          code_text = std::to_string(v.GetInt64());
        } else {
          fail(at, "must be a code (a string or an integer)");
          return std::nullopt;
        }
        if (!rule.values.empty()) {
          const std::string wanted = upper(code_text);
          for (const auto& [partner_code, code] : rule.values) {
            if (upper(partner_code) == wanted) {
              return value(code.c_str(), static_cast<rapidjson::SizeType>(code.size()), a());
            }
          }
          unknown(at, v, "unknown code " + quoted_code(code_text));
          return std::nullopt;
        }
        const pipeline::code_table* table = ctx_.tables->find(rule.table);
        if (table != nullptr) {
          const std::string wanted = upper(code_text);
          for (const auto* entry : table->entries()) {
            for (const auto& candidate : column_values(*entry, rule.column)) {
              if (upper(candidate) == wanted) {
                const auto code = json::get_string(*entry, "code");
                return value(code.data(), static_cast<rapidjson::SizeType>(code.size()), a());
              }
            }
          }
        }
        unknown(at, v, "unknown code " + quoted_code(code_text) + " (table " + rule.table + ")");
        return std::nullopt;
      }
      case transform::name_parts: {
        if (!v.IsString()) {
          fail(at, "must be a string");
          return std::nullopt;
        }
        std::vector<std::string> parts;
        std::string current;
        for (char c : view_of(v)) {
          if (c == ' ' || c == '\t') {
            if (!current.empty()) {
              parts.push_back(std::move(current));
              current.clear();
            }
          } else {
            current += c;
          }
        }
        if (!current.empty()) {
          parts.push_back(std::move(current));
        }
        while (parts.size() > max_name_parts) {
          parts[parts.size() - 2] += " " + parts.back();
          parts.pop_back();
        }
        value list(rapidjson::kArrayType);
        for (const auto& p : parts) {
          list.PushBack(value(p.c_str(), static_cast<rapidjson::SizeType>(p.size()), a()), a());
        }
        return list;
      }
    }
    return std::nullopt;
  }

  void field(const rapidjson::Document& in, const field_rule& rule) {
    const value* v = find_at(in, rule.partner);
    if (missing(v)) {
      if (rule.required) {
        fail(rule.partner.text, "is required");
      }
      return;
    }
    value result;
    if (rule.list) {
      if (!v->IsArray()) {
        fail(rule.partner.text, "must be an array");
        return;
      }
      result.SetArray();
      for (rapidjson::SizeType i = 0; i < v->Size(); ++i) {
        auto item = one(rule, (*v)[i], rule.partner.text + "/" + std::to_string(i));
        if (item && std::find(result.Begin(), result.End(), *item) == result.End()) {
          result.PushBack(*item, a());  // the canonical lists are sets
        }
      }
      if (result.Empty()) {
        return;
      }
    } else {
      auto item = one(rule, *v, rule.partner.text);
      if (!item || (item->IsArray() && item->Empty())) {
        return;
      }
      if (names_answered(rule) && !answered(rule, *item)) {
        return;
      }
      if (rule.wrap) {
        result.SetArray();
        result.PushBack(*item, a());
      } else {
        result = std::move(*item);
      }
    }
    // The object that holds the value: made when missing, then given the rule's `init`.
    pointer_path parent{rule.canonical.text, rule.canonical.tokens};
    const std::string last = parent.tokens.back();
    parent.tokens.pop_back();
    value* holder = make_at(out_, parent, rule.select.get(), a());
    if (holder != nullptr && holder->IsNull()) {
      holder->SetObject();
    }
    if (holder == nullptr || !holder->IsObject()) {
      fail(rule.partner.text, "cannot be placed at " + rule.canonical.text);
      return;
    }
    if (!holder->HasMember(last.c_str())) {
      holder->AddMember(value(last.c_str(), static_cast<rapidjson::SizeType>(last.size()), a()),
                        result, a());
    }
    if (rule.init) {
      for (const auto& m : rule.init->GetObject()) {
        if (!holder->HasMember(m.name)) {
          holder->AddMember(value(m.name, a()), value(m.value, a()), a());
        }
      }
    }
  }

  // The partner's name for the message answered (`reply`, as text) -> the canonical id, as
  // KH-CNP reads reply_to: a gateway id (or a reference ending in one) is the id, lower case. Any
  // other reference (the partner's own number, which is what the gateway writes when it answers
  // a message the partner sent) names no message the adapter can tell: no link is made up, the
  // reference is kept in `unmapped` and as `caseRef` (see run), and a receipt's body (which must
  // name a UUID) names a placeholder. A case update's `about` is read as a reply's, but for a
  // reference with no gateway id in it: that is the number of a message of the partner's own
  // (the only messages it names by its own numbers), and the gateway named that message
  // derived_message_id(key, sender, number) when it came in (envelope), so that is the id. A
  // damaged gateway reference is refused. False: nothing to write.
  bool answered(const field_rule& rule, value& reply) {
    const std::string_view reference = view_of(reply);
    if (reference.size() > max_reference_bytes) {
      fail(rule.partner.text, "must be a string of at most 128 bytes");
      return false;
    }
    const auto read = read_answered_reference(reference);
    switch (read.kind) {
      case reference_kind::gateway_message:
        reply.SetString(read.id.c_str(), static_cast<rapidjson::SizeType>(read.id.size()), a());
        return true;
      case reference_kind::malformed:
        fail(rule.partner.text,
             "is not a reference the gateway wrote: its id part is not a UUID or it holds "
             "control characters (send the reference of the message answered as received)");
        return false;
      case reference_kind::foreign: break;
    }
    if (rule.canonical.text == about_pointer) {
      const std::string own = derived_message_id(ctx_.message_id_key, ctx_.sender, reference);
      reply.SetString(own.c_str(), static_cast<rapidjson::SizeType>(own.size()), a());
      return true;
    }
    foreign_reference_ = std::string(reference);
    foreign_at_ = rule.partner.text;
    if (rule.canonical.text != "/body/inReplyTo") {
      return false;
    }
    const std::string placeholder = placeholder_id(reply_to_namespace(spec_), reference);
    reply.SetString(placeholder.c_str(), static_cast<rapidjson::SizeType>(placeholder.size()), a());
    return true;
  }

  // Every partner member must be mapped: an unknown one, or one another kind uses, is refused
  // (or carried in `unmapped`).
  void unknown_members(const rapidjson::Document& in, const std::string& type) {
    std::set<std::string, std::less<>> now;
    std::set<std::string, std::less<>> other;
    std::set<std::string, std::less<>> prefixes{""};
    const auto cover = [&](const pointer_path& p, bool here) {
      (here ? now : other).insert(p.text);
      std::string prefix;
      for (std::size_t i = 0; i + 1 < p.tokens.size(); ++i) {
        prefix += "/" + json::escape_pointer_token(p.tokens[i]);
        prefixes.insert(prefix);
      }
    };
    cover(spec_.kind_pointer, true);
    cover(spec_.reference, true);
    for (const auto& rule : spec_.partner_constants) {
      cover(rule.pointer, applies(rule.types, type));
    }
    for (const auto& rule : spec_.fields) {
      if (rule.decode) {
        cover(rule.partner, applies(rule.types, type));
      }
    }
    walk(in, "", now, other, prefixes);
  }

  void walk(const value& v, const std::string& at, const std::set<std::string, std::less<>>& now,
            const std::set<std::string, std::less<>>& other,
            const std::set<std::string, std::less<>>& prefixes) {
    if (!at.empty() && now.contains(at)) {
      return;
    }
    if (!at.empty() && other.contains(at)) {
      if (!v.IsNull()) {
        unknown(at, v, "is not used on a " + kind_ + " message");
      }
      return;
    }
    if (v.IsObject() && prefixes.contains(at)) {
      for (const auto& m : v.GetObject()) {
        walk(m.value, at + "/" + json::escape_pointer_token(view_of(m.name)), now, other, prefixes);
      }
      return;
    }
    unknown(at, v, "is not a field of " + spec_.format_name);
  }

  const mapping_spec& spec_;
  const adapter_context& ctx_;
  rapidjson::Document out_;
  value unmapped_{rapidjson::kObjectType};
  std::vector<field_error> errors_;
  std::string kind_;
  std::string foreign_reference_;  ///< a reference to the message answered that names none
  std::string foreign_at_;         ///< where the partner wrote it
  int status_ = 0;
};

// --- encoding --------------------------------------------------------------------------------

class encoder {
 public:
  encoder(const mapping_spec& spec, const adapter_context& ctx) : spec_(spec), ctx_(ctx) {
    out_.SetObject();
  }

  encode_result run(const value& message) {
    encode_result result;
    const std::string type(json::get_string(message, "type"));
    const std::string kind = kind_of_type(spec_, type);
    if (kind.empty()) {
      result.status = 422;
      result.errors.push_back(
          {"/type", "cannot be expressed in " + spec_.format_name + " (no kind for it)"});
      return result;
    }
    if (ctx_.tables == nullptr) {
      result.status = 500;
      result.errors.push_back({"", "code tables are not loaded"});
      return result;
    }
    for (const auto& rule : spec_.partner_constants) {
      if (applies(rule.types, type)) {
        put(rule.pointer, value(*rule.value, a()));
      }
    }
    put(spec_.kind_pointer, text(kind));
    put(spec_.reference, text(json::get_string(message, "id")));
    for (const auto& rule : spec_.fields) {
      if (rule.encode && applies(rule.types, type)) {
        field(message, rule);
      }
    }
    if (!errors_.empty()) {
      result.status = 422;
      result.errors = std::move(errors_);
      return result;
    }
    result.bytes = json::to_string(out_);
    return result;
  }

 private:
  rapidjson::Document::AllocatorType& a() { return out_.GetAllocator(); }

  value text(std::string_view s) {
    return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a());
  }

  void fail(const std::string& at, const std::string& reason) {
    if (errors_.size() < max_errors) {
      errors_.push_back({at, reason});
    }
  }

  // Writes `v` at partner pointer `p` unless an earlier rule already wrote there.
  void put(const pointer_path& p, value v) {
    value* slot = make_at(out_, p, nullptr, a());
    if (slot != nullptr && slot->IsNull()) {
      *slot = std::move(v);
    }
  }

  std::optional<value> one(const field_rule& rule, const value& v, const std::string& at) {
    switch (rule.kind) {
      case transform::text:
        if (v.IsString()) {
          return value(v, a());
        }
        break;
      case transform::integer:
        if (v.IsInt64()) {
          return value(v.GetInt64());
        }
        break;
      case transform::boolean:
        if (v.IsBool()) {
          return value(v.GetBool());
        }
        break;
      case transform::date:
        if (v.IsString() &&
            (v.GetStringLength() == 4 || v.GetStringLength() == 7 || v.GetStringLength() == 10)) {
          return text(partial_to_dmy(view_of(v), rule.calendar));
        }
        break;
      case transform::datetime:
        if (v.IsString()) {
          const std::string local = utc_to_local(view_of(v), spec_.offset_minutes, rule.calendar);
          if (!local.empty()) {
            return text(local);
          }
        }
        break;
      case transform::code: {
        if (!v.IsString()) {
          break;
        }
        if (!rule.values.empty()) {
          for (const auto& [partner_code, code] : rule.values) {
            if (code == view_of(v)) {
              return text(partner_code);
            }
          }
          fail(at, "has no " + spec_.format_name + " code");
          return std::nullopt;
        }
        const rapidjson::Value* entry = ctx_.tables->entry(rule.table, view_of(v));
        const auto values =
            entry == nullptr ? std::vector<std::string>{} : column_values(*entry, rule.column);
        if (values.empty()) {
          fail(at, "has no " + spec_.format_name + " code (table " + rule.table + ")");
          return std::nullopt;
        }
        // The column's own JSON type: a province number stays a number.
        const bool number = rule.column != "code" && entry->HasMember(rule.column.c_str()) &&
                            (*entry)[rule.column.c_str()].IsInt64();
        if (number) {
          return value((*entry)[rule.column.c_str()].GetInt64());
        }
        return text(values.front());
      }
      case transform::name_parts:
        if (v.IsArray()) {
          std::string joined;
          for (const auto& part : v.GetArray()) {
            if (part.IsString()) {
              joined += (joined.empty() ? "" : " ") + std::string(view_of(part));
            }
          }
          return text(joined);
        }
        break;
    }
    fail(at, "cannot be written as " + spec_.format_name + " " + rule.partner.text);
    return std::nullopt;
  }

  void field(const value& message, const field_rule& rule) {
    const value* v = find_canonical(message, rule.canonical, rule.select.get());
    if (v == nullptr || v->IsNull()) {
      if (rule.required) {
        fail(rule.canonical.text, "is required by " + spec_.format_name + " (" + rule.partner.text +
                                      ") and the message has none");
      }
      return;
    }
    if (rule.list || rule.wrap) {
      if (!v->IsArray()) {
        fail(rule.canonical.text, "must be an array");
        return;
      }
      if (rule.wrap) {
        if (v->Empty()) {
          return;
        }
        if (auto item = one(rule, (*v)[0], rule.canonical.text + "/0")) {
          put(rule.partner, std::move(*item));
        }
        return;
      }
      value list(rapidjson::kArrayType);
      for (rapidjson::SizeType i = 0; i < v->Size(); ++i) {
        if (auto item = one(rule, (*v)[i], rule.canonical.text + "/" + std::to_string(i))) {
          list.PushBack(*item, a());
        }
      }
      put(rule.partner, std::move(list));
      return;
    }
    if (names_answered(rule) && v->IsString()) {
      put(rule.partner, text(answered_name(message, rule, view_of(*v))));
      return;
    }
    if (auto item = one(rule, *v, rule.canonical.text)) {
      put(rule.partner, std::move(*item));
    }
  }

  // How the partner names the message answered or the one a case update is about, `id`: by its
  // own reference when it sent that message (the gateway id is not one it knows; the accept path
  // supplies it), by the reference
  // a receipt's placeholder was made from (kept in `unmapped` or `caseRef`, see
  // decoder::answered), else by the gateway id.
  std::string_view answered_name(const value& message, const field_rule& rule,
                                 std::string_view id) const {
    if (!ctx_.answered_reference.empty() && same_message_id(id, ctx_.answered_id)) {
      return ctx_.answered_reference;
    }
    if (rule.canonical.text == "/body/inReplyTo" &&
        json::get_string(message, "inReplyTo").empty()) {
      std::string_view kept;
      if (const auto unmapped = message.FindMember("unmapped");
          unmapped != message.MemberEnd() && unmapped->value.IsObject()) {
        kept = json::get_string(unmapped->value, rule.partner.text.c_str());
      }
      for (const std::string_view reference : {kept, json::get_string(message, "caseRef")}) {
        if (!reference.empty() && id == placeholder_id(reply_to_namespace(spec_), reference)) {
          return reference;
        }
      }
    }
    return id;
  }

  const mapping_spec& spec_;
  const adapter_context& ctx_;
  rapidjson::Document out_;
  std::vector<field_error> errors_;
};

// --- installed mappings ----------------------------------------------------------------------

struct catalogue {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const mapping_spec>, std::less<>> specs;
};

catalogue& the_catalogue() {
  static catalogue c;
  return c;
}

/// A config-only partner format as the registry knows it: it reads its mapping anew for every
/// message, so a reload takes effect at the next message and a running one keeps its own.
class mapped_adapter final : public adapter {
 public:
  explicit mapped_adapter(std::string id) : id_(std::move(id)) {}

  std::string_view id() const override { return id_; }
  std::string_view content_type() const override { return "application/json"; }

  decode_result decode(std::string_view bytes, const adapter_context& ctx) const override {
    auto spec = installed(id_);
    if (!spec) {
      decode_result result;
      result.status = 500;
      result.errors.push_back({"", "the mapping for this format is not loaded"});
      return result;
    }
    return decode_with(*spec, bytes, ctx);
  }

  encode_result encode(const rapidjson::Value& message, const adapter_context& ctx) const override {
    auto spec = installed(id_);
    if (!spec) {
      return {500, {}, {{"", "the mapping for this format is not loaded"}}};
    }
    return encode_with(*spec, message, ctx);
  }

  std::string encode_receipt(const receipt_info& receipt,
                             const adapter_context& ctx) const override {
    auto spec = installed(id_);
    return spec ? receipt_with(*spec, receipt, ctx) : std::string();
  }

  /// {"error": "<title>: <pointer> <reason>; ..."}, as KH-CNP answers.
  std::string encode_error(int, std::string_view title,
                           const std::vector<field_error>& errors) const override {
    std::string message(title);
    for (std::size_t i = 0; i < errors.size(); ++i) {
      message += i == 0 ? ": " : "; ";
      message +=
          errors[i].pointer.empty() ? errors[i].reason : errors[i].pointer + " " + errors[i].reason;
    }
    rapidjson::Document doc(rapidjson::kObjectType);
    doc.AddMember(
        "error",
        value(message.data(), static_cast<rapidjson::SizeType>(message.size()), doc.GetAllocator()),
        doc.GetAllocator());
    return json::to_string(doc);
  }

 private:
  std::string id_;
};

}  // namespace

decode_result decode_with(const mapping_spec& spec, std::string_view bytes,
                          const adapter_context& ctx) {
  return decoder(spec, ctx).run(bytes);
}

encode_result encode_with(const mapping_spec& spec, const rapidjson::Value& message,
                          const adapter_context& ctx) {
  return encoder(spec, ctx).run(message);
}

std::string receipt_with(const mapping_spec& spec, const receipt_info& receipt,
                         const adapter_context& ctx) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  const auto put = [&](const pointer_path& p, value v) {
    if (p.tokens.empty()) {
      return;
    }
    value* slot = make_at(doc, p, nullptr, a);
    if (slot != nullptr && slot->IsNull()) {
      *slot = std::move(v);
    }
  };
  const auto text = [&](std::string_view s) {
    return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  for (const auto& rule : spec.partner_constants) {
    if (rule.types.empty()) {
      put(rule.pointer, value(*rule.value, a));
    }
  }
  for (const auto& rule : spec.receipt.constants) {
    put(rule.pointer, value(*rule.value, a));
  }
  if (spec.receipt.present) {
    put(spec.kind_pointer, text(spec.receipt.kind));
  }
  std::string accepted = utc_to_local(receipt.accepted_at, spec.offset_minutes, spec.calendar);
  if (accepted.empty()) {
    accepted = utc_to_local(format_rfc3339_ms(ctx.now), spec.offset_minutes, spec.calendar);
  }
  const auto& r = spec.receipt;
  put(r.present ? r.id : spec.reference, text(message_uuid("mxgw-receipt", receipt.message_id)));
  put(r.reply_to, text(receipt.reference.empty() ? receipt.message_id : receipt.reference));
  put(r.accepted_at, text(accepted));
  put(r.recipient, text(receipt.recipient.empty() ? ctx.recipient : receipt.recipient));
  put(r.sender, text(ctx.sender.empty() ? std::string("mxgw") : ctx.sender));
  return json::to_string(doc);
}

std::shared_ptr<const mapping_spec> installed(std::string_view id) {
  auto& c = the_catalogue();
  std::lock_guard lock(c.mutex);
  auto it = c.specs.find(id);
  return it == c.specs.end() ? nullptr : it->second;
}

void check_ids(const mapping_set& set, std::vector<config_problem>& problems) {
  const auto registered = adapter_ids();
  auto& c = the_catalogue();
  std::lock_guard lock(c.mutex);
  for (const auto& id : set.ids()) {
    const bool taken = std::find(registered.begin(), registered.end(), id) != registered.end();
    if (taken && !c.specs.contains(id)) {
      problems.push_back(
          {set.find(id)->file, "/id", "'" + id + "' is the id of a built-in adapter"});
    }
  }
}

void install(const mapping_set& set, std::vector<config_problem>& problems) {
  const std::size_t before = problems.size();
  check_ids(set, problems);
  if (problems.size() != before) {
    return;
  }
  std::vector<std::string> fresh;
  {
    auto& c = the_catalogue();
    std::lock_guard lock(c.mutex);
    for (const auto& id : set.ids()) {
      if (!c.specs.contains(id)) {
        fresh.push_back(id);
      }
      c.specs[id] = set.find(id);
    }
  }
  for (const auto& id : fresh) {
    register_adapter(id, [id] { return std::make_unique<mapped_adapter>(id); });
  }
}

}  // namespace mxgw::adapters::mapped
