// Canonical mx/1 -> KH-CNP-XCHG/2 JSON; every choice is explained in docs/adapters/kh-cnp.md.
#include <algorithm>

#include "adapters/common/dates.hpp"
#include "adapters/common/references.hpp"
#include "adapters/kh-cnp/kh_cnp.hpp"
#include "gateway/common/json.hpp"

namespace mxgw::adapters::kh_cnp {
namespace {

using value = rapidjson::Value;

/// Canonical codes that have no KH-CNP code of their own and go as the nearest broader one.
struct generalisation {
  std::string_view table;
  std::string_view canonical;
  std::string_view kh;
};
constexpr generalisation generalisations[] = {
    {"exploitation", "child-labour", "FORCED_LABOUR"},
    {"exploitation", "servitude", "OTHER"},
    {"document-type", "citizen-id", "NID"},
    {"document-type", "border-pass", "OTHER"},
    {"document-type", "residence-permit", "OTHER"},
    {"document-type", "work-permit", "OTHER"},
    {"hotline-channel", "hotline-111", "PROVINCE"},
    {"hotline-channel", "hotline-1300", "PROVINCE"},
    {"hotline-channel", "zalo", "WEB"},
    {"hotline-channel", "facebook", "WEB"},
};

std::string_view view_of(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// The member `name` when it is present and of the wanted kind, else nullptr.
const value* object_at(const value& parent, const char* name) {
  if (!parent.IsObject()) {
    return nullptr;
  }
  auto it = parent.FindMember(name);
  return it != parent.MemberEnd() && it->value.IsObject() ? &it->value : nullptr;
}

const value* array_at(const value& parent, const char* name) {
  if (!parent.IsObject()) {
    return nullptr;
  }
  auto it = parent.FindMember(name);
  return it != parent.MemberEnd() && it->value.IsArray() ? &it->value : nullptr;
}

std::string_view string_at(const value& parent, const char* name) {
  return json::get_string(parent, name);
}

std::optional<bool> bool_at(const value& parent, const char* name) {
  if (!parent.IsObject()) {
    return std::nullopt;
  }
  auto it = parent.FindMember(name);
  if (it == parent.MemberEnd() || !it->value.IsBool()) {
    return std::nullopt;
  }
  return it->value.GetBool();
}

std::optional<std::int64_t> int_at(const value& parent, const char* name) {
  if (!parent.IsObject()) {
    return std::nullopt;
  }
  auto it = parent.FindMember(name);
  if (it == parent.MemberEnd() || !it->value.IsInt64()) {
    return std::nullopt;
  }
  return it->value.GetInt64();
}

/// The parts of a name array joined with single spaces.
std::string joined(const value* parts) {
  std::string out;
  if (parts == nullptr) {
    return out;
  }
  for (const auto& part : parts->GetArray()) {
    if (part.IsString() && part.GetStringLength() > 0) {
      out += out.empty() ? "" : " ";
      out += view_of(part);
    }
  }
  return out;
}

/// A whole name as one string, in the order it is written.
std::string full_name(const value& name) {
  const std::string family = joined(array_at(name, "family"));
  const std::string given = joined(array_at(name, "given"));
  const bool given_first = string_at(name, "order") == "given-first";
  const std::string& first = given_first ? given : family;
  const std::string& second = given_first ? family : given;
  return first.empty() ? second : second.empty() ? first : first + " " + second;
}

/// Offset in minutes of an RFC 3339 time ("+07:00" -> 420); `fallback` for "Z" or unreadable.
int offset_minutes(std::string_view rfc3339, int fallback) {
  if (rfc3339.size() < 6) {
    return fallback;
  }
  const std::string_view tail = rfc3339.substr(rfc3339.size() - 6);
  if ((tail[0] != '+' && tail[0] != '-') || tail[3] != ':') {
    return fallback;
  }
  const auto digit = [&](std::size_t i) { return tail[i] - '0'; };
  const int minutes = (digit(1) * 10 + digit(2)) * 60 + digit(4) * 10 + digit(5);
  return tail[0] == '-' ? -minutes : minutes;
}

/// A canonical text split into what KH-CNP's *_kh and *_en fields can hold: the Khmer version
/// (lang khm, or no lang and Khmer script) and an English one (lang eng; else the text as the
/// source wrote it, whatever its language: KH-CNP has no other field for it).
struct kh_texts {
  std::optional<std::string> kh;
  std::optional<std::string> en;
};

kh_texts split_text(const value& text, const char* translation_member) {
  struct candidate {
    std::string_view text;
    std::string_view lang;
  };
  std::vector<candidate> candidates;
  if (!string_at(text, "text").empty()) {
    candidates.push_back({string_at(text, "text"), string_at(text, "lang")});
  }
  if (const value* one = object_at(text, translation_member)) {
    candidates.push_back({string_at(*one, "text"), string_at(*one, "lang")});
  } else if (const value* list = array_at(text, translation_member)) {
    for (const auto& t : list->GetArray()) {
      candidates.push_back({string_at(t, "text"), string_at(t, "lang")});
    }
  }
  kh_texts out;
  std::size_t kh_index = candidates.size();
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (!c.text.empty() &&
        (c.lang == "khm" || (c.lang.empty() && detect_script(c.text) == "Khmr"))) {
      out.kh = std::string(c.text);
      kh_index = i;
      break;
    }
  }
  for (const auto& c : candidates) {
    if (!c.text.empty() && c.lang == "eng") {
      out.en = std::string(c.text);
      return out;
    }
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (i != kh_index && !candidates[i].text.empty()) {
      out.en = std::string(candidates[i].text);
      break;
    }
  }
  return out;
}

/// One canonical message being written as KH-CNP.
class encoder {
 public:
  encoder(const adapter_context& ctx, rapidjson::Document& out, std::vector<field_error>& errors)
      : ctx_(ctx), tables_(ctx.tables), out_(out), a_(out.GetAllocator()), errors_(errors) {}

