"""gRPC helloworld.Greeter/SayHello on grpc.aio, answering "Hello <name>" with a configurable
delay and status code (raw bytes in and out: no generated stubs needed)."""
from __future__ import annotations

import asyncio

import grpc

from replayer.helloworld import decode_string_field1, hello_reply


def _handler(delay_s: float, code: int, stats: dict):
    status = grpc.StatusCode.OK
    for c in grpc.StatusCode:
        if c.value[0] == code:
            status = c

    async def say_hello(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        stats["requests"] = stats.get("requests", 0) + 1
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if status is not grpc.StatusCode.OK:
            await context.abort(status, f"replayer serve answers {status.name}")
        return hello_reply("Hello " + decode_string_field1(request))

    return grpc.method_handlers_generic_handler("helloworld.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
    })


async def start_grpc(host: str, port: int, delay_s: float, code: int, stats: dict) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_handler(delay_s, code, stats),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound
