
/*
 * The per-worker pool of database connections (ngx_http_recovery_conn.c).
 * A call goes to the connection with the fewest calls in flight, behind
 * them in its pipeline (up to recovery_pipeline_depth), or waits in a
 * bounded queue, oldest first, with a timeout; writes may not take the
 * connections kept for reads, and no call waits behind a write.  A
 * call is its statements (prepared once per connection), then a sync: one
 * implicit transaction, answered in the order the calls were sent.
 */

#include "ngx_http_recovery_pool.h"
#include "ngx_http_recovery_conn.h"


#define NGX_HTTP_RECOVERY_STALL  50     /* ms without an answer */


struct ngx_http_recovery_pool_s {
    ngx_http_recovery_pool_conf_t  *conf;
    ngx_http_recovery_conn_t       *conns;
    ngx_uint_t                      nconns;
    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;
    ngx_uint_t                      pipelined;  /* calls sent behind others */
    ngx_log_t                      *log;
    const char                     *keywords[6];
    const char                     *values[6];
};


static ngx_http_recovery_conn_t *ngx_http_recovery_pool_pick(
    ngx_http_recovery_pool_t *pool, ngx_http_recovery_call_t *call);
static ngx_int_t ngx_http_recovery_pool_send(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_conn_t *conn, ngx_http_recovery_call_t *call);
static void ngx_http_recovery_pool_dispatch(ngx_http_recovery_pool_t *pool);
static void ngx_http_recovery_pool_fail_waiting(
    ngx_http_recovery_pool_t *pool);
static void ngx_http_recovery_wait_handler(ngx_event_t *ev);
static void ngx_http_recovery_unqueue(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call);
static ngx_uint_t ngx_http_recovery_pool_live(ngx_http_recovery_pool_t *pool);
static ngx_int_t ngx_http_recovery_pool_spread(ngx_cycle_t *cycle,
    ngx_http_recovery_pool_t *pool, ngx_http_recovery_conn_t *conn,
    ngx_uint_t n);
static const char *ngx_http_recovery_pool_rotate(ngx_pool_t *pool,
    const char *list, ngx_uint_t n);
static void ngx_http_recovery_pool_changed(ngx_http_recovery_conn_t *conn);


ngx_http_recovery_pool_t *
ngx_http_recovery_pool_init(ngx_cycle_t *cycle,
    ngx_http_recovery_pool_conf_t *conf)
{
    ngx_uint_t                 i;
    ngx_http_recovery_pool_t  *pool;
    ngx_http_recovery_conn_t  *conn;
    u_char                    *options;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_recovery_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conf = conf;
    pool->log = cycle->log;
    pool->nconns = conf->size;
    ngx_queue_init(&pool->waiting);

    /*
     * The statement timeout bounds every call on the server side; the lock
     * timeout makes a write to a row someone holds fail fast (503, retry)
     * instead of keeping a connection until the statement timeout.
     */
    options = ngx_pnalloc(cycle->pool, 96);
    if (options == NULL) {
        return NULL;
    }

    ngx_sprintf(options, "-c statement_timeout=%M -c lock_timeout=%M%Z",
                conf->statement_timeout, conf->lock_timeout);

    pool->keywords[0] = "dbname";
    pool->values[0] = (const char *) conf->conninfo.data;
    pool->keywords[1] = "options";
    pool->values[1] = (const char *) options;
    pool->keywords[2] = "fallback_application_name";
    pool->values[2] = "ngx_recovery";
    pool->keywords[3] = NULL;
    pool->values[3] = NULL;

    pool->conns = ngx_pcalloc(cycle->pool,
                              pool->nconns * sizeof(ngx_http_recovery_conn_t));
    if (pool->conns == NULL) {
        return NULL;
    }

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        conn->prepared = ngx_pcalloc(cycle->pool, conf->statements);
        conn->flights = ngx_pcalloc(cycle->pool, conf->depth
                                    * sizeof(ngx_http_recovery_flight_t));
        if (conn->prepared == NULL || conn->flights == NULL) {
            return NULL;
        }

        conn->conf = conf;
        conn->keywords = pool->keywords;
        conn->values = pool->values;

        if (conf->spread
            && ngx_http_recovery_pool_spread(cycle, pool, conn,
                                             ngx_worker * pool->nconns + i)
               != NGX_OK)
        {
            return NULL;
        }

        conn->log = cycle->log;
        conn->changed = ngx_http_recovery_pool_changed;
        conn->data = pool;

        ngx_http_recovery_conn_start(conn);
    }

    return pool;
}


