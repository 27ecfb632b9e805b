// When a pooled transaction runs again: the one rule of basic_pool::async_transaction and
// blocking_pool::transaction.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/cluster_options.hpp>
#include <dqlite/detail/cluster/backoff.hpp>
#include <dqlite/error.hpp>
#include <dqlite/pool_options.hpp>

#include <algorithm>
#include <chrono>
#include <string>

namespace dqlite::detail {

/// The attempts of one pooled transaction.
class transaction_attempts {
 public:
  explicit transaction_attempts(const transaction_retry& r)
      : retry_(r), attempts_(std::max(r.max_attempts, 1u)) {
    pauses_.backoff_base = r.backoff_base;
    pauses_.backoff_cap = r.backoff_cap;
    pauses_.backoff_factor = 2;
  }

  /// After attempt `attempt` (from 1) failed with `ec` (and the text `text`): the pause before the next attempt,
  /// or throws the dqlite::error that ends the transaction. `acquired`: a connection had
  /// been acquired (a failed acquire ends it at once). Runs again only after a failure
  /// that left nothing applied: busy (SQLITE_BUSY, SQLITE_LOCKED), or a connection or
  /// leadership error before the COMMIT was sent; never after errc::outcome_unknown.
  std::chrono::milliseconds after_failure(unsigned attempt, bool acquired, error_code ec,
                                          std::string text);

  /// The error for a pause between attempts that was cancelled.
  error cancelled() const;

 private:
  transaction_retry retry_;
  unsigned attempts_;
  cluster_options pauses_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::string last_text_;
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/transaction_retry.ipp>
#endif
