"""What the Triton kernel modules share: is triton importable, is this process running
Triton's interpreter, and a fix that lets the interpreter run under numpy >= 2.4.

The interpreter (TRITON_INTERPRET=1) is a property of the process: ``triton.jit`` decides
between compiler and interpreter when a function is decorated, triton.language's own jit
functions included, so the CPU parity tests run the kernels in a child process started with
that variable (tests/unit/triton_interpret_checks.py).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any


@functools.cache
def has_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a None entry in sys.modules: hidden on purpose
        return False


def interpreter_active() -> bool:
    """True when kernels defined now run in Triton's interpreter (on CPU tensors). Its bf16
    ``tl.dot`` returns garbage (triton 3.6), so kernels run their dots in fp32 there."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    _index_shim_for_numpy_2_4()
    return True


@functools.cache
def _index_shim_for_numpy_2_4() -> None:
    """triton 3.6's interpreter turns a scalar into a loop bound with ``int(array)`` on a
    one-element 1-D array, which numpy >= 2.4 refuses ("only 0-dimensional arrays can be
    converted"): every ``range(start, end)`` with runtime bounds failed. Take the element."""
    from triton.runtime import interpreter

    original: Any = interpreter._patch_lang_tensor

    def patched(tensor: Any, scope: Any) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__",
                       lambda self: int(self.handle.data.reshape(-1)[0]))

    interpreter._patch_lang_tensor = patched
