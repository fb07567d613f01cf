// KH-CNP-XCHG/2 JSON -> canonical mx/1; every choice is explained in docs/adapters/kh-cnp.md.
#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/common/name_order.hpp"
#include "adapters/common/references.hpp"
#include "adapters/kh-cnp/kh_cnp.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"

namespace mxgw::adapters::kh_cnp {
namespace {

using value = rapidjson::Value;

constexpr std::size_t max_errors = 100;  // a refusal lists at most this many problems
constexpr std::size_t max_name_chars = 256;
constexpr std::size_t max_short_chars = 256;  // locality, unit name, alias
constexpr std::size_t max_detail_chars = 2000;
constexpr std::size_t max_text_chars = 20000;
constexpr std::size_t max_reference_chars = 128;
constexpr std::size_t max_photo_chars = 700000;

std::string_view view_of(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// Strict RFC 4648 base64 (standard alphabet, padded); nullopt when `text` is not.
std::optional<std::string> base64_decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) {
    return std::nullopt;
  }
  const auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0) : 0;
    int v[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4 - pad; ++k) {
      v[k] = sextet(text[i + static_cast<std::size_t>(k)]);
      if (v[k] < 0) {
        return std::nullopt;
      }
    }
    const unsigned bits = (static_cast<unsigned>(v[0]) << 18) |
                          (static_cast<unsigned>(v[1]) << 12) | (static_cast<unsigned>(v[2]) << 6) |
                          static_cast<unsigned>(v[3]);
    out.push_back(static_cast<char>((bits >> 16) & 0xFF));
    if (pad < 2) {
      out.push_back(static_cast<char>((bits >> 8) & 0xFF));
    }
    if (pad < 1) {
      out.push_back(static_cast<char>(bits & 0xFF));
    }
  }
  return out;
}

bool is_hex64(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return out;
}

/// One KH-CNP message being translated. Collects every problem (up to max_errors) rather than
/// stopping at the first, so a partner can fix a message in one go.
class decoder {
 public:
  decoder(const adapter_context& ctx, rapidjson::Document& out, std::vector<field_error>& errors)
      : ctx_(ctx), tables_(ctx.tables), out_(out), a_(out.GetAllocator()), errors_(errors) {}

  /// Fills `out` with the canonical message; errors go to `errors`. `root` is a KH-CNP object
  /// whose `format` has been checked.
  void run(const value& root);

 private:
  const adapter_context& ctx_;
  table_view tables_;
  rapidjson::Document& out_;
  rapidjson::Document::AllocatorType& a_;
  std::vector<field_error>& errors_;
  value unmapped_{rapidjson::kObjectType};
  std::string kind_;  // the KH msg_kind, once known
  // What says whether the message's warrant may be taken to be Cambodian (warrant_country):
  // its msg_no is (or looks like) one the gateway wrote, so the message came through the gateway;
  bool gateway_msg_no_ = false;
  // it has a reply_to: it answers or updates another message, whose warrant it may carry;
  bool answers_a_message_ = false;
  // and the code of its from_unit, when given (a Cambodian unit's is "KH-<province>-PC").
  std::optional<std::string_view> from_unit_code_;

  // --- problems -------------------------------------------------------------------------------

  void fail(const std::string& at, std::string reason) {
    if (errors_.size() < max_errors) {
      errors_.push_back({at, std::move(reason)});
    }
  }

  /// A partner value with no canonical home: kept verbatim in `unmapped` under the KH pointer
  /// `carry_at` when the partner may carry such values, else refused at `at` with `reason`.
  void no_mapping(const std::string& at, std::string reason, const std::string& carry_at,
                  const value& original) {
    if (ctx_.carry_unmapped) {
      unmapped_.AddMember(value(carry_at.c_str(), a_), value(original, a_), a_);
    } else {
      fail(at, std::move(reason));
    }
  }

  /// `original` is not in `table`. For a value the canonical message cannot do without
  /// (`required`), always an error; else see no_mapping (the whole `carry_value` is kept).
  void unknown_code(const std::string& at, const value& original, std::string_view table,
                    bool required = false, const std::string* carry_at = nullptr,
                    const value* carry_value = nullptr) {
    std::string shown = original.IsString()  ? quoted_value(view_of(original))
                        : original.IsInt64() ? std::to_string(original.GetInt64())
                                             : std::string("value");
    std::string reason = "unknown code " + shown + " (table " + std::string(table) + ")";
    if (required) {
      fail(at, std::move(reason));
      return;
    }
    no_mapping(at, std::move(reason), carry_at != nullptr ? *carry_at : at,
               carry_value != nullptr ? *carry_value : original);
  }

