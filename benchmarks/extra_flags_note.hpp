// Included first in every benchmark (benchmarks/CMakeLists.txt, -include) when the build
// gives the programs extra compiler options (DQLITE_CLIENT_PROGRAM_CXX_FLAGS; tools/test.sh
// gives -Og): says so on stderr before main() starts, since the figures the benchmark
// prints are then those of that build, not of an optimised one.
#pragma once

#include <cstdio>

namespace dqlite_benchmark {

inline const bool extra_flags_noted = [] {
  std::fputs(
      "note: this benchmark was built with the extra compiler options of "
      "DQLITE_CLIENT_PROGRAM_CXX_FLAGS (tools/test.sh: -Og); for figures, build it in a build "
      "directory without them, e.g. cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release\n",
      stderr);
  return true;
}();

}  // namespace dqlite_benchmark
