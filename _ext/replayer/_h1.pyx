# cython: language_level=3
"""Plain HTTP/1.1 keep-alive requests from C: replayer's own client for http:// targets.

libcurl spends about 7 µs of user time per transfer (request formatting, URL parsing, the
connection-pool search, malloc/free) against the kernel's 7 µs; a replayer request is the same
bytes every time but for its target and payload (and the fields filled at send time: ids,
deadlines, random values). So each (target, payload) request is built once
(replayer.transports.native, into the worker's ContentTable), a connection fills its own copy
of it where it has fields, writes it with send() (a large body resumed when the socket has
room) and reads the answer with a small parser (status line, Content-Length, chunked, Connection: close, bodies
until close); everything else (TLS, HTTP/2, gRPC, proxies) stays with libcurl (replayer._curl).

Connections: at most `connections` per host:port (as libcurl counts them; every target on it
shares them), kept alive; requests beyond them wait in a FIFO per host and go out when a
connection frees up. A keep-alive connection the server closed while idle is replaced and the
request sent again on a fresh one, once, as libcurl does. Body bytes are only counted: the
kernel drops them (MSG_TRUNC), and one wake-up reads at most READ_BUDGET from a connection.

Stamps: `sent_ns` just before the send() of the request's first byte (after the dial, for a
new connection); a request that never got that far (its dial failed or timed out, it was
cancelled while waiting for a connection) has none (0). `done_ns` when epoll reported the
socket whose read completed the answer.

Failures: each one is also noted in the transport's failure log (Transport.note_failure) with
what failed and why ("connect to 127.0.0.1:80: Connection refused", "HTTP 503"), built in a
stack buffer on the failure path.

One concern per file, each .pyx part beside its .pxd part (included by _h1.pxd): hosts (the
targets' requests, the hosts and their waiting requests), answer (the answer's parser, with
parse_answer for tests), transport (connections and the transport).
"""
cimport cython
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove, memchr, memcmp, strerror
from libc.errno cimport errno, EAGAIN, EINTR, EINPROGRESS

from includes.epoll cimport (epoll_event, epoll_create1, epoll_ctl, rc_epoll_wait_ns,
                             EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL, EPOLLIN,
                             EPOLLOUT, EPOLLERR, EPOLLHUP)
from includes.clock cimport realtime_ns
from includes.failure_text cimport text_append, text_append_int
from includes.sockets cimport (sockaddr, socklen_t, ssize_t, socket, connect, send, recv,
                               getsockopt, setsockopt, close, strncasecmp, SOCK_STREAM,
                               SOCK_NONBLOCK, SOCK_CLOEXEC, MSG_NOSIGNAL, MSG_TRUNC, SOL_SOCKET,
                               SO_ERROR, IPPROTO_TCP, TCP_NODELAY)
from replayer._pacer cimport (Transport, RecordRing, ERR_OK, ERR_TIMEOUT, ERR_CONNECT,
                              ERR_RESET, ERR_PROTOCOL, ERR_CANCELLED, ERR_STATUS, FAILURE_TEXT,
                              CAUSE_NONE, waited_cause, ContentTable, ContentBuffer,
                              Template, FillValues, TEMPLATE_HEAD, fill_part, buffer_load,
                              buffer_swap, buffer_free)

include "h1/hosts.pyx"
include "h1/answer.pyx"
include "h1/transport.pyx"
