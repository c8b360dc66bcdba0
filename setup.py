"""Builds the Cython pacer and the HTTP transports (libcurl's, and replayer's own HTTP/1.1) from _ext/; everything else is plain Python (see pyproject.toml).

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
        ["_ext/_pacer.pyx"],
        include_dirs=["_ext"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    # libcurl is loaded at run time (the one pycurl brings), so no curl headers are needed.
    Extension(
        "replayer._curl",
        ["_ext/_curl.pyx"],
        include_dirs=["_ext"],
        libraries=["dl"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
    # replayer's own HTTP/1.1 client for plain http:// (sockets and epoll only).
    Extension(
        "replayer._h1",
        ["_ext/_h1.pyx"],
        include_dirs=["_ext"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    ),
]

setup(ext_modules=cythonize(extensions, include_path=["_ext"], compiler_directives=directives))