  /// Fills `out` from the checked canonical message `m`; what KH-CNP requires but cannot be
  /// produced goes to `errors` with its canonical pointer.
  void run(const value& m);

 private:
  const adapter_context& ctx_;
  table_view tables_;
  rapidjson::Document& out_;
  rapidjson::Document::AllocatorType& a_;
  std::vector<field_error>& errors_;
  value attachments_{rapidjson::kArrayType};

  void fail(std::string at, std::string reason) {
    errors_.push_back({std::move(at), std::move(reason)});
  }

  value str(std::string_view s) {
    return value(mxgw::json::non_null(s), static_cast<rapidjson::SizeType>(s.size()), a_);
  }
  void put(value& object, const char* name, value v) {
    object.AddMember(rapidjson::StringRef(name), v, a_);
  }
  void put_str(value& object, const char* name, std::string_view s) { put(object, name, str(s)); }

  /// The KH code for canonical `code`: the table's own, else the documented generalisation.
  std::optional<std::string> kh_code(std::string_view table, std::string_view code) const {
    if (auto own = tables_.to_kh(table, code)) {
      return own;
    }
    for (const auto& g : generalisations) {
      if (g.table == table && g.canonical == code) {
        return std::string(g.kh);
      }
    }
    return std::nullopt;
  }

  /// Codes of a canonical list in KH-CNP, without duplicates; codes KH-CNP lacks are dropped.
  value kh_codes(const value* list, std::string_view table) {
    value out(rapidjson::kArrayType);
    if (list == nullptr) {
      return out;
    }
    for (const auto& item : list->GetArray()) {
      if (!item.IsString()) {
        continue;
      }
      const auto code = kh_code(table, view_of(item));
      if (code && std::none_of(out.Begin(), out.End(),
                               [&](const value& v) { return view_of(v) == *code; })) {
        out.PushBack(str(*code), a_);
      }
    }
    return out;
  }

  void put_texts(value& object, const value* text, const char* translation_member,
                 const char* kh_member, const char* en_member) {
    if (text == nullptr) {
      return;
    }
    const kh_texts texts = split_text(*text, translation_member);
    if (texts.kh) {
      put_str(object, kh_member, *texts.kh);
    }
    if (texts.en) {
      put_str(object, en_member, *texts.en);
    }
  }

