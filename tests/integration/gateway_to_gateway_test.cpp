// Two mxgw instances (e.g. Gia Lai and Thanh Hoa) exchange canonical messages: one delivers to
// the other's partner listener over mutual TLS, and the receiver's 202 is the receipt.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <regex>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace mxgw::test {
namespace {

class GatewayToGateway : public gateway_fixture {
 protected:
  void configure(config::gateway_config& c) override {
    // The receiving gateway (Thanh Hoa's): it knows Gia Lai as a partner.
    std::filesystem::create_directories(dir_ / "peer");
    write_file(dir_ / "peer" / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai provincial gateway","country":"VN"}]})");
    auto peer_config = c;
    peer_config.partners_file = dir_ / "peer" / "partners.json";
    peer_config.store.path = dir_ / "peer" / "mxgw.db";
    peer_config.delivery.enabled = false;
    peer_ = std::make_unique<cli::gateway_instance>(peer_config);
    peer_thread_ = std::thread([this] { peer_->run(); });

    // The sending gateway presents Gia Lai's partner certificate when it delivers.
    const auto gialai = partner_client("vn-gialai");
    c.delivery.client_certificate = gialai.cert;
    c.delivery.client_key = gialai.key;
    c.delivery.partner_server_ca = {dir_ / "ca.pem"};
    c.delivery.poll_interval_ms = 20;
    write_file(dir_ / "partners.json", R"({"partners":[
      {"id":"vn-gialai","name":"Gia Lai liaison desk","country":"VN"},
      {"id":"vn-thanhhoa","name":"Thanh Hoa provincial gateway","country":"VN",
       "agreements":["victim-data"],
       "endpoint":"https://localhost:)" + std::to_string(peer_->port()) +
                                           R"(/v1/messages"}]})");
  }

  void TearDown() override {
    gateway_fixture::TearDown();
    peer_->stop();
    peer_thread_.join();
    peer_.reset();
  }

  std::unique_ptr<cli::gateway_instance> peer_;
  std::thread peer_thread_;
};

TEST_F(GatewayToGateway, AMessageAcceptedByOneIsDeliveredToTheOtherAndStoredThere) {
  const std::string id = "be6c5b7d-4e3a-4b2f-9d0c-5b6a7f8e9d04";
  std::string message = example("victim.identification", id);
  message = std::regex_replace(message, std::regex(R"("recipients": \[[^\]]*\])"),
                               R"("recipients": ["vn-thanhhoa"])");
  message = std::regex_replace(message, std::regex(R"("releasableTo": \[[^\]]*\])"),
                               R"("releasableTo": ["vn-thanhhoa"])");
  const auto gialai = partner_client("vn-gialai");
  ASSERT_EQ(post(gialai, message).status, 202);

  // Wait (bounded) until the sending gateway records the receipt.
  std::string state;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (state != "delivered" && std::chrono::steady_clock::now() < deadline) {
    rapidjson::Document s;
    s.Parse(get(gialai, "/v1/messages/" + id).body.c_str());
    state = s["recipients"][0]["state"].GetString();
    if (state != "delivered") {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ASSERT_EQ(state, "delivered");

  // The receiving gateway stored it as sent by Gia Lai, and answers Gia Lai about it.
  auto at_peer =
      cli::https_request("localhost", peer_->port(), gialai, "GET", "/v1/messages/" + id);
  ASSERT_EQ(at_peer.status, 200) << at_peer.body;
  rapidjson::Document s;
  s.Parse(at_peer.body.c_str());
  EXPECT_EQ(std::string(s["sender"].GetString()), "vn-gialai");
  EXPECT_EQ(std::string(s["type"].GetString()), "victim.identification");
}

}  // namespace
}  // namespace mxgw::test
