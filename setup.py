"""Builds the Cython pacer and the HTTP transports (libcurl's, and replayer's own HTTP/1.1) from _ext/; everything else is plain Python (see pyproject.toml).

_ext/ is laid out as uvloop's sources: each module's .pyx and .pxd in _ext/replayer/, which
include their parts (one concern per file, each .pyx beside its .pxd) from a folder named after
the module; the C declarations and headers they share are in _ext/includes/. The generated C
goes to build/cython/.

REPLAYER_DEBUG_BUILD=1 builds with bounds checks on and without optimisation.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

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
