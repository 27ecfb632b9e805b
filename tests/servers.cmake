# The server matrix of the integration tests.
#
# The integration tests run once against Debian's libdqlite (the one pkg-config finds),
# and once more against each libdqlite built from a source archive (dqlite-*.tar.gz) in
# the directory DQLITE_CLIENT_TEST_SERVERS. Each archive is built once by
# tools/build_server.sh into DQLITE_CLIENT_TEST_SERVER_CACHE (a directory that outlives
# the build tree, keyed by the archive's sha256), then the node program
# (tools/node/dqlite_node.c) is built against it as dqlite-node-<label>.
#
# CTest names each test after its server: "integration[1.11.1]:<test case>",
# "integration[1.18.6]:...", "integration[null-fix]:...". The label of an archive is
# its name without "dqlite-", ".tar.gz" and a trailing "-<commit>"
# (dqlite-null-fix-5f00930.tar.gz -> null-fix).
#
# Every run of the integration binary gets in its environment
#   DQLITE_TEST_SERVER        the label,
#   DQLITE_TEST_NODE_BINARY   the node program built against that server,
#   LD_LIBRARY_PATH           (built servers) the server's lib directory, so that the
#                             test that runs a node inside the test process
#                             (tests/support/inproc_node.hpp) loads that libdqlite too.

set(DQLITE_CLIENT_TEST_SERVERS "" CACHE PATH
  "Directory of libdqlite source archives (dqlite-*.tar.gz): the integration tests also run against each (relative: to the source directory)")
if(DEFINED ENV{DQLITE_CLIENT_SERVER_CACHE} AND NOT "$ENV{DQLITE_CLIENT_SERVER_CACHE}" STREQUAL "")
  set(_dqlite_default_cache "$ENV{DQLITE_CLIENT_SERVER_CACHE}")
elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_dqlite_default_cache "$ENV{XDG_CACHE_HOME}/dqlite-client/servers")
elseif(DEFINED ENV{HOME} AND NOT "$ENV{HOME}" STREQUAL "")
  set(_dqlite_default_cache "$ENV{HOME}/.cache/dqlite-client/servers")
else()
  set(_dqlite_default_cache "${CMAKE_BINARY_DIR}/dqlite-servers")
endif()
set(DQLITE_CLIENT_TEST_SERVER_CACHE "${_dqlite_default_cache}" CACHE PATH
  "Where libdqlite servers built from DQLITE_CLIENT_TEST_SERVERS are kept between builds")
set(DQLITE_CLIENT_TEST_SERVER_JOBS "" CACHE STRING
  "make -j for building a server (empty: the number of processors)")

# Adds the integration tests of the binary `target` for server `label`; `env` is the
# list of NAME=VALUE its runs get.
function(dqlite_add_integration_pass target label env)
  string(MAKE_C_IDENTIFIER "${target}_${label}" list_var)
  # --name makes each call's arguments (and so the file catch_discover_tests writes)
  # different; it only names the run in Catch2's own reports.
  catch_discover_tests(${target}
    TEST_PREFIX "integration[${label}]:"
    EXTRA_ARGS --name "integration[${label}]"
    TEST_LIST ${list_var})
  # catch_discover_tests passes PROPERTIES as a flat list, so an ENVIRONMENT with
  # several variables cannot go through it: set it from a script CTest reads after the
  # discovered tests.
  set(script "${CMAKE_CURRENT_BINARY_DIR}/${list_var}_environment.cmake")
  # (A registered test that runs no test case, e.g. one made from a name that the
  # discovery split, fails on Catch2's "No tests ran".)
  string(CONCAT content
    "if(DEFINED ${list_var})\n"
    "  set_tests_properties(\${${list_var}} PROPERTIES\n"
    "    ENVIRONMENT \"${env}\"\n"
    "    FAIL_REGULAR_EXPRESSION \"No tests ran\"\n"
    "    LABELS \"integration;server-${label}\")\n"
    "endif()\n")
  file(GENERATE OUTPUT "${script}" CONTENT "${content}")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${script}")
endfunction()

