
/*
 * The request body: read whole, then checked as a JSON object whose fields
 * the route knows, or taken as an upload (the raw bytes with their type and
 * ?filename, or the first file of a multipart/form-data body).
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_args.h"
#include "ngx_http_recovery_body.h"
#include "ngx_http_recovery_idempotency.h"
#include "ngx_http_recovery_multipart.h"


static ngx_int_t ngx_http_recovery_upload(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, u_char *body, size_t len,
    ngx_uint_t *status, const char **code, ngx_str_t *message);


static ngx_str_t  ngx_http_recovery_filename = ngx_string("filename");


/* NGX_DECLINED: the body is refused with *status, *code and *message */
ngx_int_t
ngx_http_recovery_body_parse(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_uint_t *status, const char **code,
    ngx_str_t *message)
{
    u_char                   *p, *text;
    size_t                    len, end;
    ssize_t                   n;
    ngx_buf_t                *b;
    ngx_str_t                 type;
    ngx_chain_t              *cl;
    json_tokener             *tok;
    enum json_tokener_error   err;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len == 0) {
        ngx_str_set(message, "this request needs a JSON object as its body");
        *status = NGX_HTTP_BAD_REQUEST;
        *code = "body_required";
        return NGX_DECLINED;
    }

    type = r->headers_in.content_type ? r->headers_in.content_type->value
                                      : (ngx_str_t) ngx_null_string;

    if (!ctx->route->raw_body
        && (type.len < sizeof("application/json") - 1
        || ngx_strncasecmp(type.data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0
        || (type.len > sizeof("application/json") - 1
            && type.data[sizeof("application/json") - 1] != ';'
            && type.data[sizeof("application/json") - 1] != ' ')))
    {
        ngx_str_set(message, "send the body as application/json");
        *status = NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
        *code = "unsupported_media_type";
        return NGX_DECLINED;
    }

    text = ngx_pnalloc(r->pool, len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = text;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);
            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    len = p - text;

    if (ctx->idempotency_key.len) {
        ngx_http_recovery_idempotency_hash(ctx, text, len);
    }

    /* a document: its bytes go to the function as they are */
    if (ctx->route->raw_body) {
        return ngx_http_recovery_upload(r, ctx, text, len, status, code,
                                        message);
    }

    tok = json_tokener_new_ex(NGX_HTTP_RECOVERY_MAX_BODY_DEPTH);
    if (tok == NULL) {
        return NGX_ERROR;
    }

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT
                                | JSON_TOKENER_VALIDATE_UTF8);
    ctx->body = json_tokener_parse_ex(tok, (const char *) text, (int) len);
    err = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    while (end < len && (text[end] == ' ' || text[end] == '\t'
                         || text[end] == '\r' || text[end] == '\n'))
    {
        end++;
    }

    if (err != json_tokener_success || end != len) {
        message->data = ngx_pnalloc(r->pool, 128);
        if (message->data == NULL) {
            return NGX_ERROR;
        }

        message->len = ngx_snprintf(message->data, 128,
                                   "the body is not valid JSON: %s at byte %uz",
                                   err == json_tokener_success
                                   ? "unexpected data after the value"
                                   : err == json_tokener_continue
                                   ? "the body ends inside the value"
                                   : json_tokener_error_desc(err),
                                   end)
                      - message->data;

        *status = NGX_HTTP_BAD_REQUEST;
        *code = "malformed_json";
        return NGX_DECLINED;
    }

    if (!json_object_is_type(ctx->body, json_type_object)) {
        ngx_str_set(message, "the body must be a JSON object");
        *status = NGX_HTTP_BAD_REQUEST;
        *code = "malformed_json";
        return NGX_DECLINED;
    }

    message->data = ngx_pnalloc(r->pool, 256);
    if (message->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_recovery_args_fields(ctx, message) != NGX_OK) {
        *status = NGX_HTTP_BAD_REQUEST;
        *code = "unknown_field";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * An upload is the raw body with its Content-Type and ?filename, or the
 * first file of a multipart/form-data body with its own type and name.
 */
static ngx_int_t
ngx_http_recovery_upload(ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx,
    u_char *body, size_t len, ngx_uint_t *status, const char **code,
    ngx_str_t *message)
{
    ngx_int_t    rc;
    ngx_str_t    type;
    const char  *error;

    type = r->headers_in.content_type ? r->headers_in.content_type->value
                                      : (ngx_str_t) ngx_null_string;

    if (!ngx_http_recovery_is_multipart(&type)) {
        ctx->raw.data = body;
        ctx->raw.len = len;
        ctx->upload_type = type;

        if (ngx_http_recovery_query_arg(r, &ngx_http_recovery_filename,
                                        &ctx->upload_name)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    error = NULL;
    rc = ngx_http_recovery_multipart_file(r->pool, &type, body, len,
                                          &ctx->raw, &ctx->upload_type,
                                          &ctx->upload_name, &error);
    if (rc == NGX_DECLINED) {
        *status = NGX_HTTP_BAD_REQUEST;
        *code = "malformed_multipart";
        message->data = (u_char *) error;
        message->len = ngx_strlen(error);
    }

    return rc;
}
