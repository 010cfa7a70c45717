"""SIGINT and SIGTERM during a run: recorded, not acted on mid-batch; handlers restored afterwards."""

import os
import signal
import threading

import pytest

from seqbench.training.signals import stop_on_signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_is_recorded_and_the_handlers_are_restored(signum):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals() as stop:
        assert not stop.requested and not stop()
        os.kill(os.getpid(), signum)
        assert stop.requested and stop() and stop.signal == signal.Signals(signum).name
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_second_ctrl_c_aborts_at_once():
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker():
        with stop_on_signals() as stop:
            seen.append((stop.requested, signal.getsignal(signal.SIGTERM)))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(False, before)]
