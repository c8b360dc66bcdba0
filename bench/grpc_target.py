"""The gRPC target of figure 5: nginx answering helloworld.Greeter/SayHello over h2c.

Why not a grpcio server: a Python grpcio server answers a few thousand calls per second per
core, less than one replayer worker sends, so it would measure itself. nginx (C, HTTP/2 with
prior knowledge, one worker) answers every POST to /helloworld.Greeter/SayHello with a static
gRPC response: a length-prefixed HelloReply ("Hello Invoke relay", replayer.transports.helloworld) with
content-type application/grpc and the trailers grpc-status 0 / grpc-message. `mirror` with
mirror_request_body makes nginx read the whole request body before answering (otherwise it
may answer mid-body and reset the stream); the 405 of `return` on a POST is turned into the
static reply by an internal redirect (error_page 405 =200), which serves it as a GET.
`keepalive_requests` lifts nginx's default of 1000 streams per connection (GOAWAY).

Standalone: python bench/grpc_target.py [--dir DIR] [--workers N]   (prints the port; Ctrl-C)
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

REPLY_TEXT = "Hello Invoke relay"
HELLO_PATH = "/helloworld.Greeter/SayHello"


def static_grpc_server(path: str, extra: str = "") -> str:
    """nginx's server block answering every POST to `path` with {dir}/reply.bin and gRPC's
    OK trailers, after reading the whole request (extra: more directives, body buffers)."""
    return """
    listen 127.0.0.1:{port} http2 reuseport backlog=4096;
    http2_max_concurrent_streams 4096;%s
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
""" % (extra, path)


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: flag 0 (not compressed), 4-byte length, the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def static_grpc_target(directory: Path, path: str, reply: bytes, workers: int, label: str,
                       extra: str = "") -> Nginx:
    """nginx in `directory` answering `path` with the serialised `reply` message."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "reply.bin").write_bytes(grpc_frame(reply))
    return Nginx(directory, static_grpc_server(path, extra), workers, label)


def serve_standalone(prefix: str, make, check) -> None:
    """`python bench/NAME.py [--dir DIR] [--workers N]`: start the target, print its port and
    what one call through grpcio got, serve until Ctrl-C."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    t = make(Path(a.dir or tempfile.mkdtemp(prefix=f"{prefix}-target-")), a.workers)
    print(f"{prefix} 127.0.0.1:{t.port}  ({check(t.port)!r})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        t.stop()


def grpc_target(directory: Path, workers: int = 1) -> Nginx:
    from replayer.transports.helloworld import hello_reply
    return static_grpc_target(directory, HELLO_PATH, hello_reply(REPLY_TEXT), workers,
                              "gRPC h2c (static SayHello reply)")


def check(port: int) -> str:
    """One SayHello through grpcio: the decoded reply text."""
    import grpc
    from replayer.transports.helloworld import decode_string_field1, hello_request
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(HELLO_PATH)
        return decode_string_field1(call(hello_request("Invoke relay"), timeout=5))


if __name__ == "__main__":
    serve_standalone("grpc", grpc_target, check)
