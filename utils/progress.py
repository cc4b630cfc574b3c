"""A one-line progress report on stderr: done/total, failures, rate and ETA."""

import sys
import threading
import time
from typing import Optional, TextIO


def format_duration(seconds: float) -> str:
    """A short duration for people: "45s", "3m05s", "2h07m"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class ProgressLine:
    """Redraws one line on a terminal; elsewhere prints a plain line every few seconds.

    A plain stream (a log file, CI) gets its first line after `every_seconds`, then at most one
    every `every_seconds`, and always the line of the last item.
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None, every_seconds: float = 5.0):
        """Start counting.

        Args:
            total: How many items the run will finish.
            stream: Where to write (default stderr).
            every_seconds: How often a non-terminal stream gets a line.
        """
        self.total = max(0, total)
        self.stream = sys.stderr if stream is None else stream
        self.every_seconds = every_seconds
        self.done = 0
        self.failed = 0
        self._started = time.monotonic()
        self._last_print = self._started
        self._drawn_width = 0
        self._lock = threading.Lock()
        self._tty = _is_terminal(self.stream)

    def render(self) -> str:
        """The current progress text, e.g. "40/100 done, 2 failed, 1.6/s, ETA 38s"."""
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.done >= self.total:
            eta = "0s"
        elif rate > 0:
            eta = format_duration((self.total - self.done) / rate)
        else:
            eta = "?"
        rate_text = f"{rate:.1f}" if rate >= 1 else f"{rate:.2f}"
        return f"{self.done}/{self.total} done, {self.failed} failed, {rate_text}/s, ETA {eta}"

    def advance(self, failed: bool = False) -> None:
        """Count one finished item and redraw when it is time."""
        with self._lock:
            self.done += 1
            self.failed += int(bool(failed))
            now = time.monotonic()
            finished = self.done == self.total
            text = self.render()
            if self._tty:
                # Pad over the end of a longer previous line (the ETA can get shorter).
                padding = " " * max(0, self._drawn_width - len(text))
                self.stream.write("\r" + text + padding + ("\n" if finished else ""))
                self._drawn_width = 0 if finished else len(text)
            elif finished or now - self._last_print >= self.every_seconds:
                self.stream.write(text + "\n")
                self._last_print = now
            else:
                return
            self.stream.flush()
