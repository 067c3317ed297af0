
/*
 * The request's way through the gateway, in the order it takes:
 *
 *   ngx_http_recovery_handler     the route for the method, credentials,
 *                                 the Idempotency-Key; then the body
 *   ngx_http_recovery_body_read   the body, read whole, checked
 *   ngx_http_recovery_start       the arguments, and the call on the pool
 *   ngx_http_recovery_call_done   the pool's answer (or failure) ...
 *   ngx_http_recovery_respond     ... turned into the response (or, for
 *                                 GET /api/v1/events, into a stream:
 *                                 ngx_http_recovery_events.c)
 *
 * Each step answers the client itself when the request stops there.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_handler.h"
#include "ngx_http_recovery_args.h"
#include "ngx_http_recovery_auth.h"
#include "ngx_http_recovery_body.h"
#include "ngx_http_recovery_call.h"
#include "ngx_http_recovery_events.h"
#include "ngx_http_recovery_idempotency.h"
#include "ngx_http_recovery_metrics.h"
#include "ngx_http_recovery_replicas.h"
#include "ngx_http_recovery_request_id.h"
#include "ngx_http_recovery_response.h"
#include "ngx_http_recovery_route.h"


static ngx_int_t ngx_http_recovery_admit(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf);
static void ngx_http_recovery_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_recovery_start(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx);
static ngx_int_t ngx_http_recovery_ask_primary(ngx_http_recovery_ctx_t *ctx);
static void ngx_http_recovery_call_done(ngx_http_recovery_call_t *call);
static ngx_int_t ngx_http_recovery_respond(ngx_http_recovery_ctx_t *ctx);
static ngx_int_t ngx_http_recovery_unavailable(ngx_http_request_t *r,
    ngx_str_t *message);
static void ngx_http_recovery_cleanup(void *data);


ngx_int_t
ngx_http_recovery_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                     *id;
    ngx_table_elt_t               *h;
    ngx_http_cleanup_t            *cln;
    ngx_http_recovery_ctx_t       *ctx;
    ngx_http_recovery_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_recovery_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_recovery_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_recovery_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->start = ngx_current_msec;
    ngx_http_set_ctx(r, ctx, ngx_http_recovery_module);

    id = ngx_http_recovery_request_id(r);
    if (ngx_http_recovery_copy(r->pool, &ctx->request_id, (char *) id->data,
                               id->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Request-Id");
    h->value = ctx->request_id;

    rc = ngx_http_recovery_admit(r, ctx, rlcf);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ctx->route->needs_body) {
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r, ngx_http_recovery_body_read);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_recovery_start(r, ctx);

    if (rc == NGX_DONE) {
        /* the pool answers later, from the database connection's event */
        r->main->count++;
    }

    return rc;
}


/*
 * Whether the request may go on before its body is read: a route for its
 * method (405), credentials this location takes (401, 403), a well-formed
 * Idempotency-Key (400).  NGX_DECLINED: it goes on; anything else is the
 * response it got, its body discarded (a response sent is often NGX_OK).
 */
static ngx_int_t
ngx_http_recovery_admit(ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_loc_conf_t *rlcf)
{
    ngx_int_t    rc;
    const char  *refusal;

    ctx->route = ngx_http_recovery_route_find(rlcf, r->method);

    if (ctx->route == NULL) {
        if (ngx_http_recovery_route_allow(r, rlcf) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_discard_request_body(r);
        return ngx_http_recovery_send_error(r, NGX_HTTP_NOT_ALLOWED,
                   "method_not_allowed",
                   &(ngx_str_t) ngx_string("this resource does not accept "
                                           "the method; see Allow"),
                   NULL);
    }

    ctx->read_only = (ctx->route->method == NGX_HTTP_GET);

    if (ctx->route->kind != NGX_HTTP_RECOVERY_LOGIN && rlcf->auth) {
        refusal = NULL;
        rc = ngx_http_recovery_authenticate(r, ctx, rlcf, &refusal);

        if (rc == NGX_DECLINED) {
            ngx_http_discard_request_body(r);
            return ngx_http_recovery_unauthorized(r, refusal);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* API keys are for machines: they reach the routes meant for them */
        if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_KEY && !rlcf->api_keys) {
            ngx_http_discard_request_body(r);
            return ngx_http_recovery_send_error(r, NGX_HTTP_FORBIDDEN,
                       "api_key_not_allowed",
                       &(ngx_str_t) ngx_string("API keys are not accepted "
                                               "here: they reach the "
                                               "automation routes"),
                       NULL);
        }
    }

    if (ctx->route->idempotent_sql) {
        rc = ngx_http_recovery_idempotency_key(r, ctx);
        if (rc != NGX_DECLINED) {
            ngx_http_discard_request_body(r);
            return rc;
        }
    }

    return NGX_DECLINED;
}


static void
ngx_http_recovery_body_read(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_str_t                 message;
    ngx_uint_t                status;
    const char               *code;
    ngx_http_recovery_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);

    rc = ngx_http_recovery_body_parse(r, ctx, &status, &code, &message);

    if (rc == NGX_OK) {
        rc = ngx_http_recovery_start(r, ctx);

        if (rc == NGX_DONE) {
            return;
        }

    } else if (rc == NGX_DECLINED) {
        rc = ngx_http_recovery_send_error(r, status, code, &message, NULL);

    } else {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r, rc);
}


