// Persons across messages (docs/persons.md): keyed digests of what may identify a person (a
// document number; a name in any script, compared in its Latin form; that name with the birth
// year), so that the store can find the persons of other messages who may be the same person
// without keeping names or numbers. The gateway only proposes candidates; a human decides.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/fwd.h>

namespace mxgw::pipeline {

class transliterators;

/// The secret the digests are made under (HMAC-SHA-256): without it, a digest cannot be tested
/// against a guessed name. 32 bytes, like a data key.
struct match_key {
  std::array<unsigned char, 32> bytes{};
};

/// One keyed digest of one person of a message.
struct person_digest {
  std::string pointer;  ///< JSON Pointer of the person object, e.g. "/body/person"
  std::string kind;     ///< "document", "name-birth-year" or "name"
  std::string digest;   ///< 32 raw bytes
};

/// The most digests taken from one message; persons and their names past it are left out (a
/// message naming that many persons is matched on its first ones).
inline constexpr std::size_t max_person_digests = 256;

/// The comparison form of one Name object: its family and given parts in Latin (Latin parts in
/// ICAO form; Khmer, Lao and other scripts through `translit`, which may be null), folded with
/// comparison_key, the words sorted, so that the order of family and given names and the way a
/// partner split them do not matter: {family: ["Sok"], given: ["Chantha"]}, Khmer
/// {family: ["សុខ"], given: ["ចាន់ថា"]} and {given: ["CHANTHA", "SOK"]} all give "CHANTHA SOK".
/// nullopt when a part cannot be put into plain Latin (no rules for its script) or there is none.
std::optional<std::string> name_form(const rapidjson::Value& name, const transliterators* translit);

/// A document number as compared: ICAO Latin, letters and digits only, upper case
/// ("b 123-456" -> "B123456"); decimal digits of other scripts as ASCII digits (Khmer "១២៣៤៥" ->
/// "12345"), letters of other scripts as they are. Empty when fewer than 5 characters remain (too
/// short to tell persons apart) or none of them is a digit ("unknown", "KHM-ID": no number).
std::string document_form(std::string_view number);

/// The digests of every person of a checked canonical `message` (each object of its body, at any
/// depth, with a `names` array), in document order, each kind once per person and value:
/// - "document": the document_form of each of its documents' numbers;
/// - "name": the name_form of each of its names that has at least two words (one word alone,
///   "SOK", is shared by too many people);
/// - "name-birth-year": the name_form of each of its names (one word is enough) with the year of
///   its `birthDate`, unless `birthDateApprox` is true.
/// Each digest is HMAC-SHA-256(key, kind NUL form). At most max_person_digests. Never throws on
/// odd input: a member of the wrong type is left out.
std::vector<person_digest> person_digests_of(const rapidjson::Value& message, const match_key& key,
                                             const transliterators* translit);

}  // namespace mxgw::pipeline
