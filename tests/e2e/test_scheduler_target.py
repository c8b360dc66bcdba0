"""`replayer serve --scheduler`: scheduler.SchedulerService/Infer on the built-in target, as a
real process on loopback, called through a real grpcio channel with the stubs generated from
proto/scheduler.proto at build time."""
from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from replayer.proto import scheduler_pb2, scheduler_pb2_grpc
from replayer.loopback.launch import start_serve
from tests.conftest import replayer, stop_target

SHAPE = [1, 3, 224, 224]
FAR_NS = 30_000_000_000       # a deadline nobody reaches in these tests


class Client:
    """A stub on its own channel; call() sends without waiting and keeps each answer with the
    monotonic time it came back."""

    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)   # connected before timing
        self.stub = scheduler_pb2_grpc.SchedulerServiceStub(self.channel)
        self.lock = threading.Lock()

    def call(self, tier: int, deadline_ns: int, model: str = "resnet50", tensor=(), shape=()):
        """A dict that gets 'response' (or 'error') and 'done' (monotonic s) when answered."""
        request = scheduler_pb2.InferRequest(tier=tier, deadline_ns=deadline_ns, model_name=model,
                                             input_tensor=tensor, input_shape=shape)
        result = {"tier": tier, "deadline_ns": deadline_ns, "sent": time.monotonic()}
        future = self.stub.Infer.future(request, timeout=20)

        def done(f):
            with self.lock:
                result["done"] = time.monotonic()
                try:
                    result["response"] = f.result()
                except grpc.RpcError as exc:
                    result["error"] = exc.code()
        future.add_done_callback(done)
        result["future"] = future
        return result

    def wait(self, results) -> None:
        for r in results:
            try:
                r["future"].result()
            except grpc.RpcError:
                pass
        deadline = time.monotonic() + 5     # callbacks run on grpc's thread, just after
        while any("done" not in r for r in results) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        self.channel.close()


@pytest.fixture
def scheduler():
    """A factory: `replayer serve --scheduler ARGS`, stopped after the test."""
    started = []

    def start(*args: str):
        target = start_serve("--scheduler", *args, http_port=-1)
        started.append(target)
        return Client(target.scheduler_port)
    yield start
    for target in started:
        stop_target(target)


def test_priority_order_under_load(scheduler):
    """With 2 workers busy, queued requests are served by tier (1 first) and, within a tier,
    by deadline (earliest first), whatever their arrival order; each answer echoes its
    deadline_ns with success=true."""
    client = scheduler("--scheduler-workers", "2", "--service-ms", "resnet50=200")
    now = time.time_ns()
    busy = [client.call(3, now + FAR_NS) for _ in range(2)]
    time.sleep(0.1)                 # both workers busy until 200 ms: the burst below queues
    # Sent in the reverse of priority order (tier 2's latest deadline first); grpc may hand the
    # burst to the server in any order, the queue must not care.
    plan = [(3, FAR_NS)] * 2 + [(2, FAR_NS - k * 1_000_000_000) for k in range(4)] + [(1, FAR_NS)] * 4
    queued = [client.call(tier, now + offset) for tier, offset in plan]
    client.wait(busy + queued)
    client.close()
    for r in busy + queued:
        assert "response" in r, r
        assert r["response"].success, r["response"]
        assert r["response"].deadline_ns == r["deadline_ns"]
    done_by_tier = {t: sorted(r["done"] for r in queued if r["tier"] == t) for t in (1, 2, 3)}
    # Service takes 200 ms per pair, so consecutive pairs finish 200 ms apart.
    assert done_by_tier[1][-1] + 0.1 < done_by_tier[2][0], done_by_tier
    assert done_by_tier[2][-1] + 0.1 < done_by_tier[3][0], done_by_tier
    tier2 = sorted((r for r in queued if r["tier"] == 2), key=lambda r: r["deadline_ns"])
    assert max(r["done"] for r in tier2[:2]) + 0.1 < min(r["done"] for r in tier2[2:])


def test_expired_deadlines_answered_unsuccessfully(scheduler):
    """A request already past its deadline on arrival, or when a worker takes it from the
    queue, gets success=false at once with a message saying so and its deadline_ns echoed,
    and costs no service time: the request behind it is served right after the one before."""
    client = scheduler("--service-ms", "resnet50=300")
    now = time.time_ns()
    late_on_arrival = client.call(1, now - 5_000_000)
    client.wait([late_on_arrival])
    first = client.call(1, now + FAR_NS)
    time.sleep(0.05)                       # first is in service, the next two queue behind it
    expires_queued = client.call(1, time.time_ns() + 100_000_000)
    after = client.call(1, now + FAR_NS)
    client.wait([first, expires_queued, after])
    client.close()

    r = late_on_arrival["response"]
    assert not r.success and "before the request arrived" in r.message, r
    assert r.deadline_ns == late_on_arrival["deadline_ns"]
    assert late_on_arrival["done"] - late_on_arrival["sent"] < 0.25
    assert first["response"].success
    r = expires_queued["response"]
    assert not r.success and "before service" in r.message, r
    assert r.deadline_ns == expires_queued["deadline_ns"]
    assert after["response"].success
    # Served 300 ms after `first` ends (about 0.55 s after it was sent); 0.85 s if the expired
    # request had been served too.
    assert after["done"] - after["sent"] < 0.75, after["done"] - after["sent"]


