
/*
 * The request id: the client's X-Request-Id when it is a sane token, else
 * nginx's own $request_id.  It is echoed, logged ($recovery_request_id),
 * and set in the database so that the audit rows of the request carry it.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_request_id.h"


#define NGX_HTTP_RECOVERY_MAX_ID     128


static ngx_int_t ngx_http_recovery_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_http_recovery_request_id_header =
    ngx_string("X-Request-Id");
static ngx_str_t  ngx_http_recovery_request_id_name =
    ngx_string("recovery_request_id");
static ngx_str_t  ngx_http_recovery_no_request_id = ngx_null_string;


ngx_int_t
ngx_http_recovery_request_id_add_variable(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_recovery_request_id_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_recovery_request_id_variable;

    return NGX_OK;
}


ngx_str_t *
ngx_http_recovery_request_id(ngx_http_request_t *r)
{
    u_char                          ch;
    ngx_str_t                      *id;
    ngx_uint_t                      n;
    ngx_table_elt_t                *header;
    ngx_http_recovery_ctx_t        *ctx;
    ngx_http_variable_value_t      *v;
    ngx_http_recovery_main_conf_t  *rmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);
    if (ctx && ctx->request_id.len) {
        return &ctx->request_id;
    }

    id = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (id == NULL) {
        return &ngx_http_recovery_no_request_id;
    }

    header = ngx_http_recovery_header(r, &ngx_http_recovery_request_id_header);

    if (header && header->value.len > 0
        && header->value.len <= NGX_HTTP_RECOVERY_MAX_ID)
    {
        for (n = 0; n < header->value.len; n++) {
            ch = header->value.data[n];

            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                  || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'
                  || ch == '.' || ch == ':'))
            {
                break;
            }
        }

        if (n == header->value.len) {
            *id = header->value;
            return id;
        }
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    v = ngx_http_get_indexed_variable(r, rmcf->request_id_index);

    if (v == NULL || v->not_found) {
        return &ngx_http_recovery_no_request_id;
    }

    id->data = v->data;
    id->len = v->len;

    return id;
}


static ngx_int_t
ngx_http_recovery_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *id;

    id = ngx_http_recovery_request_id(r);

    v->data = id->data;
    v->len = id->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = (id->len == 0);

    return NGX_OK;
}
