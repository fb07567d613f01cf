// kh-cnp round trips: canonical -> KH -> canonical keeps exactly what KH-CNP can carry, for the
// repository's examples and for hundreds of generated messages (seeded), and decode -> encode ->
// decode is a fixpoint.
#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <map>
#include <random>
#include <set>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/references.hpp"
#include "adapters/kh-cnp/kh_cnp.hpp"
#include "gateway/common/digest.hpp"
#include "gateway/common/json.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "tests/support/test_support.hpp"

namespace mxgw::adapters {
namespace {

using test::source_dir;
using value = rapidjson::Value;
using allocator = rapidjson::Document::AllocatorType;

std::string_view view_of(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

std::string describe(const std::vector<field_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += "[" + e.pointer + "] " + e.reason + "\n";
  }
  return out;
}

std::string base64(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    unsigned v = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      out += k <= n ? alphabet[(v >> (18 - 6 * k)) & 0x3F] : '=';
    }
  }
  return out;
}

// --- what KH-CNP can carry: the canonical message as it comes back from KH -----------------------

/// States, independently of the encoder, what survives canonical -> KH-CNP -> canonical
/// (docs/adapters/kh-cnp.md, "Canonical -> KH").
class kh_projection {
 public:
  kh_projection(const pipeline::code_tables& tables, allocator& a) : tables_(tables), a_(a) {}

  value message(const value& m) {
    const std::string type(json::get_string(m, "type"));
    const std::string sender(json::get_string(m, "sender"));
    // The msg_no the gateway writes: the sender's reference with the id (or the id alone).
    const std::string ref =
        outbound_reference(json::get_string(m, "ref"), json::get_string(m, "id"));
    value out(rapidjson::kObjectType);
    put(out, "mx", "1");
    put(out, "id", message_uuid(sender, ref));
    put(out, "type", type);
    put(out, "created", json::get_string(m, "created"));
    put(out, "sender", sender);
    put(out, "ref", ref);
    const value& body = m["body"];
    const auto in_reply_to =
        type == "receipt" ? json::get_string(body, "inReplyTo") : json::get_string(m, "inReplyTo");
    if (!in_reply_to.empty()) {
      put(out, "inReplyTo", in_reply_to);
    } else if (type == "verification.result") {
      put(out, "caseRef", json::get_string(m, "caseRef"));
    }
    const bool consent = type == "victim.identification" && body.HasMember("consent") &&
                         body["consent"]["given"].GetBool();
    put(out, "legalBasis", consent ? "consent" : "crime-prevention");
    value handling(rapidjson::kObjectType);
    put(handling, "confidentiality", json::get_string(m["handling"], "confidentiality"));
    value codes(rapidjson::kArrayType);
    codes.PushBack("H0", a_);
    handling.AddMember("codes", codes, a_);
    out.AddMember("handling", handling, a_);
    if (type == "hotline.tip") {
      value evaluation(rapidjson::kObjectType);
      put(evaluation, "sourceReliability", "X");
      evaluation.AddMember("informationAccuracy", 4, a_);
      out.AddMember("evaluation", evaluation, a_);
    }
    value b = type == "victim.identification"  ? victim(body)
              : type == "person.wanted"        ? wanted(body)
              : type == "hotline.tip"          ? tip(body)
              : type == "verification.request" ? request(body)
              : type == "verification.result"  ? result(body)
                                               : receipt(body, json::get_string(m, "created"));
    if (type == "receipt") {
      // An acknowledgement's note travels as KH `reason` and comes back in `unmapped`, never as
      // errors (those mean a rejection); every other unmapped value stays behind.
      if (auto note = receipt_note(m); !note.empty()) {
        value unmapped(rapidjson::kObjectType);
        put(unmapped, "/reason", note);
        out.AddMember("unmapped", unmapped, a_);
      }
    }
    out.AddMember("body", b, a_);
    return out;
  }

 private:
  const pipeline::code_tables& tables_;
  allocator& a_;

