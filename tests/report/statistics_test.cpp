// The statistics report: the period check, grouping victims by reference, withdrawals, rows
// outside the period, verification answers and turnaround, rows without facts, the CSV form, and
// small-cell suppression when asked.
#include "gateway/report/statistics.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"
#include "gateway/store/message_store.hpp"

namespace mxgw::report {
namespace {

const period first_half{"2026-01-01", "2026-06-30"};

std::chrono::system_clock::time_point at(const std::string& rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(std::chrono::system_clock::time_point{});
}

const auto report_time = at("2026-07-01T08:00:00Z");

store::message_facts row(std::string id, std::string sender, std::string type,
                         std::string accepted_at, std::string facts) {
  return {std::move(id), std::move(sender), std::move(type), std::move(accepted_at),
          std::move(facts)};
}

store::message_facts victim(const std::string& id, const std::string& sender,
                            const std::string& accepted_at, const std::string& facts) {
  return row(id, sender, "victim.identification", accepted_at, facts);
}

store::message_facts withdrawal(const std::string& id, const std::string& sender,
                                const std::string& accepted_at, const std::string& about,
                                const std::string& status = "withdrawn") {
  return row(id, sender, "case.status", accepted_at,
             R"({"status":")" + status + R"(","about":")" + about + R"("})");
}

store::message_facts request(const std::string& id, const std::string& accepted_at,
                             const std::string& deadline) {
  std::string facts = R"({"purpose":"identity","urgency":"high")";
  if (!deadline.empty()) {
    facts += R"(,"deadline":")" + deadline + "\"";
  }
  return row(id, "vn-gialai", "verification.request", accepted_at, facts + "}");
}

store::message_facts answer(const std::string& id, const std::string& accepted_at,
                            const std::string& in_reply_to, const std::string& result) {
  return row(id, "kh-ratanakiri", "verification.result", accepted_at,
             R"({"result":")" + result + R"(","inReplyTo":")" + in_reply_to + R"("})");
}

// The report of `rows` over `p`, parsed.
rapidjson::Document report(const std::vector<store::message_facts>& rows,
                           const period& p = first_half,
                           std::chrono::system_clock::time_point now = report_time) {
  statistics_builder builder(p);
  for (const auto& r : rows) {
    builder.add(r);
  }
  rapidjson::Document doc;
  const std::string text = builder.json(now);
  EXPECT_FALSE(doc.Parse(text.c_str()).HasParseError()) << text;
  return doc;
}

// The report of `rows` over the first half with the figures below `k` withheld, parsed.
rapidjson::Document suppressed(const std::vector<store::message_facts>& rows, std::uint32_t k) {
  statistics_builder builder(first_half);
  for (const auto& r : rows) {
    builder.add(r);
  }
  rapidjson::Document doc;
  const std::string text = builder.json(report_time, {.suppress_below = k});
  EXPECT_FALSE(doc.Parse(text.c_str()).HasParseError()) << text;
  return doc;
}

store::message_facts tip(const std::string& id, const std::string& facts) {
  return row(id, "vn-gialai", "hotline.tip", "2026-02-01T10:00:00.000Z", facts);
}

// The value at JSON Pointer `pointer`, as compact JSON ("<absent>" when missing).
std::string get(const rapidjson::Document& doc, const std::string& pointer) {
  const rapidjson::Value* v = rapidjson::Pointer(pointer.c_str()).Get(doc);
  return v == nullptr ? "<absent>" : json::to_string(*v);
}

TEST(StatisticsPeriod, AcceptsRealDatesInOrder) {
  EXPECT_EQ(check_period(first_half), std::nullopt);
  EXPECT_EQ(check_period({"2026-03-01", "2026-03-01"}), std::nullopt) << "one day";
  EXPECT_EQ(check_period({"2028-02-29", "2028-12-31"}), std::nullopt) << "leap day";
}

TEST(StatisticsPeriod, RefusesImpossibleDatesAndReversedPeriods) {
  for (const period& p : std::vector<period>{{"2026-02-30", "2026-03-31"},
                                             {"2026-01-01", "2026-13-01"},
                                             {"2026-02-29", "2026-03-01"},
                                             {"2026-1-01", "2026-06-30"},
                                             {"", "2026-06-30"},
                                             {"2026-01-01", "2026-06-30T00:00:00Z"},
                                             {"2026", "2026-06-30"},
                                             {"2026-07-01", "2026-06-30"}}) {
    SCOPED_TRACE(p.from + " .. " + p.to);
    const auto error = check_period(p);
    ASSERT_TRUE(error.has_value());
    EXPECT_FALSE(error->empty());
  }
  EXPECT_NE(check_period({"2026-07-01", "2026-06-30"})->find("after"), std::string::npos);
}

TEST(Statistics, EmptyReportHasEveryFigureInAFixedOrder) {
  const auto doc = report({});
  std::vector<std::string> members;
  for (const auto& m : doc.GetObject()) {
    members.emplace_back(m.name.GetString());
  }
  EXPECT_EQ(members,
            (std::vector<std::string>{"report", "version", "period", "generatedAt", "messages",
                                      "victims", "wanted", "tips", "verifications"}));
  EXPECT_EQ(get(doc, "/report"), R"("mxgw-statistics")");
  EXPECT_EQ(get(doc, "/version"), "1");
  EXPECT_EQ(get(doc, "/period"), R"({"from":"2026-01-01","to":"2026-06-30"})");
  EXPECT_EQ(get(doc, "/generatedAt"), R"("2026-07-01T08:00:00.000Z")");
  EXPECT_EQ(get(doc, "/messages"), R"({"total":0,"byType":{},"withoutFacts":0,"withdrawn":0})");
  EXPECT_EQ(get(doc, "/victims"),
            R"({"total":0,"messages":0,"byStatus":{},"bySex":{},"byAgeBand":{},"byMinor":{},)"
            R"("byNationality":{},"byExploitation":{},"byRegion":{},"bySender":{}})");
  EXPECT_EQ(get(doc, "/wanted"),
            R"({"total":0,"messages":0,"bySex":{},"byNationality":{},"byRequestedAction":{},)"
            R"("bySender":{}})");
  EXPECT_EQ(get(doc, "/tips"), R"({"total":0,"byChannel":{},"byUrgency":{},"byReporterType":{},)"
                               R"("byExploitation":{},"possibleVictims":0})");
  EXPECT_EQ(
      get(doc, "/verifications"),
      R"({"requests":0,"byPurpose":{},"byUrgency":{},"answered":0,"unanswered":0,)"
      R"("byResult":{},"overdue":0,"turnaroundHours":{"median":null,"p90":null,"max":null}})");
}

TEST(Statistics, VictimIsCountedOncePerSenderAndRefAndItsLastFactsWin) {
  const auto doc = report({
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
             R"({"ref":"r1","sex":"U","status":"possible","minor":true})"),
      victim("a2", "vn-gialai", "2026-03-01T10:00:00.000Z",
             R"({"ref":"r1","sex":"F","age":"18--20","minor":false,"status":"identified"})"),
      victim("a3", "kh-ratanakiri", "2026-03-02T10:00:00.000Z",
             R"({"ref":"r1","sex":"M","status":"identified"})"),
      victim("a4", "vn-gialai", "2026-03-03T10:00:00.000Z", R"({"sex":"M","status":"rescued"})"),
      victim("a5", "vn-gialai", "2026-03-04T10:00:00.000Z", R"({"sex":"M","status":"rescued"})"),
  });
  EXPECT_EQ(get(doc, "/victims/messages"), "5");
  EXPECT_EQ(get(doc, "/victims/total"), "4")
      << "r1 of vn-gialai once, r1 of kh-ratanakiri, and two without ref";
  EXPECT_EQ(get(doc, "/victims/byStatus"), R"({"identified":2,"rescued":2})");
  EXPECT_EQ(get(doc, "/victims/bySex"), R"({"F":1,"M":3})");
  EXPECT_EQ(get(doc, "/victims/byMinor"), R"({"no":1,"unknown":3})");
  EXPECT_EQ(get(doc, "/victims/byAgeBand"), R"({"18--20":1,"unknown":3})");
  EXPECT_EQ(get(doc, "/victims/bySender"), R"({"kh-ratanakiri":1,"vn-gialai":3})");
  EXPECT_EQ(get(doc, "/messages/byType"), R"({"victim.identification":5})");
}

