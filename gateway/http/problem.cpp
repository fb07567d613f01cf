// Problem documents (RFC 9457).
#include "gateway/common/json.hpp"
#include "gateway/http/problem.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace mxgw::http {

std::string problem_type_uri(std::string_view code) {
  return "urn:mxgw:problem:" + std::string(code);
}

response problem(int status, std::string_view code, std::string_view title, std::string_view detail,
                 const std::vector<pipeline::field_error>& errors) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto str = [&](std::string_view s) {
    w.String(json::non_null(s), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("type");
  str(problem_type_uri(code));
  w.Key("title");
  str(title);
  w.Key("status");
  w.Int(status);
  w.Key("detail");
  str(detail);
  if (!errors.empty()) {
    w.Key("errors");
    w.StartArray();
    for (const auto& e : errors) {
      w.StartObject();
      w.Key("pointer");
      str(e.pointer);
      w.Key("reason");
      str(e.reason);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body.assign(buffer.GetString(), buffer.GetSize());
  return r;
}

}  // namespace mxgw::http
