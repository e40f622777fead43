"""TOML for suite files and app settings: the standard library's parser, or the same parser
as the tomli package on Python 3.10 (Ubuntu 22.04's default)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict:
    return tomllib.loads(text)
