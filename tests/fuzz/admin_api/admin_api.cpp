// Fuzz target: the admin API handler in-process. The bytes are up to eight requests, separated by
// a line "%%"; each is a line "METHOD TARGET [IF-MATCH]" and the JSON body after it. They go to
// admin_api::handle as administrator "fuzz", in order, over a fresh copy of a seeded SQLite store
// (two dead letters of message c0000000-0000-4000-8000-000000000001, to kh-stungtreng and
// kh-ratanakiri, so replay and discard find something) and fresh state (shipped partners, routing
// and code tables, a signing CA for CSR enrolment), so every input replays alike. Each answer must
// come exactly once with a known status, no CR or LF in a header, and a JSON body that parses.
#include <openssl/crypto.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/adapter.hpp"
#include "gateway/admin/admin_api.hpp"
#include "gateway/admin/admin_state.hpp"
#include "gateway/common/live.hpp"
#include "gateway/common/metrics.hpp"
#include "gateway/http/handlers.hpp"
#include "gateway/identity/cert_authority.hpp"
#include "gateway/identity/partner_registry.hpp"
#include "gateway/identity/trust_state.hpp"
#include "gateway/pipeline/canonical_check.hpp"
#include "gateway/pipeline/routing.hpp"
#include "gateway/store/message_store.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

constexpr std::size_t max_requests = 8;

// What every input starts from: loaded once, never changed (snapshots are immutable).
struct seed_state {
  mxgw::fuzz::scratch_dir dir;
  std::shared_ptr<mxgw::identity::partner_registry> partners;
  std::shared_ptr<mxgw::pipeline::canonical_checker> checker;
  std::shared_ptr<mxgw::pipeline::routing_rules> rules;
  std::string routing_document;
  std::vector<std::string> formats = mxgw::adapters::adapter_ids();
  std::uint64_t inputs = 0;

  seed_state() {
    std::vector<mxgw::identity::config_problem> problems;
    const auto config = mxgw::fuzz::source_dir() / "config";
    partners = std::make_shared<mxgw::identity::partner_registry>(
        mxgw::identity::partner_registry::load(config / "partners.json", problems, &formats));
    checker = std::make_shared<mxgw::pipeline::canonical_checker>(
        mxgw::pipeline::canonical_checker::load(config / "schema", config / "mappings", problems));
    rules = std::make_shared<mxgw::pipeline::routing_rules>(mxgw::pipeline::routing_rules::load(
        config / "routing.json", problems, *partners, checker->tables()));
    // Partners of config-only formats name adapters this target does not install: ignore those.
    std::erase_if(problems,
                  [](const auto& p) { return p.reason.find("adapter") != std::string::npos; });
    mxgw::fuzz::require_no_problems(problems, "admin_api seed");
    std::ifstream in(config / "routing.json", std::ios::binary);
    routing_document.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    mxgw::identity::certs_init({.dir = signing_dir()});
    seed_store();
  }

  std::filesystem::path signing_dir() const { return dir.path() / "signing"; }
  std::filesystem::path seeded_store() const { return dir.path() / "seeded" / "store.db"; }

  // The store every input starts from: one message, both of its copies dead (the first refused
  // with a text that is not UTF-8), and one with a copy held for release. Closed, so the file
  // alone holds everything.
  void seed_store() {
    auto store = mxgw::store::open_sqlite_store({.path = seeded_store()});
    const std::string body = R"({"seed":true})";
    mxgw::store::message_record record{"c0000000-0000-4000-8000-000000000001",
                                       "vn-gialai",
                                       "hotline.tip",
                                       "2026-12-07T00:00:00Z",
                                       std::string(64, '0'),
                                       body};
    record.deliveries.push_back({"kh-stungtreng", "explicit", body, "[]"});
    record.deliveries.push_back({"kh-ratanakiri", "explicit", body, "[]"});
    std::promise<mxgw::store::accept_outcome> accepted;
    store->accept(record, [&](mxgw::store::accept_result r) { accepted.set_value(r.outcome); });
    std::promise<std::vector<mxgw::store::delivery_job>> claimed;
    const bool stored = accepted.get_future().get() == mxgw::store::accept_outcome::stored;
    store->claim_due("seed", 10, std::chrono::minutes(1), {},
                     [&](std::vector<mxgw::store::delivery_job> jobs, bool) {
                       claimed.set_value(std::move(jobs));
                     });
    const auto jobs = claimed.get_future().get();
    bool reported = stored && jobs.size() == 2;
    for (const auto& job : jobs) {
      mxgw::store::attempt_report report{job.message_id, job.recipient, "seed"};
      report.attempt = job.attempt;
      report.result = mxgw::store::attempt_result::dead;
      report.error = "http-400: \xff\x1b[2J refused";
      std::promise<bool> done;
      store->report(std::move(report), [&](bool ok) { done.set_value(ok); });
      reported = done.get_future().get() && reported;
    }
    // A second message, whose copy for Ratanakiri is held for four-eyes release.
    mxgw::store::message_record held{"c0000000-0000-4000-8000-000000000002",
                                     "vn-gialai",
                                     "victim.identification",
                                     "2026-12-07T00:00:00Z",
                                     std::string(64, '1'),
                                     body};
    held.deliveries.push_back({.recipient = "kh-ratanakiri",
                               .decided_by = "explicit",
                               .payload = body,
                               .withheld = "[]",
                               .hold = "secret-across-border"});
    std::promise<mxgw::store::accept_outcome> held_accepted;
    store->accept(held, [&](mxgw::store::accept_result r) { held_accepted.set_value(r.outcome); });
    reported = held_accepted.get_future().get() == mxgw::store::accept_outcome::stored && reported;
    store->stop();
    if (!reported) {
      mxgw::fuzz::require_no_problems({{"seeded store", "", "could not be seeded"}},
                                      "admin_api seed");
    }
  }
};

