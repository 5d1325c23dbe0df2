"""Who speaks now, for the room screen's highlight: a pure rule over each remote site's
audio level (the RMS of its decoded audio over the last ``LEVEL_WINDOW`` seconds, as a
fraction of full scale: room_agents.screen).

Rules (times on one monotonic clock, passed in):

- A site starts speaking when its level reaches ``START_LEVEL`` (about -28 dBFS: a
  voice at a room microphone; a quiet room, and the synthetic microphone's quiet
  tone at about -29 dBFS, stay below it); the loudest such site is the speaker.
- The speaker keeps the highlight while its level stays above ``KEEP_LEVEL`` (lower:
  hysteresis), and for ``HOLD`` seconds after it drops below it, so the pauses
  between words do not blink the border.
- Another site takes the highlight from a speaker still speaking only when it is
  louder by ``TAKE_OVER`` (a factor on the level): two sites talking at once do not
  swap it at every syllable. Once the speaker has fallen silent (below
  ``KEEP_LEVEL``), any site at ``START_LEVEL`` takes it at once.
- A speaker that left (no level any more) loses the highlight at once; nobody at
  ``START_LEVEL`` after the hold: no speaker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

LEVEL_WINDOW: Final = 0.3  # seconds of audio a level is computed over
START_LEVEL: Final = 0.04
KEEP_LEVEL: Final = 0.015
HOLD: Final = 1.0
TAKE_OVER: Final = 2.0


@dataclass(frozen=True, slots=True)
class Speaking:
    """The site highlighted, and when its level was last above ``KEEP_LEVEL``."""

    peer_id: str
    heard_at: float


def speaker(levels: Mapping[str, float], previous: Speaking | None, now: float) -> Speaking | None:
    """The speaker at ``now`` given each site's current level and the previous answer."""
    loudest = max(levels, key=lambda peer: (levels[peer], peer), default=None)
    starting = loudest if loudest is not None and levels[loudest] >= START_LEVEL else None
    if previous is None or previous.peer_id not in levels:
        return Speaking(starting, now) if starting is not None else None
    level = levels[previous.peer_id]
    if level >= KEEP_LEVEL:
        held = Speaking(previous.peer_id, now)
        if starting is not None and levels[starting] >= TAKE_OVER * level:
            return Speaking(starting, now)
        return held
    if starting is not None:
        return Speaking(starting, now)
    if now - previous.heard_at < HOLD:
        return previous
    return None
