"""`replayer serve`: the built-in target, HTTP (1.1 and h2c) and gRPC on loopback."""
from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass

from replayer.errors import InputError
from replayer.options import opt


@dataclass
class ServeOptions:
    """Start the built-in target: an HTTP/1.1 + h2c server and a gRPC helloworld.Greeter server.

    HTTP paths pick behaviour: /status/N, /delay/MS, /reset, /hang, /bytes/N; other paths get
    --status after --delay-ms. Prints one 'PROTOCOL HOST:PORT' line per listener, then serves
    until SIGINT or SIGTERM."""

    host: str = opt("127.0.0.1", "address to listen on (loopback unless told otherwise)")
    http_port: int = opt(8080, "HTTP port (0: any free port; -1: no HTTP server)")
    grpc_port: int = opt(50051, "gRPC port (0: any free port; -1: no gRPC server)")
    delay_ms: float = opt(0.0, "answer every request after this many milliseconds")
    status: int = opt(200, "HTTP status of every answer")
    grpc_code: int = opt(0, "gRPC status code of every answer (0 OK, 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE...)")

    def __post_init__(self):
        for name in ("http_port", "grpc_port"):
            v = getattr(self, name)
            if not -1 <= v < 65536:
                raise InputError(f"--{name.replace('_', '-')} {v}: must be -1, 0 or a port number")
        if self.delay_ms < 0:
            raise InputError(f"--delay-ms {self.delay_ms}: must be 0 or more")
        if not 100 <= self.status <= 599:
            raise InputError(f"--status {self.status}: must be an HTTP status (100-599)")
        if not 0 <= self.grpc_code <= 16:
            raise InputError(f"--grpc-code {self.grpc_code}: must be a gRPC code (0-16)")


async def _serve(opts: ServeOptions, ready=None) -> None:
    from replayer.targets.http_server import Behaviour, start_http
    stats: dict = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    try:
        if opts.http_port >= 0:
            http = await start_http(opts.host, opts.http_port,
                                    Behaviour(opts.status, opts.delay_ms / 1000.0), stats)
            servers.append(http)
            port = http.sockets[0].getsockname()[1]
            print(f"http {opts.host}:{port}", flush=True)
        if opts.grpc_port >= 0:
            from replayer.targets.grpc_server import start_grpc
            grpc_server, port = await start_grpc(opts.host, opts.grpc_port, opts.delay_ms / 1000.0,
                                                 opts.grpc_code, stats)
            print(f"grpc {opts.host}:{port}", flush=True)
        else:
            grpc_server = None
    except OSError as exc:
        raise InputError(f"replayer serve: cannot listen on {opts.host}: {exc.strerror or exc}; "
                         "choose another port (0 picks a free one)") from None
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    if grpc_server is not None:
        await grpc_server.stop(0.5)
    print(f"served {stats.get('requests', 0)} requests", file=sys.stderr, flush=True)


def serve_command(opts: ServeOptions) -> int:
    asyncio.run(_serve(opts))
    return 0
