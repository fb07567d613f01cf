// How the gateway names a canonical message in a partner format (KH-CNP `msg_no`, LA-MPS `ref`),
// and how a partner's reference to an earlier message (`reply_to`, `replyTo`) is read back into
// the canonical link `inReplyTo`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mxgw::adapters {

/// Longest reference the partner formats' decoders take (KH-CNP `msg_no`, LA-MPS `ref`).
inline constexpr std::size_t max_partner_reference_chars = 128;

/// The reference the gateway writes for canonical message `id` whose sender's own reference is
/// `ref`: "<ref>/<id>", so that the partner's officers see the sender's reference and a reply
/// naming the message can be linked to it exactly; `id` alone when there is no `ref` or both do
/// not fit in max_partner_reference_chars (`ref` alone when there is no `id`). A `ref` that already
/// ends in a canonical id (a partner sent a gateway name back as its own reference) is kept as it
/// is, so that a message translated there and back again stops changing after one round.
std::string outbound_reference(std::string_view ref, std::string_view id);

/// What a partner's reference to an earlier message names.
enum class reference_kind {
  gateway_message,  ///< a canonical message: a UUID, or a reference outbound_reference wrote
  foreign,          ///< no canonical id in it (the partner's own number, a number written before
                    ///< the gateway named its messages this way): it cannot be linked exactly
  malformed,        ///< its id part is shaped like a UUID but is not one, or it holds control
                    ///< characters: a damaged copy of a reference the gateway wrote
};

struct answered_reference {
  reference_kind kind = reference_kind::foreign;
  std::string id;  ///< gateway_message only: the canonical id, lower case
};

/// Reads `reference`, a partner's name for the message it answers.
answered_reference read_answered_reference(std::string_view reference);

/// True when `a` and `b` are the same text but for ASCII letter case (canonical ids may be
/// written in either case).
bool same_message_id(std::string_view a, std::string_view b);

/// The id a receipt names when its reference is foreign: the canonical receipt must name a
/// UUID, so it gets this name-based one (`message_uuid(placeholder_namespace, reference)`), which
/// names no message; `placeholder_namespace` contains ':' so it never equals a partner's id.
std::string placeholder_id(std::string_view placeholder_namespace, std::string_view reference);

}  // namespace mxgw::adapters