  /// A canonical place (or sighting) as a KH place. A Cambodian region becomes the province
  /// number; what KH-CNP has no field for (a region elsewhere, the country, the locality where
  /// there is no district) is written into `detail`, most precise first.
  value kh_place(const value& place, bool has_district) {
    value out(rapidjson::kObjectType);
    std::vector<std::string> detail;
    if (!string_at(place, "detail").empty()) {
      detail.emplace_back(string_at(place, "detail"));
    }
    if (!has_district && !string_at(place, "locality").empty()) {
      detail.emplace_back(string_at(place, "locality"));
    }
    std::optional<std::int64_t> province;
    if (const value* region = object_at(place, "region")) {
      const auto code = string_at(*region, "code");
      const auto recorded = string_at(*region, "asRecorded");
      province = code.empty() ? std::nullopt : tables_.province_of_region(code);
      if (!province && (!code.empty() || !recorded.empty())) {
        detail.push_back(recorded.empty() ? std::string(code)
                         : code.empty()   ? std::string(recorded)
                                          : std::string(recorded) + " (" + std::string(code) + ")");
      }
    }
    const auto country = string_at(place, "country");
    if (!country.empty() && !(province && country == "KH")) {
      detail.push_back(tables_.alpha3_of_country(country).value_or(std::string(country)));
    }
    if (province) {
      put(out, "province", value(*province));
    }
    if (has_district && !string_at(place, "locality").empty()) {
      put_str(out, "district", string_at(place, "locality"));
    }
    if (!detail.empty()) {
      std::string text;
      for (const auto& part : detail) {
        text += text.empty() ? part : ", " + part;
      }
      put_str(out, "detail", text);
    }
    return out;
  }

  /// A canonical person as the KH `subject`; its embedded photos become attachments.
  value subject(const value& person) {
    value s(rapidjson::kObjectType);
    value aliases(rapidjson::kArrayType);
    bool have_khmer = false;
    bool have_latin = false;
    if (const value* names = array_at(person, "names")) {
      for (const auto& name : names->GetArray()) {
        const auto script = string_at(name, "script");
        const bool primary = string_at(name, "kind") == "primary";
        const std::string family = joined(array_at(name, "family"));
        const std::string given = joined(array_at(name, "given"));
        const std::string whole = full_name(name);
        if (whole.empty()) {
          continue;
        }
        // A name labelled Khmer or Latin goes to *_kh / *_lat only if it really is in that
        // script (the receiving side checks it); every other name is an alias.
        if (primary && script == "Khmr" && !have_khmer && detect_script(whole) == "Khmr") {
          have_khmer = true;
          if (!family.empty()) {
            put_str(s, "family_name_kh", family);
          }
          if (!given.empty()) {
            put_str(s, "given_name_kh", given);
          }
        } else if (primary && script == "Latn" && !have_latin && detect_script(whole) == "Latn") {
          have_latin = true;
          if (!family.empty()) {
            put_str(s, "family_name_lat", family);
          }
          if (!given.empty()) {
            put_str(s, "given_name_lat", given);
          }
        } else {
          aliases.PushBack(str(whole), a_);
        }
      }
    }
    if (!aliases.Empty()) {
      put(s, "aliases", std::move(aliases));
    }
    if (auto sex = tables_.to_kh("sex", string_at(person, "sex"))) {
      put_str(s, "sex", *sex);
    }
    if (const auto birth = string_at(person, "birthDate"); !birth.empty()) {
      put_str(s, "dob", partial_to_dmy(birth, era::common));
    }
    if (auto approx = bool_at(person, "birthDateApprox")) {
      put(s, "dob_approx", value(*approx));
    }
    if (const value* age = object_at(person, "ageEstimate")) {
      // One number: the lower bound, so a possibly-minor person is never shown as older.
      const auto min = int_at(*age, "min");
      const auto estimate = min ? min : int_at(*age, "max");
      if (estimate) {
        put(s, "age_est", value(*estimate));
      }
    }
    if (const value* nationalities = array_at(person, "nationalities")) {
      for (const auto& n : nationalities->GetArray()) {
        if (auto alpha3 = n.IsString() ? tables_.alpha3_of_country(view_of(n)) : std::nullopt) {
          put_str(s, "nationality", *alpha3);
          break;
        }
      }
    }
    if (const value* documents = array_at(person, "documents")) {
      value docs(rapidjson::kArrayType);
      for (const auto& d : documents->GetArray()) {
        auto type = kh_code("document-type", string_at(d, "type"));
        if (!type) {
          continue;
        }
        value doc(rapidjson::kObjectType);
        put_str(doc, "type", *type);
        if (!string_at(d, "number").empty()) {
          put_str(doc, "no", string_at(d, "number"));
        }
        if (auto issuer = tables_.alpha3_of_country(string_at(d, "issuingCountry"))) {
          put_str(doc, "issuer", *issuer);
        }
        docs.PushBack(doc, a_);
      }
      if (!docs.Empty()) {
        put(s, "id_docs", std::move(docs));
      }
    }
    if (const value* home = object_at(person, "homeRegion")) {
      if (auto province = tables_.province_of_region(string_at(*home, "code"))) {
        put(s, "home_province", value(*province));
      }
    }
    if (const value* languages = array_at(person, "languages")) {
      value list(rapidjson::kArrayType);
      for (const auto& l : languages->GetArray()) {
        if (auto code = l.IsString() ? tables_.iso639_1_of_language(view_of(l)) : std::nullopt) {
          list.PushBack(str(*code), a_);
        }
      }
      if (!list.Empty()) {
        put(s, "languages", std::move(list));
      }
    }
    if (const value* photos = array_at(person, "photos")) {
      for (const auto& photo : photos->GetArray()) {
        if (string_at(photo, "data").empty()) {
          continue;  // a linked photo (href): KH-CNP carries embedded images only
        }
        value attachment(rapidjson::kObjectType);
        put_str(attachment, "kind", "PHOTO");
        put_str(attachment, "mime", string_at(photo, "mime"));
        put_str(attachment, "sha256", string_at(photo, "sha256"));
        put_str(attachment, "b64", string_at(photo, "data"));
        attachments_.PushBack(attachment, a_);
      }
    }
    return s;
  }

