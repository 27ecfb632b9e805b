// The one unit of the program that compiles the library's common parts (see main.cpp).
#include <dqlite/src.hpp>
