
/*
 * A stream of server-sent events: its opening (the events it missed, then
 * the worker's reader takes over), each delivery filtered by the event
 * types and case it wants, a heartbeat, and its end: when the token that
 * opened it expires, when the worker exits, or when the client reads too
 * slowly.  A client that has not taken recovery_events_buffer bytes when
 * more comes makes its stream pause; it catches up from the reader's recent
 * events once it has read, and is cut off when it falls further behind
 * than they reach: the worker never grows for a slow client.
 *
 * Its buffers are reused once sent, so a stream that lives for hours does
 * not grow its request's pool.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_events.h"
#include "ngx_http_recovery_listen.h"
#include "ngx_http_recovery_metrics.h"


#define NGX_HTTP_RECOVERY_STREAM_BUF  4096
#define NGX_HTTP_RECOVERY_RETRY       "retry: 3000\n\n"
#define NGX_HTTP_RECOVERY_HEARTBEAT   ": heartbeat\n\n"


typedef struct {
    ngx_http_recovery_subscriber_t  sub;        /* first: the reader's */
    ngx_http_request_t             *request;
    ngx_array_t                    *types;      /* ngx_str_t: it receives */
    int64_t                         case_id;    /* 0: every case */
    ngx_chain_t                    *free;
    ngx_chain_t                    *busy;
    size_t                          limit;      /* unsent bytes allowed */
    ngx_msec_t                      heartbeat_interval;
    ngx_event_t                     heartbeat;
    ngx_event_t                     expiry;
    unsigned                        starting:1; /* in its opening call */
    unsigned                        ended:1;
} ngx_http_recovery_stream_t;


static ngx_int_t ngx_http_recovery_stream_open(ngx_http_recovery_stream_t *st,
    json_object *opening, ngx_chain_t **backlog);
static ngx_int_t ngx_http_recovery_stream_headers(ngx_http_request_t *r);
static ngx_int_t ngx_http_recovery_stream_deliver(
    ngx_http_recovery_subscriber_t *sub, ngx_http_recovery_event_t *events,
    ngx_uint_t n);
static void ngx_http_recovery_stream_reset(
    ngx_http_recovery_subscriber_t *sub);
static ngx_int_t ngx_http_recovery_stream_wants(ngx_http_recovery_stream_t *st,
    ngx_http_recovery_event_t *e);
static u_char *ngx_http_recovery_stream_buf(ngx_http_recovery_stream_t *st,
    size_t len, ngx_chain_t **out);
static ngx_int_t ngx_http_recovery_stream_send(ngx_http_recovery_stream_t *st,
    ngx_chain_t *out);
static off_t ngx_http_recovery_stream_unsent(ngx_http_recovery_stream_t *st);
static ngx_int_t ngx_http_recovery_stream_resume(
    ngx_http_recovery_stream_t *st);
static void ngx_http_recovery_stream_behind(
    ngx_http_recovery_subscriber_t *sub);
static void ngx_http_recovery_stream_text(ngx_http_recovery_stream_t *st,
    const char *text, size_t len);
static void ngx_http_recovery_stream_write(ngx_http_request_t *r);
static void ngx_http_recovery_stream_beat(ngx_event_t *ev);
static void ngx_http_recovery_stream_expire(ngx_event_t *ev);
static void ngx_http_recovery_stream_end(ngx_http_recovery_stream_t *st,
    const char *last);
static void ngx_http_recovery_stream_cut(ngx_http_recovery_stream_t *st);


static ngx_str_t  ngx_http_recovery_event_stream =
    ngx_string("text/event-stream; charset=utf-8");


/*
 * The opening call answered: send the headers and what the client missed,
 * then join the worker's reader.  NGX_DONE: the stream goes on.
 */
