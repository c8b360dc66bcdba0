# cython: language_level=3
"""HTTP (and gRPC over HTTP/2) through libcurl's multi socket interface, driven from C.

The pacer calls prepare/submit/flush/poll; none of them touches a Python object: easy handles
are pooled in C slots, libcurl tells us which sockets to watch (epoll, nanosecond timeouts) and
when its next timer is due, and each finished transfer becomes a ring row straight from
curl_easy_getinfo.

Content: each (target, payload) pair the worker sends has a template in the worker's
ContentTable (replayer.transports.libcurl builds it): its body (a gRPC message framed), its URL
and its header lines, with the places of the fields filled per request. A slot keeps the pair
it was set up for (URL, method, POSTFIELDS, header list) and is set up again only when it
takes a request of another pair. Where a pair has fields, the slot sends its own copy of the
body or of the header lines: the fields known in advance (event id, random values, trace ids)
are written before the due time (prepare takes the slot that will send the request and fills
it while the pacer waits), the send-time ones (sent_ns, deadline = send + the class's SLO) in
the pre-request callback with the send stamp's own clock read. A pair without fields sends its
template as it is (no copy). A request's class sets its timeout (CURLOPT_TIMEOUT_MS).

Stamps: `sent_ns` is taken in libcurl's pre-request callback, once the connection is ready
and just before the request is written; a request that never got there (its dial failed, it
was cancelled while waiting for a connection) has none (0). `done_ns` is when epoll reported
the socket that completed it.

Failures: each one is also noted in the transport's failure log (Transport.note_failure):
libcurl's own error text for the transfer (CURLOPT_ERRORBUFFER), "HTTP 503", or for gRPC the
status name and its grpc-message ("UNAVAILABLE: ...").

One concern per file, each .pyx part beside its .pxd part (included by _curl.pxd): callbacks
(libcurl's, in plain C), failures (libcurl and gRPC outcomes as error kinds and text),
transport (the multi handle and its slots). libcurl's C API: includes/curl.pxd, curl_api.h.
"""
cimport cython
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.errno cimport errno, ENOENT, EEXIST
from libc.string cimport strerror, strstr

from includes.curl cimport *      # libcurl's API as curl_api.h loads it: rc_api, RC_*
from includes.epoll cimport (epoll_event, epoll_create1, epoll_ctl, rc_epoll_wait_ns,
                             EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL, EPOLLIN,
                             EPOLLOUT, EPOLLERR, EPOLLHUP)
from includes.clock cimport realtime_ns, cpu_relax
from includes.failure_text cimport text_append, text_append_int
from includes.sockets cimport close, strncasecmp
from replayer._pacer cimport (Transport, RecordRing, ERR_OK, ERR_TIMEOUT, ERR_CONNECT,
                              ERR_RESET, ERR_TLS, ERR_PROTOCOL, ERR_CANCELLED, ERR_STATUS,
                              ERR_OTHER, FAILURE_TEXT, waited_cause, ContentTable, Template,
                              FillValues, TEMPLATE_HEAD, fill_part, buffer_load, buffer_free)


# libcurl's ABI numbers (curl_api.h), for the test that checks them against pycurl's constants.
ABI = {
    "WRITEDATA": RC_OPT_WRITEDATA, "URL": RC_OPT_URL, "POSTFIELDS": RC_OPT_POSTFIELDS,
    "HTTPHEADER": RC_OPT_HTTPHEADER, "CUSTOMREQUEST": RC_OPT_CUSTOMREQUEST,
    "SSL_VERIFYPEER": RC_OPT_SSL_VERIFYPEER, "SSL_VERIFYHOST": RC_OPT_SSL_VERIFYHOST,
    "CAINFO": RC_OPT_CAINFO, "CAPATH": RC_OPT_CAPATH,
    "HTTP_VERSION": RC_OPT_HTTP_VERSION, "NOSIGNAL": RC_OPT_NOSIGNAL,
    "TIMEOUT_MS": RC_OPT_TIMEOUT_MS, "CONNECTTIMEOUT_MS": RC_OPT_CONNECTTIMEOUT_MS,
    "RESOLVE": RC_OPT_RESOLVE, "PIPEWAIT": RC_OPT_PIPEWAIT, "WRITEFUNCTION": RC_OPT_WRITEFUNCTION,
    "HEADERFUNCTION": RC_OPT_HEADERFUNCTION, "POSTFIELDSIZE_LARGE": RC_OPT_POSTFIELDSIZE_LARGE,
    "NOBODY": RC_OPT_NOBODY, "HTTPGET": RC_OPT_HTTPGET,
    "PREREQFUNCTION": RC_OPT_PREREQFUNCTION, "CLOSESOCKETFUNCTION": RC_OPT_CLOSESOCKETFUNCTION, "M_SOCKETFUNCTION": RC_MOPT_SOCKETFUNCTION,
    "M_PIPELINING": RC_MOPT_PIPELINING, "M_TIMERFUNCTION": RC_MOPT_TIMERFUNCTION,
    "M_MAXCONNECTS": RC_MOPT_MAXCONNECTS, "M_MAX_HOST_CONNECTIONS": RC_MOPT_MAX_HOST_CONNECTIONS,
    "RESPONSE_CODE": RC_INFO_RESPONSE_CODE, "SIZE_DOWNLOAD_T": RC_INFO_SIZE_DOWNLOAD_T,
    "OS_ERRNO": RC_INFO_OS_ERRNO,
    "PIPE_MULTIPLEX": RC_PIPE_MULTIPLEX,
}


def load_libcurl(path):
    """Load libcurl's functions from `path` (once per process); RuntimeError says what failed."""
    cdef bytes p = path.encode() if isinstance(path, str) else bytes(path)
    cdef const char *err = rc_load(p)
    if err != NULL:
        raise RuntimeError(f"cannot use libcurl at {path}: {err.decode(errors='replace')}")
    return rc_api.version().decode()


include "curl/callbacks.pyx"
include "curl/failures.pyx"
include "curl/transport.pyx"
