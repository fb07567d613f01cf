// Canonical mx/1 -> LA-MPS-XML/1.3: the encoder over libxml2's tree writer
// (docs/adapters/la-mps.md).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/references.hpp"
#include "adapters/la-mps/la_mps_codes.hpp"
#include "adapters/la-mps/la_mps_format.hpp"
#include "adapters/la-mps/la_mps_xml.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::adapters::la_mps {

inline const json_value* member(const json_value& v, const char* name) {
  if (!v.IsObject()) {
    return nullptr;
  }
  auto it = v.FindMember(name);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

inline std::optional<std::string> string_member(const json_value& v, const char* name) {
  const json_value* m = member(v, name);
  if (m == nullptr || !m->IsString() || m->GetStringLength() == 0) {
    return std::nullopt;
  }
  return std::string(m->GetString(), m->GetStringLength());
}

inline std::string joined_parts(const json_value* parts) {
  std::string out;
  if (parts == nullptr || !parts->IsArray()) {
    return out;
  }
  for (const auto& p : parts->GetArray()) {
    if (p.IsString()) {
      out += out.empty() ? "" : " ";
      out.append(p.GetString(), p.GetStringLength());
    }
  }
  return out;
}

/// The calendar for dates on one element: BE, unless a year would not fit in four digits.
inline era calendar_for(std::initializer_list<const std::optional<std::string>*> dates) {
  for (const auto* d : dates) {
    if (!d->has_value() || (*d)->size() < 4) {
      continue;
    }
    int year = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const char c = (**d)[i];
      year = c >= '0' && c <= '9' ? year * 10 + (c - '0') : 0;
    }
    if (year + be_offset > 9999) {
      return era::common;
    }
  }
  return era::buddhist;
}

/// Writes one canonical message as LA-MPS XML, collecting what cannot be expressed.
class encoder {
 public:
  /// `answered_id` / `answered_reference`: adapter_context's, for replyTo.
  explicit encoder(const la_mps_codes& codes, std::string answered_id = {},
                   std::string answered_reference = {})
      : codes_(codes),
        answered_id_(std::move(answered_id)),
        answered_reference_(std::move(answered_reference)) {}

  std::vector<field_error> errors;

  std::string run(const json_value& m) {
    if (!m.IsObject()) {
      fail("", "is not a JSON object");
      return {};
    }
    unmapped_ = member(m, "unmapped");
    const auto type = string_member(m, "type").value_or("");
    const auto partner_type = to_partner(message_types, type);
    if (!partner_type) {
      fail("/type", "LA-MPS-XML/1.3 has no message type for " + quote(type));
      return {};
    }
    const json_value* body = member(m, "body");
    if (body == nullptr || !body->IsObject()) {
      fail("/body", "is required");
      return {};
    }
    xmlNodePtr root = w_.root("LaoPoliceMessage");
    w_.attribute(root, "version", format_version);
    w_.attribute(root, "type", std::string(*partner_type));
    // The sender's reference with the canonical id, so that a reply naming it is linked exactly.
    const auto own_ref = string_member(m, "ref");
    const auto id = string_member(m, "id");
    if (!id) {
      fail("/id", "is required");
    } else {
      attribute(root, "ref", outbound_reference(own_ref.value_or(""), *id),
                own_ref ? "/ref" : "/id");
    }
    const auto created = string_member(m, "created").value_or("");
    const std::string date = utc_to_local_date(created, lao_offset_minutes, era::buddhist);
    if (date.empty()) {
      fail("/created", "is not an RFC 3339 time");
    } else {
      w_.attribute(root, "date", date);
      w_.attribute(root, "time", utc_to_local_hm(created, lao_offset_minutes));
      w_.attribute(root, "calendar", "BE");
    }
    const json_value* handling = member(m, "handling");
    const auto confidentiality =
        handling ? string_member(*handling, "confidentiality") : std::nullopt;
    const auto marking =
        confidentiality ? codes_.to_partner("classification", *confidentiality) : std::nullopt;
    if (marking) {
      w_.attribute(root, "classification", *marking);
    } else {
      fail("/handling/confidentiality", "has no LA-MPS classification");
    }
    reply_to(root, m, *body, type);

    if (type == "victim.identification") {
      victim(root, *body);
    } else if (type == "person.wanted") {
      wanted(root, *body);
    } else if (type == "hotline.tip") {
      hotline(root, *body);
    } else if (type == "verification.request") {
      request(root, *body);
    } else if (type == "verification.result") {
      result(root, *body);
    } else {
      receipt(root, *body);
    }
    return errors.empty() ? w_.to_string() : std::string();
  }

