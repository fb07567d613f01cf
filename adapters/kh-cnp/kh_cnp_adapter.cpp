// The `kh-cnp` adapter: Cambodian provincial police commissariats' KH-CNP-XCHG/2 JSON.
#include "adapters/common/dates.hpp"
#include "adapters/kh-cnp/kh_cnp.hpp"
#include "gateway/common/json.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::adapters {
namespace {

/// KH-CNP-XCHG/2 <-> canonical mx/1. The mapping, field by field, and every choice it makes are
/// in docs/adapters/kh-cnp.md; the work is done in kh_cnp_decode.cpp and kh_cnp_encode.cpp.
class kh_cnp_adapter final : public adapter {
 public:
  std::string_view id() const override { return "kh-cnp"; }
  std::string_view content_type() const override { return "application/json"; }

  decode_result decode(std::string_view bytes, const adapter_context& ctx) const override {
    return kh_cnp::decode_message(bytes, ctx);
  }

  encode_result encode(const rapidjson::Value& message, const adapter_context& ctx) const override {
    return kh_cnp::encode_message(message, ctx);
  }

  /// A KH RECEIPT: reply_to is the partner's own msg_no when known, else the gateway's id. The
  /// receipt's own msg_no is derived from the message id, so a resend gets the same receipt.
  std::string encode_receipt(const receipt_info& receipt,
                             const adapter_context& ctx) const override {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    const auto text = [&](std::string_view s) {
      return rapidjson::Value(mxgw::json::non_null(s), static_cast<rapidjson::SizeType>(s.size()), a);
    };
    std::string sent_at =
        utc_to_local(receipt.accepted_at, kh_cnp::local_offset_minutes, era::common);
    if (sent_at.empty()) {
      sent_at = utc_to_local(format_rfc3339_ms(ctx.now), kh_cnp::local_offset_minutes, era::common);
    }
    const std::string from = ctx.sender.empty() ? std::string("mxgw") : ctx.sender;
    const std::string& to = receipt.recipient.empty() ? ctx.recipient : receipt.recipient;
    doc.AddMember("format", text(kh_cnp::format_name), a);
    doc.AddMember("msg_no", text(message_uuid("mxgw-receipt", receipt.message_id)), a);
    doc.AddMember("msg_kind", "RECEIPT", a);
    doc.AddMember("sent_at", text(sent_at), a);
    rapidjson::Value from_unit(rapidjson::kObjectType);
    from_unit.AddMember("code", text(from), a);
    doc.AddMember("from_unit", from_unit, a);
    rapidjson::Value to_unit(rapidjson::kObjectType);
    to_unit.AddMember("code", text(to), a);
    doc.AddMember("to_unit", to_unit, a);
    doc.AddMember("reply_to",
                  text(receipt.reference.empty() ? receipt.message_id : receipt.reference), a);
    doc.AddMember("classification", "NORMAL", a);
    doc.AddMember("status", "RECEIVED", a);
    return json::to_string(doc);
  }

  /// {"error": "<title>: <pointer> <reason>; ..."}; the pointers are into the partner's bytes.
  std::string encode_error(int, std::string_view title,
                           const std::vector<field_error>& errors) const override {
    std::string text(title);
    for (std::size_t i = 0; i < errors.size(); ++i) {
      text += i == 0 ? ": " : "; ";
      text +=
          errors[i].pointer.empty() ? errors[i].reason : errors[i].pointer + " " + errors[i].reason;
    }
    rapidjson::Document doc(rapidjson::kObjectType);
    doc.AddMember("error",
                  rapidjson::Value(mxgw::json::non_null(text), static_cast<rapidjson::SizeType>(text.size()),
                                   doc.GetAllocator()),
                  doc.GetAllocator());
    return json::to_string(doc);
  }
};

}  // namespace
}  // namespace mxgw::adapters

namespace mxgw::adapters {
MXGW_REGISTER_ADAPTER(kh_cnp_adapter)
}
