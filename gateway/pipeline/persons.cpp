// Keyed digests of a message's persons, for candidates of the same person across messages.
#include "gateway/pipeline/persons.hpp"

#include <rapidjson/document.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <set>
#include <utility>

#include "gateway/common/json.hpp"
#include "gateway/common/keyed_mac.hpp"
#include "gateway/pipeline/names.hpp"

namespace mxgw::pipeline {
namespace {

// Objects deeper than this are not looked into (the parser's own limit is 64).
constexpr int max_depth = 64;
constexpr std::size_t min_document_chars = 5;

std::string_view text_of(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

const rapidjson::Value* member(const rapidjson::Value& object, std::string_view name) {
  if (!object.IsObject()) {
    return nullptr;
  }
  auto it = object.FindMember(rapidjson::Value(
      rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string hmac(const match_key& key, std::string_view kind, std::string_view form) {
  unsigned char out[32];
  hmac_sha256(key.bytes, {kind, form}, out);
  return {reinterpret_cast<const char*>(out), sizeof out};
}

// The year of a partial date ("1998", "1998-05", "1998-05-17"), or empty.
std::string year_of(const rapidjson::Value& person) {
  const auto* date = member(person, "birthDate");
  const auto* approx = member(person, "birthDateApprox");
  if (date == nullptr || !date->IsString() || date->GetStringLength() < 4 ||
      (approx != nullptr && approx->IsBool() && approx->GetBool())) {
    return {};
  }
  std::string year(date->GetString(), 4);
  return std::all_of(year.begin(), year.end(), [](char c) { return c >= '0' && c <= '9'; })
             ? year
             : std::string();
}

class collector {
 public:
  collector(const match_key& key, const transliterators* translit)
      : key_(key), translit_(translit) {}

  void walk(const rapidjson::Value& value, std::string& at, int depth) {
    if (depth > max_depth || out_.size() >= max_person_digests) {
      return;
    }
    if (value.IsObject()) {
      if (const auto* names = member(value, "names"); names != nullptr && names->IsArray()) {
        person(value, *names, at);
      }
      for (const auto& m : value.GetObject()) {
        const std::size_t size = at.size();
        json::append_pointer_token(at, text_of(m.name));
        walk(m.value, at, depth + 1);
        at.resize(size);
      }
    } else if (value.IsArray()) {
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        const std::size_t size = at.size();
        at += '/';
        at += std::to_string(i);
        walk(value[i], at, depth + 1);
        at.resize(size);
      }
    }
  }

  std::vector<person_digest> take() { return std::move(out_); }

 private:
  void person(const rapidjson::Value& person, const rapidjson::Value& names,
              const std::string& at) {
    std::set<std::pair<std::string_view, std::string>> seen;
    const auto add = [&](std::string_view kind, std::string form) {
      if (out_.size() < max_person_digests && seen.emplace(kind, form).second) {
        out_.push_back({at, std::string(kind), hmac(key_, kind, form)});
      }
    };
    if (const auto* documents = member(person, "documents");
        documents != nullptr && documents->IsArray()) {
      for (const auto& document : documents->GetArray()) {
        const auto* number = member(document, "number");
        if (number != nullptr && number->IsString()) {
          if (std::string form = document_form(text_of(*number)); !form.empty()) {
            add("document", std::move(form));
          }
        }
      }
    }
    const std::string year = year_of(person);
    for (const auto& name : names.GetArray()) {
      auto form = name_form(name, translit_);
      if (!form) {
        continue;
      }
      if (!year.empty()) {
        add("name-birth-year", *form + '\0' + year);
      }
      if (form->find(' ') != std::string::npos) {
        add("name", std::move(*form));
      }
    }
  }

  const match_key& key_;
  const transliterators* translit_;
  std::vector<person_digest> out_;
};

}  // namespace

std::optional<std::string> name_form(const rapidjson::Value& name,
                                     const transliterators* translit) {
  const auto* script = member(name, "script");
  if (script == nullptr || !script->IsString()) {
    return std::nullopt;
  }
  const std::string_view code = text_of(*script);
  // Latin parts as they are (comparison_key puts them into ICAO form), others transliterated.
  std::string latin;
  for (const char* field : {"family", "given"}) {
    const auto* parts = member(name, field);
    if (parts == nullptr) {
      continue;
    }
    if (!parts->IsArray()) {
      return std::nullopt;
    }
    for (const auto& part : parts->GetArray()) {
      if (!part.IsString()) {
        return std::nullopt;
      }
      if (code == "Latn") {
        latin += text_of(part);
      } else {
        auto one = translit != nullptr ? translit->to_latin(code, text_of(part)) : std::nullopt;
        if (!one) {
          return std::nullopt;
        }
        latin += *one;
      }
      latin += ' ';
    }
  }
  const std::string key = comparison_key(latin);
  // comparison_key keeps letters it cannot put into Latin (another script, mislabelled): such a
  // name has no plain-Latin form.
  if (std::any_of(key.begin(), key.end(), [](char c) { return (c & 0x80) != 0; })) {
    return std::nullopt;
  }
  std::vector<std::string_view> words;
  for (std::size_t start = 0; start < key.size();) {
    std::size_t end = key.find(' ', start);
    if (end == std::string::npos) {
      end = key.size();
    }
    if (end > start) {
      words.emplace_back(key.data() + start, end - start);
    }
    start = end + 1;
  }
  if (words.empty()) {
    return std::nullopt;
  }
  std::sort(words.begin(), words.end());
  std::string form;
  for (const auto word : words) {
    if (!form.empty()) {
      form += ' ';
    }
    form += word;
  }
  return form;
}

std::string document_form(std::string_view number) {
  // ICAO Latin first (marks gone, upper case); then, character by character, ASCII letters and
  // digits are kept, a decimal digit of another script (Khmer ១, Lao ໑, Thai ๑) becomes its ASCII
  // digit, a letter of another script is kept as it is (numbers written in it stay apart), and
  // everything else (spaces, dashes, dots) goes.
  const std::string latin = icao_latin(number);
  std::string form;
  std::size_t characters = 0;
  bool has_digit = false;
  for (std::int32_t i = 0, n = static_cast<std::int32_t>(latin.size()); i < n;) {
    const std::int32_t start = i;
    UChar32 c = 0;
    U8_NEXT(latin.data(), i, n, c);
    if (c < 0) {
      continue;  // not UTF-8: the schema check refuses it before this
    }
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
      form += static_cast<char>(c >= 'a' ? c - 'a' + 'A' : c);
    } else if (const std::int32_t digit = u_charDigitValue(c); digit >= 0) {
      form += static_cast<char>('0' + digit);
      has_digit = true;
    } else if (u_isalpha(c)) {
      form.append(latin, static_cast<std::size_t>(start), static_cast<std::size_t>(i - start));
    } else {
      continue;
    }
    ++characters;
  }
  // A number without a digit ("unknown", "none", "KHM-ID") names no document: it would make
  // every person who has it the same person.
  return characters >= min_document_chars && has_digit ? form : std::string();
}

std::vector<person_digest> person_digests_of(const rapidjson::Value& message, const match_key& key,
                                             const transliterators* translit) {
  const auto* body = member(message, "body");
  if (body == nullptr || !body->IsObject()) {
    return {};
  }
  collector c(key, translit);
  std::string at = "/body";
  c.walk(*body, at, 0);
  return c.take();
}

}  // namespace mxgw::pipeline
