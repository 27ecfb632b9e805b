// Quickstart, blocking: the same steps as quickstart.cpp without coroutines or an
// io_context. Each call runs in the calling thread and returns when the node has answered.
//
//   quickstart_blocking 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: quickstart_blocking HOST:PORT\n";
    return 2;
  }
  try {
    // Connect and open the database "app_blocking" (created on first use).
    auto conn = dqlite::connect(argv[1], {.database = "app_blocking"});

    conn.execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT, score REAL)");
    conn.execute("DELETE FROM item");

    // Parameters follow the SQL text.
    auto res = conn.execute("INSERT INTO item (name, score) VALUES (?, ?)", "apple", 1.5);
    std::cout << "inserted row " << res.last_insert_id << "\n";
    conn.execute("INSERT INTO item (name, score) VALUES (?, ?)", "pear", std::nullopt);

    // Dynamic rows: values by column name or index.
    for (const auto& row : conn.fetchall("SELECT id, name, score FROM item ORDER BY id"))
      std::cout << row["id"].to_string() << " | " << row["name"].to_string() << " | "
                << row["score"].to_string() << "\n";

    // A single value.
    auto count = conn.fetchval<std::int64_t>("SELECT count(*) FROM item");
    std::cout << count << " rows\n";

    // Errors: an exception, or an error code and the server's text when asked for.
    dqlite::error_code ec;
    dqlite::diagnostics diag;
    conn.execute("INSERT INTO missing_table VALUES (1)", ec, diag);
    std::cout << "expected error: " << diag.message() << " (" << ec.message() << ")\n";
  } catch (const dqlite::error& e) {
    std::cerr << "quickstart_blocking failed: " << e.what() << "\n";
    return 1;
  }
}
