
/*
 * The per-worker pool of non-blocking libpq connections.  Each connection's
 * socket is an nginx connection, so connecting, sending and reading are
 * driven by the event loop and no worker ever waits on the database.  A
 * request is one pipeline: [prepare] request context, [prepare] routed call,
 * sync: one round trip and one implicit transaction.
 */

#include "ngx_http_recovery_module.h"


typedef enum {
    NGX_HTTP_RECOVERY_CONN_DOWN = 0,    /* waiting to reconnect */
    NGX_HTTP_RECOVERY_CONN_CONNECTING,
    NGX_HTTP_RECOVERY_CONN_IDLE,
    NGX_HTTP_RECOVERY_CONN_BUSY
} ngx_http_recovery_conn_state_e;


/* what each result of a pipeline belongs to */
typedef enum {
    NGX_HTTP_RECOVERY_STEP_PREPARE_CONTEXT = 0,
    NGX_HTTP_RECOVERY_STEP_CONTEXT,
    NGX_HTTP_RECOVERY_STEP_PREPARE_BEGIN,
    NGX_HTTP_RECOVERY_STEP_BEGIN,
    NGX_HTTP_RECOVERY_STEP_PREPARE_CALL,
    NGX_HTTP_RECOVERY_STEP_CALL
} ngx_http_recovery_step_e;


#define NGX_HTTP_RECOVERY_MAX_STEPS      6
#define NGX_HTTP_RECOVERY_MIN_DELAY      100
#define NGX_HTTP_RECOVERY_ANSWER_GRACE   1000


struct ngx_http_recovery_conn_s {
    PGconn                         *pg;
    ngx_connection_t               *c;
    ngx_http_recovery_pool_t       *pool;
    ngx_uint_t                      state;
    ngx_http_recovery_ctx_t        *ctx;        /* NULL: none, or gone */
    u_char                         *prepared;   /* per statement */
    ngx_event_t                     reconnect;
    ngx_msec_t                      delay;
    ngx_uint_t                      steps[NGX_HTTP_RECOVERY_MAX_STEPS];
    ngx_uint_t                      nsteps;
    ngx_uint_t                      step;
    ngx_uint_t                      context;    /* statement index */
    ngx_uint_t                      call;       /* statement index */
    unsigned                        writes:1;   /* its request is no GET */
};


/*
 * Prepared statements of a connection, by index: the routes' calls
 * [0, n), their idempotent forms [n, 2n), the three request contexts, and
 * idempotency_begin.
 */
#define ngx_http_recovery_context_index(pool, auth)                           \
    (2 * (pool)->rmcf->routes.nelts + (auth))
#define ngx_http_recovery_begin_index(pool)                                   \
    (2 * (pool)->rmcf->routes.nelts + 3)


struct ngx_http_recovery_pool_s {
    ngx_http_recovery_main_conf_t  *rmcf;
    ngx_http_recovery_conn_t       *conns;
    ngx_uint_t                      nconns;
    ngx_uint_t                      nstatements;
    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;
    ngx_log_t                      *log;
    const char                     *keywords[6];
    const char                     *values[6];
};


/*
 * The request context, set with set_config(..., true) so that it ends with
 * the transaction.  The role comes last: every other value is set by the
 * authenticator.  An API key is checked by the extension in the same
 * statement, which returns the key's role or fails with PR007.
 */
/*
 * The last parameter of each is the call's statement_timeout, in ms: the
 * route's timeout= or recovery_statement_timeout (the connection's default).
 */
static const char  *ngx_http_recovery_context_sql[] = {
    /* NGX_HTTP_RECOVERY_AUTH_NONE */
    "SELECT set_config('recovery.request_id', $1, true),"
    " set_config('transaction_read_only', $2, true),"
    " set_config('statement_timeout', $3, true)",

    /* NGX_HTTP_RECOVERY_AUTH_JWT */
    "SELECT set_config('recovery.user_id', recovery.token_user($2), true),"
    " set_config('recovery.actor', $3, true),"
    " set_config('recovery.request_id', $4, true),"
    " set_config('recovery.claims', $5, true),"
    " set_config('transaction_read_only', $6, true),"
    " set_config('statement_timeout', $7, true),"
    " set_config('role', $1, true)",

    /* NGX_HTTP_RECOVERY_AUTH_KEY */
    "SELECT set_config('role', recovery.api_key_context($1, $2), true),"
    " set_config('transaction_read_only', $3, true),"
    " set_config('statement_timeout', $4, true)"
};

