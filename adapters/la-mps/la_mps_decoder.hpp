// LA-MPS-XML/1.3 -> canonical mx/1: the decoder over a parsed document (docs/adapters/la-mps.md).
#pragma once

#include <algorithm>
#include <array>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "gateway/common/json.hpp"

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"
#include "adapters/common/references.hpp"
#include "adapters/la-mps/la_mps_codes.hpp"
#include "adapters/la-mps/la_mps_format.hpp"
#include "adapters/la-mps/la_mps_xml.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::adapters::la_mps {

/// How far from a reference day a decoded date may lie, in whole years either way
/// (docs/adapters/la-mps.md, "Calendars"). Every window is wide enough for any real message and
/// far narrower than the 543 years between the eras, so a year written in the wrong era (a
/// Common-Era year read as Buddhist Era, or the reverse) always falls outside it.
struct date_window {
  int years_before;
  int years_after;
  std::string_view what;  ///< what the date is, for the reason ("date of a sighting")
};

/// The message's own `date`, against the gateway's clock: archived messages may be decades old.
inline constexpr date_window message_date_window{100, 100, "date of sending"};
/// `<Found date>`, `<LastSeen date>`, `<Hotline received>`: something that has happened, so not
/// long after the message (a year of slack) and not centuries before it.
inline constexpr date_window found_window{100, 1, "date of identification"};
inline constexpr date_window last_seen_window{100, 1, "date of a sighting"};
inline constexpr date_window received_window{100, 1, "time a report was received"};
/// `<Warrant issued>`: a warrant decades old is still in force; one issued after the message that
/// carries it is not possible (a year of slack).
inline constexpr date_window issued_window{100, 1, "date of issue of a warrant"};
/// `<Warrant expires>`: long past (the message still names it) or decades ahead.
inline constexpr date_window expires_window{100, 100, "expiry date of a warrant"};
/// `<Questions deadline>`: an answer is wanted soon; a deadline already past is possible.
inline constexpr date_window deadline_window{10, 10, "deadline"};

/// A child element with its XPath-like location.
struct located {
  const xml_element* element;
  std::string path;
};

inline bool is_repeatable(std::string_view name) {
  static constexpr std::array<std::string_view, 9> repeatable{
      "Name",         "Alias", "Nationality", "Document", "Language",
      "Exploitation", "Need",  "Offence",     "Question"};
  return listed(repeatable, name);
}

/// An element name as it may appear in a location: long or odd names are cut short.
inline std::string path_name(std::string_view name) {
  const std::string q = quote(name);
  return q.substr(1, q.size() - 2);
}

/// The child elements of `e` with locations: `[n]` (1-based among same-named siblings) on
/// elements that may repeat, and on a second occurrence of one that may not.
inline std::vector<located> children_of(const xml_element& e, const std::string& path) {
  std::vector<located> out;
  std::map<std::string, int, std::less<>> seen;
  for (const auto& child : e.children) {
    const int n = ++seen[child.name];
    std::string where = path + "/" + path_name(child.name);
    if (is_repeatable(child.name) || n > 1) {
      where += "[" + std::to_string(n) + "]";
    }
    out.push_back({&child, std::move(where)});
  }
  return out;
}

inline const located* find_child(const std::vector<located>& kids, std::string_view name) {
  for (const auto& k : kids) {
    if (k.element->name == name) {
      return &k;
    }
  }
  return nullptr;
}

/// Builds one canonical message from a parsed LA-MPS document, collecting every error.
class decoder {
 public:
  decoder(const adapter_context& ctx, const la_mps_codes& codes, rapidjson::Document& out)
      : ctx_(ctx), codes_(codes), out_(out), a_(out.GetAllocator()) {
    unmapped_.SetObject();
  }

  std::vector<field_error> errors;

  /// Fills `out` from `root` (a <LaoPoliceMessage>); on errors `out` is incomplete.
  void message(const xml_element& root) {
    const std::string path = root_path;
    const auto version = required_attr(root, path, "version");
    if (version && *version != format_version) {
      fail(path + "/@version",
           quote(*version) + " is not a supported version; LA-MPS-XML/" + format_version + " is");
    }
    const auto type_text = required_attr(root, path, "type");
    std::optional<std::string_view> type;
    if (type_text) {
      type = to_canonical(message_types, *type_text);
      if (!type) {
        fail(path + "/@type", quote(*type_text) + " is not in table 'la-mps message type'");
      }
    }
    const auto ref = required_attr(root, path, "ref");
    if (ref) {
      within(*ref, 128, path + "/@ref");
      // A ref the gateway wrote ("<ref>/<id>", the id alone, or a damaged copy of one): the
      // message came from another partner through the gateway, so its warrant is not taken to
      // be Lao (warrant_country).
      gateway_ref_ = read_answered_reference(*ref).kind != reference_kind::foreign;
    }
    const auto created = sent_at(root, path);
    const auto classification = required_attr(root, path, "classification");
    std::optional<std::string> confidentiality;
    if (classification) {
      confidentiality = codes_.from_partner("classification", *classification);
      if (!confidentiality) {
        unknown(path + "/@classification", *classification, "classification", false);
      }
    }
    const auto reply_to = optional_attr(root, "replyTo");
    if (type && !reply_to && (*type == "verification.result" || *type == "receipt")) {
      fail(path + "/@replyTo", "is required on a " + std::string(*type_text) + " message");
    }
    // replyTo: the gateway's id, or the ref the gateway wrote for it ("<ref>/<id>"), is the
    // canonical inReplyTo. Any other reference names no message the gateway can tie it to: the
    // link is left out, the reference kept as the thread (caseRef) and verbatim for an LA-MPS
    // recipient; a receipt, whose body must name a UUID, names a placeholder for it. A damaged
    // gateway reference is refused: accepting it would lose the link without a word.
    std::optional<std::string> in_reply_to;
    std::optional<std::string> receipt_about;
    std::optional<std::string> case_ref;
    if (reply_to) {
      // It answers or updates another message, whose warrant it may carry (warrant_country).
      answers_a_message_ = true;
      const auto answered = read_answered_reference(*reply_to);
      if (answered.kind == reference_kind::gateway_message) {
        in_reply_to = answered.id;
        receipt_about = answered.id;
      } else if (answered.kind == reference_kind::malformed) {
        fail(path + "/@replyTo",
             "is not a reference the gateway wrote: its id part is not a UUID or it holds control "
             "characters (send the ref of the message answered as received)");
      } else {
        within(*reply_to, 128, path + "/@replyTo");
        case_ref = std::string(*reply_to);
        receipt_about = placeholder_id(reply_to_namespace, *reply_to);
        keep(reply_to_key, *reply_to);
      }
    }
    if (!type) {
      return;  // the children cannot be judged without the type
    }
    check_shape(root, path,
                {"version", "type", "ref", "date", "time", "calendar", "classification", "replyTo"},
                children_allowed(*type), false);
    const auto kids = children_of(root, path);
    for (const char* part : {"Sender", "Receiver"}) {
      if (const located* k = find_child(kids, part)) {
        check_shape(*k->element, k->path,
                    std::string_view(part) == "Sender"
                        ? std::vector<std::string_view>{"province", "unit"}
                        : std::vector<std::string_view>{"province"},
                    {}, false);
      }
    }

    json_value body(rapidjson::kObjectType);
    std::string legal_basis = "crime-prevention";
    if (*type == "victim.identification") {
      victim_body(kids, body, legal_basis);
    } else if (*type == "person.wanted") {
      wanted_body(kids, body);
    } else if (*type == "hotline.tip") {
      hotline_body(kids, body);
    } else if (*type == "verification.request") {
      request_body(kids, body);
    } else if (*type == "verification.result") {
      result_body(kids, body);
    } else {
      receipt_body(kids, body, created, receipt_about);
    }
    if (!errors.empty()) {
      return;
    }

    out_.SetObject();
    out_.AddMember("mx", "1", a_);
    out_.AddMember("id", str(derived_message_id(ctx_.message_id_key, ctx_.sender, *ref)), a_);
    out_.AddMember("type", str(*type), a_);
    out_.AddMember("created", str(*created), a_);
    out_.AddMember("sender", str(ctx_.sender), a_);
    out_.AddMember("ref", str(*ref), a_);
    if (in_reply_to) {
      out_.AddMember("inReplyTo", str(*in_reply_to), a_);
    }
    if (case_ref) {
      out_.AddMember("caseRef", str(*case_ref), a_);
    }
    out_.AddMember("legalBasis", str(legal_basis), a_);
    json_value handling(rapidjson::kObjectType);
    handling.AddMember("confidentiality", str(*confidentiality), a_);
    json_value handling_codes(rapidjson::kArrayType);
    handling_codes.PushBack("H0", a_);
    handling.AddMember("codes", handling_codes, a_);
    out_.AddMember("handling", handling, a_);
    if (*type == "hotline.tip") {
      // LA-MPS carries no evaluation; hotline.tip requires one: "cannot be assessed" (X) and
      // the weakest accuracy claim (4).
      json_value evaluation(rapidjson::kObjectType);
      evaluation.AddMember("sourceReliability", "X", a_);
      evaluation.AddMember("informationAccuracy", 4, a_);
      out_.AddMember("evaluation", evaluation, a_);
    }
    if (unmapped_.MemberCount() > 0) {
      out_.AddMember("unmapped", unmapped_, a_);
    }
    out_.AddMember("body", body, a_);
  }

