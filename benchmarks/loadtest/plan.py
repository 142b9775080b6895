"""The plan: what each request does, decided in advance from a seed.

Most requests are served by a good replica; a share hangs up abruptly mid-body; a share is
sent to the dying replica first, which cuts the body after a random number of bytes (FIN or
RST), with a good replica after it (the body must be resumed) or alone (it must be aborted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from .files import FILES, HANGUP_FILE, SERVED_FILES
from .wire import HEAD_READ

Kind = Literal["normal", "hangup", "dying", "dying-alone"]


@dataclass(frozen=True, slots=True)
class Planned:
    """One request.  ``cut``: body bytes the dying replica sends; ``hang_at``: body bytes a
    hang-up client reads before closing abruptly."""

    index: int
    name: str
    kind: Kind
    cut: int = 0
    how: Literal["fin", "rst"] = "fin"
    hang_at: int = 0

    def path(self) -> str:
        """The path on the server under test; load_app.py reads the plan back from it."""
        query = f"first={self.index % 2}"
        if self.kind in ("dying", "dying-alone"):
            query += f"&dying={self.cut}:{self.how}"
        if self.kind == "dying-alone":
            query += "&alone=1"
        return f"/r/{self.name}?{query}"

    @property
    def servable(self) -> bool:
        """Should the client get the whole file?  (A hang-up stops reading on purpose.)"""
        return self.kind in ("normal", "dying")


def make_plan(
    requests: int, hangup_share: float, dying_share: float, alone_share: float, seed: int
) -> list[Planned]:
    """``requests`` planned requests; ``alone_share`` of the dying ones have no replica
    to resume from, so that aborts are exercised as well as resumes."""
    rng = random.Random(seed)
    plans = []
    for index in range(requests):
        name = SERVED_FILES[index % len(SERVED_FILES)]
        size, draw = len(FILES[name]), rng.random()
        if draw < hangup_share:
            hang_at = rng.randrange(HEAD_READ, len(FILES[HANGUP_FILE]))
            plans.append(Planned(index, HANGUP_FILE, "hangup", hang_at=hang_at))
        elif draw < hangup_share + dying_share:
            kind: Kind = "dying-alone" if rng.random() < alone_share else "dying"
            how: Literal["fin", "rst"] = rng.choice(("fin", "rst"))
            plans.append(Planned(index, name, kind, cut=rng.randrange(1, size), how=how))
        else:
            plans.append(Planned(index, name, "normal"))
    return plans
