
/*
 * The content handler of recovery_call and recovery_login locations: the
 * request's way from its route to its response.
 */

#ifndef _NGX_HTTP_RECOVERY_HANDLER_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_HANDLER_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RECOVERY_HANDLER_H_INCLUDED_ */