  /// The body's person as `subject`, or a 422 naming `at` when it has none.
  void put_subject(value& out, const value& body, const char* member, const std::string& at) {
    if (const value* person = object_at(body, member)) {
      put(out, "subject", subject(*person));
    } else {
      fail(at, "is required: KH-CNP-XCHG/2 needs the subject");
    }
  }

  void victim(value& out, const value& body) {
    put_subject(out, body, "person", "/body/person");
    value c(rapidjson::kObjectType);
    const auto status = string_at(body, "status");
    if (auto code = tables_.to_kh("victim-status", status)) {
      put_str(c, "status", *code);
    } else {
      fail("/body/status",
           quoted_value(status) + " has no KH-CNP case status (case.status is required)");
    }
    value exploitation = kh_codes(array_at(body, "exploitation"), "exploitation");
    if (!exploitation.Empty()) {
      put(c, "exploitation", std::move(exploitation));
    }
    if (const value* events = array_at(body, "events")) {
      for (const auto& event : events->GetArray()) {
        if (string_at(event, "type") != "identification") {
          continue;
        }
        if (const value* place = object_at(event, "place")) {
          value found = kh_place(*place, true);
          if (!found.ObjectEmpty()) {
            put(c, "found_place", std::move(found));
          }
        }
        if (const auto date = string_at(event, "date"); !date.empty()) {
          put_str(c, "found_date", partial_to_dmy(date, era::common));
        }
        break;
      }
    }
    if (auto minors = int_at(body, "accompanyingMinors")) {
      put(c, "minors_with", value(*minors));
    }
    value needs = kh_codes(array_at(body, "needs"), "needs");
    if (!needs.Empty()) {
      put(c, "needs", std::move(needs));
    }
    if (auto repatriation = bool_at(body, "repatriationRequested")) {
      put(c, "repatriation", value(*repatriation));
    }
    if (const value* consent = object_at(body, "consent")) {
      if (auto given = bool_at(*consent, "given")) {
        put(c, "consent_share", value(*given));
      }
    }
    put(out, "case", std::move(c));
  }