static const char  *ngx_http_recovery_context_name[] = {
    "ctx_anon", "ctx_jwt", "ctx_key"
};

/* claims the Idempotency-Key, or returns the first response of a retry */
static const char  ngx_http_recovery_begin_sql[] =
    "SELECT recovery.idempotency_begin($1, $2, $3)";
static const char  ngx_http_recovery_begin_name[] = "idem_begin";


static void ngx_http_recovery_conn_connect(ngx_http_recovery_conn_t *conn);
static ngx_int_t ngx_http_recovery_conn_bind(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_watch(ngx_http_recovery_conn_t *conn,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_http_recovery_conn_handler(ngx_event_t *ev);
static void ngx_http_recovery_conn_poll(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_idle(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_flush(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_read(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_done(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_lost(ngx_http_recovery_conn_t *conn,
    const char *reason);
static void ngx_http_recovery_conn_close(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_retry(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_reconnect_handler(ngx_event_t *ev);
static int ngx_http_recovery_context_params(ngx_http_recovery_ctx_t *ctx,
    const char **context, u_char *timeout);
static ngx_int_t ngx_http_recovery_conn_send(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_ctx_t *ctx);
static ngx_uint_t ngx_http_recovery_pool_may_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_ctx_t *ctx);
static ngx_msec_t ngx_http_recovery_call_timeout(ngx_http_recovery_ctx_t *ctx);
static void ngx_http_recovery_pool_dispatch(ngx_http_recovery_pool_t *pool);
static void ngx_http_recovery_pool_fail_waiting(
    ngx_http_recovery_pool_t *pool);
static void ngx_http_recovery_wait_handler(ngx_event_t *ev);
static void ngx_http_recovery_unqueue(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_ctx_t *ctx);
static ngx_uint_t ngx_http_recovery_pool_live(ngx_http_recovery_pool_t *pool);
static void ngx_http_recovery_conn_close_socket(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_notice(void *arg, const char *message);


static ngx_inline ngx_http_recovery_pool_t *
ngx_http_recovery_pool_of(ngx_http_recovery_ctx_t *ctx)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_recovery_module);

    return rmcf->pool;
}


ngx_int_t
ngx_http_recovery_pool_init(ngx_cycle_t *cycle,
    ngx_http_recovery_main_conf_t *rmcf)
{
    ngx_uint_t                 i;
    ngx_http_recovery_pool_t  *pool;
    ngx_http_recovery_conn_t  *conn;
    u_char                    *options;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_recovery_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->rmcf = rmcf;
    pool->log = cycle->log;
    pool->nconns = rmcf->pool_size;
    pool->nstatements = 2 * rmcf->routes.nelts + 4;
    ngx_queue_init(&pool->waiting);

    /*
     * The statement timeout bounds every call on the server side; the lock
     * timeout makes a write to a row someone holds fail fast (503, retry)
     * instead of keeping a connection until the statement timeout.
     */
    options = ngx_pnalloc(cycle->pool, 96);
    if (options == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(options, "-c statement_timeout=%M -c lock_timeout=%M%Z",
                rmcf->statement_timeout, rmcf->lock_timeout);

    pool->keywords[0] = "dbname";
    pool->values[0] = (const char *) rmcf->conninfo.data;
    pool->keywords[1] = "options";
    pool->values[1] = (const char *) options;
    pool->keywords[2] = "fallback_application_name";
    pool->values[2] = "ngx_recovery";
    pool->keywords[3] = NULL;
    pool->values[3] = NULL;

    pool->conns = ngx_pcalloc(cycle->pool,
                              pool->nconns * sizeof(ngx_http_recovery_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];
        conn->pool = pool;

        conn->prepared = ngx_pcalloc(cycle->pool, pool->nstatements);
        if (conn->prepared == NULL) {
            return NGX_ERROR;
        }

        conn->reconnect.handler = ngx_http_recovery_reconnect_handler;
        conn->reconnect.data = conn;
        conn->reconnect.log = cycle->log;
        conn->reconnect.cancelable = 1;

        ngx_http_recovery_conn_connect(conn);
    }

    rmcf->pool = pool;

    return NGX_OK;
}


void
ngx_http_recovery_pool_done(ngx_http_recovery_main_conf_t *rmcf)
{
    ngx_uint_t  i;

    if (rmcf->pool == NULL) {
        return;
    }

    for (i = 0; i < rmcf->pool->nconns; i++) {
        ngx_http_recovery_conn_close(&rmcf->pool->conns[i]);
    }
}


/*
 * Runs the request on an idle connection, or queues it.  NGX_BUSY means
 * that it can neither run nor wait (the database is down or the queue is
 * full): the caller answers 503 at once.
 */
ngx_int_t
ngx_http_recovery_pool_run(ngx_http_recovery_ctx_t *ctx)
{
    ngx_uint_t                 i, n;
    ngx_http_recovery_pool_t  *pool;
    ngx_http_recovery_conn_t  *conn;

    pool = ngx_http_recovery_pool_of(ctx);

    /* a write beyond its share of the pool waits, even with a connection idle */
    n = ngx_http_recovery_pool_may_run(pool, ctx) ? pool->nconns : 0;

    for (i = 0; i < n; i++) {
        conn = &pool->conns[i];

        /* a connection that fails to send is closed: try the next one */
        if (conn->state == NGX_HTTP_RECOVERY_CONN_IDLE
            && ngx_http_recovery_conn_send(conn, ctx) == NGX_OK)
        {
            return NGX_OK;
        }
    }

    if (ngx_http_recovery_pool_live(pool) == 0
        || pool->nwaiting >= pool->rmcf->queue_size)
    {
        return NGX_BUSY;
    }

    ctx->wait.handler = ngx_http_recovery_wait_handler;
    ctx->wait.data = ctx;
    ctx->wait.log = ctx->request->connection->log;
    ngx_add_timer(&ctx->wait, pool->rmcf->queue_timeout);

    ngx_queue_insert_tail(&pool->waiting, &ctx->queue);
    pool->nwaiting++;
    ctx->queued = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "recovery: request queued, %ui waiting", pool->nwaiting);

    return NGX_OK;
}


/* the request is going away: it must not be answered nor leak anything */
void
ngx_http_recovery_pool_detach(ngx_http_recovery_ctx_t *ctx)
{
    if (ctx->queued) {
        ngx_http_recovery_unqueue(ngx_http_recovery_pool_of(ctx), ctx);
    }

    /* the connection finishes its pipeline and returns to the pool */
    if (ctx->conn) {
        ctx->conn->ctx = NULL;
        ctx->conn = NULL;
    }

    if (ctx->result) {
        PQclear(ctx->result);
        ctx->result = NULL;
    }

    if (ctx->error) {
        PQclear(ctx->error);
        ctx->error = NULL;
    }

    if (ctx->replay) {
        PQclear(ctx->replay);
        ctx->replay = NULL;
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

    delay = pool ? pool->rmcf->reconnect_max_delay : 1000;

    for (i = 0; pool && i < pool->nconns; i++) {
        if (pool->conns[i].delay < delay) {
            delay = pool->conns[i].delay;
        }
    }

    return (time_t) (delay / 1000 + 1);
}


static void
ngx_http_recovery_conn_connect(ngx_http_recovery_conn_t *conn)
{
    ngx_http_recovery_pool_t  *pool;

    pool = conn->pool;

    conn->pg = PQconnectStartParams(pool->keywords, pool->values, 1);

    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "recovery: cannot start connecting to the database: %s",
                      conn->pg ? PQerrorMessage(conn->pg) : "out of memory");
        ngx_http_recovery_conn_retry(conn);
        return;
    }

    if (PQsetnonblocking(conn->pg, 1) != 0
        || ngx_http_recovery_conn_bind(conn) != NGX_OK)
    {
        ngx_http_recovery_conn_retry(conn);
        return;
    }

    /* libpq would print notices to stderr */
    PQsetNoticeProcessor(conn->pg, ngx_http_recovery_notice, conn);

    ngx_memzero(conn->prepared, pool->nstatements);
    conn->state = NGX_HTTP_RECOVERY_CONN_CONNECTING;

    /* libpq starts by writing (the startup packet, or a TCP connect) */
    ngx_http_recovery_conn_watch(conn, 0, 1);
    ngx_add_timer(conn->c->read, pool->rmcf->connect_timeout);
}


/* wraps libpq's current socket in an nginx connection */
static ngx_int_t
ngx_http_recovery_conn_bind(ngx_http_recovery_conn_t *conn)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "recovery: libpq has no socket: %s",
                      PQerrorMessage(conn->pg));
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, conn->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_http_recovery_conn_handler;
    c->write->handler = ngx_http_recovery_conn_handler;
    c->read->log = conn->pool->log;
    c->write->log = conn->pool->log;
    c->log = conn->pool->log;

    conn->c = c;

    return NGX_OK;
}


/*
 * Level-triggered interest in exactly the events libpq waits for: libpq may
 * leave bytes in the socket after a read, which an edge would not report.
 */
static void
ngx_http_recovery_conn_watch(ngx_http_recovery_conn_t *conn, ngx_uint_t read,
    ngx_uint_t write)
{
    ngx_connection_t  *c;

    c = conn->c;

    if (read && !c->read->active) {
        ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);

    } else if (!read && c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (write && !c->write->active) {
        ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);

    } else if (!write && c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_recovery_conn_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_recovery_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (ev->timedout) {
        ev->timedout = 0;

        if (conn->ctx) {
            ngx_str_set(&conn->ctx->failure,
                        "the database did not answer in time");
        }

        ngx_http_recovery_conn_lost(conn,
            conn->state == NGX_HTTP_RECOVERY_CONN_CONNECTING
            ? "connecting to the database timed out"
            : "the database did not answer in time");
        return;
    }

    switch (conn->state) {

    case NGX_HTTP_RECOVERY_CONN_CONNECTING:
        ngx_http_recovery_conn_poll(conn);
        break;

    case NGX_HTTP_RECOVERY_CONN_IDLE:
        ngx_http_recovery_conn_idle(conn);
        break;

    case NGX_HTTP_RECOVERY_CONN_BUSY:
        if (ev->write) {
            ngx_http_recovery_conn_flush(conn);

        } else {
            ngx_http_recovery_conn_read(conn);
        }

        break;

    default:
        break;
    }
}


static void
ngx_http_recovery_conn_poll(ngx_http_recovery_conn_t *conn)
{
    ngx_msec_t                 left;
    PostgresPollingStatusType  status;

    /*
     * libpq may close its socket and open another while it polls (another
     * address, SSL refused); the new one can even reuse the number.  So
     * stop watching before the poll and watch whatever socket is current
     * after it.
     */
    ngx_http_recovery_conn_watch(conn, 0, 0);

    status = PQconnectPoll(conn->pg);

    if (status != PGRES_POLLING_FAILED && PQsocket(conn->pg) != conn->c->fd) {
        left = 1;

        if (conn->c->read->timer_set
            && (ngx_msec_int_t) (conn->c->read->timer.key - ngx_current_msec)
               > 0)
        {
            left = conn->c->read->timer.key - ngx_current_msec;
        }

        ngx_http_recovery_conn_close_socket(conn);

        if (ngx_http_recovery_conn_bind(conn) != NGX_OK) {
            ngx_http_recovery_conn_lost(conn, "cannot watch libpq's socket");
            return;
        }

        /* the connect timeout goes on counting on the new socket */
        ngx_add_timer(conn->c->read, left);
    }

    switch (status) {

    case PGRES_POLLING_READING:
        ngx_http_recovery_conn_watch(conn, 1, 0);
        return;

    case PGRES_POLLING_WRITING:
        ngx_http_recovery_conn_watch(conn, 0, 1);
        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    if (PQenterPipelineMode(conn->pg) != 1) {
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);
    }

    ngx_http_recovery_conn_watch(conn, 1, 0);
    conn->state = NGX_HTTP_RECOVERY_CONN_IDLE;

    if (conn->delay) {
        ngx_log_error(NGX_LOG_NOTICE, conn->pool->log, 0,
                      "recovery: connected to the database again");
    }

    conn->delay = 0;

    ngx_http_recovery_pool_dispatch(conn->pool);
}


/* an idle connection became readable: a notice, or the server went away */
static void
ngx_http_recovery_conn_idle(ngx_http_recovery_conn_t *conn)
{
    PGresult  *res;

    if (PQconsumeInput(conn->pg) == 0
        || PQstatus(conn->pg) == CONNECTION_BAD)
    {
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    while (!PQisBusy(conn->pg) && (res = PQgetResult(conn->pg)) != NULL) {
        ngx_log_error(NGX_LOG_WARN, conn->pool->log, 0,
                      "recovery: unexpected result on an idle connection: %s",
                      PQresultErrorMessage(res));
        PQclear(res);
    }
}


/*
 * The values of the request context statement, by how the caller came in;
 * timeout_text (NGX_INT64_LEN + 1 bytes) receives the call's statement_timeout.
 */
static int
ngx_http_recovery_context_params(ngx_http_recovery_ctx_t *ctx,
    const char **context, u_char *timeout_text)
{
    const char  *read_only, *timeout;

    read_only = ctx->read_only ? "on" : "off";

    /* libpq copies the values as it sends them: the caller's buffer will do */
    ngx_sprintf(timeout_text, "%M%Z", ngx_http_recovery_call_timeout(ctx));
    timeout = (const char *) timeout_text;

    switch (ctx->auth) {

    case NGX_HTTP_RECOVERY_AUTH_JWT:
        context[0] = (const char *) ctx->role.data;
        context[1] = (const char *) ctx->user_id.data;
        context[2] = (const char *) ctx->actor.data;
        context[3] = (const char *) ctx->request_id.data;
        context[4] = (const char *) ctx->claims.data;
        context[5] = read_only;
        context[6] = timeout;
        return 7;

    case NGX_HTTP_RECOVERY_AUTH_KEY:
        context[0] = (const char *) ctx->api_key.data;
        context[1] = (const char *) ctx->request_id.data;
        context[2] = read_only;
        context[3] = timeout;
        return 4;

    default:
        context[0] = (const char *) ctx->request_id.data;
        context[1] = read_only;
        context[2] = timeout;
        return 3;
    }
}


static ngx_int_t
ngx_http_recovery_conn_send(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_ctx_t *ctx)
{
    int                         ncontext, nparams, rc;
    char                       *statement, *sql;
    PGconn                     *pg;
    ngx_uint_t                  idempotent;
    u_char                      timeout[NGX_INT64_LEN + 1];
    const char                 *context[7], *begin[3], **params;
    ngx_http_recovery_route_t  *route;

    pg = conn->pg;
    route = ctx->route;

    conn->ctx = ctx;
    ctx->conn = conn;
    conn->state = NGX_HTTP_RECOVERY_CONN_BUSY;
    conn->writes = !ctx->read_only;
    conn->nsteps = 0;
    conn->step = 0;
    conn->context = ngx_http_recovery_context_index(conn->pool, ctx->auth);
    idempotent = (ctx->idempotency_key.len != 0);
    conn->call = idempotent ? conn->pool->rmcf->routes.nelts + route->index
                            : route->index;

    ncontext = ngx_http_recovery_context_params(ctx, context, timeout);

    if (!conn->prepared[conn->context]) {
        if (!PQsendPrepare(pg, ngx_http_recovery_context_name[ctx->auth],
                           ngx_http_recovery_context_sql[ctx->auth],
                           ncontext, NULL))
        {
            goto failed;
        }

        conn->steps[conn->nsteps++] = NGX_HTTP_RECOVERY_STEP_PREPARE_CONTEXT;
    }

    if (!PQsendQueryPrepared(pg, ngx_http_recovery_context_name[ctx->auth],
                             ncontext, context, NULL, NULL, 0))
    {
        goto failed;
    }

    conn->steps[conn->nsteps++] = NGX_HTTP_RECOVERY_STEP_CONTEXT;

    if (idempotent) {
        begin[0] = (const char *) ctx->idempotency_key.data;
        begin[1] = (const char *) route->label.data;
        begin[2] = (const char *) ctx->request_hash;

        if (!conn->prepared[ngx_http_recovery_begin_index(conn->pool)]) {
            if (!PQsendPrepare(pg, ngx_http_recovery_begin_name,
                               ngx_http_recovery_begin_sql, 3, NULL))
            {
                goto failed;
            }

            conn->steps[conn->nsteps++] =
                                      NGX_HTTP_RECOVERY_STEP_PREPARE_BEGIN;
        }

        if (!PQsendQueryPrepared(pg, ngx_http_recovery_begin_name, 3, begin,
                                 NULL, NULL, 0))
        {
            goto failed;
        }

        conn->steps[conn->nsteps++] = NGX_HTTP_RECOVERY_STEP_BEGIN;
        statement = (char *) route->idempotent_statement;
        sql = (char *) route->idempotent_sql;

    } else {
        statement = (char *) route->statement;
        sql = (char *) route->sql;
    }

    nparams = (int) ctx->nparams + (idempotent ? 1 : 0);
    params = idempotent ? ctx->params : ctx->params + 1;

    if (!conn->prepared[conn->call]) {
        if (!PQsendPrepare(pg, statement, sql, nparams, NULL)) {
            goto failed;
        }

        conn->steps[conn->nsteps++] = NGX_HTTP_RECOVERY_STEP_PREPARE_CALL;
    }

    if (!PQsendQueryPrepared(pg, statement, nparams, params, NULL, NULL,
                             route->file ? 1 : 0)
        || !PQpipelineSync(pg))
    {
        goto failed;
    }

    conn->steps[conn->nsteps++] = NGX_HTTP_RECOVERY_STEP_CALL;

    /*
     * A safety net behind statement_timeout: the network can hang too.  It
     * is armed again once the whole call is sent (a large upload takes a
     * while), since the server counts from there.
     */
    ngx_add_timer(conn->c->read, ngx_http_recovery_call_timeout(ctx)
                                 + NGX_HTTP_RECOVERY_ANSWER_GRACE);

    rc = PQflush(pg);
    if (rc < 0) {
        goto failed;
    }

    ngx_http_recovery_conn_watch(conn, 1, rc == 1);

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                  "recovery: cannot send to the database: %s",
                  PQerrorMessage(pg));

    conn->ctx = NULL;
    ctx->conn = NULL;
    ngx_http_recovery_conn_close(conn);
    ngx_http_recovery_conn_retry(conn);

    return NGX_ERROR;
}


static void
ngx_http_recovery_conn_flush(ngx_http_recovery_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pg);

    if (rc < 0) {
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    if (rc == 0 && conn->ctx) {
        ngx_add_timer(conn->c->read, ngx_http_recovery_call_timeout(conn->ctx)
                                     + NGX_HTTP_RECOVERY_ANSWER_GRACE);
    }

    ngx_http_recovery_conn_watch(conn, 1, rc == 1);
}


/* how long the call may run on the server: its route's, or the default */
static ngx_msec_t
ngx_http_recovery_call_timeout(ngx_http_recovery_ctx_t *ctx)
{
    return ctx->route->timeout ? ctx->route->timeout
                               : ngx_http_recovery_pool_of(ctx)->rmcf
                                     ->statement_timeout;
}


static void
ngx_http_recovery_conn_read(ngx_http_recovery_conn_t *conn)
{
    PGresult                 *res;
    ngx_uint_t                step;
    ngx_http_recovery_ctx_t  *ctx;

    if (PQconsumeInput(conn->pg) == 0) {
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    for ( ;; ) {
        if (PQisBusy(conn->pg)) {
            return;
        }

        res = PQgetResult(conn->pg);

        if (res == NULL) {
            /* the end of one command's results */
            if (++conn->step > conn->nsteps) {
                ngx_http_recovery_conn_lost(conn,
                                            "the pipeline lost its sync");
                return;
            }

            continue;
        }

        ctx = conn->ctx;
        step = conn->step < conn->nsteps ? conn->steps[conn->step]
                                         : NGX_HTTP_RECOVERY_STEP_CALL;

        switch (PQresultStatus(res)) {

        case PGRES_PIPELINE_SYNC:
            PQclear(res);
            ngx_http_recovery_conn_done(conn);
            return;

        case PGRES_COMMAND_OK:
            /* a prepared statement survives even a rolled back pipeline */
            if (step == NGX_HTTP_RECOVERY_STEP_PREPARE_CONTEXT) {
                conn->prepared[conn->context] = 1;

            } else if (step == NGX_HTTP_RECOVERY_STEP_PREPARE_BEGIN) {
                conn->prepared[ngx_http_recovery_begin_index(conn->pool)] = 1;

            } else if (step == NGX_HTTP_RECOVERY_STEP_PREPARE_CALL) {
                conn->prepared[conn->call] = 1;
            }

            PQclear(res);
            break;

        case PGRES_TUPLES_OK:
            if (ctx && step == NGX_HTTP_RECOVERY_STEP_CALL
                && ctx->result == NULL)
            {
                ctx->result = res;

            } else if (ctx && step == NGX_HTTP_RECOVERY_STEP_BEGIN
                       && ctx->replay == NULL && PQntuples(res) == 1
                       && !PQgetisnull(res, 0, 0))
            {
                /* a retry: idempotency_begin returned the first response */
                ctx->replay = res;

            } else {
                PQclear(res);
            }

            break;

        case PGRES_PIPELINE_ABORTED:
            PQclear(res);
            break;

        default:
            /* the first error is the one that explains the others */
            if (ctx && ctx->error == NULL) {
                ctx->error = res;

            } else {
                PQclear(res);
            }

            break;
        }
    }
}


/* the sync arrived: the transaction has committed or rolled back */
static void
ngx_http_recovery_conn_done(ngx_http_recovery_conn_t *conn)
{
    ngx_http_recovery_ctx_t  *ctx;

    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);
    }

    ctx = conn->ctx;
    conn->ctx = NULL;
    conn->state = NGX_HTTP_RECOVERY_CONN_IDLE;

    /* only a connection outside any transaction may serve another request */
    if (PQtransactionStatus(conn->pg) != PQTRANS_IDLE) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "recovery: connection left in a transaction, closing it");
        ngx_http_recovery_conn_close(conn);
        ngx_http_recovery_conn_retry(conn);
    }

    if (ctx) {
        ctx->conn = NULL;
        ngx_http_recovery_finish(ctx);
    }

    ngx_http_recovery_pool_dispatch(conn->pool);
}


static void
ngx_http_recovery_conn_lost(ngx_http_recovery_conn_t *conn,
    const char *reason)
{
    ngx_uint_t                level;
    ngx_http_recovery_ctx_t  *ctx;

    /* while the database stays down, only the first failure is an error */
    level = (conn->state == NGX_HTTP_RECOVERY_CONN_CONNECTING && conn->delay)
            ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, conn->pool->log, 0,
                  "recovery: database connection lost: %s", reason);

    ctx = conn->ctx;
    conn->ctx = NULL;

    ngx_http_recovery_conn_close(conn);
    ngx_http_recovery_conn_retry(conn);

    if (ctx) {
        ctx->conn = NULL;

        if (ctx->failure.len == 0) {
            ngx_str_set(&ctx->failure, "the database connection was lost");
        }

        ngx_http_recovery_finish(ctx);
    }

    if (ngx_http_recovery_pool_live(conn->pool) == 0) {
        ngx_http_recovery_pool_fail_waiting(conn->pool);
    }
}