 private:
  // ---- errors and small values ----

  /// Records an error; after max_errors the rest are summarised in one last entry.
  void fail(std::string where, std::string reason) {
    if (errors.size() < max_errors) {
      errors.push_back({std::move(where), std::move(reason)});
    } else if (errors.size() == max_errors) {
      errors.push_back({"", "more errors were found and are not listed"});
    }
  }

  json_value str(std::string_view s) {
    return json_value(mxgw::json::non_null(s), static_cast<rapidjson::SizeType>(s.size()), a_);
  }

  /// Keeps a value the canonical model has no field for under its LA-MPS location.
  void keep(const std::string& where, std::string_view value) {
    if (!unmapped_.HasMember(where.c_str())) {
      unmapped_.AddMember(str(where), str(value), a_);
    }
  }

  /// `value` at `where` is not in `table`: kept in `unmapped` when the partner allows carrying
  /// unmapped values and the field may be left out (`carriable`), else refused.
  void unknown(const std::string& where, std::string_view value, std::string_view table,
               bool carriable) {
    if (carriable && ctx_.carry_unmapped) {
      keep(where, value);
      return;
    }
    fail(where, quote(value) + " is not in table '" + std::string(table) + "'");
  }

  bool within(std::string_view value, std::size_t max_chars, const std::string& where) {
    if (length_of(value) > max_chars) {
      fail(where, "is longer than " + std::to_string(max_chars) + " characters");
      return false;
    }
    return true;
  }

  void add_unique(json_value& array, std::string_view value) {
    for (const auto& v : array.GetArray()) {
      if (v.IsString() && std::string_view(v.GetString(), v.GetStringLength()) == value) {
        return;
      }
    }
    array.PushBack(str(value), a_);
  }

  // ---- shape of an element ----

  /// Refuses attributes and child elements LA-MPS does not define at this place, a second
  /// occurrence of a child that may occur once, and text in an element that has none.
  void check_shape(const xml_element& e, const std::string& path,
                   const std::vector<std::string_view>& attributes,
                   const std::vector<std::string_view>& children, bool has_text) {
    for (const auto& [name, value] : e.attributes) {
      if (std::find(attributes.begin(), attributes.end(), name) == attributes.end()) {
        fail(path + "/@" + path_name(name),
             "is not an attribute of <" + path_name(e.name) + "> in LA-MPS-XML/1.3");
      }
    }
    std::map<std::string, int, std::less<>> seen;
    for (const auto& k : children_of(e, path)) {
      const std::string& name = k.element->name;
      if (std::find(children.begin(), children.end(), name) == children.end()) {
        fail(k.path, "is not an element LA-MPS-XML/1.3 allows here");
      } else if (++seen[name] > 1 && !is_repeatable(name)) {
        fail(k.path, "may appear only once");
      }
    }
    if (!has_text && !is_blank(e.text)) {
      fail(path, "holds text where LA-MPS-XML/1.3 has none");
    }
  }

  static std::vector<std::string_view> children_allowed(std::string_view type) {
    if (type == "victim.identification") {
      return {"Sender", "Receiver", "Person", "Victim", "Narrative"};
    }
    if (type == "person.wanted") {
      return {"Sender", "Receiver", "Person", "Warrant", "Narrative"};
    }
    if (type == "hotline.tip") {
      return {"Sender", "Receiver", "Person", "Hotline", "Narrative"};
    }
    if (type == "verification.request") {
      return {"Sender", "Receiver", "Person", "Questions", "Narrative"};
    }
    if (type == "verification.result") {
      return {"Sender", "Receiver", "Person", "Answer", "Narrative"};
    }
    return {"Sender", "Receiver", "Receipt", "Narrative"};
  }

  // ---- attributes and values ----