  void wanted(value& out, const value& body) {
    put_subject(out, body, "person", "/body/person");
    const value* warrants = array_at(body, "warrants");
    if (warrants == nullptr || warrants->Empty()) {
      fail("/body/warrants", "is required: KH-CNP's WANTED_PERSON carries a warrant");
      return;
    }
    const value& w = (*warrants)[0];  // KH-CNP carries one warrant
    value warrant(rapidjson::kObjectType);
    if (!string_at(w, "number").empty()) {
      put_str(warrant, "no", string_at(w, "number"));
    }
    // KH-CNP has no field for the issuing country, and a warrant in a Cambodian format reads as
    // Cambodian: the court says which country issued it, every time, in the form the decoder
    // reads back ("Tòa án tỉnh Gia Lai (issuing country: VNM)").
    const auto marked =
        mark_issuer(string_at(w, "issuingAuthority"),
                    tables_.alpha3_of_country(string_at(w, "issuingCountry")), court_field);
    if (marked.country_refusal) {
      fail("/body/warrants/0/issuingCountry", *marked.country_refusal);
    } else if (marked.authority_refusal) {
      fail("/body/warrants/0/issuingAuthority", *marked.authority_refusal);
    } else {
      put_str(warrant, "court", marked.text);
    }
    value offences(rapidjson::kArrayType);
    if (const value* charges = array_at(w, "charges")) {
      for (const auto& charge : charges->GetArray()) {
        value offence(rapidjson::kObjectType);
        const value* statute = object_at(charge, "statute");
        const auto code = statute == nullptr ? std::string_view() : string_at(*statute, "code");
        if (!code.empty()) {
          put_str(offence, "code", code);
        }
        const bool text_is_code = string_at(charge, "text") == code &&
                                  string_at(charge, "lang").empty() &&
                                  object_at(charge, "translation") == nullptr;
        if (!text_is_code) {
          put_texts(offence, &charge, "translation", "text_kh", "text_en");
        }
        offences.PushBack(offence, a_);
      }
    }
    put(warrant, "offences", std::move(offences));
    if (const auto issued = string_at(w, "issued"); !issued.empty()) {
      put_str(warrant, "issued", partial_to_dmy(issued, era::common));
    }
    if (const auto expires = string_at(w, "expires"); !expires.empty()) {
      put_str(warrant, "expires", partial_to_dmy(expires, era::common));
    }
    if (const value* warnings = array_at(body, "warnings")) {
      const bool dangerous = std::any_of(warnings->Begin(), warnings->End(), [](const value& v) {
        return v.IsString() && (view_of(v) == "armed" || view_of(v) == "violent");
      });
      if (dangerous) {
        put(warrant, "dangerous", value(true));
      }
    }
    if (const value* seen = object_at(body, "lastSeen")) {
      value last_seen = kh_place(*seen, false);
      if (const auto date = string_at(*seen, "date"); !date.empty()) {
        put_str(last_seen, "date", partial_to_dmy(date, era::common));
      }
      if (!last_seen.ObjectEmpty()) {
        put(warrant, "last_seen", std::move(last_seen));
      }
    }
    put(out, "warrant", std::move(warrant));
  }

  void tip(value& out, const value& body) {
    // KH-CNP has one subject: the first possible victim with a person, else the first person.
    const value* chosen = nullptr;
    if (const value* subjects = array_at(body, "subjects")) {
      for (const auto& s : subjects->GetArray()) {
        if (object_at(s, "person") != nullptr &&
            (chosen == nullptr || (string_at(*chosen, "role") != "possible-victim" &&
                                   string_at(s, "role") == "possible-victim"))) {
          chosen = &s;
        }
      }
    }
    if (chosen != nullptr) {
      put(out, "subject", subject(*object_at(*chosen, "person")));
    } else {
      fail("/body/subjects", "has no subject with a person: KH-CNP-XCHG/2 needs the subject");
    }
    value t(rapidjson::kObjectType);
    if (auto line = kh_code("hotline-channel", string_at(body, "channel"))) {
      put_str(t, "line", *line);
    }
    const auto received = string_at(body, "receivedAt");
    const std::string local =
        utc_to_local(received, offset_minutes(received, local_offset_minutes), era::common);
    if (local.empty()) {
      fail("/body/receivedAt", "is not an RFC 3339 time");
    } else {
      put_str(t, "received_at", local);
    }
    if (const auto reporter = string_at(body, "reporterType"); !reporter.empty()) {
      put(t, "anonymous", value(reporter == "anonymous"));
    }
    if (auto urgency = kh_of(urgencies, string_at(body, "urgency"))) {
      put_str(t, "urgency", *urgency);
    } else {
      fail("/body/urgency", "is required");
    }
    if (const value* places = array_at(body, "places"); places != nullptr && !places->Empty()) {
      value place = kh_place((*places)[0], false);
      if (!place.ObjectEmpty()) {
        put(t, "place", std::move(place));
      }
    }
    const value* summary = object_at(body, "summary");
    const kh_texts texts = summary == nullptr ? kh_texts{} : split_text(*summary, "translations");
    if (!texts.kh && !texts.en) {
      fail("/body/summary", "is required");
    }
    put_texts(t, summary, "translations", "summary_kh", "summary_en");
    put(out, "tip", std::move(t));
  }

