
/*
 * The worker's reader of live events.  One libpq connection, driven by the
 * event loop like the pool's, that always has one read on its way:
 * recovery.live_events_read(position, ..., wait) answers at once when there
 * are events past the position, else when a transaction that wrote some
 * commits (the extension wakes it: live_events.c), else after WAIT_MS with
 * none.  After a lost connection it connects again (to the new primary
 * after a failover) and reads on from where it was, so a database restart
 * loses no event for the streams.
 *
 * It keeps the last NGX_HTTP_RECOVERY_RECENT events: a stream opens with
 * the database's position at that moment, which the reader may have passed
 * already, and a stream whose client fell behind pauses; both get those
 * events from here.  A client that falls further behind is cut off.
 */

#include "ngx_http_recovery_listen.h"

#include <libpq-fe.h>


#define NGX_HTTP_RECOVERY_RECENT       4096
#define NGX_HTTP_RECOVERY_READ_MAX     "1000"
#define NGX_HTTP_RECOVERY_WAIT_MS      "5000"   /* the longest read */
#define NGX_HTTP_RECOVERY_READ_GAP     5        /* ms between reads, at most
                                                   one read's worth of wait */
#define NGX_HTTP_RECOVERY_MIN_DELAY    100


typedef enum {
    NGX_HTTP_RECOVERY_LISTEN_DOWN = 0,
    NGX_HTTP_RECOVERY_LISTEN_CONNECTING,
    NGX_HTTP_RECOVERY_LISTEN_IDLE,
    NGX_HTTP_RECOVERY_LISTEN_BUSY       /* a read on its way */
} ngx_http_recovery_listen_state_e;


struct ngx_http_recovery_listen_s {
    PGconn                         *pg;
    ngx_connection_t               *c;
    ngx_uint_t                      state;
    const char                     *keywords[4];
    const char                     *values[4];
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      max_delay;
    ngx_msec_t                      delay;
    ngx_log_t                      *log;
    ngx_event_t                     reconnect;
    ngx_event_t                     again;      /* read again, later */
    ngx_msec_t                      last_read;  /* when it began */

    ngx_http_recovery_position_t    position;
    ngx_queue_t                     subscribers;

    /* the recent events, oldest first from head; floor: before the oldest */
    ngx_http_recovery_event_t      *recent;
    ngx_uint_t                      head;
    ngx_uint_t                      count;
    ngx_http_recovery_position_t    floor;

    unsigned                        positioned:1;   /* has a position */
    unsigned                        from_horizon:1; /* read, unpositioned */
    unsigned                        had_events:1;   /* the last read */
    unsigned                        stopped:1;  /* the worker exits */
};


