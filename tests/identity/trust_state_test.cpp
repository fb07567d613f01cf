// The live trust snapshot's identity rule beyond the partner registry: rotation cut-offs (every
// certificate of a partner from before a rotation ends with the overlap, recorded or not),
// revocations carried by the files (revokedSha256), and partners refused for a stored change
// this instance could not apply.
#include "gateway/identity/trust_state.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "gateway/common/time.hpp"

namespace mxgw::identity {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::system_clock;

const std::string fp_old = std::string(64, '1');      // issued offline before the rotation
const std::string fp_new = std::string(64, '2');      // the rotation's new certificate
const std::string fp_pin_old = std::string(64, '3');  // pinned in the definition before
const std::string fp_pin_new = std::string(64, '4');  // pinned in the definition after
const std::string fp_later = std::string(64, '5');    // recorded after the rotation
const std::string fp_other = std::string(64, '6');    // another partner's

// The rotation is made at `cut`; its overlap ends a day later.
const clock::time_point cut = *parse_rfc3339("2026-12-01T10:00:00.000Z");
const clock::time_point overlap_end = cut + 24h;

partner make_partner(const std::string& id) {
  partner p;
  p.id = id;
  p.name = id;
  p.country = id.substr(0, 2) == "kh" ? "KH" : "VN";
  return p;
}

certificate_record make_record(const std::string& fingerprint, const std::string& source,
                               const std::string& recorded_at) {
  certificate_record r;
  r.fingerprint = fingerprint;
  r.partner_id = "kh-ratanakiri";
  r.source = source;
  r.recorded_at = recorded_at;
  return r;
}

certificate_facts facts(const std::string& fingerprint, std::vector<std::string> uris,
                        std::optional<clock::time_point> not_before) {
  certificate_facts f;
  f.sha256_fingerprint = fingerprint;
  f.partner_uris = std::move(uris);
  f.not_before = not_before;
  return f;
}

rotation_cutoff cutoff_at(clock::time_point at, clock::time_point until, std::string replaced_by,
                          std::vector<std::string> pins) {
  return {.cut_off = format_rfc3339_ms(at),
          .retiring_until = format_rfc3339_ms(until),
          .replaced_by = std::move(replaced_by),
          .pinned_before = std::move(pins),
          .cut_off_at = at,
          .until_at = until};
}

class TrustStateCutOff : public ::testing::Test {
 protected:
  void SetUp() override {
    partner rata = make_partner("kh-ratanakiri");
    rata.pinned_sha256 = {fp_pin_old, fp_pin_new};
    ASSERT_TRUE(state_.partners.add(rata));
    ASSERT_TRUE(state_.partners.add(make_partner("vn-gialai")));
    state_.certificates[fp_later] =
        make_record(fp_later, "registered", format_rfc3339_ms(cut + 1h));
    state_.certificates[fp_new] = make_record(fp_new, "enrolled", format_rfc3339_ms(cut));
    auto& cutoffs = state_.cutoffs["kh-ratanakiri"];
    cutoffs.partner_id = "kh-ratanakiri";
    cutoffs.cutoffs = {cutoff_at(cut, overlap_end, fp_new, {fp_pin_old})};
  }

  identity_decision at(clock::time_point now, const certificate_facts& f) const {
    return state_.identify(f, now);
  }

