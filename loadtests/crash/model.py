"""The people of the crash replay: presets, and the seeded model of what each person does.

The model (every random draw comes from `random.Random` seeded with the run's seed, one stream per
person, so a run repeats the same choices in the same order):

- **Action mix.** Each person deals actions from a shuffled deck of ten cards: 4 timeline pages,
  3 chat messages, 1 profile view, 1 text post, 1 reaction. The mix is exact over every ten
  actions, the order is random. A timeline page follows the previous page's cursor (scrolling);
  one page in four starts again from the top (a refresh), as does the end of the timeline.
- **Think time.** Between two actions a person waits an exponential time of mean `think_s`,
  clipped to [`think_s` / 5, 5 x `think_s`] (people glance, scroll, read; nobody waits forever).
- **Comings and goings.** From the start, every `cycle_s` seconds the next person of a seeded rotation (uploaders
  excepted) closes their socket, stays away `away_s` (longer than the hub's presence grace, so
  their friends see the leave), then reconnects, logging in again with their password on every
  other return (an app reopened; the others resume the session): that gives the log_in and
  presence_seen samples of every phase, at a pace per person under the platform's 10 log-ins
  per username per 5 minutes.
- **Friends and rooms.** Each person follows `follows` others: their ring neighbours, then seeded
  random ones. Chat rooms are groups of up to `room_size` consecutive people (rooms of a ring).
- **Uploads.** The first `uploads` people upload one phone-like video each (`video.py`), the k-th
  starting `stagger_s` x k seconds into the upload phase (one tester, then a second one), each
  paced to `uplink_mbps` / `uploads` so that together they fill the uplink and no more.
- **Idle people.** The last `idle` people (the `1000` preset's 900) log in and hold a socket
  (their friends see them online, their rooms count them) and do nothing else. They are opened
  from this one process: spreading them over several processes is not built yet.
- **Phases.** `before` lasts `before_s` (light actions only); `during` runs from the first upload's
  first byte until every upload has finished (upgraded, failed or given up), at least
  `min_during_s`, at most what `duration_s` leaves after `after_s`; `after` lasts `after_s`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

FOLLOWS = 6
ROOM_SIZE = 5
DECK: tuple[str, ...] = ("timeline_page",) * 4 + ("chat",) * 3 + ("profile", "post", "react")
REFRESH_EVERY = 4


@dataclass(frozen=True)
class Clip:
    """A phone-like video to generate: coded size, codec, display rotation and target size."""

    width: int
    height: int
    fps: int
    codec: str        # "h264" or "hevc"
    rotate: int       # display rotation in degrees: 0, 90, 180, 270
    mbps: float       # video bitrate, phone-like (a raw camera file, not a streaming rendition)
    seconds: float

    @property
    def megabytes(self) -> float:
        return self.mbps * self.seconds / 8

    @property
    def key(self) -> str:
        return (f"{self.width}x{self.height}p{self.fps}_{self.codec}_rot{self.rotate}_"
                f"{self.mbps:g}mbps_{self.seconds:g}s")


# Real presets: 100-300 MB files, the kinds phones write (portrait 1080p with a rotation flag, 4K HEVC).
PHONE_CLIPS: tuple[Clip, ...] = (
    Clip(1920, 1080, 30, "h264", 90, 20.0, 60.0),     # 150 MB, portrait phone
    Clip(3840, 2160, 30, "hevc", 0, 40.0, 40.0),      # 200 MB, 4K HEVC landscape
    Clip(1920, 1080, 30, "hevc", 270, 24.0, 40.0),    # 120 MB, portrait HEVC
    Clip(3840, 2160, 30, "h264", 90, 50.0, 45.0),     # 281 MB, 4K portrait
)
SMOKE_CLIPS: tuple[Clip, ...] = (Clip(1920, 1080, 30, "h264", 90, 10.0, 3.0),)  # ~3.7 MB


@dataclass(frozen=True)
class Config:
    """Every knob of a run (written whole into the result's `config`)."""

    preset: str
    users: int
    uploads: int
    uplink_mbps: float
    duration_s: float
    before_s: float
    after_s: float
    min_during_s: float
    think_s: float
    cycle_s: float
    away_s: float
    stagger_s: float
    follows: int
    room_size: int
    delivery_timeout_s: float
    media_wait_s: float
    clips: tuple[Clip, ...] = field(default=PHONE_CLIPS)
    seed: int = 24
    idle: int = 0     # of `users`, how many only hold a socket (the last ones): no actions, no comings and goings
    hubs: int = 1
    ingest: int = 1
    workers: int = 1

    @property
    def active(self) -> int:
        return max(2, self.users - self.idle)

    @property
    def during_cap_s(self) -> float:
        return max(self.min_during_s, self.duration_s - self.before_s - self.after_s)

    def clip_for(self, upload_index: int) -> Clip:
        return self.clips[upload_index % len(self.clips)]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clips"] = [asdict(c) | {"megabytes": round(c.megabytes, 1)} for c in self.clips]
        return data


_COMMON = dict(min_during_s=10.0, delivery_timeout_s=5.0, room_size=ROOM_SIZE, follows=FOLLOWS, away_s=4.0)
PRESETS: dict[str, Config] = {
    # The story: five active testers, two raw videos, one box behind a 20 Mbit/s uplink.
    "beta": Config("beta", users=5, uploads=2, uplink_mbps=20, duration_s=420, before_s=45, after_s=45,
                   think_s=1.5, cycle_s=8.0, stagger_s=10.0, media_wait_s=180.0, **_COMMON),  # type: ignore[arg-type]
    "50": Config("50", users=50, uploads=4, uplink_mbps=50, duration_s=600, before_s=60, after_s=60,
                 think_s=3.0, cycle_s=4.0, stagger_s=5.0, media_wait_s=240.0, **_COMMON),  # type: ignore[arg-type]
    "200": Config("200", users=200, uploads=10, uplink_mbps=100, duration_s=900, before_s=60, after_s=60,
                  think_s=5.0, cycle_s=2.0, stagger_s=3.0, media_wait_s=300.0, **_COMMON),  # type: ignore[arg-type]
    "1000": Config("1000", users=1000, idle=900, uploads=10, uplink_mbps=100, duration_s=900, before_s=60,
                   after_s=60, think_s=5.0, cycle_s=1.0, stagger_s=3.0, media_wait_s=300.0, **_COMMON),  # type: ignore[arg-type]
}
# `beta` shortened to about 20 s for the test suite: one small upload, brisk people.
SMOKE = replace(PRESETS["beta"], preset="smoke", uploads=1, duration_s=20, before_s=6, after_s=4, min_during_s=5,
                think_s=0.3, cycle_s=1.5, away_s=3.0, stagger_s=0.0, media_wait_s=30.0, clips=SMOKE_CLIPS)


def follow_graph(users: int, follows: int, seed: int) -> dict[int, list[int]]:
    """Who follows whom: ring neighbours first (everyone has friends), then seeded random picks."""
    rng = random.Random(f"{seed}:graph")
    graph: dict[int, list[int]] = {}
    for i in range(users):
        wanted = min(follows, users - 1)
        chosen: list[int] = []
        for step in (1, -1, 2, -2):
            j = (i + step) % users
            if j != i and j not in chosen and len(chosen) < wanted:
                chosen.append(j)
        while len(chosen) < wanted:
            j = rng.randrange(users)
            if j != i and j not in chosen:
                chosen.append(j)
        graph[i] = chosen
    return graph


def friends_of(graph: dict[int, list[int]]) -> dict[int, set[int]]:
    """Follows either way: whose presence each person sees."""
    friends: dict[int, set[int]] = {i: set(v) for i, v in graph.items()}
    for i, followed in graph.items():
        for j in followed:
            friends[j].add(i)
    return friends


def room_groups(users: int, room_size: int) -> list[list[int]]:
    """Rooms of up to `room_size` consecutive people; a last person alone joins the previous room."""
    groups = [list(range(start, min(users, start + room_size))) for start in range(0, users, room_size)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2].extend(groups.pop())
    return groups


class Behaviour:
    """One person's seeded choices: the next action and the pause before it."""

    def __init__(self, index: int, config: Config) -> None:
        self.rng = random.Random(f"{config.seed}:person:{index}")
        self.think_s = config.think_s
        self._deck: list[str] = []
        self._pages = 0

    def next_action(self) -> str:
        if not self._deck:
            self._deck = list(DECK)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def think(self) -> float:
        return min(5 * self.think_s, max(self.think_s / 5, self.rng.expovariate(1 / self.think_s)))

    def refresh(self) -> bool:
        """Whether this timeline page starts from the top again."""
        self._pages += 1
        return self._pages % REFRESH_EVERY == 1

    def pick(self, choices: list[Any]) -> Any:
        return choices[self.rng.randrange(len(choices))]


def cycle_order(config: Config) -> list[int]:
    """The seeded rotation of people who come and go (uploaders stay: their socket carries media events)."""
    people = list(range(config.uploads, config.active)) or list(range(config.active))
    random.Random(f"{config.seed}:cycle").shuffle(people)
    return people
