
/*
 * The SQL of a request: the request context, idempotency_begin and the
 * routed function, as one call on the pool; on a standby, the check that
 * it has the caller's writes; after a write, its commit position.
 */

#ifndef _NGX_HTTP_RECOVERY_CALL_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_CALL_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_uint_t ngx_http_recovery_call_statements(
    ngx_http_recovery_main_conf_t *rmcf);
void ngx_http_recovery_call_init(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_call_done_pt done,
    ngx_uint_t standby);
PGresult *ngx_http_recovery_call_result(ngx_http_recovery_ctx_t *ctx);
const char *ngx_http_recovery_call_commit_lsn(ngx_http_recovery_ctx_t *ctx);
PGresult *ngx_http_recovery_call_replay(ngx_http_recovery_ctx_t *ctx);


#endif /* _NGX_HTTP_RECOVERY_CALL_H_INCLUDED_ */
