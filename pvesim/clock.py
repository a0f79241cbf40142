"""Scaled time: every simulated duration (task runtimes, fence delay, HA loop) goes through here."""

import threading
import time


class Clock:
    def __init__(self, scale: float = 1.0):
        self._scale = max(float(scale), 0.001)
        self._changed = threading.Condition()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        with self._changed:
            self._scale = max(float(value), 0.001)
            self._changed.notify_all()

    def real(self, sim_seconds: float) -> float:
        """Real seconds that `sim_seconds` of simulated time take."""
        return max(sim_seconds, 0) / self._scale

    def sleep(self, sim_seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Sleep for simulated seconds; returns True if `interrupt` was set meanwhile."""
        delay = self.real(sim_seconds)
        if interrupt is not None:
            return interrupt.wait(delay)
        time.sleep(delay)
        return False

    @staticmethod
    def now() -> float:
        return time.time()
