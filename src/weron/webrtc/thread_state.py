"""Python thread states for a native library's long-lived threads, kept instead of rebuilt.

A callback from a thread Python did not start (libdatachannel's "RTC worker" pool) needs a
thread state. The bindings get one with ``PyGILState_Ensure`` and drop it with the matching
``PyGILState_Release``: when that thread had none, Python creates one and destroys it again,
for every single callback (an mmap/munmap pair, measured with strace), which is a good part
of a round trip's cost. One extra ``PyGILState_Ensure`` on such a thread, never released,
keeps its state alive: later callbacks only take and drop the GIL.

Safe because:

- only threads with one of the given names are kept: a fixed pool that lives until the
  process exits (libdatachannel's outlives every connection: checked with its 2026.1 wheel);
  other threads, e.g. short-lived ones, keep the default behaviour, so no state is left
  behind by a thread that ends (a kept thread that did end would leave its state until
  interpreter shutdown, no longer);
- the GIL is not held between callbacks (the bindings' ``PyGILState_Release`` still gives it
  back: the count only decides whether the state is destroyed), so no lock order changes;
- interpreter shutdown frees every remaining thread state, these included; callbacks must not
  arrive after that, which holds already: connections are closed at exit (or, where a close
  is still under way, the process ends with ``os._exit``, skipping that shutdown).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Collection
from typing import Final

_NAME_BYTES: Final = 64  # pthread names are at most 16 bytes on Linux, 64 on macOS

_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.argtypes = []
_ensure.restype = ctypes.c_int


def _load_getname() -> Callable[[int, ctypes.Array[ctypes.c_char], int], int] | None:
    try:
        # The process's own symbols include the C library's (no ctypes.util.find_library:
        # it runs ldconfig, which costs start-up time).
        getname = ctypes.CDLL(None).pthread_getname_np
    except (OSError, AttributeError):
        return None
    getname.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    getname.restype = ctypes.c_int
    return getname


_getname = _load_getname()
_kept: set[int] = set()  # threading.get_ident() of the threads whose state is kept


def thread_name() -> str | None:
    """The calling thread's native name (as ``ps -L`` shows it), if the platform tells."""
    if _getname is None:
        return None
    buffer = ctypes.create_string_buffer(_NAME_BYTES)
    if _getname(threading.get_ident(), buffer, _NAME_BYTES) != 0:
        return None
    return buffer.value.decode(errors="replace")


def keep_thread_state(names: Collection[str]) -> None:
    """Call first thing in a native callback: on a thread named one of ``names``, keep its
    Python thread state for the life of the thread. A set lookup once kept; other threads
    (rare here) pay for a look at their name each time."""
    ident = threading.get_ident()
    if ident in _kept:
        return
    if thread_name() in names:
        _ensure()  # never released, on purpose
        _kept.add(ident)


def kept_threads() -> frozenset[int]:
    """Idents of the threads whose state is kept (for tests and diagnostics)."""
    return frozenset(_kept)
