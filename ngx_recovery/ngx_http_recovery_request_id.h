
/*
 * The request id: the client's X-Request-Id, or nginx's $request_id, and
 * the variable $recovery_request_id.
 */

#ifndef _NGX_HTTP_RECOVERY_REQUEST_ID_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_REQUEST_ID_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_request_id_add_variable(ngx_conf_t *cf);
ngx_str_t *ngx_http_recovery_request_id(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RECOVERY_REQUEST_ID_H_INCLUDED_ */