/* stops watching libpq's socket without closing it: libpq owns it */
static void
ngx_http_recovery_conn_close_socket(ngx_http_recovery_conn_t *conn)
{
    ngx_connection_t  *c;

    c = conn->c;
    if (c == NULL) {
        return;
    }

    if (conn->pg && PQsocket(conn->pg) == c->fd) {
        ngx_http_recovery_conn_watch(conn, 0, 0);

    } else {
        /*
         * libpq has closed the socket itself: it does when it reads the end
         * of the stream (PQconsumeInput after a restart, a kill or
         * pg_terminate_backend).  Closing took it out of epoll; deleting its
         * events now would fail with EBADF, or reach another connection
         * that got the same number meanwhile.
         */
        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    conn->c = NULL;
}


static void
ngx_http_recovery_conn_close(ngx_http_recovery_conn_t *conn)
{
    if (conn->c) {
        /* the socket is still open: its events can be removed normally */
        ngx_http_recovery_conn_close_socket(conn);
    }

    if (conn->pg) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }

    conn->state = NGX_HTTP_RECOVERY_CONN_DOWN;
}


/* reconnects with exponential backoff and jitter, so workers spread out */
static void
ngx_http_recovery_conn_retry(ngx_http_recovery_conn_t *conn)
{
    ngx_msec_t  max;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (conn->pg) {
        ngx_http_recovery_conn_close(conn);
    }

    max = conn->pool->rmcf->reconnect_max_delay;

    if (conn->delay == 0) {
        conn->delay = NGX_HTTP_RECOVERY_MIN_DELAY;

    } else {
        conn->delay = ngx_min(conn->delay * 2, max);
    }

    conn->state = NGX_HTTP_RECOVERY_CONN_DOWN;

    if (!conn->reconnect.timer_set) {
        ngx_add_timer(&conn->reconnect,
                      conn->delay / 2 + (ngx_msec_t) ngx_random()
                                        % (conn->delay / 2 + 1));
    }
}


