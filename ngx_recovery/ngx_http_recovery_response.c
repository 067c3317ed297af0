
/*
 * Responses: JSON bodies, JSON errors with a stable code and the request
 * id, a stored document, 503 with Retry-After, and the one table that maps
 * SQLSTATEs to HTTP statuses (the README lists it for clients).
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_response.h"
#include "ngx_http_recovery_request_id.h"


typedef struct {
    const char  *sqlstate;      /* five characters, or a class of two */
    ngx_uint_t   status;
    const char  *code;
} ngx_http_recovery_sqlstate_t;


/* exact SQLSTATEs first, then classes; the first match wins */
static ngx_http_recovery_sqlstate_t  ngx_http_recovery_sqlstates[] = {
    { "PR001", 422, "illegal_transition" },
    { "PR002", 409, "stale_version" },
    { "PR003", 404, "not_found" },
    { "PR004", 400, "validation_failed" },
    { "PR005", 422, "currency_mismatch" },
    { "PR006", 422, "overpayment" },
    { "PR007", 401, "authentication_failed" },
    { "PR008", 403, "audit_immutable" },
    { "PR009", 409, "conflict" },
    { "PR010", 422, "idempotency_key_reused" },
    { "PR011", 503, "standby_lagging" },          /* asked of the primary */
    { "PR012", 503, "key_unavailable" },          /* the KEK is missing */
    { "P0002", 404, "not_found" },
    { "42501", 403, "permission_denied" },
    { "23505", 409, "already_exists" },
    { "23503", 422, "unknown_reference" },
    { "23502", 400, "validation_failed" },
    { "23514", 400, "validation_failed" },
    { "40001", 503, "serialization_failure" },    /* transient: retry */
    { "40P01", 503, "deadlock_detected" },
    { "57014", 503, "statement_timeout" },
    { "55P03", 503, "lock_timeout" },             /* a row someone holds */
    { "22", 400, "invalid_value" },
    { "08", 503, "database_unavailable" },
    { "53", 503, "database_unavailable" },
    { "57", 503, "database_unavailable" },
    { NULL, 500, "internal_error" }
};


static ngx_http_recovery_sqlstate_t *ngx_http_recovery_sqlstate_find(
    const char *sqlstate);
static void ngx_http_recovery_json_add(json_object *obj, const char *key,
    ngx_str_t *value);


ngx_int_t
ngx_http_recovery_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len)
{
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    return ngx_http_recovery_send_body(r, status, json, len);
}


/* a whole response from one buffer; the caller set the content type */
ngx_int_t
ngx_http_recovery_send_body(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (r->method == NGX_HTTP_HEAD || len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* sends a json-c object, which it frees */
ngx_int_t
ngx_http_recovery_send_object(ngx_http_request_t *r, ngx_uint_t status,
    json_object *obj)
{
    u_char      *body;
    size_t       len;
    const char  *text;

    text = json_object_to_json_string_ext(obj, NGX_HTTP_RECOVERY_JSON);
    len = ngx_strlen(text);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        json_object_put(obj);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body, text, len);
    json_object_put(obj);

    return ngx_http_recovery_send_json(r, status, body, len);
}


ngx_int_t
ngx_http_recovery_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message, ngx_str_t *detail)
{
    json_object  *obj;

    obj = json_object_new_object();
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_object_add(obj, "error", json_object_new_string(code));
    ngx_http_recovery_json_add(obj, "message", message);
    ngx_http_recovery_json_add(obj, "detail", detail);
    ngx_http_recovery_json_add(obj, "request_id",
                               ngx_http_recovery_request_id(r));

    /* an error must not be cached as if it were the resource */
    r->headers_out.last_modified_time = -1;

    return ngx_http_recovery_send_object(r, status, obj);
}


/*
 * An error raised by PostgreSQL.  Messages of client errors are written for
 * users (the extension's errmsg/errdetail/errhint); a server fault is logged
 * in full and answered without internals.
 */
