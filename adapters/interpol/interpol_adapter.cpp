// The `interpol` adapter: INTERPOL-style public notice feeds (red and yellow notice details, JSON).
// The feed is read-only: the gateway polls it (gateway/feed/) and never writes to it.
#include "adapters/interpol/interpol.hpp"
#include "gateway/common/json.hpp"

namespace mxgw::adapters {
namespace {

/// Notice detail -> canonical mx/1. The mapping, field by field, is in docs/adapters/interpol.md;
/// the work is done in interpol_decode.cpp.
class interpol_adapter final : public adapter {
 public:
  std::string_view id() const override { return "interpol"; }
  std::string_view content_type() const override { return "application/json"; }

  decode_result decode(std::string_view bytes, const adapter_context& ctx) const override {
    return interpol::decode_notice(bytes, ctx);
  }

  /// A notice feed is published by its owner and read by the gateway; nothing is ever sent to it,
  /// so no partner can be a recipient in this format (routing excludes it: format-cannot-express).
  encode_result encode(const rapidjson::Value&, const adapter_context&) const override {
    encode_result result;
    result.status = 422;
    result.errors.push_back(
        {"",
         "format-cannot-express: the INTERPOL notice feed is read-only; no message is sent "
         "in this format"});
    return result;
  }

  /// {"id","status":"accepted","acceptedAt"}, as the canonical API answers (a relay pushing
  /// notices to /v1/inbound/interpol gets this).
  std::string encode_receipt(const receipt_info& receipt, const adapter_context&) const override {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    const auto text = [&](std::string_view s) {
      return rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
    };
    doc.AddMember("id", text(receipt.message_id), a);
    doc.AddMember("status", "accepted", a);
    doc.AddMember("acceptedAt", text(receipt.accepted_at), a);
    if (!receipt.reference.empty()) {
      doc.AddMember("entity_id", text(receipt.reference), a);
    }
    return json::to_string(doc);
  }

  /// {"error": "<title>", "errors": [{"pointer", "reason"}]}; pointers are into the notice.
  std::string encode_error(int, std::string_view title,
                           const std::vector<field_error>& errors) const override {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    const auto text = [&](std::string_view s) {
      return rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
    };
    doc.AddMember("error", text(title), a);
    rapidjson::Value list(rapidjson::kArrayType);
    for (const auto& e : errors) {
      rapidjson::Value item(rapidjson::kObjectType);
      item.AddMember("pointer", text(e.pointer), a);
      item.AddMember("reason", text(e.reason), a);
      list.PushBack(item, a);
    }
    doc.AddMember("errors", list, a);
    return json::to_string(doc);
  }
};

}  // namespace
}  // namespace mxgw::adapters

namespace mxgw::adapters {
MXGW_REGISTER_ADAPTER(interpol_adapter)
}