  void request(value& out, const value& body) {
    put_subject(out, body, "subject", "/body/subject");
    const auto purpose = string_at(body, "purpose");
    const auto purpose_code = purpose == "document-authenticity"
                                  ? std::optional<std::string_view>("IDENTITY")
                                  : kh_of(question_purposes, purpose);
    if (!purpose_code) {
      fail("/body/purpose",
           quoted_value(purpose) + " has no KH-CNP question (questions are required)");
      return;
    }
    std::vector<std::string_view> codes;
    std::string free_text;
    if (const value* questions = array_at(body, "questions")) {
      for (const auto& q : questions->GetArray()) {
        if (!q.IsString() || q.GetStringLength() == 0) {
          continue;
        }
        const auto text = view_of(q);
        if (canonical_of(question_purposes, text)) {
          if (std::find(codes.begin(), codes.end(), text) == codes.end()) {
            codes.push_back(text);
          }
          continue;
        }
        // Free-text questions go in the narrative, one per line.
        std::string line(text);
        std::replace(line.begin(), line.end(), '\n', ' ');
        free_text += free_text.empty() ? line : "\n" + line;
      }
    }
    if (codes.empty() || canonical_of(question_purposes, codes.front()) !=
                             canonical_of(question_purposes, *purpose_code)) {
      codes.erase(std::remove(codes.begin(), codes.end(), *purpose_code), codes.end());
      codes.insert(codes.begin(), *purpose_code);
    }
    value list(rapidjson::kArrayType);
    for (const auto code : codes) {
      list.PushBack(str(code), a_);
    }
    put(out, "questions", std::move(list));
    if (!free_text.empty()) {
      put_str(out, "narrative_en", free_text);
    }
  }

  void result(value& out, const value& body) {
    put_subject(out, body, "matched", "/body/matched");
    value answer(rapidjson::kObjectType);
    const auto result_code = string_at(body, "result");
    // no-record is, for KH-CNP, "not confirmed" (no record was found, so nothing is confirmed;
    // the notes can say more). A refusal to verify is not a verification that came out
    // negative: KH-CNP has no word for it, so it is refused rather than sent as NOT_CONFIRMED.
    const auto code = result_code == "no-record" ? std::optional<std::string_view>("NOT_CONFIRMED")
                                                 : kh_of(answer_results, result_code);
    if (code) {
      put_str(answer, "result", *code);
    } else if (result_code == "refused") {
      fail("/body/result",
           "'refused' (the verification was refused) has no KH-CNP answer result: CONFIRMED, "
           "NOT_CONFIRMED and PARTIAL all report a verification that was done");
    } else {
      fail("/body/result", "is required");
    }
    put_texts(answer, object_at(body, "notes"), "translations", "note_kh", "note_en");
    put(out, "answer", std::move(answer));
  }

