// The statistics report: counts over the facts rows of a period, as JSON and CSV.
#include "gateway/report/statistics.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iterator>
#include <variant>

#include "gateway/common/json.hpp"
#include "gateway/common/text.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::report {
namespace {

using breakdown = std::map<std::string, std::uint64_t, std::less<>>;

constexpr std::string_view unknown = "unknown";
constexpr std::string_view not_a_victim = "not-a-victim";
constexpr std::size_t day_chars = 10;  // "YYYY-MM-DD"

// The UTC day of a store timestamp, or "" when it does not start with a real date.
std::string_view day_of(std::string_view accepted_at) {
  if (accepted_at.size() < day_chars || !is_valid_full_date(accepted_at.substr(0, day_chars))) {
    return {};
  }
  return accepted_at.substr(0, day_chars);
}

void count(breakdown& counts, std::string_view value) {
  const std::string_view key = value.empty() ? unknown : value;
  auto it = counts.find(key);
  if (it == counts.end()) {
    counts.emplace(std::string(key), 1);
  } else {
    ++it->second;
  }
}

// Each value of a list counts once; "unknown" when the list is missing or empty.
void count_each(breakdown& counts, const std::vector<std::string>* values) {
  if (values == nullptr || values->empty()) {
    count(counts, unknown);
    return;
  }
  for (const auto& value : *values) {
    count(counts, value);
  }
}

// The nearest-rank `percent` percentile of ascending `sorted` (not empty).
std::int64_t nearest_rank(const std::vector<std::int64_t>& sorted, std::size_t percent) {
  const std::size_t rank = std::max<std::size_t>(1, (percent * sorted.size() + 99) / 100);
  return sorted[rank - 1];
}

// Hours with one decimal, from milliseconds.
std::string hours_text(std::int64_t ms) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", static_cast<double>(ms) / 3'600'000.0);
  return buffer;
}

// A CSV field: quoted (with doubled quotes) only when it holds a comma, a quote, CR or LF.
std::string csv_field(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  out += '"';
  return out;
}

// --- the report as printed, shared by JSON and CSV ----------------------------------------------

// Median, p90 and max turnaround, as text with one decimal; empty when nothing was answered.
using turnaround = std::vector<std::pair<std::string_view, std::string>>;

// One number as printed: a count, or hours with one decimal ("" when there is none).
struct cell {
  std::string key;  // the breakdown's value or the turnaround figure; "" for a total
  std::variant<std::uint64_t, std::string> number;
  bool suppressed = false;  // withheld by small-cell suppression
};

// One figure with its JSON member and CSV dimension: a total (one cell), a breakdown (a cell per
// value, sorted) or the turnaround hours (median, p90, max).
struct figure {
  enum class shape { total, by_value, hours };
  std::string_view json_name;
  std::string_view csv_name;
  shape kind = shape::total;
  std::vector<cell> cells;
};

struct section {
  std::string_view name;  // the JSON member and the CSV section
  std::vector<figure> figures;
};

figure total_figure(std::string_view json_name, std::string_view csv_name, std::uint64_t count) {
  return {json_name, csv_name, figure::shape::total, {{{}, count}}};
}

figure breakdown_figure(std::string_view json_name, std::string_view csv_name,
                        const breakdown& counts) {
  figure out{json_name, csv_name, figure::shape::by_value, {}};
  for (const auto& [value, n] : counts) {
    out.cells.push_back({value, n});
  }
  return out;
}

figure hours_figure(std::string_view json_name, std::string_view csv_name,
                    const turnaround& hours) {
  figure out{json_name, csv_name, figure::shape::hours, {}};
  for (const auto& [name, text] : hours) {
    out.cells.push_back({std::string(name), text});
  }
  return out;
}

std::uint64_t count_of(const cell& c) {
  const auto* n = std::get_if<std::uint64_t>(&c.number);
  return n == nullptr ? 0 : *n;
}

