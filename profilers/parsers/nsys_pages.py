"""An nsys export's tables read straight from the SQLite file's b-tree pages, decoded in numpy
a chunk of pages at a time: the fast path of ``nsys_sqlite`` for the common, well-formed file.

Why: through SQL, SQLite steps every row, evaluates each checking expression and writes each
value out as text for numpy to parse back (~1 s of CPU for a 120 MB export, ~1 s more per
million NVTX events). The values are already in the file as big-endian integers of 0-8 bytes
behind a varint header per record (https://www.sqlite.org/fileformat2.html), so numpy can
take them out of thousands of records per operation.

It applies only where its reading is certain: a rollback-journal database in UTF-8, a rowid
table with no hidden or INTEGER PRIMARY KEY column among those read, every record whole in its
leaf page (no overflow page), every value read an integer or NULL (a text column: any type).
Anything else — a value of the wrong type, an overflow page, a page or record that does not
parse — raises ``PagesUnusable`` and the caller reads that table with SQL, so hostile files
take the SQL path's checks and results are identical either way (the tests compare both paths
on every fixture). Memory: one chunk of pages (``CHUNK_PAGES``) and the columns read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pandas as pd

CHUNK_PAGES = 256  # 1 MB of 4 KB pages: a chunk's arrays stay in cache (faster than 1024, 64)
_PAD = 16  # bytes after a page past the last: reads near the end stay inside the buffer
# Content size per serial type (a varint of at most two bytes: < 2**14): 0-9 fixed, 10 and
# 11 reserved (-1), then blob (even) and text (odd) of (type - 12) // 2 bytes.
_SIZE_OF = np.r_[np.array([0, 1, 2, 3, 4, 6, 8, 8, 0, 0, -1, -1]),
                 (np.arange(12, 1 << 14) - 12) // 2].astype(np.int32)
# Serial types an integer column may hold here: NULL (0), integers (1-6) and 0 / 1 (8, 9).
_INT_OR_NULL = np.zeros(1 << 14, dtype=bool)
_INT_OR_NULL[[0, 1, 2, 3, 4, 5, 6, 8, 9]] = True
_MAX_TEXT_MATRIX = 1 << 23  # bytes of text values laid out as one padded matrix
_MAX_TEXT_WIDTH = 1 << 16  # a text value held in its leaf page is shorter than a page


class PagesUnusable(Exception):
    """This table cannot be read from its pages with certainty: read it with SQL."""


@dataclass
class RawInts:
    """An integer column as stored: ``values`` (0 where NULL) and ``null``."""

    values: np.ndarray
    null: np.ndarray


@dataclass
class RawText:
    """A text column: ``codes`` into ``labels`` per row, -1 where the value is not text."""

    codes: np.ndarray
    labels: list[str]


@dataclass
class PageFile:
    path: Path
    page_size: int
    usable: int
    pages: int


def open_db(path: Path) -> PageFile | None:
    """The file's page geometry, or None where the page reader does not apply."""
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or head[18] != 1 or head[19] != 1:  # WAL: pages may live elsewhere
        return None
    if int.from_bytes(head[56:60], "big") not in (0, 1):  # text not UTF-8
        return None
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return None
    usable = page_size - head[20]
    if usable < 480:
        return None
    pages = os.path.getsize(path) // page_size
    in_header = int.from_bytes(head[28:32], "big")
    if in_header and head[24:28] == head[92:96]:  # the header's page count is valid: SQLite's
        pages = min(pages, in_header)
    return PageFile(path, page_size, usable, pages)


def _read_pages(f: BinaryIO, db: PageFile, numbers: np.ndarray) -> np.ndarray:
    """Pages ``numbers`` (1-based) as one flat buffer, page i at i * page_size, and zeros
    after the last (a page and ``_PAD``)."""
    if len(numbers) and (numbers.min() < 2 or numbers.max() > db.pages):
        raise PagesUnusable("page number out of range")
    flat = np.zeros((len(numbers) + 1) * db.page_size + _PAD, dtype=np.uint8)
    view = memoryview(cast(bytearray, flat))  # numpy arrays are writable buffers
    # contiguous runs of pages in one read each (an export's tables are mostly sequential)
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(numbers)].tolist(),
                      strict=True):
        f.seek((int(numbers[lo]) - 1) * db.page_size)
        want = (hi - lo) * db.page_size
        if f.readinto(view[lo * db.page_size: hi * db.page_size]) != want:  # type: ignore[attr-defined]
            raise PagesUnusable("short read")
    return flat


