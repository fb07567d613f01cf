// `mxgw` subcommands against a running gateway's admin API (see admin_commands.hpp).
#include "gateway/cli/admin_commands.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <vector>

#include "gateway/audit/audit.hpp"
#include "gateway/audit/verify.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/identity/cert_authority.hpp"

namespace mxgw::cli {
namespace {

std::string query_escaped(const std::string& value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

bool is_hex(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](unsigned char c) { return std::isxdigit(c) != 0; });
}

// The partner id in a certificate's SAN URI urn:mxgw:partner:<id>, or "".
std::string partner_of(const identity::certificate_description& d) {
  return d.partner_uris.size() == 1 ? d.partner_uris.front() : std::string();
}

// GET a JSON answer whose member `list` is an array; nullopt (after printing why) on failure.
std::optional<rapidjson::Document> get_list(const admin_target& target, std::string_view what,
                                            const std::string& path, const char* list) {
  const auto r = admin_request(target, "GET", path);
  if (report_failure(what, r) != 0) {
    return std::nullopt;
  }
  auto doc = parse_answer(r.body);
  if (!doc.IsObject() || !doc.HasMember(list) || !doc[list].IsArray()) {
    std::cerr << what << ": the gateway's answer has no \"" << list << "\" list\n";
    return std::nullopt;
  }
  return doc;
}

}  // namespace

rapidjson::Document parse_answer(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str(), body.size());
  return doc;
}

std::string json_quoted(const std::string& text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  return buffer.GetString();
}

void print_certificate_line(const rapidjson::Value& c) {
  std::cout << json::get_string(c, "serial") << "  " << json::get_string(c, "state") << "  "
            << json::get_string(c, "notAfter") << "  " << json::get_string(c, "partner") << "  "
            << json::get_string(c, "fingerprint") << "\n";
}

void add_admin_options(CLI::App* cmd, admin_target& target, bool required) {
  auto* url = cmd->add_option("--admin-url", target.url,
                              "admin listener of a running gateway, e.g. https://localhost:9443");
  if (required) {
    url->required();
  }
  cmd->add_option("--cert", target.tls.cert, "administrator certificate")->check(CLI::ExistingFile);
  cmd->add_option("--key", target.tls.key, "its key")->check(CLI::ExistingFile);
  cmd->add_option("--ca", target.tls.ca, "CA of the gateway's server certificate")
      ->check(CLI::ExistingFile);
}

std::optional<std::string> admin_target_problem(const admin_target& target) {
  std::string error;
  if (!parse_https_url(target.url, error)) {
    return "--admin-url " + error;
  }
  if (target.tls.cert.empty() || target.tls.key.empty() || target.tls.ca.empty()) {
    return "--cert, --key and --ca are needed with --admin-url";
  }
  return std::nullopt;
}

client_result admin_request(const admin_target& target, std::string_view method,
                            const std::string& path, const std::string& body) {
  if (auto problem = admin_target_problem(target)) {
    client_result r;
    r.error = std::move(*problem);
    return r;
  }
  std::string error;
  const auto url = parse_https_url(target.url, error);
  return https_request(url->host, url->port, target.tls, method, path, body);
}

std::string read_given_file(const std::filesystem::path& file) {
  const auto fail = [&file](const std::string& reason) {
    return input_error(file.string() + ": cannot be read: " + reason);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw fail("it is a directory");
  }
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw fail(errno != 0 ? std::strerror(errno) : "it cannot be opened");
  }
  try {
    std::string text(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) {
      throw fail("a read failed");
    }
    return text;
  } catch (const std::ios_base::failure&) {
    // libstdc++'s filebuf throws on a failed read(2) whatever the stream's exception mask.
    throw fail(errno != 0 ? std::strerror(errno) : "a read failed");
  }
}

int report_failure(std::string_view what, const client_result& r) {
  if (r.status == 0) {
    std::cerr << what << ": " << r.error << "\n";
    return 1;
  }
  if (r.status >= 300) {
    std::cerr << what << ": " << r.status << " " << r.body << "\n";
    return 1;
  }
  return 0;
}

