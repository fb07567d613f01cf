// Hardened XML for the LA-MPS adapter: a libxml2 reader that refuses DTDs, entities, deep nesting
// and anything but UTF-8, and a libxml2 tree writer whose output is always escaped.
#pragma once

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxgw::adapters::la_mps {

/// One element of a parsed document, detached from libxml2.
struct xml_element {
  std::string name;  ///< local name; "{namespace}name" or "prefix:name" when namespaced
  std::vector<std::pair<std::string, std::string>> attributes;  ///< in document order
  std::vector<xml_element> children;                            ///< child elements, in order
  std::string text;  ///< character data directly inside (text and CDATA), concatenated

  /// The value of attribute `attribute_name`, or nullptr when absent.
  const std::string* attribute(std::string_view attribute_name) const {
    for (const auto& [key, value] : attributes) {
      if (key == attribute_name) {
        return &value;
      }
    }
    return nullptr;
  }
};

/// Named limits of the reader; the HTTP layer caps bodies at 1 MiB before this.
struct xml_limits {
  std::size_t max_bytes = 1024 * 1024;
  int max_depth = 32;       ///< deepest element nesting (LA-MPS needs 3)
  int max_elements = 5000;  ///< elements in one document
  /// Attributes on one element. libxml2 checks each new attribute against every earlier one of
  /// its element, so a tag with 100,000 attributes (about 1 MiB) held a thread for minutes.
  int max_attributes = 64;
};

/// A parsed document, or why it was refused. `error` is fixed text and never quotes the input.
struct xml_parse_result {
  std::optional<xml_element> root;
  std::string error;
};

/// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
/// U+10FFFF).
inline bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned min = 0;
    unsigned code = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
      min = 0x80;
      code = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      min = 0x800;
      code = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      min = 0x10000;
      code = c & 0x07u;
    } else {
      return false;
    }
    if (i + length > n) {
      return false;
    }
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0u) != 0x80u) {
        return false;
      }
      code = (code << 6) | (next & 0x3Fu);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

/// True when `text` is valid UTF-8 made only of characters XML 1.0 allows (the Char production:
/// tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF). The writer refuses the rest.
inline bool is_xml_text(std::string_view text) {
  if (!is_valid_utf8(text)) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) {
      return false;
    }
    // U+FFFE and U+FFFF are EF BF BE / EF BF BF.
    if (c == 0xEF && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xBF &&
        (static_cast<unsigned char>(text[i + 2]) == 0xBE ||
         static_cast<unsigned char>(text[i + 2]) == 0xBF)) {
      return false;
    }
  }
  return true;
}

namespace detail {

/// The most attributes (counted as `=` outside quoted values) any start tag of `bytes` has, in
/// one linear pass: comments, CDATA sections, processing instructions, declarations and end
/// tags are skipped. Stops counting at `enough` + 1. Not a parser: well-formedness is libxml2's.
inline int most_attributes_in_a_tag(std::string_view bytes, int enough) {
  int most = 0;
  std::size_t i = 0;
  const auto skip_past = [&](std::string_view end) {
    const auto at = bytes.find(end, i);
    i = at == std::string_view::npos ? bytes.size() : at + end.size();
  };
  while ((i = bytes.find('<', i)) != std::string_view::npos) {
    const std::string_view rest = bytes.substr(i);
    if (rest.starts_with("<!--")) {
      skip_past("-->");
    } else if (rest.starts_with("<![CDATA[")) {
      skip_past("]]>");
    } else if (rest.starts_with("<?")) {
      skip_past("?>");
    } else if (rest.starts_with("<!") || rest.starts_with("</")) {
      skip_past(">");
    } else {
      int count = 0;
      char quote = 0;
      for (++i; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (quote != 0) {
          quote = c == quote ? 0 : quote;
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '=') {
          if (++count > enough) {
            return count;
          }
        } else if (c == '>') {
          break;
        }
      }
      most = std::max(most, count);
    }
  }
  return most;
}

/// What the SAX hooks observed during one parse; reached through the parser context's _private.
struct parse_state {
  int depth = 0;
  int elements = 0;
  int max_depth = 0;
  int max_elements = 0;
  bool doctype = false;
  bool too_deep = false;
  bool too_many = false;
  int error_code = 0;  ///< libxml2's first error code (its message is not kept: it quotes input)
  int error_line = 0;
  int error_column = 0;
};

inline xmlParserCtxtPtr parser_of(void* ctx) {
  return static_cast<xmlParserCtxtPtr>(ctx);
}

inline parse_state& state_of(void* ctx) {
  return *static_cast<parse_state*>(parser_of(ctx)->_private);
}

// Counts depth and elements before the tree builder sees the element; stops the parse at a limit.
inline void on_start_element(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                             const xmlChar* uri, int nb_namespaces, const xmlChar** namespaces,
                             int nb_attributes, int nb_defaulted, const xmlChar** attributes) {
  parse_state& state = state_of(ctx);
  if (++state.depth > state.max_depth) {
    state.too_deep = true;
    xmlStopParser(parser_of(ctx));
    return;
  }
  if (++state.elements > state.max_elements) {
    state.too_many = true;
    xmlStopParser(parser_of(ctx));
    return;
  }
  xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                        nb_defaulted, attributes);
}

