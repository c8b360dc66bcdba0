# libcurl and gRPC outcomes as error kinds and failure text (declared in failures.pxd).

cdef signed char curl_error_kind(int code) noexcept nogil:
    # libcurl error numbers (CURLE_*, stable across versions) -> replayer error kinds
    if code == 28:                                   # OPERATION_TIMEDOUT
        return ERR_TIMEOUT
    if code == 5 or code == 6 or code == 7:          # resolve proxy/host, connect
        return ERR_CONNECT
    if code == 18 or code == 52 or code == 55 or code == 56 or code == 92:
        return ERR_RESET                             # partial, nothing, send/recv, h2 stream
    if code == 35 or code == 58 or code == 59 or code == 60 or code == 77:
        return ERR_TLS
    if code == 1 or code == 3 or code == 8 or code == 16:
        return ERR_PROTOCOL                          # protocol, URL, weird reply, h2 framing
    if code == 42:
        return ERR_CANCELLED
    return ERR_OTHER


cdef const char *grpc_failure_text(char *text, int code, const char *message) noexcept nogil:
    # "UNAVAILABLE: the server's grpc-message" (grpc-status N for a code past the known ones)
    cdef size_t at
    if 0 <= code <= 16:
        at = text_append(text, FAILURE_TEXT, 0, GRPC_CODE_NAMES[code])
    else:
        at = text_append_int(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                             "grpc-status "), code)
    if message[0]:
        text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, at, ": "), message)
    return text


cdef signed char grpc_kind(int grpc_status) noexcept nogil:
    if grpc_status == 0:
        return ERR_OK
    if grpc_status == GRPC_DEADLINE_EXCEEDED:
        return ERR_TIMEOUT
    if grpc_status == GRPC_CANCELLED:
        return ERR_CANCELLED
    return ERR_STATUS


cdef long grpc_code_of_failure(signed char kind) noexcept nogil:
    # The code a gRPC client reports for a call that failed below gRPC (as grpcio does).
    if kind == ERR_TIMEOUT:
        return GRPC_DEADLINE_EXCEEDED
    if kind == ERR_CANCELLED:
        return GRPC_CANCELLED
    if kind == ERR_CONNECT or kind == ERR_RESET or kind == ERR_TLS:
        return GRPC_UNAVAILABLE
    if kind == ERR_PROTOCOL:
        return GRPC_INTERNAL
    return GRPC_UNKNOWN


cdef long grpc_code_of_http_status(long http_status) noexcept nogil:
    # gRPC's HTTP-to-gRPC status mapping (doc/http-grpc-status-mapping.md).
    if http_status == 400 or 200 <= http_status < 300:
        return GRPC_INTERNAL
    if http_status == 401:
        return GRPC_UNAUTHENTICATED
    if http_status == 403:
        return GRPC_PERMISSION_DENIED
    if http_status == 404:
        return GRPC_UNIMPLEMENTED
    if http_status == 429 or http_status == 502 or http_status == 503 or http_status == 504:
        return GRPC_UNAVAILABLE
    return GRPC_UNKNOWN