  void put(value& o, const char* name, std::string_view s) {
    o.AddMember(rapidjson::StringRef(name),
                value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a_), a_);
  }
  value copy(const value& v) { return value(v, a_); }
  value str(std::string_view s) {
    return value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a_);
  }

  bool has_kh_code(std::string_view table, std::string_view code) const {
    const value* entry = tables_.entry(table, code);
    return entry != nullptr && entry->HasMember("partnerCodes") &&
           (*entry)["partnerCodes"].HasMember("kh-cnp");
  }

  /// The canonical code that comes back for `code` (its own, or the generalisation's).
  std::string back(std::string_view table, std::string_view code) const {
    static const std::map<std::string, std::string> general = {
        {"exploitation/child-labour", "forced-labour"},
        {"exploitation/servitude", "other"},
        {"document-type/citizen-id", "national-id"},
        {"document-type/border-pass", "other"},
        {"document-type/residence-permit", "other"},
        {"document-type/work-permit", "other"},
        {"hotline-channel/hotline-111", "phone"},
        {"hotline-channel/hotline-1300", "phone"},
        {"hotline-channel/zalo", "web"},
        {"hotline-channel/facebook", "web"},
        {"hotline-channel/ngo-referral", "other"},
        {"hotline-channel/other", "other"}};
    if (has_kh_code(table, code)) {
      return std::string(code);
    }
    return general.at(std::string(table) + "/" + std::string(code));
  }

  static std::string joined(const value& name, const char* member) {
    std::string out;
    if (name.HasMember(member)) {
      for (const auto& p : name[member].GetArray()) {
        out += (out.empty() ? "" : " ") + std::string(view_of(p));
      }
    }
    return out;
  }

  value parts(const std::string& text) {
    value out(rapidjson::kArrayType);
    std::size_t i = 0;
    while (i < text.size()) {
      const std::size_t end = std::min(text.find(' ', i), text.size());
      if (end > i) {
        out.PushBack(str(std::string_view(text).substr(i, end - i)), a_);
      }
      i = end + 1;
    }
    return out;
  }

  value person(const value& p) {
    value out(rapidjson::kObjectType);
    value names(rapidjson::kArrayType);
    std::optional<value> khmer;
    std::optional<value> latin;
    value aliases(rapidjson::kArrayType);
    for (const auto& n : p["names"].GetArray()) {
      const std::string family = joined(n, "family");
      const std::string given = joined(n, "given");
      const bool given_first = json::get_string(n, "order") == "given-first";
      std::string whole = given_first ? given + " " + family : family + " " + given;
      whole = family.empty() ? given : given.empty() ? family : whole;
      const auto script = json::get_string(n, "script");
      const bool primary = json::get_string(n, "kind") == "primary";
      auto& slot = script == "Khmr" ? khmer : latin;
      if (primary && (script == "Khmr" || script == "Latn") && !slot &&
          kh_cnp::detect_script(whole) == script) {
        value name(rapidjson::kObjectType);
        if (!family.empty()) {
          name.AddMember("family", parts(family), a_);
        }
        if (!given.empty()) {
          name.AddMember("given", parts(given), a_);
        }
        put(name, "script", script);
        put(name, "kind", "primary");
        // KH-CNP carries the first nationality; the order is that person's custom: Lao and Thai
        // names given-first, those of Cambodia, Viet Nam and East Asia family-first, others not
        // told; without a nationality a Cambodian's, family-first.
        const std::string first = p.HasMember("nationalities") && !p["nationalities"].Empty()
                                      ? std::string(p["nationalities"][0].GetString())
                                      : std::string();
        if (first == "LA" || first == "TH") {
          put(name, "order", "given-first");
        } else if (first.empty() || first == "KH" || first == "VN" || first == "CN" ||
                   first == "TW" || first == "HK" || first == "MO" || first == "KR" ||
                   first == "JP") {
          put(name, "order", "family-first");
        }
        slot = std::move(name);
      } else {
        value name(rapidjson::kObjectType);
        value list(rapidjson::kArrayType);
        list.PushBack(str(whole), a_);
        name.AddMember("given", list, a_);
        put(name, "script", kh_cnp::detect_script(whole));
        put(name, "kind", "alias");
        aliases.PushBack(name, a_);
      }
    }
    if (khmer) {
      names.PushBack(*khmer, a_);
    }
    if (latin) {
      names.PushBack(*latin, a_);
    }
    for (auto& alias : aliases.GetArray()) {
      names.PushBack(alias, a_);
    }
    out.AddMember("names", names, a_);
    if (p.HasMember("sex") && view_of(p["sex"]) != "X") {
      out.AddMember("sex", copy(p["sex"]), a_);
    }
    for (const char* member : {"birthDate", "birthDateApprox"}) {
      if (p.HasMember(member)) {
        out.AddMember(rapidjson::StringRef(member), copy(p[member]), a_);
      }
    }
    if (p.HasMember("ageEstimate")) {
      const value& e = p["ageEstimate"];
      const int age = e.HasMember("min") ? e["min"].GetInt() : e["max"].GetInt();
      value estimate(rapidjson::kObjectType);
      estimate.AddMember("min", age, a_);
      estimate.AddMember("max", age, a_);
      out.AddMember("ageEstimate", estimate, a_);
    }
    if (p.HasMember("nationalities") && !p["nationalities"].Empty()) {
      value list(rapidjson::kArrayType);
      list.PushBack(copy(p["nationalities"][0]), a_);
      out.AddMember("nationalities", list, a_);
    }
    if (p.HasMember("documents") && !p["documents"].Empty()) {
      value docs(rapidjson::kArrayType);
      for (const auto& d : p["documents"].GetArray()) {
        value doc(rapidjson::kObjectType);
        put(doc, "type", back("document-type", view_of(d["type"])));
        for (const char* member : {"number", "issuingCountry"}) {
          if (d.HasMember(member)) {
            doc.AddMember(rapidjson::StringRef(member), copy(d[member]), a_);
          }
        }
        docs.PushBack(doc, a_);
      }
      out.AddMember("documents", docs, a_);
    }
    if (p.HasMember("homeRegion")) {
      const auto code = json::get_string(p["homeRegion"], "code");
      if (code.starts_with("KH-")) {
        value region(rapidjson::kObjectType);
        put(region, "code", code);
        put(region, "asRecorded", code.substr(3));
        out.AddMember("homeRegion", region, a_);
      }
    }
    if (p.HasMember("languages")) {
      value list(rapidjson::kArrayType);
      for (const auto& l : p["languages"].GetArray()) {
        const value* entry = tables_.entry("language", view_of(l));
        if (entry != nullptr && entry->HasMember("iso639_1")) {
          list.PushBack(copy(l), a_);
        }
      }
      if (!list.Empty()) {
        out.AddMember("languages", list, a_);
      }
    }
    if (p.HasMember("photos")) {
      value list(rapidjson::kArrayType);
      for (const auto& photo : p["photos"].GetArray()) {
        if (photo.HasMember("data")) {
          value kept(rapidjson::kObjectType);
          for (const char* member : {"mime", "sha256", "data"}) {
            kept.AddMember(rapidjson::StringRef(member), copy(photo[member]), a_);
          }
          list.PushBack(kept, a_);
        }
      }
      if (!list.Empty()) {
        out.AddMember("photos", list, a_);
      }
    }
    return out;
  }

  /// A place as it comes back: a Cambodian province with its number, everything else in detail.
  std::optional<value> place(const value& p, bool has_district) {
    std::vector<std::string> detail;
    const auto locality = json::get_string(p, "locality");
    if (p.HasMember("detail")) {
      detail.emplace_back(view_of(p["detail"]));
    }
    if (!has_district && !locality.empty()) {
      detail.emplace_back(locality);
    }
    std::string province;
    if (p.HasMember("region")) {
      const auto code = json::get_string(p["region"], "code");
      const auto recorded = json::get_string(p["region"], "asRecorded");
      if (code.starts_with("KH-")) {
        province = std::string(code.substr(3));
      } else if (!code.empty() && !recorded.empty()) {
        detail.push_back(std::string(recorded) + " (" + std::string(code) + ")");
      } else {
        detail.emplace_back(code.empty() ? recorded : code);
      }
    }
    const auto country = json::get_string(p, "country");
    if (!country.empty() && !(!province.empty() && country == "KH")) {
      detail.emplace_back(json::get_string(*tables_.entry("country", country), "alpha3"));
    }
    value out(rapidjson::kObjectType);
    if (!province.empty()) {
      put(out, "country", "KH");
      value region(rapidjson::kObjectType);
      put(region, "code", "KH-" + province);
      put(region, "asRecorded", province);
      out.AddMember("region", region, a_);
    }
    if (has_district && !locality.empty()) {
      put(out, "locality", locality);
    }
    if (!detail.empty()) {
      std::string text;
      for (const auto& d : detail) {
        text += (text.empty() ? "" : ", ") + d;
      }
      put(out, "detail", text);
    }
    if (out.ObjectEmpty()) {
      return std::nullopt;
    }
    return out;
  }

  /// A text as it comes back: its Khmer version with the English one as translation, or the
  /// English one (else the text as written) labelled English.
  std::optional<value> text(const value& t, const char* translation_member) {
    std::vector<std::pair<std::string, std::string>> all;
    all.emplace_back(view_of(t["text"]), json::get_string(t, "lang"));
    if (t.HasMember(translation_member)) {
      const value& tr = t[translation_member];
      if (tr.IsArray()) {
        for (const auto& x : tr.GetArray()) {
          all.emplace_back(view_of(x["text"]), json::get_string(x, "lang"));
        }
      } else {
        all.emplace_back(view_of(tr["text"]), json::get_string(tr, "lang"));
      }
    }
    std::optional<std::size_t> kh;
    std::optional<std::string> en;
    for (std::size_t i = 0; i < all.size() && !kh; ++i) {
      if (all[i].second == "khm" ||
          (all[i].second.empty() && kh_cnp::detect_script(all[i].first) == "Khmr")) {
        kh = i;
      }
    }
    for (const auto& [text_value, lang] : all) {
      if (lang == "eng" && !en) {
        en = text_value;
      }
    }
    for (std::size_t i = 0; i < all.size() && !en; ++i) {
      if (i != kh) {
        en = all[i].first;
      }
    }
    if (!kh && !en) {
      return std::nullopt;
    }
    value out(rapidjson::kObjectType);
    put(out, "text", kh ? all[*kh].first : *en);
    put(out, "lang", kh ? "khm" : "eng");
    if (kh && en) {
      value english(rapidjson::kObjectType);
      put(english, "text", *en);
      put(english, "lang", "eng");
      if (std::string_view(translation_member) == "translations") {
        value list(rapidjson::kArrayType);
        list.PushBack(english, a_);
        out.AddMember("translations", list, a_);
      } else {
        out.AddMember("translation", english, a_);
      }
    }
    return out;
  }

  value victim(const value& b) {
    value out(rapidjson::kObjectType);
    out.AddMember("person", person(b["person"]), a_);
    out.AddMember("status", copy(b["status"]), a_);
    if (b.HasMember("exploitation")) {
      value list(rapidjson::kArrayType);
      std::set<std::string> seen;
      for (const auto& e : b["exploitation"].GetArray()) {
        const std::string code = back("exploitation", view_of(e));
        if (seen.insert(code).second) {
          list.PushBack(str(code), a_);
        }
      }
      out.AddMember("exploitation", list, a_);
    }
    if (b.HasMember("events")) {
      for (const auto& e : b["events"].GetArray()) {
        if (view_of(e["type"]) != "identification") {
          continue;
        }
        value event(rapidjson::kObjectType);
        put(event, "type", "identification");
        if (e.HasMember("date")) {
          event.AddMember("date", copy(e["date"]), a_);
        }
        if (e.HasMember("place")) {
          if (auto p = place(e["place"], true)) {
            event.AddMember("place", *p, a_);
          }
        }
        if (event.MemberCount() > 1) {
          value list(rapidjson::kArrayType);
          list.PushBack(event, a_);
          out.AddMember("events", list, a_);
        }
        break;
      }
    }
    for (const char* member : {"accompanyingMinors", "needs", "repatriationRequested"}) {
      if (b.HasMember(member)) {
        out.AddMember(rapidjson::StringRef(member), copy(b[member]), a_);
      }
    }
    if (b.HasMember("consent")) {
      value consent(rapidjson::kObjectType);
      const bool given = b["consent"]["given"].GetBool();
      consent.AddMember("given", given, a_);
      if (given) {
        value scope(rapidjson::kArrayType);
        scope.PushBack("victim-protection", a_).PushBack("repatriation", a_);
        consent.AddMember("scope", scope, a_);
      }
      out.AddMember("consent", consent, a_);
    }
    if (b.HasMember("narrative")) {
      if (auto t = text(b["narrative"], "translations")) {
        out.AddMember("narrative", *t, a_);
      }
    }
    return out;
  }

  value wanted(const value& b) {
    value out(rapidjson::kObjectType);
    out.AddMember("person", person(b["person"]), a_);
    const value& w = b["warrants"][0];
    value warrant(rapidjson::kObjectType);
    if (w.HasMember("number")) {
      warrant.AddMember("number", copy(w["number"]), a_);
    }
    // KH-CNP has no field for the country: the court names it, "... (issuing country: VNM)",
    // and it comes back as sent, never made Cambodian; the charges' statutes come back under it.
    const auto country = json::get_string(w, "issuingCountry");
    put(warrant, "issuingCountry", country);
    for (const char* member : {"issuingAuthority", "issued", "expires"}) {
      if (w.HasMember(member)) {
        warrant.AddMember(rapidjson::StringRef(member), copy(w[member]), a_);
      }
    }
    value charges(rapidjson::kArrayType);
    for (const auto& c : w["charges"].GetArray()) {
      const auto code = c.HasMember("statute") ? json::get_string(c["statute"], "code") : "";
      value charge(rapidjson::kObjectType);
      if (view_of(c["text"]) == code && !c.HasMember("lang") && !c.HasMember("translation")) {
        put(charge, "text", code);
      } else {
        charge = *text(c, "translation");
      }
      if (!code.empty()) {
        value statute(rapidjson::kObjectType);
        put(statute, "jurisdiction", country);
        put(statute, "code", code);
        charge.AddMember("statute", statute, a_);
      }
      charges.PushBack(charge, a_);
    }
    warrant.AddMember("charges", charges, a_);
    value warrants(rapidjson::kArrayType);
    warrants.PushBack(warrant, a_);
    out.AddMember("warrants", warrants, a_);
    put(out, "requestedAction", "locate-and-inform");
    if (b.HasMember("warnings")) {
      for (const auto& w2 : b["warnings"].GetArray()) {
        if (view_of(w2) == "armed" || view_of(w2) == "violent") {
          value list(rapidjson::kArrayType);
          list.PushBack("violent", a_);
          out.AddMember("warnings", list, a_);
          break;
        }
      }
    }
    if (b.HasMember("lastSeen")) {
      if (auto p = place(b["lastSeen"], false)) {
        if (b["lastSeen"].HasMember("date")) {
          p->AddMember("date", copy(b["lastSeen"]["date"]), a_);
        }
        out.AddMember("lastSeen", *p, a_);
      }
    }
    return out;
  }

  value tip(const value& b) {
    value out(rapidjson::kObjectType);
    const auto received = json::get_string(b, "receivedAt");
    const bool utc = received.back() == 'Z';
    const std::string offset = utc ? "+07:00" : std::string(received.substr(received.size() - 6));
    const int minutes = (offset[0] == '-' ? -1 : 1) *
                        (std::stoi(offset.substr(1, 2)) * 60 + std::stoi(offset.substr(4, 2)));
    const std::string local = utc_to_local(received, minutes, era::common);  // DD/MM/YYYY hh:mm:ss
    put(out, "receivedAt",
        local.substr(6, 4) + "-" + local.substr(3, 2) + "-" + local.substr(0, 2) + "T" +
            local.substr(11, 8) + offset);
    put(out, "channel", back("hotline-channel", view_of(b["channel"])));
    if (b.HasMember("reporterType")) {
      // Only "anonymous" survives: anonymous false does not say who the caller is.
      if (view_of(b["reporterType"]) == "anonymous") {
        put(out, "reporterType", "anonymous");
      }
    }
    out.AddMember("urgency", copy(b["urgency"]), a_);
    const value* chosen = nullptr;
    for (const auto& s : b["subjects"].GetArray()) {
      if (s.HasMember("person") &&
          (chosen == nullptr || (view_of((*chosen)["role"]) != "possible-victim" &&
                                 view_of(s["role"]) == "possible-victim"))) {
        chosen = &s;
      }
    }
    value subject(rapidjson::kObjectType);
    put(subject, "role", "possible-victim");
    subject.AddMember("person", person((*chosen)["person"]), a_);
    value subjects(rapidjson::kArrayType);
    subjects.PushBack(subject, a_);
    out.AddMember("subjects", subjects, a_);
    if (b.HasMember("places") && !b["places"].Empty()) {
      value places(rapidjson::kArrayType);
      places.PushBack(*place(b["places"][0], false), a_);
      out.AddMember("places", places, a_);
    }
    out.AddMember("summary", *text(b["summary"], "translations"), a_);
    return out;
  }

  value request(const value& b) {
    static const std::map<std::string, std::string> purpose_of = {
        {"IDENTITY", "identity"},
        {"NATIONALITY", "nationality"},
        {"FAMILY_TRACING", "family-tracing"},
        {"ADDRESS", "identity"}};
    static const std::map<std::string, std::string> code_of = {
        {"identity", "IDENTITY"},
        {"nationality", "NATIONALITY"},
        {"family-tracing", "FAMILY_TRACING"},
        {"document-authenticity", "IDENTITY"}};
    const std::string code = code_of.at(std::string(view_of(b["purpose"])));
    const std::string purpose = purpose_of.at(code);
    std::vector<std::string> codes;
    std::vector<std::string> free;
    if (b.HasMember("questions")) {
      for (const auto& q : b["questions"].GetArray()) {
        const std::string text_value(view_of(q));
        if (purpose_of.contains(text_value)) {
          if (std::find(codes.begin(), codes.end(), text_value) == codes.end()) {
            codes.push_back(text_value);
          }
        } else {
          free.push_back(text_value);
        }
      }
    }
    if (codes.empty() || purpose_of.at(codes.front()) != purpose) {
      codes.erase(std::remove(codes.begin(), codes.end(), code), codes.end());
      codes.insert(codes.begin(), code);
    }
    value out(rapidjson::kObjectType);
    put(out, "purpose", purpose);
    out.AddMember("subject", person(b["subject"]), a_);
    value questions(rapidjson::kArrayType);
    for (const auto& q : codes) {
      questions.PushBack(str(q), a_);
    }
    for (const auto& q : free) {
      questions.PushBack(str(q), a_);
    }
    out.AddMember("questions", questions, a_);
    return out;
  }

  value result(const value& b) {
    value out(rapidjson::kObjectType);
    const auto r = view_of(b["result"]);
    put(out, "result", r == "no-record" ? "not-confirmed" : r);
    out.AddMember("matched", person(b["matched"]), a_);
    if (b.HasMember("notes")) {
      out.AddMember("notes", *text(b["notes"], "translations"), a_);
    }
    return out;
  }

  /// A receipt's errors as KH-CNP's one `reason`: "<pointer> <reason>; ...".
  static std::string joined_errors(const value& b) {
    std::string reason;
    if (b.HasMember("errors")) {
      for (const auto& e : b["errors"].GetArray()) {
        const auto pointer = json::get_string(e, "pointer");
        const std::string one =
            (pointer.empty() ? "" : std::string(pointer) + " ") + std::string(view_of(e["reason"]));
        reason += (reason.empty() ? "" : "; ") + one;
      }
    }
    return reason;
  }

  /// The `reason` a received receipt goes out with: the note a KH receipt had (`unmapped`
  /// "/reason"), else the errors a canonical sender listed; empty for a rejection.
  static std::string receipt_note(const value& m) {
    if (json::get_string(m["body"], "status") != "received") {
      return {};
    }
    if (m.HasMember("unmapped")) {
      if (const auto kept = json::get_string(m["unmapped"], "/reason"); !kept.empty()) {
        return std::string(kept);
      }
    }
    return joined_errors(m["body"]);
  }

  value receipt(const value& b, std::string_view created) {
    value out(rapidjson::kObjectType);
    out.AddMember("inReplyTo", copy(b["inReplyTo"]), a_);
    out.AddMember("status", copy(b["status"]), a_);
    put(out, "received", created);
    if (json::get_string(b, "status") == "rejected") {
      value error(rapidjson::kObjectType);
      put(error, "reason", joined_errors(b));
      value errors(rapidjson::kArrayType);
      errors.PushBack(error, a_);
      out.AddMember("errors", errors, a_);
    }
    return out;
  }
};

