
/*
 * Idempotency-Key: the key checked, the body's hash, and the replay of the
 * first response to a retry.
 */

#ifndef _NGX_HTTP_RECOVERY_IDEMPOTENCY_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_IDEMPOTENCY_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_idempotency_key(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx);
void ngx_http_recovery_idempotency_hash(ngx_http_recovery_ctx_t *ctx,
    u_char *body, size_t len);
ngx_int_t ngx_http_recovery_idempotency_replay(ngx_http_request_t *r,
    PGresult *result, ngx_str_t *location);


#endif /* _NGX_HTTP_RECOVERY_IDEMPOTENCY_H_INCLUDED_ */