ngx_int_t
ngx_http_recovery_events_start(ngx_http_recovery_ctx_t *ctx, u_char *json,
    size_t len)
{
    time_t                           left;
    ngx_int_t                        rc;
    ngx_chain_t                     *backlog;
    json_object                     *opening;
    ngx_http_request_t              *r;
    ngx_http_recovery_stream_t      *st;
    ngx_http_recovery_loc_conf_t    *rlcf;
    ngx_http_recovery_main_conf_t   *rmcf;

    r = ctx->request;
    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_recovery_module);

    if (rmcf->listen == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st = ngx_pcalloc(r->pool, sizeof(ngx_http_recovery_stream_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->request = r;
    st->starting = 1;
    st->limit = rlcf->events_buffer;
    st->heartbeat_interval = rlcf->events_heartbeat;
    st->sub.deliver = ngx_http_recovery_stream_deliver;
    st->sub.reset = ngx_http_recovery_stream_reset;
    st->sub.behind = ngx_http_recovery_stream_behind;

    opening = json_tokener_parse((const char *) json);

    rc = ngx_http_recovery_stream_open(st, opening, &backlog);
    json_object_put(opening);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: %V did not return what a stream opens with",
                      &ctx->route->function);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_recovery_stream_headers(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /* from here on, a stream cut off is finalized (NGX_DONE balances) */
    ctx->stream = st;
    ctx->opened = ngx_current_msec;
    ngx_http_recovery_metrics_stream(r, 1);
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_recovery_stream_write;
    r->main->count++;

    if (ngx_http_recovery_stream_send(st, backlog) != NGX_OK) {
        return NGX_DONE;
    }

    ngx_http_recovery_listen_join(rmcf->listen, &st->sub);

    if (st->ended) {
        return NGX_DONE;
    }

    st->starting = 0;

    st->heartbeat.handler = ngx_http_recovery_stream_beat;
    st->heartbeat.data = st;
    st->heartbeat.log = r->connection->log;
    st->heartbeat.cancelable = 1;
    ngx_add_timer(&st->heartbeat, st->heartbeat_interval);

    /* a stream lives as long as the token that opened it */
    if (ctx->expires) {
        left = ctx->expires - ngx_time();

        st->expiry.handler = ngx_http_recovery_stream_expire;
        st->expiry.data = st;
        st->expiry.log = r->connection->log;
        st->expiry.cancelable = 1;
        ngx_add_timer(&st->expiry,
                      left > 0 ? (ngx_msec_t) left * 1000 : 1);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "recovery: events stream opened for %V at %uL.%L",
                  &ctx->role, st->sub.cursor.xid, st->sub.cursor.id);

    return NGX_DONE;
}


/* the request goes away (cleanup): the reader and the timers forget it */
void
ngx_http_recovery_events_stop(ngx_http_recovery_ctx_t *ctx)
{
    ngx_http_recovery_stream_t  *st = ctx->stream;

    if (st == NULL) {
        return;
    }

    ngx_http_recovery_listen_leave(&st->sub);

    if (st->heartbeat.timer_set) {
        ngx_del_timer(&st->heartbeat);
    }

    if (st->expiry.timer_set) {
        ngx_del_timer(&st->expiry);
    }

    st->ended = 1;
    ctx->stream = NULL;
    ngx_http_recovery_metrics_stream(ctx->request, -1);
}


/*
 * What api_events_open answered: the types and case, the position, and the
 * events missed, formatted into the stream's first buffer, backlog (a reset
 * first when needed).
 */
static ngx_int_t
ngx_http_recovery_stream_open(ngx_http_recovery_stream_t *st,
    json_object *opening, ngx_chain_t **backlog)
{
    u_char       *p;
    size_t        len, i, n;
    ngx_str_t    *type;
    const char   *s, *text;
    json_object  *types, *position, *xid, *id, *events, *e, *f;

    if (opening == NULL
        || !json_object_object_get_ex(opening, "types", &types)
        || !json_object_is_type(types, json_type_array)
        || !json_object_object_get_ex(opening, "position", &position)
        || !json_object_object_get_ex(position, "xid", &xid)
        || !json_object_object_get_ex(position, "id", &id)
        || !json_object_object_get_ex(opening, "backlog", &events)
        || !json_object_is_type(events, json_type_array))
    {
        return NGX_ERROR;
    }

    s = json_object_get_string(xid);

    if (ngx_http_recovery_position_parse(&st->sub.cursor, (u_char *) s,
                                         ngx_strlen(s),
                                         json_object_get_int64(id))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = json_object_array_length(types);
    st->types = ngx_array_create(st->request->pool, n ? n : 1,
                                 sizeof(ngx_str_t));
    if (st->types == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        s = json_object_get_string(json_object_array_get_idx(types, i));
        type = ngx_array_push(st->types);

        if (s == NULL || type == NULL
            || ngx_http_recovery_copy(st->request->pool, type, s,
                                      ngx_strlen(s))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (json_object_object_get_ex(opening, "case_id", &f)
        && json_object_is_type(f, json_type_int))
    {
        st->case_id = json_object_get_int64(f);
    }

    /* sized first, then written */
    n = json_object_array_length(events);
    len = sizeof(NGX_HTTP_RECOVERY_RETRY) - 1;

    if (json_object_object_get_ex(opening, "reset", &f)
        && json_object_get_boolean(f))
    {
        len += sizeof("event: reset\ndata: {\"reason\":\"events_purged\"}\n\n")
               - 1;
    }

    for (i = 0; i < n; i++) {
        e = json_object_array_get_idx(events, i);
        text = json_object_to_json_string_ext(e, NGX_HTTP_RECOVERY_JSON);
        len += sizeof("id: \nevent: \ndata: \n\n") - 1 + NGX_INT64_LEN
               + ngx_strlen(text) + 64;
    }

    p = ngx_http_recovery_stream_buf(st, len, backlog);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(p, NGX_HTTP_RECOVERY_RETRY,
                   sizeof(NGX_HTTP_RECOVERY_RETRY) - 1);

    if (json_object_object_get_ex(opening, "reset", &f)
        && json_object_get_boolean(f))
    {
        p = ngx_sprintf(p, "event: reset\ndata: "
                           "{\"reason\":\"events_purged\"}\n\n");
    }

    for (i = 0; i < n; i++) {
        e = json_object_array_get_idx(events, i);

        if (!json_object_object_get_ex(e, "id", &id)
            || !json_object_object_get_ex(e, "type", &f)
            || ngx_strlen(json_object_get_string(f)) > 64)
        {
            return NGX_ERROR;
        }

        p = ngx_sprintf(p, "id: %L\nevent: %s\ndata: %s\n\n",
                        (int64_t) json_object_get_int64(id),
                        json_object_get_string(f),
                        json_object_to_json_string_ext(
                            e, NGX_HTTP_RECOVERY_JSON));
    }

    (*backlog)->buf->last = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_recovery_stream_headers(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_recovery_event_stream;
    r->headers_out.content_type_len = ngx_http_recovery_event_stream.len;
    r->headers_out.content_length_n = -1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    /* a proxy in front must pass each event on at once */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    return ngx_http_send_header(r);
}


/*
 * The reader's new events: those it wants, in one buffer.  A client that
 * has not yet taken what it was sent before, past the bound, pauses the
 * stream instead: memory per stream stays under the bound plus one
 * delivery, and the stream catches up once the client has read.
 */
static ngx_int_t
ngx_http_recovery_stream_deliver(ngx_http_recovery_subscriber_t *sub,
    ngx_http_recovery_event_t *events, ngx_uint_t n)
{
    u_char                      *p;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    ngx_chain_t                 *out;
    ngx_connection_t            *c;
    ngx_http_recovery_stream_t  *st = (ngx_http_recovery_stream_t *) sub;

    if (sub->paused) {
        /* these events are the reader's recent ones: it catches up, or not */
        return ngx_http_recovery_stream_resume(st);
    }

    if ((size_t) ngx_http_recovery_stream_unsent(st) > st->limit) {
        sub->paused = 1;
        return NGX_AGAIN;
    }

    len = 0;

    for (i = 0; i < n; i++) {
        if (ngx_http_recovery_stream_wants(st, &events[i])) {
            len += events[i].text.len;
        }
    }

    if (len == 0) {
        if (ngx_http_recovery_position_after(&events[n - 1].position,
                                             &sub->cursor))
        {
            sub->cursor = events[n - 1].position;
        }

        return NGX_OK;
    }

    c = st->request->connection;

    p = ngx_http_recovery_stream_buf(st, len, &out);
    if (p == NULL) {
        ngx_http_recovery_stream_cut(st);
        rc = NGX_ERROR;
        goto done;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_recovery_stream_wants(st, &events[i])) {
            p = ngx_cpymem(p, events[i].text.data, events[i].text.len);
        }
    }

    out->buf->last = p;

    if (ngx_http_recovery_position_after(&events[n - 1].position,
                                         &sub->cursor))
    {
        sub->cursor = events[n - 1].position;
    }

    rc = ngx_http_recovery_stream_send(st, out);

done:

    if (rc == NGX_ERROR && !st->starting) {
        /* cut off, from the reader's event: close it now */
        ngx_http_run_posted_requests(c);
    }

    return rc;
}


/* it fell further behind than the reader's recent events reach: cut off */
static void
ngx_http_recovery_stream_behind(ngx_http_recovery_subscriber_t *sub)
{
    ngx_connection_t            *c;
    ngx_http_recovery_stream_t  *st = (ngx_http_recovery_stream_t *) sub;

    c = st->request->connection;

    ngx_http_recovery_metrics_stream_cut(st->request);
    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "recovery: events client reads too slowly: %O bytes "
                  "unsent (recovery_events_buffer) and the events it has "
                  "not been sent are no longer kept; closing its stream",
                  ngx_http_recovery_stream_unsent(st));

    ngx_http_recovery_stream_cut(st);

    if (!st->starting) {
        ngx_http_run_posted_requests(c);
    }
}


static off_t
ngx_http_recovery_stream_unsent(ngx_http_recovery_stream_t *st)
{
    off_t         unsent;
    ngx_chain_t  *cl;

    unsent = 0;

    for (cl = st->busy; cl; cl = cl->next) {
        unsent += ngx_buf_size(cl->buf);
    }

    return unsent;
}


/* too far behind the reader: the client must reload what it shows */
static void
ngx_http_recovery_stream_reset(ngx_http_recovery_subscriber_t *sub)
{
    static const char  reset[] =
        "event: reset\ndata: {\"reason\":\"too_far_behind\"}\n\n";

    ngx_http_recovery_stream_text((ngx_http_recovery_stream_t *) sub,
                                  reset, sizeof(reset) - 1);
}


static ngx_int_t
ngx_http_recovery_stream_wants(ngx_http_recovery_stream_t *st,
    ngx_http_recovery_event_t *e)
{
    ngx_str_t   *type;
    ngx_uint_t   i;

    if (!ngx_http_recovery_position_after(&e->position, &st->sub.cursor)) {
        return 0;
    }

    if (st->case_id && e->case_id != st->case_id) {
        return 0;
    }

    type = st->types->elts;

    for (i = 0; i < st->types->nelts; i++) {
        if (type[i].len == e->type.len
            && ngx_memcmp(type[i].data, e->type.data, e->type.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * A buffer for len bytes, from those already sent when one is big enough;
 * a bigger one replaces the smallest's memory (freed if it was large).
 */
static u_char *
ngx_http_recovery_stream_buf(ngx_http_recovery_stream_t *st, size_t len,
    ngx_chain_t **out)
{
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(st->request->pool, &st->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;

    /* a big buffer (a backlog, a burst) is not kept for small events */
    if ((size_t) (b->end - b->start) > 4 * NGX_HTTP_RECOVERY_STREAM_BUF
        && len <= NGX_HTTP_RECOVERY_STREAM_BUF)
    {
        ngx_pfree(st->request->pool, b->start);
        b->start = NULL;
        b->end = NULL;
    }

    if ((size_t) (b->end - b->start) < len) {
        if (b->start) {
            ngx_pfree(st->request->pool, b->start);
        }

        size = ngx_max(len, NGX_HTTP_RECOVERY_STREAM_BUF);

        b->start = ngx_palloc(st->request->pool, size);
        if (b->start == NULL) {
            return NULL;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = b->start;
    b->temporary = 1;
    b->flush = 1;
    b->tag = (ngx_buf_tag_t) &ngx_http_recovery_module;

    *out = cl;

    return b->start;
}


/* out to the client; what it cannot take yet waits in busy */
static ngx_int_t
ngx_http_recovery_stream_send(ngx_http_recovery_stream_t *st,
    ngx_chain_t *out)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = st->request;
    c = r->connection;

    rc = ngx_http_output_filter(r, out);

    ngx_chain_update_chains(r->pool, &st->free, &st->busy, &out,
                            (ngx_buf_tag_t) &ngx_http_recovery_module);

    if (rc == NGX_ERROR) {
        ngx_http_recovery_stream_cut(st);
        return NGX_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (st->busy || c->buffered) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

    } else if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
        ngx_http_recovery_stream_cut(st);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_recovery_stream_text(ngx_http_recovery_stream_t *st,
    const char *text, size_t len)
{
    u_char       *p;
    ngx_chain_t  *out;

    p = ngx_http_recovery_stream_buf(st, len, &out);
    if (p == NULL) {
        ngx_http_recovery_stream_cut(st);
        return;
    }

    out->buf->last = ngx_cpymem(p, text, len);

    (void) ngx_http_recovery_stream_send(st, out);
}


/* the socket can take more: the rest of what was sent */
static void
ngx_http_recovery_stream_write(ngx_http_request_t *r)
{
    ngx_connection_t            *c;
    ngx_http_recovery_ctx_t     *ctx;
    ngx_http_recovery_stream_t  *st;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);
    st = ctx->stream;

    if (st == NULL) {
        return;
    }

    if (c->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "recovery: events client timed out");
        c->timedout = 1;
        ngx_http_recovery_stream_cut(st);
        return;
    }

    if (ngx_http_recovery_stream_send(st, NULL) != NGX_OK) {
        return;
    }

    if (st->sub.paused) {
        (void) ngx_http_recovery_stream_resume(st);
    }
}


/* a paused stream whose client has read half its bound catches up */
static ngx_int_t
ngx_http_recovery_stream_resume(ngx_http_recovery_stream_t *st)
{
    ngx_int_t                       rc;
    ngx_http_recovery_main_conf_t  *rmcf;

    if ((size_t) ngx_http_recovery_stream_unsent(st) > st->limit / 2) {
        return NGX_AGAIN;
    }

    rmcf = ngx_http_get_module_main_conf(st->request,
                                         ngx_http_recovery_module);
    st->sub.paused = 0;

    rc = ngx_http_recovery_listen_catch_up(rmcf->listen, &st->sub);

    if (rc == NGX_DECLINED) {
        ngx_http_recovery_stream_behind(&st->sub);
        return NGX_ERROR;
    }

    return rc;
}


static void
ngx_http_recovery_stream_beat(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_recovery_stream_t  *st = ev->data;

    c = st->request->connection;

    /* a worker that exits ends its streams: the clients resume elsewhere */
    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_http_recovery_stream_end(st, NULL);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_add_timer(&st->heartbeat, st->heartbeat_interval);

    ngx_http_recovery_stream_text(st, NGX_HTTP_RECOVERY_HEARTBEAT,
                                  sizeof(NGX_HTTP_RECOVERY_HEARTBEAT) - 1);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_recovery_stream_expire(ngx_event_t *ev)
{
    static const char  expired[] =
        "event: expired\ndata: {\"reason\":\"the token that opened this "
        "stream has expired: open it again with a new one\"}\n\n";

    ngx_connection_t            *c;
    ngx_http_recovery_stream_t  *st = ev->data;

    c = st->request->connection;

    ngx_http_recovery_stream_end(st, expired);
    ngx_http_run_posted_requests(c);
}


/* the stream ends well: its last words, if any, then the end of the body */
static void
ngx_http_recovery_stream_end(ngx_http_recovery_stream_t *st,
    const char *last)
{
    ngx_int_t                 rc;
    ngx_http_request_t       *r;
    ngx_http_recovery_ctx_t  *ctx;

    r = st->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);

    if (last) {
        ngx_http_recovery_stream_text(st, last, ngx_strlen(last));

        if (st->ended) {
            return;     /* cut off while saying it */
        }
    }

    ngx_http_recovery_events_stop(ctx);

    rc = ngx_http_send_special(r, NGX_HTTP_LAST);
    ngx_http_finalize_request(r, rc == NGX_ERROR ? NGX_ERROR : NGX_OK);
}


/* the stream ends at once: the client is gone, or too slow */
static void
ngx_http_recovery_stream_cut(ngx_http_recovery_stream_t *st)
{
    ngx_http_request_t       *r;
    ngx_http_recovery_ctx_t  *ctx;

    if (st->ended) {
        return;
    }

    r = st->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);

    ngx_http_recovery_events_stop(ctx);
    ngx_http_finalize_request(r, NGX_ERROR);
}