// --- generated canonical messages ----------------------------------------------------------------

/// Random valid canonical messages of the types KH-CNP expresses, from a seeded generator, with
/// fields KH-CNP can carry and fields it cannot.
class message_generator {
 public:
  explicit message_generator(unsigned seed) : rng_(seed) {}

  /// Values seen per field, to show every enum value was exercised.
  std::map<std::string, std::set<std::string>> coverage;

  rapidjson::Document next(std::size_t index) {
    rapidjson::Document doc(rapidjson::kObjectType);
    a_ = &doc.GetAllocator();
    static constexpr const char* types[] = {"victim.identification", "person.wanted",
                                            "hotline.tip",           "verification.request",
                                            "verification.result",   "receipt"};
    const std::string type = types[index % std::size(types)];
    put(doc, "mx", "1");
    put(doc, "id", uuid());
    put(doc, "type", type);
    put(doc, "created",
        "2026-" + two(1 + pick(12)) + "-" + two(1 + pick(28)) + "T" + two(pick(24)) + ":" +
            two(pick(60)) + ":" + two(pick(60)) + "Z");
    const std::string sender = one({"vn-gialai", "kh-ratanakiri", "la-houaphanh", "vn-thanhhoa"});
    put(doc, "sender", sender);
    if (coin(60)) {
      value recipients(rapidjson::kArrayType);
      recipients.PushBack("kh-ratanakiri", *a_);
      doc.AddMember("recipients", recipients, *a_);
    }
    if (coin(80)) {
      put(doc, "ref", "REF-" + std::to_string(index) + "-" + std::to_string(pick(100000)));
    }
    if (coin(50) && type != "receipt") {
      put(doc, "inReplyTo", uuid());
    }
    if (coin(40) || (type == "verification.result" && !doc.HasMember("inReplyTo"))) {
      put(doc, "caseRef", "CASE-" + std::to_string(pick(1000)));
    }
    put(doc, "legalBasis",
        note("legalBasis", one({"crime-prevention", "vital-interest", "consent", "legal-obligation",
                                "mutual-legal-assistance"})));
    value handling(rapidjson::kObjectType);
    put(handling, "confidentiality",
        note("confidentiality", one({"restricted", "confidential", "secret"})));
    if (coin(70)) {
      handling.AddMember("codes", subset({"H0", "H1", "H2"}, 1), *a_);
    }
    if (coin(40)) {
      put(handling, "onwardTransfer", one({"prohibited", "with-source-consent", "allowed"}));
    }
    doc.AddMember("handling", handling, *a_);
    if (type == "hotline.tip" || coin(10)) {
      value evaluation(rapidjson::kObjectType);
      put(evaluation, "sourceReliability", one({"A", "B", "C", "X"}));
      evaluation.AddMember("informationAccuracy", 1 + pick(4), *a_);
      doc.AddMember("evaluation", evaluation, *a_);
    }
    if (coin(10)) {
      value source(rapidjson::kObjectType);
      put(source, "agency", "INTERPOL");
      doc.AddMember("source", source, *a_);
    }
    value body = type == "victim.identification"  ? victim()
                 : type == "person.wanted"        ? wanted()
                 : type == "hotline.tip"          ? tip()
                 : type == "verification.request" ? request()
                 : type == "verification.result"  ? result()
                                                  : receipt();
    if (type == "receipt" && json::get_string(body, "status") == "received" && coin(50)) {
      // A KH acknowledgement's note, as the KH decoder keeps it, and a value KH cannot carry.
      value unmapped(rapidjson::kObjectType);
      put(unmapped, "/reason",
          note("receiptNote",
               one({"ឯកសារបានទទួល ប៉ុន្តែរូបថតមិនច្បាស់", "received; photo illegible, please resend"})));
      if (coin(50)) {
        put(unmapped, "/LaoPoliceMessage/Home/@village", "Ban Nakham");
      }
      doc.AddMember("unmapped", unmapped, *a_);
    }
    doc.AddMember("body", body, *a_);
    return doc;
  }