  /// Attribute `name`, trimmed; nullopt when absent or empty.
  std::optional<std::string> optional_attr(const xml_element& e, std::string_view name) {
    const std::string* value = e.attribute(name);
    if (value == nullptr) {
      return std::nullopt;
    }
    std::string t = trimmed(*value);
    if (t.empty()) {
      return std::nullopt;
    }
    return t;
  }

  /// Attribute `name` as written (not trimmed); nullopt when absent or blank.
  static std::optional<std::string> verbatim(const xml_element& e, std::string_view name) {
    const std::string* value = e.attribute(name);
    if (value == nullptr || is_blank(*value)) {
      return std::nullopt;
    }
    return *value;
  }

  std::optional<std::string> required_attr(const xml_element& e, const std::string& path,
                                           std::string_view name) {
    auto value = optional_attr(e, name);
    if (!value) {
      fail(path + "/@" + std::string(name), "is required");
    }
    return value;
  }

  std::optional<bool> boolean(const xml_element& e, const std::string& path,
                              std::string_view name) {
    const auto value = optional_attr(e, name);
    if (!value) {
      return std::nullopt;
    }
    if (*value == "true" || *value == "1") {
      return true;
    }
    if (*value == "false" || *value == "0") {
      return false;
    }
    fail(path + "/@" + std::string(name), quote(*value) + " is not true or false");
    return std::nullopt;
  }

