"""Ctrl-C (SIGINT) and SIGTERM during a run: finish the batch, then stop and keep everything.

`stop_on_signals()` installs handlers for the duration of a run and restores the previous
ones afterwards. A handler only records the request (printing or writing files from a signal
handler is not safe); the training loop checks `StopRequest.requested` before every batch.
A second Ctrl-C while the run is already stopping raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by a signal handler; read by the training loop."""

    def __init__(self) -> None:
        self.signal: str | None = None  # e.g. "SIGINT", once one has arrived

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without finishing the batch
        self.signal = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest that SIGINT and SIGTERM set while the block runs (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return
    previous = {sig: signal.signal(sig, request.handle) for sig in SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
