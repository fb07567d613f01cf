// `mxgw` subcommands that work against a running gateway's admin API (`--admin-url` with an
// administrator's certificate) instead of a local certificate directory or store.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "gateway/cli/client.hpp"

namespace CLI {
class App;
}

namespace mxgw::audit {
struct audit_row;
}

namespace mxgw::cli {

/// Where the admin API is and how to prove who we are.
struct admin_target {
  std::string url;  ///< https://host:port
  client_tls tls;   ///< administrator certificate and key; CA of the gateway's certificate
};

/// Adds --admin-url (required or not), --cert, --key and --ca to `cmd`.
void add_admin_options(CLI::App* cmd, admin_target& target, bool required);

/// What makes `target` unusable (a URL that is not https:// with a host and a port from 1 to
/// 65535; --cert, --key or --ca missing), as a sentence naming the option; nullopt when usable.
/// The command line refuses such a target as bad usage (exit status 2) before asking anything.
std::optional<std::string> admin_target_problem(const admin_target& target);

/// One admin API request. Status 0 with `error` set when the target is unusable
/// (admin_target_problem) or no answer was read.
client_result admin_request(const admin_target& target, std::string_view method,
                            const std::string& path, const std::string& body = {});

/// Exit status of an admin call: 0 for 2xx; otherwise 1 with the error or the problem document
/// on stderr, prefixed with `what`.
int report_failure(std::string_view what, const client_result& r);

/// A file named on the command line could not be read (missing, a directory, not permitted, a
/// read error): bad input, exit status 2 whatever the command.
class input_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The whole of `file`. Throws input_error "FILE: cannot be read: REASON" (never the library's
/// own text), so a directory or an unreadable file is named as such.
std::string read_given_file(const std::filesystem::path& file);

/// The JSON of an admin API answer (a parse error leaves it not an object).
rapidjson::Document parse_answer(const std::string& body);

/// `text` as a JSON string literal, quotes and escapes included.
std::string json_quoted(const std::string& text);

/// One certificate record of the admin API as a line: serial, state, notAfter, partner,
/// fingerprint.
void print_certificate_line(const rapidjson::Value& record);

/// Prints one audit entry as a JSON line: the hashed members (details as an object) and the
/// hash. Shared by the local and the admin-API `audit query`.
void print_audit_entry(const audit::audit_row& row);

/// The filters of `mxgw audit query` (times as given on the command line).
struct audit_filter {
  std::string since, until, partner, message_id, event;
  std::size_t limit = 1000;  ///< 0: no limit
};

/// `mxgw certs revoke --admin-url`: revokes the certificate named by exactly one of
/// `fingerprint` (SHA-256 hex), `cert_file` (PEM; recorded first when the gateway has no
/// record of it) or `serial` (hex, any case; must name exactly
/// one recorded certificate). Returns 0, 1 (refused or failed) or 2 (bad usage).
int admin_revoke(const admin_target& target, const std::string& fingerprint,
                 const std::string& cert_file, const std::string& serial,
                 const std::string& reason);

/// `mxgw certs list --admin-url`: every certificate record, one line each.
int admin_list_certificates(const admin_target& target);

/// `mxgw queue depth --admin-url`: per recipient, the deliveries in each state.
int admin_queue_depth(const admin_target& target);

/// `mxgw queue dead --admin-url`: dead letters, oldest first (metadata only).
int admin_dead_letters(const admin_target& target);

/// `mxgw release list --admin-url`: copies held for four-eyes release, oldest first (metadata).
int admin_release_list(const admin_target& target);

/// `mxgw release show --admin-url`: the held copy as it would leave, on stdout (the gateway
/// records the reading on its audit chain).
int admin_release_show(const admin_target& target, const std::string& message_id,
                       const std::string& recipient);

/// `mxgw release approve|reject --admin-url`: this administrator's decision on one held copy
/// (`reason` for reject). Returns 0, or 1 when refused (already approved by this administrator,
/// no such held copy) or failed.
int admin_release_decide(const admin_target& target, const std::string& message_id,
                         const std::string& recipient, bool approve, const std::string& reason);

/// `mxgw escalations --admin-url`: what waits too long, one line each: verification requests past
/// their deadline without an answer, then copies held for four-eyes release too long.
int admin_escalations(const admin_target& target);

/// `mxgw persons candidates --admin-url`: the persons of other messages who may be the same
/// person as one of this message's, one line each (the gateway records the question on its audit
/// chain). Returns 0; 1 when refused (no such message, matching off) or failed.
int admin_person_candidates(const admin_target& target, const std::string& message_id);

/// `mxgw queue replay|discard --admin-url`: acts on one dead letter (`reason` for discard).
int admin_dead_letter_action(const admin_target& target, const std::string& message_id,
                             const std::string& recipient, bool replay, const std::string& reason);

/// `mxgw audit query --admin-url`: entries matching `filter`, read page by page.
int admin_audit_query(const admin_target& target, const audit_filter& filter);

}  // namespace mxgw::cli
