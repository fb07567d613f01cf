// Untrusted-JSON parsing: RapidJSON's SAX reader feeding a Document through a guard that enforces
// the nesting limit and refuses duplicate member names (RapidJSON itself accepts both).
#include "gateway/common/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <unordered_set>
#include <vector>

namespace mxgw::json {
namespace {

constexpr unsigned untrusted_flags = rapidjson::kParseValidateEncodingFlag |
                                     rapidjson::kParseIterativeFlag |
                                     rapidjson::kParseFullPrecisionFlag;

// Forwards SAX events to the document's own handler, refusing what RapidJSON would let through.
class guarded_handler {
 public:
  guarded_handler(rapidjson::Document& doc, std::size_t max_depth)
      : doc_(doc), max_depth_(max_depth) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return no_surrogate(s, n) && doc_.String(s, n, copy);
  }

  bool StartObject() {
    if (!enter()) {
      return false;
    }
    objects_.push_back({spans_.size(), nullptr});
    return doc_.StartObject();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (!no_surrogate(s, n)) {
      return false;
    }
    if (!first_of_its_object(std::string_view(s, n))) {
      failure_ = "duplicate member name";
      return false;
    }
    return doc_.Key(s, n, copy);
  }
  bool EndObject(rapidjson::SizeType members) {
    // Forget this object's names (they are the last ones recorded).
    const std::size_t first = objects_.back().first_name;
    if (first < spans_.size()) {
      names_.resize(spans_[first].first);
      spans_.resize(first);
    }
    objects_.pop_back();
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

  const char* failure() const { return failure_; }

 private:
  // RapidJSON validates the input's UTF-8 and pairs \uD8xx\uDCxx escapes, but turns a lone low
  // surrogate escape (\uDC00) into the bytes ED B0 80, which are not UTF-8: refuse it here. (A
  // surrogate's UTF-8-like form is the only way ED A0..ED BF can appear in a decoded string.)
  bool no_surrogate(const char* s, rapidjson::SizeType n) {
    for (rapidjson::SizeType i = 0; i + 1 < n; ++i) {
      if (static_cast<unsigned char>(s[i]) == 0xED && static_cast<unsigned char>(s[i + 1]) >= 0xA0) {
        failure_ = "a lone UTF-16 surrogate escape";
        return false;
      }
    }
    return true;
  }

  // Duplicate member names: the names of the objects being built are kept in one buffer, and a
  // new name is compared with its object's earlier names, which is quick for the small objects
  // messages are made of. An object with more than `linear_names` members switches to a hash set,
  // so a hostile object with very many members costs linear time, not quadratic.
  static constexpr std::size_t linear_names = 16;

  struct open_object {
    std::size_t first_name;  // index of its first name in spans_
    std::unique_ptr<std::unordered_set<std::string>> many;  // past linear_names members
  };

  bool first_of_its_object(std::string_view name) {
    open_object& object = objects_.back();
    if (object.many) {
      return object.many->emplace(name).second;
    }
    for (std::size_t i = object.first_name; i < spans_.size(); ++i) {
      if (std::string_view(names_).substr(spans_[i].first, spans_[i].second) == name) {
        return false;
      }
    }
    if (spans_.size() - object.first_name >= linear_names) {
      object.many = std::make_unique<std::unordered_set<std::string>>();
      for (std::size_t i = object.first_name; i < spans_.size(); ++i) {
        object.many->emplace(names_, spans_[i].first, spans_[i].second);
      }
      object.many->emplace(name);
      return true;
    }
    spans_.emplace_back(names_.size(), name.size());
    names_.append(name);
    return true;
  }

  bool enter() {
    if (++depth_ > max_depth_) {
      failure_ = "nesting deeper than the limit";
      return false;
    }
    return true;
  }

  rapidjson::Document& doc_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  std::vector<open_object> objects_;
  std::string names_;                                        // names of the open objects
  std::vector<std::pair<std::size_t, std::size_t>> spans_;  // (offset, length) in names_
  const char* failure_ = nullptr;
};

// Runs the reader for Document::Populate and remembers the outcome.
template <unsigned Flags>
struct guarded_generator {
  std::string_view text;
  std::size_t max_depth;
  rapidjson::ParseResult result{};
  const char* failure = nullptr;

  bool operator()(rapidjson::Document& doc) {
    rapidjson::MemoryStream stream(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> input(stream);
    guarded_handler handler(doc, max_depth);
    rapidjson::Reader reader;
    result = reader.Parse<Flags>(input, handler);
    failure = handler.failure();
    return !result.IsError();
  }
};

template <unsigned Flags>
std::optional<parse_error> parse_with(std::string_view text, rapidjson::Document& out,
                                      std::size_t max_depth) {
  guarded_generator<Flags> generator{text, max_depth};
  out.SetNull();
  out.Populate(generator);
  if (!generator.result.IsError()) {
    return std::nullopt;
  }
  out.SetNull();
  parse_error error;
  error.offset = generator.result.Offset();
  error.reason = generator.failure != nullptr
                     ? generator.failure
                     : rapidjson::GetParseError_En(generator.result.Code());
  return error;
}

}  // namespace

std::optional<parse_error> parse_untrusted(std::string_view text, rapidjson::Document& out,
                                           const parse_limits& limits) {
  if (text.empty()) {
    return parse_error{0, "The document is empty."};
  }
  return parse_with<untrusted_flags>(text, out, limits.max_depth);
}

rapidjson::Document parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot be read");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  rapidjson::Document doc;
  if (auto error = parse_with<untrusted_flags>(text, doc, 256)) {
    throw std::runtime_error("invalid JSON at byte offset " + std::to_string(error->offset) + ": " +
                             error->reason);
  }
  return doc;
}

std::string to_string(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string escape_pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string_view get_string(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject()) {
    return {};
  }
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) {
    return {};
  }
  return {it->value.GetString(), it->value.GetStringLength()};
}

}  // namespace mxgw::json