static void
ngx_http_recovery_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_recovery_conn_t  *conn;

    conn = ev->data;

    if (conn->state == NGX_HTTP_RECOVERY_CONN_DOWN) {
        ngx_http_recovery_conn_connect(conn);
    }
}


/*
 * Whether the request may take an idle connection now: a read always, a
 * write while fewer than pool size − recovery_pool_read_reserve connections
 * carry writes.  Writes can wait on row locks; reads never wait behind them.
 */
static ngx_uint_t
ngx_http_recovery_pool_may_run(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_uint_t  i, writing;

    if (ctx->read_only) {
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

    return writing < pool->nconns - pool->rmcf->read_reserve;
}


/*
 * Hands idle connections to the requests that wait, oldest first; a write
 * that may not run yet keeps its place, and the reads behind it go first.
 */
static void
ngx_http_recovery_pool_dispatch(ngx_http_recovery_pool_t *pool)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_recovery_ctx_t   *ctx;
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
            ctx = ngx_queue_data(q, ngx_http_recovery_ctx_t, queue);

            if (ngx_http_recovery_pool_may_run(pool, ctx)) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&pool->waiting)) {
            return;     /* only writes wait, and they may not run yet */
        }

        ngx_http_recovery_unqueue(pool, ctx);

        if (ngx_http_recovery_conn_send(conn, ctx) != NGX_OK) {
            ngx_str_set(&ctx->failure, "the database connection was lost");
            ngx_http_recovery_finish(ctx);
        }
    }
}


