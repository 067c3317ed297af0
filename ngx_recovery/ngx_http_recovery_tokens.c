
/*
 * Verified tokens, kept per worker until they expire.  A client sends the
 * same token with every request, and verifying it (base64url, two JSON
 * documents, an HMAC or a signature, the claims written out again) was the
 * largest part of the gateway's own work per request.  A small table
 * indexed by the token's hash: an entry holds the token (compared in full,
 * in constant time), the location whose verifier and roles accepted it,
 * until when it holds (exp + leeway), and what a request takes from it.
 * Event-stream tickets are not kept: they live for seconds.
 */

#include <openssl/crypto.h>

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_tokens.h"


#define NGX_HTTP_RECOVERY_TOKENS     256     /* entries, per worker */
#define NGX_HTTP_RECOVERY_TOKEN_MAX  4096    /* longer ones are not kept */


typedef struct {
    u_char                        *data;     /* token, user, actor, claims */
    ngx_http_recovery_loc_conf_t  *rlcf;
    time_t                         until;
    time_t                         expires;
    size_t                         token_len;
    ngx_str_t                      user_id;
    ngx_str_t                      role;
    ngx_str_t                      actor;
    ngx_str_t                      claims;
} ngx_http_recovery_token_t;


static ngx_http_recovery_token_t  ngx_http_recovery_tokens[
                                                  NGX_HTTP_RECOVERY_TOKENS];


static ngx_http_recovery_token_t *
ngx_http_recovery_tokens_slot(ngx_str_t *token)
{
    return &ngx_http_recovery_tokens[ngx_hash_key(token->data, token->len)
                                     % NGX_HTTP_RECOVERY_TOKENS];
}


/* NGX_OK: the token was verified here before and holds; ctx has its claims */
ngx_int_t
ngx_http_recovery_tokens_get(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    ngx_str_t *token)
{
    ngx_http_recovery_token_t  *t;

    t = ngx_http_recovery_tokens_slot(token);

    if (t->data == NULL
        || t->rlcf != rlcf
        || t->token_len != token->len
        || ngx_time() > t->until
        || CRYPTO_memcmp(t->data, token->data, token->len) != 0)
    {
        return NGX_DECLINED;
    }

    /* copies: the entry may be replaced while the request goes on */
    if (ngx_http_recovery_copy(r->pool, &ctx->user_id,
                               (char *) t->user_id.data, t->user_id.len)
        != NGX_OK
        || ngx_http_recovery_copy(r->pool, &ctx->actor,
                                  (char *) t->actor.data, t->actor.len)
           != NGX_OK
        || ngx_http_recovery_copy(r->pool, &ctx->claims,
                                  (char *) t->claims.data, t->claims.len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->role = t->role;
    ctx->expires = t->expires;

    return NGX_OK;
}


/* keeps what the request took from a token it has just verified */
void
ngx_http_recovery_tokens_put(ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_loc_conf_t *rlcf, ngx_str_t *token)
{
    u_char                     *p;
    size_t                      size;
    ngx_http_recovery_token_t  *t;

    size = token->len + ctx->user_id.len + ctx->actor.len + ctx->claims.len;

    if (token->len > NGX_HTTP_RECOVERY_TOKEN_MAX
        || size > 4 * NGX_HTTP_RECOVERY_TOKEN_MAX
        || ctx->expires == 0)
    {
        return;
    }

    t = ngx_http_recovery_tokens_slot(token);

    p = ngx_alloc(size, ngx_cycle->log);
    if (p == NULL) {
        return;
    }

    if (t->data) {
        ngx_free(t->data);
    }

    t->data = p;
    t->rlcf = rlcf;
    t->until = ctx->expires + rlcf->verifier.leeway;
    t->expires = ctx->expires;
    t->token_len = token->len;
    t->role = ctx->role;
    p = ngx_cpymem(p, token->data, token->len);

    t->user_id.data = p;
    t->user_id.len = ctx->user_id.len;
    p = ngx_cpymem(p, ctx->user_id.data, ctx->user_id.len);

    t->actor.data = p;
    t->actor.len = ctx->actor.len;
    p = ngx_cpymem(p, ctx->actor.data, ctx->actor.len);

    t->claims.data = p;
    t->claims.len = ctx->claims.len;
    ngx_memcpy(p, ctx->claims.data, ctx->claims.len);
}