void
ngx_http_recovery_pool_done(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t  i;

    if (pool == NULL) {
        return;
    }

    for (i = 0; i < pool->nconns; i++) {
        ngx_http_recovery_conn_close(&pool->conns[i]);
    }
}


/*
 * Sends the call on a connection, or queues it.  NGX_BUSY means that it
 * can neither run nor wait (the database is down or the queue is full):
 * the caller answers at once.  Otherwise call->done is called once, later.
 */
ngx_int_t
ngx_http_recovery_pool_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call)
{
    ngx_http_recovery_conn_t  *conn;

    call->pool = pool;

    /* a connection that fails to send is closed: the next pick is another */
    while ((conn = ngx_http_recovery_pool_pick(pool, call)) != NULL) {
        if (ngx_http_recovery_pool_send(pool, conn, call) == NGX_OK) {
            return NGX_OK;
        }
    }

    if (ngx_http_recovery_pool_live(pool) == 0
        || pool->nwaiting >= pool->conf->queue_size)
    {
        return NGX_BUSY;
    }

    call->wait.handler = ngx_http_recovery_wait_handler;
    call->wait.data = call;
    call->wait.log = call->log;
    ngx_add_timer(&call->wait, pool->conf->queue_timeout);

    ngx_queue_insert_tail(&pool->waiting, &call->queue);
    pool->nwaiting++;
    call->queued = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "recovery: call queued, %ui waiting", pool->nwaiting);

    return NGX_OK;
}


/*
 * The call's owner is done with it, answered or going away: it leaves the
 * queue or its connection (which finishes the pipeline and returns to the
 * pool), and its results are freed.  Calling it again does nothing.
 */
void
ngx_http_recovery_pool_release(ngx_http_recovery_call_t *call)
{
    ngx_uint_t  i;

    if (call->queued) {
        ngx_http_recovery_unqueue(call->pool, call);
    }

    /* the connection drops the call's results when they come */
    if (call->conn) {
        ngx_http_recovery_conn_forget(call->conn, call);
        call->conn = NULL;
    }

    for (i = 0; i < call->nstatements; i++) {
        if (call->statements[i].result) {
            PQclear(call->statements[i].result);
            call->statements[i].result = NULL;
        }
    }

    if (call->error) {
        PQclear(call->error);
        call->error = NULL;
    }
}


ngx_uint_t
ngx_http_recovery_pool_connected(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; pool && i < pool->nconns; i++) {
        if (pool->conns[i].state >= NGX_HTTP_RECOVERY_CONN_IDLE) {
            n++;
        }
    }

    return n;
}


void
ngx_http_recovery_pool_stats(ngx_http_recovery_pool_t *pool, ngx_uint_t *busy,
    ngx_uint_t *idle, ngx_uint_t *queued, ngx_uint_t *pipelined)
{
    ngx_uint_t  i;

    *busy = 0;
    *idle = 0;
    *queued = pool ? pool->nwaiting : 0;
    *pipelined = pool ? pool->pipelined : 0;

    for (i = 0; pool && i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_HTTP_RECOVERY_CONN_BUSY) {
            (*busy)++;

        } else if (pool->conns[i].state == NGX_HTTP_RECOVERY_CONN_IDLE) {
            (*idle)++;
        }
    }
}


/* seconds until the pool tries the database again, for Retry-After */
time_t
ngx_http_recovery_pool_retry_after(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t  i;
    ngx_msec_t  delay;

    delay = pool ? pool->conf->reconnect_max_delay : 1000;

    for (i = 0; pool && i < pool->nconns; i++) {
        if (pool->conns[i].delay < delay) {
            delay = pool->conns[i].delay;
        }
    }

    return (time_t) (delay / 1000 + 1);
}