 private:
  std::mt19937 rng_;
  allocator* a_ = nullptr;

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool coin(int percent) { return pick(100) < percent; }
  std::string one(std::initializer_list<const char*> list) {
    return *(list.begin() + pick(static_cast<int>(list.size())));
  }
  std::string note(const std::string& field, std::string v) {
    coverage[field].insert(v);
    return v;
  }
  static std::string two(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }
  std::string uuid() {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) {
        out += '-';
      }
      out += hex[pick(16)];
    }
    return out;
  }
  void put(value& o, const char* name, const std::string& s) {
    o.AddMember(rapidjson::StringRef(name), value(s.c_str(), *a_), *a_);
  }
  value str(const std::string& s) { return value(s.c_str(), *a_); }
  value subset(std::initializer_list<const char*> list, int at_least, const char* field = nullptr) {
    value out(rapidjson::kArrayType);
    for (const char* item : list) {
      if (coin(40)) {
        out.PushBack(str(item), *a_);
        if (field != nullptr) {
          coverage[field].insert(item);
        }
      }
    }
    while (static_cast<int>(out.Size()) < at_least) {
      const std::string item = *(list.begin() + pick(static_cast<int>(list.size())));
      if (std::none_of(out.Begin(), out.End(),
                       [&](const value& v) { return view_of(v) == item; })) {
        out.PushBack(str(item), *a_);
        if (field != nullptr) {
          coverage[field].insert(item);
        }
      }
    }
    return out;
  }

  std::string partial_date() {
    switch (pick(5)) {
      case 0: return std::to_string(1950 + pick(70));
      case 1: return std::to_string(1950 + pick(70)) + "-" + two(1 + pick(12));
      case 2: return note("leap", one({"2000-02-29", "1996-02-29", "2024-02-29", "2008-02-29"}));
      default:
        return std::to_string(1950 + pick(70)) + "-" + two(1 + pick(12)) + "-" + two(1 + pick(28));
    }
  }

  value name(const char* script, const char* kind, bool family, bool given, bool given_first) {
    const bool khmer = std::string_view(script) == "Khmr";
    value n(rapidjson::kObjectType);
    if (family) {
      value parts(rapidjson::kArrayType);
      parts.PushBack(str(khmer ? one({"សុខ", "គំរូ", "ចាន់", "កែវ", "ហេង"})
                               : one({"SOK", "KUMRU", "NGUYEN", "Trần", "KEO", "Lê"})),
                     *a_);
      n.AddMember("family", parts, *a_);
    }
    if (given || !family) {
      value parts(rapidjson::kArrayType);
      const int count = 1 + pick(3);
      for (int i = 0; i < count; ++i) {
        parts.PushBack(str(khmer ? one({"វិចិត្រ", "សុភា", "ដារា", "ស្រីមុំ", "ពៅ"})
                                 : one({"VICHET", "THI", "HOA", "Văn", "Mẫu", "DARA", "Ví"})),
                       *a_);
      }
      n.AddMember("given", parts, *a_);
    }
    put(n, "script", script);
    put(n, "kind", kind);
    if (given_first || coin(70)) {
      put(n, "order", given_first ? "given-first" : "family-first");
    }
    return n;
  }

  value names() {
    value list(rapidjson::kArrayType);
    if (coin(60)) {
      list.PushBack(name("Khmr", "primary", coin(85), coin(85), coin(10)), *a_);
    }
    if (coin(80) || list.Empty()) {
      list.PushBack(name("Latn", "primary", coin(85), coin(85), coin(10)), *a_);
    }
    const int extra = pick(4);
    for (int i = 0; i < extra; ++i) {
      if (coin(50)) {
        const std::string alias =
            note("alias", one({"Hoa", "Tư", "ស្រីហួ", "ສົມພອນ", "สมชาย", "Hoa ស្រី", "王小明"}));
        value n(rapidjson::kObjectType);
        value given(rapidjson::kArrayType);
        given.PushBack(str(alias), *a_);
        n.AddMember("given", given, *a_);
        put(n, "script", std::string(kh_cnp::detect_script(alias)));
        put(n, "kind", one({"alias", "birth", "transliteration"}));
        list.PushBack(n, *a_);
      } else {
        // A second primary name, or a name in another script: both travel as aliases.
        const std::string kind = one({"primary", "alias", "birth"});
        list.PushBack(name(coin(50) ? "Latn" : "Khmr", kind.c_str(), true, coin(50), coin(30)),
                      *a_);
      }
    }
    return list;
  }

  value region() {
    value r(rapidjson::kObjectType);
    switch (pick(4)) {
      case 0:
      case 1:
        put(r, "code", note("province", "KH-" + std::to_string(1 + pick(25))));
        if (coin(50)) {
          put(r, "asRecorded", one({"Ratanakiri", "រតនគិរី", "Stung Treng"}));
        }
        break;
      case 2:
        put(r, "code", one({"VN-30", "VN-31", "LA-HO", "LA-VT"}));
        if (coin(50)) {
          put(r, "asRecorded", one({"Gia Lai", "Houaphanh", "Vientiane"}));
        }
        break;
      default: put(r, "asRecorded", one({"Ban Lung", "Sầm Nưa", "ស្ទឹងត្រែង"}));
    }
    return r;
  }

  value place(bool sighting = false) {
    value p(rapidjson::kObjectType);
    const bool with_region = coin(70);
    if (with_region) {
      value r = region();
      const auto code = json::get_string(r, "code");
      if (coin(70)) {
        put(p, "country", code.empty() ? one({"KH", "VN", "LA"}) : std::string(code.substr(0, 2)));
      }
      p.AddMember("region", r, *a_);
    } else if (coin(50)) {
      put(p, "country", one({"KH", "VN", "LA", "TH", "CN"}));
    }
    if (coin(60)) {
      put(p, "locality", one({"Banlung", "Chư Prông", "O Yadav", "Đức Cơ"}));
    }
    if (coin(50) || p.ObjectEmpty()) {
      put(p, "detail",
          one({"Guesthouse near the bus station", "Rubber plantation camp", "ផ្ទះលេខ ១២",
               "compound km 12"}));
    }
    if (sighting && coin(70)) {
      put(p, "date", partial_date());
      if (coin(30)) {
        p.AddMember("dateApprox", true, *a_);
      }
    }
    return p;
  }

  value text(const char* translations = "translations") {
    value t(rapidjson::kObjectType);
    const int choice = pick(5);
    put(t, "text",
        choice == 0   ? "បានរកឃើញនៅក្នុងបរិវេណ"
        : choice == 1 ? "Found during an inspection"
        : choice == 2 ? "Phát hiện khi kiểm tra"
        : choice == 3 ? "Found; ផ្ទះ"
                      : "ព្រំដែន");
    if (choice != 4 && coin(80)) {
      put(t, "lang", choice == 0 ? "khm" : choice == 1 || choice == 3 ? "eng" : "vie");
    }
    if (coin(50)) {
      value english(rapidjson::kObjectType);
      put(english, "text", "Found during an inspection (translated)");
      put(english, "lang", one({"eng", "eng", "fra"}));
      if (std::string_view(translations) == "translations") {
        value list(rapidjson::kArrayType);
        list.PushBack(english, *a_);
        if (coin(30)) {
          value khmer(rapidjson::kObjectType);
          put(khmer, "text", "បកប្រែ");
          put(khmer, "lang", "khm");
          list.PushBack(khmer, *a_);
        }
        t.AddMember("translations", list, *a_);
      } else {
        t.AddMember("translation", english, *a_);
      }
    }
    return t;
  }

  value photo() {
    std::string bytes;
    const int size = 3 + pick(40);
    for (int i = 0; i < size; ++i) {
      bytes += static_cast<char>(pick(256));
    }
    value p(rapidjson::kObjectType);
    put(p, "mime", one({"image/jpeg", "image/png", "image/webp"}));
    put(p, "sha256", sha256_hex(bytes));
    if (coin(80)) {
      put(p, "data", base64(bytes));
    } else {
      put(p, "href", "https://photos.example/1.jpg");
    }
    if (coin(30)) {
      put(p, "caption", "At the shelter");
    }
    return p;
  }

  value person() {
    value p(rapidjson::kObjectType);
    p.AddMember("names", names(), *a_);
    if (coin(85)) {
      put(p, "sex", note("sex", one({"M", "F", "X", "U"})));
    }
    if (coin(70)) {
      put(p, "birthDate", partial_date());
      if (coin(40)) {
        p.AddMember("birthDateApprox", coin(50), *a_);
      }
    } else if (coin(60)) {
      value estimate(rapidjson::kObjectType);
      const int min = 10 + pick(30);
      if (coin(80)) {
        estimate.AddMember("min", min, *a_);
      }
      if (coin(60) || estimate.ObjectEmpty()) {
        estimate.AddMember("max", min + pick(4), *a_);
      }
      p.AddMember("ageEstimate", estimate, *a_);
    }
    if (coin(70)) {
      p.AddMember("nationalities", subset({"VN", "KH", "LA", "TH", "CN", "MM"}, 1), *a_);
    }
    if (coin(50)) {
      value docs(rapidjson::kArrayType);
      const int count = 1 + pick(3);
      for (int i = 0; i < count; ++i) {
        value d(rapidjson::kObjectType);
        put(d, "type",
            note("document",
                 one({"passport", "national-id", "citizen-id", "border-pass", "birth-certificate",
                      "family-book", "residence-permit", "work-permit", "other"})));
        if (coin(80)) {
          put(d, "number", "N" + std::to_string(pick(1000000)));
        }
        if (coin(70)) {
          put(d, "issuingCountry", one({"VN", "KH", "LA", "TH"}));
        }
        if (coin(30)) {
          put(d, "issued", partial_date());
        }
        docs.PushBack(d, *a_);
      }
      p.AddMember("documents", docs, *a_);
    }
    if (coin(60)) {
      p.AddMember("homeRegion", region(), *a_);
    }
    if (coin(60)) {
      p.AddMember("languages", subset({"vie", "khm", "lao", "eng", "tha", "jra", "zho", "hmn"}, 1),
                  *a_);
    }
    if (coin(25)) {
      value photos(rapidjson::kArrayType);
      const int count = 1 + pick(2);
      for (int i = 0; i < count; ++i) {
        photos.PushBack(photo(), *a_);
      }
      p.AddMember("photos", photos, *a_);
    }
    if (coin(20)) {
      value physical(rapidjson::kObjectType);
      physical.AddMember("heightCm", 150 + pick(40), *a_);
      p.AddMember("physical", physical, *a_);
    }
    if (coin(20)) {
      p.AddMember("minor", coin(50), *a_);
    }
    return p;
  }

  value victim() {
    value b(rapidjson::kObjectType);
    b.AddMember("person", person(), *a_);
    put(b, "status", note("victimStatus", one({"possible", "identified", "rescued", "returned"})));
    if (coin(30)) {
      put(b, "statusDecidedBy", one({"police", "ngo", "court"}));
    }
    if (coin(80)) {
      b.AddMember("exploitation",
                  subset({"forced-labour", "sexual", "child-labour", "forced-marriage", "servitude",
                          "forced-criminality", "organ-removal", "forced-begging",
                          "forced-adoption", "surrogacy", "other"},
                         1, "exploitation"),
                  *a_);
    }
    if (coin(70)) {
      value events(rapidjson::kArrayType);
      const int count = 1 + pick(3);
      for (int i = 0; i < count; ++i) {
        value e(rapidjson::kObjectType);
        put(e, "type",
            one({"recruitment", "transit", "identification", "identification", "rescue",
                 "repatriation"}));
        if (coin(70)) {
          put(e, "date", partial_date());
        }
        if (coin(20)) {
          e.AddMember("dateApprox", true, *a_);
        }
        if (coin(70)) {
          e.AddMember("place", place(), *a_);
        }
        if (coin(20)) {
          put(e, "note", "seen by a witness");
        }
        events.PushBack(e, *a_);
      }
      b.AddMember("events", events, *a_);
    }
    if (coin(60)) {
      b.AddMember("accompanyingMinors", pick(4), *a_);
    }
    if (coin(70)) {
      b.AddMember(
          "needs",
          subset({"medical", "shelter", "psychological", "legal", "interpreter", "travel-document"},
                 1, "needs"),
          *a_);
    }
    if (coin(60)) {
      b.AddMember("repatriationRequested", coin(50), *a_);
    }
    if (coin(60)) {
      value consent(rapidjson::kObjectType);
      consent.AddMember("given", coin(70), *a_);
      if (coin(50)) {
        consent.AddMember("scope", subset({"victim-protection", "investigation"}, 1), *a_);
      }
      b.AddMember("consent", consent, *a_);
    }
    if (coin(20)) {
      value means(rapidjson::kArrayType);
      means.PushBack("debt-bondage", *a_);
      b.AddMember("meansOfControl", means, *a_);
    }
    if (coin(60)) {
      b.AddMember("narrative", text(), *a_);
    }
    return b;
  }

  value wanted() {
    value b(rapidjson::kObjectType);
    b.AddMember("person", person(), *a_);
    value warrants(rapidjson::kArrayType);
    const int count = 1 + pick(2);
    for (int i = 0; i < count; ++i) {
      value w(rapidjson::kObjectType);
      if (coin(80)) {
        put(w, "number", "W/" + std::to_string(pick(1000)));
      }
      put(w, "issuingCountry", note("issuingCountry", one({"VN", "KH", "LA", "TH"})));
      if (coin(70)) {
        put(w, "issuingAuthority", one({"Stung Treng Provincial Court", "Tòa án tỉnh Gia Lai"}));
      }
      if (coin(70)) {
        put(w, "issued", partial_date());
      }
      if (coin(30)) {
        put(w, "expires", partial_date());
      }
      value charges(rapidjson::kArrayType);
      const int charge_count = 1 + pick(3);
      for (int k = 0; k < charge_count; ++k) {
        value c(rapidjson::kObjectType);
        const std::string code = one({"KH-LAW-2008-ART10", "BLHS-2015 art. 150"});
        if (coin(15)) {
          put(c, "text", code);  // only the statute reference is known
        } else {
          c = text("translation");
        }
        if (coin(70) || c["text"] == value(code.c_str(), *a_)) {
          value statute(rapidjson::kObjectType);
          put(statute, "jurisdiction", one({"KH", "VN"}));
          put(statute, "code", code);
          c.AddMember("statute", statute, *a_);
        }
        if (coin(30)) {
          put(c, "category", "trafficking-in-persons");
        }
        charges.PushBack(c, *a_);
      }
      w.AddMember("charges", charges, *a_);
      warrants.PushBack(w, *a_);
    }
    b.AddMember("warrants", warrants, *a_);
    put(b, "requestedAction",
        note("requestedAction",
             one({"locate-and-arrest", "locate-and-inform", "monitor", "provide-information"})));
    if (coin(60)) {
      b.AddMember("warnings", subset({"armed", "violent", "escape-risk"}, 1, "warnings"), *a_);
    }
    if (coin(70)) {
      b.AddMember("lastSeen", place(true), *a_);
    }
    if (coin(30)) {
      b.AddMember("countriesLikelyToBeVisited", subset({"KH", "LA", "TH"}, 1), *a_);
    }
    return b;
  }

  value tip() {
    value b(rapidjson::kObjectType);
    put(b, "receivedAt",
        "2026-" + two(1 + pick(12)) + "-" + two(1 + pick(28)) + "T" + two(pick(24)) + ":" +
            two(pick(60)) + ":" + two(pick(60)) +
            note("offset", one({"Z", "+07:00", "+08:00", "-05:00"})));
    put(b, "channel",
        note("channel", one({"hotline-111", "hotline-1288", "hotline-1300", "phone", "web", "zalo",
                             "facebook", "walk-in", "ngo-referral", "other"})));
    if (coin(80)) {
      put(b, "reporterType",
          note("reporterType", one({"victim", "family", "public", "ngo", "anonymous"})));
    }
    put(b, "urgency", note("urgency", one({"immediate", "high", "normal"})));
    value subjects(rapidjson::kArrayType);
    const int count = 1 + pick(3);
    const int with_person = pick(count);
    for (int i = 0; i < count; ++i) {
      value s(rapidjson::kObjectType);
      put(s, "role", one({"possible-victim", "suspected-trafficker", "witness"}));
      if (i == with_person || coin(40)) {
        s.AddMember("person", person(), *a_);
      } else {
        put(s, "description", "A man of about 30");
      }
      subjects.PushBack(s, *a_);
    }
    b.AddMember("subjects", subjects, *a_);
    if (coin(70)) {
      value places(rapidjson::kArrayType);
      const int place_count = 1 + pick(2);
      for (int i = 0; i < place_count; ++i) {
        places.PushBack(place(), *a_);
      }
      b.AddMember("places", places, *a_);
    }
    if (coin(30)) {
      b.AddMember("suspectedExploitation", subset({"sexual", "forced-criminality"}, 1), *a_);
    }
    b.AddMember("summary", text(), *a_);
    return b;
  }

  value request() {
    value b(rapidjson::kObjectType);
    put(b, "purpose",
        note("purpose",
             one({"nationality", "identity", "family-tracing", "document-authenticity"})));
    b.AddMember("subject", person(), *a_);
    if (coin(80)) {
      value questions(rapidjson::kArrayType);
      const int count = 1 + pick(4);
      for (int i = 0; i < count; ++i) {
        questions.PushBack(str(one({"IDENTITY", "NATIONALITY", "ADDRESS", "FAMILY_TRACING",
                                    "Is she registered in Bar Kaev?", "តើនាងរស់នៅទីណា?"})),
                           *a_);
      }
      b.AddMember("questions", questions, *a_);
    }
    if (coin(40)) {
      put(b, "deadline", "2026-12-05");
    }
    if (coin(40)) {
      put(b, "urgency", "high");
    }
    return b;
  }

  value result() {
    value b(rapidjson::kObjectType);
    put(b, "result", note("result", one({"confirmed", "not-confirmed", "partial", "no-record"})));
    b.AddMember("matched", person(), *a_);
    if (coin(70)) {
      b.AddMember("notes", text(), *a_);
    }
    if (coin(30)) {
      value docs(rapidjson::kArrayType);
      value d(rapidjson::kObjectType);
      put(d, "type", "other");
      docs.PushBack(d, *a_);
      b.AddMember("documentsIssued", docs, *a_);
    }
    return b;
  }

  value receipt() {
    value b(rapidjson::kObjectType);
    put(b, "inReplyTo", uuid());
    const std::string status = note("receiptStatus", one({"received", "rejected"}));
    put(b, "status", status);
    put(b, "received", "2026-11-21T02:50:01Z");
    if (status == "rejected") {
      value errors(rapidjson::kArrayType);
      const int count = 1 + pick(2);
      for (int i = 0; i < count; ++i) {
        value e(rapidjson::kObjectType);
        if (coin(50)) {
          put(e, "pointer", "/body/person/sex");
        }
        put(e, "reason", "is not a known sex code");
        errors.PushBack(e, *a_);
      }
      b.AddMember("errors", errors, *a_);
    }
    return b;
  }
};