// Counts that add up: the members of one relation sum to zero with signs (a total is a member like
// its parts). Whoever sees all of them but one can work that one out, so after suppression no
// relation may have exactly one member withheld.
struct relation {
  std::vector<cell*> members;
};

figure* find_figure(std::vector<section>& report, std::string_view section_name,
                    std::string_view json_name) {
  for (auto& s : report) {
    if (s.name != section_name) {
      continue;
    }
    for (auto& fig : s.figures) {
      if (fig.json_name == json_name) {
        return &fig;
      }
    }
  }
  return nullptr;
}

// The additive relations between the figures of `report` (the list in statistics.hpp). Those that
// hold only for this report's data (every victim reported once, each victim one nationality, no
// message without facts) are listed when they hold: a reader may assume them.
std::vector<relation> relations_of(std::vector<section>& report) {
  std::vector<relation> out;
  const auto total = [&report](std::string_view s, std::string_view name) {
    return &find_figure(report, s, name)->cells.front();
  };
  const auto cells = [&report](std::string_view s, std::string_view name) {
    return &find_figure(report, s, name)->cells;
  };
  const auto sum_of = [](const std::vector<cell>& parts) {
    std::uint64_t sum = 0;
    for (const auto& c : parts) {
      sum += count_of(c);
    }
    return sum;
  };
  // `whole` is the sum of `parts` (always, or only when `when_equal` and the counts say so).
  const auto add = [&out, &sum_of](cell* whole, std::vector<cell>* parts, bool when_equal = false) {
    if (parts->empty() || (when_equal && sum_of(*parts) != count_of(*whole))) {
      return;
    }
    relation r;
    for (auto& c : *parts) {
      r.members.push_back(&c);
    }
    r.members.push_back(whole);
    out.push_back(std::move(r));
  };

  // messages.total is the sum of byType; a section's messages are its type's byType cell when
  // every message had facts, and with only the four counted types the sections and withoutFacts
  // add up to messages.total.
  cell* messages_total = total("messages", "total");
  add(messages_total, cells("messages", "byType"));
  cell* without_facts = total("messages", "withoutFacts");
  const std::pair<std::string_view, cell*> section_of_type[] = {
      {"hotline.tip", total("tips", "total")},
      {"person.wanted", total("wanted", "messages")},
      {"verification.request", total("verifications", "requests")},
      {"victim.identification", total("victims", "messages")},
  };
  bool only_counted_types = true;
  for (auto& c : *cells("messages", "byType")) {
    const auto it = std::find_if(std::begin(section_of_type), std::end(section_of_type),
                                 [&c](const auto& t) { return t.first == c.key; });
    if (it == std::end(section_of_type)) {
      only_counted_types = false;
    } else if (count_of(*without_facts) == 0) {
      out.push_back({{&c, it->second}});
    }
  }
  if (only_counted_types) {
    relation r{{messages_total, without_facts}};
    for (const auto& [type, section_cell] : section_of_type) {
      r.members.push_back(section_cell);
    }
    out.push_back(std::move(r));
  }

  // victims.total counts the groups whose status is not not-a-victim; every breakdown of a victim
  // adds up to it (byNationality and byExploitation when each victim has one value);
  // victims.messages is byStatus's sum when each victim was reported once.
  cell* victims = total("victims", "total");
  relation counted;
  for (auto& c : *cells("victims", "byStatus")) {
    if (c.key != not_a_victim) {
      counted.members.push_back(&c);
    }
  }
  if (!counted.members.empty()) {
    counted.members.push_back(victims);
    out.push_back(std::move(counted));
  }
  add(total("victims", "messages"), cells("victims", "byStatus"), true);
  for (std::string_view name : {"bySex", "byAgeBand", "byMinor", "byRegion", "bySender"}) {
    add(victims, cells("victims", name));
  }
  add(victims, cells("victims", "byNationality"), true);
  add(victims, cells("victims", "byExploitation"), true);

  // Wanted persons likewise; wanted.messages is wanted.total when each was reported once.
  cell* wanted = total("wanted", "total");
  for (std::string_view name : {"bySex", "byRequestedAction", "bySender"}) {
    add(wanted, cells("wanted", name));
  }
  add(wanted, cells("wanted", "byNationality"), true);
  if (count_of(*wanted) == count_of(*total("wanted", "messages"))) {
    out.push_back({{wanted, total("wanted", "messages")}});
  }

  // Tips: each breakdown adds up to the total (byExploitation when each tip has one value).
  cell* tips = total("tips", "total");
  for (std::string_view name : {"byChannel", "byUrgency", "byReporterType"}) {
    add(tips, cells("tips", name));
  }
  add(tips, cells("tips", "byExploitation"), true);

  // Verifications: requests by purpose, by urgency, answered or not; answered by result.
  cell* requests = total("verifications", "requests");
  cell* answered = total("verifications", "answered");
  add(requests, cells("verifications", "byPurpose"));
  add(requests, cells("verifications", "byUrgency"));
  out.push_back({{answered, total("verifications", "unanswered"), requests}});
  add(answered, cells("verifications", "byResult"));

  // Members in the report's order, so that among equal counts the first printed goes.
  std::map<const cell*, std::size_t> printed_order;
  for (auto& s : report) {
    for (auto& fig : s.figures) {
      for (auto& c : fig.cells) {
        printed_order.emplace(&c, printed_order.size());
      }
    }
  }
  for (auto& r : out) {
    std::sort(r.members.begin(), r.members.end(), [&printed_order](const cell* a, const cell* b) {
      return printed_order.at(a) < printed_order.at(b);
    });
  }
  return out;
}

