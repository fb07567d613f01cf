// Counters and latency histograms in the Prometheus text exposition format.
#include "gateway/common/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mxgw {
namespace {

TEST(Metrics, CountersAddUpPerLabelSet) {
  metrics m;
  m.add("mxgw_messages_refused_total", "reason=\"malformed-json\"");
  m.add("mxgw_messages_refused_total", "reason=\"malformed-json\"", 2);
  m.add("mxgw_messages_refused_total", "reason=\"sender-mismatch\"");
  EXPECT_EQ(m.value("mxgw_messages_refused_total", "reason=\"malformed-json\""), 3u);
  EXPECT_EQ(m.value("mxgw_messages_refused_total", "reason=\"sender-mismatch\""), 1u);
  EXPECT_EQ(m.value("mxgw_messages_refused_total", "reason=\"other\""), 0u);
  const auto text = m.render();
  EXPECT_NE(text.find("# TYPE mxgw_messages_refused_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("mxgw_messages_refused_total{reason=\"malformed-json\"} 3\n"),
            std::string::npos);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithUpperBoundsInclusive) {
  metrics m;
  const std::string labels = "outcome=\"accepted\"";
  m.observe("mxgw_submit_duration_seconds", labels, 0.0004);  // <= 1 ms
  m.observe("mxgw_submit_duration_seconds", labels, 0.001);   // exactly on the bound: <= 1 ms
  m.observe("mxgw_submit_duration_seconds", labels, 0.003);   // <= 5 ms
  m.observe("mxgw_submit_duration_seconds", labels, 42.0);    // beyond 10 s: only +Inf
  m.observe("mxgw_submit_duration_seconds", labels, -1.0);    // a clock step back counts as 0
  EXPECT_EQ(m.observations("mxgw_submit_duration_seconds", labels), 5u);

  const auto text = m.render();
  EXPECT_NE(text.find("# TYPE mxgw_submit_duration_seconds histogram\n"), std::string::npos);
  const std::string p = "mxgw_submit_duration_seconds_bucket{outcome=\"accepted\",le=";
  EXPECT_NE(text.find(p + "\"0.001\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find(p + "\"0.0025\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find(p + "\"0.005\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find(p + "\"10\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find(p + "\"+Inf\"} 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxgw_submit_duration_seconds_count{outcome=\"accepted\"} 5\n"),
            std::string::npos);
  EXPECT_NE(text.find("mxgw_submit_duration_seconds_sum{outcome=\"accepted\"} 42.0044\n"),
            std::string::npos)
      << text;
}

TEST(Metrics, HistogramWithoutLabelsAndSeparateSeries) {
  metrics m;
  m.observe("mxgw_x_seconds", "", 0.2);
  m.observe("mxgw_delivery_duration_seconds", "partner=\"kh-ratanakiri\",outcome=\"dead\"", 0.02);
  m.observe("mxgw_delivery_duration_seconds", "partner=\"kh-ratanakiri\",outcome=\"delivered\"",
            0.02);
  EXPECT_EQ(m.observations("mxgw_delivery_duration_seconds",
                           "partner=\"kh-ratanakiri\",outcome=\"dead\""),
            1u);
  const auto text = m.render();
  EXPECT_NE(text.find("mxgw_x_seconds_bucket{le=\"0.25\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxgw_x_seconds_bucket{le=\"0.1\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxgw_x_seconds_count 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxgw_x_seconds_sum 0.2\n"), std::string::npos) << text;
  // One # TYPE line per family, however many series.
  const std::string type = "# TYPE mxgw_delivery_duration_seconds histogram\n";
  const auto first = text.find(type);
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(text.find(type, first + 1), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
  EXPECT_EQ(prometheus_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace mxgw