/* NGX_DONE: the pool has the request's call; anything else is the response */
static ngx_int_t
ngx_http_recovery_start(ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx)
{
    u_char                          buf[256];
    ngx_int_t                       rc;
    ngx_str_t                       error;
    ngx_http_recovery_main_conf_t  *rmcf;

    error.data = buf;
    error.len = 0;

    if (ngx_http_recovery_args_query(ctx, &error) != NGX_OK) {
        return ngx_http_recovery_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "unknown_parameter", &error, NULL);
    }

    rc = ngx_http_recovery_args_bind(ctx, &error);

    if (rc == NGX_DECLINED) {
        return ngx_http_recovery_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid_value", &error, NULL);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    if (rmcf->pool == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->pool = ngx_http_recovery_replicas_pick(r, ctx);

    ngx_http_recovery_call_init(r, ctx, ngx_http_recovery_call_done,
                                ctx->pool != rmcf->pool);

    rc = ngx_http_recovery_pool_run(ctx->pool, &ctx->call);

    /* the standbys' queue is full: the primary may have room */
    if (rc != NGX_OK && ctx->pool != rmcf->pool) {
        rc = ngx_http_recovery_ask_primary(ctx);
    }

    if (rc == NGX_OK) {
        /* a client that goes away is noticed; its call is released */
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_DONE;
    }

    ngx_http_recovery_metrics_db_error(r);

    return ngx_http_recovery_unavailable(r,
               ngx_http_recovery_pool_connected(rmcf->pool)
               ? &(ngx_str_t) ngx_string("every database connection is "
                                         "busy and the queue is full")
               : &(ngx_str_t) ngx_string("the database is unavailable"));
}


/* the request's call again, on the primary's pool */
static ngx_int_t
ngx_http_recovery_ask_primary(ngx_http_recovery_ctx_t *ctx)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_recovery_module);

    ngx_http_recovery_pool_release(&ctx->call);
    ctx->pool = rmcf->pool;
    ngx_http_recovery_call_init(ctx->request, ctx,
                                ngx_http_recovery_call_done, 0);

    return ngx_http_recovery_pool_run(ctx->pool, &ctx->call);
}


/* the pool's callback: the database has answered, or the call failed */
static void
ngx_http_recovery_call_done(ngx_http_recovery_call_t *call)
{
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_recovery_ctx_t  *ctx;

    ctx = call->data;
    r = ctx->request;
    c = r->connection;

    /* a standby that cannot answer yet: the primary can */
    if (ngx_http_recovery_replicas_retry(ctx)
        && ngx_http_recovery_ask_primary(ctx) == NGX_OK)
    {
        return;
    }

    rc = ngx_http_recovery_respond(ctx);

    /* a document's bytes were copied: its result need not wait for the send */
    ngx_http_recovery_pool_release(call);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_recovery_respond(ngx_http_recovery_ctx_t *ctx)
{
    u_char              *json;
    size_t               len;
    ngx_int_t            rc;
    PGresult            *result;
    json_object         *created;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->call.failure.len) {
        ngx_http_recovery_metrics_db_error(r);
        return ngx_http_recovery_unavailable(r, &ctx->call.failure);
    }

    if (ctx->call.error) {
        rc = ngx_http_recovery_send_sql_error(r, ctx->call.error);

        if (r->headers_out.status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            ngx_http_recovery_metrics_db_error(r);
        }

        return rc;
    }

    result = ngx_http_recovery_call_replay(ctx);
    if (result) {
        return ngx_http_recovery_idempotency_replay(r, result,
                                                    &ctx->route->location);
    }

    result = ngx_http_recovery_call_result(ctx);

    if (result == NULL || PQntuples(result) != 1
        || PQnfields(result) != (ctx->route->file ? 3 : 1)
        || PQgetisnull(result, 0, ctx->route->file ? 2 : 0))
    {
        return ngx_http_recovery_send_error(r, NGX_HTTP_NOT_FOUND,
                   "not_found",
                   &(ngx_str_t) ngx_string("nothing was found"), NULL);
    }

    if (ctx->route->file) {
        return ngx_http_recovery_send_file(r, result);
    }

    len = PQgetlength(result, 0, 0);
    json = ngx_pnalloc(r->pool, len + 1);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(json, PQgetvalue(result, 0, 0), len);
    json[len] = '\0';

    switch (ctx->route->kind) {

    case NGX_HTTP_RECOVERY_LOGIN:
        return ngx_http_recovery_auth_login(ctx, json, len);

    case NGX_HTTP_RECOVERY_TICKET:
        return ngx_http_recovery_auth_ticket(ctx, json, len);

    case NGX_HTTP_RECOVERY_EVENTS:
        return ngx_http_recovery_events_start(ctx, json, len);

    default:
        break;
    }

    if (ngx_http_recovery_replicas_committed(r,
            ngx_http_recovery_call_commit_lsn(ctx))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route->location.len) {
        created = json_tokener_parse((const char *) json);
        rc = ngx_http_recovery_set_location(r, &ctx->route->location,
                                            created);
        json_object_put(created);

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_recovery_send_json(r, ctx->route->status, json, len);
}


static ngx_int_t
ngx_http_recovery_unavailable(ngx_http_request_t *r, ngx_str_t *message)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

    return ngx_http_recovery_send_unavailable(r, message,
               ngx_http_recovery_pool_retry_after(rmcf->pool));
}


/* the request is going away: its call must not be answered nor leak */
static void
ngx_http_recovery_cleanup(void *data)
{
    ngx_http_recovery_ctx_t  *ctx = data;

    ngx_http_recovery_pool_release(&ctx->call);
    ngx_http_recovery_events_stop(ctx);

    if (ctx->body) {
        json_object_put(ctx->body);
        ctx->body = NULL;
    }
}