ngx_int_t
ngx_http_recovery_send_sql_error(ngx_http_request_t *r, PGresult *error)
{
    const char                    *sqlstate, *text;
    json_object                   *obj;
    ngx_table_elt_t               *h;
    ngx_http_recovery_sqlstate_t  *map;

    sqlstate = PQresultErrorField(error, PG_DIAG_SQLSTATE);
    map = ngx_http_recovery_sqlstate_find(sqlstate);

    if (map->status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: the call failed with SQLSTATE %s: %s",
                      sqlstate ? sqlstate : "none",
                      PQresultErrorMessage(error));

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "recovery: SQLSTATE %s: %s",
                      sqlstate ? sqlstate : "none",
                      PQresultErrorField(error, PG_DIAG_MESSAGE_PRIMARY));
    }

    if (map->status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"recovery\", "
                               "error=\"invalid_token\"");
        r->headers_out.www_authenticate = h;
    }

    if (map->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
    }

    obj = json_object_new_object();
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_object_add(obj, "error", json_object_new_string(map->code));

    if (map->status >= NGX_HTTP_INTERNAL_SERVER_ERROR
        && map->status != NGX_HTTP_SERVICE_UNAVAILABLE)
    {
        json_object_object_add(obj, "message",
            json_object_new_string("the server failed to handle the "
                                   "request; its log has the details"));

    } else {
        text = PQresultErrorField(error, PG_DIAG_MESSAGE_PRIMARY);
        json_object_object_add(obj, "message",
                               json_object_new_string(text ? text : ""));

        text = PQresultErrorField(error, PG_DIAG_MESSAGE_DETAIL);
        if (text) {
            json_object_object_add(obj, "detail", json_object_new_string(text));
        }

        text = PQresultErrorField(error, PG_DIAG_MESSAGE_HINT);
        if (text) {
            json_object_object_add(obj, "hint", json_object_new_string(text));
        }
    }

    if (sqlstate) {
        json_object_object_add(obj, "sqlstate",
                               json_object_new_string(sqlstate));
    }

    ngx_http_recovery_json_add(obj, "request_id",
                               ngx_http_recovery_request_id(r));

    return ngx_http_recovery_send_object(r, map->status, obj);
}


/*
 * A stored document, as an attachment: its content type was checked
 * against its bytes on upload, and nosniff keeps browsers to it.
 */
ngx_int_t
ngx_http_recovery_send_file(ngx_http_request_t *r, PGresult *result)
{
    u_char           *p, *name, *content;
    size_t            i, len, size;
    ngx_table_elt_t  *h;

    size = PQgetlength(result, 0, 2);
    content = ngx_pnalloc(r->pool, size ? size : 1);
    if (content == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(content, PQgetvalue(result, 0, 2), size);

    len = PQgetlength(result, 0, 0);
    r->headers_out.content_type.data = ngx_pnalloc(r->pool, len + 1);
    if (r->headers_out.content_type.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(r->headers_out.content_type.data, PQgetvalue(result, 0, 0),
               len);
    r->headers_out.content_type.len = len;
    r->headers_out.content_type_len = len;
    r->headers_out.content_type_lowcase = NULL;

    /* a filename keeps only characters that need no quoting anywhere */
    len = PQgetlength(result, 0, 1);
    name = (u_char *) PQgetvalue(result, 0, 1);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof("attachment; filename=\"\"") + len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Disposition");
    h->value.data = p;
    p = ngx_cpymem(p, "attachment; filename=\"",
                   sizeof("attachment; filename=\"") - 1);

    for (i = 0; i < len; i++) {
        *p++ = ((name[i] >= 'a' && name[i] <= 'z')
                || (name[i] >= 'A' && name[i] <= 'Z')
                || (name[i] >= '0' && name[i] <= '9')
                || name[i] == '.' || name[i] == '-' || name[i] == '_')
               ? name[i] : '_';
    }

    *p++ = '"';
    h->value.len = p - h->value.data;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");

    return ngx_http_recovery_send_body(r, NGX_HTTP_OK, content, size);
}


/*
 * 201: where the new resource is, its path with the "id" of the answer
 * appended; relative, as RFC 9110 allows, so nginx leaves it as it is.
 */
ngx_int_t
ngx_http_recovery_set_location(ngx_http_request_t *r, ngx_str_t *path,
    json_object *created)
{
    u_char           *p;
    json_object      *id;
    ngx_table_elt_t  *h;

    if (!json_object_object_get_ex(created, "id", &id)
        || !json_object_is_type(id, json_type_int))
    {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, path->len + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%V%L", path, json_object_get_int64(id)) - p;

    return NGX_OK;
}


/* 503: the database cannot take the request now; try again after a while */
ngx_int_t
ngx_http_recovery_send_unavailable(ngx_http_request_t *r, ngx_str_t *message,
    time_t retry_after)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.len = ngx_sprintf(h->value.data, "%T", retry_after)
                   - h->value.data;

    return ngx_http_recovery_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "database_unavailable", message, NULL);
}


static ngx_http_recovery_sqlstate_t *
ngx_http_recovery_sqlstate_find(const char *sqlstate)
{
    ngx_http_recovery_sqlstate_t  *map;

    for (map = ngx_http_recovery_sqlstates; map->sqlstate; map++) {
        if (sqlstate == NULL) {
            continue;
        }

        if (ngx_strncmp(sqlstate, map->sqlstate, ngx_strlen(map->sqlstate))
            == 0)
        {
            return map;
        }
    }

    return map;
}


static void
ngx_http_recovery_json_add(json_object *obj, const char *key,
    ngx_str_t *value)
{
    if (value && value->len) {
        json_object_object_add(obj, key,
                               json_object_new_string_len(
                                   (const char *) value->data,
                                   (int) value->len));
    }
}
