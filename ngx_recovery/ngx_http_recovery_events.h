
/*
 * GET /api/v1/events: a stream of server-sent events.  The opening call
 * (recovery.api_events_open) says which events the caller may receive and
 * what it missed; then the worker's reader (ngx_http_recovery_listen.c)
 * hands it each new event, which it sends if it wants it.
 */

#ifndef _NGX_HTTP_RECOVERY_EVENTS_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_EVENTS_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_events_start(ngx_http_recovery_ctx_t *ctx,
    u_char *json, size_t len);
void ngx_http_recovery_events_stop(ngx_http_recovery_ctx_t *ctx);


#endif /* _NGX_HTTP_RECOVERY_EVENTS_H_INCLUDED_ */
