// The adapter registry and the shared partner-date helpers.
#include <gtest/gtest.h>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/common/message_ids.hpp"

namespace mxgw::adapters {
namespace {

TEST(AdapterRegistry, ListsTheLinkedAdaptersAndRefusesASecondRegistration) {
  const auto ids = adapter_ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), "mx"), ids.end());
  ASSERT_NE(find_adapter("mx"), nullptr);
  EXPECT_EQ(find_adapter("mx")->id(), "mx");
  EXPECT_EQ(find_adapter("no-such-format"), nullptr);
  EXPECT_TRUE(registry_problems().empty());
  EXPECT_FALSE(register_adapter("mx", [] { return std::unique_ptr<adapter>(); }));
  EXPECT_EQ(registry_problems(), std::vector<std::string>{"mx"});
}

TEST(PartnerDates, DayMonthYearWithUnknownParts) {
  std::string error;
  EXPECT_EQ(dmy_to_partial("14/02/1988", era::common, error), "1988-02-14");
  EXPECT_EQ(dmy_to_partial("00/05/2007", era::common, error), "2007-05");
  EXPECT_EQ(dmy_to_partial("00/00/2007", era::common, error), "2007");
  EXPECT_FALSE(dmy_to_partial("12/00/2007", era::common, error));
  EXPECT_FALSE(dmy_to_partial("31/02/2026", era::common, error));
  EXPECT_FALSE(dmy_to_partial("1/2/2026", era::common, error));
  // Month and day keep their leading zeros; a year before 1000 is not a date a message carries.
  EXPECT_EQ(dmy_to_partial("05/06/1001", era::common, error), "1001-06-05");
  EXPECT_EQ(dmy_to_partial("00/01/1544", era::buddhist, error), "1001-01");
  EXPECT_FALSE(dmy_to_partial("05/06/0987", era::common, error));
  EXPECT_FALSE(dmy_to_partial("00/01/0544", era::buddhist, error));  // year 1
  EXPECT_EQ(partial_to_dmy("2007-05", era::common), "00/05/2007");
  EXPECT_EQ(partial_to_dmy("1988-02-14", era::common), "14/02/1988");
}

TEST(PartnerDates, BuddhistEraIncludingLeapDays) {
  std::string error;
  EXPECT_EQ(dmy_to_partial("29/02/2567", era::buddhist, error), "2024-02-29");  // 2024 is leap
  EXPECT_FALSE(dmy_to_partial("29/02/2569", era::buddhist, error));             // 2026 is not
  EXPECT_FALSE(dmy_to_partial("31/02/2569", era::buddhist, error));
  EXPECT_EQ(partial_to_dmy("2026-11-21", era::buddhist), "21/11/2569");
  EXPECT_EQ(partial_to_dmy("2001", era::buddhist), "00/00/2544");
}

TEST(PartnerDates, LocalTimesWithOffsetsAndBack) {
  std::string error;
  EXPECT_EQ(local_to_utc("21/11/2026 09:42:10 +07:00", era::common, error), "2026-11-21T02:42:10Z");
  EXPECT_EQ(local_to_utc("01/01/2027 05:00 +07:00", era::common, error), "2026-12-31T22:00:00Z");
  EXPECT_EQ(local_to_utc("02/03/2027 01:02:03 -05:30", era::common, error), "2027-03-02T06:32:03Z");
  EXPECT_EQ(local_to_utc("09/09/2570 23:59:59 +00:00", era::buddhist, error),
            "2027-09-09T23:59:59Z");
  EXPECT_FALSE(local_to_utc("21/11/2026 09:42:10", era::common, error));  // no offset
  EXPECT_FALSE(local_to_utc("00/11/2026 09:42:10 +07:00", era::common, error));
  EXPECT_EQ(utc_to_local("2026-12-31T22:00:00Z", 420, era::common), "01/01/2027 05:00:00 +07:00");
  EXPECT_EQ(utc_to_local_date("2026-12-31T22:00:00Z", 420, era::buddhist), "01/01/2570");
  EXPECT_EQ(utc_to_local_hm("2026-12-31T22:00:00Z", 420), "05:00");
}

TEST(MessageUuid, IsStablePerSenderAndReference) {
  const auto a = message_uuid("kh-ratanakiri", "RTK-2026-000123");
  EXPECT_EQ(a, message_uuid("kh-ratanakiri", "RTK-2026-000123"));
  EXPECT_NE(a, message_uuid("kh-stungtreng", "RTK-2026-000123"));
  EXPECT_NE(a, message_uuid("kh-ratanakiri", "RTK-2026-000124"));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '5');  // version 5
  // The same as any RFC 4122 version-5 implementation gives (Python's uuid.uuid5 with mxgw's
  // namespace and "kh-ratanakiri\nRTK-2026-000123"): ids stored before stay the ids.
  EXPECT_EQ(a, "f40ec925-ef3a-59db-9e2f-d67d0cc8236f");
}

TEST(DerivedMessageId, WithAKeyIsAVersion8HmacThatOnlyTheKeyGives) {
  mac_key key{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<unsigned char>(i);
  }
  const auto a = derived_message_id(&key, "kh-ratanakiri", "RTK-2026-000123");
  // The first 16 bytes of HMAC-SHA-256(00 01 .. 1f, "mxgw-message-id" 00 "kh-ratanakiri" 00
  // "RTK-2026-000123") with version 8 and the RFC 9562 variant (Python's hmac module): instances
  // of one exchange, and versions of the gateway, give the same id for the same message.
  EXPECT_EQ(a, "c7a2217f-b5d2-8605-b066-1f58936d3167");
  EXPECT_EQ(a[14], '8');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
  EXPECT_EQ(a, derived_message_id(&key, "kh-ratanakiri", "RTK-2026-000123"));
  EXPECT_NE(a, derived_message_id(&key, "kh-stungtreng", "RTK-2026-000123"));
  EXPECT_NE(a, derived_message_id(&key, "kh-ratanakiri", "RTK-2026-000124"));
  // The sender and the reference cannot be traded for each other's text.
  EXPECT_NE(derived_message_id(&key, "a", "b\nc"), derived_message_id(&key, "a\nb", "c"));
  // Another key, another id; no key, the public (predictable) one.
  mac_key other = key;
  other[0] ^= 1;
  EXPECT_NE(a, derived_message_id(&other, "kh-ratanakiri", "RTK-2026-000123"));
  EXPECT_EQ(derived_message_id(nullptr, "kh-ratanakiri", "RTK-2026-000123"),
            message_uuid("kh-ratanakiri", "RTK-2026-000123"));
}

}  // namespace
}  // namespace mxgw::adapters