  /// A whole number in [min, max]. The error names the place, not the value (an <Age> is
  /// personal data).
  std::optional<int> integer(std::string_view text, int min, int max, const std::string& where) {
    if (text.empty() || text.size() > 4 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      fail(where, "is not a whole number");
      return std::nullopt;
    }
    const int value = std::stoi(std::string(text));
    if (value < min || value > max) {
      fail(where, "is not between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    return value;
  }

  /// The calendar of the dates on `e`: its own `calendar` attribute, else the root's (which is
  /// BE unless the root says calendar="CE"). nullopt (and an error) when the value is neither.
  std::optional<era> calendar(const xml_element& e, const std::string& path) {
    const auto value = optional_attr(e, "calendar");
    if (!value) {
      return root_calendar_;
    }
    if (*value == "BE") {
      return era::buddhist;
    }
    if (*value == "CE") {
      return era::common;
    }
    fail(path + "/@calendar", quote(*value) + " is not BE or CE");
    return std::nullopt;
  }

  /// A DD/MM/YYYY date as a canonical partial date. The error names the place and the reason,
  /// never the date (a date of birth is personal data).
  std::optional<std::string> partial_date(std::string_view text, std::optional<era> cal,
                                          const std::string& where) {
    if (!cal) {
      return std::nullopt;
    }
    std::string error;
    auto value = dmy_to_partial(text, *cal, error);
    if (!value) {
      fail(where, error);
    }
    return value;
  }

  /// `created` from the root's date and time (local UTC+07:00) as RFC 3339 UTC; the root's
  /// calendar becomes the default of every date in the document, and its day (in Laos) is kept
  /// to judge dates of birth.
  std::optional<std::string> sent_at(const xml_element& root, const std::string& path) {
    root_calendar_ = calendar(root, path);
    const auto date = required_attr(root, path, "date");
    const auto time = required_attr(root, path, "time");
    const auto cal = root_calendar_;
    if (!date || !time || !cal) {
      return std::nullopt;
    }
    const auto day = partial_date(*date, cal, path + "/@date");
    if (!day) {
      return std::nullopt;
    }
    if (day->size() != 10) {
      fail(path + "/@date", "needs a day and a month");
      return std::nullopt;
    }
    // A year in the wrong era is 543 years off, past what the clock can hold (2262) or read as
    // a time of day: named here at @date, with the calendar it was read in.
    const std::string today = format_rfc3339_ms(ctx_.now).substr(0, 10);
    if (!within_window(*day, today, *cal, path + "/@date", message_date_window,
                       "the gateway's clock")) {
      return std::nullopt;
    }
    if (time->size() != 5 || (*time)[2] != ':') {
      fail(path + "/@time", "is not HH:MM");
      return std::nullopt;
    }
    std::string error;
    auto utc = local_to_utc(*date + " " + *time + " +07:00", *cal, error);
    if (!utc) {
      fail(path + "/@time", "is not a real time of day");
      return utc;
    }
    message_day_ = *day;
    return utc;
  }

  /// Refuses a decoded date of birth no one alive can have: before 1900 (most likely a
  /// Common-Era year read as Buddhist Era, 543 years early), or after the day the message was
  /// sent (most likely a Buddhist-Era year marked calendar="CE"). The error never holds the date.
  void plausible_birth_date(const std::string& birth, era cal, const std::string& where) {
    if (birth.compare(0, 4, "1900") < 0) {
      fail(where, cal == era::buddhist
                      ? "is before 1900 once read as a Buddhist-Era year: it looks like a "
                        "Common-Era year written without calendar=\"CE\""
                      : "is before 1900, not a plausible date of birth");
    } else if (!message_day_.empty() && birth > message_day_.substr(0, birth.size())) {
      fail(where, cal == era::common
                      ? "is after the message's date: it looks like a Buddhist-Era year marked "
                        "calendar=\"CE\""
                      : "is after the message's date, not a plausible date of birth");
    }
  }

  /// `day` (YYYY-MM-DD) with its year moved by `years`, for comparing partial dates.
  static std::string shifted_year(const std::string& day, int years) {
    int year = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      year = year * 10 + (day[i] - '0');
    }
    year = std::clamp(year + years, 0, 9999);
    std::string out = std::to_string(year);
    out.insert(0, 4 - out.size(), '0');
    return out + day.substr(4);
  }

  /// Refuses `date` (a canonical partial date read in calendar `cal`) when it lies wholly more
  /// than the window's years before or after `reference` (YYYY-MM-DD, a full date), naming
  /// `reference_name` and, where the calendar explains it, the era mistake. The error never
  /// holds the date. True when the date is within the window.
  bool within_window(const std::string& date, const std::string& reference, era cal,
                     const std::string& where, const date_window& window,
                     std::string_view reference_name) {
    const auto years = [](int n) { return std::to_string(n) + (n == 1 ? " year" : " years"); };
    const std::string earliest = shifted_year(reference, -window.years_before);
    const std::string latest = shifted_year(reference, window.years_after);
    if (date < earliest.substr(0, date.size())) {
      const std::string what =
          "is more than " + years(window.years_before) + " before " + std::string(reference_name);
      fail(where, cal == era::buddhist
                      ? what +
                            " once read as a Buddhist-Era year: it looks like a Common-Era "
                            "year written without calendar=\"CE\""
                      : what + ", not a plausible " + std::string(window.what));
      return false;
    }
    if (date > latest.substr(0, date.size())) {
      const std::string what =
          "is more than " + years(window.years_after) + " after " + std::string(reference_name);
      fail(where, cal == era::common
                      ? what + ": it looks like a Buddhist-Era year marked calendar=\"CE\""
                      : what + ", not a plausible " + std::string(window.what));
      return false;
    }
    return true;
  }

  /// A date of the message's body against the message's own date (its day in Laos). Not
  /// judged when that date could not be read (its own error is reported).
  void plausible_date(const std::string& date, era cal, const std::string& where,
                      const date_window& window) {
    if (!message_day_.empty()) {
      within_window(date, message_day_, cal, where, window, "the message's date");
    }
  }

  /// A province attribute: the canonical region {code}; unknown codes follow the unmapped rule.
  std::optional<json_value> region(const xml_element& e, const std::string& path,
                                   std::string_view attribute, bool required_here) {
    const auto value =
        required_here ? required_attr(e, path, attribute) : optional_attr(e, attribute);
    if (!value) {
      return std::nullopt;
    }
    const std::string code = upper_ascii(*value);
    if (!codes_.has("region", code)) {
      unknown(path + "/@" + std::string(attribute), *value, "region", true);
      return std::nullopt;
    }
    json_value r(rapidjson::kObjectType);
    r.AddMember("code", str(code), a_);
    return r;
  }

  std::optional<std::string> country_alpha3(std::string_view value, const std::string& where) {
    auto code = codes_.from_column("country", "alpha3", value);
    if (!code) {
      unknown(where, value, "country", true);
    }
    return code;
  }

  /// A code held as element text (trimmed), on an element with `attributes`; an empty element
  /// is an error.
  std::optional<std::string> code_text(const xml_element& e, const std::string& path,
                                       const std::vector<std::string_view>& attributes = {}) {
    check_shape(e, path, attributes, {}, true);
    std::string value = trimmed(e.text);
    if (value.empty()) {
      fail(path, "is empty");
      return std::nullopt;
    }
    return value;
  }

  /// Free text as written; nullopt when blank.
  std::optional<std::string> free_text(const xml_element& e, std::size_t max_chars,
                                       const std::string& path) {
    if (is_blank(e.text)) {
      return std::nullopt;
    }
    if (!within(e.text, max_chars, path)) {
      return std::nullopt;
    }
    return e.text;
  }

  // ---- person ----

  json_value name_object(const std::vector<std::string>& family,
                         const std::vector<std::string>& given, std::string_view script,
                         std::string_view kind) {
    json_value n(rapidjson::kObjectType);
    if (!family.empty()) {
      json_value parts(rapidjson::kArrayType);
      for (const auto& p : family) {
        parts.PushBack(str(p), a_);
      }
      n.AddMember("family", parts, a_);
    }
    if (!given.empty()) {
      json_value parts(rapidjson::kArrayType);
      for (const auto& p : given) {
        parts.PushBack(str(p), a_);
      }
      n.AddMember("given", parts, a_);
    }
    n.AddMember("script", str(script), a_);
    n.AddMember("kind", str(kind), a_);
    return n;
  }

  void name_element(const located& k, json_value& names) {
    const xml_element& e = *k.element;
    check_shape(e, k.path, {"script", "family", "given"}, {}, false);
    const auto script_text = required_attr(e, k.path, "script");
    std::optional<std::string_view> script;
    if (script_text) {
      script = to_canonical(name_scripts, *script_text);
      if (!script) {
        fail(k.path + "/@script", quote(*script_text) + " is not in table 'la-mps name script'");
      }
    }
    const auto family_text = verbatim(e, "family");
    const auto given_text = verbatim(e, "given");
    const auto family = name_parts(family_text.value_or(""));
    const auto given = name_parts(given_text.value_or(""));
    if (family.empty() && given.empty()) {
      fail(k.path, "needs a family or a given name");
      return;
    }
    bool ok = true;
    for (const auto& [parts, attribute] :
         {std::pair{&family, "family"}, std::pair{&given, "given"}}) {
      if (parts->size() > 10) {
        fail(k.path + "/@" + attribute, "has more than 10 parts");
        ok = false;
      }
      for (const auto& p : *parts) {
        ok = within(p, 256, k.path + "/@" + attribute) && ok;
      }
    }
    if (ok && script) {
      names.PushBack(name_object(family, given, *script, "primary"), a_);
    }
  }

  /// The canonical person of a <Person>; `role` receives its role attribute.
  json_value person(const located& k, std::optional<std::string_view>& role) {
    const xml_element& e = *k.element;
    const std::string& path = k.path;
    check_shape(e, path, {"role"},
                {"Name", "Alias", "Gender", "BirthDate", "Age", "Nationality", "Document", "Home",
                 "Language"},
                false);
    const auto role_text = required_attr(e, path, "role");
    if (role_text) {
      role = to_canonical(subject_roles, *role_text);
      if (!role) {
        fail(path + "/@role", quote(*role_text) + " is not in table 'la-mps person role'");
      }
    }
    json_value p(rapidjson::kObjectType);
    json_value names(rapidjson::kArrayType);
    json_value nationalities(rapidjson::kArrayType);
    json_value documents(rapidjson::kArrayType);
    json_value languages(rapidjson::kArrayType);
    std::optional<std::string> sex;
    std::optional<std::string> birth_date;
    std::optional<bool> birth_approx;
    std::optional<int> age;
    std::optional<json_value> home;
    for (const auto& child : children_of(e, path)) {
      const xml_element& c = *child.element;
      const std::string& where = child.path;
      if (c.name == "Name") {
        name_element(child, names);
      } else if (c.name == "Alias") {
        check_shape(c, where, {}, {}, true);
        const std::string alias = trimmed(c.text);
        if (alias.empty()) {
          fail(where, "is empty");
        } else if (within(alias, 256, where)) {
          names.PushBack(name_object({}, {alias}, alias_script(alias), "alias"), a_);
        }
      } else if (c.name == "Gender") {
        if (const auto v = code_text(c, where)) {
          sex = codes_.from_partner("sex", *v);
          if (!sex) {
            unknown(where, *v, "sex", true);
          }
        }
      } else if (c.name == "BirthDate") {
        check_shape(c, where, {"calendar", "approx"}, {}, true);
        const auto cal = calendar(c, where);
        birth_approx = boolean(c, where, "approx");
        const std::string text = trimmed(c.text);
        if (text.empty()) {
          fail(where, "is empty");
        } else {
          birth_date = partial_date(text, cal, where);
          if (birth_date) {
            plausible_birth_date(*birth_date, *cal, where);
          }
        }
      } else if (c.name == "Age") {
        boolean(c, where, "estimated");
        if (const auto v = code_text(c, where, {"estimated"})) {
          age = integer(*v, 0, 130, where);
        }
      } else if (c.name == "Nationality") {
        if (const auto v = code_text(c, where)) {
          if (const auto code = country_alpha3(*v, where)) {
            add_unique(nationalities, *code);
          }
        }
      } else if (c.name == "Document") {
        documents_element(child, documents);
      } else if (c.name == "Home") {
        check_shape(c, where, {"province", "village"}, {}, false);
        home = region(c, where, "province", true);
        if (const auto village = verbatim(c, "village")) {
          keep(where + "/@village", *village);
        }
      } else if (c.name == "Language") {
        if (const auto v = code_text(c, where)) {
          const auto code = codes_.from_column("language", "iso639_1", *v);
          if (code) {
            add_unique(languages, *code);
          } else {
            unknown(where, *v, "language", true);
          }
        }
      }
    }
    if (names.Empty()) {
      fail(path, "needs at least one <Name> or <Alias>");
    }
    const std::pair<json_value*, std::pair<const char*, rapidjson::SizeType>> limits[] = {
        {&names, {"<Name> and <Alias>", 50}},
        {&nationalities, {"<Nationality>", 10}},
        {&documents, {"<Document>", 20}},
        {&languages, {"<Language>", 20}},
    };
    for (const auto& [array, limit] : limits) {
      if (array->Size() > limit.second) {
        fail(path,
             "has more than " + std::to_string(limit.second) + " " + limit.first + " elements");
      }
    }
    // The order of the <Name>s is the person's naming custom (la_mps_format.hpp, name_order);
    // aliases are one whole part and have none.
    std::vector<std::string> countries;
    for (const auto& c : nationalities.GetArray()) {
      countries.emplace_back(c.GetString(), c.GetStringLength());
    }
    bool lao_script_name = false;
    for (const auto& n : names.GetArray()) {
      lao_script_name = lao_script_name || (std::string_view(n["kind"].GetString()) == "primary" &&
                                            std::string_view(n["script"].GetString()) == "Laoo");
    }
    if (const auto order = name_order(countries, lao_script_name)) {
      for (auto& n : names.GetArray()) {
        if (std::string_view(n["kind"].GetString()) == "primary") {
          n.AddMember("order", str(*order), a_);
        }
      }
    }
    p.AddMember("names", names, a_);
    if (sex) {
      p.AddMember("sex", str(*sex), a_);
    }
    if (birth_date) {
      p.AddMember("birthDate", str(*birth_date), a_);
      if (birth_approx) {
        p.AddMember("birthDateApprox", *birth_approx, a_);
      }
    }
    if (age) {
      json_value estimate(rapidjson::kObjectType);
      estimate.AddMember("min", *age, a_);
      estimate.AddMember("max", *age, a_);
      p.AddMember("ageEstimate", estimate, a_);
    }
    if (!nationalities.Empty()) {
      p.AddMember("nationalities", nationalities, a_);
    }
    if (!documents.Empty()) {
      p.AddMember("documents", documents, a_);
    }
    if (home) {
      p.AddMember("homeRegion", *home, a_);
    }
    if (!languages.Empty()) {
      p.AddMember("languages", languages, a_);
    }
    return p;
  }

  void documents_element(const located& k, json_value& documents) {
    const xml_element& e = *k.element;
    check_shape(e, k.path, {"type", "issuer"}, {}, true);
    json_value d(rapidjson::kObjectType);
    if (const auto type = required_attr(e, k.path, "type")) {
      auto code = codes_.from_partner("document-type", *type);
      if (!code && ctx_.carry_unmapped) {
        // A document of a type LA-MPS added later is still "some other document".
        keep(k.path + "/@type", *type);
        code = "other";
      } else if (!code) {
        unknown(k.path + "/@type", *type, "document-type", false);
        return;
      }
      d.AddMember("type", str(*code), a_);
    } else {
      return;
    }
    const std::string number = trimmed(e.text);
    if (!number.empty() && within(number, 64, k.path)) {
      d.AddMember("number", str(number), a_);
    }
    if (const auto issuer = optional_attr(e, "issuer")) {
      if (const auto code = country_alpha3(*issuer, k.path + "/@issuer")) {
        d.AddMember("issuingCountry", str(*code), a_);
      }
    }
    documents.PushBack(d, a_);
  }

  /// The <Person> a type needs (`needed`), as `member` of the body.
  std::optional<std::string_view> person_member(const std::vector<located>& kids, json_value& body,
                                                const char* member, bool needed,
                                                std::string_view type) {
    std::optional<std::string_view> role;
    const located* k = find_child(kids, "Person");
    if (k == nullptr) {
      if (needed) {
        fail(std::string(root_path) + "/Person",
             "is required in a " + std::string(type) + " message");
      }
      return std::nullopt;
    }
    json_value p = person(*k, role);
    body.AddMember(json_value(member, a_), p, a_);
    return role;
  }

  // ---- narrative ----

  /// The text of a <Narrative> as {text, lang}; nullopt when absent or blank.
  std::optional<json_value> narrative(const std::vector<located>& kids) {
    const located* k = find_child(kids, "Narrative");
    if (k == nullptr) {
      return std::nullopt;
    }
    check_shape(*k->element, k->path, {"lang"}, {}, true);
    const auto text = free_text(*k->element, 20000, k->path);
    if (!text) {
      return std::nullopt;
    }
    json_value n(rapidjson::kObjectType);
    n.AddMember("text", str(*text), a_);
    if (const auto lang = optional_attr(*k->element, "lang")) {
      std::optional<std::string> code;
      if (const auto listed_code = to_canonical(narrative_languages, *lang)) {
        code = std::string(*listed_code);
      } else {
        code = codes_.from_column("language", "iso639_1", *lang);
      }
      if (code) {
        n.AddMember("lang", str(*code), a_);
      } else {
        unknown(k->path + "/@lang", *lang, "language", true);
      }
    }
    return n;
  }

  /// A <Narrative> on a type whose body has no free text: kept in `unmapped`.
  void narrative_unmapped(const std::vector<located>& kids) {
    const located* k = find_child(kids, "Narrative");
    if (k == nullptr) {
      return;
    }
    check_shape(*k->element, k->path, {"lang"}, {}, true);
    if (const auto text = free_text(*k->element, 20000, k->path)) {
      keep(narrative_key, *text);
      if (const auto lang = optional_attr(*k->element, "lang")) {
        keep(narrative_lang_key, *lang);
      }
    }
  }

  // ---- bodies ----

  void victim_body(const std::vector<located>& kids, json_value& body, std::string& legal_basis) {
    const auto role = person_member(kids, body, "person", true, "victim");
    if (role && *role == "suspected-trafficker") {
      fail(find_child(kids, "Person")->path + "/@role",
           "is 'suspect': the person of a victim message is the victim (role 'victim' or "
           "'subject')");
    }
    const located* k = find_child(kids, "Victim");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Victim", "is required in a victim message");
      return;
    }
    const xml_element& v = *k->element;
    check_shape(v, k->path, {"status", "repatriation", "consent", "minors"},
                {"Exploitation", "Found", "Need"}, false);
    if (const auto status = required_attr(v, k->path, "status")) {
      if (const auto code = codes_.from_partner("victim-status", *status)) {
        body.AddMember("status", str(*code), a_);
      } else {
        unknown(k->path + "/@status", *status, "victim-status", false);
      }
    }
    json_value exploitation(rapidjson::kArrayType);
    json_value needs(rapidjson::kArrayType);
    json_value events(rapidjson::kArrayType);
    bool exploitation_sent = false;
    for (const auto& child : children_of(v, k->path)) {
      const xml_element& c = *child.element;
      if (c.name == "Exploitation") {
        exploitation_sent = true;
        if (const auto value = code_text(c, child.path)) {
          if (const auto code = codes_.from_partner("exploitation", *value)) {
            add_unique(exploitation, *code);
          } else {
            unknown(child.path, *value, "exploitation", true);
          }
        }
      } else if (c.name == "Need") {
        if (const auto value = code_text(c, child.path)) {
          if (const auto code = codes_.from_partner("needs", *value)) {
            add_unique(needs, *code);
          } else {
            unknown(child.path, *value, "needs", true);
          }
        }
      } else if (c.name == "Found") {
        check_shape(c, child.path, {"province", "date", "calendar"}, {}, true);
        json_value event(rapidjson::kObjectType);
        event.AddMember("type", "identification", a_);
        const auto cal = calendar(c, child.path);
        if (const auto date = optional_attr(c, "date")) {
          if (const auto d = partial_date(*date, cal, child.path + "/@date")) {
            plausible_date(*d, *cal, child.path + "/@date", found_window);
            event.AddMember("date", str(*d), a_);
          }
        }
        json_value place(rapidjson::kObjectType);
        if (auto r = region(c, child.path, "province", false)) {
          place.AddMember("region", *r, a_);
        }
        if (const auto text = free_text(c, 2000, child.path)) {
          place.AddMember("detail", str(*text), a_);
        }
        if (place.MemberCount() > 0) {
          event.AddMember("place", place, a_);
        }
        events.PushBack(event, a_);
      }
    }
    // LA-MPS requires one or more (an unknown one carried in `unmapped` still counts: it was
    // sent); the format has no "unknown", so a victim without one is not LA-MPS.
    if (!exploitation_sent) {
      fail(k->path, "needs at least one <Exploitation> (LA-MPS-XML/1.3 requires one or more)");
    }
    if (!exploitation.Empty()) {
      body.AddMember("exploitation", exploitation, a_);
    }
    if (!events.Empty()) {
      body.AddMember("events", events, a_);
    }
    if (const auto minors = optional_attr(v, "minors")) {
      if (const auto n = integer(*minors, 0, 100, k->path + "/@minors")) {
        body.AddMember("accompanyingMinors", *n, a_);
      }
    }
    if (!needs.Empty()) {
      body.AddMember("needs", needs, a_);
    }
    if (const auto repatriation = boolean(v, k->path, "repatriation")) {
      body.AddMember("repatriationRequested", *repatriation, a_);
    }
    if (const auto consent = boolean(v, k->path, "consent")) {
      json_value c(rapidjson::kObjectType);
      c.AddMember("given", *consent, a_);
      if (*consent) {
        json_value scope(rapidjson::kArrayType);
        scope.PushBack("victim-protection", a_);
        scope.PushBack("repatriation", a_);
        c.AddMember("scope", scope, a_);
        legal_basis = "consent";
      }
      body.AddMember("consent", c, a_);
    }
    if (auto n = narrative(kids)) {
      body.AddMember("narrative", *n, a_);
    }
  }

