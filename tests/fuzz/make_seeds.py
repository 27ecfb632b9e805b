#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers (tests/fuzz/corpus/<fuzzer>/): well-formed
frames of each kind, as a server sends them, for the fuzzers to mutate.

    tests/fuzz/make_seeds.py        # rewrites the corpus directories next to this file
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PART = 0xEEEEEEEEEEEEEEEE
DONE = 0xFFFFFFFFFFFFFFFF


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def u32(v):
    return struct.pack("<I", v)


def text(s):
    b = s.encode() + b"\0"
    return b + b"\0" * (-len(b) % 8)


def blob(b):
    return u64(len(b)) + b + b"\0" * (-len(b) % 8)


def header(body, type_, schema=0):
    return u32(len(body) // 8) + bytes([type_, schema, 0, 0])


def row(*values):
    """values: (type code, encoded bytes) per column."""
    codes = bytearray((len(values) + 15) // 16 * 8)
    for i, (code, _) in enumerate(values):
        codes[i // 2] |= code << (4 * (i % 2))
    return bytes(codes) + b"".join(v for _, v in values)


def rows_body(columns, rows, marker=DONE):
    return u64(len(columns)) + b"".join(text(c) for c in columns) + b"".join(rows) + u64(marker)


def integer(v):
    return (1, u64(v))


def floating(v):
    return (2, struct.pack("<d", v))


def txt(s):
    return (3, text(s))


def blb(b):
    return (4, blob(b))


def null():
    return (5, u64(0))


def unixtime(v):
    return (9, u64(v))


def iso(s):
    return (10, text(s))


def boolean(v):
    return (11, u64(v))


def write(fuzzer, name, data):
    d = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames_seeds():
    bodies = {
        "failure": (0, u64(19) + text("UNIQUE constraint failed: t.id")),
        "failure_after_rows": (0, u64(1) + text("v") + row(integer(5)) + u64(1) + text("interrupted")),
        "server": (1, u64(1) + text("127.0.0.1:9001")),
        "welcome": (2, u64(15000)),
        "servers": (3, u64(2) + u64(1) + text("127.0.0.1:9001") + u64(0) + u64(2) + text("127.0.0.1:9002") + u64(2)),
        "db": (4, u32(0) + u32(0)),
        "stmt0": (5, u32(0) + u32(7) + u64(2)),
        "result": (6, u64(42) + u64(1)),
        "empty": (8, u64(0)),
        "files": (9, u64(1) + text("app") + u64(16) + b"SQLite format 3\0"),
        "metadata": (10, u64(3) + u64(1)),
    }
    for name, (t, body) in bodies.items():
        write("frames", name, header(body, t) + body)
    body = u32(0) + u32(7) + u64(2) + u64(40)
    write("frames", "stmt1", header(body, 5, 1) + body)


def rows_seeds():
    everything = rows_body(
        ["i", "f", "t", "b", "n", "u", "s", "o"],
        [row(integer(-5), floating(1.5), txt("hello"), blb(b"\x01\x02\x03"), null(),
             unixtime(1136214245), iso("2006-01-02 15:04:05"), boolean(1))])
    write("rows_reader", "every_type", b"\0" + everything)
    write("rows_reader", "two_columns", b"\0" + rows_body(["id", "name"], [row(integer(1), txt("ann")), row(integer(2), null())]))
    wide = [f"c{i}" for i in range(17)]
    write("rows_reader", "seventeen_columns", b"\0" + rows_body(wide, [row(*[integer(i) for i in range(17)])]))
    write("rows_reader", "empty_part", b"\0" + rows_body(["v"], [], PART))
    write("rows_reader", "limit_two", b"\x03" + rows_body(["a", "b", "c"], [row(integer(1), integer(2), integer(3))]))


def framed(*bodies):
    return b"".join(struct.pack("<H", len(b) // 8) + b for b in bodies)


def mapping_seeds():
    tup = ["id", "name", "data", "small"]
    r1 = row(integer(1), txt("ann"), blb(b"xyz"), integer(7))
    r2 = row(integer(2), null(), blb(b""), null())
    write("row_mapping", "tuple_rows", b"\0" + framed(rows_body(tup, [r1, r2], PART), rows_body(tup, [r1], DONE)))
    rec = ["id", "name", "at", "data", "flag"]
    a = row(integer(1), txt("ann"), unixtime(1136214245), blb(b"\x00\x01"), boolean(1))
    b = row(integer(2), null(), iso("2006-01-02T15:04:05Z"), blb(b""), boolean(0))
    c = row(integer(3), txt("x"), iso(""), blb(b"a"), integer(1))
    write("row_mapping", "records", b"\0" + framed(rows_body(rec, [a, b, c])))
    write("row_mapping", "records_capped", b"\x05" + framed(rows_body(rec, [a, b], PART), rows_body(rec, [c, a], DONE)))
    write("row_mapping", "empty_parts", b"\0" + framed(rows_body(tup, [], PART), rows_body(tup, [r1], PART), rows_body(tup, [], PART), rows_body(tup, [], DONE)))
    write("row_mapping", "mismatch", b"\x10" + framed(rows_body(["id", "other"], [row(txt("one"), floating(2.0))])))
    write("row_mapping", "narrow_limit", b"\x20" + framed(rows_body(tup, [r1])))


if __name__ == "__main__":
    frames_seeds()
    rows_seeds()
    mapping_seeds()
