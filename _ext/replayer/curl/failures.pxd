# What a transfer that did not succeed is: libcurl's error codes and gRPC's status codes as
# replayer's error kinds, and the text its failure is logged under.

# gRPC status codes replayer records for failures that have no grpc-status of their own.
cdef enum:
    GRPC_CANCELLED = 1
    GRPC_UNKNOWN = 2
    GRPC_DEADLINE_EXCEEDED = 4
    GRPC_PERMISSION_DENIED = 7
    GRPC_UNIMPLEMENTED = 12
    GRPC_INTERNAL = 13
    GRPC_UNAVAILABLE = 14
    GRPC_UNAUTHENTICATED = 16


cdef extern from *:
    """
    static const char *const replayer_grpc_code_names[17] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    """
    const char *const GRPC_CODE_NAMES "replayer_grpc_code_names" [17]

cdef signed char curl_error_kind(int code) noexcept nogil
cdef const char *grpc_failure_text(char *text, int code, const char *message) noexcept nogil
cdef signed char grpc_kind(int grpc_status) noexcept nogil
cdef long grpc_code_of_failure(signed char kind) noexcept nogil
cdef long grpc_code_of_http_status(long http_status) noexcept nogil
