
/*
 * The request line without its query string, for nginx's own logs.
 */

#ifndef _NGX_HTTP_RECOVERY_REDACT_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_REDACT_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_redact_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RECOVERY_REDACT_H_INCLUDED_ */