inline void on_end_element(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                           const xmlChar* uri) {
  --state_of(ctx).depth;
  xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

// A DOCTYPE stops the parse before its internal subset (entity declarations) is read.
inline void on_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  state_of(ctx).doctype = true;
  xmlStopParser(parser_of(ctx));
}

inline void on_entity_declaration(void* ctx, const xmlChar*, int, const xmlChar*, const xmlChar*,
                                  xmlChar*) {
  state_of(ctx).doctype = true;
  xmlStopParser(parser_of(ctx));
}

inline void ignore_external_subset(void*, const xmlChar*, const xmlChar*, const xmlChar*) {}

inline xmlParserInputPtr refuse_entity(void*, const xmlChar*, const xmlChar*) {
  return nullptr;
}

// Keeps the first error's code and position only; libxml2's message text may quote the input.
inline void on_error(void* ctx, xmlErrorPtr error) {
  if (ctx == nullptr || error == nullptr) {
    return;
  }
  parse_state& state = state_of(ctx);
  if (state.error_code == 0) {
    state.error_code = error->code;
    state.error_line = error->line;
    state.error_column = error->int2;
  }
}

// Nothing outside the document is ever loaded, whatever a future caller's options say.
inline xmlParserInputPtr refuse_external_entity(const char*, const char*, xmlParserCtxtPtr) {
  return nullptr;
}

inline void init_libxml2() {
  static std::once_flag once;
  std::call_once(once, [] {
    xmlInitParser();
    xmlSetExternalEntityLoader(refuse_external_entity);
  });
}

inline std::string to_string(const xmlChar* text) {
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
}

inline std::string qualified_name(const xmlChar* name, xmlNsPtr ns) {
  std::string local = to_string(name);
  if (ns == nullptr) {
    return local;
  }
  if (ns->prefix != nullptr) {
    return to_string(ns->prefix) + ":" + local;
  }
  return "{" + to_string(ns->href) + "}" + local;
}

// Copies the libxml2 tree into xml_element; false on an entity reference (never expected: no
// DTD means no entities beyond the five predefined ones, which libxml2 expands as text).
inline bool copy_element(xmlNodePtr node, xml_element& out) {
  out.name = qualified_name(node->name, node->ns);
  for (xmlAttrPtr a = node->properties; a != nullptr; a = a->next) {
    std::string value;
    for (xmlNodePtr t = a->children; t != nullptr; t = t->next) {
      if (t->type != XML_TEXT_NODE) {
        return false;
      }
      value += to_string(t->content);
    }
    out.attributes.emplace_back(qualified_name(a->name, a->ns), std::move(value));
  }
  for (xmlNodePtr child = node->children; child != nullptr; child = child->next) {
    switch (child->type) {
      case XML_ELEMENT_NODE: {
        out.children.emplace_back();
        if (!copy_element(child, out.children.back())) {
          return false;
        }
        break;
      }
      case XML_TEXT_NODE:
      case XML_CDATA_SECTION_NODE: out.text += to_string(child->content); break;
      case XML_COMMENT_NODE:
      case XML_PI_NODE: break;
      default: return false;
    }
  }
  return true;
}

