// Definitions of detail/cluster/backoff.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/cluster/backoff.hpp>

#include <random>

namespace dqlite::detail {

DQLITE_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
  if (d.count() <= 1) return d;
  thread_local std::minstd_rand rng(std::random_device{}());
  std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng));
}

}  // namespace dqlite::detail
