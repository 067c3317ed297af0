
/*
 * A request's arguments: from captures, the query and the JSON body to the
 * text parameters of the routed function.
 */

#ifndef _NGX_HTTP_RECOVERY_ARGS_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_ARGS_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_args_query(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_args_fields(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_args_bind(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_query_arg(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *decoded);


#endif /* _NGX_HTTP_RECOVERY_ARGS_H_INCLUDED_ */