static void ngx_http_recovery_listen_connect(ngx_http_recovery_listen_t *ln);
static void ngx_http_recovery_listen_watch(ngx_http_recovery_listen_t *ln,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_http_recovery_listen_handler(ngx_event_t *ev);
static void ngx_http_recovery_listen_poll(ngx_http_recovery_listen_t *ln);
static void ngx_http_recovery_listen_input(ngx_http_recovery_listen_t *ln);
static void ngx_http_recovery_listen_next(ngx_http_recovery_listen_t *ln);
static void ngx_http_recovery_listen_read(ngx_http_recovery_listen_t *ln);
static void ngx_http_recovery_listen_result(ngx_http_recovery_listen_t *ln,
    PGresult *res);
static ngx_int_t ngx_http_recovery_listen_keep(ngx_http_recovery_listen_t *ln,
    PGresult *res, int row, ngx_http_recovery_event_t *event);
static void ngx_http_recovery_listen_publish(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_event_t *events, ngx_uint_t n);
static void ngx_http_recovery_listen_lost(ngx_http_recovery_listen_t *ln,
    const char *reason);
static void ngx_http_recovery_listen_again(ngx_event_t *ev);
static void ngx_http_recovery_listen_retry(ngx_event_t *ev);
static void ngx_http_recovery_listen_notice(void *arg, const char *message);


ngx_http_recovery_listen_t *
ngx_http_recovery_listen_init(ngx_cycle_t *cycle, ngx_str_t *conninfo,
    ngx_msec_t connect_timeout, ngx_msec_t reconnect_max_delay)
{
    ngx_http_recovery_listen_t  *ln;

    ln = ngx_pcalloc(cycle->pool, sizeof(ngx_http_recovery_listen_t));
    if (ln == NULL) {
        return NULL;
    }

    ln->recent = ngx_pcalloc(cycle->pool, NGX_HTTP_RECOVERY_RECENT
                                          * sizeof(ngx_http_recovery_event_t));
    if (ln->recent == NULL) {
        return NULL;
    }

    ln->keywords[0] = "dbname";
    ln->values[0] = (const char *) conninfo->data;
    ln->keywords[1] = "fallback_application_name";
    ln->values[1] = "ngx_recovery events";
    /* its reads wait for commits: no statement timeout may cut them */
    ln->keywords[2] = "options";
    ln->values[2] = "-c statement_timeout=0";

    ln->connect_timeout = connect_timeout;
    ln->max_delay = reconnect_max_delay;
    ln->log = cycle->log;
    ngx_queue_init(&ln->subscribers);

    ln->reconnect.handler = ngx_http_recovery_listen_retry;
    ln->reconnect.data = ln;
    ln->reconnect.log = cycle->log;
    ln->reconnect.cancelable = 1;

    ln->again.handler = ngx_http_recovery_listen_again;
    ln->again.data = ln;
    ln->again.log = cycle->log;
    ln->again.cancelable = 1;

    ngx_http_recovery_listen_connect(ln);

    return ln;
}


void
ngx_http_recovery_listen_done(ngx_http_recovery_listen_t *ln)
{
    ngx_uint_t  i;

    ln->stopped = 1;

    if (ln->reconnect.timer_set) {
        ngx_del_timer(&ln->reconnect);
    }

    if (ln->again.timer_set) {
        ngx_del_timer(&ln->again);
    }

    ngx_http_recovery_listen_lost(ln, NULL);

    for (i = 0; i < ln->count; i++) {
        ngx_free(ln->recent[(ln->head + i) % NGX_HTTP_RECOVERY_RECENT]
                 .text.data);
    }

    ln->count = 0;
}


/*
 * A stream joins at the position its opening read left it: the events the
 * reader has passed since then come from the recent ones; if the reader
 * has not even got there yet, it will.  Too far behind: a reset.
 */
void
ngx_http_recovery_listen_join(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_subscriber_t *sub)
{
    ngx_queue_insert_tail(&ln->subscribers, &sub->queue);

    if (!ln->positioned) {
        /* not connected yet: start from the first stream's position */
        ln->position = sub->cursor;
        ln->floor = sub->cursor;
        ln->positioned = 1;
        return;
    }

    if (ngx_http_recovery_listen_catch_up(ln, sub) == NGX_DECLINED) {
        sub->cursor = ln->position;
        sub->reset(sub);
    }
}


/*
 * The recent events after the stream's cursor, in one delivery or two (the
 * ring wraps).  NGX_DECLINED: they no longer reach back to it; NGX_AGAIN:
 * it paused again.
 */
ngx_int_t
ngx_http_recovery_listen_catch_up(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_subscriber_t *sub)
{
    ngx_int_t                   rc;
    ngx_uint_t                  i, first, n;
    ngx_http_recovery_event_t  *e;

    if (!ngx_http_recovery_position_after(&ln->position, &sub->cursor)) {
        return NGX_OK;
    }

    if (ngx_http_recovery_position_after(&ln->floor, &sub->cursor)) {
        return NGX_DECLINED;
    }

    for (i = 0; i < ln->count; i++) {
        e = &ln->recent[(ln->head + i) % NGX_HTTP_RECOVERY_RECENT];
        if (ngx_http_recovery_position_after(&e->position, &sub->cursor)) {
            break;
        }
    }

    while (i < ln->count) {
        first = (ln->head + i) % NGX_HTTP_RECOVERY_RECENT;
        n = ngx_min(ln->count - i, NGX_HTTP_RECOVERY_RECENT - first);

        rc = sub->deliver(sub, &ln->recent[first], n);
        if (rc != NGX_OK) {
            return rc;
        }

        i += n;
    }

    /* past the events too: the horizon moved on without any */
    sub->cursor = ln->position;

    return NGX_OK;
}


void
ngx_http_recovery_listen_leave(ngx_http_recovery_subscriber_t *sub)
{
    if (sub->queue.next) {
        ngx_queue_remove(&sub->queue);
        sub->queue.next = NULL;
    }
}


/* a position from the xid's text (as xid8 prints it) and an id */
ngx_int_t
ngx_http_recovery_position_parse(ngx_http_recovery_position_t *pos,
    u_char *xid, size_t len, int64_t id)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 20) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (xid[i] < '0' || xid[i] > '9' || v > (UINT64_MAX - 9) / 10) {
            return NGX_ERROR;
        }

        v = v * 10 + (xid[i] - '0');
    }

    pos->xid = v;
    pos->id = id;

    return NGX_OK;
}