// --- the tests -----------------------------------------------------------------------------------

class KhCnpRoundTrip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<pipeline::config_problem> problems;
    checker_ = std::make_unique<pipeline::canonical_checker>(pipeline::canonical_checker::load(
        source_dir() / "config" / "schema", source_dir() / "config" / "mappings", problems));
    problems_ = problems.size();
  }
  static void TearDownTestSuite() { checker_.reset(); }
  void SetUp() override {
    ASSERT_EQ(problems_, 0u);
    ASSERT_NE(kh(), nullptr);
  }

  static const adapter* kh() { return find_adapter("kh-cnp"); }

  static std::string check(const rapidjson::Value& message) {
    rapidjson::Document parsed;
    const auto verdict =
        checker_->check(json::to_string(message), json::get_string(message, "sender"), parsed);
    return verdict.status == 0 ? std::string() : verdict.detail + "\n" + describe(verdict.errors);
  }

  /// canonical -> KH -> canonical, asserting each step; the message as it came back.
  static rapidjson::Document through_kh(const rapidjson::Value& m,
                                        std::string* kh_bytes = nullptr) {
    const std::string sender(json::get_string(m, "sender"));
    const auto encoded = kh()->encode(
        m, {.tables = &checker_->tables(), .sender = sender, .recipient = "kh-ratanakiri"});
    EXPECT_EQ(encoded.status, 0) << describe(encoded.errors) << json::to_string(m);
    if (kh_bytes != nullptr) {
      *kh_bytes = encoded.bytes;
    }
    auto decoded = kh()->decode(encoded.bytes, {.tables = &checker_->tables(), .sender = sender});
    EXPECT_EQ(decoded.status, 0) << describe(decoded.errors) << encoded.bytes;
    return std::move(decoded.message);
  }

  static inline std::unique_ptr<pipeline::canonical_checker> checker_;
  static inline std::size_t problems_ = 0;
};