def _be(flat: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(len(pos), dtype=np.int64)
    for k in range(width):
        out = (out << 8) | flat[pos + k]
    return out


def _varint(flat: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, length in bytes) of the SQLite varint at each position."""
    b = flat[pos].astype(np.int64)
    value, length = b & 0x7F, np.ones(len(pos), dtype=np.int64)
    idx = np.flatnonzero(b >= 0x80)
    k = 1
    while len(idx):
        b = flat[pos[idx] + k].astype(np.int64)
        if k == 8:  # the ninth byte gives all 8 bits
            value[idx] = (value[idx] << 8) | b
            length[idx] = 9
            break
        value[idx] = (value[idx] << 7) | (b & 0x7F)
        length[idx] += 1
        idx = idx[b >= 0x80]
        k += 1
    return value, length


def leaf_pages(f: BinaryIO, db: PageFile, root: int) -> np.ndarray:
    """The table's leaf pages in key (rowid) order, from its root down the interior pages."""
    level = np.array([root], dtype=np.int64)
    for _ in range(32):
        flat = _read_pages(f, db, level)
        base = np.arange(len(level), dtype=np.int64) * db.page_size
        kinds = flat[base]
        if (kinds == 0x0D).all():
            return level
        if not (kinds == 0x05).all():
            raise PagesUnusable("not a rowid table b-tree")
        ncell = _be(flat, base + 3, 2)
        if (12 + 2 * ncell > db.usable).any():
            raise PagesUnusable("cell pointers past the page")
        first = np.repeat(np.cumsum(ncell) - ncell, ncell)
        page = np.repeat(np.arange(len(level)), ncell)
        ptr = _be(flat, base[page] + 12 + 2 * (np.arange(len(page)) - first), 2)
        if len(ptr) and (ptr.min() < 12 or ptr.max() > db.usable - 4):
            raise PagesUnusable("cell pointer outside the page")
        cell = base[page] + ptr
        children = _be(flat, cell, 4)
        right = _be(flat, base + 8, 4)
        # each page's children in order, then its right-most child
        order = np.argsort(np.r_[page * 2, np.arange(len(level)) * 2 + 1], kind="stable")
        level = np.r_[children, right][order]
        if len(level) > db.pages:  # a damaged page pointing at pages again and again
            raise PagesUnusable("more pages in the b-tree than in the file")
    raise PagesUnusable("b-tree too deep")


# per count of bytes kept in a little-endian 64-bit word (0-8): the mask that keeps them
_KEEP = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)


def _word_masks(length: np.ndarray, n_words: int) -> np.ndarray:
    """(n, n_words) masks that keep the first ``length`` bytes of each row of words."""
    kept = np.clip(length[:, None] - 8 * np.arange(n_words), 0, 8)
    return _KEEP[kept]


