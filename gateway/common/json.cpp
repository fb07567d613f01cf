// Untrusted-JSON parsing: RapidJSON's SAX reader feeding a Document through a guard that enforces
// the nesting limit and refuses duplicate member names (RapidJSON itself accepts both).
#include "gateway/common/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
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

// The encoding is checked before the parse, in one pass over the whole input (first_invalid_utf8),
// so RapidJSON's own check (kParseValidateEncodingFlag), which goes a byte at a time through a
// generic stream, is not needed. The reader is the recursive one, which is quicker than its
// iterative state machine: its recursion is bounded by the handler, which stops the parse at the
// first object or array deeper than the limit, so the stack it uses is bounded too.
constexpr unsigned untrusted_flags = rapidjson::kParseFullPrecisionFlag;

// The offset of the first byte of `text` that is not well-formed UTF-8 (RFC 3629, Unicode table
// 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), or of its first NUL byte (never
// valid in JSON, and the end marker of the string stream the reader uses); text.size() when there
// is neither.
std::size_t first_invalid_utf8(std::string_view text) {
  const auto* const begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = begin + text.size();
  const auto* p = begin;
  constexpr std::uint64_t high = 0x8080808080808080ULL;
  constexpr std::uint64_t low = 0x0101010101010101ULL;
  while (p < end) {
    // Eight ASCII bytes with no NUL at a time: most of a message's bytes outside its Khmer or
    // Lao text.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if ((word & high) != 0 || ((word - low) & ~word & high) != 0) {
        break;
      }
      p += 8;
    }
    if (p == end) {
      break;
    }
    const unsigned char c = *p;
    if (c != 0 && c < 0x80) {
      ++p;
      continue;
    }
    std::size_t length = 0;
    unsigned char min = 0x80;
    unsigned char max = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) {
        min = 0xA0;  // no overlong three-byte forms
      } else if (c == 0xED) {
        max = 0x9F;  // no surrogates
      }
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) {
        min = 0x90;  // no overlong four-byte forms
      } else if (c == 0xF4) {
        max = 0x8F;  // nothing above U+10FFFF
      }
    } else {
      return static_cast<std::size_t>(p - begin);  // NUL, a continuation byte, C0, C1, F5-FF
    }
    if (static_cast<std::size_t>(end - p) < length || p[1] < min || p[1] > max) {
      return static_cast<std::size_t>(p - begin);
    }
    for (std::size_t i = 2; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) {
        return static_cast<std::size_t>(p - begin);
      }
    }
    p += length;
  }
  return text.size();
}

// Forwards SAX events to the document's own handler, refusing what RapidJSON would let through.
class guarded_handler {
 public:
  /// The names of open objects are kept in `scratch`, which a thread may reuse from one parse to
  /// the next (it is emptied here), so that a parse of a small document allocates nothing for them.
  struct scratch_space;

