// How the library's functions that do not depend on the user's types are compiled.
//
// Header-only (the default): they are `inline`, defined in the headers (each header
// includes its part of include/dqlite/impl/*.ipp at its end).
//
// With DQLITE_CLIENT_SEPARATE_COMPILATION: they are declared only, and defined once, in
// the unit that includes <dqlite/src.hpp> (which includes every impl/*.ipp). The other
// units neither parse nor compile their bodies.
#pragma once

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
#define DQLITE_DECL
#else
#define DQLITE_DECL inline
#endif
