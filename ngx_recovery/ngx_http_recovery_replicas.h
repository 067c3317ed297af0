
/*
 * Reads on standbys (recovery_replicas), and read-your-writes: a write's
 * answer carries its commit position, and a read that sends it back is
 * served by a standby only once the standby has replayed that far.
 */

#ifndef _NGX_HTTP_RECOVERY_REPLICAS_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_REPLICAS_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_http_recovery_pool_t *ngx_http_recovery_replicas_pick(
    ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx);
ngx_uint_t ngx_http_recovery_replicas_retry(ngx_http_recovery_ctx_t *ctx);
ngx_int_t ngx_http_recovery_replicas_committed(ngx_http_request_t *r,
    const char *lsn);


#endif /* _NGX_HTTP_RECOVERY_REPLICAS_H_INCLUDED_ */