TEST(Statistics, NotAVictimCountsOnlyByStatus) {
  const auto doc = report({
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
             R"({"ref":"r1","sex":"F","status":"possible"})"),
      victim("a2", "vn-gialai", "2026-02-02T10:00:00.000Z",
             R"({"ref":"r1","sex":"F","status":"not-a-victim"})"),
      victim("a3", "vn-gialai", "2026-02-03T10:00:00.000Z",
             R"({"ref":"r2","sex":"M","status":"not-a-victim"})"),
      victim("a4", "vn-gialai", "2026-02-04T10:00:00.000Z",
             R"({"ref":"r2","sex":"M","status":"identified"})"),
  });
  EXPECT_EQ(get(doc, "/victims/byStatus"), R"({"identified":1,"not-a-victim":1})");
  EXPECT_EQ(get(doc, "/victims/total"), "1");
  EXPECT_EQ(get(doc, "/victims/messages"), "4");
  EXPECT_EQ(get(doc, "/victims/bySex"), R"({"M":1})");
  EXPECT_EQ(get(doc, "/victims/bySender"), R"({"vn-gialai":1})");
}

TEST(Statistics, BreakdownsCountEachListedValueAndUnknowns) {
  const auto doc = report({
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
             R"({"ref":"r1","sex":"F","age":"9--17","minor":true,"nationalities":["KH","VN"],)"
             R"("exploitation":["sexual","forced-labour"],"region":"VN-30","status":"rescued"})"),
      victim("a2", "vn-gialai", "2026-02-02T10:00:00.000Z",
             R"({"ref":"r2","nationalities":[],"exploitation":[],"status":"identified"})"),
      victim("a3", "vn-gialai", "2026-02-03T10:00:00.000Z",
             R"({"ref":"r3","sex":7,"nationalities":"KH","minor":"no","region":["VN-30"]})"),
  });
  EXPECT_EQ(get(doc, "/victims/total"), "3");
  EXPECT_EQ(get(doc, "/victims/byStatus"), R"({"identified":1,"rescued":1,"unknown":1})");
  EXPECT_EQ(get(doc, "/victims/bySex"), R"({"F":1,"unknown":2})") << "mistyped counts unknown";
  EXPECT_EQ(get(doc, "/victims/byMinor"), R"({"unknown":2,"yes":1})");
  EXPECT_EQ(get(doc, "/victims/byNationality"), R"({"KH":1,"VN":1,"unknown":2})");
  EXPECT_EQ(get(doc, "/victims/byExploitation"), R"({"forced-labour":1,"sexual":1,"unknown":2})");
  EXPECT_EQ(get(doc, "/victims/byRegion"), R"({"VN-30":1,"unknown":2})");
  EXPECT_EQ(get(doc, "/victims/byAgeBand"), R"({"9--17":1,"unknown":2})");
}

TEST(Statistics, WantedPersonsAreGroupedTheSameWay) {
  const auto doc = report({
      row("w1", "vn-gialai", "person.wanted", "2026-02-01T10:00:00.000Z",
          R"({"ref":"r1","sex":"M","nationalities":["VN"],"requestedAction":"monitor"})"),
      row("w2", "vn-gialai", "person.wanted", "2026-02-02T10:00:00.000Z",
          R"({"ref":"r1","sex":"M","nationalities":["VN","KH"],)"
          R"("requestedAction":"locate-and-arrest"})"),
      row("w3", "la-houaphanh", "person.wanted", "2026-02-03T10:00:00.000Z", R"({"ref":"r1"})"),
  });
  EXPECT_EQ(get(doc, "/wanted"), R"({"total":2,"messages":3,"bySex":{"M":1,"unknown":1},)"
                                 R"("byNationality":{"KH":1,"VN":1,"unknown":1},)"
                                 R"("byRequestedAction":{"locate-and-arrest":1,"unknown":1},)"
                                 R"("bySender":{"la-houaphanh":1,"vn-gialai":1}})");
}

TEST(Statistics, TipsAreCountedEachAndPossibleVictimsSummed) {
  const auto doc = report({
      row("t1", "vn-gialai", "hotline.tip", "2026-02-01T10:00:00.000Z",
          R"({"channel":"hotline-111","urgency":"immediate","reporterType":"family",)"
          R"("exploitation":["forced-criminality"],"possibleVictims":2})"),
      row("t2", "vn-gialai", "hotline.tip", "2026-02-01T11:00:00.000Z",
          R"({"channel":"zalo","urgency":"normal","possibleVictims":3})"),
      row("t3", "kh-ratanakiri", "hotline.tip", "2026-02-01T12:00:00.000Z",
          R"({"channel":"zalo","possibleVictims":-1})"),
  });
  EXPECT_EQ(get(doc, "/tips"),
            R"({"total":3,"byChannel":{"hotline-111":1,"zalo":2},)"
            R"("byUrgency":{"immediate":1,"normal":1,"unknown":1},)"
            R"("byReporterType":{"family":1,"unknown":2},)"
            R"("byExploitation":{"forced-criminality":1,"unknown":2},"possibleVictims":5})");
}

TEST(Statistics, WithdrawalBySameSenderExcludesTheMessage) {
  const auto doc = report({
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z", R"({"ref":"r1","status":"possible"})"),
      victim("a2", "vn-gialai", "2026-02-02T10:00:00.000Z", R"({"ref":"r2","status":"possible"})"),
      victim("a3", "vn-gialai", "2026-02-03T10:00:00.000Z", R"({"ref":"r3","status":"possible"})"),
      victim("a4", "vn-gialai", "2026-02-04T10:00:00.000Z", R"({"ref":"r4","status":"possible"})"),
      row("t1", "vn-gialai", "hotline.tip", "2026-02-05T10:00:00.000Z",
          R"({"channel":"web","possibleVictims":1})"),
      withdrawal("c1", "vn-gialai", "2026-03-01T10:00:00.000Z", "a1"),
      withdrawal("c2", "kh-ratanakiri", "2026-03-01T11:00:00.000Z", "a2"),
      withdrawal("c3", "vn-gialai", "2026-03-01T12:00:00.000Z", "a3", "cancelled"),
      withdrawal("c4", "vn-gialai", "2026-03-01T13:00:00.000Z", "a4", "repatriated"),
      withdrawal("c5", "vn-gialai", "2026-08-01T10:00:00.000Z", "t1"),  // after the period
  });
  EXPECT_EQ(get(doc, "/victims/total"), "2") << "a2 (withdrawn by another sender) and a4";
  EXPECT_EQ(get(doc, "/victims/messages"), "2");
  EXPECT_EQ(get(doc, "/tips/total"), "0") << "withdrawn after the period";
  EXPECT_EQ(get(doc, "/tips/possibleVictims"), "0");
  EXPECT_EQ(get(doc, "/messages/withdrawn"), "3");
  EXPECT_EQ(get(doc, "/messages/total"), "6") << "a2, a4 and the four status messages";
  EXPECT_EQ(get(doc, "/messages/byType"), R"({"case.status":4,"victim.identification":2})");
}

