# cython: language_level=3
"""Pacer, record ring and transport base: the only code on the send path.

Waiting and stamping run without the GIL and without Python objects; the GIL is taken at
one seam, Transport.submit/flush/poll, where a Python transport (pycurl, grpcio) needs it.
`cython -a` shows that seam as the only yellow in Pacer.run (tests/e2e/test_hot_path.py).

Each transport also keeps a failure log (Transport.note_failure, a fixed table in C): per
error kind, the first failure and its most common messages, written out by the worker at its
end (replayer.analysis.failures).

One concern per file, each .pyx part beside its .pxd part (included by _pacer.pxd):
errors (the error kinds), blocks (the shared control and status blocks), ring (the record
row, the late causes it carries, and the ring), content (each request's template, its fields
filled at send time, and its class), transport (the base and its failure log),
null_transport, pacer (the loop, with its count of CPU stalls).
"""
cimport cython
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, strncmp

from includes.clock cimport (realtime_ns, sleep_until_realtime_ns, cpu_relax, load_acquire,
                             store_release)
from includes.failure_text cimport text_append
from includes.fill cimport (rc_rng, rc_rng_seed, rc_write_varint, rc_write_decimal,
                           rc_fill_random_bytes, rc_fill_random_f32)
from includes.trace_ids cimport write_trace_ids
from includes.python cimport (PyThreadState, PyGILState_Check, PyEval_SaveThread,
                              PyEval_RestoreThread)

include "pacer/errors.pyx"
include "pacer/ring.pyx"
include "pacer/content.pyx"
include "pacer/transport.pyx"
include "pacer/null_transport.pyx"
include "pacer/pacer.pyx"
include "pacer/users.pyx"