// Withholds the small cells of `report` below `k` (the rule in statistics.hpp); the turnaround
// hours are over `answered` requests. Returns how many numbers it withheld.
std::size_t suppress_small_cells(std::vector<section>& report, std::uint64_t k,
                                 std::uint64_t answered) {
  const auto small = [k](const cell& c) {
    const std::uint64_t n = count_of(c);
    return n > 0 && n < k;
  };
  // The smallest non-zero shown cell among `candidates` (the first among equals), else the first
  // shown one; nullptr when all are withheld.
  const auto smallest_shown = [](const std::vector<cell*>& candidates) {
    cell* smallest = nullptr;
    for (cell* c : candidates) {
      if (c->suppressed) {
        continue;
      }
      if (smallest == nullptr ||
          (count_of(*c) > 0 && (count_of(*smallest) == 0 || count_of(*c) < count_of(*smallest)))) {
        smallest = c;
      }
    }
    return smallest;
  };
  for (auto& s : report) {
    for (auto& fig : s.figures) {
      if (fig.kind == figure::shape::hours) {
        if (answered > 0 && answered < k) {
          for (auto& c : fig.cells) {
            c.suppressed = true;
          }
        }
        continue;
      }
      // Primary: every small count.
      std::size_t primary = 0;
      std::vector<cell*> others;
      for (auto& c : fig.cells) {
        if (small(c)) {
          c.suppressed = true;
          ++primary;
        } else if (count_of(c) > 0) {
          others.push_back(&c);
        }
      }
      // One withheld cell alone in a breakdown could be recomputed from the total: the smallest
      // other one goes too (in every breakdown, even one that does not add up to its total).
      if (fig.kind == figure::shape::by_value && primary == 1 && !others.empty()) {
        smallest_shown(others)->suppressed = true;
      }
    }
  }
  // Across figures and sections: until no relation has exactly one member withheld, withhold the
  // smallest shown member of the first that has.
  const std::vector<relation> relations = relations_of(report);
  for (bool again = true; again;) {
    again = false;
    for (const auto& r : relations) {
      const auto withheld = std::count_if(r.members.begin(), r.members.end(),
                                          [](const cell* c) { return c->suppressed; });
      if (withheld != 1) {
        continue;
      }
      if (cell* next = smallest_shown(r.members); next != nullptr) {
        next->suppressed = true;
        again = true;
        break;
      }
    }
  }
  std::size_t withheld = 0;
  for (const auto& s : report) {
    for (const auto& fig : s.figures) {
      withheld += static_cast<std::size_t>(std::count_if(
          fig.cells.begin(), fig.cells.end(), [](const cell& c) { return c.suppressed; }));
    }
  }
  return withheld;
}

}  // namespace