TEST(Statistics, RowsOutsideThePeriodOnlyWithdrawAndAnswer) {
  const auto doc = report({
      victim("a0", "vn-gialai", "2025-12-31T23:59:59.999Z", R"({"ref":"r0","status":"possible"})"),
      victim("a1", "vn-gialai", "2026-01-01T00:00:00.000Z", R"({"ref":"r1","status":"possible"})"),
      request("q1", "2026-06-30T23:00:00.000Z", "2026-07-10"),
      victim("a2", "vn-gialai", "2026-06-30T23:59:59.999Z",
             R"({"ref":"r1","status":"identified"})"),
      victim("a3", "vn-gialai", "2026-07-01T00:00:00.000Z", R"({"ref":"r1","status":"returned"})"),
      answer("v1", "2026-07-01T01:00:00.000Z", "q1", "no-record"),
      row("t1", "vn-gialai", "hotline.tip", "2026-07-02T10:00:00.000Z", R"({"channel":"web"})"),
      withdrawal("c1", "vn-gialai", "2026-07-03T10:00:00.000Z", "a2"),
  });
  EXPECT_EQ(get(doc, "/messages/total"), "2") << "a1 and q1; a2 is withdrawn";
  EXPECT_EQ(get(doc, "/messages/withdrawn"), "1");
  EXPECT_EQ(get(doc, "/victims/total"), "1");
  EXPECT_EQ(get(doc, "/victims/byStatus"), R"({"possible":1})")
      << "a3 after the period does not update the group; a2 is withdrawn";
  EXPECT_EQ(get(doc, "/tips/total"), "0");
  EXPECT_EQ(get(doc, "/verifications/answered"), "1");
  EXPECT_EQ(get(doc, "/verifications/byResult"), R"({"no-record":1})");
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":2.0,"p90":2.0,"max":2.0})");
}

TEST(Statistics, VerificationsAnsweredUnansweredAndOverdue) {
  const auto doc = report(
      {
          request("q2", "2026-03-01T00:00:00.000Z", "2026-03-02"),
          request("q3", "2026-03-01T00:00:00.000Z", "2026-03-02"),
          request("q4", "2026-03-01T00:00:00.000Z", "2026-06-30"),
          request("q5", "2026-03-01T00:00:00.000Z", ""),
          answer("v0", "2026-03-01T09:00:00.000Z", "q6", "confirmed"),  // before its request
          request("q1", "2026-03-01T10:00:00.000Z", "2026-03-05"),
          request("q6", "2026-03-01T10:00:00.000Z", "2026-07-01"),
          request("q7", "2026-03-01T10:00:00.000Z", "2026-03-02"),
          withdrawal("c7", "vn-gialai", "2026-03-01T11:00:00.000Z", "q7"),
          answer("v1", "2026-03-02T22:00:00.000Z", "q1", "confirmed"),
          answer("v1b", "2026-03-02T23:00:00.000Z", "q1", "refused"),   // not the first
          answer("v7", "2026-03-02T23:00:00.000Z", "q7", "confirmed"),  // to a withdrawn one
          answer("v3", "2026-03-02T23:59:59.999Z", "q3", "no-record"),  // on the deadline day
          answer("v2", "2026-03-03T00:00:00.000Z", "q2", "partial"),    // the day after: overdue
          row("v8", "kh-ratanakiri", "verification.result", "2026-03-03T00:00:00.000Z", ""),
      },
      first_half, at("2026-07-01T08:00:00Z"));
  EXPECT_EQ(get(doc, "/verifications/requests"), "6") << "q7 is withdrawn";
  EXPECT_EQ(get(doc, "/verifications/byPurpose"), R"({"identity":6})");
  EXPECT_EQ(get(doc, "/verifications/byUrgency"), R"({"high":6})");
  EXPECT_EQ(get(doc, "/verifications/answered"), "3");
  EXPECT_EQ(get(doc, "/verifications/unanswered"), "3") << "q4, q5 and q6 (answered before)";
  EXPECT_EQ(get(doc, "/verifications/byResult"), R"({"confirmed":1,"no-record":1,"partial":1})");
  EXPECT_EQ(get(doc, "/verifications/overdue"), "2")
      << "q2 answered late, q4's deadline day ended; q5 has none, q6's has not ended";
  // 36 h, 48 h, 47.99999 h: nearest rank of three is the 2nd for the median, the 3rd for p90.
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":48.0,"p90":48.0,"max":48.0})");

  // The same requests a day later: q6's deadline day has ended too.
  const auto later = report({request("q6", "2026-03-01T10:00:00.000Z", "2026-07-01")}, first_half,
                            at("2026-07-02T00:00:00Z"));
  EXPECT_EQ(get(later, "/verifications/overdue"), "1");
  const auto same_day = report({request("q6", "2026-03-01T10:00:00.000Z", "2026-07-01")},
                               first_half, at("2026-07-01T23:59:59.999Z"));
  EXPECT_EQ(get(same_day, "/verifications/overdue"), "0");
}

TEST(Statistics, OnlyARecipientsAnswerSettlesARequestThatNamesThem) {
  auto to_ratanakiri = request("q1", "2026-03-01T00:00:00.000Z", "2026-03-05");
  to_ratanakiri.facts.insert(to_ratanakiri.facts.size() - 1, R"(,"to":["kh-ratanakiri"])");
  auto to_stungtreng = request("q2", "2026-03-01T00:00:00.000Z", "2026-03-05");
  to_stungtreng.facts.insert(to_stungtreng.facts.size() - 1, R"(,"to":["kh-stungtreng"])");
  // Kept before facts named recipients: any answer counts, as before.
  const auto unnamed = request("q3", "2026-03-01T00:00:00.000Z", "2026-03-05");
  const auto doc = report({to_ratanakiri, to_stungtreng, unnamed,
                           // answer() comes from kh-ratanakiri
                           answer("v1", "2026-03-02T00:00:00.000Z", "q1", "confirmed"),
                           answer("v2", "2026-03-02T00:00:00.000Z", "q2", "confirmed"),
                           answer("v3", "2026-03-02T00:00:00.000Z", "q3", "partial")});
  EXPECT_EQ(get(doc, "/verifications/answered"), "2") << "q1 and q3";
  EXPECT_EQ(get(doc, "/verifications/unanswered"), "1") << "q2: Ratanakiri was not asked";
  EXPECT_EQ(get(doc, "/verifications/overdue"), "1");
  EXPECT_EQ(get(doc, "/verifications/byResult"), R"({"confirmed":1,"partial":1})");
}

TEST(Statistics, TurnaroundPercentilesAreNearestRank) {
  // Ten requests answered after 1.5, 3.0, ..., 15.0 hours, answers listed out of order.
  std::vector<store::message_facts> rows;
  for (int k = 1; k <= 10; ++k) {
    rows.push_back(request("q" + std::to_string(k), "2026-04-01T00:00:00.000Z", "2026-05-01"));
  }
  for (int k : {7, 3, 10, 1, 5, 9, 2, 8, 4, 6}) {
    const std::string accepted =
        format_rfc3339_ms(at("2026-04-01T00:00:00Z") + std::chrono::minutes(90 * k));
    rows.push_back(answer("v" + std::to_string(k), accepted, "q" + std::to_string(k), "confirmed"));
  }
  const auto doc = report(rows);
  EXPECT_EQ(get(doc, "/verifications/answered"), "10");
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":7.5,"p90":13.5,"max":15.0})");
}

