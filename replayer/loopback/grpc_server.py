"""gRPC helloworld.Greeter/SayHello on grpc.aio, answering "Hello <name>" with a configurable
delay and status code (raw bytes in and out: no generated stubs needed).

A request can choose its own fault through its name field:
  fault:unavailable     fail with UNAVAILABLE
  fault:deadline        fail with DEADLINE_EXCEEDED
  fault:code:N          fail with code N
  fault:delay:MS        answer after MS milliseconds
  fault:hang            never answer (the client's deadline ends the call)
Otherwise the share faults of --fault (delay, hang, unavailable, deadline, grpc-code) apply,
then the server's --delay-ms and --grpc-code.
"""
from __future__ import annotations

import asyncio

import grpc

from replayer.transports.helloworld import decode_string_field1, hello_reply
from replayer.loopback.faults import FaultRule, ShareChooser

_METHOD = "/helloworld.Greeter/SayHello"
_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _fault_from_name(name: str) -> tuple[str, int | None] | None:
    if not name.startswith("fault:"):
        return None
    parts = name.split(":")
    kind = parts[1] if len(parts) > 1 else ""
    arg = None
    if len(parts) > 2 and parts[2].isdigit():
        arg = int(parts[2])
    if kind == "code" and arg is not None and arg in _CODES:
        return "grpc-code", arg
    if kind == "delay" and arg is not None:
        return "delay", arg
    if kind in ("unavailable", "deadline", "hang"):
        return kind, None
    return None


def _handler(delay_s: float, code: int, stats: dict, faults: list[FaultRule] | None = None,
             seed: int = 1):
    default_status = _CODES.get(code, grpc.StatusCode.UNKNOWN)
    chooser = ShareChooser([r for r in (faults or []) if r.grpc], seed)

    async def fail(context, status: grpc.StatusCode):
        await context.abort(status, f"replayer serve answers {status.name}")

    async def say_hello(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        stats["requests"] = stats.get("requests", 0) + 1
        try:
            name = decode_string_field1(request)
        except (ValueError, UnicodeDecodeError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a helloworld.HelloRequest")
        fault = _fault_from_name(name)
        if fault is None and chooser:
            rule = chooser.pick(_METHOD)
            if rule is not None:
                fault = (rule.kind, rule.arg)
        status, wait = default_status, delay_s
        if fault is not None:
            kind, arg = fault
            if kind == "hang":
                await asyncio.Event().wait()       # until the client gives up (cancelled)
            if kind == "delay":
                wait = arg / 1000.0
            elif kind == "unavailable":
                status = grpc.StatusCode.UNAVAILABLE
            elif kind == "deadline":
                status = grpc.StatusCode.DEADLINE_EXCEEDED
            elif kind == "grpc-code":
                status = _CODES[arg]
        if wait > 0:
            await asyncio.sleep(wait)
        if status is not grpc.StatusCode.OK:
            await fail(context, status)
        return hello_reply("Hello " + name)

    return grpc.method_handlers_generic_handler("helloworld.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
    })


async def start_grpc(host: str, port: int, delay_s: float, code: int, stats: dict,
                     faults: list[FaultRule] | None = None, seed: int = 1,
                     more_services: tuple[grpc.GenericRpcHandler, ...] = (),
                     max_message_bytes: int | None = None) -> tuple[grpc.aio.Server, int]:
    """more_services: other services on the same port (the scheduler of --scheduler);
    max_message_bytes: the largest request accepted (gRPC's default: 4 MiB)."""
    options = [("grpc.so_reuseport", 0)]
    if max_message_bytes is not None:
        options.append(("grpc.max_receive_message_length", max_message_bytes))
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((_handler(delay_s, code, stats, faults, seed),
                                     *more_services))
    bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound
