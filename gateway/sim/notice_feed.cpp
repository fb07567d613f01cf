// The stand-in notice feed (see notice_feed.hpp).
#include "gateway/sim/notice_feed.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "gateway/common/json.hpp"

namespace mxgw::sim {
namespace {

constexpr int max_page_size = 160;

std::string error_json(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("error");
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

/// The value of `name` in a query string, or empty.
std::string_view query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      return pair.substr(eq + 1);
    }
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return {};
}

int number_or(std::string_view text, int fallback) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() ? value : fallback;
}

std::string slug(std::string id) {
  std::replace(id.begin(), id.end(), '/', '-');
  return id;
}

}  // namespace

notice_feed::notice_feed(const std::filesystem::path& dir) {
  for (const std::string type : {"red", "yellow"}) {
    const auto folder = dir / type;
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec)) {
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      if (entry.path().extension() == ".json") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      rapidjson::Document doc;
      if (json::parse_untrusted(text.str(), doc) || !doc.IsObject() ||
          json::get_string(doc, "entity_id").empty()) {
        throw std::invalid_argument("partner-sim: " + file.string() +
                                    " is not a notice detail with an entity_id");
      }
      const std::string id(json::get_string(doc, "entity_id"));
      notices_[id] = notice{type, id, text.str()};
    }
  }
  if (notices_.empty()) {
    throw std::invalid_argument("partner-sim: no notice fixtures in " + dir.string() +
                                " (red/*.json, yellow/*.json)");
  }
}

std::optional<feed_reply> notice_feed::answer(std::string_view target, std::string_view host) {
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  constexpr std::string_view prefix = "/notices/v1/";
  if (!path.starts_with(prefix)) {
    return std::nullopt;
  }
  const std::string_view rest = path.substr(prefix.size());
  const auto slash = rest.find('/');
  const std::string type(rest.substr(0, slash));
  if (type != "red" && type != "yellow") {
    return feed_reply{404, error_json("no such notice type")};
  }
  if (slash == std::string_view::npos) {
    return list_page(type, query, host);
  }
  std::string entity(rest.substr(slash + 1));
  if (const auto dash = entity.find('-'); dash != std::string::npos) {
    entity[dash] = '/';
  }
  int delay_ms = 0;
  {
    std::lock_guard lock(mutex_);
    ++detail_counts_[entity];
    if (auto delay = detail_delays_.find(entity); delay != detail_delays_.end()) {
      delay_ms = delay->second;
    }
  }
  if (delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  }
  return detail(type, entity, host);
}

