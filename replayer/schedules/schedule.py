"""The columnar schedule: one row per request, decided before the run starts.

Columns (docs/architecture.md): t_ns (int64, intended send time from the run's start), target
(int32, index into `targets`), cls (int16, index into `classes`, -1 for none), payload (int32,
index into `payloads`, -1: the target's default). A run shares its columns with its workers:
12 bytes per request, 18 with classes and payloads (`nbytes` counts the columns a schedule
has). A request's event id is its row number. The class and payload tables
(replayer.schedules.content) travel with the schedule.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from replayer.schedules.content import Payload, RequestClass

NS_PER_US = 1_000
NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S


@dataclass
class Schedule:
    t_ns: np.ndarray                      # int64, sorted ascending
    target: np.ndarray                    # int32
    targets: list[str]                    # endpoint names, indexed by `target`
    cls: np.ndarray | None = None         # int16 or None (no classes)
    classes: list[RequestClass] = field(default_factory=list)   # names (str) are taken too
    payload: np.ndarray | None = None     # int32 or None (every request its target's default)
    payloads: list[Payload] = field(default_factory=list)
    content_seed: int = 0                 # of the payloads' random fields
    # What a generator says of its schedule for analysis (a workload's rules, say): JSON,
    # carried to run.json as "schedule_meta".
    meta: dict = field(default_factory=dict)
    unit_ns: int = MINUTE_NS              # length of one trace unit (minute or second)
    source: str = ""
    # Shared segments the columns live in, when a decoder wrote them there (replayer.run.shm):
    # kept alive with the schedule so a run shares them as they are.
    segments: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        self.t_ns = np.ascontiguousarray(self.t_ns, dtype=np.int64)
        self.target = np.ascontiguousarray(self.target, dtype=np.int32)
        if self.t_ns.shape != self.target.shape:
            raise ValueError("t_ns and target must have the same length")
        if self.cls is not None:
            self.cls = np.ascontiguousarray(self.cls, dtype=np.int16)
        if self.payload is not None:
            self.payload = np.ascontiguousarray(self.payload, dtype=np.int32)
        self.classes = [RequestClass(c) if isinstance(c, str) else c for c in self.classes]
        for name, column in (("cls", self.cls), ("payload", self.payload)):
            if column is not None and column.shape != self.t_ns.shape:
                raise ValueError(f"{name} and t_ns must have the same length")

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.t_ns, self.target, self.cls, self.payload)
                   if a is not None)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def end_ns(self) -> int:
        """Time of the last request (0 for an empty schedule)."""
        return int(self.t_ns[-1]) if len(self) else 0

    def is_sorted(self) -> bool:
        return bool(len(self) < 2 or np.all(self.t_ns[1:] >= self.t_ns[:-1]))

    def sorted(self) -> "Schedule":
        """Stable sort by time: requests at the same instant keep their order."""
        if self.is_sorted():
            return self
        order = np.argsort(self.t_ns, kind="stable")
        return self.take(order)

    def take(self, rows: np.ndarray) -> "Schedule":
        return Schedule(
            t_ns=self.t_ns[rows], target=self.target[rows], targets=self.targets,
            cls=None if self.cls is None else self.cls[rows],
            classes=self.classes, unit_ns=self.unit_ns, source=self.source,
            payload=None if self.payload is None else self.payload[rows], payloads=self.payloads,
            content_seed=self.content_seed, meta=self.meta,
        )

    def before(self, end_ns: int) -> "Schedule":
        """The requests intended before end_ns (a prefix: the schedule is sorted)."""
        n = int(np.searchsorted(self.t_ns, end_ns, side="left"))
        if n == len(self):
            return self
        return self.take(slice(0, n))


def worker_shards(workers: int, node: int = 0, nodes: int = 1) -> list[tuple[int, int]]:
    """(first, stride) for each worker of node `node` out of `nodes` replaying one schedule."""
    stride = workers * nodes
    return [(node + k * nodes, stride) for k in range(workers)]