// --- the counts ----------------------------------------------------------------------------------

struct statistics_builder::figures {
  struct {
    std::uint64_t total = 0;
    breakdown by_type;
    std::uint64_t without_facts = 0;
    std::uint64_t withdrawn = 0;
  } messages;
  struct {
    std::uint64_t total = 0;
    std::uint64_t messages = 0;
    breakdown by_status, by_sex, by_age_band, by_minor, by_nationality, by_exploitation, by_region,
        by_sender;
  } victims;
  struct {
    std::uint64_t total = 0;
    std::uint64_t messages = 0;
    breakdown by_sex, by_nationality, by_requested_action, by_sender;
  } wanted;
  struct {
    std::uint64_t total = 0;
    breakdown by_channel, by_urgency, by_reporter_type, by_exploitation;
    std::uint64_t possible_victims = 0;
  } tips;
  struct {
    std::uint64_t requests = 0;
    breakdown by_purpose, by_urgency;
    std::uint64_t answered = 0;
    std::uint64_t unanswered = 0;
    breakdown by_result;
    std::uint64_t overdue = 0;
    turnaround turnaround_hours;  // {median, p90, max}; empty values when none answered
  } verifications;

  std::vector<section> layout() const {
    const auto& m = messages;
    const auto& v = victims;
    const auto& w = wanted;
    const auto& t = tips;
    const auto& r = verifications;
    return {
        {"messages",
         {
             total_figure("total", "total", m.total),
             breakdown_figure("byType", "type", m.by_type),
             total_figure("withoutFacts", "without_facts", m.without_facts),
             total_figure("withdrawn", "withdrawn", m.withdrawn),
         }},
        {"victims",
         {
             total_figure("total", "total", v.total),
             total_figure("messages", "messages", v.messages),
             breakdown_figure("byStatus", "status", v.by_status),
             breakdown_figure("bySex", "sex", v.by_sex),
             breakdown_figure("byAgeBand", "age_band", v.by_age_band),
             breakdown_figure("byMinor", "minor", v.by_minor),
             breakdown_figure("byNationality", "nationality", v.by_nationality),
             breakdown_figure("byExploitation", "exploitation", v.by_exploitation),
             breakdown_figure("byRegion", "region", v.by_region),
             breakdown_figure("bySender", "sender", v.by_sender),
         }},
        {"wanted",
         {
             total_figure("total", "total", w.total),
             total_figure("messages", "messages", w.messages),
             breakdown_figure("bySex", "sex", w.by_sex),
             breakdown_figure("byNationality", "nationality", w.by_nationality),
             breakdown_figure("byRequestedAction", "requested_action", w.by_requested_action),
             breakdown_figure("bySender", "sender", w.by_sender),
         }},
        {"tips",
         {
             total_figure("total", "total", t.total),
             breakdown_figure("byChannel", "channel", t.by_channel),
             breakdown_figure("byUrgency", "urgency", t.by_urgency),
             breakdown_figure("byReporterType", "reporter_type", t.by_reporter_type),
             breakdown_figure("byExploitation", "exploitation", t.by_exploitation),
             total_figure("possibleVictims", "possible_victims", t.possible_victims),
         }},
        {"verifications",
         {
             total_figure("requests", "requests", r.requests),
             breakdown_figure("byPurpose", "purpose", r.by_purpose),
             breakdown_figure("byUrgency", "urgency", r.by_urgency),
             total_figure("answered", "answered", r.answered),
             total_figure("unanswered", "unanswered", r.unanswered),
             breakdown_figure("byResult", "result", r.by_result),
             total_figure("overdue", "overdue", r.overdue),
             hours_figure("turnaroundHours", "turnaround_hours", r.turnaround_hours),
         }},
    };
  }
};

