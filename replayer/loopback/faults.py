"""Which fault a request of the built-in target gets: by its path (HTTP) or its name field
(gRPC), or by share of requests (`replayer serve --fault KIND[=ARG]:SHARE[@PATH]`).

Each request draws a number u from a seeded generator (--fault-seed) and gets the first rule
(among those whose path prefix matches) whose cumulative share exceeds u: draws are independent,
as real faults are (a retried request can fail again), and the same seed gives the same
sequence of draws.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from replayer.errors import InputError

# kind -> (protocols it applies to, what its =ARG means, whether ARG is required)
HTTP_KINDS = {
    "delay": "milliseconds before the answer",
    "status": "HTTP status of the answer (default 503)",
    "reset": "",
    "hang": "",
    "slow": "bytes per second of a 100-byte body sent byte by byte (default 10)",
    "truncate": "announced body length; half of it is sent, then the connection closes "
                "(default 1024)",
    "bytes": "body length, streamed in chunks (default 1048576)",
    "goaway": "",
}
GRPC_KINDS = {
    "delay": "milliseconds before the answer",
    "hang": "",
    "unavailable": "",
    "deadline": "",
    "grpc-code": "gRPC status code of the answer (1-16)",
}
ARG_REQUIRED = {"delay", "grpc-code"}
DEFAULT_ARG = {"status": 503, "slow": 10, "truncate": 1024, "bytes": 1 << 20}
KINDS = sorted(set(HTTP_KINDS) | set(GRPC_KINDS))


@dataclass(frozen=True)
class FaultRule:
    kind: str
    share: float
    arg: int | None = None
    path: str | None = None        # path prefix the rule is limited to (None: every path)

    @property
    def http(self) -> bool:
        return self.kind in HTTP_KINDS

    @property
    def grpc(self) -> bool:
        return self.kind in GRPC_KINDS


def parse_fault(text: str) -> FaultRule:
    """KIND[=ARG]:SHARE[@PATH], e.g. reset:0.2, status=503:0.1, delay=500:0.3@/api."""
    where = f"--fault {text!r}"
    spec, at, path = text.partition("@")
    if at and not path.startswith("/"):
        raise InputError(f"{where}: the path after @ must start with '/', e.g. reset:0.2@/api")
    head, colon, share_text = spec.rpartition(":")
    if not colon or not head:
        raise InputError(f"{where}: expected KIND[=ARG]:SHARE[@PATH], e.g. reset:0.2 or "
                         "status=503:0.1")
    kind, eq, arg_text = head.partition("=")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise InputError(f"{where}: unknown fault {kind!r}; one of {', '.join(KINDS)}")
    try:
        share = float(share_text)
    except ValueError:
        raise InputError(f"{where}: share {share_text!r} is not a number between 0 and 1") from None
    if not 0.0 <= share <= 1.0:
        raise InputError(f"{where}: share {share_text} must be between 0 and 1")
    arg = None
    if eq:
        try:
            arg = int(arg_text)
        except ValueError:
            raise InputError(f"{where}: {kind}={arg_text!r}: expected a whole number") from None
        if arg < 0:
            raise InputError(f"{where}: {kind}={arg}: must be 0 or more")
    elif kind in ARG_REQUIRED:
        raise InputError(f"{where}: {kind} needs a value: {kind}=N:SHARE "
                         f"({(HTTP_KINDS.get(kind) or GRPC_KINDS[kind])})")
    if kind == "status" and arg is not None and not 100 <= arg <= 599:
        raise InputError(f"{where}: status={arg}: must be an HTTP status (100-599)")
    if kind == "grpc-code" and not 1 <= arg <= 16:
        raise InputError(f"{where}: grpc-code={arg}: must be a gRPC error code (1-16)")
    if kind in ("slow",) and arg == 0:
        raise InputError(f"{where}: slow=0: must be at least 1 byte per second")
    return FaultRule(kind, share, arg if arg is not None else DEFAULT_ARG.get(kind), path or None)


def check_shares(rules: list[FaultRule]) -> None:
    for proto, pick in (("HTTP", lambda r: r.http), ("gRPC", lambda r: r.grpc)):
        total = sum(r.share for r in rules if pick(r) and r.path is None)
        if total > 1.0 + 1e-9:
            raise InputError(f"--fault: the {proto} shares add up to {total:g}; at most 1")


class ShareChooser:
    """The rule (or None) for the next request of one protocol."""

    def __init__(self, rules: list[FaultRule], seed: int = 1):
        self.rules = list(rules)
        self.random = random.Random(seed).random

    def __bool__(self) -> bool:
        return bool(self.rules)

    def pick(self, path: str) -> FaultRule | None:
        u = self.random()
        cum = 0.0
        for rule in self.rules:
            if rule.path is not None and not path.startswith(rule.path):
                continue
            cum += rule.share
            if u < cum:
                return rule
        return None
