# The part of libcurl's C API the libcurl transport calls, loaded at run time (curl_api.h).

cdef extern from "curl_api.h" nogil:
    ctypedef void CURL
    ctypedef void CURLM
    ctypedef long long curl_off_t
    cdef struct curl_slist:
        char *data
        curl_slist *next
    cdef union _msg_data:
        void *whatever
        int result
    ctypedef struct CURLMsg:
        int msg
        CURL *easy_handle
        _msg_data data
    ctypedef struct replayer_curl_api:
        CURL *(*easy_init)()
        void (*easy_cleanup)(CURL *)
        CURLM *(*multi_init)()
        int (*multi_add_handle)(CURLM *, CURL *)
        int (*multi_remove_handle)(CURLM *, CURL *)
        int (*multi_socket_action)(CURLM *, int, int, int *)
        CURLMsg *(*multi_info_read)(CURLM *, int *)
        int (*multi_cleanup)(CURLM *)
        curl_slist *(*slist_append)(curl_slist *, const char *)
        void (*slist_free_all)(curl_slist *)
        char *(*version)()
        const char *(*easy_strerror)(int)
    replayer_curl_api rc_api
    const char *rc_load(const char *path)
    int rc_setopt_long(CURL *e, int opt, long v)
    int rc_setopt_ptr(CURL *e, int opt, const void *v)
    int rc_setopt_off(CURL *e, int opt, curl_off_t v)
    int rc_msetopt_long(CURLM *m, int opt, long v)
    int rc_msetopt_ptr(CURLM *m, int opt, const void *v)
    int rc_getinfo_long(CURL *e, int info, long *v)
    int rc_getinfo_off(CURL *e, int info, curl_off_t *v)
    int rc_getinfo_ptr(CURL *e, int info, void **v)
    int RC_OPT_ERRORBUFFER
    int RC_OPT_WRITEDATA, RC_OPT_URL, RC_OPT_POSTFIELDS, RC_OPT_HTTPHEADER, RC_OPT_HEADERDATA
    int RC_OPT_CUSTOMREQUEST, RC_OPT_SSL_VERIFYPEER, RC_OPT_SSL_VERIFYHOST, RC_OPT_HTTP_VERSION
    int RC_OPT_NOBODY, RC_OPT_HTTPGET
    int RC_OPT_CAINFO, RC_OPT_CAPATH
    int RC_OPT_NOSIGNAL, RC_OPT_PRIVATE, RC_OPT_TIMEOUT_MS, RC_OPT_CONNECTTIMEOUT_MS
    int RC_OPT_RESOLVE, RC_OPT_PIPEWAIT, RC_OPT_WRITEFUNCTION, RC_OPT_HEADERFUNCTION
    int RC_OPT_POSTFIELDSIZE_LARGE, RC_OPT_PREREQFUNCTION, RC_OPT_PREREQDATA
    int RC_OPT_CLOSESOCKETFUNCTION, RC_OPT_CLOSESOCKETDATA
    int RC_MOPT_SOCKETFUNCTION, RC_MOPT_SOCKETDATA, RC_MOPT_PIPELINING, RC_MOPT_TIMERFUNCTION
    int RC_MOPT_TIMERDATA, RC_MOPT_MAXCONNECTS, RC_MOPT_MAX_HOST_CONNECTIONS
    int RC_INFO_RESPONSE_CODE, RC_INFO_PRIVATE, RC_INFO_SIZE_DOWNLOAD_T, RC_INFO_OS_ERRNO
    int RC_PIPE_MULTIPLEX, RC_MSG_DONE, RC_SOCKET_TIMEOUT
    int RC_CSELECT_IN, RC_CSELECT_OUT, RC_CSELECT_ERR
    int RC_POLL_IN, RC_POLL_OUT, RC_POLL_REMOVE
