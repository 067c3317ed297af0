
/*
 * Reads on standbys, and read-your-writes.
 *
 * With recovery_replicas, each worker keeps a second pool on the standbys
 * and sends the GET routes there (they run read-only transactions), unless
 * a route says "primary" or no standby is connected.  A write's answer
 * carries its commit position (Recovery-Commit-LSN, and the cookie
 * recovery_lsn for browsers); a read that sends it back starts, on the
 * standby, with recovery.replayed(lsn), which fails with PR011 until the
 * standby has replayed that far: then, and whenever a standby cannot
 * answer, the read is asked again of the primary.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_replicas.h"


#define NGX_HTTP_RECOVERY_LSN_COOKIE  "recovery_lsn"

/* how long a browser sends a write's position back: past any sane lag */
#define NGX_HTTP_RECOVERY_LSN_MAX_AGE  "600"


static void ngx_http_recovery_replicas_lsn(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx);
static ngx_int_t ngx_http_recovery_lsn_valid(u_char *p, size_t len);


/* the position the caller sends back: its header, else its cookie */
static void
ngx_http_recovery_replicas_lsn(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_str_t                   value;
    ngx_table_elt_t            *h;
    ngx_http_variable_value_t  *cookie;

    static ngx_str_t  header = ngx_string("Recovery-Commit-LSN");
    static ngx_str_t  variable = ngx_string("cookie_"
                                            NGX_HTTP_RECOVERY_LSN_COOKIE);

    ctx->lsn[0] = '\0';
    ngx_str_null(&value);

    h = ngx_http_recovery_header(r, &header);

    if (h) {
        value = h->value;

    } else {
        cookie = ngx_http_get_variable(r, &variable,
                                       ngx_hash_key(variable.data,
                                                    variable.len));
        if (cookie && !cookie->not_found) {
            value.data = cookie->data;
            value.len = cookie->len;
        }
    }

    /* anything else is ignored: it can only have been meant as a position */
    if (value.len && ngx_http_recovery_lsn_valid(value.data, value.len)
                     == NGX_OK)
    {
        ngx_memcpy(ctx->lsn, value.data, value.len);
        ctx->lsn[value.len] = '\0';
    }
}


/* the pool for the request's call: the standbys' for reads, if any is up */
ngx_http_recovery_pool_t *
ngx_http_recovery_replicas_pick(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

    if (rmcf->replicas && ctx->read_only && !ctx->route->primary
        && ngx_http_recovery_pool_connected(rmcf->replicas))
    {
        ngx_http_recovery_replicas_lsn(r, ctx);
        return rmcf->replicas;
    }

    return rmcf->pool;
}


/*
 * Whether a standby's answer must be asked of the primary instead: it had
 * not replayed the caller's write (PR011), a replication conflict cancelled
 * the read (40001), or the standby did not answer at all.
 */
ngx_uint_t
ngx_http_recovery_replicas_retry(ngx_http_recovery_ctx_t *ctx)
{
    char                           *state;
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_recovery_module);

    if (ctx->pool != rmcf->replicas) {
        return 0;
    }

    if (ctx->call.failure.len) {
        return 1;
    }

    if (ctx->call.error == NULL) {
        return 0;
    }

    state = PQresultErrorField(ctx->call.error, PG_DIAG_SQLSTATE);

    return state && (ngx_strcmp(state, "PR011") == 0
                     || ngx_strcmp(state, "40001") == 0);
}


/* a write's answer: where its commit is, for the caller's next reads */
ngx_int_t
ngx_http_recovery_replicas_committed(ngx_http_request_t *r, const char *lsn)
{
    size_t            len;
    ngx_table_elt_t  *h;

    if (lsn == NULL) {
        return NGX_OK;
    }

    len = ngx_strlen(lsn);

    if (ngx_http_recovery_lsn_valid((u_char *) lsn, len) != NGX_OK) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Recovery-Commit-LSN");
    h->value.len = len;
    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, lsn, len);

    /* a browser sends it back by itself; scripts cannot read it */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_RECOVERY_LSN_COOKIE)
                                + len + sizeof("=; Path=/; Max-Age="
                                               NGX_HTTP_RECOVERY_LSN_MAX_AGE
                                               "; SameSite=Strict; HttpOnly"));
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data,
                               NGX_HTTP_RECOVERY_LSN_COOKIE "=%s; Path=/; "
                               "Max-Age=" NGX_HTTP_RECOVERY_LSN_MAX_AGE
                               "; SameSite=Strict; HttpOnly", lsn)
                   - h->value.data;

    return NGX_OK;
}


/* "16/B374D848": two hexadecimal numbers of up to 8 digits */
static ngx_int_t
ngx_http_recovery_lsn_valid(u_char *p, size_t len)
{
    size_t      i, digits;
    ngx_uint_t  slash;

    if (len > 17) {
        return NGX_DECLINED;
    }

    digits = 0;
    slash = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '/' && !slash && digits) {
            slash = 1;
            digits = 0;
            continue;
        }

        if (!isxdigit(p[i]) || ++digits > 8) {
            return NGX_DECLINED;
        }
    }

    return (slash && digits) ? NGX_OK : NGX_DECLINED;
}
