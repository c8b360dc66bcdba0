/* The part of libcurl's C API the HTTP transport calls, loaded at run time.
 *
 * replayer builds without libcurl's headers and uses the libcurl that pycurl already loaded
 * (the wheel bundles one with HTTP/2), so the same library serves both. Option, info and
 * message numbers are libcurl's stable ABI values (curl.h, multi.h); tests/e2e/test_curl_transport.py
 * checks them against pycurl's constants. The variadic setopt/getinfo are wrapped in typed
 * helpers, so a long is never passed where libcurl reads a pointer.
 */
#ifndef REPLAYER_CURL_API_H
#define REPLAYER_CURL_API_H

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

typedef void CURL;
typedef void CURLM;
typedef long long curl_off_t;

struct curl_slist {
    char *data;
    struct curl_slist *next;
};

typedef struct {
    int msg;               /* CURLMSG_DONE = 1 */
    CURL *easy_handle;
    union {
        void *whatever;
        int result;        /* CURLcode */
    } data;
} CURLMsg;

/* Easy options */
#define RC_OPT_WRITEDATA 10001
#define RC_OPT_ERRORBUFFER 10010     /* not in pycurl: CURLOPTTYPE_OBJECTPOINT + 10; the
                                        buffer holds CURL_ERROR_SIZE (256) bytes */
#define RC_OPT_URL 10002
#define RC_OPT_POSTFIELDS 10015
#define RC_OPT_HTTPHEADER 10023
#define RC_OPT_HEADERDATA 10029
#define RC_OPT_CUSTOMREQUEST 10036
#define RC_OPT_NOBODY 44
#define RC_OPT_HTTPGET 80
#define RC_OPT_SSL_VERIFYPEER 64
#define RC_OPT_SSL_VERIFYHOST 81
#define RC_OPT_CAINFO 10065
#define RC_OPT_CAPATH 10097
#define RC_OPT_HTTP_VERSION 84
#define RC_OPT_NOSIGNAL 99
#define RC_OPT_PRIVATE 10103
#define RC_OPT_TIMEOUT_MS 155
#define RC_OPT_CONNECTTIMEOUT_MS 156
#define RC_OPT_RESOLVE 10203
#define RC_OPT_PIPEWAIT 237
#define RC_OPT_WRITEFUNCTION 20011
#define RC_OPT_HEADERFUNCTION 20079
#define RC_OPT_POSTFIELDSIZE_LARGE 30120
#define RC_OPT_PREREQFUNCTION 20312
#define RC_OPT_PREREQDATA 10313
#define RC_OPT_CLOSESOCKETFUNCTION 20208
#define RC_OPT_CLOSESOCKETDATA 10209

/* Multi options */
#define RC_MOPT_SOCKETFUNCTION 20001
#define RC_MOPT_SOCKETDATA 10002
#define RC_MOPT_PIPELINING 3
#define RC_MOPT_TIMERFUNCTION 20004
#define RC_MOPT_TIMERDATA 10005
#define RC_MOPT_MAXCONNECTS 6
#define RC_MOPT_MAX_HOST_CONNECTIONS 7

/* Info */
#define RC_INFO_RESPONSE_CODE 0x200002
#define RC_INFO_PRIVATE 0x100015
#define RC_INFO_SIZE_DOWNLOAD_T 0x600008
#define RC_INFO_OS_ERRNO 0x200019

#define RC_PIPE_MULTIPLEX 2
#define RC_MSG_DONE 1
#define RC_SOCKET_TIMEOUT (-1)
#define RC_CSELECT_IN 1
#define RC_CSELECT_OUT 2
#define RC_CSELECT_ERR 4
#define RC_POLL_IN 1
#define RC_POLL_OUT 2
#define RC_POLL_REMOVE 4
#define RC_GLOBAL_ALL 3

typedef struct {
    int (*global_init)(long);
    CURL *(*easy_init)(void);
    int (*easy_setopt)(CURL *, int, ...);
    int (*easy_getinfo)(CURL *, int, ...);
    void (*easy_cleanup)(CURL *);
    CURLM *(*multi_init)(void);
    int (*multi_setopt)(CURLM *, int, ...);
    int (*multi_add_handle)(CURLM *, CURL *);
    int (*multi_remove_handle)(CURLM *, CURL *);
    int (*multi_socket_action)(CURLM *, int, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    int (*multi_cleanup)(CURLM *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    char *(*version)(void);
    const char *(*easy_strerror)(int);
} replayer_curl_api;

static replayer_curl_api rc_api;
static int rc_loaded = 0;

/* Loads every function from the libcurl at `path`; returns the name of the first one
 * missing (or the dlopen error), NULL on success. */
static const char *rc_load(const char *path) {
    void *lib;
    if (rc_loaded)
        return NULL;
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return dlerror();
#define RC_SYM(field, name)                                  \
    *(void **)(&rc_api.field) = dlsym(lib, name);            \
    if (rc_api.field == NULL)                                \
        return name;
    RC_SYM(global_init, "curl_global_init")
    RC_SYM(easy_init, "curl_easy_init")
    RC_SYM(easy_setopt, "curl_easy_setopt")
    RC_SYM(easy_getinfo, "curl_easy_getinfo")
    RC_SYM(easy_cleanup, "curl_easy_cleanup")
    RC_SYM(multi_init, "curl_multi_init")
    RC_SYM(multi_setopt, "curl_multi_setopt")
    RC_SYM(multi_add_handle, "curl_multi_add_handle")
    RC_SYM(multi_remove_handle, "curl_multi_remove_handle")
    RC_SYM(multi_socket_action, "curl_multi_socket_action")
    RC_SYM(multi_info_read, "curl_multi_info_read")
    RC_SYM(multi_cleanup, "curl_multi_cleanup")
    RC_SYM(slist_append, "curl_slist_append")
    RC_SYM(slist_free_all, "curl_slist_free_all")
    RC_SYM(version, "curl_version")
    RC_SYM(easy_strerror, "curl_easy_strerror")
#undef RC_SYM
    if (rc_api.global_init(RC_GLOBAL_ALL) != 0)
        return "curl_global_init failed";
    rc_loaded = 1;
    return NULL;
}

static inline int rc_setopt_long(CURL *e, int opt, long v) { return rc_api.easy_setopt(e, opt, v); }
static inline int rc_setopt_ptr(CURL *e, int opt, const void *v) { return rc_api.easy_setopt(e, opt, v); }
static inline int rc_setopt_off(CURL *e, int opt, curl_off_t v) { return rc_api.easy_setopt(e, opt, v); }
static inline int rc_msetopt_long(CURLM *m, int opt, long v) { return rc_api.multi_setopt(m, opt, v); }
static inline int rc_msetopt_ptr(CURLM *m, int opt, const void *v) { return rc_api.multi_setopt(m, opt, v); }
static inline int rc_getinfo_long(CURL *e, int info, long *v) { return rc_api.easy_getinfo(e, info, v); }
static inline int rc_getinfo_off(CURL *e, int info, curl_off_t *v) { return rc_api.easy_getinfo(e, info, v); }
static inline int rc_getinfo_ptr(CURL *e, int info, void **v) { return rc_api.easy_getinfo(e, info, v); }

/* Callback types, as libcurl calls them. */
typedef size_t (*rc_data_cb)(char *, size_t, size_t, void *);
typedef int (*rc_prereq_cb)(void *, char *, char *, int, int);
typedef int (*rc_socket_cb)(CURL *, int, int, void *, void *);
typedef int (*rc_timer_cb)(CURLM *, long, void *);


#endif
