
/*
 * A request's arguments, as its route says where each comes from: path
 * captures and other nginx variables, the query string, fields of the JSON
 * body, the uploaded bytes.  Each becomes a NUL-terminated text parameter
 * of the routed function's statement; a body field or a query parameter
 * the route does not know is refused, with the names it does know.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_args.h"


static ngx_int_t ngx_http_recovery_arg_value(ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_arg_t *arg, const char **value, ngx_str_t *error);
static ngx_int_t ngx_http_recovery_text(ngx_http_recovery_ctx_t *ctx,
    ngx_str_t *v, const char *what, ngx_str_t *name, const char **value,
    ngx_str_t *error);


/* every argument of the route as a NUL-terminated text value, or NULL */
ngx_int_t
ngx_http_recovery_args_bind(ngx_http_recovery_ctx_t *ctx, ngx_str_t *error)
{
    ngx_uint_t                  i;
    ngx_http_recovery_arg_t    *args;
    ngx_http_recovery_route_t  *route;

    route = ctx->route;
    args = route->args.elts;

    ctx->nparams = route->args.nelts;
    ctx->params = ngx_pcalloc(ctx->request->pool,
                              (ctx->nparams + 1) * sizeof(char *));
    if (ctx->params == NULL) {
        return NGX_ERROR;
    }

    ctx->params[0] = (const char *) ctx->idempotency_key.data;

    for (i = 0; i < ctx->nparams; i++) {
        if (ngx_http_recovery_arg_value(ctx, &args[i], &ctx->params[i + 1],
                                        error)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* a body field that no argument takes is a client's mistake: say so */
ngx_int_t
ngx_http_recovery_args_fields(ngx_http_recovery_ctx_t *ctx, ngx_str_t *error)
{
    size_t                      len;
    ngx_uint_t                  i;
    ngx_http_recovery_arg_t    *args;
    ngx_http_recovery_route_t  *route;

    route = ctx->route;
    args = route->args.elts;

    if (route->whole_body) {
        return NGX_OK;
    }

    json_object_object_foreach(ctx->body, key, value) {
        (void) value;
        len = ngx_strlen(key);

        for (i = 0; i < route->args.nelts; i++) {
            if (args[i].from_body && args[i].field.len == len
                && ngx_strncmp(args[i].field.data, key, len) == 0)
            {
                break;
            }
        }

        if (i == route->args.nelts) {
            error->len = ngx_snprintf(error->data, 256,
                                      "unknown field \"%*s\"; the fields "
                                      "are: %V",
                                      ngx_min(len, 64), key, &route->fields)
                         - error->data;
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* so is a query parameter that no argument takes: a typo filters nothing */
ngx_int_t
ngx_http_recovery_args_query(ngx_http_recovery_ctx_t *ctx, ngx_str_t *error)
{
    u_char                     *p, *last, *name, *end;
    ngx_uint_t                  i;
    ngx_http_request_t         *r;
    ngx_http_recovery_arg_t    *args;
    ngx_http_recovery_route_t  *route;

    r = ctx->request;
    route = ctx->route;
    args = route->args.elts;

    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        name = p;

        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        p = ngx_strlchr(name, end, '=');
        if (p == NULL) {
            p = end;
        }

        /* an event stream's credentials (_auth.c), not an argument */
        if (route->kind == NGX_HTTP_RECOVERY_EVENTS && p - name == 6
            && ngx_strncmp(name, "ticket", 6) == 0)
        {
            p = end + 1;
            continue;
        }

        if (p > name) {
            for (i = 0; i < route->args.nelts; i++) {
                if (!args[i].from_body && args[i].value == NULL
                    && !args[i].raw_body && !args[i].upload_type
                    && args[i].field.len == (size_t) (p - name)
                    && ngx_strncmp(args[i].field.data, name, p - name) == 0)
                {
                    break;
                }
            }

            if (i == route->args.nelts) {
                error->len = ngx_snprintf(error->data, 256,
                                          "unknown query parameter \"%*s\"; "
                                          "the parameters are: %V",
                                          ngx_min((size_t) (p - name), 64),
                                          name, &route->parameters)
                             - error->data;
                return NGX_DECLINED;
            }
        }

        p = end + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_recovery_arg_value(ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_arg_t *arg, const char **value, ngx_str_t *error)
{
    u_char        *copy;
    size_t         len;
    ngx_int_t      rc;
    ngx_str_t      v;
    const char    *s;
    json_object   *field;

    *value = NULL;

    if (arg->raw_body) {
        /* bytea's hex input: \x and two digits a byte */
        copy = ngx_pnalloc(ctx->request->pool, 2 * ctx->raw.len + 3);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        copy[0] = '\\';
        copy[1] = 'x';
        *ngx_hex_dump(copy + 2, ctx->raw.data, ctx->raw.len) = '\0';
        *value = (const char *) copy;

        return NGX_OK;
    }

    if (arg->upload_type || arg->upload_name) {
        v = arg->upload_type ? ctx->upload_type : ctx->upload_name;
        return ngx_http_recovery_text(ctx, &v, "upload", &arg->name, value,
                                      error);
    }

    if (arg->whole_body) {
        if (ctx->body) {
            *value = json_object_to_json_string_ext(ctx->body,
                                                    NGX_HTTP_RECOVERY_JSON);
        }

        return NGX_OK;
    }

    if (arg->from_body) {
        if (ctx->body == NULL
            || !json_object_object_get_ex(ctx->body,
                                          (const char *) arg->field.data,
                                          &field)
            || field == NULL)
        {
            return NGX_OK;
        }

        if (json_object_is_type(field, json_type_string)) {
            s = json_object_get_string(field);
            len = (size_t) json_object_get_string_len(field);

            /* text parameters end at a NUL byte: refuse, do not cut */
            if (ngx_strlen(s) != len) {
                error->len = ngx_sprintf(error->data,
                                         "field \"%V\" contains a NUL "
                                         "character", &arg->field)
                             - error->data;
                return NGX_DECLINED;
            }

            *value = s;
            return NGX_OK;
        }

        /* json-c saturates integers it cannot hold: never pass one on */
        if (json_object_is_type(field, json_type_int)
            && (json_object_get_int64(field) == INT64_MAX
                || json_object_get_int64(field) == INT64_MIN))
        {
            error->len = ngx_sprintf(error->data,
                                     "field \"%V\" is a number out of range",
                                     &arg->field)
                         - error->data;
            return NGX_DECLINED;
        }

        *value = json_object_to_json_string_ext(field, NGX_HTTP_RECOVERY_JSON);
        return NGX_OK;
    }

    if (arg->value == NULL) {
        rc = ngx_http_recovery_query_arg(ctx->request, &arg->field, &v);
        if (rc != NGX_OK) {
            return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
        }

        return ngx_http_recovery_text(ctx, &v, "query parameter", &arg->field,
                                      value, error);
    }

    if (ngx_http_complex_value(ctx->request, arg->value, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_recovery_text(ctx, &v, "parameter", &arg->name, value,
                                  error);
}


/* a NUL-terminated copy for libpq; a NUL inside is refused, not cut */
static ngx_int_t
ngx_http_recovery_text(ngx_http_recovery_ctx_t *ctx, ngx_str_t *v,
    const char *what, ngx_str_t *name, const char **value, ngx_str_t *error)
{
    u_char  *copy;

    if (v->len == 0) {
        return NGX_OK;
    }

    if (ngx_strlchr(v->data, v->data + v->len, '\0') != NULL) {
        error->len = ngx_sprintf(error->data,
                                 "%s \"%V\" contains a NUL character",
                                 what, name)
                     - error->data;
        return NGX_DECLINED;
    }

    copy = ngx_pnalloc(ctx->request->pool, v->len + 1);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, v->data, v->len);
    copy[v->len] = '\0';
    *value = (const char *) copy;

    return NGX_OK;
}


/*
 * A query parameter, decoded as application/x-www-form-urlencoded.
 * NGX_DECLINED: absent or empty.
 */
ngx_int_t
ngx_http_recovery_query_arg(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *decoded)
{
    u_char     *src, *p;
    ngx_str_t   raw;

    if (ngx_http_arg(r, name->data, name->len, &raw) != NGX_OK
        || raw.len == 0)
    {
        return NGX_DECLINED;
    }

    src = ngx_pnalloc(r->pool, 2 * raw.len);
    if (src == NULL) {
        return NGX_ERROR;
    }

    decoded->data = src + raw.len;

    /* '+' is a space */
    for (p = src; p < src + raw.len; p++) {
        *p = (raw.data[p - src] == '+') ? ' ' : raw.data[p - src];
    }

    p = decoded->data;
    ngx_unescape_uri(&p, &src, raw.len, 0);
    decoded->len = p - decoded->data;

    return NGX_OK;
}