def test_unset_deadline_is_served(scheduler):
    """deadline_ns 0 (proto3's unset) means no deadline: served, and 0 echoed."""
    client = scheduler("--service-ms", "resnet50=1")
    r = client.call(2, 0)
    client.wait([r])
    client.close()
    assert r["response"].success and r["response"].deadline_ns == 0


def test_tensors_of_the_seed_and_beyond_gRPCs_default_limit_accepted(scheduler):
    """The seed's request (a fresh [1,3,224,224] float32 tensor, 602 KB) and a 5 MB one
    (above gRPC's default 4 MiB receive limit) are served."""
    client = scheduler("--service-ms", "resnet50=1,vit=1")
    seed_tensor = np.random.rand(*SHAPE).astype(np.float32).ravel().tolist()
    big = np.random.rand(5, 3, 224, 224).astype(np.float32)
    results = [client.call(1, time.time_ns() + FAR_NS, "vit", seed_tensor, SHAPE),
               client.call(1, time.time_ns() + FAR_NS, "resnet50", big.ravel().tolist(),
                           list(big.shape))]
    client.wait(results)
    client.close()
    assert scheduler_pb2.InferRequest(input_tensor=seed_tensor).ByteSize() > 600_000
    for r in results:
        assert "response" in r, r
        assert r["response"].success, r["response"]


def test_models_and_their_service_times(scheduler):
    """--service-ms gives each model its service time ('*=MS' any other model); a model
    without one is answered success=false naming it."""
    client = scheduler("--service-ms", "fast=1,slow=400", "--scheduler-workers", "2")
    results = [client.call(1, time.time_ns() + FAR_NS, model) for model in ("fast", "slow", "bert")]
    client.wait(results)
    client.close()
    fast, slow, unknown = results
    assert fast["response"].success and slow["response"].success
    assert fast["done"] - fast["sent"] < 0.3 <= slow["done"] - slow["sent"]
    assert not unknown["response"].success and "'bert'" in unknown["response"].message
    other = scheduler("--service-ms", "*=1")
    r = other.call(3, time.time_ns() + FAR_NS, "bert")
    other.wait([r])
    other.close()
    assert r["response"].success


def test_attainment_differs_by_tier_under_overload(scheduler):
    """Past the target's capacity (150 req/s, 10 ms of service, one worker), tier 1 keeps
    its 100 ms SLO and tier 3 misses it: the queue serves VIP requests first."""
    client = scheduler("--service-ms", "resnet50=10")
    rng = np.random.default_rng(7)
    results = []
    start = time.monotonic()
    for k in range(150):
        time.sleep(max(0.0, start + k / 150 - time.monotonic()))
        results.append(client.call(int(rng.integers(1, 4)), time.time_ns() + 100_000_000))
    client.wait(results)
    client.close()
    attained = {}
    for tier in (1, 2, 3):
        rs = [r for r in results if r["tier"] == tier]
        met = [r for r in rs if "response" in r and r["response"].success
               and r["done"] - r["sent"] <= 0.1]
        attained[tier] = len(met) / len(rs)
    assert attained[1] >= 0.9, attained
    assert attained[3] <= 0.5, attained


def test_without_scheduler_infer_is_unimplemented(target):
    """Without --scheduler, the gRPC port answers Infer with UNIMPLEMENTED."""
    client = Client(target.grpc_port)
    r = client.call(1, time.time_ns() + FAR_NS)
    client.wait([r])
    client.close()
    assert r.get("error") == grpc.StatusCode.UNIMPLEMENTED, r


@pytest.mark.parametrize("args, names", [
    (["--scheduler", "--service-ms", "resnet50"], "--service-ms"),
    (["--scheduler", "--service-ms", "resnet50=-3"], "--service-ms"),
    (["--scheduler", "--service-ms", "vit=1,vit=2"], "--service-ms"),
    (["--scheduler", "--scheduler-workers", "0"], "--scheduler-workers"),
    (["--scheduler", "--grpc-port", "-1"], "--scheduler"),
    (["--scheduler-workers", "4"], "--scheduler-workers"),
])
def test_bad_scheduler_options(args, names):
    """A bad scheduler option: exit 2 and one line naming it, no traceback."""
    proc = replayer("serve", "--http-port", "0", "--grpc-port", "0", *args, timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], proc.stderr
