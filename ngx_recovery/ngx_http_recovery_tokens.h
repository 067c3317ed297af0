
/*
 * Verified tokens kept per worker until they expire (_tokens.c).
 */

#ifndef _NGX_HTTP_RECOVERY_TOKENS_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_TOKENS_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_tokens_get(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    ngx_str_t *token);
void ngx_http_recovery_tokens_put(ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_loc_conf_t *rlcf, ngx_str_t *token);


#endif /* _NGX_HTTP_RECOVERY_TOKENS_H_INCLUDED_ */
