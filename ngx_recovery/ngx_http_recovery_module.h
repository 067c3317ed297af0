
/*
 * ngx_recovery: the REST gateway of Payment Recovery.  It turns an HTTP
 * request into one call of a SQL function of the pg_recovery extension, over
 * a per-worker pool of non-blocking libpq connections, and the function's
 * JSON into the response.  It holds no business rule.
 *
 * This header has what every file of the gateway shares: the configuration,
 * a route, and the context of a request on its way.  Each concern declares
 * its functions in a header of its own (docs/ARCHITECTURE.md has the map).
 */

#ifndef _NGX_HTTP_RECOVERY_MODULE_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>
#include <json.h>

#include "ngx_http_recovery_jwt.h"
#include "ngx_http_recovery_listen.h"
#include "ngx_http_recovery_pool.h"


#define NGX_HTTP_RECOVERY_CALL       1    /* recovery_call: a SQL function */
#define NGX_HTTP_RECOVERY_LOGIN      2    /* recovery_login: mints a token */
#define NGX_HTTP_RECOVERY_EVENTS     3    /* recovery_events: a stream */
#define NGX_HTTP_RECOVERY_TICKET     4    /* recovery_events_ticket */

/* an event-stream ticket: what a browser's EventSource sends in ?ticket= */
#define NGX_HTTP_RECOVERY_TICKET_TTL   30
#define NGX_HTTP_RECOVERY_TICKET_SCOPE "events"

#define NGX_HTTP_RECOVERY_AUTH_NONE  0
#define NGX_HTTP_RECOVERY_AUTH_JWT   1
#define NGX_HTTP_RECOVERY_AUTH_KEY   2

#define NGX_HTTP_RECOVERY_MAX_BODY_DEPTH  32

/* JSON as clients expect it: compact, and "/" not escaped */
#define NGX_HTTP_RECOVERY_JSON                                                \
    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)


/* where one argument of a routed SQL function comes from */
typedef struct {
    ngx_str_t                   name;       /* SQL parameter name */
    ngx_http_complex_value_t   *value;      /* captures, $arg_*, headers */
    ngx_str_t                   field;      /* JSON body field ("@field") */
    unsigned                    from_body:1;
    unsigned                    whole_body:1;   /* "@" */
    unsigned                    raw_body:1;     /* "%raw": bytes, as bytea */
    unsigned                    upload_type:1;  /* "%content_type" */
    unsigned                    upload_name:1;  /* "%filename" */
} ngx_http_recovery_arg_t;


/* one route: a location and a method mapped to a SQL function */
typedef struct {
    ngx_uint_t                  kind;       /* NGX_HTTP_RECOVERY_CALL ... */
    ngx_uint_t                  method;     /* NGX_HTTP_GET ... */
    ngx_str_t                   method_name;
    ngx_str_t                   function;
    ngx_str_t                   label;      /* "GET recovery.api_case_get" */
    ngx_array_t                 args;       /* ngx_http_recovery_arg_t */
    u_char                     *sql;        /* NUL-terminated, for PQprepare */
    u_char                      statement[16];  /* prepared statement name */
    u_char                     *idempotent_sql; /* POST: keeps the response */
    u_char                      idempotent_statement[16];
    ngx_uint_t                  index;      /* in main conf routes */
    ngx_uint_t                  status;     /* 200, or 201 for creation */
    ngx_str_t                   location;   /* 201: the new resource's path,
                                               its id appended */
    ngx_msec_t                  timeout;    /* 0: recovery_statement_timeout */
    ngx_str_t                   fields;     /* "a, b, c": the body's fields */
    ngx_str_t                   parameters; /* "a, b": the query's */
    unsigned                    needs_body:1;
    unsigned                    whole_body:1;   /* any field is welcome */
    unsigned                    raw_body:1;     /* any content, not JSON */
    unsigned                    file:1;         /* answers with a file */
    unsigned                    primary:1;      /* a GET the primary serves */
} ngx_http_recovery_route_t;


