// The adapter registry: a name -> factory map in a function-local static (safe during static
// initialisation), instances created once on first use.
#include <algorithm>
#include <map>
#include <mutex>

#include "adapters/adapter.hpp"

namespace mxgw::adapters {
namespace {

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
  auto [it, added] = r.instances.emplace(std::string(id), f->second());
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
