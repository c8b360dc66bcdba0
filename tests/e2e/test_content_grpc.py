"""Per-request content over gRPC, with both clients (libcurl's h2c from C, and grpcio), against
a grpcio server on loopback that decodes every request message: each carries its own event id
(a padded varint), a deadline computed from its record's send stamp and its class's SLO (in the
message and in a metadata header), and a fresh 602 KB tensor received whole, different in
every request and the same for an event with the same seed, whichever client sent it; the
payload's path is the method called; and a class's timeout ends its calls as `timeout` records
while another class's calls, as slow, succeed."""
from __future__ import annotations

import time
from concurrent import futures

import grpc
import numpy as np
import pytest

from conftest import replayer
from replayer.analysis.records import ErrorKind, read_records
from replayer.schedules.columnar import write_schedule
from replayer.schedules.content import Body, Field, Payload, RequestClass
from replayer.schedules.schedule import Schedule
from replayer.transports import TransportConfig

from test_content_curl import TENSOR, check_tensors, replay

MS = 1_000_000
CLASSES = [RequestClass("interactive", slo_ns=100 * MS), RequestClass("batch", slo_ns=3_000 * MS)]


def decode(message: bytes) -> dict[int, list]:
    """A protobuf message's fields by number: varints as ints, length-delimited as bytes."""
    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = message[at]
            value |= (byte & 0x7F) << shift
            at += 1
            shift += 7
            if not byte & 0x80:
                return value, at

    fields: dict[int, list] = {}
    at = 0
    while at < len(message):
        key, at = varint(at)
        if key & 7 == 0:
            value, at = varint(at)
        elif key & 7 == 2:
            size, at = varint(at)
            value, at = message[at:at + size], at + size
        else:
            raise ValueError(f"wire type {key & 7} in the test's messages")
        fields.setdefault(key >> 3, []).append(value)
    return fields


def inference_payload() -> Payload:
    """An inference request: event id, deadline (send + the class's SLO), a fresh [1,3,224,224]
    tensor and the model's name; the deadline also as metadata."""
    body = (Body().proto_varint(1, "event").proto_varint(2, "deadline_ns")
            .proto_floats(3, TENSOR).proto_string(4, "resnet50"))
    payload = Payload(body=body.data, fields=body.fields, path="/test.Infer/Predict",
                      headers=["x-deadline: " + "0" * 19])
    payload.fields.append(Field("deadline_ns", 0, "digits", 19, header="x-deadline"))
    payload.check("test payload")
    return payload


def batch_payload() -> Payload:
    """The same without a deadline: every field is known before the due time."""
    body = Body().proto_varint(1, "event").proto_floats(3, TENSOR).proto_string(4, "resnet50")
    return Payload(body=body.data, fields=body.fields, path="test.Infer/Predict")


class GrpcKeeper:
    """A grpcio server whose test.Infer/Predict keeps each raw request message with its
    metadata, and whose test.Infer/Slow answers after 400 ms."""

    def __init__(self):
        self.seen: list[tuple[bytes, dict]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(8),
                                  options=[("grpc.max_receive_message_length", -1)])
        handlers = {name: grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=None, response_serializer=None)
            for name, behaviour in (("Predict", self._predict), ("Slow", self._slow))}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Infer", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _predict(self, request: bytes, context) -> bytes:
        self.seen.append((request, dict(context.invocation_metadata())))
        return b"\x08\x01"

    def _slow(self, request: bytes, context) -> bytes:
        time.sleep(0.4)
        return b""

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def keeper():
    server = GrpcKeeper()
    yield server
    server.stop()


def _run(tmp_path, schedule_path, port: int, client: str, name: str, *extra: str):
    """`replayer run` of the schedule with one gRPC client; its records by event."""
    out = tmp_path / name
    replayer("run", "-traceFile", str(schedule_path), "-min=false", "-duration", "1",
             "-warmup", "0", "-workers", "1", "--protocol", "grpc", "--grpc-client", client,
             "-port", str(port), "--resolve", "*=127.0.0.1", "--out", str(out), *extra,
             check_exit=0)
    table, problems = read_records(out)
    assert problems == []
    rows = table.to_pylist()
    for row in rows:
        row["error"] = str(row["error"])
    return {row["event"]: row for row in rows}