  guarded_handler(rapidjson::Document& doc, std::size_t max_depth, scratch_space& scratch);

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
  // Strings are parsed in place (in a buffer that does not outlive the parse) and always copied
  // into the document, as a parse from a stream would: a document owns its strings (short ones
  // inside the value), so a value copied or moved elsewhere never points into a parse buffer.
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return no_surrogate(s, n) && doc_.String(s, n, true);
  }

  bool StartObject() {
    if (!enter()) {
      return false;
    }
    objects_.push_back({spans_.size(), nullptr});
    return doc_.StartObject();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!no_surrogate(s, n)) {
      return false;
    }
    if (!first_of_its_object(std::string_view(s, n))) {
      failure_ = "duplicate member name";
      return false;
    }
    return doc_.Key(s, n, true);
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
  // ED is rare in text (it leads U+D000..U+D7FF, Hangul), so it is looked for with memchr.
  bool no_surrogate(const char* s, rapidjson::SizeType n) {
    const char* const end = s + n;
    for (const char* p = s; p < end; ++p) {
      p = static_cast<const char*>(std::memchr(p, 0xED, static_cast<std::size_t>(end - p)));
      if (p == nullptr) {
        return true;
      }
      if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0) {
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

 public:
  struct scratch_space {
    std::vector<open_object> objects;
    std::string names;                                       // names of the open objects
    std::vector<std::pair<std::size_t, std::size_t>> spans;  // (offset, length) in names
  };

 private:

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
  std::vector<open_object>& objects_;
  std::string& names_;                                        // names of the open objects
  std::vector<std::pair<std::size_t, std::size_t>>& spans_;  // (offset, length) in names_
  const char* failure_ = nullptr;
};

guarded_handler::guarded_handler(rapidjson::Document& doc, std::size_t max_depth,
                                 scratch_space& scratch)
    : doc_(doc),
      max_depth_(max_depth),
      objects_(scratch.objects),
      names_(scratch.names),
      spans_(scratch.spans) {
  objects_.clear();  // what a refused parse left
  names_.clear();
  spans_.clear();
}

// A thread keeps one copy buffer and one reader for documents up to this size (the reader's stack,
// where each string is assembled, keeps its capacity between parses), instead of allocating both
// anew for each. A larger document gets its own, freed with it, so no thread holds on to a large
// body's memory.
constexpr std::size_t small_document = 64 * 1024;

// Runs the reader for Document::Populate and remembers the outcome.
template <unsigned Flags>
struct guarded_generator {
  char* buffer;  // a NUL-terminated copy of the text, no other NUL; parsed (and changed) in place
  std::size_t size;  // of the text, without the NUL
  std::size_t max_depth;
  rapidjson::ParseResult result{};
  const char* failure = nullptr;

  bool operator()(rapidjson::Document& doc) {
    // In place: the reader unescapes each string where it lies in a copy of the text, instead of
    // assembling it a character at a time on its own stack; the handler copies it into the
    // document.
    rapidjson::InsituStringStream input(buffer);
    if (size <= small_document) {
      thread_local rapidjson::Reader reader;
      thread_local guarded_handler::scratch_space scratch;
      guarded_handler handler(doc, max_depth, scratch);
      result = reader.Parse<Flags>(input, handler);
      failure = handler.failure();
    } else {
      rapidjson::Reader reader;
      guarded_handler::scratch_space scratch;
      guarded_handler handler(doc, max_depth, scratch);
      result = reader.Parse<Flags>(input, handler);
      failure = handler.failure();
    }
    return !result.IsError();
  }
};

template <unsigned Flags>
std::optional<parse_error> parse_with(std::string_view text, rapidjson::Document& out,
                                      std::size_t max_depth) {
  out.SetNull();
  if (const std::size_t bad = first_invalid_utf8(text); bad != text.size()) {
    return parse_error{bad, text[bad] == '\0' ? "a NUL byte" : "invalid UTF-8"};
  }
  // A byte order mark is skipped, as RapidJSON's encoded stream did before.
  std::size_t skipped = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    skipped = 3;
    text.remove_prefix(3);
  }
  // The copy the reader parses in place (it needs the terminating NUL a string_view does not
  // promise); a thread keeps one for documents up to small_document.
  thread_local std::string small_copy;
  std::string large_copy;
  std::string& copy = text.size() <= small_document ? small_copy : large_copy;
  copy.assign(text);
  guarded_generator<Flags | rapidjson::kParseInsituFlag> generator{copy.data(), text.size(),
                                                                   max_depth};
  out.Populate(generator);
  if (!generator.result.IsError()) {
    return std::nullopt;
  }
  out.SetNull();
  parse_error error;
  error.offset = skipped + generator.result.Offset();
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
  // The reader recurses once per level: a limit beyond this one is not honoured, whatever a caller
  // asks (the configuration allows at most 256).
  constexpr std::size_t deepest_supported = 1024;
  return parse_with<untrusted_flags>(text, out, std::min(limits.max_depth, deepest_supported));
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

namespace {
void append_escaped(std::string& out, std::string_view token) {
  // One pass over the (short) name; find_first_of would call memchr once per character of it,
  // and the checks append a token for every member of every message they walk.
  if (std::none_of(token.begin(), token.end(), [](char c) { return c == '~' || c == '/'; })) {
    out += token;
    return;
  }
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}
}  // namespace

std::string escape_pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  append_escaped(out, token);
  return out;
}

void append_pointer_token(std::string& out, std::string_view token) {
  out += '/';
  append_escaped(out, token);
}

void append_pointer_index(std::string& out, std::size_t index) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, index).ptr;
  out += '/';
  out.append(digits, end);
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