 private:
  void fail(std::string pointer, std::string reason) {
    errors.push_back({std::move(pointer), std::move(reason)});
  }

  /// Sets an attribute after checking that XML 1.0 can carry the value.
  void attribute(xmlNodePtr node, const char* name, const std::string& value,
                 const std::string& pointer) {
    if (!la_mps::is_xml_text(value)) {
      fail(pointer, "holds a character XML 1.0 cannot carry");
      return;
    }
    w_.attribute(node, name, value);
  }

  /// Adds a child with text after checking that XML 1.0 can carry the text.
  xmlNodePtr text_child(xmlNodePtr parent, const char* name, const std::string& value,
                        const std::string& pointer) {
    if (!la_mps::is_xml_text(value)) {
      fail(pointer, "holds a character XML 1.0 cannot carry");
      return nullptr;
    }
    xmlNodePtr node = w_.child(parent, name);
    w_.text(node, value);
    return node;
  }

  /// A value this adapter kept in `unmapped` when the message came from LA-MPS.
  std::optional<std::string> kept(const char* key) const {
    return unmapped_ ? string_member(*unmapped_, key) : std::nullopt;
  }

  /// "DD/MM/YYYY" of a canonical partial date in `calendar`; empty (and an error) when invalid.
  std::string dmy(const std::optional<std::string>& partial, era calendar,
                  const std::string& pointer) {
    if (!partial || !is_valid_partial_date(*partial)) {
      fail(pointer, "is not a partial date");
      return {};
    }
    return partial_to_dmy(*partial, calendar);
  }

  void reply_to(xmlNodePtr root, const json_value& m, const json_value& body,
                const std::string& type) {
    std::optional<std::string> reference = kept(reply_to_key);
    std::string pointer = "/inReplyTo";
    if (!reference && type == "receipt") {
      reference = string_member(body, "inReplyTo");
      pointer = "/body/inReplyTo";
    }
    if (!reference) {
      reference = string_member(m, "inReplyTo");
      pointer = "/inReplyTo";
    }
    // The office's own ref for a message it sent us: the gateway id is not one it knows.
    if (reference && !answered_reference_.empty() && same_message_id(*reference, answered_id_)) {
      reference = answered_reference_;
    }
    if (reference) {
      attribute(root, "replyTo", *reference, pointer);
    } else if (type == "verification.result" || type == "receipt") {
      fail(pointer, "is required: LA-MPS needs replyTo on a " + type + " message");
    }
  }

  // ---- person ----

