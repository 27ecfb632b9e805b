// Definitions of detail/pool/transaction_retry.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/pool/transaction_retry.hpp>

#include <string>

namespace dqlite::detail {

DQLITE_DECL std::chrono::milliseconds transaction_attempts::after_failure(unsigned attempt, bool acquired, error_code ec,
                                        std::string text) {
  if (text.empty()) text = ec.message();
  const bool unknown = is_outcome_unknown(ec);
  const bool again = acquired && !unknown && !is_cancelled(ec) &&
                     ec != make_error_code(errc::used_after_fork) &&
                     (is_busy(ec) || is_connection_error(ec));
  const auto pause = jittered(backoff_delay(pauses_, attempt));
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

DQLITE_DECL error transaction_attempts::cancelled() const {
  return error(make_error_code(errc::cancelled),
               diagnostics("the transaction was cancelled while waiting to run again "
                           "(after: " + last_text_ + ")"));
}

}  // namespace dqlite::detail