static void
ngx_http_recovery_listen_connect(ngx_http_recovery_listen_t *ln)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    ln->pg = PQconnectStartParams(ln->keywords, ln->values, 1);

    if (ln->pg == NULL || PQstatus(ln->pg) == CONNECTION_BAD
        || PQsetnonblocking(ln->pg, 1) != 0)
    {
        ngx_http_recovery_listen_lost(ln, ln->pg ? PQerrorMessage(ln->pg)
                                                 : "out of memory");
        return;
    }

    PQsetNoticeProcessor(ln->pg, ngx_http_recovery_listen_notice, ln);

    fd = PQsocket(ln->pg);
    c = (fd == (ngx_socket_t) -1) ? NULL : ngx_get_connection(fd, ln->log);

    if (c == NULL) {
        ngx_http_recovery_listen_lost(ln, "cannot watch libpq's socket");
        return;
    }

    c->data = ln;
    c->read->handler = ngx_http_recovery_listen_handler;
    c->write->handler = ngx_http_recovery_listen_handler;
    c->read->log = ln->log;
    c->write->log = ln->log;
    ln->c = c;

    ln->state = NGX_HTTP_RECOVERY_LISTEN_CONNECTING;

    ngx_http_recovery_listen_watch(ln, 0, 1);
    ngx_add_timer(c->read, ln->connect_timeout);
}


/* level-triggered, as libpq may leave bytes in the socket after a read */
static void
ngx_http_recovery_listen_watch(ngx_http_recovery_listen_t *ln,
    ngx_uint_t read, ngx_uint_t write)
{
    ngx_connection_t  *c = ln->c;

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
ngx_http_recovery_listen_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_recovery_listen_t  *ln = c->data;

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_http_recovery_listen_lost(ln, "connecting to the database for "
                                          "live events timed out");
        return;
    }

    if (ln->state == NGX_HTTP_RECOVERY_LISTEN_CONNECTING) {
        ngx_http_recovery_listen_poll(ln);
        return;
    }

    if (ev->write) {
        /* the rest of a query libpq could not send at once */
        if (PQflush(ln->pg) == 0) {
            ngx_http_recovery_listen_watch(ln, 1, 0);
        }

        return;
    }

    ngx_http_recovery_listen_input(ln);
}


