# replayer._h1's declarations, one part per file (as uvloop's loop.pxd).
cimport cython
from includes.epoll cimport epoll_event
from replayer._pacer cimport Transport, RecordRing, ContentTable, ContentBuffer

include "h1/hosts.pxd"
include "h1/answer.pxd"
include "h1/transport.pxd"