class _TextIndex:
    """The distinct text values of a column, by content. A 64-bit hash of a value's bytes
    and length finds its entry (a hash table of the entries' hashes), and the bytes are always
    compared with the entry's: a collision is never merged — the table is then read with SQL.
    Memory: the distinct values' bytes, once."""

    def __init__(self) -> None:
        rng = np.random.default_rng()
        self._mult = rng.integers(1, 2**63, size=2 + _MAX_TEXT_WIDTH // 8,
                                  dtype=np.uint64) | np.uint64(1)
        self._hashes = pd.Index(np.zeros(0, dtype=np.uint64))  # per entry: its hash
        self._start = np.zeros(0, dtype=np.int64)  # per entry: its bytes in the blob
        self._length = np.zeros(0, dtype=np.int64)
        self._blob = np.zeros(0, dtype=np.uint8)  # the entries' bytes end to end, then padding
        self._used = 0  # bytes of the blob before its padding

    def _hash(self, words: np.ndarray, length: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = words >> np.uint64(29)  # in place from here: one temporary matrix
            mixed ^= words
            mixed *= self._mult[: words.shape[1]]
            h = mixed.sum(axis=1, dtype=np.uint64) + length.astype(np.uint64) * self._mult[-1]
            return (h ^ (h >> np.uint64(31))) * np.uint64(0x9E3779B97F4A7C15)

    def add(self, flat: np.ndarray, off: np.ndarray, length: np.ndarray) -> np.ndarray:
        """The entry of each value at ``off`` (``length`` bytes), new values added."""
        if len(length) and length.max() > _MAX_TEXT_WIDTH:
            raise PagesUnusable("text value longer than a page")
        out = np.zeros(len(off), dtype=np.int64)
        width = -(-int(length.max(initial=0)) // 8) * 8 or 8
        step = max(1, _MAX_TEXT_MATRIX // width)
        for a in range(0, len(off), step):
            out[a: a + step] = self._add(flat, off[a: a + step], length[a: a + step], width)
        return out

    def _add(self, flat: np.ndarray, off: np.ndarray, length: np.ndarray, width: int
             ) -> np.ndarray:
        # each value's bytes and what follows it up to ``width`` (the padding after the last
        # page keeps every window inside the buffer) as 64-bit words, the bytes past its end
        # masked off
        mask = _word_masks(length, width // 8)
        words = np.lib.stride_tricks.sliding_window_view(flat, width)[off].view("<u8")
        words &= mask
        h = self._hash(words, length)
        codes = self._hashes.get_indexer(h).astype(np.int64)  # the entry, or -1
        known = codes >= 0
        if known.any():
            entry = codes[known]
            if (self._length[entry] != length[known]).any():
                raise PagesUnusable("hash collision between two text values")
            theirs = np.lib.stride_tricks.sliding_window_view(self._blob, width)[
                self._start[entry]].view("<u8")
            theirs &= mask[known]
            if not (theirs == words[known]).all():
                raise PagesUnusable("hash collision between two text values")
        new = np.flatnonzero(~known)
        if len(new):
            uniq, first, inverse = np.unique(h[new], return_index=True, return_inverse=True)
            rep = new[first][inverse.ravel()]
            if not ((words[new] == words[rep]).all() and (length[new] == length[rep]).all()):
                raise PagesUnusable("hash collision between two text values")
            codes[new] = len(self._length) + inverse.ravel()
            firsts = new[first]
            self._append(uniq, words[firsts].view(np.uint8), length[firsts])
        return codes

    def _append(self, hashes: np.ndarray, matrix: np.ndarray, length: np.ndarray) -> None:
        self._start = np.r_[self._start, self._used + np.cumsum(length) - length]
        self._length = np.r_[self._length, length]
        added = matrix[np.arange(matrix.shape[1]) < length[:, None]]
        self._blob = np.r_[self._blob[: self._used], added,
                           np.zeros(_MAX_TEXT_WIDTH + 8, dtype=np.uint8)]
        self._used += len(added)
        self._hashes = pd.Index(np.r_[self._hashes.to_numpy(), hashes])

    def labels(self) -> list[str]:
        """The distinct strings, by entry."""
        try:
            return [self._blob[a: a + n].tobytes().decode("utf-8")
                    for a, n in zip(self._start.tolist(), self._length.tolist(), strict=True)]
        except UnicodeDecodeError:
            raise PagesUnusable("text not UTF-8") from None


def _decode_chunk(flat: np.ndarray, db: PageFile, n_pages: int, wanted: dict[int, str],
                  text_at: int | None, index: _TextIndex
                  ) -> tuple[dict[int, RawInts], np.ndarray | None]:
    base = np.arange(n_pages, dtype=np.int64) * db.page_size
    if (flat[base] != 0x0D).any():
        raise PagesUnusable("not a table leaf page")
    ncell = _be(flat, base + 3, 2)
    if (8 + 2 * ncell > db.usable).any():
        raise PagesUnusable("cell pointers past the page")
    page = np.repeat(np.arange(n_pages), ncell)
    first = np.repeat(np.cumsum(ncell) - ncell, ncell)
    ptr = _be(flat, base[page] + 8 + 2 * (np.arange(len(page)) - first), 2)
    if len(ptr) and (ptr.min() < 8 or ptr.max() >= db.usable - 3):
        raise PagesUnusable("cell pointer outside the page")
    cell = base[page] + ptr
    payload, n1 = _varint(flat, cell)
    _, n2 = _varint(flat, cell + n1)  # the rowid: pages are already in rowid order
    rec = cell + n1 + n2
    if len(rec) and (payload.max() > db.usable - 35 or payload.min() < 1
                     or (rec + payload > base[page] + db.usable).any()):
        raise PagesUnusable("overflow page or record outside its page")
    header, n3 = _varint(flat, rec)
    if len(rec) and ((header < n3) | (header > payload)).any():
        raise PagesUnusable("record header outside its record")
    n_cols = max([*wanted, -1, text_at if text_at is not None else -1]) + 1
    serial = _serial_types(flat, rec + n3, header - n3, n_cols)
    size = _SIZE_OF[serial]  # int32: a chunk's matrices stay small
    if size.min(initial=0) < 0:
        raise PagesUnusable("reserved serial type")
    ends = np.cumsum(size, axis=1, dtype=np.int32)
    content = rec + header  # where each record's content starts
    if len(rec) and (content + ends[:, -1] > rec + payload).any():
        raise PagesUnusable("record content past its payload")
    # a big-endian 64-bit integer at every byte offset (unaligned reads: one gather a column)
    at_offset = np.ndarray((len(flat) - 7,), dtype=">i8", buffer=flat, strides=(1,))
    ints: dict[int, RawInts] = {}
    for col, name in wanted.items():
        st = serial[:, col]
        if not _INT_OR_NULL[st].all():
            raise PagesUnusable(f"a value of {name} is not an integer")
        # the big-endian integer of 0-8 bytes ending at the content's end, sign-extended
        nbytes = size[:, col]
        raw = at_offset[content + ends[:, col] - 8].astype(np.int64)
        shift = 64 - 8 * np.maximum(nbytes, 1)
        value = (raw << shift) >> shift
        value[nbytes == 0] = 0
        value[st == 9] = 1
        ints[col] = RawInts(value, st == 0)
    text = None
    if text_at is not None:
        st = serial[:, text_at]
        is_text = (st >= 13) & (st & 1 == 1)
        text = np.full(len(st), -1, dtype=np.int64)
        length = size[is_text, text_at].astype(np.int64)
        text[is_text] = index.add(flat, content[is_text] + ends[is_text, text_at] - length,
                                  length)
    return ints, text


def _serial_types(flat: np.ndarray, at: np.ndarray, length: np.ndarray, n_cols: int
                  ) -> np.ndarray:
    """The first ``n_cols`` serial types of each record header (``at``: its first type,
    ``length``: the bytes of types), as an (n, n_cols) matrix. Types are varints, mostly of
    one byte: the columns up to the first with a longer one in some record are read for all
    records at once, the rest column by column."""
    heads = np.lib.stride_tricks.sliding_window_view(flat, n_cols)[at]
    multi = (heads >= 0x80).any(axis=0)
    k = int(multi.argmax()) if multi.any() else n_cols
    serial = np.empty((len(at), n_cols), dtype=np.uint16)
    serial[:, :k] = heads[:, :k]
    pos = at + k
    for j in range(k, n_cols):
        value, n = _varint(flat, pos)
        if value.min(initial=0) < 0 or value.max(initial=0) >= len(_SIZE_OF):
            raise PagesUnusable("a serial type past the sizes known here")  # text of 8 KB
        serial[:, j] = value
        pos += n
    if ((pos - at) > length).any():
        raise PagesUnusable("record shorter than the table")  # ALTER TABLE ADD COLUMN
    return serial


ChunkColumns = Callable[[dict[str, RawInts], "np.ndarray | None"], dict[str, np.ndarray]]


def read_table(db: PageFile, con: sqlite3.Connection, table: str, int_columns: list[str],
               per_chunk: ChunkColumns, text_column: str | None = None
               ) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """``per_chunk``'s columns over every row of ``table`` in rowid order, and the distinct
    texts of ``text_column`` (None without one). ``per_chunk`` gets each chunk's named
    columns (one the table lacks is left out) and its text codes (-1: not text), and returns
    the columns kept — so only those outlive a chunk. Raises PagesUnusable where the page
    reader does not apply."""
    row = con.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone()
    if row is None or type(row[0]) is not int:
        raise PagesUnusable("no root page")
    info = con.execute(f"PRAGMA table_xinfo(\"{table}\")").fetchall()
    if any(r[6] for r in info):  # hidden / generated columns are not stored in order
        raise PagesUnusable("hidden columns")
    position = {r[1]: r[0] for r in info}
    pk = {r[1] for r in info if r[5]}
    wanted = {position[c]: c for c in int_columns if c in position}
    text_at = position.get(text_column) if text_column else None
    if not wanted:
        raise PagesUnusable("none of the columns")  # the row count comes from a column
    if pk & {*wanted.values(), text_column}:
        raise PagesUnusable("an INTEGER PRIMARY KEY column is the rowid, not in the record")
    index = _TextIndex()
    parts: list[dict[str, np.ndarray]] = []
    try:
        with open(db.path, "rb") as f:
            leaves = leaf_pages(f, db, row[0])
            for at in range(0, len(leaves), CHUNK_PAGES):  # a table has one leaf at least
                chunk = leaves[at: at + CHUNK_PAGES]
                ints, text = _decode_chunk(_read_pages(f, db, chunk), db, len(chunk), wanted,
                                           text_at, index)
                parts.append(per_chunk({wanted[c]: v for c, v in ints.items()}, text))
    except (IndexError, ValueError, OverflowError, MemoryError) as exc:
        # a damaged page the checks above let through: SQLite says what is wrong with it
        raise PagesUnusable(f"page does not parse ({type(exc).__name__})") from None
    out: dict[str, np.ndarray] = {}
    for name in list(parts[0]):  # column by column, each chunk's part freed once joined
        out[name] = np.concatenate([p.pop(name) for p in parts])
    return out, (index.labels() if text_at is not None else None)