  /// Members of `object` not in `known` (KH fields this adapter does not know).
  void check_members(const value& object, const std::string& at,
                     std::initializer_list<std::string_view> known) {
    for (const auto& m : object.GetObject()) {
      const std::string_view name = view_of(m.name);
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        const std::string where = at + "/" + json::escape_pointer_token(name);
        no_mapping(where, "is not a field of " + std::string(format_name), where, m.value);
      }
    }
  }

  // --- reading KH values ----------------------------------------------------------------------

  /// The member `name`, or nullptr when absent or null (KH systems send null for "unknown").
  static const value* get(const value& object, const char* name) {
    auto it = object.FindMember(name);
    return it == object.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
  }

  /// A string member; an empty string counts as absent. The view is into the partner's document,
  /// which outlives the decoder.
  std::optional<std::string_view> text(const value& object, const char* name, const std::string& parent,
                                  std::size_t max_chars, bool required = false) {
    // The pointer is built only for an error: most values are fine.
    const auto at = [&] { return parent + "/" + name; };
    const value* v = get(object, name);
    if (v == nullptr || (v->IsString() && v->GetStringLength() == 0)) {
      if (required) {
        fail(at(), "is required");
      }
      return std::nullopt;
    }
    if (!v->IsString()) {
      fail(at(), "must be a string");
      return std::nullopt;
    }
    // No more bytes than the limit: no more characters either, without counting them.
    if (v->GetStringLength() > max_chars && code_points(view_of(*v)) > max_chars) {
      fail(at(), "is longer than " + std::to_string(max_chars) + " characters");
      return std::nullopt;
    }
    return view_of(*v);
  }

  const value* object(const value& parent_object, const char* name, const std::string& parent,
                      bool required = false) {
    const value* v = get(parent_object, name);
    if (v == nullptr) {
      if (required) {
        fail(parent + "/" + name, "is required");
      }
      return nullptr;
    }
    if (!v->IsObject()) {
      fail(parent + "/" + name, "must be an object");
      return nullptr;
    }
    return v;
  }

  const value* array(const value& parent_object, const char* name, const std::string& parent,
                     std::size_t max_items, bool required = false) {
    const value* v = get(parent_object, name);
    const auto at = [&] { return parent + "/" + name; };
    if (v == nullptr) {
      if (required) {
        fail(at(), "is required");
      }
      return nullptr;
    }
    if (!v->IsArray()) {
      fail(at(), "must be an array");
      return nullptr;
    }
    if (v->Size() > max_items) {
      fail(at(), "has more than " + std::to_string(max_items) + " items");
      return nullptr;
    }
    if (required && v->Empty()) {
      fail(at(), "needs at least one item");
      return nullptr;
    }
    return v;
  }

  std::optional<bool> boolean(const value& object, const char* name, const std::string& parent) {
    const value* v = get(object, name);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->IsBool()) {
      fail(parent + "/" + name, "must be true or false");
      return std::nullopt;
    }
    return v->GetBool();
  }

  std::optional<std::int64_t> integer(const value& object, const char* name,
                                      const std::string& parent, std::int64_t min,
                                      std::int64_t max) {
    const value* v = get(object, name);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->IsInt64() || v->GetInt64() < min || v->GetInt64() > max) {
      fail(parent + "/" + name,
           "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
      return std::nullopt;
    }
    return v->GetInt64();
  }

  /// A DD/MM/YYYY date (00 for an unknown day or month) -> partial date.
  std::optional<std::string> date(const value& object, const char* name, const std::string& parent,
                                  bool required = false) {
    auto raw = text(object, name, parent, 10, required);
    if (!raw) {
      return std::nullopt;
    }
    std::string error;
    auto partial = dmy_to_partial(*raw, era::common, error);
    if (!partial) {
      fail(parent + "/" + name, error + " (DD/MM/YYYY, 00 for an unknown day or month)");
    }
    return partial;
  }

  /// A DD/MM/YYYY HH:MM:SS +HH:MM time -> RFC 3339 UTC.
  std::optional<std::string> utc_time(const value& object, const char* name,
                                      const std::string& parent) {
    auto raw = text(object, name, parent, 64, true);
    if (!raw) {
      return std::nullopt;
    }
    std::string error;
    auto utc = local_to_utc(*raw, era::common, error);
    if (!utc) {
      fail(parent + "/" + name, error);
    }
    return utc;
  }

  /// The same time as RFC 3339 with the partner's own offset kept (hotline receivedAt).
  std::optional<std::string> local_time(const value& object, const char* name,
                                        const std::string& parent) {
    auto raw = text(object, name, parent, 64, true);
    if (!raw) {
      return std::nullopt;
    }
    std::string error;
    if (!local_to_utc(*raw, era::common, error)) {
      fail(parent + "/" + name, error);
      return std::nullopt;
    }
    // Checked above: "DD/MM/YYYY HH:MM[:SS] <offset>".
    const std::string day =
        *dmy_to_partial(std::string_view(*raw).substr(0, 10), era::common, error);
    const std::string_view rest = std::string_view(*raw).substr(11);
    const std::size_t space = rest.find(' ');
    std::string time(rest.substr(0, space));
    if (time.size() == 5) {
      time += ":00";
    }
    return day + "T" + time + std::string(rest.substr(space + 1));
  }

  // --- building canonical values --------------------------------------------------------------

  value str(std::string_view s) {
    return value(mxgw::json::non_null(s), static_cast<rapidjson::SizeType>(s.size()), a_);
  }
  void put(value& object, const char* name, value v) {
    object.AddMember(rapidjson::StringRef(name), v, a_);
  }
  void put_str(value& object, const char* name, std::string_view s) { put(object, name, str(s)); }

  /// {text, lang} from a Khmer and an English text (the Khmer one is what the source wrote; the
  /// English one its translation); `translation_member` is "translations" (text) or
  /// "translation" (a charge).
  value text_value(const std::optional<std::string_view>& kh, const std::optional<std::string_view>& en,
                   const char* translation_member) {
    value t(rapidjson::kObjectType);
    put_str(t, "text", kh ? *kh : *en);
    put_str(t, "lang", kh ? "khm" : "eng");
    if (kh && en) {
      value english(rapidjson::kObjectType);
      put_str(english, "text", *en);
      put_str(english, "lang", "eng");
      if (std::string_view(translation_member) == "translations") {
        value list(rapidjson::kArrayType);
        list.PushBack(english, a_);
        put(t, translation_member, std::move(list));
      } else {
        put(t, translation_member, std::move(english));
      }
    }
    return t;
  }

  /// The list `parent`/`member`'s KH codes translated through `table`; unknown codes refused or
  /// carried. Duplicates are dropped (the canonical lists are sets).
  value code_list(const value& list, const std::string& parent, const char* member,
                  std::string_view table, bool languages = false) {
    value out(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const auto item_at = [&] {  // for an error only
        return parent + "/" + member + "/" + std::to_string(i);
      };
      if (!list[i].IsString()) {
        fail(item_at(), "must be a string");
        continue;
      }
      const auto code = languages ? tables_.language_from_639_1(view_of(list[i]))
                                  : tables_.from_kh(table, view_of(list[i]));
      if (!code) {
        unknown_code(item_at(), list[i], table);
        continue;
      }
      const bool seen =
          std::any_of(out.Begin(), out.End(), [&](const value& v) { return view_of(v) == *code; });
      if (!seen) {
        out.PushBack(str(*code), a_);
      }
    }
    return out;
  }

  /// {code KH-N, asRecorded "N"} for a province number, or nullopt (refused or carried).
  std::optional<value> province(const value& object, const char* name, const std::string& parent) {
    const value* v = get(object, name);
    const auto at = [&] { return parent + "/" + name; };  // for an error only
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->IsInt64()) {
      fail(at(), "must be a province number (1-25)");
      return std::nullopt;
    }
    const auto code = tables_.region_of_province(v->GetInt64());
    if (!code) {
      unknown_code(at(), *v, "region");
      return std::nullopt;
    }
    value region(rapidjson::kObjectType);
    put_str(region, "code", *code);
    put_str(region, "asRecorded", std::to_string(v->GetInt64()));
    return region;
  }

  /// A KH place {province, district?, detail} -> canonical place (a province places it in
  /// Cambodia); nullopt when nothing is left of it.
  std::optional<value> place(const value& kh, const std::string& at, bool has_district) {
    value out(rapidjson::kObjectType);
    if (auto region = province(kh, "province", at)) {
      put_str(out, "country", "KH");
      put(out, "region", std::move(*region));
    }
    if (has_district) {
      if (auto district = text(kh, "district", at, max_short_chars)) {
        put_str(out, "locality", *district);
      }
    }
    if (auto detail = text(kh, "detail", at, max_detail_chars)) {
      put_str(out, "detail", *detail);
    }
    if (out.ObjectEmpty()) {
      return std::nullopt;
    }
    return out;
  }

  // --- the parts of a message -----------------------------------------------------------------

  /// Checks the unit `name` (from_unit, to_unit); its code, when there is one.
  std::optional<std::string_view> unit(const value& root, const char* name) {
    const std::string at = std::string("/") + name;
    std::optional<std::string_view> code;
    if (const value* u = object(root, name, "", true)) {
      code = text(*u, "code", at, 64, true);
      text(*u, "name_kh", at, max_short_chars);
      text(*u, "name_en", at, max_short_chars);
      check_members(*u, at, {"code", "name_kh", "name_en"});
    }
    return code;
  }

  /// One name from a `family_name_*` / `given_name_*` pair written in `script`.
  void name_pair(const value& subject, const char* family_name, const char* given_name,
                 std::string_view script, value& names) {
    value name(rapidjson::kObjectType);
    bool any = false;
    for (const char* member : {family_name, given_name}) {
      const auto at = [&] { return std::string("/subject/") + member; };  // for an error only
      auto raw = text(subject, member, "/subject", max_name_chars * 10);
      if (!raw) {
        continue;
      }
      if (!written_in(*raw, script)) {
        fail(at(), script == "Khmr" ? "is not in Khmer script (Latin names go in *_lat)"
                                    : "is not in Latin script (Khmer names go in *_kh)");
        continue;
      }
      value parts(rapidjson::kArrayType);
      for (const std::string_view part : split_name(*raw)) {
        if (code_points(part) > max_name_chars) {
          fail(at(), "has a name part longer than 256 characters");
        }
        parts.PushBack(str(part), a_);
      }
      if (!parts.Empty()) {
        put(name, member == family_name ? "family" : "given", std::move(parts));
        any = true;
      }
    }
    if (any) {
      put_str(name, "script", script);
      put_str(name, "kind", "primary");
      put_str(name, "order", "family-first");
      names.PushBack(name, a_);
    }
  }

  /// `subject` -> canonical person; nullopt when it cannot be one (errors reported).
  std::optional<value> person(const value& subject, value photos) {
    const std::string at = "/subject";
    value names(rapidjson::kArrayType);
    name_pair(subject, "family_name_kh", "given_name_kh", "Khmr", names);
    name_pair(subject, "family_name_lat", "given_name_lat", "Latn", names);
    if (const value* aliases = array(subject, "aliases", at, 50)) {
      for (rapidjson::SizeType i = 0; i < aliases->Size(); ++i) {
        const auto item_at = [&] { return at + "/aliases/" + std::to_string(i); };  // on error
        const value& alias = (*aliases)[i];
        if (!alias.IsString()) {
          fail(item_at(), "must be a string");
          continue;
        }
        if (alias.GetStringLength() == 0) {
          continue;
        }
        if (code_points(view_of(alias)) > max_name_chars) {
          fail(item_at(), "is longer than 256 characters");
          continue;
        }
        value name(rapidjson::kObjectType);
        value given(rapidjson::kArrayType);
        given.PushBack(str(view_of(alias)), a_);
        put(name, "given", std::move(given));
        put_str(name, "script", detect_script(view_of(alias)));
        put_str(name, "kind", "alias");
        names.PushBack(name, a_);
      }
    }
    if (names.Size() > 50) {
      fail(at + "/aliases", "makes more than the 50 names a person may have");
    }
    value p(rapidjson::kObjectType);
    const bool named = !names.Empty();
    put(p, "names", std::move(names));
    if (auto sex = text(subject, "sex", at, 64)) {
      if (auto code = tables_.from_kh("sex", *sex)) {
        put_str(p, "sex", *code);
      } else {
        unknown_code(at + "/sex", *get(subject, "sex"), "sex");
      }
    }
    if (auto dob = date(subject, "dob", at)) {
      put_str(p, "birthDate", *dob);
    }
    if (auto approx = boolean(subject, "dob_approx", at)) {
      put(p, "birthDateApprox", value(*approx));
    }
    if (auto age = integer(subject, "age_est", at, 0, 130)) {
      value estimate(rapidjson::kObjectType);
      put(estimate, "min", value(*age));
      put(estimate, "max", value(*age));
      put(p, "ageEstimate", std::move(estimate));
    }
    std::vector<std::string> nationalities;
    if (auto nationality = text(subject, "nationality", at, 16)) {
      if (auto code = tables_.country_from_alpha3(*nationality)) {
        value list(rapidjson::kArrayType);
        list.PushBack(str(*code), a_);
        put(p, "nationalities", std::move(list));
        nationalities.emplace_back(*code);
      } else {
        unknown_code(at + "/nationality", *get(subject, "nationality"), "country");
      }
    }
    // The order of the primary names is the person's naming custom (name_order.hpp): a Lao or
    // Thai national's name is given-first; without a nationality, a Cambodian's (family-first).
    const std::optional<std::string_view> order =
        nationalities.empty() ? std::optional<std::string_view>("family-first")
                              : name_order_of(nationalities);
    for (auto& name : p["names"].GetArray()) {
      if (name.HasMember("order")) {
        if (order) {
          name["order"] = str(*order);
        } else {
          name.RemoveMember("order");
        }
      }
    }
    if (const value* docs = array(subject, "id_docs", at, 20)) {
      value documents(rapidjson::kArrayType);
      for (rapidjson::SizeType i = 0; i < docs->Size(); ++i) {
        if (auto document = id_doc((*docs)[i], at + "/id_docs/" + std::to_string(i))) {
          documents.PushBack(*document, a_);
        }
      }
      if (!documents.Empty()) {
        put(p, "documents", std::move(documents));
      }
    }
    if (auto region = province(subject, "home_province", at)) {
      put(p, "homeRegion", std::move(*region));
    }
    if (const value* languages = array(subject, "languages", at, 20)) {
      value list = code_list(*languages, at, "languages", "language", true);
      if (!list.Empty()) {
        put(p, "languages", std::move(list));
      }
    }
    if (!photos.Empty()) {
      put(p, "photos", std::move(photos));
    }
    check_members(
        subject, at,
        {"family_name_kh", "given_name_kh", "family_name_lat", "given_name_lat", "aliases", "sex",
         "dob", "dob_approx", "age_est", "nationality", "id_docs", "home_province", "languages"});
    if (!named) {
      fail(at,
           "needs a name: family_name_kh, given_name_kh, family_name_lat, given_name_lat or "
           "aliases");
      return std::nullopt;
    }
    return p;
  }

  std::optional<value> id_doc(const value& kh, const std::string& at) {
    if (!kh.IsObject()) {
      fail(at, "must be an object");
      return std::nullopt;
    }
    value document(rapidjson::kObjectType);
    auto type = text(kh, "type", at, 64, true);
    if (!type) {
      return std::nullopt;
    }
    const auto code = tables_.from_kh("document-type", *type);
    if (!code) {
      unknown_code(at + "/type", *get(kh, "type"), "document-type", false, &at, &kh);
      return std::nullopt;
    }
    put_str(document, "type", *code);
    if (auto number = text(kh, "no", at, 64)) {
      put_str(document, "number", *number);
    }
    if (auto issuer = text(kh, "issuer", at, 16)) {
      if (auto country = tables_.country_from_alpha3(*issuer)) {
        put_str(document, "issuingCountry", *country);
      } else {
        unknown_code(at + "/issuer", *get(kh, "issuer"), "country");
      }
    }
    check_members(kh, at, {"type", "no", "issuer"});
    return document;
  }

  /// attachments -> photos of the subject (document scans have no canonical field).
  value photos(const value& root) {
    value out(rapidjson::kArrayType);
    const value* list = array(root, "attachments", "", 40);
    if (list == nullptr) {
      return out;
    }
    if (kind_ == "RECEIPT") {
      no_mapping("/attachments", "is not used on a RECEIPT message", "/attachments", *list);
      return out;
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      const std::string at = "/attachments/" + std::to_string(i);
      const value& item = (*list)[i];
      if (!item.IsObject()) {
        fail(at, "must be an object");
        continue;
      }
      auto kind = text(item, "kind", at, 64, true);
      if (!kind) {
        continue;
      }
      if (*kind == "DOCUMENT_SCAN") {
        no_mapping(at + "/kind",
                   "a document scan has no field in the canonical model (send the document's "
                   "number in subject.id_docs)",
                   at, item);
        continue;
      }
      if (*kind != "PHOTO") {
        unknown_code(at + "/kind", *get(item, "kind"), "KH-CNP attachment kind", false, &at, &item);
        continue;
      }
      if (auto photo_value = photo(item, at)) {
        if (out.Size() == 20) {
          fail(at, "is more than the 20 photos a person may have");
          continue;
        }
        out.PushBack(*photo_value, a_);
      }
    }
    return out;
  }

  std::optional<value> photo(const value& item, const std::string& at) {
    check_members(item, at, {"kind", "mime", "sha256", "b64"});
    auto mime = text(item, "mime", at, 64, true);
    auto data = text(item, "b64", at, max_photo_chars, true);
    auto digest = text(item, "sha256", at, 64);
    if (!mime || !data) {
      return std::nullopt;
    }
    if (*mime != "image/jpeg" && *mime != "image/png" && *mime != "image/webp") {
      unknown_code(at + "/mime", *get(item, "mime"), "photo media types", false, &at, &item);
      return std::nullopt;
    }
    const auto bytes = base64_decode(*data);
    if (!bytes) {
      fail(at + "/b64", "is not standard base64 (RFC 4648)");
      return std::nullopt;
    }
    const std::string actual = sha256_hex(*bytes);
    if (digest && (!is_hex64(*digest) || lower(*digest) != actual)) {
      fail(at + "/sha256", "is not the SHA-256 of the image bytes in b64");
      return std::nullopt;
    }
    value p(rapidjson::kObjectType);
    put_str(p, "mime", *mime);
    put_str(p, "sha256", actual);
    put_str(p, "data", *data);
    return p;
  }

  value victim_body(const value& root, value person_value, std::optional<bool>& consent) {
    value body(rapidjson::kObjectType);
    put(body, "person", std::move(person_value));
    const value* c = object(root, "case", "", true);
    if (c == nullptr) {
      return body;
    }
    const std::string at = "/case";
    if (auto status = text(*c, "status", at, 64, true)) {
      if (auto code = tables_.from_kh("victim-status", *status)) {
        put_str(body, "status", *code);
      } else {
        unknown_code(at + "/status", *get(*c, "status"), "victim-status", true);
      }
    }
    if (const value* list = array(*c, "exploitation", at, 20)) {
      value codes = code_list(*list, at, "exploitation", "exploitation");
      if (!codes.Empty()) {
        put(body, "exploitation", std::move(codes));
      }
    }
    value event(rapidjson::kObjectType);
    put_str(event, "type", "identification");
    if (auto found = date(*c, "found_date", at)) {
      put_str(event, "date", *found);
    }
    if (const value* found_place = object(*c, "found_place", at)) {
      const std::string place_at = at + "/found_place";
      if (auto p = place(*found_place, place_at, true)) {
        put(event, "place", std::move(*p));
      }
      check_members(*found_place, place_at, {"province", "district", "detail"});
    }
    if (event.MemberCount() > 1) {
      value events(rapidjson::kArrayType);
      events.PushBack(event, a_);
      put(body, "events", std::move(events));
    }
    if (auto minors = integer(*c, "minors_with", at, 0, 100)) {
      put(body, "accompanyingMinors", value(*minors));
    }
    if (const value* list = array(*c, "needs", at, 20)) {
      value codes = code_list(*list, at, "needs", "needs");
      if (!codes.Empty()) {
        put(body, "needs", std::move(codes));
      }
    }
    if (auto repatriation = boolean(*c, "repatriation", at)) {
      put(body, "repatriationRequested", value(*repatriation));
    }
    consent = boolean(*c, "consent_share", at);
    if (consent) {
      value given(rapidjson::kObjectType);
      put(given, "given", value(*consent));
      if (*consent) {
        value scope(rapidjson::kArrayType);
        scope.PushBack("victim-protection", a_);
        scope.PushBack("repatriation", a_);
        put(given, "scope", std::move(scope));
      }
      put(body, "consent", std::move(given));
    }
    check_members(*c, at,
                  {"status", "exploitation", "found_place", "found_date", "minors_with", "needs",
                   "repatriation", "consent_share"});
    auto kh = text(root, "narrative_kh", "", max_text_chars);
    auto en = text(root, "narrative_en", "", max_text_chars);
    if (kh || en) {
      put(body, "narrative", text_value(kh, en, "translations"));
    }
    return body;
  }

  value wanted_body(const value& root, value person_value) {
    value body(rapidjson::kObjectType);
    put(body, "person", std::move(person_value));
    const value* w = object(root, "warrant", "", true);
    value warnings(rapidjson::kArrayType);
    std::optional<value> last_seen;
    if (w != nullptr) {
      const std::string at = "/warrant";
      value warrant(rapidjson::kObjectType);
      if (auto number = text(*w, "no", at, max_reference_chars)) {
        put_str(warrant, "number", *number);
      }
      std::optional<issuing_country_marks> court;
      if (auto raw = text(*w, "court", at, max_court_chars)) {
        court = read_issuing_country_marks(*raw, court_field);
      }
      const auto country = warrant_country(court, at);
      if (country) {
        put_str(warrant, "issuingCountry", *country);
      }
      if (court && !court->authority.empty()) {
        put_str(warrant, "issuingAuthority", court->authority);
      }
      if (auto issued = date(*w, "issued", at)) {
        put_str(warrant, "issued", *issued);
      }
      if (auto expires = date(*w, "expires", at)) {
        put_str(warrant, "expires", *expires);
      }
      value charges(rapidjson::kArrayType);
      if (const value* offences = array(*w, "offences", at, 50, true)) {
        for (rapidjson::SizeType i = 0; i < offences->Size(); ++i) {
          if (auto charge_value =
                  charge((*offences)[i], at + "/offences/" + std::to_string(i), country)) {
            charges.PushBack(*charge_value, a_);
          }
        }
      }
      put(warrant, "charges", std::move(charges));
      value warrants(rapidjson::kArrayType);
      warrants.PushBack(warrant, a_);
      put(body, "warrants", std::move(warrants));
      if (boolean(*w, "dangerous", at).value_or(false)) {
        warnings.PushBack("violent", a_);
      }
      if (const value* seen = object(*w, "last_seen", at)) {
        const std::string seen_at = at + "/last_seen";
        last_seen = place(*seen, seen_at, false);
        auto when = date(*seen, "date", seen_at);
        if (last_seen && when) {
          put_str(*last_seen, "date", *when);
        } else if (when) {
          no_mapping(seen_at, "needs a province or detail to say where the person was seen",
                     seen_at, *seen);
        }
        check_members(*seen, seen_at, {"province", "detail", "date"});
      }
      check_members(*w, at,
                    {"no", "court", "offences", "issued", "expires", "dangerous", "last_seen"});
    }
    put_str(body, "requestedAction", "locate-and-inform");
    if (!warnings.Empty()) {
      put(body, "warnings", std::move(warnings));
    }
    if (last_seen) {
      put(body, "lastSeen", std::move(*last_seen));
    }
    return body;
  }

  /// The warrant's issuing country, which KH-CNP has no field for (docs/adapters/kh-cnp.md,
  /// choice 6). The country its `court` names ("... (issuing country: VNM)"), else Cambodia for a
  /// commissariat's own message: a Cambodian unit's message under its own msg_no carries its
  /// courts' warrants. Anything else would be a guess, so nullopt with an error at the warrant
  /// when the message came through the gateway (a msg_no the gateway wrote), answers another
  /// message (reply_to: the warrant may be that message's, e.g. a Vietnamese one the gateway
  /// sent), or is not from a Cambodian unit; and at the court when it names an unknown country,
  /// more than one, or not at its end.
  std::optional<std::string> warrant_country(const std::optional<issuing_country_marks>& court,
                                             const std::string& at) {
    static constexpr const char* say_it =
        "; the court names the issuing country at its end: '(issuing country: <alpha-3>)', "
        "e.g. '(issuing country: KHM)' for a Cambodian court's warrant";
    if (court) {
      auto marked = country_of_marks(*court, court_field, [this](std::string_view alpha3) {
        return tables_.country_from_alpha3(alpha3);
      });
      if (marked.refusal) {
        fail(at + "/court", *marked.refusal);
        return std::nullopt;
      }
      if (marked.country) {
        return marked.country;
      }
    }
    if (gateway_msg_no_) {
      fail(at, std::string("has no issuing country: KH-CNP has no field for it, and this msg_no "
                           "is one the gateway wrote, so the warrant came from another partner "
                           "through the gateway and is not taken to be Cambodian") +
                   say_it);
      return std::nullopt;
    }
    if (answers_a_message_) {
      fail(at, std::string("has no issuing country: this message answers another (reply_to), "
                           "whose warrant may be another country's, so it is not taken to be "
                           "Cambodian") +
                   say_it);
      return std::nullopt;
    }
    if (from_unit_code_ &&
        !(from_unit_code_->size() > 3 && lower(from_unit_code_->substr(0, 3)) == "kh-")) {
      fail(at, std::string("has no issuing country: from_unit is not a Cambodian unit "
                           "(KH-<province>-PC), so the warrant is not taken to be Cambodian") +
                   say_it);
      return std::nullopt;
    }
    return "KH";
  }

  std::optional<value> charge(const value& offence, const std::string& at,
                              const std::optional<std::string>& country) {
    if (!offence.IsObject()) {
      fail(at, "must be an object");
      return std::nullopt;
    }
    check_members(offence, at, {"code", "text_kh", "text_en"});
    auto code = text(offence, "code", at, max_reference_chars);
    auto kh = text(offence, "text_kh", at, max_text_chars);
    auto en = text(offence, "text_en", at, max_text_chars);
    value c(rapidjson::kObjectType);
    if (kh || en) {
      c = text_value(kh, en, "translation");
    } else if (code) {
      put_str(c, "text", *code);  // only the statute reference was given: it is the text
    } else {
      fail(at, "needs text_kh, text_en or code");
      return std::nullopt;
    }
    if (code && country) {  // the statute is the issuing country's law
      value statute(rapidjson::kObjectType);
      put_str(statute, "jurisdiction", *country);
      put_str(statute, "code", *code);
      put(c, "statute", std::move(statute));
    }
    return c;
  }

  value tip_body(const value& root, value person_value) {
    value body(rapidjson::kObjectType);
    const value* t = object(root, "tip", "", true);
    if (t == nullptr) {
      return body;
    }
    const std::string at = "/tip";
    if (auto received = local_time(*t, "received_at", at)) {
      put_str(body, "receivedAt", *received);
    }
    std::string channel = "other";  // no line given: the channel is not known
    if (auto line = text(*t, "line", at, 64)) {
      if (auto code = tables_.from_kh("hotline-channel", *line)) {
        channel = *code;
      } else {
        unknown_code(at + "/line", *get(*t, "line"), "hotline-channel");
      }
    }
    put_str(body, "channel", channel);
    // `anonymous: false` says only that the caller gave a name, not who the caller is (a victim,
    // family, an NGO, the public): the reporter type is then left out, not made "public".
    if (auto anonymous = boolean(*t, "anonymous", at); anonymous && *anonymous) {
      put_str(body, "reporterType", "anonymous");
    }
    if (auto urgency = text(*t, "urgency", at, 64, true)) {
      if (auto code = canonical_of(urgencies, *urgency)) {
        put_str(body, "urgency", *code);
      } else {
        unknown_code(at + "/urgency", *get(*t, "urgency"), "KH-CNP urgency", true);
      }
    }
    value subject(rapidjson::kObjectType);
    put_str(subject, "role", "possible-victim");
    put(subject, "person", std::move(person_value));
    value subjects(rapidjson::kArrayType);
    subjects.PushBack(subject, a_);
    put(body, "subjects", std::move(subjects));
    if (const value* kh_place = object(*t, "place", at)) {
      if (auto p = place(*kh_place, at + "/place", false)) {
        value places(rapidjson::kArrayType);
        places.PushBack(*p, a_);
        put(body, "places", std::move(places));
      }
      check_members(*kh_place, at + "/place", {"province", "detail"});
    }
    const std::size_t problems_before = errors_.size();
    auto kh = text(*t, "summary_kh", at, max_text_chars);
    auto en = text(*t, "summary_en", at, max_text_chars);
    if (kh || en) {
      put(body, "summary", text_value(kh, en, "translations"));
    } else if (errors_.size() == problems_before) {
      fail(at + "/summary_en", "is required (or summary_kh)");
    }
    check_members(
        *t, at,
        {"line", "received_at", "anonymous", "urgency", "place", "summary_kh", "summary_en"});
    return body;
  }

  value request_body(const value& root, value person_value) {
    value body(rapidjson::kObjectType);
    value questions(rapidjson::kArrayType);
    std::optional<std::string_view> purpose;
    if (const value* list = array(root, "questions", "", 20, true)) {
      for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
        const std::string at = "/questions/" + std::to_string(i);
        if (!(*list)[i].IsString()) {
          fail(at, "must be a string");
          continue;
        }
        const auto question = view_of((*list)[i]);
        const auto question_purpose = canonical_of(question_purposes, question);
        if (!question_purpose) {
          unknown_code(at, (*list)[i], "KH-CNP questions");
          continue;
        }
        purpose = purpose.value_or(*question_purpose);
        questions.PushBack(str(question), a_);
      }
      if (!purpose && list->Size() > 0) {
        fail("/questions", "needs one of IDENTITY, NATIONALITY, ADDRESS, FAMILY_TRACING");
      }
    }
    // Free-text questions travel in the narrative, one per line.
    for (const char* member : {"narrative_kh", "narrative_en"}) {
      auto narrative = text(root, member, "", max_text_chars);
      if (!narrative) {
        continue;
      }
      std::string_view rest = *narrative;
      while (!rest.empty()) {
        const std::size_t end = rest.find('\n');
        std::string_view line = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
          line.remove_suffix(1);
        }
        if (line.empty()) {
          continue;
        }
        if (code_points(line) > 2000 || questions.Size() == 20) {
          fail(std::string("/") + member,
               "holds a question longer than 2000 characters or more than 20 questions");
          break;
        }
        questions.PushBack(str(line), a_);
      }
    }
    if (purpose) {
      put_str(body, "purpose", *purpose);
    }
    put(body, "subject", std::move(person_value));
    if (!questions.Empty()) {
      put(body, "questions", std::move(questions));
    }
    return body;
  }

  value result_body(const value& root, value person_value) {
    value body(rapidjson::kObjectType);
    const value* answer = object(root, "answer", "", true);
    std::optional<value> notes;
    if (answer != nullptr) {
      const std::string at = "/answer";
      if (auto result = text(*answer, "result", at, 64, true)) {
        if (auto code = canonical_of(answer_results, *result)) {
          put_str(body, "result", *code);
        } else {
          unknown_code(at + "/result", *get(*answer, "result"), "KH-CNP answer result", true);
        }
      }
      auto kh = text(*answer, "note_kh", at, max_text_chars);
      auto en = text(*answer, "note_en", at, max_text_chars);
      if (kh || en) {
        notes = text_value(kh, en, "translations");
      }
      check_members(*answer, at, {"result", "note_kh", "note_en"});
    }
    put(body, "matched", std::move(person_value));
    if (notes) {
      put(body, "notes", std::move(*notes));
    }
    return body;
  }

  value receipt_body(const value& root, const std::optional<std::string>& in_reply_to,
                     const std::optional<std::string>& created) {
    value body(rapidjson::kObjectType);
    if (in_reply_to) {
      put_str(body, "inReplyTo", *in_reply_to);
    }
    std::optional<std::string_view> status;
    if (auto raw = text(root, "status", "", 64, true)) {
      status = canonical_of(receipt_statuses, *raw);
      if (status) {
        put_str(body, "status", *status);
      } else {
        unknown_code("/status", *get(root, "status"), "KH-CNP receipt status", true);
      }
    }
    if (created) {
      put_str(body, "received", *created);
    }
    // A rejection's reason is its error (the schema requires one). On an acknowledgement errors
    // would say the message was refused: the note is kept in `unmapped` under its KH pointer,
    // whatever carryUnmapped says (it is a KH field, not an unknown value), and goes back out.
    auto reason = text(root, "reason", "", 2000);
    if (status == "rejected") {
      value error(rapidjson::kObjectType);
      put_str(error, "reason", reason ? *reason : "no reason given");
      value errors(rapidjson::kArrayType);
      errors.PushBack(error, a_);
      put(body, "errors", std::move(errors));
    } else if (reason && status == "received") {
      unmapped_.AddMember(str(receipt_reason_key), str(*reason), a_);
    }
    return body;
  }
};

