"""One escaping function per output kind, for text the workbench did not write itself (kernel
and op names from a trace, device names, labels, errors, paths, an LLM's answer).

- ``md_text``: a Markdown table cell or a phrase inside prose. Line breaks of any kind become
  spaces (a ``\\r`` or ``\\n`` would end a table row or start a heading), other control
  characters and bidirectional overrides are dropped, and the characters that make Markdown
  or HTML (``\\ | ` [ ] < > &``) are backslash-escaped: no raw HTML, no link or image, no code
  span, no cell split. It reads back as the same text in any CommonMark/GFM renderer.
- ``md_foreign``: foreign *Markdown* kept as Markdown (the LLM's answer): its lists and
  emphasis stay, but raw HTML and autolinks are shown as text and images become plain links
  (a remote image in a report is fetched by every viewer that opens it).
- ``term_text``: anything printed to a terminal. Escape sequences (CSI, OSC — window titles,
  OSC 8 links, OSC 52 clipboard writes —, DCS/APC/PM/SOS strings, single ESC commands) and
  C0/C1 control characters are removed; newlines and tabs stay. ``TermStream`` does the same
  for text arriving in chunks (a streamed answer), where a sequence may be cut in two.

Pure functions over strings: no I/O, no textual/rich (the CLI imports this before either).
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls (tab/newline handled by each function), DEL, and the invisible Unicode
# formatting characters that reorder or split what a reader sees.
_INVISIBLE = "\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_INVISIBLE}]")
_LINE_BREAKS = re.compile("\r\n|[\r\n\t\x0b\x0c\x85\u2028\u2029]")
_MD_SPECIAL = re.compile(r"([\\|`\[\]<>&])")

# Terminal escape sequences, complete or cut off at the end of the text.
_ST = "(?:\x07|\x1b\\\\|\x9c)"
_ESCAPES = re.compile(
    "\x1b\\[[0-?]*[ -/]*(?:[@-~]|$)"                   # CSI ... final byte
    "|\x9b[0-?]*[ -/]*(?:[@-~]|$)"                     # 8-bit CSI
    f"|(?:\x1b[\\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:(?!{_ST})[\\s\\S])*(?:{_ST}|$)"  # OSC, DCS...
    "|\x1b[ -/]*(?:[0-~]|$)",                          # ESC + intermediates + final
)
_INTRODUCERS = "\x1b\x9b\x90\x98\x9d\x9e\x9f"
_MAX_PENDING = 4096


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def md_text(value: Any) -> str:
    """``value`` as literal text inside a Markdown table cell or a line of prose."""
    text = _LINE_BREAKS.sub(" ", _ESCAPES.sub("", _text(value)))
    text = _CONTROLS.sub("", text)
    return _MD_SPECIAL.sub(r"\\\1", text)


_IMAGE = re.compile(r"!(?=\s*\[)")


def md_foreign(value: Any) -> str:
    """Foreign Markdown (an LLM's answer) with its layout, without HTML, autolinks or images."""
    text = _text(value).replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text.replace("\u2028", "\n").replace("\u2029", "\n"))
    return _IMAGE.sub(r"\\!", text.replace("<", "&lt;"))


def term_text(value: Any) -> str:
    """``value`` safe to print on a terminal: escape sequences and control characters gone,
    newlines and tabs kept (a lone ``\\r``, which rewrites the line, becomes a newline)."""
    text = _ESCAPES.sub("", _text(value))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


def term_line(value: Any) -> str:
    """``term_text`` on one line: for a name or an error inside a printed line."""
    return " ".join(term_text(value).split("\n"))


class TermStream:
    """``term_text`` over a stream of chunks: an escape sequence cut between two chunks is
    held back until it is complete (then dropped), never printed in halves."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + _text(chunk)
        self._pending = ""
        cut = max(text.rfind(c) for c in _INTRODUCERS)
        if cut >= 0 and _unterminated(text[cut:]):
            # an unterminated OSC may still contain an earlier introducer: hold from the first
            start = _first_open(text)
            self._pending = text[start:][-_MAX_PENDING:] if len(text) - start <= _MAX_PENDING \
                else ""
            text = text[:start]
        if text.endswith("\r"):  # may be the first half of \r\n
            self._pending = "\r" + self._pending
            text = text[:-1]
        return term_text(text)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return term_text(rest)


def _unterminated(tail: str) -> bool:
    match = _ESCAPES.match(tail)
    return match is not None and match.end() == len(tail) and not _complete(match.group())


def _complete(sequence: str) -> bool:
    """Whether a matched sequence ends in its terminator (not cut off by the text's end)."""
    if sequence[:2] in ("\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_") or sequence[0] in "\x90\x98\x9d\x9e\x9f":
        return sequence.endswith(("\x07", "\x1b\\", "\x9c")) and len(sequence) > 2
    if sequence.startswith(("\x1b[", "\x9b")):
        return len(sequence) > (2 if sequence[0] == "\x1b" else 1) and "@" <= sequence[-1] <= "~"
    return len(sequence) >= 2 and "0" <= sequence[-1] <= "~"


def _first_open(text: str) -> int:
    """Where the unterminated sequence at the end of ``text`` begins."""
    position = 0
    while True:
        match = _ESCAPES.search(text, position)
        if match is None:
            return len(text)
        if match.end() == len(text) and not _complete(match.group()):
            return match.start()
        position = match.end()