  /// The issuing country of a warrant, which LA-MPS has no field for (docs/adapters/la-mps.md,
  /// "A warrant's issuing country"). The country its `authority` names ("... (issuing country:
  /// VNM)"); else, for an office's own message, the country of <Sender province>, else Laos (a
  /// Lao police message carries Lao warrants). Anything else would be a guess, so nullopt with an
  /// error at the warrant when the message came through the gateway (a ref the gateway wrote) or
  /// answers or updates another message (replyTo: the warrant may be that message's, e.g. a
  /// Vietnamese one the gateway sent), whatever its <Sender> (the sender, not the issuer); and at
  /// the authority when it names an unknown country, more than one, or not at its end.
  std::optional<std::string> warrant_country(
      const std::vector<located>& kids, const std::string& warrant_path,
      const std::optional<issuing_country_marks>& authority) {
    static constexpr const char* say_it =
        "; <Warrant authority> names the issuing country at its end: '(issuing country: "
        "<alpha-3>)', e.g. '(issuing country: LAO)' for a Lao court's warrant";
    if (authority) {
      auto marked = country_of_marks(*authority, authority_field, [this](std::string_view alpha3) {
        return codes_.from_column("country", "alpha3", alpha3);
      });
      if (marked.refusal) {
        fail(warrant_path + "/@authority", *marked.refusal);
        return std::nullopt;
      }
      if (marked.country) {
        return marked.country;
      }
    }
    if (gateway_ref_) {
      fail(warrant_path,
           std::string("has no issuing country: LA-MPS has no field for it, and this message's "
                       "ref is one the gateway wrote, so the warrant came from another partner "
                       "through the gateway and is not taken to be Lao, nor its <Sender>'s") +
               say_it);
      return std::nullopt;
    }
    if (answers_a_message_) {
      fail(warrant_path,
           std::string("has no issuing country: this message answers or updates another "
                       "(replyTo), whose warrant may be another country's, so it is not taken to "
                       "be Lao, nor its <Sender>'s") +
               say_it);
      return std::nullopt;
    }
    if (const located* sender = find_child(kids, "Sender")) {
      if (const auto province = optional_attr(*sender->element, "province")) {
        const std::string country = upper_ascii(province->substr(0, 2));
        if (province->size() > 3 && (*province)[2] == '-' && codes_.has("country", country)) {
          return country;
        }
      }
    }
    return "LA";
  }

