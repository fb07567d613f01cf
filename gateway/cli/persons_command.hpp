// `mxgw persons rekey`: the persons' digests of every stored message made anew under the
// configured match key (docs/persons.md), on the store itself while gateways run.
#pragma once

#include <cstddef>
#include <filesystem>

namespace mxgw::cli {

/// Keys every stored message that still has a body and was not withdrawn by its sender, `batch`
/// messages a transaction, with persons.match_key and the transliteration rules of
/// `config_file`: messages stored before keys were kept get them, and after a change of match key
/// every message is keyed under the new one. One audit entry with the counts (actor
/// cli:<user>). SIGINT/SIGTERM stop after the batch in progress. Returns 0 when every message was
/// looked at; 1 when the store failed or a signal stopped it (run it again); 2 when the
/// configuration has problems or names no match key (nothing changed).
int run_persons_rekey(const std::filesystem::path& config_file, std::size_t batch);

}  // namespace mxgw::cli
