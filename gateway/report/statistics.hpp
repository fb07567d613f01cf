// `mxgw report`: statistics without identities for a period (six-monthly and annual reports),
// aggregated from the statistical facts the store keeps with each accepted message
// (pipeline::facts_of). Pure: the caller reads the rows from the store and prints the result.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/report/case_threads.hpp"

namespace mxgw::store {
struct message_facts;
}

namespace mxgw::report {

/// A report period: UTC days "YYYY-MM-DD", both inclusive.
struct period {
  std::string from;
  std::string to;
};

/// Nullopt when `p` is usable; else why not (a day that is not a real "YYYY-MM-DD" date, or
/// `from` after `to`), as a sentence for the operator.
std::optional<std::string> check_period(const period& p);

/// The smallest and the largest threshold of small-cell suppression.
inline constexpr std::uint32_t min_suppress_below = 2;
inline constexpr std::uint32_t max_suppress_below = 1000;

/// The threshold in `text` when it is a whole number in decimal digits only (no sign, no space)
/// from min_suppress_below to max_suppress_below; else nullopt.
std::optional<std::uint32_t> parse_suppress_below(std::string_view text);

/// How a report is printed.
struct output_options {
  /// Small-cell suppression below this threshold k (min_suppress_below to max_suppress_below);
  /// nullopt prints every figure as counted.
  std::optional<std::uint32_t> suppress_below;
};

/// Aggregates the facts rows of the messages accepted from the period's first day until now into
/// the report. The rules:
/// - In the period: a row whose accepted_at date (UTC) lies within [from, to]. Rows after the
///   period are used only to find withdrawals and answers; rows before it likewise.
/// - Without facts: a row whose facts are empty, do not parse or are not a JSON object counts in
///   `messages` only (total, byType, withoutFacts); its categories are unknown and it cannot be
///   grouped, answer a request or withdraw a message.
/// - Withdrawn: a message is withdrawn when a `case.status` row with facts status "withdrawn" or
///   "cancelled", `about` its id and the same sender was accepted (at any time in the input). A
///   withdrawn message counts in nothing but `messages.withdrawn` (so `messages.total` +
///   `messages.withdrawn` = the rows in the period); a withdrawn result answers nothing.
/// - `messages`: `total` and `byType` (rows in the period, not withdrawn), `withoutFacts` (of
///   those), `withdrawn` (rows in the period that are withdrawn).
/// - `victims`: the victim.identification rows in the period (not withdrawn), grouped by sender
///   and facts `ref` (a row without ref is a group of its own); a group's last row in acceptance
///   order gives its facts. `messages` counts the rows, `byStatus` every group; `total` and the
///   other breakdowns only the groups whose status is not "not-a-victim": `bySex`, `byAgeBand`,
///   `byMinor` ("yes", "no", "unknown"), `byNationality` and `byExploitation` (each value listed
///   counts once; "unknown" when none), `byRegion`, `bySender`.
/// - `wanted`: person.wanted rows grouped the same way: `total` (groups), `messages` (rows),
///   `bySex`, `byNationality`, `byRequestedAction`, `bySender`.
/// - `tips`: each hotline.tip row: `total`, `byChannel`, `byUrgency`, `byReporterType`,
///   `byExploitation`, `possibleVictims` (the sum of the tips' possible victims).
/// - `verifications`: the verification.request rows in the period (not withdrawn): `requests`,
///   `byPurpose`, `byUrgency`. A request is answered by the first verification.result row
///   accepted after it (at any time in the input, not withdrawn) whose inReplyTo is the request's
///   id: `answered`, `unanswered`, `byResult` (over the answered); `overdue` counts the requests
///   answered on a UTC day after their deadline day plus the unanswered ones whose deadline day
///   (UTC) has ended at `now`; `turnaroundHours` {"median", "p90", "max"} are the hours between
///   the request's and the answer's accepted_at over the answered requests (nearest-rank
///   percentiles, one decimal; null when none was answered).
/// - A missing or mistyped single value counts as "unknown". A breakdown maps each value to its
///   count, keys sorted by byte value. The output holds counts and category values (codes and
///   partner ids) only: never a message id, a reference or its digest.
///
/// Small-cell suppression (only when output_options::suppress_below gives a threshold k), applied
/// to the figures once, before either form prints them:
/// - Primary: every count (each total: `messages.total`, `withoutFacts`, `withdrawn`,
///   `victims.total`, `victims.messages`, `wanted.total`, `wanted.messages`, `tips.total`,
///   `tips.possibleVictims`, `verifications.requests`, `answered`, `unanswered`, `overdue`; and
///   each cell of every breakdown, `bySender` and `byStatus` included) whose value c satisfies
///   0 < c < k is suppressed. Zeros are shown.
/// - Secondary, in a breakdown: where exactly one cell is suppressed after the primary rule, the
///   smallest other non-zero shown cell is suppressed too (ties: the first in key order), so the
///   first cannot be recomputed from the total by subtraction. It applies to every breakdown.
/// - Secondary, across figures: these relations are sums of printed figures:
///   `messages.total` = sum of `byType`; when `withoutFacts` is 0, each of the `byType` cells
///   victim.identification, person.wanted, hotline.tip, verification.request = `victims.messages`,
///   `wanted.messages`, `tips.total`, `verifications.requests`; when `byType` has no other type,
///   `messages.total` = `withoutFacts` + those four; `victims.total` = sum of `byStatus` but
///   not-a-victim, of `bySex`, `byAgeBand`, `byMinor`, `byRegion`, `bySender`; `wanted.total` =
///   sum of `bySex`, `byRequestedAction`, `bySender`; `tips.total` = sum of `byChannel`,
///   `byUrgency`, `byReporterType`; `requests` = sum of `byPurpose`, of `byUrgency`, and
///   `answered` + `unanswered`; `answered` = sum of `byResult`; and, when the counts make them
///   true, `victims.messages` = sum of `byStatus`, `wanted.messages` = `wanted.total`, and the sums
///   of `victims.byNationality`, `victims.byExploitation`, `wanted.byNationality`,
///   `tips.byExploitation` = their section's total. While a relation has exactly one member
///   suppressed, its smallest non-zero shown member (a total or a cell; ties: the first in the
///   report's order; a zero only when no other is shown) is suppressed too, until none has: no
///   suppressed figure can be recomputed from the shown ones through them.
/// - `turnaroundHours` `median`, `p90` and `max` are suppressed when 0 < `answered` < k (a
///   maximum over two answers says too much); with none answered they are null as without
///   suppression.
/// - JSON: a suppressed figure is null, and `"suppression": {"below": k, "cells": n}` follows
///   `generatedAt` (n: how many figures were suppressed, turnaround figures included). CSV: a
///   suppressed figure's count is `<k`, and two last lines `suppression,below,,k` and
///   `suppression,cells,,n` follow the figures. Without a threshold neither member nor lines
///   are written.
class statistics_builder {
 public:
  /// Precondition: check_period(p) is nullopt.
  explicit statistics_builder(period p);

