# replayer._curl's declarations, one part per file (as uvloop's loop.pxd).
cimport cython
from includes.curl cimport CURL, CURLM, curl_slist
from includes.epoll cimport epoll_event
from replayer._pacer cimport (Transport, FAILURE_TEXT, ContentTable, ContentBuffer, Template,
                              FillValues)

include "curl/callbacks.pxd"
include "curl/failures.pxd"
include "curl/transport.pxd"
