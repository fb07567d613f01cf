// The stand-in INTERPOL-style notice feed that partner-sim serves with `--format interpol
// --fixtures DIR`: list pages and details built from fixture files, with fault switches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mxgw::sim {

/// One answer of the feed.
struct feed_reply {
  int status = 200;
  std::string body;
};

/// Notices from fixture files: DIR/red/*.json and DIR/yellow/*.json, one notice DETAIL document
/// each (its `entity_id` is the key; the file name does not matter). Thread-safe.
class notice_feed {
 public:
  /// Reads the fixtures. Throws std::invalid_argument naming the file when one is not a notice.
  explicit notice_feed(const std::filesystem::path& dir);

  /// Answers GET `target` (path and query) for a client that reached the sim as `host`
  /// (the Host header, used in the HAL links):
  ///   /notices/v1/<type>?page=N&resultPerPage=M  a list page (M at most 160; `next` when more)
  ///   /notices/v1/<type>/<id>                    a detail (`/` of the entity id as `-`), or 502
  ///                                              {"error"} for an unknown id, as the real service
  /// nullopt when `target` is not a feed path.
  std::optional<feed_reply> answer(std::string_view target, std::string_view host);

  // ---- fault switches ----
  /// The next request for list page `page` of `type` answers `status` (once).
  void fail_page_once(const std::string& type, int page, int status = 503);
  /// Every request for that page answers `status` until cleared with status 0.
  void fail_page(const std::string& type, int page, int status);
  /// Every request for that page answers `status` with `body` as it is (a page that is not
  /// JSON, not a list, too large, ...) until cleared with status 0.
  void answer_page(const std::string& type, int page, int status, std::string body);
  /// List page `page` of `type` carries `_links.next` = `json` (JSON text; `{host}` in it is
  /// replaced by the host the client reached), also on the last page. "" clears.
  void next_link(const std::string& type, int page, std::string json);
  /// The detail of `entity_id` answers `status` (0 clears).
  void fail_detail(const std::string& entity_id, int status);
  /// Changes the notice's content (its `distinguishing_marks` gets a new revision text).
  void change(const std::string& entity_id);
  /// Sets the notice's content to that of revision `revision` (0: as in its fixture file), so
  /// that a notice can change back to an earlier content.
  void set_revision(const std::string& entity_id, int revision);
  /// Takes the notice off the list (its detail then answers 502); `restore` puts it back and
  /// clears `unlist` and `malform_listed_id`.
  void remove(const std::string& entity_id);
  void restore(const std::string& entity_id);
  /// Leaves the notice out of the list (and its `total`) while its detail still answers 200: a
  /// list that passed it over, as when an earlier notice leaves mid-sweep.
  void unlist(const std::string& entity_id);
  /// Removes the notice (as `remove`) just before list page `page` of `type` is next answered.
  void remove_before_page(const std::string& type, int page, const std::string& entity_id);
  /// The notice's list item carries a malformed `entity_id` (its detail is unchanged).
  void malform_listed_id(const std::string& entity_id);
  /// No list query reaches past the `results`th notice (the real service: 160); `total` still
  /// counts every listed notice. 0: no limit (the default).
  void limit_reach(int results);
  /// The answer to each request for the notice's detail is held back `ms` milliseconds (0
  /// clears); the request is counted when it arrives. Blocks one of the sim's threads meanwhile.
  void delay_detail(const std::string& entity_id, int ms);

  /// Requests so far for list page `page` of `type`, and for `entity_id`'s detail.
  std::uint64_t page_requests(const std::string& type, int page) const;
  std::uint64_t detail_requests(const std::string& entity_id) const;
  /// Entity ids of `type` currently listed, in list order.
  std::vector<std::string> listed(const std::string& type) const;

 private:
  struct notice {
    std::string type;
    std::string entity_id;
    std::string detail;  ///< the fixture's JSON text (with a changed revision, when changed)
    int revision = 0;
    bool removed = false;
    bool unlisted = false;   ///< left out of the list, detail still answered
    bool malformed = false;  ///< listed with a malformed entity_id
  };

  feed_reply list_page(const std::string& type, std::string_view query, std::string_view host);
  /// The detail of `entity` (with `/`); the request was counted by answer().
  feed_reply detail(const std::string& type, const std::string& entity, std::string_view host);

  mutable std::mutex mutex_;
  std::map<std::string, notice> notices_;  ///< entity id -> notice
  std::map<std::pair<std::string, int>, int> page_once_;
  std::map<std::pair<std::string, int>, feed_reply> page_always_;
  std::map<std::pair<std::string, int>, std::string> next_links_;
  std::map<std::string, int> detail_delays_;
  std::map<std::string, int> detail_faults_;
  std::map<std::pair<std::string, int>, std::string> removals_before_page_;
  int reach_ = 0;
  std::map<std::pair<std::string, int>, std::uint64_t> page_counts_;
  std::map<std::string, std::uint64_t> detail_counts_;
};

}  // namespace mxgw::sim
