// Definitions of detail/cluster/backoff.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/cluster/backoff.hpp>

#include <chrono>
#include <random>

namespace dqlite::detail {

DQLITE_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
  if (d.count() <= 1) return d;
  // A fresh seed for every pause (there is one per retry, not one per request): no state
  // shared between threads, and none a forked process would share with its parent.
  std::random_device::result_type seed;
  try {
    seed = std::random_device{}();
  } catch (...) {  // no source of entropy: the clock will do for spreading retries
    seed = static_cast<std::random_device::result_type>(
        std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::minstd_rand rng(seed);
  std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng));
}

}  // namespace dqlite::detail
