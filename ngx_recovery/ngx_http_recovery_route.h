
/*
 * Routes: recovery_call and recovery_login map a location and a method to
 * a SQL function, with where each of its arguments comes from.
 */

#ifndef _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_


#include "ngx_http_recovery_module.h"


char *ngx_http_recovery_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_recovery_route_t *ngx_http_recovery_route_find(
    ngx_http_recovery_loc_conf_t *rlcf, ngx_uint_t method);
ngx_int_t ngx_http_recovery_route_allow(ngx_http_request_t *r,
    ngx_http_recovery_loc_conf_t *rlcf);


#endif /* _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_ */
