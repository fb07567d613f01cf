// The adapter registry: a name -> factory map in a function-local static (safe during static
// initialisation), instances created once on first use.
#include <algorithm>
#include <map>
#include <mutex>

#include "adapters/adapter.hpp"
#include "gateway/pipeline/names.hpp"

namespace mxgw::adapters {
namespace {

/// A partner format as the gateway uses it: the adapter's own decoding, then every string put
/// into NFC (partners send decomposed text too) and, when the context has the rules, a Latin
/// transliteration added to persons who have none (never replacing the partner's spelling).
class normalising_adapter final : public adapter {
 public:
  explicit normalising_adapter(std::unique_ptr<adapter> inner) : inner_(std::move(inner)) {}

  std::string_view id() const override { return inner_->id(); }
  std::string_view content_type() const override { return inner_->content_type(); }

  decode_result decode(std::string_view bytes, const adapter_context& ctx) const override {
    auto result = inner_->decode(bytes, ctx);
    if (result.status == 0 && result.message.IsObject()) {
      pipeline::normalise_strings(result.message, result.message.GetAllocator());
      if (ctx.transliterators != nullptr) {
        pipeline::add_transliterations(result.message, ctx.transliterators);
      }
    }
    return result;
  }

  encode_result encode(const rapidjson::Value& message, const adapter_context& ctx) const override {
    return inner_->encode(message, ctx);
  }

  std::string encode_receipt(const receipt_info& receipt,
                             const adapter_context& ctx) const override {
    return inner_->encode_receipt(receipt, ctx);
  }

  std::string encode_error(int status, std::string_view title,
                           const std::vector<field_error>& errors) const override {
    return inner_->encode_error(status, title, errors);
  }

 private:
  std::unique_ptr<adapter> inner_;
};

struct registry {
  std::mutex mutex;
  std::map<std::string, adapter_factory, std::less<>> factories;
  std::map<std::string, std::unique_ptr<adapter>, std::less<>> instances;
  std::vector<std::string> clashes;
};

registry& the_registry() {
  static registry r;
  return r;
}

}  // namespace

bool register_adapter(std::string id, adapter_factory factory) {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  if (r.factories.contains(id)) {
    r.clashes.push_back(id);
    return false;
  }
  r.factories.emplace(std::move(id), std::move(factory));
  return true;
}

const adapter* find_adapter(std::string_view id) {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  if (auto it = r.instances.find(id); it != r.instances.end()) {
    return it->second.get();
  }
  auto f = r.factories.find(id);
  if (f == r.factories.end()) {
    return nullptr;
  }
  auto made = f->second();
  if (made && made->id() != "mx") {
    made = std::make_unique<normalising_adapter>(std::move(made));
  }
  auto [it, added] = r.instances.emplace(std::string(id), std::move(made));
  return it->second.get();
}

std::vector<std::string> adapter_ids() {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> ids;
  for (const auto& [id, f] : r.factories) {
    ids.push_back(id);
  }
  return ids;
}

std::vector<std::string> registry_problems() {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  return r.clashes;
}

}  // namespace mxgw::adapters
