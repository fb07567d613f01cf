// The adapter interface: one partner wire format <-> canonical mx/1 messages. The rest of the
// gateway knows adapters only by id, through the registry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "gateway/common/keyed_mac.hpp"
#include "gateway/pipeline/schema_set.hpp"

namespace mxgw::pipeline {
class code_tables;
class transliterators;
}  // namespace mxgw::pipeline

namespace mxgw::adapters {

using pipeline::field_error;  // {pointer, reason}; for XML the pointer is an XPath-like location

/// What an adapter may use besides the bytes. Everything here is read-only and thread-safe.
struct adapter_context {
  const pipeline::code_tables* tables = nullptr;  ///< config/mappings (country, region, ...)
  std::string sender;           ///< the authenticated partner id (decode) or the canonical sender
  std::string recipient;        ///< the partner the bytes are for (encode)
  bool carry_unmapped = false;  ///< keep unknown partner values in `unmapped` instead of refusing
  /// config/translit rules; when set, decoding adds a gateway transliteration to persons without
  /// a plain-Latin name (pipeline::add_transliterations). Null: no transliteration.
  const pipeline::transliterators* transliterators = nullptr;
  /// Decode: the gateway secret the ids of messages are derived under (derived_message_id,
  /// config `message_ids.key`). Null: the ids are derived without a key (predictable).
  const mac_key* message_id_key = nullptr;
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  /// Encode, for a message that answers another (`inReplyTo`; a receipt's `body.inReplyTo`): the
  /// id of the message answered and, when the recipient itself sent that message, the reference
  /// it gave it (its `ref`, e.g. a KH `msg_no`). A format that names the message answered writes
  /// that reference in place of the gateway id, which the recipient never learned. Empty: none.
  std::string answered_id;
  std::string answered_reference;
};

struct decode_result {
  int status = 0;  ///< 0 ok; 400 the bytes are not this format at all; 422 they cannot be mapped
  rapidjson::Document message;      ///< the canonical message (checked by the pipeline after)
  std::vector<field_error> errors;  ///< each names the location in the partner's bytes
};

struct encode_result {
  int status = 0;  ///< 0 ok; 422 the target format cannot express something required
  std::string bytes;
  std::vector<field_error> errors;  ///< each names the canonical field (JSON Pointer)
};

/// What the gateway tells a partner that sent it a message in this format.
struct receipt_info {
  std::string message_id;   ///< the canonical id
  std::string reference;    ///< the partner's own reference (msg_no, ref), when known
  std::string accepted_at;  ///< RFC 3339 UTC
  std::string recipient;    ///< the partner the receipt goes to
};

class adapter {
 public:
  virtual ~adapter() = default;

  /// The adapter id used in configuration and routes (`mx`, `kh-cnp`, `la-mps`, ...).
  virtual std::string_view id() const = 0;

  /// The media type partners send and expect (e.g. "application/json", "application/xml").
  virtual std::string_view content_type() const = 0;

  /// Partner bytes -> canonical message. The canonical `sender` is ctx.sender (never taken from
  /// the bytes); the canonical `id` is derived deterministically from the sender and the
  /// partner's own reference, so a message sent twice is the same message. Never throws.
  /// Through the registry, every partner format's result is put into Unicode NFC and, with
  /// ctx.transliterators, given transliterations (see registry.cpp); `mx` is left as sent.
  virtual decode_result decode(std::string_view bytes, const adapter_context& ctx) const = 0;

  /// Canonical message -> partner bytes. Never throws.
  virtual encode_result encode(const rapidjson::Value& message,
                               const adapter_context& ctx) const = 0;

  /// The body of a positive answer (202) to a partner that sent in this format: its receipt.
  virtual std::string encode_receipt(const receipt_info& receipt,
                                     const adapter_context& ctx) const = 0;

  /// The body of a refusal (4xx/5xx) in this format, and its media type; `errors` name places in
  /// the partner's bytes. The canonical format answers RFC 9457 problem documents instead (the
  /// HTTP layer makes those), so `mx` returns an empty string.
  virtual std::string encode_error(int status, std::string_view title,
                                   const std::vector<field_error>& errors) const = 0;
};

using adapter_factory = std::function<std::unique_ptr<adapter>()>;

/// Registers a factory under `id`; registering an id twice is a start-up error (the second call
/// returns false and the registry remembers the clash for `registry_problems()`).
bool register_adapter(std::string id, adapter_factory factory);

/// The adapter registered as `id`, or nullptr. Instances are created once and shared; every
/// adapter but `mx` comes wrapped so that its decode results are NFC (and transliterated when
/// the context carries transliterators).
const adapter* find_adapter(std::string_view id);

/// Registered ids, sorted.
std::vector<std::string> adapter_ids();

/// Ids registered more than once (a start-up error the gateway reports).
std::vector<std::string> registry_problems();

}  // namespace mxgw::adapters

/// One line at the bottom of an adapter's .cpp: MXGW_REGISTER_ADAPTER(kh_cnp_adapter);
/// The adapters are linked as an OBJECT library so the registration cannot be dropped.
#define MXGW_REGISTER_ADAPTER(type)                                                        \
  namespace {                                                                              \
  [[maybe_unused]] const bool mxgw_registered_##type = ::mxgw::adapters::register_adapter( \
      std::string(type().id()), [] { return std::make_unique<type>(); });                  \
  }
