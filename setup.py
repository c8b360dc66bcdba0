"""Builds the Cython pacer and the HTTP transports (libcurl's, and replayer's own HTTP/1.1) from _ext/; everything else is plain Python (see pyproject.toml).

_ext/ is laid out as uvloop's sources: each module's .pyx and .pxd in _ext/replayer/, which
include their parts (one concern per file, each .pyx beside its .pxd) from a folder named after
the module; the C declarations and headers they share are in _ext/includes/. The generated C
goes to build/cython/.

REPLAYER_DEBUG_BUILD=1 builds with bounds checks on and without optimisation.

It also generates the gRPC stubs of proto/scheduler.proto into replayer/proto/ (see
generate_grpc_stubs).
"""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
# .proto file -> the package its Python stubs go to.
GRPC_STUBS = {"proto/scheduler.proto": "replayer/proto"}


def generate_grpc_stubs() -> None:
    """NAME_pb2.py and NAME_pb2_grpc.py of each .proto of GRPC_STUBS, made at build time and
    never committed (.gitignore): protoc's output must suit the protobuf runtime installed
    beside it, so it comes from the grpcio-tools of this build (pyproject's build requires; the
    test extras for `python setup.py build_ext --inplace`). Regenerated only when missing or
    older than their .proto, so running setup.py again costs nothing."""
    for proto, package in GRPC_STUBS.items():
        source, out_dir = HERE / proto, HERE / package
        name = source.stem
        stubs = [out_dir / f"{name}_pb2.py", out_dir / f"{name}_pb2_grpc.py"]
        if not source.exists():
            if all(stub.exists() for stub in stubs):
                continue          # a source tree that ships the stubs without their .proto
            raise SystemExit(f"setup.py: {proto} is missing and {package} holds no stubs made from it")
        if all(stub.exists() and stub.stat().st_mtime >= source.stat().st_mtime for stub in stubs):
            continue
        try:
            from grpc_tools import protoc
        except ImportError:
            raise SystemExit(f"setup.py: generating the stubs of {proto} needs grpcio-tools: "
                             "pip install grpcio-tools (pip install . brings its own)") from None
        if protoc.main(["grpc_tools.protoc", f"-I{source.parent}", f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}", str(source)]) != 0:
            raise SystemExit(f"setup.py: protoc failed on {proto}")
        # protoc writes a top-level `import NAME_pb2`; the stubs live in a package. The .proto
        # keeps its own name (-I its folder), so the descriptor is the one the seed's stubs
        # register, and both can be loaded in one process.
        grpc_stub = stubs[1]
        text = grpc_stub.read_text()
        plain = f"import {name}_pb2 as"
        if plain not in text:
            raise SystemExit(f"setup.py: {grpc_stub.name} has no '{plain}' line to make relative")
        grpc_stub.write_text(text.replace(plain, f"from . import {name}_pb2 as", 1))


generate_grpc_stubs()

debug = os.environ.get("REPLAYER_DEBUG_BUILD") == "1"
# Release: no bounds or wrap checks in the hot loop; debug: all checks on.
checks = debug
directives = {
    "language_level": 3,
    "boundscheck": checks,
    "wraparound": checks,
    "initializedcheck": checks,
    "cdivision": not checks,
}

extensions = [
    Extension(
        "replayer._pacer",
        ["_ext/replayer/_pacer.pyx"],
        include_dirs=["_ext/includes"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    # libcurl is loaded at run time (the one pycurl brings), so no curl headers are needed.
    Extension(
        "replayer._curl",
        ["_ext/replayer/_curl.pyx"],
        include_dirs=["_ext/includes"],
        libraries=["dl"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    # replayer's own HTTP/1.1 client for plain http:// (sockets and epoll only).
    Extension(
        "replayer._h1",
        ["_ext/replayer/_h1.pyx"],
        include_dirs=["_ext/includes"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
]

setup(ext_modules=cythonize(extensions, include_path=["_ext"], build_dir="build/cython",
                            compiler_directives=directives))
