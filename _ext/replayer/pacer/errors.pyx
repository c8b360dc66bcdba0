# The error kinds' names, by value (ERR_* in errors.pxd); tests/unit/test_record_layout.py
# checks every ERR_* against them.
ERROR_KINDS = ("ok", "timeout", "connect", "reset", "tls", "protocol", "cancelled",
               "overload", "not_sent", "status", "other")
assert len(ERROR_KINDS) == N_ERROR_KINDS