  void person(xmlNodePtr parent, const json_value& p, const std::string& ptr, const char* role) {
    xmlNodePtr node = w_.child(parent, "Person");
    w_.attribute(node, "role", role);
    const json_value* names = member(p, "names");
    std::optional<rapidjson::SizeType> lao;
    std::optional<rapidjson::SizeType> latin;
    std::vector<rapidjson::SizeType> aliases;
    if (names != nullptr && names->IsArray()) {
      // Only a name the source gave as the person's primary name is an official <Name>: the
      // Latin one is authoritative for the recipient, so a transliteration the gateway made
      // (kind "transliteration") must never become it. Every other name is an <Alias>.
      for (rapidjson::SizeType i = 0; i < names->Size(); ++i) {
        const json_value& n = (*names)[i];
        const auto script = string_member(n, "script").value_or("");
        const bool primary = string_member(n, "kind").value_or("") == "primary";
        if (primary && script == "Laoo" && !lao) {
          lao = i;
        } else if (primary && script == "Latn" && !latin) {
          latin = i;
        } else {
          aliases.push_back(i);
        }
      }
    }
    for (const auto& [index, script] : {std::pair{lao, "lao"}, std::pair{latin, "latin"}}) {
      if (!index) {
        continue;
      }
      const json_value& n = (*names)[*index];
      const std::string where = ptr + "/names/" + std::to_string(*index);
      xmlNodePtr name = w_.child(node, "Name");
      w_.attribute(name, "script", script);
      const std::string family = joined_parts(member(n, "family"));
      const std::string given = joined_parts(member(n, "given"));
      if (!family.empty()) {
        attribute(name, "family", family, where + "/family");
      }
      if (!given.empty()) {
        attribute(name, "given", given, where + "/given");
      }
    }
    for (const auto index : aliases) {
      const json_value& n = (*names)[index];
      const std::string family = joined_parts(member(n, "family"));
      const std::string given = joined_parts(member(n, "given"));
      const bool given_first = string_member(n, "order").value_or("") == "given-first";
      std::string full = given_first ? given : family;
      const std::string& second = given_first ? family : given;
      if (!second.empty()) {
        full += full.empty() ? second : " " + second;
      }
      if (!full.empty()) {
        text_child(node, "Alias", full, ptr + "/names/" + std::to_string(index));
      }
    }
    if (const auto sex = string_member(p, "sex")) {
      if (const auto word = codes_.to_partner("sex", *sex)) {
        text_child(node, "Gender", *word, ptr + "/sex");
      }
    }
    const auto birth = string_member(p, "birthDate");
    if (birth) {
      const era cal = calendar_for({&birth});
      const std::string text = dmy(birth, cal, ptr + "/birthDate");
      if (!text.empty()) {
        xmlNodePtr b = text_child(node, "BirthDate", text, ptr + "/birthDate");
        w_.attribute(b, "calendar", cal == era::buddhist ? "BE" : "CE");
        if (const json_value* approx = member(p, "birthDateApprox"); approx && approx->IsBool()) {
          w_.attribute(b, "approx", approx->GetBool() ? "true" : "false");
        }
      }
    } else if (const json_value* estimate = member(p, "ageEstimate")) {
      const json_value* low = member(*estimate, "min");
      const json_value* high = member(*estimate, "max");
      const json_value* age = low != nullptr && low->IsInt() ? low : high;
      if (age != nullptr && age->IsInt()) {
        xmlNodePtr a = text_child(node, "Age", std::to_string(age->GetInt()), ptr + "/ageEstimate");
        w_.attribute(a, "estimated", "true");
      }
    }
    if (const json_value* list = member(p, "nationalities"); list && list->IsArray()) {
      for (const auto& c : list->GetArray()) {
        if (!c.IsString()) {
          continue;
        }
        if (const auto alpha3 = codes_.column_of("country", c.GetString(), "alpha3")) {
          text_child(node, "Nationality", *alpha3, ptr + "/nationalities");
        }
      }
    }
    if (const json_value* list = member(p, "documents"); list && list->IsArray()) {
      for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
        document(node, (*list)[i], ptr + "/documents/" + std::to_string(i));
      }
    }
    if (const json_value* home = member(p, "homeRegion")) {
      if (const auto code = string_member(*home, "code")) {
        xmlNodePtr h = w_.child(node, "Home");
        w_.attribute(h, "province", *code);
        if (const auto village = kept(village_key)) {
          attribute(h, "village", *village, "/unmapped");
        }
      }
    }
    if (const json_value* list = member(p, "languages"); list && list->IsArray()) {
      for (const auto& c : list->GetArray()) {
        if (!c.IsString()) {
          continue;
        }
        if (const auto iso639_1 = codes_.column_of("language", c.GetString(), "iso639_1")) {
          text_child(node, "Language", *iso639_1, ptr + "/languages");
        }
      }
    }
  }

  void document(xmlNodePtr person_node, const json_value& d, const std::string& ptr) {
    const auto type = string_member(d, "type").value_or("");
    auto partner = codes_.to_partner("document-type", type);
    if (!partner) {
      if (const auto fallback = to_partner(document_fallbacks, type)) {
        partner = std::string(*fallback);
      }
    }
    if (!partner) {
      fail(ptr + "/type", quote(type) + " has no LA-MPS document type");
      return;
    }
    const std::string number = string_member(d, "number").value_or("");
    xmlNodePtr node = number.empty() ? w_.child(person_node, "Document")
                                     : text_child(person_node, "Document", number, ptr + "/number");
    if (node == nullptr) {
      return;
    }
    w_.attribute(node, "type", *partner);
    if (const auto country = string_member(d, "issuingCountry")) {
      if (const auto alpha3 = codes_.column_of("country", *country, "alpha3")) {
        w_.attribute(node, "issuer", *alpha3);
      }
    }
  }

  // ---- places and dates ----

  /// The one place text LA-MPS has: "locality, detail", or whichever of them there is (detail
  /// alone when the two together would exceed the 2000 characters of a canonical detail).
  static std::optional<std::string> place_text(const json_value& place) {
    const auto locality = string_member(place, "locality");
    const auto detail = string_member(place, "detail");
    if (locality && detail) {
      std::string both = *locality + ", " + *detail;
      return length_of(both) <= 2000 ? both : *detail;
    }
    return detail ? detail : locality;
  }

  static std::optional<std::string> region_code(const json_value& place) {
    const json_value* r = member(place, "region");
    return r ? string_member(*r, "code") : std::nullopt;
  }

  void narrative(xmlNodePtr root, const json_value* text, const std::string& ptr) {
    if (text == nullptr) {
      return;
    }
    const auto value = string_member(*text, "text");
    if (!value) {
      return;
    }
    xmlNodePtr n = text_child(root, "Narrative", *value, ptr + "/text");
    if (n == nullptr) {
      return;
    }
    if (const auto lang = string_member(*text, "lang")) {
      if (const auto code = to_partner(narrative_languages, *lang)) {
        w_.attribute(n, "lang", std::string(*code));
      }
    }
  }

  /// The <Narrative> of a type whose body has no free text, from `unmapped`.
  void kept_narrative(xmlNodePtr root) {
    if (const auto text = kept(narrative_key)) {
      xmlNodePtr n = text_child(root, "Narrative", *text, "/unmapped");
      if (n != nullptr) {
        if (const auto lang = kept(narrative_lang_key)) {
          attribute(n, "lang", *lang, "/unmapped");
        }
      }
    }
  }

  // ---- bodies ----

  void victim(xmlNodePtr root, const json_value& body) {
    if (const json_value* p = member(body, "person")) {
      person(root, *p, "/body/person", "victim");
    } else {
      fail("/body/person", "is required");
    }
    xmlNodePtr v = w_.child(root, "Victim");
    const auto status = string_member(body, "status").value_or("");
    if (const auto code = codes_.to_partner("victim-status", status)) {
      w_.attribute(v, "status", *code);
    } else {
      fail("/body/status", quote(status) + " has no LA-MPS victim status");
    }
    if (const json_value* r = member(body, "repatriationRequested"); r && r->IsBool()) {
      w_.attribute(v, "repatriation", r->GetBool() ? "true" : "false");
    }
    if (const json_value* c = member(body, "consent")) {
      if (const json_value* given = member(*c, "given"); given && given->IsBool()) {
        w_.attribute(v, "consent", given->GetBool() ? "true" : "false");
      }
    }
    if (const json_value* n = member(body, "accompanyingMinors"); n && n->IsInt()) {
      w_.attribute(v, "minors", std::to_string(n->GetInt()));
    }
    // LA-MPS requires one or more <Exploitation> and has no code for "not known": its `other`
    // says a form of exploitation other than those listed, which the sender did not say. So a
    // victim without one is refused rather than given a form it was not reported with.
    std::vector<std::string> written;
    if (const json_value* list = member(body, "exploitation"); list && list->IsArray()) {
      for (const auto& c : list->GetArray()) {
        if (!c.IsString()) {
          continue;
        }
        auto code = codes_.to_partner("exploitation", c.GetString());
        if (!code) {
          if (const auto fallback = to_partner(exploitation_fallbacks, c.GetString())) {
            code = std::string(*fallback);
          }
        }
        if (code && std::find(written.begin(), written.end(), *code) == written.end()) {
          written.push_back(*code);
          w_.text(w_.child(v, "Exploitation"), *code);
        }
      }
    }
    if (written.empty()) {
      fail("/body/exploitation",
           "is required by LA-MPS (one or more <Exploitation>), which has no code for an "
           "exploitation not yet known; 'other' would say a form that was not reported");
    }
    if (const json_value* events = member(body, "events"); events && events->IsArray()) {
      for (rapidjson::SizeType i = 0; i < events->Size(); ++i) {
        const json_value& e = (*events)[i];
        if (string_member(e, "type").value_or("") != "identification") {
          continue;
        }
        found(v, e, "/body/events/" + std::to_string(i));
        break;
      }
    }
    if (const json_value* list = member(body, "needs"); list && list->IsArray()) {
      for (const auto& c : list->GetArray()) {
        if (!c.IsString()) {
          continue;
        }
        if (const auto code = codes_.to_partner("needs", c.GetString())) {
          w_.text(w_.child(v, "Need"), *code);
        }
      }
    }
    narrative(root, member(body, "narrative"), "/body/narrative");
  }

  void found(xmlNodePtr victim_node, const json_value& event, const std::string& ptr) {
    const json_value* place = member(event, "place");
    const auto text = place ? place_text(*place) : std::nullopt;
    xmlNodePtr f = text ? text_child(victim_node, "Found", *text, ptr + "/place")
                        : w_.child(victim_node, "Found");
    if (f == nullptr) {
      return;
    }
    if (const auto code = place ? region_code(*place) : std::nullopt) {
      w_.attribute(f, "province", *code);
    }
    if (const auto date = string_member(event, "date")) {
      const era cal = calendar_for({&date});
      const std::string text_date = dmy(date, cal, ptr + "/date");
      if (!text_date.empty()) {
        w_.attribute(f, "date", text_date);
        w_.attribute(f, "calendar", cal == era::buddhist ? "BE" : "CE");
      }
    }
  }

  void wanted(xmlNodePtr root, const json_value& body) {
    if (const json_value* p = member(body, "person")) {
      person(root, *p, "/body/person", "suspect");
    } else {
      fail("/body/person", "is required");
    }
    const auto action = string_member(body, "requestedAction").value_or("");
    if (action != "locate-and-arrest") {
      fail("/body/requestedAction",
           "LA-MPS wanted messages mean locate-and-arrest; " + quote(action) + " cannot be said");
    }
    const json_value* warrants = member(body, "warrants");
    if (warrants == nullptr || !warrants->IsArray() || warrants->Empty()) {
      fail("/body/warrants", "LA-MPS needs a warrant in a wanted message");
      return;
    }
    const json_value& wt = (*warrants)[0];
    const std::string ptr = "/body/warrants/0";
    xmlNodePtr w = w_.child(root, "Warrant");
    const auto number = string_member(wt, "number");
    const auto authority = string_member(wt, "issuingAuthority");
    const auto issued = string_member(wt, "issued");
    const auto expires = string_member(wt, "expires");
    if (number) {
      attribute(w, "number", *number, ptr + "/number");
    } else {
      fail(ptr + "/number", "is required by LA-MPS");
    }
    // LA-MPS has no field for the issuing country, and a warrant in a Lao format reads as Lao:
    // the authority says which country issued it, every time, in the form the decoder reads back
    // ("Cơ quan Cảnh sát điều tra Công an tỉnh Gia Lai (issuing country: VNM)").
    const auto country = string_member(wt, "issuingCountry");
    const auto marked = mark_issuer(
        authority.value_or(""),
        country ? codes_.column_of("country", *country, "alpha3") : std::nullopt, authority_field);
    if (marked.country_refusal) {
      fail(ptr + "/issuingCountry", *marked.country_refusal);
    }
    if (!authority) {
      fail(ptr + "/issuingAuthority", "is required by LA-MPS");
    } else if (marked.authority_refusal) {
      fail(ptr + "/issuingAuthority", *marked.authority_refusal);
    } else if (!marked.country_refusal) {
      attribute(w, "authority", marked.text, ptr + "/issuingAuthority");
    }
    const era cal = calendar_for({&issued, &expires});
    if (issued) {
      w_.attribute(w, "issued", dmy(issued, cal, ptr + "/issued"));
    } else {
      fail(ptr + "/issued", "is required by LA-MPS");
    }
    if (expires) {
      w_.attribute(w, "expires", dmy(expires, cal, ptr + "/expires"));
    }
    w_.attribute(w, "calendar", cal == era::buddhist ? "BE" : "CE");
    bool dangerous = false;
    if (const json_value* list = member(body, "warnings"); list && list->IsArray()) {
      for (const auto& c : list->GetArray()) {
        dangerous = dangerous || (c.IsString() && (std::string_view(c.GetString()) == "armed" ||
                                                   std::string_view(c.GetString()) == "violent"));
      }
    }
    w_.attribute(w, "dangerous", dangerous ? "true" : "false");
    const json_value* charges = member(wt, "charges");
    if (charges == nullptr || !charges->IsArray() || charges->Empty()) {
      fail(ptr + "/charges", "LA-MPS needs at least one offence");
    } else {
      for (rapidjson::SizeType i = 0; i < charges->Size(); ++i) {
        const json_value& c = (*charges)[i];
        const std::string where = ptr + "/charges/" + std::to_string(i);
        const auto text = string_member(c, "text");
        if (!text) {
          fail(where + "/text", "is required");
          continue;
        }
        xmlNodePtr o = text_child(w, "Offence", *text, where + "/text");
        const json_value* statute = member(c, "statute");
        if (o != nullptr && statute != nullptr) {
          if (const auto code = string_member(*statute, "code")) {
            attribute(o, "code", *code, where + "/statute/code");
          }
        }
      }
    }
    if (const json_value* seen = member(body, "lastSeen")) {
      const auto text = place_text(*seen);
      const auto code = region_code(*seen);
      if (text || code) {
        xmlNodePtr l =
            text ? text_child(w, "LastSeen", *text, "/body/lastSeen") : w_.child(w, "LastSeen");
        if (l != nullptr) {
          if (code) {
            w_.attribute(l, "province", *code);
          }
          if (const auto date = string_member(*seen, "date")) {
            const era seen_cal = calendar_for({&date});
            w_.attribute(l, "date", dmy(date, seen_cal, "/body/lastSeen/date"));
            w_.attribute(l, "calendar", seen_cal == era::buddhist ? "BE" : "CE");
          }
        }
      }
    }
    kept_narrative(root);
  }

  void hotline(xmlNodePtr root, const json_value& body) {
    if (const json_value* subjects = member(body, "subjects"); subjects && subjects->IsArray()) {
      for (rapidjson::SizeType i = 0; i < subjects->Size(); ++i) {
        const json_value& s = (*subjects)[i];
        const json_value* p = member(s, "person");
        const auto canonical_role = string_member(s, "role").value_or("");
        auto role = to_partner(subject_roles, canonical_role);
        if (!role) {
          role = to_partner(role_fallbacks, canonical_role);
        }
        if (p != nullptr && role) {
          person(root, *p, "/body/subjects/" + std::to_string(i) + "/person",
                 std::string(*role).c_str());
          break;  // LA-MPS carries one person
        }
      }
    }
    const json_value* summary = member(body, "summary");
    const auto text = summary ? string_member(*summary, "text") : std::nullopt;
    if (!text) {
      fail("/body/summary/text", "is required");
      return;
    }
    xmlNodePtr h = text_child(root, "Hotline", *text, "/body/summary/text");
    if (h == nullptr) {
      return;
    }
    const auto channel = string_member(body, "channel").value_or("");
    auto line = codes_.to_partner("hotline-channel", channel);
    if (!line) {
      if (const auto fallback = to_partner(channel_fallbacks, channel)) {
        line = std::string(*fallback);
      }
    }
    if (line) {
      w_.attribute(h, "line", *line);
    } else {
      fail("/body/channel", quote(channel) + " has no LA-MPS hotline line");
    }
    const auto received = string_member(body, "receivedAt").value_or("");
    const std::string day = utc_to_local_date(received, lao_offset_minutes, era::buddhist);
    if (day.empty()) {
      fail("/body/receivedAt", "is not an RFC 3339 time");
    } else {
      w_.attribute(h, "received", day + " " + utc_to_local_hm(received, lao_offset_minutes));
      w_.attribute(h, "calendar", "BE");
    }
    if (const auto reporter = string_member(body, "reporterType")) {
      w_.attribute(h, "anonymous", *reporter == "anonymous" ? "true" : "false");
    }
    const auto urgency = string_member(body, "urgency").value_or("");
    if (listed(urgencies, urgency)) {
      w_.attribute(h, "urgency", urgency);
    } else {
      fail("/body/urgency", "is required");
    }
    if (const json_value* places = member(body, "places"); places && places->IsArray()) {
      for (const auto& place : places->GetArray()) {
        if (const auto code = region_code(place)) {
          w_.attribute(h, "province", *code);
          break;
        }
      }
    }
    if (const json_value* translations = member(*summary, "translations");
        translations && translations->IsArray() && !translations->Empty()) {
      narrative(root, &(*translations)[0], "/body/summary/translations/0");
    }
  }

  void request(xmlNodePtr root, const json_value& body) {
    if (const json_value* p = member(body, "subject")) {
      person(root, *p, "/body/subject", "subject");
    } else {
      fail("/body/subject", "is required");
    }
    xmlNodePtr q = w_.child(root, "Questions");
    const auto purpose = string_member(body, "purpose").value_or("");
    if (listed(verification_purposes, purpose)) {
      w_.attribute(q, "purpose", purpose);
    } else {
      fail("/body/purpose", "is required");
    }
    if (const auto deadline = string_member(body, "deadline")) {
      const era cal = calendar_for({&deadline});
      w_.attribute(q, "deadline", dmy(deadline, cal, "/body/deadline"));
      w_.attribute(q, "calendar", cal == era::buddhist ? "BE" : "CE");
    }
    if (const auto urgency = string_member(body, "urgency")) {
      w_.attribute(q, "urgency", *urgency);
    }
    if (const json_value* list = member(body, "questions"); list && list->IsArray()) {
      for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
        const json_value& question = (*list)[i];
        if (question.IsString()) {
          text_child(q, "Question", question.GetString(), "/body/questions/" + std::to_string(i));
        }
      }
    }
    kept_narrative(root);
  }

  void result(xmlNodePtr root, const json_value& body) {
    if (const json_value* p = member(body, "matched")) {
      person(root, *p, "/body/matched", "subject");
    }
    xmlNodePtr a = w_.child(root, "Answer");
    const auto outcome = string_member(body, "result").value_or("");
    if (listed(answer_results, outcome)) {
      w_.attribute(a, "result", outcome);
    } else {
      fail("/body/result", "is required");
    }
    narrative(root, member(body, "notes"), "/body/notes");
  }

  void receipt(xmlNodePtr root, const json_value& body) {
    kept_narrative(root);
    const auto status = string_member(body, "status").value_or("");
    if (!listed(receipt_statuses, status)) {
      fail("/body/status", "is required");
      return;
    }
    std::string reason;
    if (status == "rejected") {
      if (const json_value* list = member(body, "errors"); list && list->IsArray()) {
        for (const auto& e : list->GetArray()) {
          const auto pointer = string_member(e, "pointer");
          const auto text = string_member(e, "reason").value_or("");
          reason += reason.empty() ? "" : "\n";
          reason += pointer ? *pointer + ": " + text : text;
        }
      }
    } else {
      reason = kept(receipt_text_key).value_or("");
    }
    xmlNodePtr r = reason.empty() ? w_.child(root, "Receipt")
                                  : text_child(root, "Receipt", reason, "/body/errors");
    if (r != nullptr) {
      w_.attribute(r, "status", status);
    }
  }

  const la_mps_codes& codes_;
  std::string answered_id_;
  std::string answered_reference_;
  la_mps::xml_writer w_;
  const json_value* unmapped_ = nullptr;
};

}  // namespace mxgw::adapters::la_mps
