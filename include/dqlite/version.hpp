// Version of dqlite-client for C++.
#pragma once

#define DQLITE_CLIENT_VERSION_MAJOR 0
#define DQLITE_CLIENT_VERSION_MINOR 1
#define DQLITE_CLIENT_VERSION_PATCH 0
#define DQLITE_CLIENT_VERSION "0.1.0"
