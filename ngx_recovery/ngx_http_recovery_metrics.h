
/*
 * Metrics in shared memory, counted at the log phase, served by
 * recovery_metrics in Prometheus' text format.
 */

#ifndef _NGX_HTTP_RECOVERY_METRICS_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_METRICS_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_metrics_init_zone(ngx_conf_t *cf,
    ngx_http_recovery_main_conf_t *rmcf);
ngx_int_t ngx_http_recovery_metrics_log_handler(ngx_http_request_t *r);
void ngx_http_recovery_metrics_db_error(ngx_http_request_t *r);
void ngx_http_recovery_metrics_stream(ngx_http_request_t *r,
    ngx_int_t change);
void ngx_http_recovery_metrics_stream_cut(ngx_http_request_t *r);
ngx_int_t ngx_http_recovery_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RECOVERY_METRICS_H_INCLUDED_ */
