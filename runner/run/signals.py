"""SIGTERM/SIGINT: a backup at the next step boundary, then a resumable exit (143 / 130); a 2nd SIGINT exits at once."""

from __future__ import annotations

import logging
import signal
import threading

from runner.kernel.errors import SIGNAL_NAMES as NAMES

log = logging.getLogger(__name__)


class Preemption:
    """Context manager: while active, SIGTERM/SIGINT only set `requested`; the backup callback acts on it.

    Handlers are installed explicitly (not left to the default action), so this also works as PID 1 in a
    container, where the kernel ignores signals that have no handler.
    """

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # Python allows handlers there only
            for signum in NAMES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type, exc, tb):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        outer = getattr(self._previous.get(self.requested), "__self__", None)
        self._previous = {}
        if self.requested is not None and exc_type is None and isinstance(outer, Preemption):
            # a signal after the last check (the last epoch, the final artifacts) stays pending for the
            # orchestration around this run, such as the next fold of a cross-validation
            outer.requested = outer.requested or self.requested
        return False

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now; atomic writes leave the last backup intact
        if self.requested is None:
            self.requested = signum
            log.warning(f"dlrun: {NAMES[signum]} received; writing a backup at the next step boundary "
                        "(press Ctrl-C again to stop at once)")