void decoder::run(const value& root) {
  const auto msg_no = text(root, "msg_no", "", max_reference_chars, true);
  const auto kind = text(root, "msg_kind", "", 64, true);
  std::optional<std::string_view> type;
  if (kind) {
    type = canonical_of(message_kinds, *kind);
    if (type) {
      kind_ = *kind;
    } else {
      unknown_code("/msg_kind", *get(root, "msg_kind"), "KH-CNP msg_kind", true);
    }
  }
  if (msg_no) {
    // A msg_no the gateway wrote ("<ref>/<id>", or the id): the message came through the gateway
    // from another partner, so its warrant is not taken to be Cambodian (warrant_country).
    gateway_msg_no_ = read_answered_reference(*msg_no).kind != reference_kind::foreign;
  }
  const auto created = utc_time(root, "sent_at", "");
  from_unit_code_ = unit(root, "from_unit");
  unit(root, "to_unit");
  std::optional<std::string> confidentiality;
  if (auto marking = text(root, "classification", "", 64, true)) {
    confidentiality = tables_.from_kh("classification", *marking);
    if (!confidentiality) {
      unknown_code("/classification", *get(root, "classification"), "classification", true);
    }
  }
  // reply_to: the message answered. The gateway's id, or the msg_no the gateway wrote for it
  // ("<ref>/<id>"), is the canonical inReplyTo. Any other reference names no message the gateway
  // can tie it to: the link is left out and the reference kept as the thread (caseRef); a receipt,
  // whose body must name a UUID, names a placeholder for it. A damaged gateway reference is
  // refused: accepting it would lose the link without a word.
  std::optional<std::string> in_reply_to;
  std::optional<std::string> receipt_about;
  std::optional<std::string> case_ref;
  const bool needs_reply_to = kind_ == "VERIFY_REPLY" || kind_ == "RECEIPT";
  if (auto reply_to = text(root, "reply_to", "", max_reference_chars, needs_reply_to)) {
    answers_a_message_ = true;
    const auto answered = read_answered_reference(*reply_to);
    if (answered.kind == reference_kind::gateway_message) {
      in_reply_to = answered.id;
      receipt_about = answered.id;
    } else if (answered.kind == reference_kind::malformed) {
      fail("/reply_to",
           "is not a reference the gateway wrote: its id part is not a UUID or it holds control "
           "characters (send the msg_no of the message answered as received)");
    } else {
      case_ref = *reply_to;
      receipt_about = placeholder_id(reply_to_namespace, *reply_to);
    }
  }

  value photo_list = photos(root);
  std::optional<value> subject_person;
  if (!kind_.empty() && kind_ != "RECEIPT") {
    if (const value* subject = object(root, "subject", "", true)) {
      subject_person = person(*subject, std::move(photo_list));
    }
  }
  value body(rapidjson::kObjectType);
  std::optional<bool> consent;
  value person_value = subject_person ? std::move(*subject_person) : value(rapidjson::kObjectType);
  if (kind_ == "VICTIM_REFERRAL") {
    body = victim_body(root, std::move(person_value), consent);
  } else if (kind_ == "WANTED_PERSON") {
    body = wanted_body(root, std::move(person_value));
  } else if (kind_ == "HOTLINE_TIP") {
    body = tip_body(root, std::move(person_value));
  } else if (kind_ == "VERIFY_REQUEST") {
    body = request_body(root, std::move(person_value));
  } else if (kind_ == "VERIFY_REPLY") {
    body = result_body(root, std::move(person_value));
  } else if (kind_ == "RECEIPT") {
    body = receipt_body(root, receipt_about, created);
  }

  // Members that belong to other kinds, and narratives where the type has no narrative.
  const std::pair<const char*, std::string_view> kind_members[] = {{"subject", ""},
                                                                   {"case", "VICTIM_REFERRAL"},
                                                                   {"warrant", "WANTED_PERSON"},
                                                                   {"tip", "HOTLINE_TIP"},
                                                                   {"questions", "VERIFY_REQUEST"},
                                                                   {"answer", "VERIFY_REPLY"},
                                                                   {"status", "RECEIPT"},
                                                                   {"reason", "RECEIPT"}};
  for (const auto& [member, owner] : kind_members) {
    const value* v = get(root, member);
    const bool wrong = owner.empty() ? kind_ == "RECEIPT" : kind_ != owner;
    if (v != nullptr && wrong && !kind_.empty()) {
      const std::string at = std::string("/") + member;
      no_mapping(at, "is not used on a " + kind_ + " message", at, *v);
    }
  }
  if (!kind_.empty() && kind_ != "VICTIM_REFERRAL" && kind_ != "VERIFY_REQUEST") {
    for (const char* member : {"narrative_kh", "narrative_en"}) {
      if (const value* v = get(root, member)) {
        const std::string at = std::string("/") + member;
        no_mapping(at, "has no canonical field on a " + kind_ + " message", at, *v);
      }
    }
  }
  check_members(root, "",
                {"format", "msg_no", "msg_kind", "sent_at", "from_unit", "to_unit", "reply_to",
                 "classification", "subject", "case", "warrant", "tip", "questions", "answer",
                 "narrative_kh", "narrative_en", "attachments", "status", "reason"});
  if (!errors_.empty() || !type || !msg_no || !created || !confidentiality) {
    return;
  }

  out_.SetObject();
  put_str(out_, "mx", "1");
  put_str(out_, "id", derived_message_id(ctx_.message_id_key, ctx_.sender, *msg_no));
  put_str(out_, "type", *type);
  put_str(out_, "created", *created);
  put_str(out_, "sender", ctx_.sender);
  put_str(out_, "ref", *msg_no);
  if (in_reply_to) {
    put_str(out_, "inReplyTo", *in_reply_to);
  }
  if (case_ref) {
    put_str(out_, "caseRef", *case_ref);
  }
  put_str(out_, "legalBasis", consent.value_or(false) ? "consent" : "crime-prevention");
  value handling(rapidjson::kObjectType);
  put_str(handling, "confidentiality", *confidentiality);
  value codes(rapidjson::kArrayType);
  codes.PushBack("H0", a_);
  put(handling, "codes", std::move(codes));
  put(out_, "handling", std::move(handling));
  if (kind_ == "HOTLINE_TIP") {
    // KH-CNP does not evaluate tips: source cannot be assessed, information not corroborated.
    value evaluation(rapidjson::kObjectType);
    put_str(evaluation, "sourceReliability", "X");
    put(evaluation, "informationAccuracy", value(4));
    put(out_, "evaluation", std::move(evaluation));
  }
  if (!unmapped_.ObjectEmpty()) {
    put(out_, "unmapped", std::move(unmapped_));
  }
  put(out_, "body", std::move(body));
}

}  // namespace

