// Calls into the two translation units that include the single header. This file does
// not include it: a program may keep the library out of most of its sources.
#include <cstdio>
#include <string>

namespace single_header_test {
const void* category_from_a();
const void* category_from_b();
std::string run_a();
std::string run_b();
}  // namespace single_header_test

int main() {
  using namespace single_header_test;
  std::string a = run_a();
  std::string b = run_b();
  std::printf("%s\n%s\n", a.c_str(), b.c_str());
  if (a.rfind("a: text, ", 0) != 0 || b.rfind("b: slow: ", 0) != 0) {
    std::fprintf(stderr, "unexpected results\n");
    return 1;
  }
  // Function-local statics of inline functions are one object in the whole program.
  if (category_from_a() != category_from_b()) {
    std::fprintf(stderr, "client_category() differs between translation units\n");
    return 1;
  }
  std::printf("single header: 2 translation units, one program: ok\n");
  return 0;
}
