"""`replayer serve`: the built-in target, HTTP (1.1 and h2c) and gRPC on loopback; with
--scheduler, also a simulated inference scheduler on the gRPC port (scheduler.py)."""
from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass

from replayer.errors import InputError
from replayer.options import opt
from replayer.loopback.faults import KINDS, check_shares, parse_fault
from replayer.loopback.scheduler import (DEFAULT_SERVICE_MS, SchedulerConfig, check_workers,
                                         parse_service_ms)


MAX_DELAY_MS = 86_400_000.0


@dataclass
class ServeOptions:
    """Start the built-in target: an HTTP/1.1 + h2c server and a gRPC helloworld.Greeter server.

    HTTP paths pick behaviour: /ok, /status/N, /delay/MS, /reset, /hang, /bytes/N, /slow/BPS,
    /truncate, /goaway (numbers after '/' or '-'); gRPC requests by their name field
    (fault:unavailable, fault:deadline, fault:code:N, fault:delay:MS, fault:hang). Other
    requests get the share faults of --fault, else --status after --delay-ms. A refused
    connection needs no server: use a port (or a 127.0.0.x address) nobody listens on.
    With --scheduler, the gRPC port also serves scheduler.SchedulerService/Infer
    (proto/scheduler.proto): a priority queue by tier, then deadline, --scheduler-workers
    workers, --service-ms per model; past their deadline requests get success=false.
    Prints one 'PROTOCOL HOST:PORT' line per listener (and 'scheduler HOST:PORT'), then
    'ready', then serves until SIGINT or SIGTERM. See docs/faults.md."""

    host: str = opt("127.0.0.1", "address to listen on (loopback unless told otherwise)")
    http_port: int = opt(8080, "HTTP port (0: any free port; -1: no HTTP server)")
    grpc_port: int = opt(50051, "gRPC port (0: any free port; -1: no gRPC server)")
    delay_ms: float = opt(0.0, "answer every request after this many milliseconds")
    status: int = opt(200, "HTTP status of every answer")
    grpc_code: int = opt(0, "gRPC status code of every answer (0 OK, 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE...)")
    fault: list[str] = opt(None, "give a share of requests a fault: KIND[=ARG]:SHARE[@PATH], e.g. "
                           "reset:0.2, status=503:0.1, delay=500:0.3@/api, unavailable:0.5 "
                           f"(repeatable; kinds: {', '.join(KINDS)})", default_factory=list,
                           metavar="FAULT")
    fault_seed: int = opt(1, "seed of the random draws that pick which requests get a --fault")
    tls_cert: str | None = opt(None, "serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this PEM "
                               "certificate (chain) instead of cleartext HTTP", metavar="PATH")
    tls_key: str | None = opt(None, "PEM private key of --tls-cert (default: in the same file)",
                              metavar="PATH")
    record_requests: str | None = opt(None, "append one JSON line per HTTP request received "
                                      "(t_ns, method, path, headers, body) to this file",
                                      metavar="PATH")
    scheduler: bool = opt(False, "also serve scheduler.SchedulerService/Infer "
                          "(proto/scheduler.proto) on the gRPC port: a simulated inference "
                          "scheduler, a priority queue by tier then deadline",
                          action="store_true")
    service_ms: str = opt(DEFAULT_SERVICE_MS, "with --scheduler: service time per model in ms, "
                          "MODEL=MS,... ('*=MS': any other model; others get success=false); "
                          "a timer, no CPU", metavar="MODEL=MS,...")
    scheduler_workers: int = opt(1, "with --scheduler: requests in service at once (1: one GPU)",
                                 metavar="N")

    def __post_init__(self):
        for name in ("http_port", "grpc_port"):
            v = getattr(self, name)
            if not -1 <= v < 65536:
                raise InputError(f"--{name.replace('_', '-')} {v}: must be -1, 0 or a port number")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:     # also refuses nan
            raise InputError(f"--delay-ms {self.delay_ms}: must be between 0 and {MAX_DELAY_MS:g} "
                             "(a day)")
        if not 100 <= self.status <= 599:
            raise InputError(f"--status {self.status}: must be an HTTP status (100-599)")
        if not 0 <= self.grpc_code <= 16:
            raise InputError(f"--grpc-code {self.grpc_code}: must be a gRPC code (0-16)")
        self.fault_rules = [parse_fault(f) for f in self.fault]
        check_shares(self.fault_rules)
        if self.tls_key is not None and self.tls_cert is None:
            raise InputError("--tls-key needs --tls-cert")
        self.ssl_context = None
        if self.tls_cert is not None:
            self.ssl_context = _ssl_context(self.tls_cert, self.tls_key)
        self.scheduler_config = None
        if self.scheduler:
            if self.grpc_port < 0:
                raise InputError("--scheduler serves on the gRPC port: give --grpc-port a port "
                                 "(0: any free one), not -1")
            check_workers(self.scheduler_workers)
            self.scheduler_config = SchedulerConfig(parse_service_ms(self.service_ms),
                                                    self.scheduler_workers)
        else:
            given = [name for name, unset in (("--service-ms", DEFAULT_SERVICE_MS),
                                              ("--scheduler-workers", 1))
                     if getattr(self, name[2:].replace("-", "_")) != unset]
            if given:
                raise InputError(f"{' and '.join(given)}: only with --scheduler; add it")