static void
ngx_http_recovery_listen_poll(ngx_http_recovery_listen_t *ln)
{
    PostgresPollingStatusType  status;

    /* libpq may change sockets while it polls (another host of a list) */
    ngx_http_recovery_listen_watch(ln, 0, 0);

    status = PQconnectPoll(ln->pg);

    if (status != PGRES_POLLING_FAILED && PQsocket(ln->pg) != ln->c->fd) {
        ngx_http_recovery_listen_lost(ln, "libpq changed sockets while "
                                          "connecting");
        return;
    }

    switch (status) {

    case PGRES_POLLING_READING:
        ngx_http_recovery_listen_watch(ln, 1, 0);
        return;

    case PGRES_POLLING_WRITING:
        ngx_http_recovery_listen_watch(ln, 0, 1);
        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_recovery_listen_lost(ln, PQerrorMessage(ln->pg));
        return;
    }

    if (ln->c->read->timer_set) {
        ngx_del_timer(ln->c->read);
    }

    if (ln->delay) {
        ngx_log_error(NGX_LOG_NOTICE, ln->log, 0,
                      "recovery: live events: connected to the database "
                      "again; reading on from where it stopped");
    }

    ln->delay = 0;

    /* what was committed while away first, then on */
    ln->had_events = 0;
    ln->state = NGX_HTTP_RECOVERY_LISTEN_IDLE;
    ngx_http_recovery_listen_read(ln);
}


/* readable: the read's answer, or the server went away */
static void
ngx_http_recovery_listen_input(ngx_http_recovery_listen_t *ln)
{
    PGresult  *res;

    if (PQconsumeInput(ln->pg) == 0) {
        ngx_http_recovery_listen_lost(ln, PQerrorMessage(ln->pg));
        return;
    }

    while (ln->state == NGX_HTTP_RECOVERY_LISTEN_BUSY && !PQisBusy(ln->pg)) {
        res = PQgetResult(ln->pg);

        if (res == NULL) {
            /* the query is over */
            ln->state = NGX_HTTP_RECOVERY_LISTEN_IDLE;
            break;
        }

        ngx_http_recovery_listen_result(ln, res);
        PQclear(res);

        if (ln->pg == NULL) {
            return;     /* lost */
        }
    }

    if (PQstatus(ln->pg) == CONNECTION_BAD) {
        ngx_http_recovery_listen_lost(ln, PQerrorMessage(ln->pg));
        return;
    }

    if (ln->state == NGX_HTTP_RECOVERY_LISTEN_IDLE) {
        ngx_http_recovery_listen_next(ln);
    }
}


/*
 * The next read: after one that brought events, a few milliseconds after
 * it began, so that under a stream of commits each read takes several
 * events and each stream gets one write for them, not one per commit.
 */
static void
ngx_http_recovery_listen_next(ngx_http_recovery_listen_t *ln)
{
    ngx_msec_int_t  since;

    since = (ngx_msec_int_t) (ngx_current_msec - ln->last_read);

    if (ln->had_events && since >= 0 && since < NGX_HTTP_RECOVERY_READ_GAP) {
        if (!ln->again.timer_set) {
            ngx_add_timer(&ln->again, NGX_HTTP_RECOVERY_READ_GAP - since);
        }

        return;
    }

    ngx_http_recovery_listen_read(ln);
}


/*
 * The events after the position, waiting for some; never positioned: from
 * the horizon now, without waiting, so that the position comes soon.
 */
static void
ngx_http_recovery_listen_read(ngx_http_recovery_listen_t *ln)
{
    u_char       xid[NGX_INT64_LEN + 1], id[NGX_INT64_LEN + 1];
    const char  *params[4];

    if (ln->again.timer_set) {
        ngx_del_timer(&ln->again);
    }

    ngx_sprintf(xid, "%uL%Z", ln->position.xid);
    ngx_sprintf(id, "%L%Z", ln->position.id);

    params[0] = ln->positioned ? (const char *) xid : NULL;
    params[1] = (const char *) id;
    params[2] = NGX_HTTP_RECOVERY_READ_MAX;
    params[3] = ln->positioned ? NGX_HTTP_RECOVERY_WAIT_MS : "0";

    if (!PQsendQueryParams(ln->pg,
            "SELECT xid::text, id, type, case_id, event"
            "  FROM recovery.live_events_read("
            "coalesce($1::xid8, pg_snapshot_xmin(pg_current_snapshot())),"
            " $2, $3, $4)",
            4, NULL, params, NULL, NULL, 0))
    {
        ngx_http_recovery_listen_lost(ln, PQerrorMessage(ln->pg));
        return;
    }

    ln->from_horizon = !ln->positioned;
    ln->last_read = ngx_current_msec;
    ln->state = NGX_HTTP_RECOVERY_LISTEN_BUSY;
    ngx_http_recovery_listen_watch(ln, 1, PQflush(ln->pg) == 1);
}