/*
 * The connection the call may go to now: an idle one, or one with room in
 * its pipeline, the fewest calls in flight first.  Nothing goes behind a
 * write: a write may wait on row locks (up to recovery_lock_timeout), and a
 * call behind it could not leave; a write takes a connection of its own
 * while fewer than pool size − recovery_pool_read_reserve carry writes.
 * Nothing goes behind a connection that has answered nothing for
 * NGX_HTTP_RECOVERY_STALL ms either (a long report): in the queue a call
 * can still go to whichever connection frees first.  NULL: it waits.
 */
static ngx_http_recovery_conn_t *
ngx_http_recovery_pool_pick(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call)
{
    ngx_uint_t                 i, writing;
    ngx_http_recovery_conn_t  *conn, *best;

    writing = 0;

    for (i = 0; i < pool->nconns; i++) {
        writing += (pool->conns[i].writes != 0);
    }

    best = NULL;

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        if (conn->state < NGX_HTTP_RECOVERY_CONN_IDLE
            || conn->nflights >= pool->conf->depth
            || conn->writes
            || (conn->nflights
                && ngx_current_msec - conn->progress
                   > NGX_HTTP_RECOVERY_STALL))
        {
            continue;
        }

        if (call->writes
            && writing >= pool->nconns - pool->conf->read_reserve)
        {
            continue;
        }

        if (best == NULL || conn->nflights < best->nflights) {
            best = conn;
        }
    }

    return best;
}


/* the call on the connection picked for it, counted when it is pipelined */
static ngx_int_t
ngx_http_recovery_pool_send(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_conn_t *conn, ngx_http_recovery_call_t *call)
{
    ngx_uint_t  behind;

    behind = (conn->nflights != 0);

    if (ngx_http_recovery_conn_send(conn, call) != NGX_OK) {
        return NGX_ERROR;
    }

    pool->pipelined += behind;

    return NGX_OK;
}


/*
 * Sends the calls that wait, oldest first, while connections have room; a
 * write that may not run yet keeps its place, and the reads behind it go
 * first.  Each send starts the walk again: a send that fails calls back
 * into the pool.
 */
static void
ngx_http_recovery_pool_dispatch(ngx_http_recovery_pool_t *pool)
{
    ngx_queue_t               *q;
    ngx_http_recovery_call_t  *call;
    ngx_http_recovery_conn_t  *conn;

    for ( ;; ) {
        conn = NULL;

        for (q = ngx_queue_head(&pool->waiting);
             q != ngx_queue_sentinel(&pool->waiting);
             q = ngx_queue_next(q))
        {
            call = ngx_queue_data(q, ngx_http_recovery_call_t, queue);
            conn = ngx_http_recovery_pool_pick(pool, call);

            if (conn) {
                break;
            }
        }

        if (conn == NULL) {
            return;
        }

        ngx_http_recovery_unqueue(pool, call);

        if (ngx_http_recovery_pool_send(pool, conn, call) != NGX_OK) {
            ngx_str_set(&call->failure, "the database connection was lost");
            call->done(call);
        }
    }
}


static void
ngx_http_recovery_pool_fail_waiting(ngx_http_recovery_pool_t *pool)
{
    ngx_queue_t               *q;
    ngx_http_recovery_call_t  *call;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        call = ngx_queue_data(q, ngx_http_recovery_call_t, queue);

        ngx_http_recovery_unqueue(pool, call);

        ngx_str_set(&call->failure, "the database is unavailable");
        call->done(call);
    }
}


static void
ngx_http_recovery_wait_handler(ngx_event_t *ev)
{
    ngx_http_recovery_call_t  *call;

    call = ev->data;
    ngx_http_recovery_unqueue(call->pool, call);

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "recovery: no database connection became free in time");

    ngx_str_set(&call->failure, "every database connection is busy");
    call->done(call);
}