  trust_state state_;
};

TEST_F(TrustStateCutOff, ACertificateIssuedBeforeTheCutOffWorksInTheOverlapOnly) {
  const auto old = facts(fp_old, {"kh-ratanakiri"}, cut - 30 * 24h);
  EXPECT_EQ(at(cut + 1h, old).refusal, identity_refusal::none);
  EXPECT_EQ(at(overlap_end, old).refusal, identity_refusal::retired_certificate);
  EXPECT_EQ(at(overlap_end + 24h * 300, old).refusal, identity_refusal::retired_certificate);
  // Issued one second before the cut-off by mxgw's tooling (notBefore backdated 5 minutes).
  const auto just_before = facts(fp_old, {"kh-ratanakiri"}, cut - 1s - issue_backdating);
  EXPECT_EQ(at(overlap_end, just_before).refusal, identity_refusal::retired_certificate);
  // notBefore unknown: not known to be issued after, so refused.
  EXPECT_EQ(at(overlap_end, facts(fp_old, {"kh-ratanakiri"}, std::nullopt)).refusal,
            identity_refusal::retired_certificate);
}

TEST_F(TrustStateCutOff, TheNewCertificateAndLaterOnesKeepWorking) {
  const auto after = overlap_end + 24h;
  EXPECT_EQ(at(after, facts(fp_new, {"kh-ratanakiri"}, cut - 1h)).partner_id, "kh-ratanakiri");
  // Recorded after the cut-off (registered without a SAN), whatever its notBefore.
  EXPECT_EQ(at(after, facts(fp_later, {}, cut - 24h)).partner_id, "kh-ratanakiri");
  // Issued offline after the cut-off (notBefore backdated 5 minutes by the tooling).
  EXPECT_EQ(at(after, facts(fp_old, {"kh-ratanakiri"}, cut + 1s - issue_backdating)).partner_id,
            "kh-ratanakiri");
  // Pinned in the definition after the rotation.
  EXPECT_EQ(at(after, facts(fp_pin_new, {}, cut - 24h)).partner_id, "kh-ratanakiri");
  // Another partner has no cut-off.
  EXPECT_EQ(at(after, facts(fp_other, {"vn-gialai"}, cut - 24h)).partner_id, "vn-gialai");
}

TEST_F(TrustStateCutOff, APinFromBeforeTheRotationEndsWithTheOverlap) {
  const auto pin = facts(fp_pin_old, {}, cut + 24h);  // even with a later notBefore
  EXPECT_EQ(at(cut + 1h, pin).partner_id, "kh-ratanakiri");
  EXPECT_EQ(at(overlap_end, pin).refusal, identity_refusal::retired_certificate);
}

TEST_F(TrustStateCutOff, OpenConnectionsAreJudgedByWhatTheHandshakeSaw) {
  const auto after = overlap_end + 1s;
  // Seen in a handshake: issued after the cut-off, its connection stays.
  const auto fresh = facts(fp_old, {"kh-ratanakiri"}, cut + 1h);
  ASSERT_EQ(at(cut + 2h, fresh).refusal, identity_refusal::none);
  EXPECT_TRUE(state_.still_trusted("kh-ratanakiri", fp_old, after));
  // Never seen (connected before the rotation): closed once the overlap ends.
  EXPECT_TRUE(state_.still_trusted("kh-ratanakiri", std::string(64, '9'), cut + 1h));
  EXPECT_FALSE(state_.still_trusted("kh-ratanakiri", std::string(64, '9'), after));
  EXPECT_FALSE(state_.still_trusted("kh-ratanakiri", fp_pin_old, after));
  EXPECT_TRUE(state_.still_trusted("kh-ratanakiri", fp_new, after));
  EXPECT_TRUE(state_.still_trusted("kh-ratanakiri", fp_pin_new, after));
  EXPECT_TRUE(state_.still_trusted("vn-gialai", fp_other, after));
}

TEST(TrustStateCutOffs, AnEarlierCutOffStillRefusesInALaterRotationsOverlap) {
  // Rotated at `cut` with a day's overlap, then again ten days later with fourteen days: the
  // certificates from before the first rotation must not come back in the second's overlap.
  const auto second = cut + 24h * 10;
  partner_cutoffs first;
  first.partner_id = "kh-ratanakiri";
  first.cutoffs = {cutoff_at(cut, overlap_end, fp_new, {fp_pin_old})};
  const auto both = with_rotation(
      first, cutoff_at(second, second + 24h * 14, std::string(64, '7'), {fp_pin_new}), second);
  ASSERT_EQ(both.cutoffs.size(), 2u);
  EXPECT_EQ(both.cutoffs.back().pinned_before,
            (std::vector<std::string>{fp_pin_new, fp_pin_old}));  // a pin once cut off stays so
  trust_state state;
  ASSERT_TRUE(state.partners.add(make_partner("kh-ratanakiri")));
  state.cutoffs["kh-ratanakiri"] = both;
  const auto old = facts(fp_old, {"kh-ratanakiri"}, cut - 24h);
  EXPECT_EQ(state.identify(old, second + 1h).refusal, identity_refusal::retired_certificate);
  const auto between = facts(fp_old, {"kh-ratanakiri"}, cut + 24h * 5);
  EXPECT_EQ(state.identify(between, second + 1h).refusal, identity_refusal::none);
  EXPECT_EQ(state.identify(between, second + 24h * 14).refusal,
            identity_refusal::retired_certificate);

  // A rotation whose overlap ends no later than an earlier one's makes that one redundant.
  const auto third = with_rotation(
      both, cutoff_at(second + 1h, second + 1h, std::string(64, '8'), {}), second + 1h);
  ASSERT_EQ(third.cutoffs.size(), 2u);  // the first (ended) and the third
  EXPECT_EQ(third.cutoffs.front().cut_off, first.cutoffs.front().cut_off);
  EXPECT_EQ(third.cutoffs.back().replaced_by, std::string(64, '8'));
}

TEST(TrustStateCutOffs, JsonRoundTripsAndBadFormsAreRefused) {
  partner_cutoffs c;
  c.partner_id = "kh-ratanakiri";
  c.cutoffs = {cutoff_at(cut, overlap_end, fp_new, {fp_pin_old})};
  std::string error;
  const auto back = cutoffs_from_json(to_json(c), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->partner_id, "kh-ratanakiri");
  ASSERT_EQ(back->cutoffs.size(), 1u);
  EXPECT_EQ(back->cutoffs[0].cut_off_at, cut);
  EXPECT_EQ(back->cutoffs[0].until_at, overlap_end);
  EXPECT_EQ(back->cutoffs[0].pinned_before, std::vector<std::string>{fp_pin_old});
  // recordedSince is written only when it lists something; items stored before it read without.
  EXPECT_EQ(to_json(c).find("recordedSince"), std::string::npos);
  EXPECT_TRUE(back->cutoffs[0].recorded_since.empty());
  c.cutoffs[0].recorded_since = {fp_later, fp_pin_old};
  const auto listed = cutoffs_from_json(to_json(c), error);
  ASSERT_TRUE(listed) << error;
  EXPECT_EQ(listed->cutoffs[0].recorded_since, (std::vector<std::string>{fp_later, fp_pin_old}));
  const std::string good =
      R"("cutOff":"2026-12-01T10:00:00Z","retiringUntil":"2026-12-02T10:00:00Z")";
  for (
      const std::string& bad :
      {std::string("not json"), std::string(R"([])"), std::string(R"({"partner":"kh-ratanakiri"})"),
       std::string(R"({"partner":"Bad Id","cutoffs":[]})"),
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good +
           R"(,"replacedBy":"xyz","pinnedBefore":[]}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good + R"(,"replacedBy":")" + fp_new +
           R"("}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good + R"(,"replacedBy":")" + fp_new +
           R"(","pinnedBefore":[1]}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{"cutOff":"yesterday","retiringUntil":"2026-12-01T10:00:00Z","replacedBy":")" +
           fp_new + R"(","pinnedBefore":[]}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good + R"(,"replacedBy":")" + fp_new +
           R"(","pinnedBefore":[],"recordedSince":")" + fp_later + R"("}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good + R"(,"replacedBy":")" + fp_new +
           R"(","pinnedBefore":[],"recordedSince":[")" + fp_later + R"(","xyz"]}]})",
       R"({"partner":"kh-ratanakiri","cutoffs":[{)" + good + R"(,"replacedBy":")" + fp_new +
           R"(","pinnedBefore":[],"recordedSince":[7]}]})",
       std::string(R"({"partner":"kh-ratanakiri","cutoffs":[7]})")}) {
    error.clear();
    EXPECT_FALSE(cutoffs_from_json(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(TrustStateRecords, RecordedAtRoundTripsAndOlderRecordsReadWithout) {
  auto r = make_record(fp_new, "enrolled", "2026-12-01T10:00:00.000Z");
  std::string error;
  auto back = certificate_from_json(to_json(r), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->recorded_at, r.recorded_at);
  r.recorded_at.clear();
  EXPECT_EQ(to_json(r).find("recordedAt"), std::string::npos);
  back = certificate_from_json(to_json(r), error);
  ASSERT_TRUE(back) << error;
  EXPECT_TRUE(back->recorded_at.empty());
}

TEST(TrustStateUnapplied, APartnerWithAChangeThatCouldNotBeAppliedIsRefused) {
  trust_state state;
  ASSERT_TRUE(state.partners.add(make_partner("kh-ratanakiri")));
  const auto f = facts(fp_old, {"kh-ratanakiri"}, cut);
  EXPECT_EQ(state.identify(f, cut).refusal, identity_refusal::none);
  for (const char* kind : {"partner", "cutoff"}) {
    trust_state held = state;
    held.unapplied_changes[{kind, "kh-ratanakiri"}] = "invalid-partner";
    EXPECT_EQ(held.identify(f, cut).refusal, identity_refusal::disabled_partner) << kind;
    EXPECT_FALSE(held.still_trusted("kh-ratanakiri", fp_old, cut)) << kind;
  }
  trust_state other = state;
  other.unapplied_changes[{"partner", "vn-gialai"}] = "invalid-partner";
  EXPECT_EQ(other.identify(f, cut).refusal, identity_refusal::none);
}

TEST(TrustStateRevokedByFile, ARevokedFingerprintIsRefusedWhateverItNames) {
  trust_state state;
  partner rata = make_partner("kh-ratanakiri");
  rata.revoked_sha256 = {fp_old};
  ASSERT_TRUE(state.partners.add(rata));
  ASSERT_TRUE(state.partners.add(make_partner("vn-gialai")));
  EXPECT_EQ(state.identify(facts(fp_old, {"kh-ratanakiri"}, cut), cut).refusal,
            identity_refusal::revoked_certificate);
  EXPECT_EQ(state.identify(facts(fp_old, {"vn-gialai"}, cut), cut).refusal,
            identity_refusal::revoked_certificate);
  EXPECT_FALSE(state.still_trusted("kh-ratanakiri", fp_old, cut));
  EXPECT_EQ(state.identify(facts(fp_new, {"kh-ratanakiri"}, cut), cut).refusal,
            identity_refusal::none);
  // Replacing the definition keeps the index right.
  rata.revoked_sha256 = {fp_new};
  EXPECT_TRUE(state.partners.put(rata).empty());
  EXPECT_EQ(state.identify(facts(fp_old, {"kh-ratanakiri"}, cut), cut).refusal,
            identity_refusal::none);
  EXPECT_EQ(state.identify(facts(fp_new, {"kh-ratanakiri"}, cut), cut).refusal,
            identity_refusal::revoked_certificate);
}

// A gateway rebuilt from an export starts with the rotation's cut-off and its retiring
// certificates (the partners file's rotationCutoffs and retiringSha256), so that it refuses, once
// the overlap ends, what the exporting gateway refuses.
TEST(TrustStateSeed, TheFilesCutOffsAndRetiringCertificatesAreInTheSeed) {
  const std::string fp_retiring = std::string(64, 'a');  // recorded, made retiring by the rotation
  partner rata = make_partner("kh-ratanakiri");
  rata.pinned_sha256 = {fp_pin_new};
  rata.rotation_cutoffs = {cutoff_at(cut, overlap_end, fp_new, {fp_pin_old})};
  rata.retiring_sha256 = {{fp_retiring, format_rfc3339_ms(overlap_end)}};
  partner_registry files;
  ASSERT_TRUE(files.add(rata));
  ASSERT_TRUE(files.add(make_partner("vn-gialai")));

  const trust_state seed = seed_trust_state(files);
  ASSERT_EQ(seed.cutoffs.size(), 1u);
  EXPECT_EQ(seed.cutoffs.at("kh-ratanakiri").partner_id, "kh-ratanakiri");
  EXPECT_EQ(seed.cutoffs.at("kh-ratanakiri").cutoffs[0].replaced_by, fp_new);
  ASSERT_EQ(seed.certificates.size(), 1u);
  const auto& record = seed.certificates.at(fp_retiring);
  EXPECT_EQ(record.partner_id, "kh-ratanakiri");
  EXPECT_EQ(record.state, certificate_state::retiring);
  EXPECT_EQ(record.retiring_until, format_rfc3339_ms(overlap_end));
  EXPECT_TRUE(record.recorded_at.empty());
  // The snapshot holds them now; the definitions no longer do (the export writes them anew).
  EXPECT_TRUE(seed.partners.find("kh-ratanakiri")->rotation_cutoffs.empty());
  EXPECT_TRUE(seed.partners.find("kh-ratanakiri")->retiring_sha256.empty());
  EXPECT_EQ(seed.partners.find("kh-ratanakiri")->pinned_sha256,
            std::vector<std::string>{fp_pin_new});
  EXPECT_NE(seed.partners.find("vn-gialai"), nullptr);

  // In the overlap everything works; after it, the old certificate known by its SAN, the
  // retiring one (also without a SAN: its record names the partner) and the old pin are refused,
  // and the new certificate and the later pin still work.
  const auto old = facts(fp_old, {"kh-ratanakiri"}, cut - 30 * 24h);
  const auto retiring = facts(fp_retiring, {}, cut - 30 * 24h);
  EXPECT_EQ(seed.identify(old, cut + 1h).partner_id, "kh-ratanakiri");
  EXPECT_EQ(seed.identify(retiring, cut + 1h).partner_id, "kh-ratanakiri");
  EXPECT_EQ(seed.identify(old, overlap_end).refusal, identity_refusal::retired_certificate);
  EXPECT_EQ(seed.identify(retiring, overlap_end).refusal, identity_refusal::retired_certificate);
  EXPECT_EQ(seed.identify(facts(fp_pin_old, {"kh-ratanakiri"}, cut + 1h), overlap_end).refusal,
            identity_refusal::retired_certificate);
  EXPECT_EQ(seed.identify(facts(fp_new, {"kh-ratanakiri"}, cut - 1h), overlap_end).partner_id,
            "kh-ratanakiri");
  EXPECT_EQ(seed.identify(facts(fp_pin_new, {}, cut - 24h), overlap_end).partner_id,
            "kh-ratanakiri");
  EXPECT_FALSE(seed.still_trusted("kh-ratanakiri", fp_retiring, overlap_end));
  EXPECT_TRUE(seed.still_trusted("kh-ratanakiri", fp_retiring, cut + 1h));

  // Files without either member seed nothing of the kind.
  partner_registry plain;
  ASSERT_TRUE(plain.add(make_partner("kh-ratanakiri")));
  const trust_state plain_seed = seed_trust_state(plain);
  EXPECT_TRUE(plain_seed.cutoffs.empty());
  EXPECT_TRUE(plain_seed.certificates.empty());
}

// A certificate the exporting gateway recorded at or after a cut-off (say a pin from before the
// rotation registered again, to trust it again) is not cut off by it there: the files list it in
// the cut-off's recordedSince, and the seed lets it through after the overlap as that record did.
TEST(TrustStateSeed, ACertificateRecordedSinceTheCutOffIsNotCutOffByItOnTheRebuiltSide) {
  partner rata = make_partner("kh-ratanakiri");
  rata.pinned_sha256 = {fp_pin_old, fp_pin_new};
  auto cutoff = cutoff_at(cut, overlap_end, fp_new, {fp_pin_old, fp_pin_new});
  cutoff.recorded_since = {fp_pin_old, fp_later};
  rata.rotation_cutoffs = {cutoff};
  partner_registry files;
  ASSERT_TRUE(files.add(rata));
  const trust_state seed = seed_trust_state(files);
  EXPECT_TRUE(seed.certificates.empty());  // no record: the list alone says it

  const auto after = overlap_end + 1h;
  // The pin recorded again, and one known by its SAN issued before the cut-off but recorded
  // since, still work; the pin from before that was not recorded again, and an old certificate
  // known by its SAN alone, are cut off.
  EXPECT_EQ(seed.identify(facts(fp_pin_old, {}, cut - 24h), after).partner_id, "kh-ratanakiri");
  EXPECT_EQ(seed.identify(facts(fp_later, {"kh-ratanakiri"}, cut - 24h), after).partner_id,
            "kh-ratanakiri");
  EXPECT_EQ(seed.identify(facts(fp_pin_new, {}, cut - 24h), after).refusal,
            identity_refusal::retired_certificate);
  EXPECT_EQ(seed.identify(facts(fp_old, {"kh-ratanakiri"}, cut - 24h), after).refusal,
            identity_refusal::retired_certificate);
  EXPECT_TRUE(seed.still_trusted("kh-ratanakiri", fp_pin_old, after));
  EXPECT_FALSE(seed.still_trusted("kh-ratanakiri", fp_pin_new, after));

  // A later rotation keeps the list with the earlier cut-off (also as the stored item reads it
  // back), not with its own: the pin works in the later overlap and ends with it.
  const auto second = overlap_end + 24h;
  const auto both =
      with_rotation(seed.cutoffs.at("kh-ratanakiri"),
                    cutoff_at(second, second + 24h * 14, std::string(64, '7'), {}), second);
  std::string error;
  const auto stored = cutoffs_from_json(to_json(both), error);
  ASSERT_TRUE(stored) << error;
  ASSERT_EQ(stored->cutoffs.size(), 2u);
  EXPECT_EQ(stored->cutoffs.front().recorded_since,
            (std::vector<std::string>{fp_pin_old, fp_later}));
  EXPECT_TRUE(stored->cutoffs.back().recorded_since.empty());
  trust_state later = seed;
  later.cutoffs["kh-ratanakiri"] = *stored;
  EXPECT_EQ(later.identify(facts(fp_pin_old, {}, cut - 24h), second + 1h).partner_id,
            "kh-ratanakiri");
  EXPECT_EQ(later.identify(facts(fp_pin_old, {}, cut - 24h), second + 24h * 14).refusal,
            identity_refusal::retired_certificate);
}

}  // namespace
}  // namespace mxgw::identity
