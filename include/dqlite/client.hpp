// dqlite-client for C++: the whole library.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/blocking_cluster.hpp>
#include <dqlite/blocking_pool.hpp>
#include <dqlite/cluster.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/error.hpp>
#include <dqlite/field.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/observe.hpp>
#include <dqlite/options.hpp>
#include <dqlite/params.hpp>
#include <dqlite/pool.hpp>
#include <dqlite/value.hpp>
#include <dqlite/version.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>
#include <dqlite/wire/protocol.hpp>
#include <dqlite/with_diagnostics.hpp>