TEST(Statistics, RowsWithoutFactsCountOnlyAsMessages) {
  const auto doc = report({
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z", ""),
      victim("a2", "vn-gialai", "2026-02-01T10:00:01.000Z", R"({"ref":"r1","status":)"),
      victim("a3", "vn-gialai", "2026-02-01T10:00:02.000Z", "[]"),
      victim("a4", "vn-gialai", "2026-02-01T10:00:03.000Z", "null"),
      victim("a5", "vn-gialai", "2026-02-01T10:00:04.000Z", R"({"a":1,"a":2})"),
      victim("a6", "vn-gialai", "2026-02-01T10:00:05.000Z", "{\"sex\":\"\xff\"}"),
      row("c1", "vn-gialai", "case.status", "2026-02-01T10:00:06.000Z", "withdrawn a1"),
      row("r1", "vn-gialai", "receipt", "2026-02-01T10:00:07.000Z", "{}"),
  });
  EXPECT_EQ(get(doc, "/messages/total"), "8");
  EXPECT_EQ(get(doc, "/messages/withoutFacts"), "7") << "the receipt has (empty) facts";
  EXPECT_EQ(get(doc, "/messages/byType"),
            R"({"case.status":1,"receipt":1,"victim.identification":6})");
  EXPECT_EQ(get(doc, "/messages/withdrawn"), "0");
  EXPECT_EQ(get(doc, "/victims/total"), "0");
  EXPECT_EQ(get(doc, "/victims/messages"), "0");
}

TEST(Statistics, OddTimestampsAreOutsideThePeriod) {
  const auto doc = report({
      victim("a1", "vn-gialai", "", R"({"status":"possible"})"),
      victim("a2", "vn-gialai", "2026-02-30T10:00:00.000Z", R"({"status":"possible"})"),
      victim("a3", "vn-gialai", "yesterday", R"({"status":"possible"})"),
      victim("a4", "vn-gialai", "2026-02-28", R"({"status":"possible"})"),
  });
  EXPECT_EQ(get(doc, "/messages/total"), "1") << "only a date is needed";
  EXPECT_EQ(get(doc, "/victims/total"), "1");
}

TEST(Statistics, OutputHoldsNoIdsOrReferences) {
  statistics_builder builder(first_half);
  builder.add(victim("3f2b8c1e-7d4a-4e2b-9c61-0a5d2e8f4b17", "vn-gialai",
                     "2026-02-01T10:00:00.000Z",
                     R"({"ref":"3ec15e3ef1378f35","sex":"F","status":"identified"})"));
  builder.add(
      request("5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085", "2026-02-01T11:00:00.000Z", "2026-02-05"));
  builder.add(answer("e8b3a6f1-0c2d-4e57-9b1a-3d6f8c2e7a49", "2026-02-02T11:00:00.000Z",
                     "5d0e9b27-8c6f-4a13-a2d4-7e3b1f6c9085", "confirmed"));
  for (const std::string& out : {builder.json(report_time), builder.csv(report_time)}) {
    for (const char* secret : {"3f2b8c1e", "5d0e9b27", "e8b3a6f1", "3ec15e3ef1378f35"}) {
      EXPECT_EQ(out.find(secret), std::string::npos) << secret << " in\n" << out;
    }
  }
}

// A victim, a tip, a request and its answer, and a receipt (which has no facts).
void add_one_of_each(statistics_builder& builder) {
  builder.add(victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
                     R"({"ref":"r1","sex":"F","age":"18--20","minor":false,)"
                     R"("nationalities":["KH"],"exploitation":["forced-labour"],)"
                     R"("region":"KH-16","status":"identified"})"));
  builder.add(row("t1", "kh-ratanakiri", "hotline.tip", "2026-02-02T10:00:00.000Z",
                  R"({"channel":"hotline-111","urgency":"high","reporterType":"ngo",)"
                  R"("exploitation":["sexual","forced-labour"],"possibleVictims":2})"));
  builder.add(request("q1", "2026-02-03T00:00:00.000Z", "2026-02-10"));
  builder.add(answer("v1", "2026-02-04T12:00:00.000Z", "q1", "confirmed"));
  builder.add(row("r1", "vn-gialai", "receipt", "2026-02-04T13:00:00.000Z", ""));
}

TEST(StatisticsCsv, EveryFigureInAFixedOrder) {
  statistics_builder builder(first_half);
  add_one_of_each(builder);
  const std::string expected =
      "section,dimension,value,count\r\n"
      "messages,total,,5\r\n"
      "messages,type,hotline.tip,1\r\n"
      "messages,type,receipt,1\r\n"
      "messages,type,verification.request,1\r\n"
      "messages,type,verification.result,1\r\n"
      "messages,type,victim.identification,1\r\n"
      "messages,without_facts,,1\r\n"
      "messages,withdrawn,,0\r\n"
      "victims,total,,1\r\n"
      "victims,messages,,1\r\n"
      "victims,status,identified,1\r\n"
      "victims,sex,F,1\r\n"
      "victims,age_band,18--20,1\r\n"
      "victims,minor,no,1\r\n"
      "victims,nationality,KH,1\r\n"
      "victims,exploitation,forced-labour,1\r\n"
      "victims,region,KH-16,1\r\n"
      "victims,sender,vn-gialai,1\r\n"
      "wanted,total,,0\r\n"
      "wanted,messages,,0\r\n"
      "tips,total,,1\r\n"
      "tips,channel,hotline-111,1\r\n"
      "tips,urgency,high,1\r\n"
      "tips,reporter_type,ngo,1\r\n"
      "tips,exploitation,forced-labour,1\r\n"
      "tips,exploitation,sexual,1\r\n"
      "tips,possible_victims,,2\r\n"
      "verifications,requests,,1\r\n"
      "verifications,purpose,identity,1\r\n"
      "verifications,urgency,high,1\r\n"
      "verifications,answered,,1\r\n"
      "verifications,unanswered,,0\r\n"
      "verifications,result,confirmed,1\r\n"
      "verifications,overdue,,0\r\n"
      "verifications,turnaround_hours,median,36.0\r\n"
      "verifications,turnaround_hours,p90,36.0\r\n"
      "verifications,turnaround_hours,max,36.0\r\n";
  EXPECT_EQ(builder.csv(report_time), expected);
}

TEST(StatisticsCsv, QuotesOnlyValuesThatNeedIt) {
  statistics_builder builder(first_half);
  builder.add(victim("a1", "odd,partner", "2026-02-01T10:00:00.000Z",
                     R"({"sex":"say \"F\"","region":"line\nbreak","status":"a\rb",)"
                     R"("nationalities":["KH"]})"));
  const std::string csv = builder.csv(report_time);
  EXPECT_NE(csv.find("\r\nvictims,sender,\"odd,partner\",1\r\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\r\nvictims,sex,\"say \"\"F\"\"\",1\r\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\r\nvictims,region,\"line\nbreak\",1\r\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\r\nvictims,status,\"a\rb\",1\r\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\r\nvictims,nationality,KH,1\r\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\r\nverifications,turnaround_hours,median,\r\n"), std::string::npos)
      << "no value: an empty count";
}

TEST(StatisticsCsv, BreakdownValuesAreSorted) {
  statistics_builder builder(first_half);
  for (const char* sender : {"vn-gialai", "kh-ratanakiri", "la-houaphanh", "kh-stungtreng"}) {
    builder.add(row(std::string("t-") + sender, sender, "hotline.tip", "2026-02-01T10:00:00.000Z",
                    R"({"possibleVictims":0})"));
    builder.add(victim(std::string("a-") + sender, sender, "2026-02-01T10:00:00.000Z", "{}"));
  }
  const std::string csv = builder.csv(report_time);
  const auto kh_r = csv.find("victims,sender,kh-ratanakiri,1");
  const auto kh_s = csv.find("victims,sender,kh-stungtreng,1");
  const auto la = csv.find("victims,sender,la-houaphanh,1");
  const auto vn = csv.find("victims,sender,vn-gialai,1");
  ASSERT_NE(vn, std::string::npos) << csv;
  EXPECT_LT(kh_r, kh_s);
  EXPECT_LT(kh_s, la);
  EXPECT_LT(la, vn);
}

