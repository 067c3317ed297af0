
/*
 * recovery_readiness: whether this worker can reach the database.
 */

#ifndef _NGX_HTTP_RECOVERY_READY_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_READY_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_ready_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RECOVERY_READY_H_INCLUDED_ */
