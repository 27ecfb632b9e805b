// The pause between attempts: exponential backoff with a cap, and jitter.
#pragma once

#include <dqlite/cluster_options.hpp>
#include <dqlite/detail/config.hpp>

#include <algorithm>
#include <chrono>

namespace dqlite::detail {

/// The pause before attempt `attempt + 1` after `attempt` failed ones (attempt >= 1),
/// without jitter.
inline std::chrono::milliseconds backoff_delay(const cluster_options& o, unsigned attempt) {
  using ms = std::chrono::milliseconds;
  if (o.backoff_base.count() <= 0) return ms{0};
  const auto cap = std::max(o.backoff_cap, ms{0});
  auto d = o.backoff_base;
  for (unsigned i = 1; i < attempt && d < cap; ++i) {
    if (o.backoff_factor <= 1) break;
    if (d.count() > cap.count() / static_cast<ms::rep>(o.backoff_factor)) {
      d = cap;
      break;
    }
    d *= o.backoff_factor;
  }
  return std::min(d, cap);
}

/// A random duration between d / 2 and d (d itself when d <= 1 ms), from a generator seeded
/// anew from std::random_device for each call (from the clock when it has no entropy);
/// defined in impl/backoff.ipp, so that <random> is parsed only where that file is compiled.
DQLITE_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds d);

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/backoff.ipp>
#endif