  /// The receipt's status and reason. A rejection's reason is its errors; an acknowledgement's
  /// is the note a KH RECEIVED receipt had (kept in `unmapped`, see receipt_reason_key), else
  /// whatever errors a canonical sender listed on it.
  void receipt(value& out, const value& message, const value& body) {
    const auto status = string_at(body, "status");
    if (auto kh_status = kh_of(receipt_statuses, status)) {
      put_str(out, "status", *kh_status);
    } else {
      fail("/body/status", "is required");
    }
    std::string reason;
    if (const value* unmapped = object_at(message, "unmapped");
        unmapped != nullptr && status == "received") {
      reason = string_at(*unmapped, receipt_reason_key.data());
    }
    if (const value* errors = array_at(body, "errors"); errors != nullptr && reason.empty()) {
      for (const auto& e : errors->GetArray()) {
        const auto pointer = string_at(e, "pointer");
        std::string one = pointer.empty()
                              ? std::string(string_at(e, "reason"))
                              : std::string(pointer) + " " + std::string(string_at(e, "reason"));
        reason += reason.empty() ? one : "; " + one;
      }
    }
    if (!reason.empty()) {
      put_str(out, "reason", reason);
    }
  }
};

void encoder::run(const value& m) {
  const auto type = string_at(m, "type");
  const auto kind = kh_of(message_kinds, type);
  if (!kind) {
    fail("/type", quoted_value(type) + " has no KH-CNP-XCHG/2 message kind");
    return;
  }
  const auto ref = string_at(m, "ref");
  const auto created = string_at(m, "created");
  const std::string sent_at = utc_to_local(created, local_offset_minutes, era::common);
  if (sent_at.empty()) {
    fail("/created", "is not an RFC 3339 time");
  }
  std::string recipient = ctx_.recipient;
  if (const value* recipients = array_at(m, "recipients");
      recipient.empty() && recipients != nullptr && !recipients->Empty() &&
      (*recipients)[0].IsString()) {
    recipient = std::string(view_of((*recipients)[0]));
  }
  if (recipient.empty()) {
    fail("/recipients", "names no recipient: KH-CNP-XCHG/2 needs to_unit");
  }
  const value* handling = object_at(m, "handling");
  const auto confidentiality =
      handling == nullptr ? std::string_view() : string_at(*handling, "confidentiality");
  const auto classification = tables_.to_kh("classification", confidentiality);
  if (!classification) {
    fail("/handling/confidentiality", "has no KH-CNP classification");
  }
  // reply_to: the message answered, by its gateway id; a VERIFY_REPLY without one names the
  // thread (caseRef), which is where a reply_to that was not an id came from, and so does a
  // receipt whose inReplyTo is the placeholder the decoder made for that reference.
  static const value no_body(rapidjson::kObjectType);
  const value* body_ptr = object_at(m, "body");
  const value& body = body_ptr != nullptr ? *body_ptr : no_body;
  std::string_view reply_to =
      type == "receipt" ? string_at(body, "inReplyTo") : string_at(m, "inReplyTo");
  const auto case_ref = string_at(m, "caseRef");
  if (reply_to.empty() && type == "verification.result") {
    reply_to = case_ref;
  }
  if (type == "receipt" && !case_ref.empty() && string_at(m, "inReplyTo").empty() &&
      reply_to == placeholder_id(reply_to_namespace, case_ref)) {
    reply_to = case_ref;
  }
  if (reply_to.empty() && (type == "verification.result" || type == "receipt")) {
    fail(type == "receipt" ? "/body/inReplyTo" : "/inReplyTo",
         "is required: KH-CNP-XCHG/2 names the message answered (reply_to)");
  }
  // The commissariat's own msg_no for a message it sent us: the gateway id is not one it knows.
  if (!ctx_.answered_reference.empty() && same_message_id(reply_to, ctx_.answered_id)) {
    reply_to = ctx_.answered_reference;
  }

  out_.SetObject();
  put_str(out_, "format", format_name);
  // The sender's reference with the canonical id, so that a reply naming it is linked exactly.
  put_str(out_, "msg_no", outbound_reference(ref, string_at(m, "id")));
  put_str(out_, "msg_kind", *kind);
  put_str(out_, "sent_at", sent_at);
  value from(rapidjson::kObjectType);
  put_str(from, "code", string_at(m, "sender"));
  put(out_, "from_unit", std::move(from));
  value to(rapidjson::kObjectType);
  put_str(to, "code", recipient);
  put(out_, "to_unit", std::move(to));
  if (!reply_to.empty()) {
    put_str(out_, "reply_to", reply_to);
  }
  put_str(out_, "classification", classification.value_or(""));
  if (type == "victim.identification") {
    victim(out_, body);
    put_texts(out_, object_at(body, "narrative"), "translations", "narrative_kh", "narrative_en");
  } else if (type == "person.wanted") {
    wanted(out_, body);
  } else if (type == "hotline.tip") {
    tip(out_, body);
  } else if (type == "verification.request") {
    request(out_, body);
  } else if (type == "verification.result") {
    result(out_, body);
  } else {
    receipt(out_, m, body);
  }
  if (!attachments_.Empty()) {
    put(out_, "attachments", std::move(attachments_));
  }
}

}  // namespace

encode_result encode_message(const rapidjson::Value& message, const adapter_context& ctx) {
  encode_result result;
  if (!message.IsObject()) {
    result.status = 422;
    result.errors.push_back({"", "is not a canonical message (a JSON object)"});
    return result;
  }
  if (ctx.tables == nullptr) {
    result.status = 500;
    result.errors.push_back({"", "the gateway's code tables are not loaded"});
    return result;
  }
  rapidjson::Document out;
  encoder(ctx, out, result.errors).run(message);
  if (!result.errors.empty()) {
    result.status = 422;
    return result;
  }
  result.bytes = json::to_string(out);
  return result;
}

}  // namespace mxgw::adapters::kh_cnp