struct parser_deleter {
  void operator()(xmlParserCtxtPtr p) const {
    if (p != nullptr) {
      if (p->myDoc != nullptr) {
        xmlFreeDoc(p->myDoc);
        p->myDoc = nullptr;
      }
      xmlFreeParserCtxt(p);
    }
  }
};

struct doc_deleter {
  void operator()(xmlDocPtr d) const { xmlFreeDoc(d); }
};

inline bool equals_ignoring_case(const xmlChar* text, std::string_view expected) {
  const std::string s = to_string(text);
  if (s.size() != expected.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    char a = s[i];
    if (a >= 'a' && a <= 'z') {
      a = static_cast<char>(a - 'a' + 'A');
    }
    if (a != expected[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace detail

/// Parses untrusted bytes. Refused, with a fixed reason: more than `max_bytes`, invalid UTF-8, a
/// declared encoding other than UTF-8, any DOCTYPE (so no entity can be declared: billion laughs
/// and XXE are impossible), entity references, nesting deeper than `max_depth`, more than
/// `max_elements` elements, more than `max_attributes` attributes on one element, and anything
/// not well-formed. libxml2 runs without NOENT, DTDLOAD,
/// DTDATTR, DTDVALID, XINCLUDE or HUGE, with NONET, and with an external-entity loader that
/// loads nothing. Thread-safe.
inline xml_parse_result parse_xml(std::string_view bytes, const xml_limits& limits = {}) {
  xml_parse_result result;
  if (bytes.size() > limits.max_bytes) {
    result.error = "the document is larger than " + std::to_string(limits.max_bytes) + " bytes";
    return result;
  }
  if (bytes.empty()) {
    result.error = "the document is empty";
    return result;
  }
  if (!is_valid_utf8(bytes)) {
    result.error = "the document is not valid UTF-8";
    return result;
  }
  if (detail::most_attributes_in_a_tag(bytes, limits.max_attributes) > limits.max_attributes) {
    result.error =
        "an element has more than " + std::to_string(limits.max_attributes) + " attributes";
    return result;
  }
  // Belt and braces: a DTD or entity declaration never reaches the parser at all.
  if (bytes.find("<!DOCTYPE") != std::string_view::npos ||
      bytes.find("<!ENTITY") != std::string_view::npos) {
    result.error = "a DOCTYPE or ENTITY declaration is not allowed";
    return result;
  }
  detail::init_libxml2();
  std::unique_ptr<xmlParserCtxt, detail::parser_deleter> parser(
      xmlCreateMemoryParserCtxt(bytes.data(), static_cast<int>(bytes.size())));
  if (!parser || parser->sax == nullptr) {
    result.error = "the XML parser could not be started";
    return result;
  }
  constexpr int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                          XML_PARSE_NOCDATA | XML_PARSE_NODICT;
  xmlCtxtUseOptions(parser.get(), options);
  detail::parse_state state;
  state.max_depth = limits.max_depth;
  state.max_elements = limits.max_elements;
  parser->_private = &state;
  xmlSAXHandler* sax = parser->sax;
  sax->startElementNs = detail::on_start_element;
  sax->endElementNs = detail::on_end_element;
  sax->internalSubset = detail::on_doctype;
  sax->externalSubset = detail::ignore_external_subset;
  sax->entityDecl = detail::on_entity_declaration;
  sax->resolveEntity = detail::refuse_entity;
  sax->serror = detail::on_error;
  sax->error = nullptr;
  sax->warning = nullptr;
  sax->fatalError = nullptr;

  xmlParseDocument(parser.get());
  std::unique_ptr<xmlDoc, detail::doc_deleter> doc(parser->myDoc);
  parser->myDoc = nullptr;

  if (state.doctype || (doc && (doc->intSubset != nullptr || doc->extSubset != nullptr))) {
    result.error = "a DOCTYPE or ENTITY declaration is not allowed";
    return result;
  }
  if (state.too_deep) {
    result.error = "elements are nested deeper than " + std::to_string(limits.max_depth);
    return result;
  }
  if (state.too_many) {
    result.error =
        "the document has more than " + std::to_string(limits.max_elements) + " elements";
    return result;
  }
  if (!parser->wellFormed || !doc) {
    if (state.error_code == XML_ERR_UNDECLARED_ENTITY ||
        state.error_code == XML_WAR_UNDECLARED_ENTITY) {
      result.error =
          "entity references are not allowed (line " + std::to_string(state.error_line) + ")";
    } else {
      result.error = "the document is not well-formed XML (line " +
                     std::to_string(state.error_line) + ", column " +
                     std::to_string(state.error_column) + ", libxml2 error " +
                     std::to_string(state.error_code) + ")";
    }
    return result;
  }
  if (doc->encoding != nullptr && !detail::equals_ignoring_case(doc->encoding, "UTF-8")) {
    result.error = "the declared encoding is not UTF-8";
    return result;
  }
  if (doc->version != nullptr && detail::to_string(doc->version) != "1.0") {
    result.error = "only XML 1.0 is accepted";
    return result;
  }
  xmlNodePtr root = xmlDocGetRootElement(doc.get());
  if (root == nullptr) {
    result.error = "the document has no root element";
    return result;
  }
  xml_element copy;
  if (!detail::copy_element(root, copy)) {
    result.error = "entity references are not allowed";
    return result;
  }
  result.root = std::move(copy);
  return result;
}

/// Builds a document with libxml2's tree API: names and values are stored as given and escaped by
/// the serialiser (&lt; &amp; &quot; and character references for CR, LF and tab in attributes),
/// so no value can inject markup. Callers pass only text that is_xml_text() accepts.
class xml_writer {
 public:
  xml_writer() : doc_(xmlNewDoc(reinterpret_cast<const xmlChar*>("1.0"))) {}

  /// Creates the root element.
  xmlNodePtr root(const char* name) {
    xmlNodePtr node = xmlNewDocNode(doc_.get(), nullptr, as_xml(name), nullptr);
    xmlDocSetRootElement(doc_.get(), node);
    return node;
  }

  /// Appends a child element (no text: text goes through text()).
  xmlNodePtr child(xmlNodePtr parent, const char* name) {
    return xmlNewChild(parent, nullptr, as_xml(name), nullptr);
  }

  /// Sets an attribute; the value is escaped when the document is written.
  void attribute(xmlNodePtr node, const char* name, const std::string& value) {
    xmlNewProp(node, as_xml(name), as_xml(value.c_str()));
  }

  /// Appends character data; escaped when the document is written.
  void text(xmlNodePtr node, const std::string& value) {
    xmlNodeAddContentLen(node, as_xml(value.c_str()), static_cast<int>(value.size()));
  }

  /// The document as UTF-8 with an XML declaration, indented.
  std::string to_string() const {
    xmlChar* memory = nullptr;
    int size = 0;
    xmlDocDumpFormatMemoryEnc(doc_.get(), &memory, &size, "UTF-8", 1);
    std::string out;
    if (memory != nullptr) {
      out.assign(reinterpret_cast<const char*>(memory), static_cast<std::size_t>(size));
      xmlFree(memory);
    }
    return out;
  }

 private:
  static const xmlChar* as_xml(const char* text) { return reinterpret_cast<const xmlChar*>(text); }

  std::unique_ptr<xmlDoc, detail::doc_deleter> doc_;
};

}  // namespace mxgw::adapters::la_mps
