
/*
 * The per-worker pool of non-blocking libpq connections.  It runs calls:
 * a few prepared statements sent as one pipeline with one sync, so one
 * round trip and one transaction, and hands each call's results back
 * through the call's done callback.  It knows nothing of HTTP requests.
 */

#ifndef _NGX_HTTP_RECOVERY_POOL_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_POOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#define NGX_HTTP_RECOVERY_CALL_STATEMENTS  4
#define NGX_HTTP_RECOVERY_DEPTH            4    /* recovery_pipeline_depth */
#define NGX_HTTP_RECOVERY_MAX_DEPTH        64


typedef struct ngx_http_recovery_pool_s  ngx_http_recovery_pool_t;
typedef struct ngx_http_recovery_conn_s  ngx_http_recovery_conn_t;
typedef struct ngx_http_recovery_call_s  ngx_http_recovery_call_t;

typedef void (*ngx_http_recovery_call_done_pt)(ngx_http_recovery_call_t *call);


/* the pool's settings (recovery_database, recovery_pool_size, ...) */
typedef struct {
    ngx_str_t                       conninfo;
    ngx_uint_t                      size;
    ngx_uint_t                      read_reserve;   /* for calls that read */
    ngx_uint_t                      depth;      /* calls pipelined at once */
    ngx_uint_t                      queue_size;
    ngx_msec_t                      queue_timeout;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      statement_timeout;
    ngx_msec_t                      lock_timeout;
    ngx_msec_t                      reconnect_max_delay;
    ngx_uint_t                      statements;     /* prepared, by index */
    unsigned                        spread:1;   /* over its hosts */
} ngx_http_recovery_pool_conf_t;


/* one statement of a call, prepared once on each connection */
typedef struct {
    ngx_uint_t                      index;      /* < conf->statements */
    const char                     *name;
    const char                     *sql;
    int                             nparams;
    const char                    **params;
    int                             binary;     /* results in binary */
    PGresult                       *result;     /* its rows, if kept */
    unsigned                        keep:1;
} ngx_http_recovery_statement_t;


/*
 * One round trip: its statements, then the sync.  With committed set, the
 * statements from that one on run after a first sync, once the others have
 * committed, in a transaction of their own (a write's commit position).
 */
struct ngx_http_recovery_call_s {
    ngx_http_recovery_statement_t
                          statements[NGX_HTTP_RECOVERY_CALL_STATEMENTS];
    ngx_uint_t                      nstatements;
    ngx_uint_t                      committed;  /* 0: one transaction */
    ngx_msec_t                      timeout;    /* the server's, for it */
    ngx_log_t                      *log;
    unsigned                        writes:1;   /* may wait on row locks */
    ngx_http_recovery_call_done_pt  done;       /* answered, or failed */
    void                           *data;       /* the caller's */
    PGresult                       *error;      /* the first error */
    ngx_str_t                       failure;    /* no answer: why */

    /* the pool's own */
    ngx_http_recovery_pool_t       *pool;
    ngx_http_recovery_conn_t       *conn;       /* while the database works */
    ngx_queue_t                     queue;      /* while waiting for it */
    ngx_event_t                     wait;       /* the queue's timeout */
    unsigned                        queued:1;
};


ngx_http_recovery_pool_t *ngx_http_recovery_pool_init(ngx_cycle_t *cycle,
    ngx_http_recovery_pool_conf_t *conf);
void ngx_http_recovery_pool_done(ngx_http_recovery_pool_t *pool);
ngx_int_t ngx_http_recovery_pool_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call);
void ngx_http_recovery_pool_release(ngx_http_recovery_call_t *call);
ngx_uint_t ngx_http_recovery_pool_connected(ngx_http_recovery_pool_t *pool);
void ngx_http_recovery_pool_stats(ngx_http_recovery_pool_t *pool,
    ngx_uint_t *busy, ngx_uint_t *idle, ngx_uint_t *queued,
    ngx_uint_t *pipelined);
time_t ngx_http_recovery_pool_retry_after(ngx_http_recovery_pool_t *pool);


#endif /* _NGX_HTTP_RECOVERY_POOL_H_INCLUDED_ */