seed_state& seed() {
  // OpenSSL (with its configuration) first, on this thread: otherwise a store thread hashing the
  // first audit entry loads the configuration, and the error state OpenSSL makes for that thread
  // while initialising is never freed (reported as a leak).
  static const bool openssl_ready = OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr) == 1;
  (void)openssl_ready;
  static seed_state instance;
  return instance;
}

// One request of the input: its request line split, and the body after it.
struct fuzz_request {
  std::string_view method;
  std::string_view target;
  std::string_view if_match;
  std::string_view body;
};

std::string_view next_word(std::string_view& line) {
  const auto end = line.find(' ');
  const auto word = line.substr(0, end);
  line = end == std::string_view::npos ? std::string_view() : line.substr(end + 1);
  return word;
}

std::vector<fuzz_request> split_requests(std::string_view input) {
  std::vector<fuzz_request> out;
  while (!input.empty() && out.size() < max_requests) {
    const auto separator = input.find("\n%%\n");
    std::string_view part = input.substr(0, separator);
    input = separator == std::string_view::npos ? std::string_view() : input.substr(separator + 4);
    const auto line_end = part.find('\n');
    std::string_view line = part.substr(0, line_end);
    fuzz_request r;
    r.method = next_word(line);
    r.target = next_word(line);
    r.if_match = line;
    r.body = line_end == std::string_view::npos ? std::string_view() : part.substr(line_end + 1);
    out.push_back(r);
  }
  return out;
}

bool valid_json(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  return !doc.HasParseError();
}

void check_answer(const mxgw::http::response& r) {
  if (r.status < 200 || r.status > 599) {
    __builtin_trap();
  }
  for (const auto& [name, value] : r.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      __builtin_trap();  // header injection
    }
  }
  if (!r.body.empty() && r.content_type.find("json") != std::string::npos && !valid_json(r.body)) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& s = seed();
  const auto requests = split_requests({reinterpret_cast<const char*>(data), size});
  if (requests.empty()) {
    return 0;
  }
  // A fresh store and state per input, so no input depends on the ones before it.
  const auto store_dir = s.dir.path() / ("input-" + std::to_string(s.inputs++));
  std::filesystem::create_directories(store_dir);
  std::filesystem::copy_file(s.seeded_store(), store_dir / "store.db");
  std::shared_ptr<mxgw::store::message_store> store =
      mxgw::store::open_sqlite_store({.path = store_dir / "store.db"});
  auto initial = std::make_shared<mxgw::identity::trust_state>();
  initial->partners = *s.partners;
  auto state = std::make_shared<mxgw::admin::state_manager>(
      std::make_shared<mxgw::identity::trust_store>(initial),
      std::make_shared<mxgw::live<mxgw::pipeline::routing_rules>>(s.rules), s.routing_document,
      store, std::shared_ptr<const mxgw::pipeline::code_tables>(s.checker, &s.checker->tables()),
      s.formats);
  auto api = std::make_unique<mxgw::admin::admin_api>(
      state, store,
      mxgw::admin::admin_api_options{
          .signing_dir = s.signing_dir(),
          .persons_matching = true,
          .reload =
              [](const std::string&) { return std::vector<mxgw::identity::config_problem>{}; }},
      std::make_shared<mxgw::metrics>(), [] { return std::string(); });
  for (const auto& fr : requests) {
    const std::string body(fr.body);  // the handler may read the body after returning
    mxgw::http::request req{
        .method = fr.method,
        .target = fr.target,
        .content_type = "application/json",
        .body = body,
        .partner = "fuzz",
        .peer = "127.0.0.1:1",
        .if_match = fr.if_match,
    };
    std::promise<mxgw::http::response> answered;
    auto answer = answered.get_future();
    // A second call of `done` throws from set_value: a crash the fuzzer reports.
    api->handle(req, [&answered](mxgw::http::response r) { answered.set_value(std::move(r)); });
    check_answer(answer.get());
  }
  api.reset();
  state->stop();
  store->stop();
  state.reset();
  store.reset();
  std::error_code ignored;
  std::filesystem::remove_all(store_dir, ignored);
  return 0;
}