TEST_F(KhCnpRoundTrip, RepositoryExamplesKeepEveryFieldKhCanCarry) {
  for (const std::string type : {"victim.identification", "person.wanted", "hotline.tip",
                                 "verification.request", "verification.result", "receipt"}) {
    SCOPED_TRACE(type);
    const auto m = test::read_file(source_dir() / "config" / "examples" / (type + ".json"));
    rapidjson::Document original;
    original.Parse(m.c_str());
    const auto back = through_kh(original);
    EXPECT_EQ(check(back), "");
    rapidjson::Document expected;
    expected.CopyFrom(kh_projection(checker_->tables(), expected.GetAllocator()).message(original),
                      expected.GetAllocator());
    EXPECT_EQ(back, expected) << "got:      " << json::to_string(back)
                              << "\nexpected: " << json::to_string(expected);
  }
}

TEST_F(KhCnpRoundTrip, GeneratedMessagesKeepEveryFieldKhCanCarry) {
  constexpr std::size_t count = 300;
  message_generator generator(20261121);
  std::size_t checked = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const auto m = generator.next(i);
    SCOPED_TRACE("message " + std::to_string(i) + ": " + json::to_string(m));
    ASSERT_EQ(check(m), "") << "the generator made an invalid canonical message";
    std::string kh_bytes;
    const auto back = through_kh(m, &kh_bytes);
    ASSERT_FALSE(back.IsNull());
    EXPECT_EQ(check(back), "");
    rapidjson::Document expected;
    expected.CopyFrom(kh_projection(checker_->tables(), expected.GetAllocator()).message(m),
                      expected.GetAllocator());
    EXPECT_EQ(back, expected) << "KH:       " << kh_bytes << "\ngot:      " << json::to_string(back)
                              << "\nexpected: " << json::to_string(expected);
    // And what came back is a fixpoint: decode -> encode -> decode changes nothing.
    EXPECT_EQ(through_kh(back), back);
    ++checked;
    if (HasFailure()) {
      break;  // one well-described failure is enough
    }
  }
  EXPECT_EQ(checked, count);
  // Every value KH-CNP supports was exercised.
  const std::map<std::string, std::size_t> expected_coverage = {
      {"exploitation", 11}, {"channel", 10},        {"document", 9},      {"victimStatus", 4},
      {"result", 4},        {"purpose", 4},         {"urgency", 3},       {"reporterType", 5},
      {"sex", 4},           {"needs", 6},           {"receiptStatus", 2}, {"confidentiality", 3},
      {"leap", 4},          {"offset", 4},          {"warnings", 3},      {"province", 25},
      {"alias", 7},         {"requestedAction", 4}, {"receiptNote", 2},   {"issuingCountry", 4}};
  for (const auto& [field, size] : expected_coverage) {
    EXPECT_EQ(generator.coverage[field].size(), size) << field;
  }
}