decode_result decode_message(std::string_view bytes, const adapter_context& ctx) {
  decode_result result;
  if (auto error = json::parse_untrusted(bytes, result.message)) {
    result.status = 400;
    result.errors.push_back({"", "not acceptable JSON at byte offset " +
                                     std::to_string(error->offset) + ": " + error->reason});
    return result;
  }
  if (!result.message.IsObject()) {
    result.status = 400;
    result.errors.push_back({"", "a KH-CNP message is a JSON object"});
    result.message.SetNull();
    return result;
  }
  const auto format = json::get_string(result.message, "format");
  if (format != format_name) {
    result.status = 400;
    result.errors.push_back(
        {"/format", format.empty() ? "is required: " + std::string(format_name)
                                   : quoted_value(format) + " is not " + std::string(format_name)});
    result.message.SetNull();
    return result;
  }
  if (ctx.tables == nullptr) {
    result.status = 500;
    result.errors.push_back({"", "the gateway's code tables are not loaded"});
    result.message.SetNull();
    return result;
  }
  rapidjson::Document input;
  input.Swap(result.message);  // the KH document; `result.message` becomes the canonical one
  decoder(ctx, result.message, result.errors).run(input);
  if (!result.errors.empty()) {
    result.status = 422;
    result.message.SetNull();
  }
  return result;
}

}  // namespace mxgw::adapters::kh_cnp
