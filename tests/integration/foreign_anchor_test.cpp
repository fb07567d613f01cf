// Another agency's CA is trusted so that its partners' pinned certificates chain. It can put any
// partner's URI into a certificate it issues: from an anchor of partners known by pin only
// (listener.tls.pinned_partner_ca) such a URI names no one, and only the pin counts.
#include <gtest/gtest.h>

#include <chrono>

#include "gateway/identity/cert_authority.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class ForeignAnchor : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    const auto now = std::chrono::system_clock::now();
    foreign_ = std::make_unique<identity::cert_authority>(identity::cert_authority::create(
        "Lao ministry CA", now - std::chrono::hours(1), now + std::chrono::hours(24 * 30)));
    write_file(dir_ / "foreign-ca.pem", foreign_->cert_pem());
    write_file(dir_ / "foreign-crl.pem", foreign_->make_crl({}));
    // Champasak's own certificate from its CA, pinned; it also carries Gia Lai's URI.
    champasak_ = issue_foreign("champasak", "la-champasak", "urn:mxgw:partner:vn-gialai");
    const std::string pin = identity::sha256_fingerprint_of_pem(read_file(dir_ / "champasak.pem"));
    // A certificate the same CA issued naming Gia Lai, pinned for no one.
    impostor_ = issue_foreign("impostor", "vn-gialai", "urn:mxgw:partner:vn-gialai");
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"la-champasak","name":"Champasak police","country":"LA",
       "pinnedSha256":[")" + pin + R"("]}]})");
    c.listener.tls.crls.push_back(dir_ / "foreign-crl.pem");
    if (pinned_only()) {
      c.listener.tls.pinned_partner_cas = {dir_ / "foreign-ca.pem"};
    } else {
      c.listener.tls.partner_cas.push_back(dir_ / "foreign-ca.pem");
    }
  }
  virtual bool pinned_only() const { return true; }

  cli::client_tls issue_foreign(const std::string& name, const std::string& common_name,
                                const std::string& uri) {
    identity::certificate_request req;
    req.common_name = common_name;
    req.san_uris = {uri};
    return make_client(name, req, foreign_.get());
  }

  std::unique_ptr<identity::cert_authority> foreign_;
  cli::client_tls champasak_, impostor_;
};

TEST_F(ForeignAnchor, AUriFromAPinOnlyAnchorNamesNoOneAndThePinCounts) {
  EXPECT_EQ(get(impostor_, "/healthz").status, 0);  // refused in the handshake
  EXPECT_EQ(get(champasak_, "/healthz").status, 200);
  // Served as Champasak, not as the partner its URI names: Gia Lai's messages are not its own.
  const auto r =
      post(champasak_, example("victim.identification", "7c1e2d3f-4a5b-4c6d-8e7f-8091a2b3c4d5"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(get(partner_client("vn-gialai"), "/healthz").status, 200);  // our own CA's URIs count
}

// The same CA among the anchors that name partners by URI (partner_ca): it can issue any
// partner's identity. This is why other agencies' CAs belong in pinned_partner_ca.
class ForeignAnchorAsOwn : public ForeignAnchor {
 protected:
  bool pinned_only() const override { return false; }
};

TEST_F(ForeignAnchorAsOwn, ItsUrisNameTheirPartner) {
  EXPECT_EQ(get(impostor_, "/healthz").status, 200);
  EXPECT_EQ(get(champasak_, "/healthz").status, 0);  // URI and pin disagree: ambiguous
}

}  // namespace
}  // namespace mxgw::test