def _ssl_context(cert: str, key: str | None):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise InputError(f"--tls-cert/--tls-key: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise InputError(f"--tls-cert {cert}: cannot load the certificate and key ({exc}); "
                         "give PEM files") from None
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


async def _serve(opts: ServeOptions, ready=None) -> None:
    from replayer.loopback.http_server import Behaviour, RequestLog, start_http
    stats: dict = {}
    log = None
    if opts.record_requests is not None:
        try:
            log = RequestLog(opts.record_requests)
        except OSError as exc:
            raise InputError(f"--record-requests {opts.record_requests}: cannot write "
                             f"({exc.strerror}); give a writable file") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    scheduler = None
    shown = f"[{opts.host}]" if ":" in opts.host else opts.host   # IPv6, as in a URL
    try:
        if opts.http_port >= 0:
            http = await start_http(opts.host, opts.http_port,
                                    Behaviour(opts.status, opts.delay_ms / 1000.0,
                                              faults=opts.fault_rules, seed=opts.fault_seed,
                                              log=log),
                                    stats, ssl=opts.ssl_context)
            servers.append(http)
            port = http.sockets[0].getsockname()[1]
            print(f"http {shown}:{port}", flush=True)   # HTTPS with --tls-cert
        if opts.grpc_port >= 0:
            from replayer.loopback.grpc_server import start_grpc
            scheduler_services, max_message_bytes = (), None
            if opts.scheduler_config is not None:
                from replayer.loopback.scheduler import MAX_MESSAGE_BYTES, Scheduler
                scheduler = Scheduler(opts.scheduler_config, stats)
                scheduler.start()
                scheduler_services, max_message_bytes = (scheduler.handler(),), MAX_MESSAGE_BYTES
            grpc_server, port = await start_grpc(opts.host, opts.grpc_port, opts.delay_ms / 1000.0,
                                                 opts.grpc_code, stats, opts.fault_rules,
                                                 opts.fault_seed, scheduler_services,
                                                 max_message_bytes)
            print(f"grpc {shown}:{port}", flush=True)
            if scheduler is not None:
                print(f"scheduler {shown}:{port}", flush=True)   # the same port
        else:
            grpc_server = None
    except OSError as exc:
        raise InputError(f"replayer serve: cannot listen on {opts.host}: {exc.strerror or exc}; "
                         "choose another port (0 picks a free one)") from None
    print("ready", flush=True)
    watch = asyncio.ensure_future(_watch_stdout(stop))
    await stop.wait()
    watch.cancel()
    for s in servers:
        s.close()
    if grpc_server is not None:
        await grpc_server.stop(0.5)
    if log is not None:
        log.close()
    if scheduler is not None:
        await scheduler.stop()
        print(f"scheduler: {stats['scheduler_served']} served, {stats['scheduler_expired_queue']} "
              f"past their deadline in the queue, {stats['scheduler_expired_arrival']} on arrival",
              file=sys.stderr, flush=True)
    print(f"served {stats.get('requests', 0)} requests", file=sys.stderr, flush=True)


async def _watch_stdout(stop: asyncio.Event) -> None:
    """When stdout is a pipe and its reader goes away (the process that started us died, even
    by SIGKILL), stop: a target started for a run never outlives it."""
    import os
    import select
    import stat
    try:
        if not stat.S_ISFIFO(os.fstat(1).st_mode):
            return
    except OSError:
        return
    poller = select.poll()
    poller.register(1, 0)      # POLLERR and POLLHUP are always reported
    while not stop.is_set():
        if poller.poll(0):
            print("replayer serve: the reader of stdout is gone; stopping", file=sys.stderr,
                  flush=True)
            stop.set()
            return
        await asyncio.sleep(0.25)


def serve_command(opts: ServeOptions) -> int:
    asyncio.run(_serve(opts))
    return 0