// The figures in print: what both forms write, cell by cell.
struct statistics_builder::printed {
  std::vector<section> sections;
  std::optional<std::uint32_t> suppress_below;  // as asked
  std::size_t suppressed = 0;                   // numbers withheld
};

std::string_view statistics_builder::counted_row::value(std::string_view name) const {
  for (const auto& [key, text] : values) {
    if (key == name) {
      return text;
    }
  }
  return {};
}

const std::vector<std::string>* statistics_builder::counted_row::list(std::string_view name) const {
  for (const auto& [key, items] : lists) {
    if (key == name) {
      return &items;
    }
  }
  return nullptr;
}

std::optional<std::uint32_t> parse_suppress_below(std::string_view text) {
  std::uint32_t k = 0;
  const char* end = text.data() + text.size();
  // from_chars takes no '+' and no space; a '-' is refused for an unsigned type.
  const auto [stop, ec] = std::from_chars(text.data(), end, k);
  if (text.empty() || ec != std::errc() || stop != end || k < min_suppress_below ||
      k > max_suppress_below) {
    return std::nullopt;
  }
  return k;
}

std::optional<std::string> check_period(const period& p) {
  if (!is_valid_full_date(p.from)) {
    return "the period's first day must be a real date YYYY-MM-DD";
  }
  if (!is_valid_full_date(p.to)) {
    return "the period's last day must be a real date YYYY-MM-DD";
  }
  if (p.to < p.from) {
    return "the period's first day must not come after its last day";
  }
  return std::nullopt;
}

statistics_builder::statistics_builder(period p) : period_(std::move(p)) {}

void statistics_builder::add(const store::message_facts& row) {
  counted_row r;
  r.order = next_order_++;
  r.id = ascii_lower(row.id);
  r.sender = row.sender;
  r.type = row.type;
  r.accepted_at = row.accepted_at;

  // Facts are the gateway's own output, still parsed as untrusted: a damaged value must not
  // take the report down.
  rapidjson::Document facts;
  r.has_facts = !row.facts.empty() && !json::parse_untrusted(row.facts, facts) && facts.IsObject();
  if (r.has_facts) {
    for (const auto& m : facts.GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      if (m.value.IsString()) {
        r.values.emplace_back(std::move(name),
                              std::string(m.value.GetString(), m.value.GetStringLength()));
      } else if (m.value.IsArray()) {
        std::vector<std::string> items;
        for (const auto& item : m.value.GetArray()) {
          if (item.IsString()) {
            items.emplace_back(item.GetString(), item.GetStringLength());
          }
        }
        r.lists.emplace_back(std::move(name), std::move(items));
      } else if (name == "minor" && m.value.IsBool()) {
        r.minor = m.value.GetBool();
      } else if (name == "possibleVictims" && m.value.IsUint64()) {
        r.possible_victims = m.value.GetUint64();
      }
    }
  }

  // Withdrawals and answers count whenever they were accepted.
  if (r.has_facts && r.type == "case.status") {
    threads_.add_status(r.sender, r.value("status"), r.value("about"));
  }
  if (r.has_facts && r.type == "verification.result") {
    threads_.add_result(r.order, r.sender, r.id, r.value("inReplyTo"), r.accepted_at,
                        r.value("result"));
  }

  const std::string_view day = day_of(r.accepted_at);
  if (!day.empty() && period_.from <= day && day <= period_.to) {
    rows_.push_back(std::move(r));
  }
}

// The victims (or wanted persons) of the period: one group per sender and facts `ref`, a row
// without ref a group of its own. The last row of a group, in acceptance order, gives its facts.
class statistics_builder::person_groups {
 public:
  void add(const counted_row& r) {
    const std::string_view ref = r.value("ref");
    if (ref.empty()) {
      alone_.push_back(&r);
    } else {
      by_ref_[{r.sender, std::string(ref)}] = &r;
    }
  }

