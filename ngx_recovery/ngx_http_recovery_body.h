
/*
 * The request body: a JSON object with the route's fields, or an upload.
 */

#ifndef _NGX_HTTP_RECOVERY_BODY_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_BODY_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_body_parse(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_uint_t *status, const char **code,
    ngx_str_t *message);


#endif /* _NGX_HTTP_RECOVERY_BODY_H_INCLUDED_ */
