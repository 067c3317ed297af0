
/*
 * The per-worker pool of database connections (ngx_http_recovery_conn.c).
 * A call runs on an idle connection or waits in a bounded queue, oldest
 * first, with a timeout; writes may not take the connections kept for
 * reads.  A call is one pipeline: each statement (prepared first, once per
 * connection), then a sync: one round trip and one implicit transaction.
 */

#include "ngx_http_recovery_pool.h"
#include "ngx_http_recovery_conn.h"


struct ngx_http_recovery_pool_s {
    ngx_http_recovery_pool_conf_t  *conf;
    ngx_http_recovery_conn_t       *conns;
    ngx_uint_t                      nconns;
    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;
    ngx_log_t                      *log;
    const char                     *keywords[6];
    const char                     *values[6];
};


static ngx_uint_t ngx_http_recovery_pool_may_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call);
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
        if (conn->prepared == NULL) {
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
 * Runs the call on an idle connection, or queues it.  NGX_BUSY means that
 * it can neither run nor wait (the database is down or the queue is full):
 * the caller answers at once.  Otherwise call->done is called once, later.
 */
ngx_int_t
ngx_http_recovery_pool_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call)
{
    ngx_uint_t                 i, n;
    ngx_http_recovery_conn_t  *conn;

    call->pool = pool;

    /* a write beyond its share of the pool waits, even with one idle */
    n = ngx_http_recovery_pool_may_run(pool, call) ? pool->nconns : 0;

    for (i = 0; i < n; i++) {
        conn = &pool->conns[i];

        /* a connection that fails to send is closed: try the next one */
        if (conn->state == NGX_HTTP_RECOVERY_CONN_IDLE
            && ngx_http_recovery_conn_send(conn, call) == NGX_OK)
        {
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

    /* the connection finishes its pipeline and returns to the pool */
    if (call->conn) {
        call->conn->call = NULL;
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
    ngx_uint_t *idle, ngx_uint_t *queued)
{
    ngx_uint_t  i;

    *busy = 0;
    *idle = 0;
    *queued = pool ? pool->nwaiting : 0;

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
 * Whether the call may take an idle connection now: a read always, a
 * write while fewer than pool size − recovery_pool_read_reserve connections
 * carry writes.  Writes can wait on row locks; reads never wait behind them.
 */
static ngx_uint_t
ngx_http_recovery_pool_may_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_call_t *call)
{
    ngx_uint_t  i, writing;

    if (!call->writes) {
        return 1;
    }

    writing = 0;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_HTTP_RECOVERY_CONN_BUSY
            && pool->conns[i].writes)
        {
            writing++;
        }
    }

    return writing < pool->nconns - pool->conf->read_reserve;
}


/*
 * Hands idle connections to the calls that wait, oldest first; a write
 * that may not run yet keeps its place, and the reads behind it go first.
 */
static void
ngx_http_recovery_pool_dispatch(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_recovery_call_t  *call;
    ngx_http_recovery_conn_t  *conn;

    for (i = 0; i < pool->nconns && !ngx_queue_empty(&pool->waiting); i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_HTTP_RECOVERY_CONN_IDLE) {
            continue;
        }

        for (q = ngx_queue_head(&pool->waiting);
             q != ngx_queue_sentinel(&pool->waiting);
             q = ngx_queue_next(q))
        {
            call = ngx_queue_data(q, ngx_http_recovery_call_t, queue);

            if (ngx_http_recovery_pool_may_run(pool, call)) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&pool->waiting)) {
            return;     /* only writes wait, and they may not run yet */
        }

        ngx_http_recovery_unqueue(pool, call);

        if (ngx_http_recovery_conn_send(conn, call) != NGX_OK) {
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


/* a connection became idle, or went down */
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