// Without a threshold the report is printed exactly as before suppression existed.
TEST(Statistics, JsonWithoutSuppressionIsPrintedByteForByte) {
  statistics_builder builder(first_half);
  builder.add(victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
                     R"({"ref":"r1","sex":"F","status":"identified"})"));
  builder.add(request("q1", "2026-02-03T00:00:00.000Z", "2026-02-10"));
  builder.add(answer("v1", "2026-02-04T12:00:00.000Z", "q1", "confirmed"));
  const std::string expected =
      "{\n"
      "  \"report\": \"mxgw-statistics\",\n"
      "  \"version\": 1,\n"
      "  \"period\": {\n"
      "    \"from\": \"2026-01-01\",\n"
      "    \"to\": \"2026-06-30\"\n"
      "  },\n"
      "  \"generatedAt\": \"2026-07-01T08:00:00.000Z\",\n"
      "  \"messages\": {\n"
      "    \"total\": 3,\n"
      "    \"byType\": {\n"
      "      \"verification.request\": 1,\n"
      "      \"verification.result\": 1,\n"
      "      \"victim.identification\": 1\n"
      "    },\n"
      "    \"withoutFacts\": 0,\n"
      "    \"withdrawn\": 0\n"
      "  },\n"
      "  \"victims\": {\n"
      "    \"total\": 1,\n"
      "    \"messages\": 1,\n"
      "    \"byStatus\": {\n"
      "      \"identified\": 1\n"
      "    },\n"
      "    \"bySex\": {\n"
      "      \"F\": 1\n"
      "    },\n"
      "    \"byAgeBand\": {\n"
      "      \"unknown\": 1\n"
      "    },\n"
      "    \"byMinor\": {\n"
      "      \"unknown\": 1\n"
      "    },\n"
      "    \"byNationality\": {\n"
      "      \"unknown\": 1\n"
      "    },\n"
      "    \"byExploitation\": {\n"
      "      \"unknown\": 1\n"
      "    },\n"
      "    \"byRegion\": {\n"
      "      \"unknown\": 1\n"
      "    },\n"
      "    \"bySender\": {\n"
      "      \"vn-gialai\": 1\n"
      "    }\n"
      "  },\n"
      "  \"wanted\": {\n"
      "    \"total\": 0,\n"
      "    \"messages\": 0,\n"
      "    \"bySex\": {},\n"
      "    \"byNationality\": {},\n"
      "    \"byRequestedAction\": {},\n"
      "    \"bySender\": {}\n"
      "  },\n"
      "  \"tips\": {\n"
      "    \"total\": 0,\n"
      "    \"byChannel\": {},\n"
      "    \"byUrgency\": {},\n"
      "    \"byReporterType\": {},\n"
      "    \"byExploitation\": {},\n"
      "    \"possibleVictims\": 0\n"
      "  },\n"
      "  \"verifications\": {\n"
      "    \"requests\": 1,\n"
      "    \"byPurpose\": {\n"
      "      \"identity\": 1\n"
      "    },\n"
      "    \"byUrgency\": {\n"
      "      \"high\": 1\n"
      "    },\n"
      "    \"answered\": 1,\n"
      "    \"unanswered\": 0,\n"
      "    \"byResult\": {\n"
      "      \"confirmed\": 1\n"
      "    },\n"
      "    \"overdue\": 0,\n"
      "    \"turnaroundHours\": {\n"
      "      \"median\": 36.0,\n"
      "      \"p90\": 36.0,\n"
      "      \"max\": 36.0\n"
      "    }\n"
      "  }\n"
      "}";
  EXPECT_EQ(builder.json(report_time), expected);
  EXPECT_EQ(builder.json(report_time, {}), expected);
}

TEST(StatisticsSuppression, ThresholdIsAWholeNumberFromTwoToAThousand) {
  EXPECT_EQ(parse_suppress_below("2"), 2U);
  EXPECT_EQ(parse_suppress_below("5"), 5U);
  EXPECT_EQ(parse_suppress_below("1000"), 1000U);
  for (const char* bad :
       {"0", "1", "1001", "-3", "abc", "5x", "", " 5", "5 ", "+5", "5.0", "0x10", "4294967301"}) {
    EXPECT_EQ(parse_suppress_below(bad), std::nullopt) << bad;
  }
}

TEST(StatisticsSuppression, CountsBelowTheThresholdAreWithheldAndZerosShown) {
  const auto doc = suppressed(
      {
          tip("t1", R"({"channel":"hotline-111","urgency":"high","possibleVictims":2})"),
          tip("t2", R"({"channel":"hotline-111","urgency":"high"})"),
          tip("t3", R"({"channel":"hotline-111","urgency":"high"})"),
          tip("t4", R"({"channel":"zalo","urgency":"high"})"),
          tip("t5", R"({"channel":"web","urgency":"high"})"),
          tip("t6", R"({"channel":"web","urgency":"high"})"),
          withdrawal("c1", "vn-gialai", "2026-02-02T10:00:00.000Z", "t6"),
          victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z",
                 R"({"ref":"r1","sex":"F","status":"identified"})"),
          row("w1", "kh-ratanakiri", "person.wanted", "2026-02-01T10:00:00.000Z",
              R"({"ref":"r9","sex":"M"})"),
          request("q1", "2026-02-01T10:00:00.000Z", "2026-02-05"),  // unanswered, overdue
      },
      3);
  std::vector<std::string> members;
  for (const auto& m : doc.GetObject()) {
    members.emplace_back(m.name.GetString());
  }
  EXPECT_EQ(members,
            (std::vector<std::string>{"report", "version", "period", "generatedAt", "suppression",
                                      "messages", "victims", "wanted", "tips", "verifications"}));
  EXPECT_EQ(get(doc, "/version"), "1");
  // 3 (hotline-111, hotline.tip) is not below 3; 6 types of which 4 are withheld.
  EXPECT_EQ(get(doc, "/messages"),
            R"({"total":9,"byType":{"case.status":null,"hotline.tip":5,"person.wanted":null,)"
            R"("verification.request":null,"victim.identification":null},"withoutFacts":0,)"
            R"("withdrawn":null})");
  EXPECT_EQ(get(doc, "/victims"),
            R"({"total":null,"messages":null,"byStatus":{"identified":null},"bySex":{"F":null},)"
            R"("byAgeBand":{"unknown":null},"byMinor":{"unknown":null},)"
            R"("byNationality":{"unknown":null},"byExploitation":{"unknown":null},)"
            R"("byRegion":{"unknown":null},"bySender":{"vn-gialai":null}})");
  EXPECT_EQ(get(doc, "/wanted"),
            R"({"total":null,"messages":null,"bySex":{"M":null},)"
            R"("byNationality":{"unknown":null},"byRequestedAction":{"unknown":null},)"
            R"("bySender":{"kh-ratanakiri":null}})");
  EXPECT_EQ(get(doc, "/tips"), R"({"total":5,"byChannel":{"hotline-111":3,"web":null,"zalo":null},)"
                               R"("byUrgency":{"high":5},"byReporterType":{"unknown":5},)"
                               R"("byExploitation":{"unknown":5},"possibleVictims":null})");
  EXPECT_EQ(
      get(doc, "/verifications"),
      R"({"requests":null,"byPurpose":{"identity":null},"byUrgency":{"high":null},"answered":0,)"
      R"("unanswered":null,"byResult":{},"overdue":null,)"
      R"("turnaroundHours":{"median":null,"p90":null,"max":null}})")
      << "nothing answered: no turnaround to withhold";
  // messages 5, victims 10, wanted 6, tips 3, verifications 5.
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":3,"cells":29})");
}