/*
 * A read's rows are its events, then the horizon row (id 0): the position
 * moves and the events go out.  A read from the horizon that a stream's
 * position overtook (it joined while the reader had none) may have begun
 * past events the stream has not seen: it is read again from there.
 */
static void
ngx_http_recovery_listen_result(ngx_http_recovery_listen_t *ln,
    PGresult *res)
{
    int                            rows, i;
    u_char                        *state;
    ngx_uint_t                     n, start, first;
    ngx_http_recovery_event_t     *e;
    ngx_http_recovery_position_t   horizon;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5) {
        ngx_log_error(NGX_LOG_ERR, ln->log, 0,
                      "recovery: live events: reading failed: %s",
                      PQresultErrorMessage(res));
        ngx_http_recovery_listen_lost(ln, NULL);
        return;
    }

    ln->had_events = 0;

    if (ln->from_horizon && ln->positioned) {
        return;
    }

    rows = PQntuples(res);
    if (rows == 0 || ngx_atoi((u_char *) PQgetvalue(res, rows - 1, 1),
                              PQgetlength(res, rows - 1, 1)) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, ln->log, 0,
                      "recovery: live events: the read has no horizon row; "
                      "is the extension older than 0.9?");
        ngx_http_recovery_listen_lost(ln, NULL);
        return;
    }

    /*
     * The new events join the recent ones, the oldest making room; they
     * take the slots from start on, wrapping around the end at most once.
     */
    start = (ln->head + ln->count) % NGX_HTTP_RECOVERY_RECENT;
    n = rows - 1;

    for (i = 0; i < rows - 1; i++) {
        if (ln->count == NGX_HTTP_RECOVERY_RECENT) {
            ln->floor = ln->recent[ln->head].position;
            ngx_free(ln->recent[ln->head].text.data);
            ln->head = (ln->head + 1) % NGX_HTTP_RECOVERY_RECENT;
            ln->count--;
        }

        e = &ln->recent[(ln->head + ln->count) % NGX_HTTP_RECOVERY_RECENT];

        if (ngx_http_recovery_listen_keep(ln, res, i, e) != NGX_OK) {
            ngx_http_recovery_listen_lost(ln, "out of memory");
            return;
        }

        ln->position = e->position;
        ln->count++;
    }

    if (n) {
        first = ngx_min(n, NGX_HTTP_RECOVERY_RECENT - start);
        ngx_http_recovery_listen_publish(ln, &ln->recent[start], first);

        if (n > first) {
            ngx_http_recovery_listen_publish(ln, &ln->recent[0], n - first);
        }
    }

    state = (u_char *) PQgetvalue(res, rows - 1, 2);

    if (ngx_http_recovery_position_parse(&horizon,
            (u_char *) PQgetvalue(res, rows - 1, 0),
            PQgetlength(res, rows - 1, 0), 0)
        == NGX_OK
        && ngx_strcmp(state, "more") != 0
        && ngx_http_recovery_position_after(&horizon, &ln->position))
    {
        ln->position = horizon;
    }

    if (!ln->positioned) {
        ln->floor = ln->position;
        ln->positioned = 1;
    }

    ln->had_events = (n > 0);
}


