
/*
 * Idempotency-Key on a POST: the extension keeps the first response under
 * the key and replays it to retries (recovery.idempotency_begin).  Here:
 * the key checked, the body's hash that a retry must match, and the replay.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_idempotency.h"
#include "ngx_http_recovery_response.h"

#include <openssl/sha.h>


static ngx_str_t  ngx_http_recovery_idempotency_header =
    ngx_string("Idempotency-Key");


/*
 * The request's key, if it sent one.  NGX_DECLINED: none, or a good one;
 * anything else is the response (400).
 */
ngx_int_t
ngx_http_recovery_idempotency_key(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_str_t         message;
    ngx_uint_t        i;
    ngx_table_elt_t  *header;

    header = ngx_http_recovery_header(r, &ngx_http_recovery_idempotency_header);
    if (header == NULL) {
        return NGX_DECLINED;
    }

    for (i = 0; i < header->value.len; i++) {
        if (header->value.data[i] <= ' ' || header->value.data[i] >= 0x7f) {
            break;
        }
    }

    if (header->value.len == 0 || header->value.len > 200
        || i != header->value.len)
    {
        ngx_str_set(&message, "an Idempotency-Key is 1 to 200 visible "
                              "ASCII characters");
        return ngx_http_recovery_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid_idempotency_key",
                                            &message, NULL);
    }

    if (ngx_http_recovery_copy(r->pool, &ctx->idempotency_key,
                               (char *) header->value.data,
                               header->value.len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a route without a body: the body to compare is the empty one */
    ngx_http_recovery_idempotency_hash(ctx, NULL, 0);

    return NGX_DECLINED;
}


void
ngx_http_recovery_idempotency_hash(ngx_http_recovery_ctx_t *ctx,
    u_char *body, size_t len)
{
    u_char  digest[SHA256_DIGEST_LENGTH];

    SHA256(body ? body : (u_char *) "", len, digest);
    ngx_hex_dump(ctx->request_hash, digest, SHA256_DIGEST_LENGTH);
    ctx->request_hash[2 * SHA256_DIGEST_LENGTH] = '\0';
}


/* a retry: idempotency_begin returned the first response's status and body */
ngx_int_t
ngx_http_recovery_idempotency_replay(ngx_http_request_t *r,
    PGresult *result, ngx_str_t *location)
{
    ngx_int_t         status;
    json_object      *replay, *field, *body;
    ngx_table_elt_t  *h;

    replay = json_tokener_parse(PQgetvalue(result, 0, 0));

    if (replay == NULL
        || !json_object_object_get_ex(replay, "status", &field)
        || !json_object_is_type(field, json_type_int)
        || !json_object_object_get_ex(replay, "body", &body))
    {
        json_object_put(replay);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: an idempotent replay without a response");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = json_object_get_int(field);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        json_object_put(replay);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Idempotent-Replayed");
    ngx_str_set(&h->value, "true");

    /* the first answer's Location too, when it created something */
    if (location->len && status == NGX_HTTP_CREATED
        && ngx_http_recovery_set_location(r, location, body) != NGX_OK)
    {
        json_object_put(replay);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_get(body);
    json_object_put(replay);

    return ngx_http_recovery_send_object(r, status, body);
}
