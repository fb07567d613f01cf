// RFC 9457 problem documents and the plain response type the HTTP layer hands to the network layer.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::http {

/// A response, independent of Beast so handlers stay testable and headers stay light.
struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra header fields
  bool close = false;                                        ///< close the connection after sending
};

/// The URI naming a problem type: "urn:mxgw:problem:<code>" (see docs/api.md for the list).
std::string problem_type_uri(std::string_view code);

/// An application/problem+json response with type, title, status, detail and, when given, the
/// `errors` list ({"pointer", "reason"} each). `detail` must not echo message content.
response problem(int status, std::string_view code, std::string_view title, std::string_view detail,
                 const std::vector<pipeline::field_error>& errors = {});

}  // namespace mxgw::http
