#!/usr/bin/env python3
"""Generate the single-header distribution of dqlite-client for C++.

Starting from include/dqlite/client.hpp, every #include of one of the project's
own headers (<dqlite/...> or "..." resolved under include/) is replaced by the
header's text, recursively, each header once. `#pragma once` lines of the inlined
headers are dropped and one include guard wraps the whole result. Boost, standard
and system includes are kept as they are.

The optional parts that need other libraries (TLS: OpenSSL; the YAML node store:
yaml-cpp; the embedded node: libdqlite), and the one unit of separate compilation
(src.hpp), are not in client.hpp: each becomes an add-on header next to it
(single_include/dqlite/tls.hpp, yaml_node_store.hpp, app.hpp, src.hpp) that includes
"client.hpp" and holds only its own code.

    python3 tools/amalgamate.py                 # writes single_include/dqlite/*.hpp
    python3 tools/amalgamate.py --output FILE   # writes client.hpp as FILE, the add-ons
                                                # next to it
    python3 tools/amalgamate.py --check         # exits 1 if a file is out of date
"""

import argparse
import os
import re
import sys

ENTRY = os.path.join("include", "dqlite", "client.hpp")
OUTPUT = os.path.join("single_include", "dqlite", "client.hpp")
GUARD = "DQLITE_SINGLE_INCLUDE_CLIENT_HPP"
# Add-on headers: (header under include/dqlite/, include guard, what it needs).
ADDONS = [
    ("tls.hpp", "DQLITE_SINGLE_INCLUDE_TLS_HPP", "OpenSSL (link -lssl -lcrypto)"),
    ("yaml_node_store.hpp", "DQLITE_SINGLE_INCLUDE_YAML_NODE_STORE_HPP",
     "yaml-cpp (link -lyaml-cpp)"),
    ("app.hpp", "DQLITE_SINGLE_INCLUDE_APP_HPP", "libdqlite (link -ldqlite)"),
    ("src.hpp", "DQLITE_SINGLE_INCLUDE_SRC_HPP",
     "DQLITE_CLIENT_SEPARATE_COMPILATION defined in every unit of the program; "
     "include it in one unit"),
]

BANNER = """\
// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)
"""

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
PRAGMA_ONCE_RE = re.compile(r"^\s*#\s*pragma\s+once\b")


class AmalgamateError(Exception):
    pass


class Amalgamator:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.include_dir = os.path.join(self.root, "include")
        self.seen = set()

    def display(self, path):
        return os.path.relpath(path, self.include_dir).replace(os.sep, "/")

    def own_header(self, delimiter, name, including_file):
        """Path of the project header named by an include, or None if the
        include is not one of ours."""
        if delimiter == "<":
            if not name.startswith("dqlite/"):
                return None
            path = os.path.normpath(os.path.join(self.include_dir, name))
            if not os.path.isfile(path):
                raise AmalgamateError(
                    "%s: #include <%s>: no such header under include/"
                    % (self.display(including_file), name))
            return path
        candidates = [
            os.path.normpath(os.path.join(os.path.dirname(including_file), name)),
            os.path.normpath(os.path.join(self.include_dir, name)),
        ]
        for path in candidates:
            inside = os.path.commonpath([path, self.include_dir]) == self.include_dir
            if inside and os.path.isfile(path):
                return path
        raise AmalgamateError(
            '%s: #include "%s": not found under include/'
            % (self.display(including_file), name))

    def expand(self, path, out):
        path = os.path.realpath(path)
        if path in self.seen:
            return
        self.seen.add(path)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        name = self.display(path)
        out.append("// ---- begin %s ----\n" % name)
        for line in lines:
            if PRAGMA_ONCE_RE.match(line):
                continue
            m = INCLUDE_RE.match(line)
            if m:
                header = self.own_header(m.group(1), m.group(2), path)
                if header is not None:
                    self.expand(header, out)
                    continue
            out.append(line.rstrip() + "\n")
        out.append("// ---- end %s ----\n" % name)

    def run(self):
        """{file name: text} of client.hpp and of each add-on."""
        entry = os.path.join(self.root, ENTRY)
        if not os.path.isfile(entry):
            raise AmalgamateError("entry header %s does not exist" % entry)
        body = []
        self.expand(entry, body)
        files = {"client.hpp": BANNER + "\n"
                 + "#ifndef %s\n#define %s\n\n" % (GUARD, GUARD)
                 + "".join(body)
                 + "\n#endif // %s\n" % GUARD}
        in_client = set(self.seen)
        for name, guard, needs in ADDONS:
            # Only the add-on's own code: what client.hpp has is included from there.
            # The definitions of impl/*.ipp are left out of client.hpp with
            # DQLITE_CLIENT_SEPARATE_COMPILATION: src.hpp has them again.
            self.seen = {p for p in in_client if not p.endswith(".ipp")}
            addon = []
            self.expand(os.path.join(self.include_dir, "dqlite", name), addon)
            files[name] = (BANNER + "//\n// Add-on: <dqlite/%s>, which needs %s.\n" % (name, needs)
                           + "\n#ifndef %s\n#define %s\n\n" % (guard, guard)
                           + '#include "client.hpp"\n\n'
                           + "".join(addon)
                           + "\n#endif // %s\n" % guard)
        return files


def main(argv):
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(
        description="Generate single_include/dqlite/*.hpp from include/.")
    parser.add_argument("--output", metavar="FILE",
                        help="write here instead of single_include/dqlite/client.hpp "
                             "(with --check: the file to compare)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the file differs from what "
                             "would be generated")
    parser.add_argument("--root", metavar="DIR", default=default_root,
                        help="repository root (default: the parent of tools/)")
    args = parser.parse_args(argv)

    try:
        files = Amalgamator(args.root).run()
    except (AmalgamateError, OSError, UnicodeDecodeError) as e:
        print("amalgamate.py: error: %s" % e, file=sys.stderr)
        return 2

    output = args.output or os.path.join(args.root, OUTPUT)
    directory = os.path.dirname(os.path.abspath(output))
    paths = {name: output if name == "client.hpp" else os.path.join(directory, name)
             for name in files}
    if args.check:
        stale = 0
        for name, text in files.items():
            try:
                with open(paths[name], encoding="utf-8", newline="") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                state = "is missing" if current is None else "is out of date"
                print("amalgamate.py: %s %s; regenerate it with: python3 tools/amalgamate.py"
                      % (paths[name], state), file=sys.stderr)
                stale = 1
        return stale

    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        tmp = paths[name] + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, paths[name])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
