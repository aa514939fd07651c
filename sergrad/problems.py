"""Collect per-file problems, summarise them, and make them fatal under --strict.

>>> p = Problems(strict=False)
>>> p.add("a.wav", "empty file")
>>> p.count
1
>>> print(p.summary())
1 file(s) skipped:
  a.wav: empty file
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sergrad.errors import DataError


@dataclass
class Problems:
    strict: bool = False
    shown: int = 5
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{path}: {reason}")
        self.items.append((str(path), reason))

    @property
    def count(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        if not self.items:
            return "no problems"
        lines = [f"{self.count} file(s) skipped:"]
        lines += [f"  {p}: {r}" for p, r in self.items[: self.shown]]
        if self.count > self.shown:
            lines.append(f"  ... and {self.count - self.shown} more")
        return "\n".join(lines)
