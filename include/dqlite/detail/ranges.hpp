// The parts of std::ranges the library uses: the range concepts (input_range, sized_range,
// iterator_t, range_reference_t) and the access functions (begin, end, size).
//
// libstdc++ defines exactly these in <bits/ranges_base.h>, which its <span> includes; <ranges>
// adds the views and adaptors on top, which the library does not use and which every unit of
// the user's would otherwise parse. Other standard libraries get <ranges>.
#pragma once

#include <version>

#if defined(__GLIBCXX__)
#include <span>
#endif
#ifndef _GLIBCXX_RANGES_BASE_H  // not libstdc++, or one whose <span> does not bring them
#include <ranges>
#endif