  /// The row that gives each group's facts.
  std::vector<const counted_row*> lasts() const {
    std::vector<const counted_row*> out(alone_);
    for (const auto& [key, r] : by_ref_) {
      out.push_back(r);
    }
    return out;
  }

 private:
  std::map<std::pair<std::string, std::string>, const counted_row*> by_ref_;
  std::vector<const counted_row*> alone_;
};

statistics_builder::figures statistics_builder::tally(
    std::chrono::system_clock::time_point now) const {
  figures f;
  const std::string today = format_rfc3339_ms(now).substr(0, day_chars);
  // Victims and wanted persons: one group per (sender, ref); a row without ref stands alone.
  person_groups victim_groups;
  person_groups wanted_groups;
  std::vector<std::int64_t> turnaround_ms;

  for (const auto& r : rows_) {
    if (threads_.is_withdrawn(r.sender, r.id)) {
      ++f.messages.withdrawn;
      continue;
    }
    ++f.messages.total;
    count(f.messages.by_type, r.type);
    if (!r.has_facts) {
      ++f.messages.without_facts;
      continue;
    }
    if (r.type == "victim.identification") {
      ++f.victims.messages;
      victim_groups.add(r);
    } else if (r.type == "person.wanted") {
      ++f.wanted.messages;
      wanted_groups.add(r);
    } else if (r.type == "hotline.tip") {
      ++f.tips.total;
      count(f.tips.by_channel, r.value("channel"));
      count(f.tips.by_urgency, r.value("urgency"));
      count(f.tips.by_reporter_type, r.value("reporterType"));
      count_each(f.tips.by_exploitation, r.list("exploitation"));
      f.tips.possible_victims += r.possible_victims;
    } else if (r.type == "verification.request") {
      auto& v = f.verifications;
      ++v.requests;
      count(v.by_purpose, r.value("purpose"));
      count(v.by_urgency, r.value("urgency"));
      const std::string_view deadline = r.value("deadline");
      const bool has_deadline = is_valid_full_date(deadline);
      // The first answer accepted after the request, from one of its recipients (any sender for
      // a request stored before its facts named them), that was not taken back.
      const case_threads::answer* first = threads_.first_answer(r.id, r.order, r.list("to"));
      if (first == nullptr) {
        ++v.unanswered;
        if (has_deadline && today > deadline) {
          ++v.overdue;
        }
        continue;
      }
      ++v.answered;
      count(v.by_result, first->result);
      const std::string_view answered_day = day_of(first->accepted_at);
      if (has_deadline && !answered_day.empty() && answered_day > deadline) {
        ++v.overdue;
      }
      const auto asked = parse_rfc3339(r.accepted_at);
      const auto replied = parse_rfc3339(first->accepted_at);
      if (asked && replied) {
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(*replied - *asked).count();
        turnaround_ms.push_back(std::max<std::int64_t>(0, ms));
      }
    }
  }

  for (const counted_row* r : victim_groups.lasts()) {
    auto& v = f.victims;
    const std::string_view status = r->value("status");
    count(v.by_status, status);
    if (status == not_a_victim) {
      continue;
    }
    ++v.total;
    count(v.by_sex, r->value("sex"));
    count(v.by_age_band, r->value("age"));
    count(v.by_minor, !r->minor ? unknown : *r->minor ? "yes" : "no");
    count_each(v.by_nationality, r->list("nationalities"));
    count_each(v.by_exploitation, r->list("exploitation"));
    count(v.by_region, r->value("region"));
    count(v.by_sender, r->sender);
  }
  for (const counted_row* r : wanted_groups.lasts()) {
    auto& w = f.wanted;
    ++w.total;
    count(w.by_sex, r->value("sex"));
    count_each(w.by_nationality, r->list("nationalities"));
    count(w.by_requested_action, r->value("requestedAction"));
    count(w.by_sender, r->sender);
  }

  auto& hours = f.verifications.turnaround_hours;
  std::sort(turnaround_ms.begin(), turnaround_ms.end());
  const bool any = !turnaround_ms.empty();
  hours.emplace_back("median", any ? hours_text(nearest_rank(turnaround_ms, 50)) : "");
  hours.emplace_back("p90", any ? hours_text(nearest_rank(turnaround_ms, 90)) : "");
  hours.emplace_back("max", any ? hours_text(turnaround_ms.back()) : "");
  return f;
}