feed_reply notice_feed::list_page(const std::string& type, std::string_view query,
                                  std::string_view host) {
  const int page = std::max(1, number_or(query_value(query, "page"), 1));
  const int size = std::clamp(number_or(query_value(query, "resultPerPage"), 20), 1, max_page_size);
  std::lock_guard lock(mutex_);
  ++page_counts_[{type, page}];
  if (auto removal = removals_before_page_.find({type, page});
      removal != removals_before_page_.end()) {
    if (auto it = notices_.find(removal->second); it != notices_.end()) {
      it->second.removed = true;
    }
    removals_before_page_.erase(removal);
  }
  if (auto once = page_once_.find({type, page}); once != page_once_.end()) {
    const int status = once->second;
    page_once_.erase(once);
    return {status, error_json("simulated page failure")};
  }
  if (auto always = page_always_.find({type, page}); always != page_always_.end()) {
    return always->second;
  }
  std::vector<const notice*> all;
  for (const auto& [id, n] : notices_) {
    if (n.type == type && !n.removed && !n.unlisted) {
      all.push_back(&n);
    }
  }
  // `total` counts every match; the pages reach no further than the reach limit.
  const std::size_t reachable =
      reach_ > 0 ? std::min(all.size(), static_cast<std::size_t>(reach_)) : all.size();
  const std::string base = "https://" + std::string(host) + "/notices/v1/" + type;
  const auto page_link = [&](int p) {
    return base + "?page=" + std::to_string(p) + "&resultPerPage=" + std::to_string(size);
  };
  const int last = std::max(1, static_cast<int>((reachable + size - 1) / size));
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  const auto text = [&](std::string_view s) {
    return rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  const auto link = [&](const std::string& href) {
    rapidjson::Value l(rapidjson::kObjectType);
    l.AddMember("href", text(href), a);
    return l;
  };
  doc.AddMember("total", static_cast<int>(all.size()), a);
  rapidjson::Value q(rapidjson::kObjectType);
  q.AddMember("page", page, a);
  q.AddMember("resultPerPage", size, a);
  doc.AddMember("query", q, a);
  rapidjson::Value list(rapidjson::kArrayType);
  for (std::size_t i = static_cast<std::size_t>((page - 1) * size);
       i < reachable && i < static_cast<std::size_t>(page * size); ++i) {
    rapidjson::Document detail;
    detail.Parse(all[i]->detail.c_str());
    rapidjson::Value item(rapidjson::kObjectType);
    for (const char* member : {"entity_id", "forename", "name", "date_of_birth", "nationalities"}) {
      if (detail.HasMember(member)) {
        item.AddMember(rapidjson::StringRef(member), rapidjson::Value(detail[member], a), a);
      }
    }
    if (all[i]->malformed) {
      item["entity_id"].SetString("2026/1O0O3 <b>", a);  // a letter O, and markup
    }
    rapidjson::Value links(rapidjson::kObjectType);
    links.AddMember("self", link(base + "/" + slug(all[i]->entity_id)), a);
    links.AddMember("images", link(base + "/" + slug(all[i]->entity_id) + "/images"), a);
    item.AddMember("_links", links, a);
    list.PushBack(item, a);
  }
  rapidjson::Value embedded(rapidjson::kObjectType);
  embedded.AddMember("notices", list, a);
  doc.AddMember("_embedded", embedded, a);
  rapidjson::Value links(rapidjson::kObjectType);
  links.AddMember("self", link(page_link(page)), a);
  links.AddMember("first", link(page_link(1)), a);
  links.AddMember("last", link(page_link(last)), a);
  if (auto next = next_links_.find({type, page}); next != next_links_.end()) {
    std::string json_text = next->second;
    for (auto at = json_text.find("{host}"); at != std::string::npos;
         at = json_text.find("{host}", at + host.size())) {
      json_text.replace(at, 6, host);
    }
    rapidjson::Document value(&a);
    value.Parse(json_text.c_str(), json_text.size());
    links.AddMember("next", rapidjson::Value(value, a), a);
  } else if (page < last) {
    links.AddMember("next", link(page_link(page + 1)), a);
  }
  doc.AddMember("_links", links, a);
  return {200, json::to_string(doc)};
}

feed_reply notice_feed::detail(const std::string& type, const std::string& entity,
                               std::string_view host) {
  std::string id = entity;
  std::replace(id.begin(), id.end(), '/', '-');
  std::lock_guard lock(mutex_);
  if (auto fault = detail_faults_.find(entity); fault != detail_faults_.end()) {
    return {fault->second, error_json("simulated detail failure")};
  }
  auto it = notices_.find(entity);
  if (it == notices_.end() || it->second.type != type || it->second.removed) {
    return {502, error_json("no such notice")};  // what the real service answers
  }
  rapidjson::Document doc;
  doc.Parse(it->second.detail.c_str());
  auto& a = doc.GetAllocator();
  if (it->second.revision > 0) {
    const std::string marks = "revision " + std::to_string(it->second.revision);
    rapidjson::Value v(marks.c_str(), a);
    if (doc.HasMember("distinguishing_marks")) {
      doc["distinguishing_marks"] = v;
    } else {
      doc.AddMember("distinguishing_marks", v, a);
    }
  }
  // The links name the host the client reached, as a relay's would.
  const std::string self = "https://" + std::string(host) + "/notices/v1/" + type + "/" + id;
  rapidjson::Value links(rapidjson::kObjectType);
  rapidjson::Value self_link(rapidjson::kObjectType);
  self_link.AddMember("href", rapidjson::Value(self.c_str(), a), a);
  links.AddMember("self", self_link, a);
  rapidjson::Value images(rapidjson::kObjectType);
  images.AddMember("href", rapidjson::Value((self + "/images").c_str(), a), a);
  links.AddMember("images", images, a);
  doc.RemoveMember("_links");
  doc.AddMember("_links", links, a);
  return {200, json::to_string(doc)};
}

void notice_feed::fail_page_once(const std::string& type, int page, int status) {
  std::lock_guard lock(mutex_);
  page_once_[{type, page}] = status;
}

void notice_feed::fail_page(const std::string& type, int page, int status) {
  std::lock_guard lock(mutex_);
  if (status == 0) {
    page_always_.erase({type, page});
  } else {
    page_always_[{type, page}] = {status, error_json("simulated page failure")};
  }
}

void notice_feed::answer_page(const std::string& type, int page, int status, std::string body) {
  std::lock_guard lock(mutex_);
  if (status == 0) {
    page_always_.erase({type, page});
  } else {
    page_always_[{type, page}] = {status, std::move(body)};
  }
}

void notice_feed::next_link(const std::string& type, int page, std::string json) {
  std::lock_guard lock(mutex_);
  if (json.empty()) {
    next_links_.erase({type, page});
  } else {
    next_links_[{type, page}] = std::move(json);
  }
}

void notice_feed::fail_detail(const std::string& entity_id, int status) {
  std::lock_guard lock(mutex_);
  if (status == 0) {
    detail_faults_.erase(entity_id);
  } else {
    detail_faults_[entity_id] = status;
  }
}

void notice_feed::change(const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    ++it->second.revision;
  }
}