  void wanted_body(const std::vector<located>& kids, json_value& body) {
    const auto role = person_member(kids, body, "person", true, "wanted");
    if (role && *role != "suspected-trafficker") {
      fail(find_child(kids, "Person")->path + "/@role",
           "must be 'suspect': the person of a wanted message is the one the warrant is for");
    }
    narrative_unmapped(kids);
    const located* k = find_child(kids, "Warrant");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Warrant", "is required in a wanted message");
      return;
    }
    const xml_element& w = *k->element;
    const std::string& path = k->path;
    check_shape(w, path, {"number", "authority", "issued", "expires", "calendar", "dangerous"},
                {"Offence", "LastSeen"}, false);
    // The authority, and the issuing country it may name at its end.
    std::optional<std::string> authority_text;
    if (auto authority = required_attr(w, path, "authority");
        authority && within(*authority, max_authority_chars, path + "/@authority")) {
      authority_text = std::move(authority);
    }
    std::optional<issuing_country_marks> authority;
    if (authority_text) {
      authority = read_issuing_country_marks(*authority_text, authority_field);
    }
    const auto country = warrant_country(kids, path, authority);
    json_value warrant(rapidjson::kObjectType);
    if (const auto number = required_attr(w, path, "number");
        number && within(*number, 128, path + "/@number")) {
      warrant.AddMember("number", str(*number), a_);
    }
    if (country) {
      warrant.AddMember("issuingCountry", str(*country), a_);
    }
    if (authority && !authority->authority.empty()) {
      warrant.AddMember("issuingAuthority", str(authority->authority), a_);
    } else if (authority && country) {
      fail(path + "/@authority",
           "names the issuing country but not the issuing authority, which LA-MPS requires: "
           "'<authority> (issuing country: <alpha-3>)'");
    }
    const auto cal = calendar(w, path);
    if (const auto issued = required_attr(w, path, "issued")) {
      if (const auto d = partial_date(*issued, cal, path + "/@issued")) {
        plausible_date(*d, *cal, path + "/@issued", issued_window);
        warrant.AddMember("issued", str(*d), a_);
      }
    }
    if (const auto expires = optional_attr(w, "expires")) {
      if (const auto d = partial_date(*expires, cal, path + "/@expires")) {
        plausible_date(*d, *cal, path + "/@expires", expires_window);
        warrant.AddMember("expires", str(*d), a_);
      }
    }
    const auto dangerous = boolean(w, path, "dangerous");
    json_value charges(rapidjson::kArrayType);
    std::optional<json_value> last_seen;
    for (const auto& child : children_of(w, path)) {
      const xml_element& c = *child.element;
      if (c.name == "Offence") {
        check_shape(c, child.path, {"code"}, {}, true);
        const auto text = free_text(c, 20000, child.path);
        if (!text) {
          fail(child.path, "needs the text of the offence");
          continue;
        }
        json_value charge(rapidjson::kObjectType);
        charge.AddMember("text", str(*text), a_);
        if (const auto code = optional_attr(c, "code");
            code && within(*code, 128, child.path + "/@code")) {
          json_value statute(rapidjson::kObjectType);
          if (country) {
            statute.AddMember("jurisdiction", str(*country), a_);
            statute.AddMember("code", str(*code), a_);
            charge.AddMember("statute", statute, a_);
          }
        }
        charges.PushBack(charge, a_);
      } else if (c.name == "LastSeen") {
        check_shape(c, child.path, {"province", "date", "calendar"}, {}, true);
        json_value sighting(rapidjson::kObjectType);
        if (auto r = region(c, child.path, "province", false)) {
          sighting.AddMember("region", *r, a_);
        }
        if (const auto text = free_text(c, 2000, child.path)) {
          sighting.AddMember("detail", str(*text), a_);
        }
        if (sighting.MemberCount() == 0) {
          if (c.attribute("province") == nullptr) {
            fail(child.path, "needs a province or a place text");
          }
          continue;
        }
        const auto seen_cal = calendar(c, child.path);
        if (const auto date = optional_attr(c, "date")) {
          if (const auto d = partial_date(*date, seen_cal, child.path + "/@date")) {
            plausible_date(*d, *seen_cal, child.path + "/@date", last_seen_window);
            sighting.AddMember("date", str(*d), a_);
          }
        }
        last_seen = std::move(sighting);
      }
    }
    if (charges.Empty()) {
      fail(path, "needs at least one <Offence>");
    } else if (charges.Size() > 50) {
      fail(path, "has more than 50 <Offence> elements");
    }
    warrant.AddMember("charges", charges, a_);
    json_value warrants(rapidjson::kArrayType);
    warrants.PushBack(warrant, a_);
    body.AddMember("warrants", warrants, a_);
    body.AddMember("requestedAction", "locate-and-arrest", a_);
    if (dangerous && *dangerous) {
      json_value warnings(rapidjson::kArrayType);
      warnings.PushBack("violent", a_);
      body.AddMember("warnings", warnings, a_);
    }
    if (last_seen) {
      body.AddMember("lastSeen", *last_seen, a_);
    }
  }

  void hotline_body(const std::vector<located>& kids, json_value& body) {
    const located* k = find_child(kids, "Hotline");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Hotline", "is required in a hotline message");
      return;
    }
    const xml_element& h = *k->element;
    const std::string& path = k->path;
    check_shape(h, path, {"line", "received", "calendar", "anonymous", "urgency", "province"}, {},
                true);
    const auto cal = calendar(h, path);
    if (const auto received = required_attr(h, path, "received"); received && cal) {
      std::string error;
      std::optional<std::string> utc;
      std::optional<std::string> day;
      if (received->size() == 16 && (*received)[10] == ' ') {
        day = dmy_to_partial(received->substr(0, 10), *cal, error);
      }
      // The day first: a year in the wrong era is refused with the calendar named, not as a
      // time that cannot be read.
      if (day && day->size() == 10) {
        if (message_day_.empty() || within_window(*day, message_day_, *cal, path + "/@received",
                                                  received_window, "the message's date")) {
          utc = local_to_utc(*received + " +07:00", *cal, error);
          if (!utc) {
            fail(path + "/@received", "is not a real DD/MM/YYYY HH:MM time");
          }
        }
      } else {
        fail(path + "/@received", "is not a real DD/MM/YYYY HH:MM time");
      }
      if (utc) {
        body.AddMember("receivedAt", str(*utc), a_);
      }
    }
    if (const auto line = required_attr(h, path, "line")) {
      if (const auto code = codes_.from_partner("hotline-channel", *line)) {
        body.AddMember("channel", str(*code), a_);
      } else {
        unknown(path + "/@line", *line, "hotline-channel", false);
      }
    }
    if (const auto anonymous = boolean(h, path, "anonymous"); anonymous && *anonymous) {
      body.AddMember("reporterType", "anonymous", a_);
    }
    if (const auto urgency = required_attr(h, path, "urgency")) {
      if (listed(urgencies, *urgency)) {
        body.AddMember("urgency", str(*urgency), a_);
      } else {
        fail(path + "/@urgency", quote(*urgency) + " is not one of " + joined(urgencies));
      }
    }
    json_value subject(rapidjson::kObjectType);
    const auto role = person_member(kids, subject, "person", false, "hotline");
    if (role) {
      subject.AddMember("role", str(*role), a_);
      json_value subjects(rapidjson::kArrayType);
      subjects.PushBack(subject, a_);
      body.AddMember("subjects", subjects, a_);
    }
    if (auto r = region(h, path, "province", false)) {
      json_value place(rapidjson::kObjectType);
      place.AddMember("region", *r, a_);
      json_value places(rapidjson::kArrayType);
      places.PushBack(place, a_);
      body.AddMember("places", places, a_);
    }
    const auto text = free_text(h, 20000, path);
    if (!text) {
      fail(path, "needs the text of what was reported");
      return;
    }
    json_value summary(rapidjson::kObjectType);
    summary.AddMember("text", str(*text), a_);
    if (auto n = narrative(kids)) {
      json_value translations(rapidjson::kArrayType);
      translations.PushBack(*n, a_);
      summary.AddMember("translations", translations, a_);
    }
    body.AddMember("summary", summary, a_);
  }

  void request_body(const std::vector<located>& kids, json_value& body) {
    person_member(kids, body, "subject", true, "verify-request");
    narrative_unmapped(kids);
    const located* k = find_child(kids, "Questions");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Questions", "is required in a verify-request message");
      return;
    }
    const xml_element& q = *k->element;
    check_shape(q, k->path, {"purpose", "deadline", "calendar", "urgency"}, {"Question"}, false);
    if (const auto purpose = required_attr(q, k->path, "purpose")) {
      if (listed(verification_purposes, *purpose)) {
        body.AddMember("purpose", str(*purpose), a_);
      } else {
        fail(k->path + "/@purpose",
             quote(*purpose) + " is not one of " + joined(verification_purposes));
      }
    }
    json_value questions(rapidjson::kArrayType);
    for (const auto& child : children_of(q, k->path)) {
      check_shape(*child.element, child.path, {}, {}, true);
      if (const auto text = free_text(*child.element, 2000, child.path)) {
        questions.PushBack(str(*text), a_);
      } else {
        fail(child.path, "is empty");
      }
    }
    if (questions.Size() > 20) {
      fail(k->path, "has more than 20 <Question> elements");
    }
    if (!questions.Empty()) {
      body.AddMember("questions", questions, a_);
    }
    const auto cal = calendar(q, k->path);
    if (const auto deadline = optional_attr(q, "deadline")) {
      if (const auto d = partial_date(*deadline, cal, k->path + "/@deadline")) {
        if (d->size() == 10) {
          plausible_date(*d, *cal, k->path + "/@deadline", deadline_window);
          body.AddMember("deadline", str(*d), a_);
        } else {
          fail(k->path + "/@deadline", "needs a day and a month");
        }
      }
    }
    if (const auto urgency = optional_attr(q, "urgency")) {
      if (listed(urgencies, *urgency)) {
        body.AddMember("urgency", str(*urgency), a_);
      } else {
        fail(k->path + "/@urgency", quote(*urgency) + " is not one of " + joined(urgencies));
      }
    }
  }

  void result_body(const std::vector<located>& kids, json_value& body) {
    const located* k = find_child(kids, "Answer");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Answer", "is required in a verify-reply message");
      return;
    }
    check_shape(*k->element, k->path, {"result"}, {}, true);
    if (const auto result = required_attr(*k->element, k->path, "result")) {
      if (listed(answer_results, *result)) {
        body.AddMember("result", str(*result), a_);
      } else {
        fail(k->path + "/@result", quote(*result) + " is not one of " + joined(answer_results));
      }
    }
    person_member(kids, body, "matched", false, "verify-reply");
    auto n = narrative(kids);
    if (const auto answer = free_text(*k->element, 20000, k->path)) {
      json_value notes(rapidjson::kObjectType);
      notes.AddMember("text", str(*answer), a_);
      if (n) {
        json_value translations(rapidjson::kArrayType);
        translations.PushBack(*n, a_);
        notes.AddMember("translations", translations, a_);
      }
      body.AddMember("notes", notes, a_);
    } else if (n) {
      body.AddMember("notes", *n, a_);
    }
  }

  void receipt_body(const std::vector<located>& kids, json_value& body,
                    const std::optional<std::string>& created,
                    const std::optional<std::string>& in_reply_to) {
    narrative_unmapped(kids);
    const located* k = find_child(kids, "Receipt");
    if (k == nullptr) {
      fail(std::string(root_path) + "/Receipt", "is required in a receipt message");
      return;
    }
    check_shape(*k->element, k->path, {"status"}, {}, true);
    if (in_reply_to) {
      body.AddMember("inReplyTo", str(*in_reply_to), a_);
    }
    const auto status = required_attr(*k->element, k->path, "status");
    if (status && !listed(receipt_statuses, *status)) {
      fail(k->path + "/@status", quote(*status) + " is not one of " + joined(receipt_statuses));
      return;
    }
    if (!status) {
      return;
    }
    body.AddMember("status", str(*status), a_);
    if (created) {
      body.AddMember("received", str(*created), a_);
    }
    const auto reason = free_text(*k->element, 2000, k->path);
    if (*status == "rejected") {
      json_value error(rapidjson::kObjectType);
      error.AddMember("reason", str(reason.value_or("no reason given")), a_);
      json_value errors_array(rapidjson::kArrayType);
      errors_array.PushBack(error, a_);
      body.AddMember("errors", errors_array, a_);
    } else if (reason) {
      keep(receipt_text_key, *reason);
    }
  }

  const adapter_context& ctx_;
  const la_mps_codes& codes_;
  rapidjson::Document& out_;
  json_allocator& a_;
  json_value unmapped_;
  // The root's calendar, the default of every date element without its own (BE unless the
  // root says otherwise; nullopt when the root's value is neither BE nor CE).
  std::optional<era> root_calendar_ = era::buddhist;
  // The day the message was sent, in Laos, as YYYY-MM-DD; empty until known.
  std::string message_day_;
  // What says whether the message's warrant may be taken to be Lao (warrant_country): its ref
  // is one the gateway wrote (the message came through the gateway);
  bool gateway_ref_ = false;
  // it has a replyTo: it answers or updates another message, whose warrant it may carry.
  bool answers_a_message_ = false;
};

}  // namespace mxgw::adapters::la_mps