/* row i as an event of the recent ones, its text formatted once */
static ngx_int_t
ngx_http_recovery_listen_keep(ngx_http_recovery_listen_t *ln, PGresult *res,
    int row, ngx_http_recovery_event_t *e)
{
    u_char  *p, *id, *type, *json;
    size_t   id_len, type_len, json_len, len;

    id = (u_char *) PQgetvalue(res, row, 1);
    id_len = PQgetlength(res, row, 1);
    type = (u_char *) PQgetvalue(res, row, 2);
    type_len = PQgetlength(res, row, 2);
    json = (u_char *) PQgetvalue(res, row, 4);
    json_len = PQgetlength(res, row, 4);

    if (ngx_http_recovery_position_parse(&e->position,
            (u_char *) PQgetvalue(res, row, 0), PQgetlength(res, row, 0),
            ngx_atoof(id, id_len))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    e->case_id = PQgetisnull(res, row, 3)
                 ? 0 : ngx_atoof((u_char *) PQgetvalue(res, row, 3),
                                 PQgetlength(res, row, 3));

    len = sizeof("id: \nevent: \ndata: \n\n") - 1 + id_len + type_len
          + json_len;

    p = ngx_alloc(len, ln->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    e->text.data = p;
    e->text.len = len;

    p = ngx_cpymem(p, "id: ", 4);
    p = ngx_cpymem(p, id, id_len);
    p = ngx_cpymem(p, "\nevent: ", 8);
    e->type.data = p;
    e->type.len = type_len;
    p = ngx_cpymem(p, type, type_len);
    p = ngx_cpymem(p, "\ndata: ", 7);
    p = ngx_cpymem(p, json, json_len);
    *p++ = '\n';
    *p = '\n';

    return NGX_OK;
}


static void
ngx_http_recovery_listen_publish(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_event_t *events, ngx_uint_t n)
{
    ngx_queue_t                     *q, *next;
    ngx_http_recovery_subscriber_t  *sub;

    for (q = ngx_queue_head(&ln->subscribers);
         q != ngx_queue_sentinel(&ln->subscribers);
         q = next)
    {
        /* a delivery may close the stream, and it leaves the queue */
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_recovery_subscriber_t, queue);

        if (sub->paused
            && ngx_http_recovery_position_after(&ln->floor, &sub->cursor))
        {
            /* the recent events have moved past it: it cannot catch up */
            sub->behind(sub);
            continue;
        }

        (void) sub->deliver(sub, events, n);
    }
}


/* the connection is gone (reason NULL: already logged); retry later */
static void
ngx_http_recovery_listen_lost(ngx_http_recovery_listen_t *ln,
    const char *reason)
{
    if (reason) {
        ngx_log_error(NGX_LOG_ERR, ln->log, 0,
                      "recovery: live events: %s", reason);
    }

    if (ln->c) {
        if (ln->c->read->timer_set) {
            ngx_del_timer(ln->c->read);
        }

        /* libpq closes the socket itself */
        if (ln->c->read->active || ln->c->write->active) {
            ngx_del_conn(ln->c, NGX_CLOSE_EVENT);
        }

        ngx_free_connection(ln->c);
        ln->c->fd = (ngx_socket_t) -1;
        ln->c = NULL;
    }

    if (ln->pg) {
        PQfinish(ln->pg);
        ln->pg = NULL;
    }

    ln->state = NGX_HTTP_RECOVERY_LISTEN_DOWN;

    if (ln->stopped || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ln->delay = ln->delay ? ngx_min(ln->delay * 2, ln->max_delay)
                          : NGX_HTTP_RECOVERY_MIN_DELAY;

    if (!ln->reconnect.timer_set) {
        ngx_add_timer(&ln->reconnect, ln->delay);
    }
}


static void
ngx_http_recovery_listen_again(ngx_event_t *ev)
{
    ngx_http_recovery_listen_t  *ln = ev->data;

    if (ln->state == NGX_HTTP_RECOVERY_LISTEN_IDLE) {
        ngx_http_recovery_listen_read(ln);
    }
}


static void
ngx_http_recovery_listen_retry(ngx_event_t *ev)
{
    ngx_http_recovery_listen_connect(ev->data);
}


static void
ngx_http_recovery_listen_notice(void *arg, const char *message)
{
    ngx_http_recovery_listen_t  *ln = arg;

    ngx_log_error(NGX_LOG_NOTICE, ln->log, 0, "recovery: live events: %s",
                  message);
}