void notice_feed::set_revision(const std::string& entity_id, int revision) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    it->second.revision = std::max(0, revision);
  }
}

void notice_feed::remove(const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    it->second.removed = true;
  }
}

void notice_feed::restore(const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    it->second.removed = false;
    it->second.unlisted = false;
    it->second.malformed = false;
  }
}

void notice_feed::unlist(const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    it->second.unlisted = true;
  }
}

void notice_feed::remove_before_page(const std::string& type, int page,
                                     const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  removals_before_page_[{type, page}] = entity_id;
}

void notice_feed::malform_listed_id(const std::string& entity_id) {
  std::lock_guard lock(mutex_);
  if (auto it = notices_.find(entity_id); it != notices_.end()) {
    it->second.malformed = true;
  }
}

void notice_feed::limit_reach(int results) {
  std::lock_guard lock(mutex_);
  reach_ = std::max(0, results);
}

void notice_feed::delay_detail(const std::string& entity_id, int ms) {
  std::lock_guard lock(mutex_);
  if (ms <= 0) {
    detail_delays_.erase(entity_id);
  } else {
    detail_delays_[entity_id] = ms;
  }
}

std::uint64_t notice_feed::page_requests(const std::string& type, int page) const {
  std::lock_guard lock(mutex_);
  auto it = page_counts_.find({type, page});
  return it == page_counts_.end() ? 0 : it->second;
}

std::uint64_t notice_feed::detail_requests(const std::string& entity_id) const {
  std::lock_guard lock(mutex_);
  auto it = detail_counts_.find(entity_id);
  return it == detail_counts_.end() ? 0 : it->second;
}

std::vector<std::string> notice_feed::listed(const std::string& type) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, n] : notices_) {
    if (n.type == type && !n.removed && !n.unlisted) {
      out.push_back(id);
    }
  }
  return out;
}

}  // namespace mxgw::sim
