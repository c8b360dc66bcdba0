# Error kinds, the one list of them: every ring row carries one. Exported to Python under the
# same names (cpdef); errors.pyx names them (ERROR_KINDS), replayer.analysis.records reads it.
cpdef enum:
    ERR_OK = 0
    ERR_TIMEOUT = 1
    ERR_CONNECT = 2
    ERR_RESET = 3
    ERR_TLS = 4
    ERR_PROTOCOL = 5
    ERR_CANCELLED = 6
    ERR_OVERLOAD = 7
    ERR_NOT_SENT = 8
    ERR_STATUS = 9
    ERR_OTHER = 10
    N_ERROR_KINDS = 11