statistics_builder::printed statistics_builder::print(std::chrono::system_clock::time_point now,
                                                      const output_options& options) const {
  const figures f = tally(now);
  printed out{f.layout(), options.suppress_below, 0};
  if (options.suppress_below) {
    out.suppressed =
        suppress_small_cells(out.sections, *options.suppress_below, f.verifications.answered);
  }
  return out;
}

std::string statistics_builder::json(std::chrono::system_clock::time_point now,
                                     const output_options& options) const {
  const printed report = print(now, options);
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> out(buffer);
  out.SetIndent(' ', 2);
  auto key = [&](std::string_view name) {
    out.Key(json::non_null(name), static_cast<rapidjson::SizeType>(name.size()));
  };
  auto text = [&](std::string_view value) {
    out.String(json::non_null(value), static_cast<rapidjson::SizeType>(value.size()));
  };
  // A withheld number and hours that have no value are null.
  auto number = [&](const cell& c) {
    const auto* hours = std::get_if<std::string>(&c.number);
    if (c.suppressed || (hours != nullptr && hours->empty())) {
      out.Null();
    } else if (hours != nullptr) {
      out.RawValue(hours->data(), hours->size(), rapidjson::kNumberType);
    } else {
      out.Uint64(std::get<std::uint64_t>(c.number));
    }
  };
  out.StartObject();
  key("report");
  text("mxgw-statistics");
  key("version");
  out.Int(1);
  key("period");
  out.StartObject();
  key("from");
  text(period_.from);
  key("to");
  text(period_.to);
  out.EndObject();
  key("generatedAt");
  text(format_rfc3339_ms(now));
  if (report.suppress_below) {
    key("suppression");
    out.StartObject();
    key("below");
    out.Uint(*report.suppress_below);
    key("cells");
    out.Uint64(report.suppressed);
    out.EndObject();
  }
  for (const auto& s : report.sections) {
    key(s.name);
    out.StartObject();
    for (const auto& fig : s.figures) {
      key(fig.json_name);
      if (fig.kind == figure::shape::total) {
        number(fig.cells.front());
        continue;
      }
      out.StartObject();
      for (const auto& c : fig.cells) {
        key(c.key);
        number(c);
      }
      out.EndObject();
    }
    out.EndObject();
  }
  out.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string statistics_builder::csv(std::chrono::system_clock::time_point now,
                                    const output_options& options) const {
  const printed report = print(now, options);
  std::string out = "section,dimension,value,count\r\n";
  auto line = [&](std::string_view section, std::string_view dimension, std::string_view value,
                  std::string_view number) {
    out += csv_field(section);
    out += ',';
    out += csv_field(dimension);
    out += ',';
    out += csv_field(value);
    out += ',';
    out += number;
    out += "\r\n";
  };
  const std::string below =
      report.suppress_below ? std::to_string(*report.suppress_below) : std::string();
  // A withheld number is "<k"; hours that have no value are empty.
  auto number = [&](const cell& c) {
    if (c.suppressed) {
      return "<" + below;
    }
    if (const auto* count = std::get_if<std::uint64_t>(&c.number)) {
      return std::to_string(*count);
    }
    return std::get<std::string>(c.number);
  };
  for (const auto& s : report.sections) {
    for (const auto& fig : s.figures) {
      for (const auto& c : fig.cells) {
        line(s.name, fig.csv_name, c.key, number(c));
      }
    }
  }
  if (report.suppress_below) {
    line("suppression", "below", "", below);
    line("suppression", "cells", "", std::to_string(report.suppressed));
  }
  return out;
}

}  // namespace mxgw::report
