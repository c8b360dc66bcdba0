"""scheduler.SchedulerService/Infer (proto/scheduler.proto) for `replayer serve --scheduler`: a
simulated inference scheduler, so that a priority load has something to be judged against.

Each request waits in one priority queue ordered by tier (1, VIP, first), then by deadline
(earliest first; 0, proto3's "unset", last), then by arrival. --scheduler-workers workers take
requests from it and hold each for its model's service time (--service-ms; a timer, no CPU
burnt), then answer success=true. A request whose deadline has already passed when it arrives,
or when a worker takes it, is answered success=false at once, without service. Every answer
echoes the request's deadline_ns. A request the client gave up on is dropped from the queue
when its turn comes, so it costs no service time.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass

import grpc

from replayer.errors import InputError

SERVICE = "scheduler.SchedulerService"
DEFAULT_SERVICE_MS = "resnet50=10,vit=25"
ANY_MODEL = "*"
MAX_SERVICE_MS = 86_400_000.0
MAX_WORKERS = 100_000
# The seed's tensor is 602 KB; room for a batch of ~100 of them.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_NO_DEADLINE = math.inf


def parse_service_ms(text: str) -> dict[str, float]:
    """'resnet50=10,vit=25' -> {'resnet50': 10.0, 'vit': 25.0} ('*=MS': any other model)."""
    times: dict[str, float] = {}
    for part in text.split(","):
        model, sep, ms = part.strip().partition("=")
        model = model.strip()
        try:
            value = float(ms)
        except ValueError:
            value = None
        if not sep or not model or value is None:
            raise InputError(f"--service-ms {text!r}: {part.strip()!r} is not MODEL=MS "
                             f"(e.g. {DEFAULT_SERVICE_MS}, '*=MS' for any other model)")
        if not 0 <= value <= MAX_SERVICE_MS:     # also refuses nan
            raise InputError(f"--service-ms {text!r}: {model}={ms.strip()}: milliseconds must be "
                             f"between 0 and {MAX_SERVICE_MS:g} (a day)")
        if model in times:
            raise InputError(f"--service-ms {text!r}: {model} is given twice; give each model once")
        times[model] = value
    return times


@dataclass(frozen=True)
class SchedulerConfig:
    service_ms: dict[str, float]
    workers: int

    def service_s(self, model: str) -> float | None:
        ms = self.service_ms.get(model, self.service_ms.get(ANY_MODEL))
        return None if ms is None else ms / 1000.0


def check_workers(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"--scheduler-workers {workers}: must be between 1 and {MAX_WORKERS}")


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


class Scheduler:
    """The queue and its workers; start() in the server's event loop, stop() when done.
    stats gets 'scheduler_served', 'scheduler_expired_queue', 'scheduler_expired_arrival'."""

    def __init__(self, config: SchedulerConfig, stats: dict):
        from replayer.proto import scheduler_pb2
        self.pb = scheduler_pb2
        self.config = config
        self.stats = stats
        self.queue: asyncio.PriorityQueue | None = None
        self.order = itertools.count()       # arrival order breaks ties
        self.tasks: list[asyncio.Task] = []
        for key in ("scheduler_served", "scheduler_expired_queue", "scheduler_expired_arrival"):
            stats.setdefault(key, 0)

    def start(self) -> None:
        self.queue = asyncio.PriorityQueue()
        self.tasks = [asyncio.ensure_future(self._work(k)) for k in range(self.config.workers)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _answer(self, deadline_ns: int, success: bool, message: str):
        return self.pb.InferResponse(deadline_ns=deadline_ns, success=success, message=message)

    async def infer(self, request, context: grpc.aio.ServicerContext):
        arrived = time.time_ns()
        self.stats["requests"] = self.stats.get("requests", 0) + 1
        deadline = request.deadline_ns
        service_s = self.config.service_s(request.model_name)
        if service_s is None:
            known = ", ".join(sorted(self.config.service_ms))
            return self._answer(deadline, False, f"unknown model {request.model_name!r}: this "
                                f"target serves {known} (replayer serve --service-ms)")
        if 0 < deadline < arrived:
            self.stats["scheduler_expired_arrival"] += 1
            return self._answer(deadline, False, f"deadline passed {_ms(arrived - deadline)} "
                                "before the request arrived")
        answer = asyncio.get_running_loop().create_future()
        key = deadline if deadline > 0 else _NO_DEADLINE
        self.queue.put_nowait((request.tier, key, next(self.order), answer, deadline, service_s,
                               arrived))
        return await answer      # cancelled with the call when the client gives up

    async def _work(self, worker: int) -> None:
        while True:
            _, _, _, answer, deadline, service_s, arrived = await self.queue.get()
            if answer.done():               # the client gave up while it waited
                continue
            taken = time.time_ns()
            if 0 < deadline < taken:
                self.stats["scheduler_expired_queue"] += 1
                answer.set_result(self._answer(
                    deadline, False, f"deadline passed {_ms(taken - deadline)} before service "
                    f"(queued {_ms(taken - arrived)})"))
                continue
            await asyncio.sleep(service_s)
            if not answer.done():
                self.stats["scheduler_served"] += 1
                answer.set_result(self._answer(
                    deadline, True, f"served by worker {worker} in {_ms(time.time_ns() - taken)} "
                    f"after {_ms(taken - arrived)} queued"))

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Infer": grpc.unary_unary_rpc_method_handler(
                self.infer, request_deserializer=self.pb.InferRequest.FromString,
                response_serializer=self.pb.InferResponse.SerializeToString),
        })
