
/*
 * The worker's reader of live events: one libpq connection whose read
 * (recovery.live_events_read) answers when events commit, with the new
 * events in order; it hands them to the streams that subscribed
 * (ngx_http_recovery_events.c), and keeps the most recent ones, so that a
 * stream that joins late, or falls behind for a while, misses none.
 */

#ifndef _NGX_HTTP_RECOVERY_LISTEN_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_LISTEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * Where a reader is in the events: every event at or before (xid, id) has
 * been read.  (xid, 0) means: every event of a transaction older than xid.
 */
typedef struct {
    uint64_t                        xid;
    int64_t                         id;
} ngx_http_recovery_position_t;


/* one event as every stream sends it */
typedef struct {
    ngx_http_recovery_position_t    position;
    ngx_str_t                       type;
    int64_t                         case_id;    /* 0: none */
    ngx_str_t                       text;       /* "id: ..\nevent: ..\n.." */
} ngx_http_recovery_event_t;


typedef struct ngx_http_recovery_subscriber_s  ngx_http_recovery_subscriber_t;

/* NGX_OK: sent, its cursor moved on; NGX_AGAIN: it paused (paused set) */
typedef ngx_int_t (*ngx_http_recovery_deliver_pt)(
    ngx_http_recovery_subscriber_t *sub, ngx_http_recovery_event_t *events,
    ngx_uint_t n);

/*
 * A stream, as the reader knows it: it skips what is at or before cursor.
 * A stream whose client is behind pauses; it catches up from the recent
 * events once its client has read, or is dropped (behind) when they no
 * longer reach back to its cursor.
 */
struct ngx_http_recovery_subscriber_s {
    ngx_queue_t                     queue;
    ngx_http_recovery_position_t    cursor;
    ngx_http_recovery_deliver_pt    deliver;
    void                          (*reset)(ngx_http_recovery_subscriber_t *);
    void                          (*behind)(ngx_http_recovery_subscriber_t *);
    unsigned                        paused:1;
};


typedef struct ngx_http_recovery_listen_s  ngx_http_recovery_listen_t;


ngx_http_recovery_listen_t *ngx_http_recovery_listen_init(ngx_cycle_t *cycle,
    ngx_str_t *conninfo, ngx_msec_t connect_timeout,
    ngx_msec_t reconnect_max_delay);
void ngx_http_recovery_listen_done(ngx_http_recovery_listen_t *ln);
void ngx_http_recovery_listen_join(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_subscriber_t *sub);
ngx_int_t ngx_http_recovery_listen_catch_up(ngx_http_recovery_listen_t *ln,
    ngx_http_recovery_subscriber_t *sub);
void ngx_http_recovery_listen_leave(ngx_http_recovery_subscriber_t *sub);
ngx_int_t ngx_http_recovery_position_parse(ngx_http_recovery_position_t *pos,
    u_char *xid, size_t len, int64_t id);


static ngx_inline ngx_int_t
ngx_http_recovery_position_after(ngx_http_recovery_position_t *a,
    ngx_http_recovery_position_t *b)
{
    return a->xid > b->xid || (a->xid == b->xid && a->id > b->id);
}


#endif /* _NGX_HTTP_RECOVERY_LISTEN_H_INCLUDED_ */
