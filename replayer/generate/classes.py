"""`replayer gen classes`: the priority inference load of the MLPerf-LoadGen seed
(docs/inference.md) as a schedule.

Nine request classes, tier 1-3 x urgent (100 ms) / normal (500 ms) / relaxed (2000 ms); a
workload distribution gives each its share of --total-qps; each class is an independent
Poisson process (as one LoadGen Server-scenario instance per class), run until both the
minimum duration and the minimum query count are met, as LoadGen does. Each request is a
scheduler.InferRequest (proto/scheduler.proto): its tier, a deadline filled at send time
(send time + its class's SLO), its model (urgent: resnet50; normal and relaxed: 70/30
resnet50/vit, seeded), a fresh random float32 [1, 3, 224, 224] tensor and the shape.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.options import opt
from replayer.schedules.columnar import write_schedule
from replayer.schedules.content import Body, Payload, RequestClass, varint
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.transports import split_endpoint

TIERS = (1, 2, 3)
SLO_NS = {"urgent": 100_000_000, "normal": 500_000_000, "relaxed": 2_000_000_000}
# The seed's nine classes, in its order.
CLASSES = [(tier, slo) for tier in TIERS for slo in SLO_NS]
MODELS = {"urgent": (("resnet50", 1.0),),
          "normal": (("resnet50", 0.7), ("vit", 0.3)),
          "relaxed": (("resnet50", 0.7), ("vit", 0.3))}
INPUT_SHAPE = (1, 3, 224, 224)
TENSOR_FLOATS = int(np.prod(INPUT_SHAPE))
INFER_METHOD = "/scheduler.SchedulerService/Infer"
CALL_TIMEOUT_NS = 5 * NS_PER_S        # the seed's stub.Infer(..., timeout=5.0)
MIN_CLASS_QPS = 0.01                  # classes below it are skipped, as the seed does
# Fractions of the total QPS per (tier, slo), the seed's WORKLOAD_DISTRIBUTIONS.
WORKLOADS = {
    "balanced": [0.05, 0.10, 0.15, 0.10, 0.15, 0.10, 0.10, 0.15, 0.10],
    "urgent_heavy": [0.20, 0.10, 0.05, 0.15, 0.10, 0.05, 0.15, 0.10, 0.10],
    "batch_heavy": [0.05, 0.05, 0.20, 0.05, 0.10, 0.20, 0.05, 0.10, 0.20],
}
# LoadGen's Server scenario judges the 99th percentile with early stopping at 99% confidence.
TARGET_PERCENTILE = 0.99
CONFIDENCE = 0.99


@dataclass
class ClassesGenOptions:
    """Write the priority inference load of the MLPerf-LoadGen seed as a schedule: 9 classes
    (tier 1-3 x urgent 100 ms / normal 500 ms / relaxed 2000 ms), each an independent Poisson
    process at its share of --total-qps, run until the minimum duration and the minimum query
    count of every class are met; every request a scheduler.InferRequest with its deadline set
    at send time and a fresh random tensor. Replay it with `replayer run -traceFile FILE`
    (gRPC, the scheduler's Infer method); `replayer report` then gives SLO attainment per
    class and the MLPerf-style verdict (docs/inference.md).

    examples:
      replayer gen classes --total-qps 20 --workload balanced -o balanced_20qps.parquet
      replayer run -traceFile balanced_20qps.parquet --local-target
          against the built-in target's scheduler (replayer serve --scheduler)"""

    total_qps: float = opt(30.0, "total queries per second over all classes")
    duration_ms: int = opt(60000, "minimum duration in ms (LoadGen's min_duration_ms): each "
                           "class runs until its last query is scheduled after it")
    workload: str = opt("balanced", "the classes' shares of the total QPS: balanced, "
                        "urgent_heavy, batch_heavy, or a JSON file mapping \"TIER,SLO\" (e.g. "
                        "\"1,urgent\") to a fraction", metavar="NAME|FILE.json")
    min_query_count: int = opt(100, "minimum queries per class (LoadGen's min_query_count)")
    seed: int = opt(1, "seed of the arrivals, the models and the tensors")
    scheduler_url: str = opt("localhost:50051", "the scheduler's gRPC endpoint HOST:PORT "
                             "(--local-target sends it to the built-in one)", metavar="HOST:PORT")
    output: str = opt("classes.parquet", "schedule to write (.parquet, .arrow)", short="o",
                      metavar="PATH")
    no_tensor: bool = opt(False, "send no input tensor (an empty input_tensor field): for "
                          "measuring the scheduler alone")

    def __post_init__(self):
        if not 0 < self.total_qps <= 10_000_000:
            raise InputError(f"--total-qps {self.total_qps}: must be above 0 (and at most 1e7)")
        if not 0 < self.duration_ms <= 7 * 86_400_000:
            raise InputError(f"--duration-ms {self.duration_ms}: must be between 1 and a week")
        if not 1 <= self.min_query_count <= 100_000_000:
            raise InputError(f"--min-query-count {self.min_query_count}: must be 1 or more")
        if not 0 <= self.seed < 1 << 63:
            raise InputError(f"--seed {self.seed}: must be a number from 0 to 2^63-1")
        try:
            host, port = split_endpoint(self.scheduler_url)
        except ValueError as exc:
            raise InputError(f"--scheduler-url {self.scheduler_url!r}: {exc}; write it as "
                             "HOST:PORT") from None
        if port is None:
            raise InputError(f"--scheduler-url {self.scheduler_url!r}: no port; write it as "
                             "HOST:PORT (the seed's default is localhost:50051)")


def workload_shares(workload: str) -> list[float]:
    """The shares of the nine classes, in CLASSES order: a named distribution, or a JSON file
    {"TIER,SLO": fraction} (classes it leaves out get none)."""
    if workload in WORKLOADS:
        return list(WORKLOADS[workload])
    path = Path(workload)
    if path.suffix.lower() != ".json":
        raise InputError(f"--workload {workload!r}: not one of {', '.join(WORKLOADS)} nor a "
                         ".json file")
    from replayer.jsonfile import read_json
    data = read_json(path, "workload", "give --workload balanced, urgent_heavy, batch_heavy or an existing .json file")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: a workload is a JSON object mapping \"TIER,SLO\" (e.g. "
                         "\"1,urgent\") to its fraction of the total QPS")
    shares = [0.0] * len(CLASSES)
    for key, value in data.items():
        tier_text, _, slo = str(key).partition(",")
        slo = slo.strip()
        try:
            index = CLASSES.index((int(tier_text), slo))
        except ValueError:
            raise InputError(f"{path}: key {key!r}: not a class; keys are \"TIER,SLO\" with TIER "
                             f"1-3 and SLO one of {', '.join(SLO_NS)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise InputError(f"{path}: {key!r}: {value!r} is not a fraction from 0 to 1")
        shares[index] = float(value)
    if not 0.99 <= sum(shares) <= 1.01:
        raise InputError(f"{path}: the fractions add up to {sum(shares):.3f}; make them add up "
                         "to 1")
    return shares


def class_name(tier: int, slo: str) -> str:
    """As the seed names its classes' LoadGen log folders."""
    return f"tier{tier}_{slo}"


def poisson_arrivals(qps: float, min_duration_ns: int, min_count: int,
                     rng: np.random.Generator) -> np.ndarray:
    """One class's query times (ns from the start): exponential gaps at `qps`, until the last
    is scheduled at or after min_duration_ns and there are at least min_count, as LoadGen's
    Server scenario schedules them."""
    mean_gap = NS_PER_S / qps
    expect = int(max(min_count, min_duration_ns / mean_gap)) + 16
    times = np.cumsum(rng.exponential(mean_gap, size=expect))
    while times[-1] < min_duration_ns or len(times) < min_count:
        more = np.cumsum(rng.exponential(mean_gap, size=max(16, expect // 4))) + times[-1]
        times = np.concatenate([times, more])
    need = max(min_count, int(np.searchsorted(times, min_duration_ns, side="left")) + 1)
    return times[:need].astype(np.int64)


def infer_request(tier: int, model: str, tensor: bool) -> Body:
    """scheduler.InferRequest, field by field: tier, deadline_ns (filled at send), model_name,
    input_tensor (fresh random floats), input_shape (packed)."""
    shape = b"".join(varint(d) for d in INPUT_SHAPE)
    body = Body().proto_int(1, tier).proto_varint(2, "deadline_ns").proto_string(3, model)
    if tensor:
        body.proto_floats(4, TENSOR_FLOATS)
    return body.proto_bytes(5, shape)


def build_schedule(opts: ClassesGenOptions) -> Schedule:
    shares = workload_shares(opts.workload)
    min_duration_ns = opts.duration_ms * 1_000_000
    payloads: list[Payload] = []
    payload_of: dict[tuple[int, str], int] = {}
    for tier in TIERS:
        for model in ("resnet50", "vit"):
            body = infer_request(tier, model, not opts.no_tensor)
            payload_of[(tier, model)] = len(payloads)
            payloads.append(Payload(body=body.data, fields=body.fields, path=INFER_METHOD,
                                    name=model))
    classes, times, cls_col, payload_col, class_rules = [], [], [], [], []
    for index, ((tier, slo), share) in enumerate(zip(CLASSES, shares)):
        qps = opts.total_qps * share
        classes.append(RequestClass(class_name(tier, slo), slo_ns=SLO_NS[slo],
                                    timeout_ns=CALL_TIMEOUT_NS,
                                    tags={"tier": str(tier), "slo": slo}))
        if qps < MIN_CLASS_QPS:
            class_rules.append({"qps": qps, "skipped": True})
            continue
        # One independent stream per class (its own seed), as one LoadGen per class.
        rng = np.random.default_rng([opts.seed, index])
        t = poisson_arrivals(qps, min_duration_ns, opts.min_query_count, rng)
        names = [m for m, _ in MODELS[slo]]
        weights = [w for _, w in MODELS[slo]]
        models = rng.choice(len(names), size=len(t), p=weights)
        times.append(t)
        cls_col.append(np.full(len(t), index, np.int16))
        payload_col.append(np.array([payload_of[(tier, names[m])] for m in range(len(names))],
                                    np.int32)[models])
        class_rules.append({"qps": qps, "skipped": False})
    if not times:
        raise InputError(f"--total-qps {opts.total_qps}: every class is under {MIN_CLASS_QPS} QPS; "
                         "raise the total")
    t_ns = np.concatenate(times)
    order = np.argsort(t_ns, kind="stable")
    # Replayed whole, without warm-up, as LoadGen runs it (replayer.run.plan.run_units).
    meta = {"workload": "classes", "replay": "whole", "mlperf": {
        "scenario": "Server", "min_duration_ns": min_duration_ns,
        "min_query_count": opts.min_query_count, "target_percentile": TARGET_PERCENTILE,
        "confidence": CONFIDENCE, "total_qps": opts.total_qps,
        "distribution": opts.workload, "classes": class_rules}}
    return Schedule(t_ns=t_ns[order], target=np.zeros(len(t_ns), np.int32),
                    targets=[opts.scheduler_url], cls=np.concatenate(cls_col)[order],
                    classes=classes, payload=np.concatenate(payload_col)[order],
                    payloads=payloads, unit_ns=NS_PER_S, content_seed=opts.seed, meta=meta)


def gen_classes_command(opts: ClassesGenOptions) -> int:
    t0 = time.perf_counter()
    schedule = build_schedule(opts)
    out = Path(opts.output)
    write_schedule(schedule, out)
    counts = np.bincount(schedule.cls, minlength=len(CLASSES))
    shown = ", ".join(f"{c.name} {int(n)}" for c, n in zip(schedule.classes, counts) if n)
    span = schedule.end_ns / NS_PER_S
    print(f"{len(schedule)} requests over {span:.1f} s ({opts.workload}, {opts.total_qps:g} QPS, "
          f"seed {opts.seed}): {shown}; wrote {out} in {time.perf_counter() - t0:.2f}s")
    return 0
