// The canonical format itself (`mx`): mx/1 JSON in, mx/1 JSON out. The pipeline does all checking.
#include "adapters/adapter.hpp"
#include "gateway/common/json.hpp"

namespace mxgw::adapters {
namespace {

class mx_adapter final : public adapter {
 public:
  std::string_view id() const override { return "mx"; }
  std::string_view content_type() const override { return "application/json"; }

  decode_result decode(std::string_view bytes, const adapter_context&) const override {
    decode_result result;
    if (auto error = json::parse_untrusted(bytes, result.message)) {
      result.status = 400;
      result.errors.push_back({"", "not acceptable JSON at byte offset " +
                                       std::to_string(error->offset) + ": " + error->reason});
    }
    return result;
  }

  encode_result encode(const rapidjson::Value& message, const adapter_context&) const override {
    return {0, json::to_string(message), {}};
  }

  std::string encode_receipt(const receipt_info& receipt, const adapter_context&) const override {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    doc.AddMember("id", rapidjson::Value(receipt.message_id.c_str(), a), a);
    doc.AddMember("status", "accepted", a);
    doc.AddMember("acceptedAt", rapidjson::Value(receipt.accepted_at.c_str(), a), a);
    return json::to_string(doc);
  }

  std::string encode_error(int, std::string_view, const std::vector<field_error>&) const override {
    return {};
  }
};

}  // namespace
}  // namespace mxgw::adapters

namespace mxgw::adapters {
MXGW_REGISTER_ADAPTER(mx_adapter)
}
