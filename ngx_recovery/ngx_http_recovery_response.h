
/*
 * Responses: JSON bodies and errors, a stored document, 503 with
 * Retry-After, and the SQLSTATE to HTTP status table.
 */

#ifndef _NGX_HTTP_RECOVERY_RESPONSE_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_RESPONSE_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *json, size_t len);
ngx_int_t ngx_http_recovery_send_body(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_recovery_send_object(ngx_http_request_t *r,
    ngx_uint_t status, json_object *obj);
ngx_int_t ngx_http_recovery_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, ngx_str_t *message,
    ngx_str_t *detail);
ngx_int_t ngx_http_recovery_send_sql_error(ngx_http_request_t *r,
    PGresult *error);
ngx_int_t ngx_http_recovery_send_file(ngx_http_request_t *r,
    PGresult *result);
ngx_int_t ngx_http_recovery_send_unavailable(ngx_http_request_t *r,
    ngx_str_t *message, time_t retry_after);
ngx_int_t ngx_http_recovery_set_location(ngx_http_request_t *r,
    ngx_str_t *path, json_object *created);


#endif /* _NGX_HTTP_RECOVERY_RESPONSE_H_INCLUDED_ */