typedef struct {
    ngx_http_recovery_pool_conf_t  pool_conf;
    ngx_http_recovery_pool_conf_t  replica_conf;    /* recovery_replicas */
    ngx_array_t                 routes;     /* ngx_http_recovery_route_t * */
    ngx_shm_zone_t             *metrics_zone;
    ngx_http_recovery_pool_t   *pool;       /* this worker's */
    ngx_http_recovery_pool_t   *replicas;   /* its reads' on standbys */
    ngx_http_recovery_listen_t *listen;     /* its live events' reader */
    ngx_int_t                   request_id_index;
    unsigned                    used:1;
    unsigned                    events:1;   /* a recovery_events route */
} ngx_http_recovery_main_conf_t;


typedef struct {
    ngx_array_t                *routes;     /* ngx_http_recovery_route_t * */
    ngx_flag_t                  auth;
    ngx_flag_t                  api_keys;   /* API keys accepted here */
    ngx_uint_t                  algorithms;
    ngx_str_t                   secret;     /* HS256, read from a file */
    ngx_str_t                   previous_secret;    /* during a rotation */
    EVP_PKEY                   *public_key;
    EVP_PKEY                   *private_key;
    ngx_uint_t                  sign_algorithm;
    time_t                      leeway;
    time_t                      token_ttl;
    ngx_str_t                   issuer;
    ngx_str_t                   audience;
    ngx_array_t                *roles;      /* ngx_str_t, NUL-terminated */
    recovery_jwt_verifier_t     verifier;
    ngx_uint_t                  handler;    /* 0, or the ops handler */
    size_t                      events_buffer;      /* unsent, per stream */
    ngx_msec_t                  events_heartbeat;
} ngx_http_recovery_loc_conf_t;


/* one request on its way through the gateway */
typedef struct {
    ngx_http_request_t         *request;
    ngx_http_recovery_route_t  *route;
    ngx_str_t                   request_id;
    ngx_uint_t                  auth;       /* NGX_HTTP_RECOVERY_AUTH_* */
    ngx_str_t                   role;
    ngx_str_t                   user_id;
    ngx_str_t                   actor;
    ngx_str_t                   claims;     /* JSON text */
    time_t                      expires;    /* the token's, or 0 */
    ngx_str_t                   api_key;
    json_object                *body;
    ngx_str_t                   raw;        /* the uploaded bytes */
    ngx_str_t                   upload_type;    /* and their type */
    ngx_str_t                   upload_name;    /* and name */
    ngx_uint_t                  nparams;
    const char                **params;     /* [0] the Idempotency-Key, then
                                               the route's arguments */
    ngx_str_t                   idempotency_key;
    u_char                      request_hash[65];   /* body SHA-256, hex */
    ngx_msec_t                  start;
    ngx_http_recovery_call_t    call;       /* its round trip (_call.c) */
    ngx_http_recovery_pool_t   *pool;       /* the pool that runs it */
    const char                 *context[7]; /* the call's parameters */
    const char                 *begin[3];
    const char                 *replayed[1];
    u_char                      lsn[32];    /* the caller's last write's
                                               commit position, or "" */
    ngx_uint_t                  routed;     /* the routed statement */
    u_char                      timeout[NGX_INT64_LEN + 1];
    void                       *stream;     /* GET /api/v1/events */
    ngx_msec_t                  opened;     /* when the stream began */
    unsigned                    read_only:1;
    unsigned                    ticket:1;   /* credentials from ?ticket= */
} ngx_http_recovery_ctx_t;


extern ngx_module_t  ngx_http_recovery_module;


/* the first request header of that name */
static ngx_inline ngx_table_elt_t *
ngx_http_recovery_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *header;

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        if (header[i].key.len == name->len
            && ngx_strncasecmp(header[i].key.data, name->data, name->len) == 0)
        {
            return &header[i];
        }
    }
}


/* a NUL-terminated copy, as libpq takes text parameters */
static ngx_inline ngx_int_t
ngx_http_recovery_copy(ngx_pool_t *pool, ngx_str_t *dst, const char *src,
    size_t len)
{
    dst->data = ngx_pnalloc(pool, len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, len);
    dst->data[len] = '\0';
    dst->len = len;

    return NGX_OK;
}


#endif /* _NGX_HTTP_RECOVERY_MODULE_H_INCLUDED_ */