/* the call leaves the wait queue, and its timer with it */
static void
ngx_http_recovery_unqueue(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call)
{
    ngx_queue_remove(&call->queue);
    pool->nwaiting--;
    call->queued = 0;

    if (call->wait.timer_set) {
        ngx_del_timer(&call->wait);
    }
}


/* connections that are, or may soon be, able to serve a call */
static ngx_uint_t
ngx_http_recovery_pool_live(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state != NGX_HTTP_RECOVERY_CONN_DOWN) {
            n++;
        }
    }

    return n;
}


/* a connection answered a call, or went down */
static void
ngx_http_recovery_pool_changed(ngx_http_recovery_conn_t *conn)
{
    ngx_http_recovery_pool_t  *pool = conn->data;

    /* with no connection left, waiting calls would only time out */
    if (ngx_http_recovery_pool_live(pool) == 0) {
        ngx_http_recovery_pool_fail_waiting(pool);
        return;
    }

    ngx_http_recovery_pool_dispatch(pool);
}


/*
 * Each connection of a pool that spreads (the standbys') starts its walk
 * down the host list at another host, so that the connections share the
 * standbys: libpq 15 always tries the hosts in their order.
 */
static ngx_int_t
ngx_http_recovery_pool_spread(ngx_cycle_t *cycle,
    ngx_http_recovery_pool_t *pool, ngx_http_recovery_conn_t *conn,
    ngx_uint_t n)
{
    char              *error;
    ngx_uint_t         k;
    const char       **keywords, **values;
    PQconninfoOption  *options, *o;

    error = NULL;
    options = PQconninfoParse((const char *) pool->conf->conninfo.data,
                              &error);
    if (options == NULL) {
        PQfreemem(error);
        return NGX_ERROR;
    }

    keywords = ngx_pcalloc(cycle->pool, 8 * sizeof(char *));
    values = ngx_pcalloc(cycle->pool, 8 * sizeof(char *));
    if (keywords == NULL || values == NULL) {
        PQconninfoFree(options);
        return NGX_ERROR;
    }

    /* the pool's own settings, then host and port turned by n */
    for (k = 0; pool->keywords[k]; k++) {
        keywords[k] = pool->keywords[k];
        values[k] = pool->values[k];
    }

    for (o = options; o->keyword; o++) {
        if (o->val == NULL || (ngx_strcmp(o->keyword, "host") != 0
                               && ngx_strcmp(o->keyword, "hostaddr") != 0
                               && ngx_strcmp(o->keyword, "port") != 0))
        {
            continue;
        }

        keywords[k] = (o->keyword[0] == 'h')
                      ? (o->keyword[4] ? "hostaddr" : "host") : "port";
        values[k] = ngx_http_recovery_pool_rotate(cycle->pool, o->val, n);
        if (values[k] == NULL) {
            PQconninfoFree(options);
            return NGX_ERROR;
        }

        k++;
    }

    PQconninfoFree(options);

    conn->keywords = keywords;
    conn->values = values;

    return NGX_OK;
}


/* "a,b,c" turned by 1: "b,c,a" */
static const char *
ngx_http_recovery_pool_rotate(ngx_pool_t *pool, const char *list,
    ngx_uint_t n)
{
    u_char      *out, *p;
    size_t       len;
    ngx_uint_t   count, start, i;
    const char  *from, *comma;

    count = 1;
    for (from = list; *from; from++) {
        count += (*from == ',');
    }

    len = ngx_strlen(list);
    out = ngx_pnalloc(pool, len + 2);
    if (out == NULL) {
        return NULL;
    }

    start = n % count;
    p = out;

    for (i = 0; i < count; i++) {
        /* the ((start + i) % count)-th item */
        from = list;
        for (n = (start + i) % count; n; n--) {
            from = strchr(from, ',') + 1;
        }

        comma = strchr(from, ',');
        len = comma ? (size_t) (comma - from) : ngx_strlen(from);

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, from, len);
    }

    *p = '\0';

    return (const char *) out;
}