  /// Takes the next row; rows come in acceptance order (the store's read_facts order).
  void add(const store::message_facts& row);

  /// The report as of `now` (for overdue deadlines and `generatedAt`), as pretty-printed JSON:
  /// {"report": "mxgw-statistics", "version": 1, "period": {"from", "to"}, "generatedAt",
  /// ["suppression",] "messages", "victims", "wanted", "tips", "verifications"}, members in that
  /// fixed order. Precondition: options.suppress_below, when given, is within
  /// [min_suppress_below, max_suppress_below].
  std::string json(std::chrono::system_clock::time_point now,
                   const output_options& options = {}) const;

  /// The same figures as RFC 4180 CSV (CRLF line ends): the header
  /// `section,dimension,value,count`, then one line per figure in the JSON's order
  /// (`messages,total,,120`, `victims,sex,F,12`, `verifications,turnaround_hours,median,36.5`;
  /// an empty count for a turnaround figure that has no value), then the suppression lines when
  /// asked. A value is quoted only when it holds a comma, a double quote, CR or LF. Same
  /// precondition as json().
  std::string csv(std::chrono::system_clock::time_point now,
                  const output_options& options = {}) const;

 private:
  /// A row in the period, with the facts members the report counts.
  struct counted_row {
    std::size_t order = 0;  ///< position in the input
    std::string id;         ///< lower-cased; only to match withdrawals and answers
    std::string sender;
    std::string type;
    std::string accepted_at;
    bool has_facts = false;
    std::vector<std::pair<std::string, std::string>> values;              ///< string members
    std::vector<std::pair<std::string, std::vector<std::string>>> lists;  ///< array members
    std::optional<bool> minor;
    std::uint64_t possible_victims = 0;

    /// The string member `name`, or "" when absent.
    std::string_view value(std::string_view name) const;
    /// The array member `name`, or nullptr when absent.
    const std::vector<std::string>* list(std::string_view name) const;
  };

  struct figures;
  struct printed;
  class person_groups;
  figures tally(std::chrono::system_clock::time_point now) const;
  /// The figures as both forms print them, small cells withheld when `options` asks.
  printed print(std::chrono::system_clock::time_point now, const output_options& options) const;

  period period_;
  std::size_t next_order_ = 0;
  std::vector<counted_row> rows_;  // the rows in the period
  case_threads threads_;           // withdrawals and answers, whenever accepted
};

}  // namespace mxgw::report