def _received(keeper: GrpcKeeper, records: dict, cls, payload) -> dict[int, np.ndarray]:
    """Each message the server got, checked against its record; the tensors by event."""
    tensors = {}
    for message, metadata in keeper.seen:
        fields = decode(message)
        event = fields[1][0]
        record = records[event]
        assert record["error"] == "ok" and record["status"] == 0
        if payload[event] == 0:
            deadline = fields[2][0]
            slo = CLASSES[cls[event]].slo_ns
            assert record["sent_ns"] + slo <= deadline <= record["sent_ns"] + slo + MS
            assert int(metadata["x-deadline"]) == deadline
        else:
            assert 2 not in fields and "x-deadline" not in metadata
        assert fields[4] == [b"resnet50"]
        assert len(fields[3][0]) == 4 * TENSOR                     # received whole
        assert record["bytes_out"] == len(message)
        tensors[event] = np.frombuffer(fields[3][0], "<f4")
    keeper.seen.clear()
    return tensors


def test_each_call_carries_its_own_message(tmp_path, keeper):
    """A Parquet schedule of 12 inference calls in two classes and two payloads (one with a
    deadline, one without), run by `replayer run` with the libcurl client, then with grpcio
    (same seed), then with libcurl and another seed: every message reaches the method its
    payload names with its own event id and, where it has one, a deadline from its send stamp
    and class; tensors are whole and all different within a run, identical per event across
    clients with the same seed, and different with another seed."""
    n = 12
    cls = np.arange(n) % 2
    payload = (np.arange(n) // 2) % 2
    schedule = Schedule(np.arange(n) * 40 * MS, np.zeros(n), ["svc"], cls=cls, classes=CLASSES,
                        payload=payload, payloads=[inference_payload(), batch_payload()],
                        content_seed=7, unit_ns=1_000_000_000)
    path = tmp_path / "inference.parquet"
    write_schedule(schedule, path)

    by_client = {}
    for client in ("curl", "grpcio"):
        records = _run(tmp_path, path, keeper.port, client, client)
        assert len(records) == n
        by_client[client] = _received(keeper, records, cls, payload)
        assert sorted(by_client[client]) == list(range(n))
        check_tensors(by_client[client])
    for event in range(n):
        assert np.array_equal(by_client["curl"][event], by_client["grpcio"][event]), event

    records = _run(tmp_path, path, keeper.port, "curl", "reseeded", "--content-seed", "8")
    reseeded = _received(keeper, records, cls, payload)
    assert not any(np.array_equal(reseeded[e], by_client["curl"][e]) for e in range(n))


@pytest.mark.parametrize("client", ["curl", "grpcio"])
def test_a_class_timeout_ends_its_calls(keeper, client):
    """Every call goes to a method that answers after 400 ms: those of a class with a 150 ms
    timeout end as `timeout` records (DEADLINE_EXCEEDED) after about that long, those of a
    class without one (the run's 5 s) succeed."""
    classes = [RequestClass("short", timeout_ns=150 * MS), RequestClass("patient")]
    config = TransportConfig(protocol="grpc", endpoints=["svc"], port=keeper.port, timeout_s=5,
                             resolve={"*": "127.0.0.1"}, grpc_client=client, classes=classes,
                             payload=b"", payloads=[Payload(body=b"", path="/test.Infer/Slow")])
    n = 6
    cls = np.arange(n) % 2
    start = time.monotonic()
    rows = replay(config, np.arange(n) * 20 * MS, np.zeros(n), np.zeros(n), cls)
    assert time.monotonic() - start < 4          # nobody waited for the run's timeout
    for event, row in rows.items():
        latency_ms = (row["done_ns"] - row["sent_ns"]) / MS
        if cls[event] == 0:
            assert row["error"] == ErrorKind.TIMEOUT and row["status"] == 4, row
            assert 140 <= latency_ms < 390, latency_ms
        else:
            assert row["error"] == ErrorKind.OK and row["status"] == 0, row
            assert latency_ms >= 390