/// Every JSON Pointer in `v` below `at` (not the root itself).
void pointers(const value& v, const std::string& at, std::vector<std::string>& out) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      const std::string child = at + "/" + json::escape_pointer_token(view_of(m.name));
      out.push_back(child);
      pointers(m.value, child, out);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const std::string child = at + "/" + std::to_string(i);
      out.push_back(child);
      pointers(v[i], child, out);
    }
  }
}

/// Values a careless or hostile partner might put anywhere.
constexpr const char* odd_values[] = {"null", "0",     "-1",      "1e300",          "26",
                                      "\"\"", "\"x\"", "\"0\"",   "\"31/02/2026\"", "true",
                                      "[]",   "{}",    "[\"x\"]", "{\"x\": 1}"};

TEST_F(KhCnpRoundTrip, WhateverTheDecoderAcceptsPassesTheCanonicalCheck) {
  std::size_t accepted = 0;
  std::size_t refused = 0;
  const auto golden = source_dir() / "tests" / "adapters" / "golden" / "kh-cnp";
  for (const char* file : {"victim-referral.kh.json", "wanted-person.kh.json",
                           "encode-hotline.tip.kh.json", "encode-verification.request.kh.json",
                           "encode-verification.result.kh.json", "encode-receipt.kh.json"}) {
    rapidjson::Document seed;
    const std::string text = test::read_file(golden / file);
    seed.Parse(text.c_str());
    std::vector<std::string> all;
    pointers(seed, "", all);
    for (const auto& pointer : all) {
      for (const char* odd : odd_values) {
        rapidjson::Document doc;
        doc.CopyFrom(seed, doc.GetAllocator());
        rapidjson::Document replacement;
        replacement.Parse(odd);
        rapidjson::Pointer(pointer.c_str()).Set(doc, replacement);
        for (const bool carry : {false, true}) {
          SCOPED_TRACE(std::string(file) + " " + pointer + " = " + odd + (carry ? " (carry)" : ""));
          const auto result = kh()->decode(
              json::to_string(doc),
              {.tables = &checker_->tables(), .sender = "kh-ratanakiri", .carry_unmapped = carry});
          if (pointer == "/format") {
            EXPECT_EQ(result.status, 400);
            continue;
          }
          ASSERT_TRUE(result.status == 0 || result.status == 422) << result.status;
          if (result.status == 0) {
            ++accepted;
            ASSERT_EQ(check(result.message), "") << json::to_string(result.message);
          } else {
            ++refused;
            ASSERT_FALSE(result.errors.empty());
            EXPECT_TRUE(result.message.IsNull());
          }
        }
      }
    }
  }
  EXPECT_GT(accepted, 100u);
  EXPECT_GT(refused, 1000u);
}

