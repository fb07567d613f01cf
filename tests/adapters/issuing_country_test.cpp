// The warrant's issuing-country mark shared by the partner adapters (adapters/common/
// issuing_country.*): reading it, refusing what cannot be told, and writing it within a bound.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "adapters/common/issuing_country.hpp"

namespace mxgw::adapters {
namespace {

std::string quoted(std::string_view code) {
  return "'" + std::string(code) + "'";
}
std::string not_known(const std::string& shown) {
  return "unknown code " + shown + " (table country)";
}
std::string described(std::string_view code) {
  return code.size() <= 3 ? "'" + std::string(code) + "'" : std::string("a long code");
}
std::string not_in_table(const std::string& shown) {
  return shown + " is not in table 'country'";
}

/// A field as KH-CNP's court is (spaces and tabs trimmed, codes quoted whole) ...
constexpr issuer_field court{.format = "KH-CNP",
                             .name = "court",
                             .reads_as = "Cambodian",
                             .max_chars = 40,
                             .blanks = " \t",
                             .show_code = quoted,
                             .unknown_code = not_known};
/// ... and one as LA-MPS's authority is (line breaks trimmed too, long codes not quoted).
constexpr issuer_field authority{.format = "LA-MPS",
                                 .name = "authority",
                                 .reads_as = "Lao",
                                 .max_chars = 40,
                                 .blanks = " \t\n\r",
                                 .show_code = described,
                                 .unknown_code = not_in_table};

/// The country table's alpha-3 column, as the adapters look it up: any case.
std::optional<std::string> country_of(std::string_view alpha3) {
  std::string upper(alpha3);
  for (char& c : upper) {
    c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  if (upper == "VNM") {
    return "VN";
  }
  if (upper == "LAO") {
    return "LA";
  }
  if (upper == "THA") {
    return "TH";
  }
  return std::nullopt;
}

marked_country decide(std::string_view text, const issuer_field& field) {
  return country_of_marks(read_issuing_country_marks(text, field), field, country_of);
}

TEST(IssuingCountryMark, ReadsTheCountryAtTheEndAndStripsItFromTheAuthority) {
  const auto marks = read_issuing_country_marks("Gia Lai Court (issuing country: VNM)", court);
  EXPECT_EQ(marks.authority, "Gia Lai Court");
  ASSERT_EQ(marks.countries.size(), 1u);
  EXPECT_EQ(marks.countries[0], "VNM");
  EXPECT_FALSE(marks.misplaced);
  EXPECT_TRUE(marks.any());

  // ASCII case ignored; blanks around the code, before the mark and after it trimmed.
  const auto loose =
      read_issuing_country_marks("Ubon Court \t(Issuing Country:  tha )  ", authority);
  EXPECT_EQ(loose.authority, "Ubon Court");
  ASSERT_EQ(loose.countries.size(), 1u);
  EXPECT_EQ(loose.countries[0], "tha");
  EXPECT_FALSE(loose.misplaced);
  EXPECT_EQ(decide("Ubon Court \t(Issuing Country:  tha )  ", authority).country, "TH");

  // The mark alone names no authority.
  const auto alone = read_issuing_country_marks("(issuing country: LAO)", court);
  EXPECT_EQ(alone.authority, "");
  EXPECT_EQ(decide("(issuing country: LAO)", court).country, "LA");
}

TEST(IssuingCountryMark, NoMarkLeavesTheCountryToTheAdapter) {
  for (const std::string_view text : {"Attapeu Provincial People's Court", "", "(issuing VNM)"}) {
    const auto marks = read_issuing_country_marks(text, court);
    EXPECT_EQ(marks.authority, text);
    EXPECT_TRUE(marks.countries.empty());
    EXPECT_FALSE(marks.any());
    const auto decided = decide(text, court);
    EXPECT_FALSE(decided.country);
    EXPECT_FALSE(decided.refusal);
  }
}

TEST(IssuingCountryMark, RefusesWhatDoesNotNameOneKnownCountryAtTheEnd) {
  struct bad_mark {
    std::string text;
    std::string reason;
  };
  const bad_mark cases[] = {
      {"Court (issuing country: XYZ)",
       "unknown code 'XYZ' (table country): the issuing country is named by its ISO 3166-1 "
       "alpha-3 code"},
      {"Court (issuing country: VN)", "unknown code 'VN' (table country)"},  // alpha-2
      {"Court (issuing country: )", "unknown code '' (table country)"},
      {"Court (issuing country: LAO) (issuing country: VNM)",
       "names more than one issuing country ('LAO', 'VNM'): which country issued the warrant "
       "cannot be told"},
      // Two marks naming the same country are refused as well: one mark is the form.
      {"Court (issuing country: VNM) (issuing country: VNM)",
       "names more than one issuing country ('VNM', 'VNM')"},
      {"(issuing country: VNM) Court",
       "names its issuing country other than at its end as '(issuing country: <alpha-3>)'"},
      {"Court (issuing country: VNM", "other than at its end"},
      {"Court (issuing country: VNM) (issuing country: LAO", "other than at its end"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto decided = decide(c.text, court);
    EXPECT_FALSE(decided.country);
    ASSERT_TRUE(decided.refusal);
    EXPECT_NE(decided.refusal->find(c.reason), std::string::npos) << *decided.refusal;
    EXPECT_EQ(decided.refusal->find("Court"), std::string::npos) << "the authority is not echoed";
  }
}

TEST(IssuingCountryMark, TheFieldSaysHowCodesAreShownAndWhatIsBlank) {
  // A format's own words for an unknown code, and its way of showing one.
  EXPECT_EQ(decide("Court (issuing country: XYZ)", authority).refusal,
            "'XYZ' is not in table 'country': the issuing country is named by its ISO 3166-1 "
            "alpha-3 code");
  EXPECT_EQ(decide("Court (issuing country: SISOUVANH BOUNMY)", authority).refusal,
            "a long code is not in table 'country': the issuing country is named by its ISO "
            "3166-1 alpha-3 code");
  EXPECT_EQ(decide("Court (issuing country: LAO) (issuing country: P1234567)", authority).refusal,
            "names more than one issuing country ('LAO', a long code): which country issued the "
            "warrant cannot be told");

  // A line break after the mark is blank for one field, text after the mark for the other.
  const std::string broken = "Court (issuing country: VNM)\r\n";
  EXPECT_EQ(decide(broken, authority).country, "VN");
  EXPECT_FALSE(decide(broken, authority).refusal);
  EXPECT_FALSE(decide(broken, court).country);
  EXPECT_NE(decide(broken, court).refusal.value_or("").find("other than at its end"),
            std::string::npos);
}

TEST(IssuingCountryMark, WritesTheMarkAfterTheAuthority) {
  EXPECT_EQ(with_country_mark("Gia Lai Court", "VNM"), "Gia Lai Court (issuing country: VNM)");
  EXPECT_EQ(with_country_mark("", "KHM"), "(issuing country: KHM)");

  const auto marked = mark_issuer("Gia Lai Court", std::string("VNM"), court);
  EXPECT_EQ(marked.text, "Gia Lai Court (issuing country: VNM)");
  EXPECT_FALSE(marked.country_refusal);
  EXPECT_FALSE(marked.authority_refusal);
  // What is written is read back as it was.
  const auto back = read_issuing_country_marks(marked.text, court);
  EXPECT_EQ(back.authority, "Gia Lai Court");
  EXPECT_EQ(decide(marked.text, court).country, "VN");

  const auto alone = mark_issuer("", std::string("KHM"), court);
  EXPECT_EQ(alone.text, "(issuing country: KHM)");
  EXPECT_FALSE(alone.authority_refusal);
}

TEST(IssuingCountryMark, RefusesToWriteWhatCouldNotBeReadBack) {
  // No alpha-3 code: the format could not say the country.
  const auto no_code = mark_issuer("Gia Lai Court", std::nullopt, court);
  EXPECT_EQ(no_code.country_refusal,
            "has no ISO 3166-1 alpha-3 code: KH-CNP could not say which country issued the "
            "warrant, and without it the warrant would read as Cambodian");
  EXPECT_FALSE(no_code.authority_refusal);
  EXPECT_EQ(no_code.text, "");
  EXPECT_NE(mark_issuer("Court", std::nullopt, authority).country_refusal->find("read as Lao"),
            std::string::npos);

  // An authority that already holds a mark (or the start of one), with or without a code.
  for (const std::string_view held :
       {"Court (issuing country: LAO)", "Court (Issuing Country: LAO", "(issuing country: X) C"}) {
    SCOPED_TRACE(held);
    for (const auto& alpha3 : {std::optional<std::string>("VNM"), std::optional<std::string>()}) {
      const auto refused = mark_issuer(held, alpha3, authority);
      EXPECT_EQ(refused.authority_refusal,
                "already holds '(issuing country: ...)', the form in which LA-MPS's authority "
                "names the warrant's country: the country could not be told apart");
      EXPECT_EQ(refused.text, "");
      EXPECT_EQ(refused.country_refusal.has_value(), !alpha3.has_value());
    }
  }

  // The bound counts code points, mark included: 17 + 23 = 40 fits, one more does not.
  const std::string fits = "Tòa án Gia Lai ab";  // 17 code points, 19 bytes
  EXPECT_EQ(mark_issuer(fits, std::string("VNM"), court).text, fits + " (issuing country: VNM)");
  const auto too_long = mark_issuer(fits + "c", std::string("VNM"), court);
  EXPECT_EQ(too_long.authority_refusal,
            "is too long for KH-CNP's court with the issuing country after it (40 characters)");
  EXPECT_EQ(too_long.text, "");
  // Without a code, the length is not judged: the country is what is refused.
  const auto both = mark_issuer(fits + "c", std::nullopt, court);
  EXPECT_TRUE(both.country_refusal);
  EXPECT_FALSE(both.authority_refusal);
}

}  // namespace
}  // namespace mxgw::adapters
