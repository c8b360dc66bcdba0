"""The target of figure 10: nginx answering scheduler.SchedulerService/Infer over h2c.

Both load generators of figure 10 call it: the seed's grpcio stub and replayer's libcurl h2c
client. Like figure 5's bench/grpc_target.py (see there why nginx, and how the static reply
works), one nginx worker answers every POST to /scheduler.SchedulerService/Infer with a static
gRPC InferResponse (success=true; deadline_ns is not echoed: nginx does not parse the
request) and the trailers grpc-status 0 / grpc-message. `mirror_request_body` makes it read
the whole request first; the 602 KB tensor requests are kept in memory
(client_body_buffer_size above their size: otherwise nginx writes each one to a temp file).

Standalone: python bench/scheduler_target.py [--dir DIR] [--workers N]   (prints the port)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _nginx import Nginx  # noqa: E402
from grpc_target import serve_standalone, static_grpc_target  # noqa: E402

INFER_PATH = "/scheduler.SchedulerService/Infer"
# Tensor requests (602 KB) kept in memory, not written to a temp file each.
BODY_BUFFERS = """
    client_max_body_size 4m;
    client_body_buffer_size 1m;"""


def scheduler_target(directory: Path, workers: int = 1) -> Nginx:
    from replayer.proto import scheduler_pb2
    reply = scheduler_pb2.InferResponse(success=True).SerializeToString()
    return static_grpc_target(directory, INFER_PATH, reply, workers,
                              "gRPC h2c (static InferResponse)", BODY_BUFFERS)


def check(port: int, floats: int = 150528) -> bool:
    """One Infer with a full tensor through grpcio: the reply's success flag."""
    import grpc
    from replayer.proto import scheduler_pb2, scheduler_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(ch)
        req = scheduler_pb2.InferRequest(tier=1, deadline_ns=time.time_ns(), model_name="resnet50",
                                         input_tensor=[0.5] * floats, input_shape=[1, 3, 224, 224])
        return stub.Infer(req, timeout=5).success


if __name__ == "__main__":
    serve_standalone("scheduler", scheduler_target, check)