TEST_F(KhCnpRoundTrip, AValidCanonicalMessageThatEncodesComesBackValid) {
  std::size_t encoded_count = 0;
  for (const std::string type : {"victim.identification", "person.wanted", "hotline.tip",
                                 "verification.request", "verification.result", "receipt"}) {
    rapidjson::Document seed;
    const std::string text =
        test::read_file(source_dir() / "config" / "examples" / (type + ".json"));
    seed.Parse(text.c_str());
    std::vector<std::string> all;
    pointers(seed, "", all);
    for (const auto& pointer : all) {
      for (const char* odd : odd_values) {
        rapidjson::Document doc;
        doc.CopyFrom(seed, doc.GetAllocator());
        rapidjson::Document replacement;
        replacement.Parse(odd);
        rapidjson::Pointer(pointer.c_str()).Set(doc, replacement);
        SCOPED_TRACE(type + " " + pointer + " = " + odd);
        const auto encoded = kh()->encode(
            doc, {.tables = &checker_->tables(), .sender = "vn-gialai", .recipient = "kh-x"});
        ASSERT_TRUE(encoded.status == 0 || encoded.status == 422) << encoded.status;
        if (encoded.status != 0 || !check(doc).empty()) {
          continue;  // only messages the pipeline would accept reach an encoder
        }
        ++encoded_count;
        const auto back =
            kh()->decode(encoded.bytes, {.tables = &checker_->tables(), .sender = "vn-gialai"});
        ASSERT_EQ(back.status, 0) << describe(back.errors) << encoded.bytes;
        ASSERT_EQ(check(back.message), "") << json::to_string(back.message);
      }
    }
  }
  EXPECT_GT(encoded_count, 50u);
}

TEST_F(KhCnpRoundTrip, ScriptDetection) {
  EXPECT_EQ(kh_cnp::detect_script("សុខ វិចិត្រ"), "Khmr");
  EXPECT_EQ(kh_cnp::detect_script("Trần Văn Mẫu"), "Latn");
  EXPECT_EQ(kh_cnp::detect_script("O'YADAV-2"), "Latn");
  EXPECT_EQ(kh_cnp::detect_script("ສົມພອນ"), "Laoo");
  EXPECT_EQ(kh_cnp::detect_script("สมชาย"), "Thai");
  EXPECT_EQ(kh_cnp::detect_script("Hoa ស្រី"), "Zyyy");
  EXPECT_EQ(kh_cnp::detect_script("王小明"), "Zyyy");
  EXPECT_EQ(kh_cnp::detect_script("1234"), "Zyyy");
  EXPECT_EQ(kh_cnp::split_name("  THI   HOA "), (std::vector<std::string_view>{"THI", "HOA"}));
  EXPECT_EQ(kh_cnp::split_name("A B C D E F G H I J K L").size(), 10u);
  EXPECT_EQ(kh_cnp::split_name("A B C D E F G H I J K L").back(), "J K L");
}

}  // namespace
}  // namespace mxgw::adapters
