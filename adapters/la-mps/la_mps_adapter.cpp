// The LA-MPS-XML/1.3 adapter (Lao provincial police): hardened XML <-> canonical mx/1. The mapping
// field by field, the hardening and every choice are in docs/adapters/la-mps.md.
#include <string>
#include <string_view>
#include <vector>

#include "adapters/adapter.hpp"
#include "adapters/common/dates.hpp"
#include "adapters/la-mps/la_mps_codes.hpp"
#include "adapters/la-mps/la_mps_decoder.hpp"
#include "adapters/la-mps/la_mps_encoder.hpp"
#include "adapters/la-mps/la_mps_format.hpp"
#include "adapters/la-mps/la_mps_xml.hpp"
#include "gateway/common/time.hpp"

namespace mxgw::adapters {
namespace {

using la_mps::decoder;
using la_mps::encoder;
using la_mps::format_version;
using la_mps::la_mps_codes;
using la_mps::lao_offset_minutes;
using la_mps::path_name;
using la_mps::root_element;
using la_mps::xml_safe_copy;

class la_mps_adapter final : public adapter {
 public:
  std::string_view id() const override { return "la-mps"; }
  std::string_view content_type() const override { return "application/xml"; }

  decode_result decode(std::string_view bytes, const adapter_context& ctx) const override {
    decode_result result;
    if (ctx.tables == nullptr) {
      result.status = 500;
      result.errors.push_back({"", "the gateway's code tables are not loaded"});
      return result;
    }
    auto parsed = la_mps::parse_xml(bytes);
    if (!parsed.root) {
      result.status = 400;
      result.errors.push_back({"", parsed.error});
      return result;
    }
    if (parsed.root->name != root_element) {
      result.status = 400;
      result.errors.push_back({"/" + path_name(parsed.root->name),
                               "the root element must be <LaoPoliceMessage> (LA-MPS-XML/1.3)"});
      return result;
    }
    const la_mps_codes codes(*ctx.tables);
    decoder d(ctx, codes, result.message);
    d.message(*parsed.root);
    if (!d.errors.empty()) {
      result.status = 422;
      result.errors = std::move(d.errors);
      result.message.SetNull();
    }
    return result;
  }

  encode_result encode(const rapidjson::Value& message, const adapter_context& ctx) const override {
    encode_result result;
    if (ctx.tables == nullptr) {
      result.status = 500;
      result.errors.push_back({"", "the gateway's code tables are not loaded"});
      return result;
    }
    const la_mps_codes codes(*ctx.tables);
    encoder e(codes, ctx.answered_id, ctx.answered_reference);
    result.bytes = e.run(message);
    if (!e.errors.empty()) {
      result.status = 422;
      result.errors = std::move(e.errors);
      result.bytes.clear();
    }
    return result;
  }

  std::string encode_receipt(const receipt_info& receipt,
                             const adapter_context& ctx) const override {
    std::string at = receipt.accepted_at;
    if (utc_to_local_date(at, lao_offset_minutes, era::buddhist).empty()) {
      at = format_rfc3339_ms(ctx.now);
    }
    const std::string reference =
        !receipt.reference.empty() && la_mps::is_xml_text(receipt.reference) ? receipt.reference
                                                                             : receipt.message_id;
    la_mps::xml_writer w;
    xmlNodePtr root = w.root("LaoPoliceMessage");
    w.attribute(root, "version", format_version);
    w.attribute(root, "type", "receipt");
    w.attribute(root, "ref", xml_safe_copy(receipt.message_id));
    w.attribute(root, "replyTo", xml_safe_copy(reference));
    w.attribute(root, "date", utc_to_local_date(at, lao_offset_minutes, era::buddhist));
    w.attribute(root, "time", utc_to_local_hm(at, lao_offset_minutes));
    w.attribute(root, "classification", "general");
    xmlNodePtr r = w.child(root, "Receipt");
    w.attribute(r, "status", "received");
    return w.to_string();
  }

  std::string encode_error(int, std::string_view title,
                           const std::vector<field_error>& errors) const override {
    std::string text(title);
    for (const auto& e : errors) {
      text += "\n";
      text += e.pointer.empty() ? e.reason : e.pointer + ": " + e.reason;
    }
    la_mps::xml_writer w;
    xmlNodePtr root = w.root("Error");
    w.text(root, xml_safe_copy(text));
    return w.to_string();
  }
};

}  // namespace
}  // namespace mxgw::adapters

namespace mxgw::adapters {
MXGW_REGISTER_ADAPTER(la_mps_adapter)
}
