#!/usr/bin/env python3
"""Damage one gpuivf index file in place, as a disk or a bug could.

    damage.py FILE KIND

KIND: tid (the first tuple of the first data page points to another heap
offset), vector (that tuple's last element changes), dims (the metapage
says one dimension more), cycle (the first data page links to itself),
duplicate (the second tuple gets the first one's heap TID).  Reads the
page layout from PostgreSQL's documented format (bufpage.h, itup.h) and
gpuivf.h's metapage; the cluster must be stopped and have no data checksums.
Prints what it changed.
"""
import struct
import sys

BLCKSZ = 8192
path, kind = sys.argv[1], sys.argv[2]
data = bytearray(open(path, "rb").read())


def page(b):
    return b * BLCKSZ


def item(b, off):
    """(offset in the file, length) of line pointer off (1-based) of block b"""
    lp = struct.unpack_from("<I", data, page(b) + 24 + 4 * (off - 1))[0]
    return page(b) + (lp & 0x7FFF), lp >> 17


meta = page(0) + 24
magic, version, dims, lists, metric, list_pages = struct.unpack_from("<IIiiiI", data, meta)
assert magic == 0x67707569, "not a gpuivf metapage"
first_data = 1 + list_pages
t1, _ = item(first_data, 1)
t2, _ = item(first_data, 2)
if kind == "tid":
    blk_hi, blk_lo, posid = struct.unpack_from("<HHH", data, t1)
    struct.pack_into("<H", data, t1 + 4, posid + 250)
    print("block %d offset 1: heap TID (%d,%d) -> (%d,%d)" % (first_data, blk_hi << 16 | blk_lo, posid,
                                                             blk_hi << 16 | blk_lo, posid + 250))
elif kind == "vector":
    # the value starts at MAXALIGN(sizeof(IndexTupleData)) = 8: a 1-byte
    # varlena header (low bit set, little-endian) or a 4-byte one, then
    # int16 dim, int16 unused, the elements
    v = t1 + 8
    v += 1 if data[v] & 1 else 4
    dim = struct.unpack_from("<h", data, v)[0]
    assert dim == dims, "unexpected vector layout"
    old = struct.unpack_from("<f", data, v + 4)[0]
    struct.pack_into("<f", data, v + 4, old + 0.5)
    print("block %d offset 1: element 1 %.4f -> %.4f" % (first_data, old, old + 0.5))
elif kind == "dims":
    struct.pack_into("<i", data, meta + 8, dims + 1)
    print("metapage dims %d -> %d" % (dims, dims + 1))
elif kind == "cycle":
    special = struct.unpack_from("<H", data, page(first_data) + 16)[0]
    struct.pack_into("<I", data, page(first_data) + special, first_data)
    print("block %d links to itself" % first_data)
elif kind == "duplicate":
    struct.pack_into("<6s", data, t2, bytes(data[t1:t1 + 6]))
    print("block %d offset 2 takes offset 1's heap TID" % first_data)
else:
    sys.exit("unknown kind " + kind)
open(path, "wb").write(data)
