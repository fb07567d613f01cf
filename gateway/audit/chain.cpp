// The audit chain's canonical bytes and hashes (see audit.hpp).
#include "gateway/common/json.hpp"
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/audit/audit.hpp"
#include "gateway/common/digest.hpp"

namespace mxgw::audit {
namespace {

void put(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view key,
         std::string_view value) {
  w.Key(json::non_null(key), static_cast<rapidjson::SizeType>(key.size()));
  w.String(json::non_null(value), static_cast<rapidjson::SizeType>(value.size()));
}

}  // namespace

std::string_view genesis_hash() {
  return "0000000000000000000000000000000000000000000000000000000000000000";
}

std::string entry_bytes(std::int64_t seq, std::string_view at, const audit_record& record,
                        std::string_view prev_hash) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("seq");
  w.Int64(seq);
  put(w, "at", at);
  put(w, "event", record.event);
  put(w, "actor", record.actor);
  put(w, "partner", record.partner);
  put(w, "message", record.message_id);
  w.Key("details");
  w.StartObject();
  for (const auto& [key, value] : record.details) {
    put(w, key, value);
  }
  w.EndObject();
  put(w, "prev", prev_hash);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

audit_row make_row(std::int64_t seq, std::string_view at, const audit_record& record,
                   std::string_view prev_hash) {
  audit_row row;
  row.seq = seq;
  row.at = std::string(at);
  row.event = record.event;
  row.actor = record.actor;
  row.partner = record.partner;
  row.message_id = record.message_id;
  row.entry = entry_bytes(seq, at, record, prev_hash);
  row.hash = sha256_hex(row.entry);
  return row;
}

std::string checkpoint_bytes(std::int64_t seq, std::string_view hash, std::string_view at) {
  std::string out = "mxgw-audit-checkpoint/1\n";
  out += std::to_string(seq);
  out += '\n';
  out += hash;
  out += '\n';
  out += at;
  out += '\n';
  return out;
}

}  // namespace mxgw::audit
