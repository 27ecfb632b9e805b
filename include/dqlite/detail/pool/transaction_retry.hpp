// When a pooled transaction runs again: the one rule of basic_pool::async_transaction and
// blocking_pool::transaction.
#pragma once

#include <dqlite/cluster_options.hpp>
#include <dqlite/detail/cluster/backoff.hpp>
#include <dqlite/error.hpp>
#include <dqlite/pool_options.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>

namespace dqlite::detail {

/// The attempts of one pooled transaction.
class transaction_attempts {
 public:
  explicit transaction_attempts(const transaction_retry& r)
      : retry_(r), attempts_(std::max(r.max_attempts, 1u)), rng_(std::random_device{}()) {
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
                                          std::string text) {
    if (text.empty()) text = ec.message();
    const bool unknown = is_outcome_unknown(ec);
    const bool again = acquired && !unknown && !is_cancelled(ec) &&
                       ec != make_error_code(errc::used_after_fork) &&
                       (is_busy(ec) || is_connection_error(ec));
    const auto pause = jittered(backoff_delay(pauses_, attempt), rng_);
    const bool in_time = retry_.timeout.count() <= 0 ||
                         std::chrono::steady_clock::now() + pause - start_ < retry_.timeout;
    if (again && attempt < attempts_ && in_time) {
      last_text_ = std::move(text);
      return pause;
    }
    std::string why;
    if (unknown)
      why = "the transaction may have been applied (its outcome is unknown), so it was "
            "not run again";
    else if (again)
      why = "the transaction failed " + std::to_string(attempt) + " time(s); " +
            (attempt >= attempts_
                 ? "no attempt is left (max_attempts " + std::to_string(attempts_) + ")"
                 : std::string("retry.timeout has passed"));
    else
      why = "the transaction failed (attempt " + std::to_string(attempt) + ")";
    throw error(ec, diagnostics(why + ": " + text));
  }

  /// The error for a pause between attempts that was cancelled.
  error cancelled() const {
    return error(make_error_code(errc::cancelled),
                 diagnostics("the transaction was cancelled while waiting to run again "
                             "(after: " + last_text_ + ")"));
  }

 private:
  transaction_retry retry_;
  unsigned attempts_;
  cluster_options pauses_;
  std::minstd_rand rng_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::string last_text_;
};

}  // namespace dqlite::detail