TEST(StatisticsSuppression, ALoneWithheldCellTakesTheSmallestOtherWithIt) {
  std::vector<store::message_facts> rows;
  // Channels a 7, b 2, c 6, d 6, e 9; urgencies high 2, low 3, normal 25; reporters family 1,
  // unknown 29.
  const std::vector<std::pair<std::string, int>> channels = {
      {"a", 7}, {"b", 2}, {"c", 6}, {"d", 6}, {"e", 9}};
  int n = 0;
  for (const auto& [channel, times] : channels) {
    for (int i = 0; i < times; ++i, ++n) {
      const std::string urgency = n < 2 ? "high" : n < 5 ? "low" : "normal";
      const std::string reporter = n == 0 ? R"(,"reporterType":"family")" : "";
      rows.push_back(tip("t" + std::to_string(n), R"({"channel":")" + channel + R"(","urgency":")" +
                                                      urgency + R"(")" + reporter + "}"));
    }
  }
  const auto doc = suppressed(rows, 5);
  EXPECT_EQ(get(doc, "/tips/total"), "30");
  EXPECT_EQ(get(doc, "/tips/byChannel"), R"({"a":7,"b":null,"c":null,"d":6,"e":9})")
      << "b withheld, then c: the smallest other, the first of two equal ones";
  EXPECT_EQ(get(doc, "/tips/byUrgency"), R"({"high":null,"low":null,"normal":25})")
      << "two withheld already: neither can be recomputed";
  EXPECT_EQ(get(doc, "/tips/byReporterType"), R"({"family":null,"unknown":null})")
      << "the only other cell goes too, however large";
  EXPECT_EQ(get(doc, "/tips/byExploitation"), R"({"unknown":30})");
  EXPECT_EQ(get(doc, "/messages/byType"), R"({"hotline.tip":30})");
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":5,"cells":6})");

  // A breakdown whose only cell is withheld has no other to take.
  const auto alone = suppressed({tip("t1", R"({"channel":"a"})")}, 2);
  EXPECT_EQ(get(alone, "/tips/byChannel"), R"({"a":null})");
  EXPECT_EQ(get(alone, "/tips/total"), "null");
}

TEST(StatisticsSuppression, TurnaroundIsWithheldUnlessKRequestsWereAnswered) {
  std::vector<store::message_facts> rows;
  for (int k = 1; k <= 3; ++k) {
    rows.push_back(request("q" + std::to_string(k), "2026-04-01T00:00:00.000Z", "2026-05-01"));
    rows.push_back(answer("v" + std::to_string(k), "2026-04-01T0" + std::to_string(k) + ":00:00Z",
                          "q" + std::to_string(k), "confirmed"));
  }
  // answered == k - 1: withheld.
  auto doc = suppressed(rows, 4);
  EXPECT_EQ(get(doc, "/verifications/answered"), "null");
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":null,"p90":null,"max":null})");
  // requests, byPurpose, byUrgency, answered, byResult, 3 turnaround, 2 byType
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":4,"cells":10})");
  // answered == k: shown, like every other figure.
  doc = suppressed(rows, 3);
  EXPECT_EQ(get(doc, "/verifications/answered"), "3");
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":2.0,"p90":3.0,"max":3.0})");
  EXPECT_EQ(get(doc, "/verifications/byResult"), R"({"confirmed":3})");
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":3,"cells":0})");
}

TEST(StatisticsSuppression, EmptyReportWithholdsNothingButSaysSo) {
  const auto doc = suppressed({}, 1000);
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":1000,"cells":0})");
  EXPECT_EQ(get(doc, "/messages"), R"({"total":0,"byType":{},"withoutFacts":0,"withdrawn":0})");
  EXPECT_EQ(get(doc, "/verifications/turnaroundHours"), R"({"median":null,"p90":null,"max":null})");
}

TEST(StatisticsSuppression, JsonSaysHowManyRightAfterGeneratedAt) {
  statistics_builder builder(first_half);
  builder.add(tip("t1", R"({"channel":"web"})"));
  const std::string json = builder.json(report_time, {.suppress_below = 2});
  EXPECT_NE(json.find("  \"generatedAt\": \"2026-07-01T08:00:00.000Z\",\n"
                      "  \"suppression\": {\n"
                      "    \"below\": 2,\n"
                      "    \"cells\": 7\n"
                      "  },\n"
                      "  \"messages\": {\n"
                      "    \"total\": null,\n"),
            std::string::npos)
      << json;
}

TEST(StatisticsSuppression, CsvWritesLessThanKAndTwoLastLines) {
  statistics_builder builder(first_half);
  add_one_of_each(builder);
  const std::string expected =
      "section,dimension,value,count\r\n"
      "messages,total,,5\r\n"
      "messages,type,hotline.tip,<2\r\n"
      "messages,type,receipt,<2\r\n"
      "messages,type,verification.request,<2\r\n"
      "messages,type,verification.result,<2\r\n"
      "messages,type,victim.identification,<2\r\n"
      "messages,without_facts,,<2\r\n"
      "messages,withdrawn,,0\r\n"
      "victims,total,,<2\r\n"
      "victims,messages,,<2\r\n"
      "victims,status,identified,<2\r\n"
      "victims,sex,F,<2\r\n"
      "victims,age_band,18--20,<2\r\n"
      "victims,minor,no,<2\r\n"
      "victims,nationality,KH,<2\r\n"
      "victims,exploitation,forced-labour,<2\r\n"
      "victims,region,KH-16,<2\r\n"
      "victims,sender,vn-gialai,<2\r\n"
      "wanted,total,,0\r\n"
      "wanted,messages,,0\r\n"
      "tips,total,,<2\r\n"
      "tips,channel,hotline-111,<2\r\n"
      "tips,urgency,high,<2\r\n"
      "tips,reporter_type,ngo,<2\r\n"
      "tips,exploitation,forced-labour,<2\r\n"
      "tips,exploitation,sexual,<2\r\n"
      "tips,possible_victims,,2\r\n"
      "verifications,requests,,<2\r\n"
      "verifications,purpose,identity,<2\r\n"
      "verifications,urgency,high,<2\r\n"
      "verifications,answered,,<2\r\n"
      "verifications,unanswered,,0\r\n"
      "verifications,result,confirmed,<2\r\n"
      "verifications,overdue,,0\r\n"
      "verifications,turnaround_hours,median,<2\r\n"
      "verifications,turnaround_hours,p90,<2\r\n"
      "verifications,turnaround_hours,max,<2\r\n"
      "suppression,below,,2\r\n"
      "suppression,cells,,30\r\n";
  EXPECT_EQ(builder.csv(report_time, {.suppress_below = 2}), expected);
  // JSON and CSV withhold the same figures.
  rapidjson::Document doc;
  doc.Parse(builder.json(report_time, {.suppress_below = 2}).c_str());
  EXPECT_EQ(get(doc, "/suppression"), R"({"below":2,"cells":30})");
  EXPECT_EQ(get(doc, "/tips/possibleVictims"), "2");
  EXPECT_EQ(get(doc, "/messages/withoutFacts"), "null");
}

// --- small cells across figures: nothing withheld can be worked out from what is shown ---------

// A JSON Pointer token for a breakdown's key.
std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    out += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
  }
  return out;
}

// The keys of the breakdown at `pointer` in `doc`.
std::vector<std::string> keys_of(const rapidjson::Document& doc, const std::string& pointer) {
  std::vector<std::string> keys;
  const rapidjson::Value* v = rapidjson::Pointer(pointer.c_str()).Get(doc);
  if (v != nullptr && v->IsObject()) {
    for (const auto& m : v->GetObject()) {
      keys.emplace_back(m.name.GetString(), m.name.GetStringLength());
    }
  }
  return keys;
}

std::uint64_t count_at(const rapidjson::Document& doc, const std::string& pointer) {
  const rapidjson::Value* v = rapidjson::Pointer(pointer.c_str()).Get(doc);
  return v != nullptr && v->IsUint64() ? v->GetUint64() : 0;
}

