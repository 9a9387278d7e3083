"""The progress line a run draws on stderr: one line, redrawn in place on a terminal, a new
line every few seconds elsewhere (a log file should not fill with carriage returns)."""

from __future__ import annotations

import sys
from typing import TextIO

from chatsvc.simulate.journal import Journal

BAR_WIDTH = 20
# Off a terminal: one line per this many seconds.
PLAIN_EVERY_S = 5.0


class ProgressLine:
    def __init__(self, duration_s: float, stream: TextIO = sys.stderr) -> None:
        self.duration_s = duration_s
        self.stream = stream
        self.live = stream.isatty()
        self._last_plain = -PLAIN_EVERY_S

    def __call__(self, journal: Journal, now: float, phase: str) -> None:
        done = min(1.0, now / self.duration_s) if self.duration_s else 1.0
        filled = int(done * BAR_WIDTH)
        patients = journal.patients
        waiting = sum(
            1
            for p in patients
            if p.joined_s is not None and p.assigned_s is None and p.left_s is None
        )
        text = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {now:5.0f}/{self.duration_s:g} s "
            f"{phase:<8} arrived {len(patients)}  waiting {waiting}  "
            f"in consultation {journal.open_consultations}  "
            f"served {len(journal.consultations)}  "
            f"abandoned {sum(1 for p in patients if p.left_s is not None)}  "
            f"errors {sum(journal.errors.values())}"
        )
        if self.live:
            end = "\n" if phase == "done" else ""
            self.stream.write("\r\x1b[K" + text + end)
        elif phase == "done" or now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            self.stream.write(text + "\n")
        self.stream.flush()
