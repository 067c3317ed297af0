
/*
 * A connection of the pool: a non-blocking libpq connection whose socket is
 * an nginx connection.  It carries up to recovery_pipeline_depth calls at a
 * time, pipelined: each call its own transaction, ended by its own sync.  It
 * tells its owner when a call is answered or it goes down (changed); it
 * reconnects by itself.
 */

#ifndef _NGX_HTTP_RECOVERY_CONN_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_CONN_H_INCLUDED_


#include "ngx_http_recovery_pool.h"


typedef enum {
    NGX_HTTP_RECOVERY_CONN_DOWN = 0,    /* waiting to reconnect */
    NGX_HTTP_RECOVERY_CONN_CONNECTING,
    NGX_HTTP_RECOVERY_CONN_IDLE,
    NGX_HTTP_RECOVERY_CONN_BUSY
} ngx_http_recovery_conn_state_e;


/* each statement prepared and run, and a sync between a call's two parts */
#define NGX_HTTP_RECOVERY_MAX_STEPS  (2 * NGX_HTTP_RECOVERY_CALL_STATEMENTS + 1)


typedef void (*ngx_http_recovery_conn_changed_pt)(
    ngx_http_recovery_conn_t *conn);


/* a call sent and not answered yet: what each of its results belongs to */
typedef struct {
    ngx_http_recovery_call_t           *call;   /* NULL: its owner left */
    ngx_uint_t                          steps[NGX_HTTP_RECOVERY_MAX_STEPS];
    ngx_uint_t                          nsteps;
    ngx_msec_t                          timeout;
    unsigned                            writes:1;
} ngx_http_recovery_flight_t;


struct ngx_http_recovery_conn_s {
    PGconn                             *pg;
    ngx_connection_t                   *c;
    ngx_uint_t                          state;
    u_char                             *prepared;   /* per statement */
    ngx_event_t                         reconnect;
    ngx_msec_t                          delay;
    ngx_http_recovery_flight_t         *flights;    /* a ring, oldest first */
    ngx_uint_t                          first;
    ngx_uint_t                          nflights;
    ngx_uint_t                          writes;     /* flights that write */
    ngx_uint_t                          step;       /* of the first flight */
    ngx_msec_t                          progress;   /* last answer, or send */
    unsigned                            sync_error:1;   /* commit failed */

    /* set by its owner */
    ngx_http_recovery_pool_conf_t      *conf;
    const char                        **keywords;   /* PQconnectStartParams */
    const char                        **values;
    ngx_log_t                          *log;
    ngx_http_recovery_conn_changed_pt   changed;    /* idle, or down */
    void                               *data;
};


void ngx_http_recovery_conn_start(ngx_http_recovery_conn_t *conn);
ngx_int_t ngx_http_recovery_conn_send(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_call_t *call);
void ngx_http_recovery_conn_forget(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_call_t *call);
void ngx_http_recovery_conn_close(ngx_http_recovery_conn_t *conn);


#endif /* _NGX_HTTP_RECOVERY_CONN_H_INCLUDED_ */
