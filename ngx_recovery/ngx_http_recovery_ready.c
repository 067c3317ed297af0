
/*
 * recovery_readiness (/readyz): 200 while this worker holds a live database
 * connection, else 503 with the time until the pool tries again.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_ready.h"
#include "ngx_http_recovery_response.h"


ngx_int_t
ngx_http_recovery_ready_handler(ngx_http_request_t *r)
{
    u_char                         *body;
    ngx_uint_t                      connected;
    ngx_http_recovery_main_conf_t  *rmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    connected = ngx_http_recovery_pool_connected(rmcf->pool);

    if (connected == 0) {
        return ngx_http_recovery_send_unavailable(r,
                   &(ngx_str_t) ngx_string("no connection to the database"),
                   ngx_http_recovery_pool_retry_after(rmcf->pool));
    }

    body = ngx_pnalloc(r->pool, 64);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_recovery_send_json(r, NGX_HTTP_OK, body,
               ngx_sprintf(body, "{\"status\":\"ready\",\"connections\":%ui}",
                           connected) - body);
}
