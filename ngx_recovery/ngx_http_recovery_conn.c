
/*
 * A connection of the pool: libpq's socket as an nginx connection, so that
 * connecting, sending and reading are driven by the event loop and no
 * worker ever waits on the database.  Its events are a small state machine
 * (down, connecting, idle, busy); it tells its pool through conn->changed
 * when it becomes idle or goes down.
 */

#include "ngx_http_recovery_conn.h"


/*
 * What each result of a call belongs to: the execution of statement i of
 * the call, a statement's preparation (PREPARE), or a sync.
 */
#define NGX_HTTP_RECOVERY_PREPARE        0x10000  /* | the statement's index */
#define NGX_HTTP_RECOVERY_SYNC           0x20000  /* the first of two */
#define NGX_HTTP_RECOVERY_MIN_DELAY      100
#define NGX_HTTP_RECOVERY_ANSWER_GRACE   1000


static void ngx_http_recovery_conn_connect(ngx_http_recovery_conn_t *conn);
static ngx_int_t ngx_http_recovery_conn_bind(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_watch(ngx_http_recovery_conn_t *conn,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_http_recovery_conn_handler(ngx_event_t *ev);
static void ngx_http_recovery_conn_poll(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_idle(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_flush(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_read(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_result(ngx_http_recovery_conn_t *conn,
    PGresult *res);
static void ngx_http_recovery_conn_done(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_lost(ngx_http_recovery_conn_t *conn,
    const char *reason);
static void ngx_http_recovery_conn_close_socket(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_conn_retry(ngx_http_recovery_conn_t *conn);
static void ngx_http_recovery_reconnect_handler(ngx_event_t *ev);
static void ngx_http_recovery_notice(void *arg, const char *message);


void
ngx_http_recovery_conn_start(ngx_http_recovery_conn_t *conn)
{
    conn->reconnect.handler = ngx_http_recovery_reconnect_handler;
    conn->reconnect.data = conn;
    conn->reconnect.log = conn->log;
    conn->reconnect.cancelable = 1;

    ngx_http_recovery_conn_connect(conn);
}


static void
ngx_http_recovery_conn_connect(ngx_http_recovery_conn_t *conn)
{
    conn->pg = PQconnectStartParams(conn->keywords, conn->values, 1);

    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
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

    ngx_memzero(conn->prepared, conn->conf->statements);
    conn->state = NGX_HTTP_RECOVERY_CONN_CONNECTING;

    /* libpq starts by writing (the startup packet, or a TCP connect) */
    ngx_http_recovery_conn_watch(conn, 0, 1);
    ngx_add_timer(conn->c->read, conn->conf->connect_timeout);
}


/* wraps libpq's current socket in an nginx connection */
static ngx_int_t
ngx_http_recovery_conn_bind(ngx_http_recovery_conn_t *conn)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "recovery: libpq has no socket: %s",
                      PQerrorMessage(conn->pg));
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, conn->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_http_recovery_conn_handler;
    c->write->handler = ngx_http_recovery_conn_handler;
    c->read->log = conn->log;
    c->write->log = conn->log;
    c->log = conn->log;

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

        if (conn->nflights && conn->flights[conn->first].call) {
            ngx_str_set(&conn->flights[conn->first].call->failure,
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
        ngx_log_error(NGX_LOG_NOTICE, conn->log, 0,
                      "recovery: connected to the database again");
    }

    conn->delay = 0;

    conn->changed(conn);
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
        ngx_log_error(NGX_LOG_WARN, conn->log, 0,
                      "recovery: unexpected result on an idle connection: %s",
                      PQresultErrorMessage(res));
        PQclear(res);
    }
}


/*
 * Sends the call behind those in flight: its transaction is its own (its
 * own sync), so an error rolls back this call only.  A statement is
 * prepared once per connection, at the head of the first call that needs
 * it, before anything of that call runs: a preparation behind a failed
 * statement would be skipped, and the calls pipelined after this one
 * count on it.
 */
ngx_int_t
ngx_http_recovery_conn_send(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_call_t *call)
{
    int                             rc;
    PGconn                         *pg;
    ngx_uint_t                      i;
    ngx_http_recovery_flight_t     *fl;
    ngx_http_recovery_statement_t  *st;

    pg = conn->pg;
    fl = &conn->flights[(conn->first + conn->nflights) % conn->conf->depth];
    fl->nsteps = 0;

    for (i = 0; i < call->nstatements; i++) {
        st = &call->statements[i];

        if (!conn->prepared[st->index]) {
            if (!PQsendPrepare(pg, st->name, st->sql, st->nparams, NULL)) {
                goto failed;
            }

            conn->prepared[st->index] = 1;
            fl->steps[fl->nsteps++] = NGX_HTTP_RECOVERY_PREPARE | st->index;
        }
    }

    for (i = 0; i < call->nstatements; i++) {
        st = &call->statements[i];

        /* what runs once the call's transaction has committed */
        if (call->committed && i == call->committed) {
            if (!PQpipelineSync(pg)) {
                goto failed;
            }

            fl->steps[fl->nsteps++] = NGX_HTTP_RECOVERY_SYNC;
        }

        if (!PQsendQueryPrepared(pg, st->name, st->nparams, st->params, NULL,
                                 NULL, st->binary))
        {
            goto failed;
        }

        fl->steps[fl->nsteps++] = i;
    }

    if (!PQpipelineSync(pg)) {
        goto failed;
    }

    fl->call = call;
    fl->timeout = call->timeout;
    fl->writes = call->writes;
    call->conn = conn;

    conn->nflights++;
    conn->writes += call->writes;
    conn->state = NGX_HTTP_RECOVERY_CONN_BUSY;

    /*
     * A safety net behind statement_timeout: the network can hang too.  It
     * counts for the oldest call, and is armed again once everything is
     * sent (a large upload takes a while) and for each next call.
     */
    if (conn->nflights == 1) {
        conn->step = 0;
        conn->sync_error = 0;
        conn->progress = ngx_current_msec;
        ngx_add_timer(conn->c->read,
                      fl->timeout + NGX_HTTP_RECOVERY_ANSWER_GRACE);
    }

    rc = PQflush(pg);
    if (rc < 0) {
        /* the call is in flight now: it fails with the others */
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(pg));
        return NGX_OK;
    }

    ngx_http_recovery_conn_watch(conn, 1, rc == 1);

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "recovery: cannot send to the database: %s",
                  PQerrorMessage(pg));

    ngx_http_recovery_conn_lost(conn, "cannot send to the database");

    return NGX_ERROR;
}


/* the call's owner has gone: its results, when they come, are dropped */
void
ngx_http_recovery_conn_forget(ngx_http_recovery_conn_t *conn,
    ngx_http_recovery_call_t *call)
{
    ngx_uint_t  i;

    for (i = 0; i < conn->nflights; i++) {
        if (conn->flights[(conn->first + i) % conn->conf->depth].call
            == call)
        {
            conn->flights[(conn->first + i) % conn->conf->depth].call = NULL;
        }
    }
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

    if (rc == 0 && conn->nflights) {
        ngx_add_timer(conn->c->read,
                      conn->flights[conn->first].timeout
                      + NGX_HTTP_RECOVERY_ANSWER_GRACE);
    }

    ngx_http_recovery_conn_watch(conn, 1, rc == 1);
}


/* results, in the order of the calls sent, while any call is in flight */
static void
ngx_http_recovery_conn_read(ngx_http_recovery_conn_t *conn)
{
    if (PQconsumeInput(conn->pg) == 0) {
        ngx_http_recovery_conn_lost(conn, PQerrorMessage(conn->pg));
        return;
    }

    /* a call answered may be followed by another, or the connection lost */
    while (conn->state == NGX_HTTP_RECOVERY_CONN_BUSY
           && !PQisBusy(conn->pg))
    {
        ngx_http_recovery_conn_result(conn, PQgetResult(conn->pg));
    }
}


/* one result of the oldest call in flight */
static void
ngx_http_recovery_conn_result(ngx_http_recovery_conn_t *conn, PGresult *res)
{
    ngx_uint_t                      step;
    ngx_http_recovery_call_t       *call;
    ngx_http_recovery_flight_t     *fl;
    ngx_http_recovery_statement_t  *st;

    fl = &conn->flights[conn->first];
    call = fl->call;

    if (res == NULL) {
        /*
         * The end of one command's results, or of the error of the sync
         * itself: the implicit COMMIT failed (a deferred constraint, or the
         * extension refused at commit), after every command.
         */
        if (conn->sync_error) {
            conn->sync_error = 0;

        } else if (++conn->step > fl->nsteps) {
            ngx_http_recovery_conn_lost(conn, "the pipeline lost its sync");
        }

        return;
    }

    step = conn->step < fl->nsteps ? fl->steps[conn->step]
                                   : NGX_HTTP_RECOVERY_SYNC;
    st = (call && !(step & (NGX_HTTP_RECOVERY_PREPARE
                             | NGX_HTTP_RECOVERY_SYNC)))
         ? &call->statements[step] : NULL;

    switch (PQresultStatus(res)) {

    case PGRES_PIPELINE_SYNC:
        PQclear(res);

        if (conn->step < fl->nsteps) {
            /* the first of two: the call's transaction is over */
            conn->step++;
            conn->sync_error = 0;
            return;
        }

        ngx_http_recovery_conn_done(conn);
        return;

    case PGRES_COMMAND_OK:
        PQclear(res);
        return;

    case PGRES_TUPLES_OK:
        if (st && st->keep && st->result == NULL) {
            st->result = res;

        } else {
            PQclear(res);
        }

        return;

    default:
        break;
    }

    /* an error, or a statement skipped after one */

    if (step & NGX_HTTP_RECOVERY_PREPARE) {
        /* not prepared after all: the next call to need it prepares it */
        conn->prepared[step & ~NGX_HTTP_RECOVERY_PREPARE] = 0;
    }

    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        PQclear(res);
        return;
    }

    if (step & NGX_HTTP_RECOVERY_SYNC) {
        conn->sync_error = 1;
    }

    /* the first error is the one that explains the others */
    if (call && call->error == NULL) {
        call->error = res;

    } else {
        PQclear(res);
    }
}


/* the oldest call's sync arrived: its transaction has ended */
static void
ngx_http_recovery_conn_done(ngx_http_recovery_conn_t *conn)
{
    ngx_uint_t                   in_transaction;
    ngx_http_recovery_call_t    *call;
    ngx_http_recovery_flight_t  *fl;

    fl = &conn->flights[conn->first];
    call = fl->call;

    conn->first = (conn->first + 1) % conn->conf->depth;
    conn->nflights--;
    conn->writes -= fl->writes;
    conn->step = 0;
    conn->sync_error = 0;
    conn->progress = ngx_current_msec;

    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);
    }

    if (conn->nflights) {
        /* the server starts on the next call now */
        ngx_add_timer(conn->c->read,
                      conn->flights[conn->first].timeout
                      + NGX_HTTP_RECOVERY_ANSWER_GRACE);

    } else {
        conn->state = NGX_HTTP_RECOVERY_CONN_IDLE;
    }

    /*
     * Only a connection outside any transaction may serve another call.
     * libpq tells only once nothing is in flight (until then it says
     * "active"); a call's own sync ends its transaction in any case, since
     * no routed statement can open one (BEGIN is no function).
     */
    in_transaction = (conn->nflights == 0
                      && PQtransactionStatus(conn->pg) != PQTRANS_IDLE);

    if (call) {
        call->conn = NULL;
        call->done(call);
    }

    if (in_transaction && conn->state != NGX_HTTP_RECOVERY_CONN_DOWN) {
        ngx_http_recovery_conn_lost(conn,
                                    "connection left in a transaction");
        return;
    }

    conn->changed(conn);
}


static void
ngx_http_recovery_conn_lost(ngx_http_recovery_conn_t *conn,
    const char *reason)
{
    ngx_uint_t                 i, n, level;
    ngx_http_recovery_call_t  *calls[NGX_HTTP_RECOVERY_MAX_DEPTH];

    /* while the database stays down, only the first failure is an error */
    level = (conn->state == NGX_HTTP_RECOVERY_CONN_CONNECTING && conn->delay)
            ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, conn->log, 0,
                  "recovery: database connection lost: %s", reason);

    /* every call in flight fails: its owner may send another meanwhile */
    n = 0;

    for (i = 0; i < conn->nflights; i++) {
        calls[n] = conn->flights[(conn->first + i) % conn->conf->depth].call;
        n += (calls[n] != NULL);
    }

    ngx_http_recovery_conn_close(conn);
    ngx_http_recovery_conn_retry(conn);

    for (i = 0; i < n; i++) {
        calls[i]->conn = NULL;

        if (calls[i]->failure.len == 0) {
            ngx_str_set(&calls[i]->failure,
                        "the database connection was lost");
        }

        calls[i]->done(calls[i]);
    }

    conn->changed(conn);
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


void
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
    conn->first = 0;
    conn->nflights = 0;
    conn->writes = 0;
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

    max = conn->conf->reconnect_max_delay;

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


static void
ngx_http_recovery_notice(void *arg, const char *message)
{
    ngx_http_recovery_conn_t  *conn = arg;

    ngx_log_error(NGX_LOG_NOTICE, conn->log, 0,
                  "recovery: database notice: %s", message);
}