// The additive relations docs/report.md "Small cells" lists, as JSON Pointers whose figures add
// up (signs aside), read off the report `plain` printed without suppression: it says which keys
// there are and which relations that hold only for some data hold for this one.
std::vector<std::vector<std::string>> documented_relations(const rapidjson::Document& plain) {
  std::vector<std::vector<std::string>> out;
  const auto sum = [&](const std::string& breakdown) {
    std::uint64_t n = 0;
    for (const auto& key : keys_of(plain, breakdown)) {
      n += count_at(plain, breakdown + "/" + pointer_token(key));
    }
    return n;
  };
  const auto add = [&](const std::string& whole, const std::string& breakdown,
                       bool when_equal = false, const std::string& except = "") {
    std::vector<std::string> members{whole};
    for (const auto& key : keys_of(plain, breakdown)) {
      if (key != except) {
        members.push_back(breakdown + "/" + pointer_token(key));
      }
    }
    if (members.size() > 1 && (!when_equal || sum(breakdown) == count_at(plain, whole))) {
      out.push_back(members);
    }
  };
  add("/messages/total", "/messages/byType");
  const std::vector<std::pair<std::string, std::string>> sections = {
      {"victim.identification", "/victims/messages"},
      {"person.wanted", "/wanted/messages"},
      {"hotline.tip", "/tips/total"},
      {"verification.request", "/verifications/requests"}};
  bool only_counted = true;
  for (const auto& key : keys_of(plain, "/messages/byType")) {
    const auto it = std::find_if(sections.begin(), sections.end(),
                                 [&key](const auto& s) { return s.first == key; });
    only_counted = only_counted && it != sections.end();
    if (it != sections.end() && count_at(plain, "/messages/withoutFacts") == 0) {
      out.push_back({"/messages/byType/" + key, it->second});
    }
  }
  if (only_counted) {
    std::vector<std::string> members{"/messages/total", "/messages/withoutFacts"};
    for (const auto& s : sections) {
      members.push_back(s.second);
    }
    out.push_back(members);
  }
  add("/victims/total", "/victims/byStatus", false, "not-a-victim");
  add("/victims/messages", "/victims/byStatus", true);
  for (const char* name : {"bySex", "byAgeBand", "byMinor", "byRegion", "bySender"}) {
    add("/victims/total", std::string("/victims/") + name);
  }
  add("/victims/total", "/victims/byNationality", true);
  add("/victims/total", "/victims/byExploitation", true);
  for (const char* name : {"bySex", "byRequestedAction", "bySender"}) {
    add("/wanted/total", std::string("/wanted/") + name);
  }
  add("/wanted/total", "/wanted/byNationality", true);
  if (count_at(plain, "/wanted/total") == count_at(plain, "/wanted/messages")) {
    out.push_back({"/wanted/total", "/wanted/messages"});
  }
  for (const char* name : {"byChannel", "byUrgency", "byReporterType"}) {
    add("/tips/total", std::string("/tips/") + name);
  }
  add("/tips/total", "/tips/byExploitation", true);
  add("/verifications/requests", "/verifications/byPurpose");
  add("/verifications/requests", "/verifications/byUrgency");
  out.push_back(
      {"/verifications/requests", "/verifications/answered", "/verifications/unanswered"});
  add("/verifications/answered", "/verifications/byResult");
  return out;
}

// The withheld figures of `shown` that the shown ones give away through the relations of `plain`,
// one relation at a time and again with what that gave.
std::set<std::string> recomputable(const rapidjson::Document& plain,
                                   const rapidjson::Document& shown) {
  std::set<std::string> worked_out;
  const auto known = [&](const std::string& pointer) {
    const rapidjson::Value* v = rapidjson::Pointer(pointer.c_str()).Get(shown);
    return (v != nullptr && !v->IsNull()) || worked_out.count(pointer) != 0;
  };
  const auto relations = documented_relations(plain);
  for (bool again = true; again;) {
    again = false;
    for (const auto& members : relations) {
      const auto unknown = std::count_if(members.begin(), members.end(),
                                         [&](const std::string& m) { return !known(m); });
      if (unknown == 1) {
        worked_out.insert(*std::find_if(members.begin(), members.end(),
                                        [&](const std::string& m) { return !known(m); }));
        again = true;
      }
    }
  }
  return worked_out;
}

// The report of `rows` without and with suppression below `k`, parsed.
std::pair<rapidjson::Document, rapidjson::Document> both(
    const std::vector<store::message_facts>& rows, std::uint32_t k) {
  return {report(rows), suppressed(rows, k)};
}

store::message_facts status(const std::string& id, const std::string& about,
                            const std::string& value = "open") {
  return row(id, "vn-gialai", "case.status", "2026-02-03T10:00:00.000Z",
             R"({"status":")" + value + R"(","about":")" + about + R"("})");
}

TEST(StatisticsSuppression, AWithheldTypeIsNotGivenAwayByTheSectionsAndTheTotal) {
  // 1 case.status, 2 requests, 2 results, 2 victims; k=2: case.status withheld with
  // verification.request; requests (2) = byType's verification.request, so both must go.
  const std::vector<store::message_facts> rows = {
      status("c1", "a1"),
      request("q1", "2026-02-01T10:00:00.000Z", "2026-05-01"),
      request("q2", "2026-02-01T10:00:00.000Z", "2026-05-01"),
      answer("v1", "2026-02-02T10:00:00.000Z", "q1", "confirmed"),
      answer("v2", "2026-02-02T10:00:00.000Z", "q2", "confirmed"),
      victim("a1", "vn-gialai", "2026-02-01T10:00:00.000Z", R"({"ref":"r1"})"),
      victim("a2", "vn-gialai", "2026-02-01T10:00:00.000Z", R"({"ref":"r2"})"),
  };
  const auto [plain, shown] = both(rows, 2);
  EXPECT_EQ(get(shown, "/messages/byType/case.status"), "null");
  EXPECT_EQ(get(shown, "/verifications/requests"), "null")
      << "7 - 2 - 2 - 2 would give the case.status away";
  EXPECT_EQ(recomputable(plain, shown), std::set<std::string>{});

  statistics_builder builder(first_half);
  for (const auto& r : rows) {
    builder.add(r);
  }
  const std::string csv = builder.csv(report_time, {.suppress_below = 2});
  EXPECT_EQ(csv.find("verifications,requests,,2\r\n"), std::string::npos) << csv;
}

TEST(StatisticsSuppression, WithheldAnswersAreNotGivenAwayByUnansweredAndRequests) {
  // 13 requests, 3 answered; k=5: answered = 13 - 10 unless one of them goes too.
  std::vector<store::message_facts> rows;
  for (int i = 0; i < 13; ++i) {
    rows.push_back(request("q" + std::to_string(i), "2026-03-01T10:00:00.000Z", "2026-05-01"));
  }
  for (int i = 0; i < 3; ++i) {
    rows.push_back(answer("v" + std::to_string(i), "2026-03-02T10:00:00.000Z",
                          "q" + std::to_string(i), i == 0 ? "refuted" : "confirmed"));
  }
  const auto [plain, shown] = both(rows, 5);
  EXPECT_EQ(get(plain, "/verifications/answered"), "3");
  EXPECT_EQ(get(shown, "/verifications/answered"), "null");
  EXPECT_EQ(get(shown, "/verifications/unanswered"), "10");
  EXPECT_EQ(get(shown, "/verifications/requests"), "null")
      << "withheld with byType's verification.request, itself withheld with verification.result";
  EXPECT_EQ(recomputable(plain, shown), std::set<std::string>{});

  // The answers after the period: byType holds the requests only, and the relation
  // answered + unanswered = requests alone takes the smaller of the two shown.
  for (int i = 13; i < 16; ++i) {
    rows[i].accepted_at = "2026-07-01T01:00:00.000Z";
  }
  const auto [later_plain, later_shown] = both(rows, 5);
  EXPECT_EQ(get(later_shown, "/messages/byType"), R"({"verification.request":13})");
  EXPECT_EQ(get(later_shown, "/verifications/answered"), "null");
  EXPECT_EQ(get(later_shown, "/verifications/unanswered"), "null") << "10, smaller than 13";
  EXPECT_EQ(get(later_shown, "/verifications/requests"), "13");
  EXPECT_EQ(recomputable(later_plain, later_shown), std::set<std::string>{});
}

