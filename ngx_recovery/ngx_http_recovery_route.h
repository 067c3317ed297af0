
/*
 * Routes: recovery_call and recovery_login map a location and a method to
 * a SQL function; a request's arguments come from captures, the query and
 * the JSON body.
 */

#ifndef _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_


#include "ngx_http_recovery_module.h"


char *ngx_http_recovery_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_recovery_route_t *ngx_http_recovery_route_find(
    ngx_http_recovery_loc_conf_t *rlcf, ngx_uint_t method);
ngx_int_t ngx_http_recovery_route_allow(ngx_http_request_t *r,
    ngx_http_recovery_loc_conf_t *rlcf);
ngx_int_t ngx_http_recovery_route_params(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_route_fields(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_route_query(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *error);
ngx_int_t ngx_http_recovery_query_arg(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *decoded);


#endif /* _NGX_HTTP_RECOVERY_ROUTE_H_INCLUDED_ */