# Builds the server of `archive` (at build time) and the node program against it. Sets
# <out_label>, <out_node> (the node program's target) and <out_libdir> in the caller.
function(dqlite_add_test_server archive out_label out_node out_libdir)
  get_filename_component(file "${archive}" NAME)
  string(REGEX REPLACE "\\.(tar\\.gz|tgz)$" "" name "${file}")
  string(REGEX REPLACE "^dqlite-" "" label "${name}")
  string(REGEX REPLACE "-[0-9a-f]+$" "" short "${label}")
  if(NOT short STREQUAL "" AND NOT short MATCHES "^[0-9.]+$")
    set(label "${short}")
  endif()
  file(SHA256 "${archive}" sum)
  string(SUBSTRING "${sum}" 0 16 sum)
  # The same directory tools/build_server.sh chooses.
  set(prefix "${DQLITE_CLIENT_TEST_SERVER_CACHE}/${name}-${sum}")
  string(MAKE_C_IDENTIFIER "${label}" id)

  set(jobs_env "")
  if(NOT DQLITE_CLIENT_TEST_SERVER_JOBS STREQUAL "")
    set(jobs_env "JOBS=${DQLITE_CLIENT_TEST_SERVER_JOBS}")
  endif()
  add_custom_command(
    OUTPUT "${prefix}/.complete"
    COMMAND ${CMAKE_COMMAND} -E env ${jobs_env}
            bash "${PROJECT_SOURCE_DIR}/tools/build_server.sh" "${archive}"
            "${DQLITE_CLIENT_TEST_SERVER_CACHE}"
    DEPENDS "${archive}" "${PROJECT_SOURCE_DIR}/tools/build_server.sh"
    COMMENT "libdqlite ${label}: building from ${file} into ${prefix} (once)"
    VERBATIM)
  add_custom_target(dqlite_server_${id} DEPENDS "${prefix}/.complete")

  add_executable(dqlite-node-${label} ${PROJECT_SOURCE_DIR}/tools/node/dqlite_node.c)
  set_target_properties(dqlite-node-${label} PROPERTIES
    C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF
    RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}/servers"
    BUILD_RPATH "${prefix}/lib")
  target_include_directories(dqlite-node-${label} BEFORE PRIVATE "${prefix}/include")
  target_link_libraries(dqlite-node-${label} PRIVATE "${prefix}/lib/libdqlite.so" Threads::Threads)
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(dqlite-node-${label} PRIVATE -Wall -Wextra
      $<$<BOOL:${DQLITE_CLIENT_WARNINGS_AS_ERRORS}>:-Werror>)
  endif()
  add_dependencies(dqlite-node-${label} dqlite_server_${id})

  set(${out_label} "${label}" PARENT_SCOPE)
  set(${out_node} dqlite-node-${label} PARENT_SCOPE)
  set(${out_libdir} "${prefix}/lib" PARENT_SCOPE)
endfunction()

# Registers the integration tests of `target` once per server.
function(dqlite_add_server_matrix target)
  # Debian's (pkg-config's) libdqlite, which the binary and dqlite-node link.
  set(system_label "${DQLITE_VERSION}")
  if(system_label STREQUAL "")
    set(system_label system)
  endif()
  dqlite_add_integration_pass(${target} "${system_label}"
    "DQLITE_TEST_SERVER=${system_label};DQLITE_TEST_NODE_BINARY=$<TARGET_FILE:dqlite-node>")
  set(servers "${system_label}")

  set(dir "${DQLITE_CLIENT_TEST_SERVERS}")
  if(dir STREQUAL "")
    message(STATUS "Server matrix: libdqlite ${system_label} only "
      "(-DDQLITE_CLIENT_TEST_SERVERS=DIR adds the servers of DIR/dqlite-*.tar.gz)")
    return()
  endif()
  if(NOT IS_ABSOLUTE "${dir}")
    get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${PROJECT_SOURCE_DIR}")
  endif()
  if(NOT IS_DIRECTORY "${dir}")
    message(STATUS "Server matrix: ${dir} does not exist; the integration tests run "
      "against libdqlite ${system_label} only")
    return()
  endif()
  file(GLOB archives "${dir}/dqlite-*.tar.gz" "${dir}/dqlite-*.tgz")
  list(SORT archives)
  if(NOT archives)
    message(STATUS "Server matrix: no dqlite-*.tar.gz in ${dir}; the integration tests "
      "run against libdqlite ${system_label} only")
    return()
  endif()
  foreach(archive IN LISTS archives)
    dqlite_add_test_server("${archive}" label node libdir)
    if(label IN_LIST servers)
      message(FATAL_ERROR "Server matrix: two servers named '${label}' (${archive})")
    endif()
    list(APPEND servers "${label}")
    add_dependencies(${target} ${node})
    dqlite_add_integration_pass(${target} "${label}"
      "DQLITE_TEST_SERVER=${label};DQLITE_TEST_NODE_BINARY=$<TARGET_FILE:${node}>;LD_LIBRARY_PATH=${libdir}")
  endforeach()
  list(JOIN servers ", " servers_text)
  message(STATUS "Server matrix: the integration tests run against libdqlite ${servers_text} "
    "(built servers are kept in ${DQLITE_CLIENT_TEST_SERVER_CACHE})")
endfunction()