static void
ngx_http_recovery_pool_fail_waiting(ngx_http_recovery_pool_t *pool)
{
    ngx_queue_t              *q;
    ngx_http_recovery_ctx_t  *ctx;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        ctx = ngx_queue_data(q, ngx_http_recovery_ctx_t, queue);

        ngx_http_recovery_unqueue(pool, ctx);

        ngx_str_set(&ctx->failure, "the database is unavailable");
        ngx_http_recovery_finish(ctx);
    }
}


static void
ngx_http_recovery_wait_handler(ngx_event_t *ev)
{
    ngx_http_recovery_ctx_t  *ctx;

    ctx = ev->data;
    ngx_http_recovery_unqueue(ngx_http_recovery_pool_of(ctx), ctx);

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "recovery: no database connection became free in time");

    ngx_str_set(&ctx->failure, "every database connection is busy");
    ngx_http_recovery_finish(ctx);
}


static void
ngx_http_recovery_notice(void *arg, const char *message)
{
    ngx_http_recovery_conn_t  *conn = arg;

    ngx_log_error(NGX_LOG_NOTICE, conn->pool->log, 0,
                  "recovery: database notice: %s", message);
}


/* the request leaves the wait queue, and its timer with it */
static void
ngx_http_recovery_unqueue(ngx_http_recovery_pool_t *pool,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_queue_remove(&ctx->queue);
    pool->nwaiting--;
    ctx->queued = 0;

    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }
}


/* connections that are, or may soon be, able to serve a request */
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