TEST(StatisticsSuppression, WithheldStatusesAreNotGivenAwayByTheTotalAndTheMessages) {
  // 10 identified and 2 not-a-victim, each reported once; k=5: both statuses withheld, but
  // identified = victims.total, and not-a-victim = messages - identified.
  std::vector<store::message_facts> rows;
  for (int i = 0; i < 12; ++i) {
    rows.push_back(victim("a" + std::to_string(i), "vn-gialai", "2026-02-01T10:00:00.000Z",
                          R"({"ref":"r)" + std::to_string(i) + R"(","sex":"F","status":")" +
                              (i < 10 ? "identified" : "not-a-victim") + R"("})"));
  }
  const auto [plain, shown] = both(rows, 5);
  EXPECT_EQ(get(shown, "/victims/byStatus"), R"({"identified":null,"not-a-victim":null})");
  EXPECT_EQ(get(shown, "/victims/total"), "null");
  EXPECT_EQ(get(shown, "/victims/bySex/F"), "null") << "F alone would give the total";
  EXPECT_EQ(recomputable(plain, shown), std::set<std::string>{});
}

// The figures the rule before relations withheld: the small counts, and in each breakdown with
// one of them the smallest other cell.
std::set<std::string> withheld_per_breakdown(const rapidjson::Document& plain, std::uint64_t k) {
  std::set<std::string> out;
  const auto small = [k](std::uint64_t n) { return n > 0 && n < k; };
  for (const auto& s : plain.GetObject()) {
    const std::string section = s.name.GetString();
    if (!s.value.IsObject() || section == "period" || section == "suppression") {
      continue;
    }
    for (const auto& f : s.value.GetObject()) {
      const std::string figure = "/" + section + "/" + f.name.GetString();
      if (f.value.IsUint64() && small(f.value.GetUint64())) {
        out.insert(figure);
      }
      if (!f.value.IsObject() || figure == "/verifications/turnaroundHours") {
        continue;
      }
      std::vector<std::string> primary;
      std::string smallest;
      std::uint64_t least = 0;
      for (const auto& c : f.value.GetObject()) {
        const std::string cell = figure + "/" + pointer_token(c.name.GetString());
        const std::uint64_t n = c.value.GetUint64();
        if (small(n)) {
          primary.push_back(cell);
        } else if (n > 0 && (smallest.empty() || n < least)) {
          smallest = cell;
          least = n;
        }
      }
      out.insert(primary.begin(), primary.end());
      if (primary.size() == 1 && !smallest.empty()) {
        out.insert(smallest);
      }
    }
  }
  return out;
}

// Every count figure of `doc` as a JSON Pointer.
std::vector<std::string> count_figures(const rapidjson::Document& doc) {
  std::vector<std::string> out;
  for (const auto& s : doc.GetObject()) {
    const std::string section = s.name.GetString();
    if (!s.value.IsObject() || section == "period" || section == "suppression") {
      continue;
    }
    for (const auto& f : s.value.GetObject()) {
      const std::string figure = "/" + section + "/" + f.name.GetString();
      if (figure == "/verifications/turnaroundHours") {
        continue;
      }
      if (!f.value.IsObject()) {
        out.push_back(figure);
        continue;
      }
      for (const auto& c : f.value.GetObject()) {
        out.push_back(figure + "/" + pointer_token(c.name.GetString()));
      }
    }
  }
  return out;
}

TEST(StatisticsSuppression, NothingWithheldCanBeWorkedOutFromWhatIsShown) {
  std::mt19937 random(20260701);  // fixed: the same reports every run
  const auto pick = [&random](const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(random)];
  };
  const auto one_in = [&random](int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(random) == 0;
  };
  const std::vector<std::string> senders = {"vn-gialai", "kh-ratanakiri", "la-attapeu"};
  const std::vector<std::string> statuses = {"possible", "identified", "returned", "not-a-victim"};
  const std::vector<std::string> sexes = {"F", "M", "X"};
  const std::vector<std::string> nations = {"VN", "KH", "LA", "CN"};
  const std::vector<std::string> channels = {"hotline-111", "zalo", "web"};
  const std::vector<std::string> results = {"confirmed", "refuted", "partial"};
  for (int round = 0; round < 40; ++round) {
    std::vector<store::message_facts> rows;
    const int messages = std::uniform_int_distribution<int>(1, 120)(random);
    for (int i = 0; i < messages; ++i) {
      const std::string id = "m" + std::to_string(i);
      const std::string at = "2026-03-01T10:00:00.000Z";
      const int kind = std::uniform_int_distribution<int>(0, 9)(random);
      if (one_in(25)) {
        rows.push_back(row(id, pick(senders), "victim.identification", at, ""));
      } else if (kind < 4) {
        std::string nationalities = "\"" + pick(nations) + "\"";
        if (one_in(4)) {
          nationalities += ",\"" + pick(nations) + "\"";
        }
        rows.push_back(victim(id, pick(senders), at,
                              R"({"ref":"r)" + std::to_string(i % 17) + R"(","sex":")" +
                                  pick(sexes) + R"(","status":")" + pick(statuses) +
                                  R"(","nationalities":[)" + nationalities + "]}"));
      } else if (kind < 5) {
        rows.push_back(
            row(id, pick(senders), "person.wanted", at,
                R"({"ref":"w)" + std::to_string(i % 5) + R"(","sex":")" + pick(sexes) + R"("})"));
      } else if (kind < 7) {
        rows.push_back(tip(id, R"({"channel":")" + pick(channels) + R"(","urgency":")" +
                                   (one_in(3) ? "high" : "normal") + R"("})"));
      } else if (kind < 9) {
        rows.push_back(request(id, at, one_in(2) ? "2026-03-05" : "2026-08-01"));
        if (!one_in(3)) {
          rows.push_back(answer(id + "a", "2026-03-03T10:00:00.000Z", id, pick(results)));
        }
      } else {
        rows.push_back(status(id, "m" + std::to_string(i / 2), one_in(3) ? "withdrawn" : "open"));
      }
    }
    for (const std::uint32_t k : {2U, 3U, 5U, 10U}) {
      const auto [plain, shown] = both(rows, k);
      SCOPED_TRACE("round " + std::to_string(round) + ", k " + std::to_string(k) + "\n" +
                   json::to_string(shown));
      EXPECT_EQ(recomputable(plain, shown), std::set<std::string>{});
      for (const auto& figure : withheld_per_breakdown(plain, k)) {
        EXPECT_EQ(get(shown, figure), "null") << figure << ": withheld before relations";
      }
      std::size_t withheld = 0;
      for (const auto& figure : count_figures(plain)) {
        if (get(shown, figure) == "null") {
          ++withheld;
        } else {
          EXPECT_EQ(get(shown, figure), get(plain, figure)) << figure;
        }
      }
      if (count_at(plain, "/verifications/answered") > 0 &&
          count_at(plain, "/verifications/answered") < k) {
        withheld += 3;
      }
      EXPECT_EQ(get(shown, "/suppression/cells"), std::to_string(withheld));
    }
  }
}

}  // namespace
}  // namespace mxgw::report
