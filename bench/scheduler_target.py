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

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _nginx import Nginx  # noqa: E402

INFER_PATH = "/scheduler.SchedulerService/Infer"

SCHEDULER_SERVER = """
    listen 127.0.0.1:{port} http2 reuseport backlog=4096;
    http2_max_concurrent_streams 4096;
    client_max_body_size 4m;
    client_body_buffer_size 1m;
    location = %s {{
      mirror /drain;
      mirror_request_body on;
      error_page 405 =200 /reply.bin;
      return 405;
    }}
    location = /drain {{ internal; return 204; }}
    location = /reply.bin {{
      internal;
      alias {dir}/reply.bin;
      default_type application/grpc;
      add_trailer grpc-status 0 always;
      add_trailer grpc-message "" always;
    }}
""" % INFER_PATH


def reply_frame() -> bytes:
    """One gRPC length-prefixed message: flag 0, 4-byte length, InferResponse(success=true)."""
    from replayer.proto import scheduler_pb2
    msg = scheduler_pb2.InferResponse(success=True).SerializeToString()
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def scheduler_target(directory: Path, workers: int = 1) -> Nginx:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "reply.bin").write_bytes(reply_frame())
    return Nginx(directory, SCHEDULER_SERVER, workers, "gRPC h2c (static InferResponse)")


def check(port: int, floats: int = 150528) -> bool:
    """One Infer with a full tensor through grpcio: the reply's success flag."""
    import grpc
    from replayer.proto import scheduler_pb2, scheduler_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(ch)
        req = scheduler_pb2.InferRequest(tier=1, deadline_ns=time.time_ns(), model_name="resnet50",
                                         input_tensor=[0.5] * floats, input_shape=[1, 3, 224, 224])
        return stub.Infer(req, timeout=5).success


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    d = Path(a.dir or tempfile.mkdtemp(prefix="scheduler-target-"))
    t = scheduler_target(d, a.workers)
    print(f"scheduler 127.0.0.1:{t.port}  (success={check(t.port)})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        t.stop()


if __name__ == "__main__":
    main()