void print_audit_entry(const audit::audit_row& row) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto put = [&w](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  const auto entry = audit::parse_entry(row.entry);
  w.StartObject();
  w.Key("seq");
  w.Int64(row.seq);
  put("at", row.at);
  put("event", row.event);
  put("actor", row.actor);
  put("partner", row.partner);
  put("message", row.message_id);
  w.Key("details");
  if (entry) {
    w.StartObject();
    for (const auto& [key, value] : entry->record.details) {
      put(key.c_str(), value);
    }
    w.EndObject();
  } else {
    w.Null();  // not a well-formed entry: `mxgw audit verify` says more
  }
  put("hash", row.hash);
  w.EndObject();
  std::cout << std::string_view(buffer.GetString(), buffer.GetSize()) << "\n";
}

int admin_revoke(const admin_target& target, const std::string& fingerprint,
                 const std::string& cert_file, const std::string& serial,
                 const std::string& reason) {
  constexpr std::string_view what = "certs revoke";
  if (static_cast<int>(!fingerprint.empty()) + static_cast<int>(!cert_file.empty()) +
          static_cast<int>(!serial.empty()) !=
      1) {
    std::cerr << what << ": give exactly one of --fingerprint, --certificate and --serial\n";
    return 2;
  }
  std::string fp = fingerprint;
  std::string certificate_pem;
  std::string partner;
  if (!cert_file.empty()) {
    certificate_pem = read_given_file(cert_file);
    const auto d = identity::describe_certificate(certificate_pem);  // throws on a non-PEM file
    fp = d.sha256_fingerprint;
    partner = partner_of(d);
  } else if (!serial.empty()) {
    const auto normalised = identity::normalize_serial(serial);
    if (!normalised) {
      std::cerr << what << ": \"" << serial << "\" is not a hexadecimal serial\n";
      return 2;
    }
    const std::string& wanted = *normalised;
    auto doc = get_list(target, what, "/admin/v1/certificates", "certificates");
    if (!doc) {
      return 1;
    }
    std::vector<std::string> matches;
    for (const auto& c : (*doc)["certificates"].GetArray()) {
      if (identity::normalize_serial(json::get_string(c, "serial")) == wanted) {
        matches.emplace_back(json::get_string(c, "fingerprint"));
      }
    }
    if (matches.empty()) {
      std::cerr << what << ": the gateway records no certificate with serial " << wanted
                << " (give --certificate FILE to revoke one it has not recorded)\n";
      return 1;
    }
    if (matches.size() > 1) {
      std::cerr << what << ": serial " << wanted
                << " names several certificates (from different CAs); give --fingerprint:\n";
      for (const auto& m : matches) {
        std::cerr << "  " << m << "\n";
      }
      return 1;
    }
    fp = matches.front();
  }
  std::transform(fp.begin(), fp.end(), fp.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  fp.erase(std::remove(fp.begin(), fp.end(), ':'), fp.end());
  if (fp.size() != 64 || !is_hex(fp)) {
    std::cerr << what << ": a fingerprint is 64 hexadecimal digits (SHA-256 of the DER)\n";
    return 2;
  }
  const std::string path = "/admin/v1/certificates/" + fp + "/revoke";
  const std::string body = "{\"reason\":" + json_quoted(reason) + "}";
  auto r = admin_request(target, "POST", path, body);
  if (r.status == 404 && !certificate_pem.empty() && !partner.empty()) {
    // A certificate the gateway has not recorded (issued offline, known by its SAN): record it
    // first, then revoke it, so the revocation has a record to hold it.
    const auto registered =
        admin_request(target, "POST", "/admin/v1/partners/" + partner + "/certificates",
                      "{\"certificate\":" + json_quoted(certificate_pem) + "}");
    if (report_failure("certs revoke (recording the certificate first)", registered) != 0) {
      return 1;
    }
    r = admin_request(target, "POST", path, body);
  }
  if (report_failure(what, r) != 0) {
    return 1;
  }
  const auto doc = parse_answer(r.body);
  std::cout << "revoked " << fp;
  if (doc.IsObject()) {
    std::cout << " (serial " << json::get_string(doc, "serial") << ", partner "
              << json::get_string(doc, "partner") << ")";
  }
  std::cout << ": its next handshake fails and its open connections are closed\n";
  return 0;
}

int admin_list_certificates(const admin_target& target) {
  auto doc = get_list(target, "certs list", "/admin/v1/certificates", "certificates");
  if (!doc) {
    return 1;
  }
  for (const auto& c : (*doc)["certificates"].GetArray()) {
    print_certificate_line(c);
  }
  return 0;
}

int admin_queue_depth(const admin_target& target) {
  auto doc = get_list(target, "queue depth", "/admin/v1/queues", "queues");
  if (!doc) {
    return 1;
  }
  for (const auto& q : (*doc)["queues"].GetArray()) {
    std::cout << json::get_string(q, "partner");
    for (const char* state :
         {"held", "pending", "delivering", "retrying", "dead", "delivered", "rejected"}) {
      std::cout << "  " << state << " "
                << (q.HasMember(state) && q[state].IsUint64() ? q[state].GetUint64() : 0);
    }
    const auto oldest = json::get_string(q, "oldestWaiting");
    std::cout << "  oldest " << (oldest.empty() ? std::string_view("-") : oldest) << "\n";
  }
  return 0;
}

int admin_dead_letters(const admin_target& target) {
  auto doc = get_list(target, "queue dead", "/admin/v1/dead-letters?limit=1000", "deadLetters");
  if (!doc) {
    return 1;
  }
  for (const auto& d : (*doc)["deadLetters"].GetArray()) {
    std::cout << json::get_string(d, "message") << "  " << json::get_string(d, "recipient") << "  "
              << json::get_string(d, "type") << "  from " << json::get_string(d, "sender")
              << "  attempts "
              << (d.HasMember("attempts") && d["attempts"].IsInt() ? d["attempts"].GetInt() : 0)
              << "  since " << json::get_string(d, "deadSince") << "  "
              << json::get_string(d, "lastError") << "\n";
  }
  return 0;
}

int admin_dead_letter_action(const admin_target& target, const std::string& message_id,
                             const std::string& recipient, bool replay, const std::string& reason) {
  const std::string what = replay ? "queue replay" : "queue discard";
  const auto r = admin_request(target, "POST",
                               "/admin/v1/dead-letters/" + query_escaped(message_id) + "/" +
                                   query_escaped(recipient) + (replay ? "/replay" : "/discard"),
                               replay ? std::string() : "{\"reason\":" + json_quoted(reason) + "}");
  if (report_failure(what, r) != 0) {
    return 1;
  }
  std::cout << (replay ? "replaying " : "discarded ") << message_id << " to " << recipient << "\n";
  return 0;
}

namespace {

std::string held_path(const std::string& message_id, const std::string& recipient) {
  return "/admin/v1/held/" + query_escaped(message_id) + "/" + query_escaped(recipient);
}

std::string approvals_text(const rapidjson::Value& entry) {
  std::string out;
  if (entry.HasMember("approvals") && entry["approvals"].IsArray()) {
    for (const auto& a : entry["approvals"].GetArray()) {
      out += (out.empty() ? "" : ",") + std::string(json::get_string(a, "by"));
    }
  }
  return out.empty() ? "-" : out;
}

}  // namespace

int admin_release_list(const admin_target& target) {
  auto doc = get_list(target, "release list", "/admin/v1/held?limit=1000", "held");
  if (!doc) {
    return 1;
  }
  const auto required = doc->HasMember("required") && (*doc)["required"].IsUint64()
                            ? (*doc)["required"].GetUint64()
                            : 0;
  for (const auto& h : (*doc)["held"].GetArray()) {
    const auto given = h.HasMember("approvals") && h["approvals"].IsArray()
                           ? h["approvals"].Size()
                           : rapidjson::SizeType{0};
    std::cout << json::get_string(h, "message") << "  " << json::get_string(h, "recipient") << "  "
              << json::get_string(h, "type") << "  from " << json::get_string(h, "sender")
              << "  held by " << json::get_string(h, "heldBy") << "  since "
              << json::get_string(h, "acceptedAt") << "  approvals " << given << "/" << required
              << " " << approvals_text(h) << "\n";
  }
  return 0;
}

int admin_release_show(const admin_target& target, const std::string& message_id,
                       const std::string& recipient) {
  const auto r = admin_request(target, "GET", held_path(message_id, recipient));
  if (report_failure("release show", r) != 0) {
    return 1;
  }
  auto doc = parse_answer(r.body);
  if (!doc.IsObject() || !doc.HasMember("copy") || !doc["copy"].IsString()) {
    std::cerr << "release show: the gateway's answer has no copy\n";
    return 1;
  }
  std::cerr << "copy of " << message_id << " for " << recipient << " ("
            << json::get_string(doc, "type") << " from " << json::get_string(doc, "sender")
            << ", format " << json::get_string(doc, "format") << ")\n";
  std::cout << json::get_string(doc, "copy") << "\n";
  return 0;
}

int admin_release_decide(const admin_target& target, const std::string& message_id,
                         const std::string& recipient, bool approve, const std::string& reason) {
  const std::string what = approve ? "release approve" : "release reject";
  const auto r = admin_request(
      target, "POST", held_path(message_id, recipient) + (approve ? "/approve" : "/reject"),
      approve ? std::string() : "{\"reason\":" + json_quoted(reason) + "}");
  if (report_failure(what, r) != 0) {
    return 1;
  }
  auto doc = parse_answer(r.body);
  const auto required = doc.IsObject() && doc.HasMember("required") && doc["required"].IsUint64()
                            ? doc["required"].GetUint64()
                            : 0;
  const auto given = doc.IsObject() && doc.HasMember("approvals") && doc["approvals"].IsArray()
                         ? doc["approvals"].Size()
                         : rapidjson::SizeType{0};
  std::cout << json::get_string(doc, "outcome") << " " << message_id << " to " << recipient
            << "  state " << json::get_string(doc, "state");
  if (approve) {
    std::cout << "  approvals " << given << "/" << required << " " << approvals_text(doc);
  }
  std::cout << "\n";
  return 0;
}

int admin_escalations(const admin_target& target) {
  auto doc = get_list(target, "escalations", "/admin/v1/escalations", "escalations");
  if (!doc) {
    return 1;
  }
  for (const auto& e : (*doc)["escalations"].GetArray()) {
    std::cout << "verification " << json::get_string(e, "messageId") << "  from "
              << json::get_string(e, "sender") << "  deadline " << json::get_string(e, "deadline")
              << "  escalated " << json::get_string(e, "escalatedAt") << "\n";
  }
  if (doc->HasMember("heldCopies") && (*doc)["heldCopies"].IsArray()) {
    for (const auto& h : (*doc)["heldCopies"].GetArray()) {
      std::cout << "held " << json::get_string(h, "messageId") << "  to "
                << json::get_string(h, "recipient") << "  from " << json::get_string(h, "sender")
                << "  held by " << json::get_string(h, "heldBy") << "  since "
                << json::get_string(h, "heldSince") << "  escalated "
                << json::get_string(h, "escalatedAt") << "\n";
    }
  }
  return 0;
}

int admin_person_candidates(const admin_target& target, const std::string& message_id) {
  const auto r = admin_request(
      target, "GET", "/admin/v1/messages/" + query_escaped(message_id) + "/candidates?limit=1000");
  if (report_failure("persons candidates", r) != 0) {
    return 1;
  }
  auto doc = parse_answer(r.body);
  if (!doc.IsObject() || !doc.HasMember("candidates") || !doc["candidates"].IsArray()) {
    std::cerr << "persons candidates: the gateway's answer has no candidates\n";
    return 1;
  }
  for (const auto& c : doc["candidates"].GetArray()) {
    std::string basis;
    if (c.HasMember("basis") && c["basis"].IsArray()) {
      for (const auto& b : c["basis"].GetArray()) {
        if (b.IsString()) {
          basis += (basis.empty() ? "" : ",") + std::string(b.GetString());
        }
      }
    }
    // message#pointer names a person in a message, as a URI fragment would.
    std::cout << message_id << "#" << json::get_string(c, "pointer") << "  "
              << json::get_string(c, "message") << "#" << json::get_string(c, "otherPointer")
              << "  " << json::get_string(c, "type") << "  from " << json::get_string(c, "sender")
              << "  accepted " << json::get_string(c, "acceptedAt") << "  shares " << basis << "\n";
  }
  if (doc.HasMember("truncated") && doc["truncated"].IsBool() && doc["truncated"].GetBool()) {
    std::cerr << "persons candidates: more candidates than shown (the first 1000)\n";
  }
  return 0;
}

int admin_audit_query(const admin_target& target, const audit_filter& filter) {
  for (const auto& [option, value] :
       {std::pair{"--since", &filter.since}, std::pair{"--until", &filter.until}}) {
    if (!value->empty() && !parse_rfc3339(*value)) {
      std::cerr << "audit query: " << option
                << " must be an RFC 3339 date-time, e.g. 2026-11-22T00:00:00Z\n";
      return 2;
    }
  }
  std::string base = "/admin/v1/audit?";
  for (const auto& [name, value] :
       {std::pair{"since", &filter.since}, std::pair{"until", &filter.until},
        std::pair{"partner", &filter.partner}, std::pair{"message", &filter.message_id},
        std::pair{"event", &filter.event}}) {
    if (!value->empty()) {
      base += std::string(name) + "=" + query_escaped(*value) + "&";
    }
  }
  std::int64_t after = 0;
  std::size_t printed = 0;
  for (;;) {
    std::size_t page = 1000;
    if (filter.limit != 0) {
      page = std::min(page, filter.limit - printed);
    }
    const auto r = admin_request(
        target, "GET", base + "after=" + std::to_string(after) + "&limit=" + std::to_string(page));
    if (report_failure("audit query", r) != 0) {
      return 1;
    }
    const auto doc = parse_answer(r.body);
    if (!doc.IsObject() || !doc.HasMember("entries") || !doc["entries"].IsArray() ||
        !doc.HasMember("next") || !doc["next"].IsInt64()) {
      std::cerr << "audit query: the gateway's answer is not an audit page\n";
      return 1;
    }
    const auto& entries = doc["entries"];
    for (const auto& e : entries.GetArray()) {
      if (!e.IsObject() || !e.HasMember("entry") || !e["entry"].IsObject()) {
        std::cerr << "audit query: the gateway's answer holds an entry without its bytes\n";
        return 1;
      }
      // The entry is the chain's canonical JSON; written again by the same writer it gives the
      // bytes that were hashed, so the line is the same as the local query prints.
      audit::audit_row row;
      row.entry = json::to_string(e["entry"]);
      row.hash = std::string(json::get_string(e, "hash"));
      if (const auto parsed = audit::parse_entry(row.entry)) {
        row.seq = parsed->seq;
        row.at = parsed->at;
        row.event = parsed->record.event;
        row.actor = parsed->record.actor;
        row.partner = parsed->record.partner;
        row.message_id = parsed->record.message_id;
      } else if (e.HasMember("seq") && e["seq"].IsInt64()) {
        row.seq = e["seq"].GetInt64();
      }
      print_audit_entry(row);
      ++printed;
    }
    // The gateway reads until `page` entries match or the chain ends.
    if (entries.Size() < page || (filter.limit != 0 && printed >= filter.limit)) {
      return 0;
    }
    after = doc["next"].GetInt64();
  }
}

}  // namespace mxgw::cli
