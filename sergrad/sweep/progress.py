"""The sweep's progress line: done / total, failures, jobs in flight, ETA per job kind.

Jobs of different kinds cost very different times (an FL run, a fast attack evaluation and
a CNN evaluation differ by 10-100x), so one rate over all jobs lies. The ETA is

    sum over kinds k of  pending(k) x mean duration of k measured in this sweep  /  slots

and a kind with nothing measured yet is shown as unknown ("ETA >= ..."), never guessed.

>>> p = Progress(slots=2)
>>> p.add_total("fl run", 4); p.add_total("cnn eval", 2)
>>> p.finished("fl run", ok=True, seconds=10.0)
>>> p.eta_seconds()
(15.0, ['cnn eval'])
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Counters per job kind; one line on stderr, updated in place on a terminal."""

    slots: int = 1  # jobs that can run at once (for the ETA)
    stream: object = None  # None = sys.stderr at print time
    total: Counter = field(default_factory=Counter)  # kind -> jobs in this sweep
    done: Counter = field(default_factory=Counter)  # kind -> ok or failed
    failed: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)  # kind -> measured seconds (this sweep)
    measured: Counter = field(default_factory=Counter)  # kind -> jobs measured
    in_flight: Counter = field(default_factory=Counter)  # kind -> running now
    _start: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def add_total(self, kind: str, n: int, *, already_done: int = 0) -> None:
        self.total[kind] += n
        self.done[kind] += already_done

    def finished(self, kind: str, *, ok: bool, seconds: float | None) -> None:
        self.done[kind] += 1
        self.failed[kind] += not ok
        if ok and seconds is not None:
            self.seconds[kind] += seconds
            self.measured[kind] += 1

    def eta_seconds(self) -> tuple[float, list[str]]:
        """(seconds left for the measured kinds, kinds still unmeasured with work left)."""
        left, unknown = 0.0, []
        for kind, total in self.total.items():
            pending = total - self.done[kind]
            if pending <= 0:
                continue
            if not self.measured[kind]:
                unknown.append(kind)
                continue
            left += pending * self.seconds[kind] / self.measured[kind]
        return left / max(1, self.slots), unknown

    def line(self) -> str:
        parts = [f"{k} {self.done[k]}/{t}" for k, t in self.total.items()]
        elapsed = time.monotonic() - self._start
        left, unknown = self.eta_seconds()
        if unknown and not left:
            eta = "ETA --:--"
        else:
            eta = ("ETA >= " if unknown else "ETA ") + hms(left)
        flight = sum(self.in_flight.values())
        running = ", ".join(f"{n} {k}" for k, n in self.in_flight.items() if n)
        return (
            "  ".join(parts)
            + f"  failed {sum(self.failed.values())}"
            + (f"  running {flight} ({running})" if flight else "")
            + f"  elapsed {hms(elapsed)}  {eta}"
        )

    def show(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        stream = self.stream or sys.stderr
        tty = getattr(stream, "isatty", lambda: False)()
        end = "" if tty else "\n"
        print(("\r\x1b[2K" if tty else "") + self.line(), end=end, file=stream, flush=True)

    def close(self) -> None:
        self.show(force=True)
        stream = self.stream or sys.stderr
        if getattr(stream, "isatty", lambda: False)():
            print(file=stream, flush=True)


def hms(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )
