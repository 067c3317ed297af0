
/*
 * Authentication: a JWT verified here, without the database, or an API key
 * taken along for the extension to check in the request's own round trip;
 * the 401 answers; the tokens recovery_login mints and the event-stream
 * tickets recovery_events_ticket mints; and the directives that configure
 * them (algorithms, keys, roles).
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_auth.h"
#include "ngx_http_recovery_tokens.h"
#include "ngx_http_recovery_response.h"

#include <openssl/pem.h>


#define NGX_HTTP_RECOVERY_MIN_SECRET 32
#define NGX_HTTP_RECOVERY_MAX_KEY    256


static ngx_int_t ngx_http_recovery_credentials(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_str_t *token, const char **refusal);
static ngx_int_t ngx_http_recovery_claims(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    json_object *claims, const char **error);
static json_object *ngx_http_recovery_profile(ngx_http_recovery_ctx_t *ctx,
    u_char *user);
static char *ngx_http_recovery_sign(ngx_http_request_t *r,
    ngx_http_recovery_loc_conf_t *rlcf, json_object *profile, time_t ttl,
    time_t session_exp);
static ngx_int_t ngx_http_recovery_send_credential(ngx_http_request_t *r,
    json_object *out);
static void ngx_http_recovery_free_key(void *data);


static ngx_str_t  ngx_http_recovery_api_key_header = ngx_string("X-API-Key");


/*
 * A JWT is verified here, without the database; an API key is only taken
 * along: the extension checks its hash in the request's own round trip.
 * NGX_DECLINED: refused, *refusal says why (NULL: no credentials at all).
 */
ngx_int_t
ngx_http_recovery_authenticate(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    const char **refusal)
{
    ngx_int_t     rc;
    ngx_str_t     token;
    ngx_uint_t    i;
    const char   *error;
    json_object  *claims;

    if (ngx_http_recovery_credentials(r, ctx, &token, refusal) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_KEY) {
        if (token.len > NGX_HTTP_RECOVERY_MAX_KEY) {
            *refusal = "the API key is invalid";
            return NGX_DECLINED;
        }

        for (i = 0; i < token.len; i++) {
            if (token.data[i] <= ' ' || token.data[i] >= 0x7f) {
                *refusal = "the API key is invalid";
                return NGX_DECLINED;
            }
        }

        return ngx_http_recovery_copy(r->pool, &ctx->api_key,
                                      (char *) token.data, token.len);
    }

    if (rlcf->algorithms == 0) {
        *refusal = "tokens are not accepted here";
        return NGX_DECLINED;
    }

    /* a token this worker has verified: its claims as they were */
    if (!ctx->ticket) {
        rc = ngx_http_recovery_tokens_get(r, ctx, rlcf, &token);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    claims = recovery_jwt_verify(&rlcf->verifier, (const char *) token.data,
                                 token.len, ngx_time(), &error);

    if (claims) {
        error = NULL;

        if (ngx_http_recovery_claims(r, ctx, rlcf, claims, &error) != NGX_OK) {
            json_object_put(claims);

            if (error == NULL) {
                return NGX_ERROR;
            }

            *refusal = error;
            return NGX_DECLINED;
        }

        json_object_put(claims);

        if (!ctx->ticket) {
            ngx_http_recovery_tokens_put(ctx, rlcf, &token);
        }

        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "recovery: token refused: %s", error);

    *refusal = error;
    return NGX_DECLINED;
}


/*
 * The credentials a request sends: an X-API-Key header, or a Bearer token
 * that is a JWT (three dot-separated parts) or an API key (none).
 */
static ngx_int_t
ngx_http_recovery_credentials(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_str_t *token, const char **refusal)
{
    u_char           *p, *last;
    ngx_table_elt_t  *header;

    ngx_str_null(token);

    header = ngx_http_recovery_header(r, &ngx_http_recovery_api_key_header);
    if (header) {
        *token = header->value;
        ctx->auth = NGX_HTTP_RECOVERY_AUTH_KEY;
    }

    if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_NONE
        && r->headers_in.authorization)
    {
        p = r->headers_in.authorization->value.data;
        last = p + r->headers_in.authorization->value.len;

        if (last - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7) != 0) {
            *refusal = "use the Bearer scheme with a token or an API key";
            return NGX_DECLINED;
        }

        for (p += 7; p < last && *p == ' '; p++) { /* void */ }

        token->data = p;
        token->len = last - p;

        ctx->auth = ngx_strlchr(p, last, '.') ? NGX_HTTP_RECOVERY_AUTH_JWT
                                              : NGX_HTTP_RECOVERY_AUTH_KEY;
    }

    /* a browser's EventSource cannot send headers: it sends a ticket */
    if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_NONE
        && ctx->route->kind == NGX_HTTP_RECOVERY_EVENTS
        && ngx_http_arg(r, (u_char *) "ticket", 6, token) == NGX_OK)
    {
        ctx->auth = NGX_HTTP_RECOVERY_AUTH_JWT;
        ctx->ticket = 1;
    }

    if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_NONE || token->len == 0) {
        *refusal = NULL;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * What a verified token's claims give the request: the user (sub), the role
 * to switch to, the actor for the audit trail, and the claims themselves.
 * NGX_ERROR with *error set: the token is refused for that reason.
 */
static ngx_int_t
ngx_http_recovery_claims(ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx,
    ngx_http_recovery_loc_conf_t *rlcf, json_object *claims,
    const char **error)
{
    u_char       *copy;
    size_t        len;
    ngx_str_t    *role;
    ngx_uint_t    i, scoped;
    const char   *s;
    json_object  *field;

    /* sub: the id of a row of recovery.users, digits only */
    if (!json_object_object_get_ex(claims, "sub", &field)
        || (!json_object_is_type(field, json_type_string)
            && !json_object_is_type(field, json_type_int)))
    {
        *error = "token has no sub claim";
        goto refused;
    }

    s = json_object_get_string(field);
    len = ngx_strlen(s);

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            break;
        }
    }

    if (len == 0 || len > 18 || i != len) {
        *error = "token sub claim is not a user id";
        goto refused;
    }

    if (ngx_http_recovery_copy(r->pool, &ctx->user_id, s, len) != NGX_OK) {
        return NGX_ERROR;
    }

    /* role: one of the roles this location lets tokens switch to */
    if (!json_object_object_get_ex(claims, "role", &field)
        || !json_object_is_type(field, json_type_string))
    {
        *error = "token has no role claim";
        goto refused;
    }

    s = json_object_get_string(field);
    len = ngx_strlen(s);
    role = rlcf->roles->elts;

    for (i = 0; i < rlcf->roles->nelts; i++) {
        if (role[i].len == len && ngx_strncmp(role[i].data, s, len) == 0) {
            break;
        }
    }

    if (i == rlcf->roles->nelts) {
        *error = "token role is not accepted";
        goto refused;
    }

    ctx->role = role[i];

    /*
     * A ticket (scope "events") opens an event stream and nothing else; a
     * token does not go into a URL.  The stream lives as long as the
     * session the ticket came from (session_exp), else as the token.
     */
    scoped = json_object_object_get_ex(claims, "scope", &field)
             && json_object_is_type(field, json_type_string)
             && ngx_strcmp(json_object_get_string(field),
                           NGX_HTTP_RECOVERY_TICKET_SCOPE) == 0;

    if (scoped && !ctx->ticket) {
        *error = "an event-stream ticket goes in ?ticket= of "
                 "GET /api/v1/events, and opens nothing else";
        goto refused;
    }

    if (ctx->ticket && !scoped) {
        *error = "?ticket= takes a ticket from POST /api/v1/events/ticket, "
                 "not a token";
        goto refused;
    }

    if ((scoped && json_object_object_get_ex(claims, "session_exp", &field))
        || json_object_object_get_ex(claims, "exp", &field))
    {
        ctx->expires = (time_t) json_object_get_int64(field);
    }

    if (json_object_object_get_ex(claims, "email", &field)
        && json_object_is_type(field, json_type_string))
    {
        s = json_object_get_string(field);
        len = ngx_strlen(s);

    } else {
        s = NULL;
        len = 0;
    }

    copy = ngx_pnalloc(r->pool, len + sizeof("user:") + NGX_INT64_LEN);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ctx->actor.data = copy;
    ctx->actor.len = (s ? ngx_sprintf(copy, "%*s%Z", len, s)
                        : ngx_sprintf(copy, "user:%V%Z", &ctx->user_id))
                     - copy - 1;

    s = json_object_to_json_string_ext(claims, NGX_HTTP_RECOVERY_JSON);

    return ngx_http_recovery_copy(r->pool, &ctx->claims, s, ngx_strlen(s));

refused:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "recovery: token refused: %s", *error);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_recovery_unauthorized(ngx_http_request_t *r, const char *description)
{
    u_char           *p;
    size_t            len;
    ngx_str_t         message;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("Bearer realm=\"recovery\", error=\"invalid_token\", "
                 "error_description=\"\"") + 128;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = p;

    /* RFC 6750: no error code when the request had no credentials at all */
    if (description) {
        h->value.len = ngx_snprintf(p, len, "Bearer realm=\"recovery\", "
                                    "error=\"invalid_token\", "
                                    "error_description=\"%s\"", description)
                       - p;
        message.data = (u_char *) description;
        message.len = ngx_strlen(description);

    } else {
        h->value.len = ngx_sprintf(p, "Bearer realm=\"recovery\"") - p;
        ngx_str_set(&message, "authentication required: send "
                              "\"Authorization: Bearer <token or API key>\"");
    }

    r->headers_out.www_authenticate = h;

    return ngx_http_recovery_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                        description ? "invalid_credentials"
                                                    : "authentication_required",
                                        &message, NULL);
}


/* the extension checked the password; the gateway mints the token */
ngx_int_t
ngx_http_recovery_auth_login(ngx_http_recovery_ctx_t *ctx, u_char *user,
    size_t len)
{
    char                          *token;
    json_object                   *profile, *out;
    ngx_http_request_t            *r;
    ngx_http_recovery_loc_conf_t  *rlcf;

    r = ctx->request;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_recovery_module);

    profile = ngx_http_recovery_profile(ctx, user);
    if (profile == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = ngx_http_recovery_sign(r, rlcf, profile, rlcf->token_ttl, 0);
    if (token == NULL) {
        json_object_put(profile);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = json_object_new_object();
    json_object_object_add(out, "token", json_object_new_string(token));
    json_object_object_add(out, "token_type", json_object_new_string("Bearer"));
    json_object_object_add(out, "expires_in",
                           json_object_new_int64(rlcf->token_ttl));
    json_object_object_add(out, "user", profile);
    free(token);

    return ngx_http_recovery_send_credential(r, out);
}


/*
 * POST /api/v1/events/ticket: the extension confirmed the user; the ticket
 * opens their event stream for NGX_HTTP_RECOVERY_TICKET_TTL seconds, and
 * the stream lasts as long as the token it was asked with.
 */
ngx_int_t
ngx_http_recovery_auth_ticket(ngx_http_recovery_ctx_t *ctx, u_char *user,
    size_t len)
{
    char                          *ticket;
    json_object                   *profile, *out;
    ngx_http_request_t            *r;
    ngx_http_recovery_loc_conf_t  *rlcf;

    r = ctx->request;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_recovery_module);

    profile = ngx_http_recovery_profile(ctx, user);
    if (profile == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ticket = ngx_http_recovery_sign(r, rlcf, profile,
                                    NGX_HTTP_RECOVERY_TICKET_TTL,
                                    ctx->expires ? ctx->expires
                                                 : ngx_time()
                                                   + rlcf->token_ttl);
    json_object_put(profile);

    if (ticket == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = json_object_new_object();
    json_object_object_add(out, "ticket", json_object_new_string(ticket));
    json_object_object_add(out, "expires_in",
                           json_object_new_int64(NGX_HTTP_RECOVERY_TICKET_TTL));
    free(ticket);

    return ngx_http_recovery_send_credential(r, out);
}


static json_object *
ngx_http_recovery_profile(ngx_http_recovery_ctx_t *ctx, u_char *user)
{
    json_object  *profile;

    profile = json_tokener_parse((const char *) user);

    if (profile == NULL || !json_object_is_type(profile, json_type_object)) {
        json_object_put(profile);
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "recovery: %V did not return a JSON object",
                      &ctx->route->function);
        return NULL;
    }

    return profile;
}


/*
 * A token for the profile's user (user_id, role, email), valid for ttl;
 * with session_exp, a ticket for the event stream (scope "events").
 */
static char *
ngx_http_recovery_sign(ngx_http_request_t *r,
    ngx_http_recovery_loc_conf_t *rlcf, json_object *profile, time_t ttl,
    time_t session_exp)
{
    char         *token;
    time_t        now;
    json_object  *claims, *field;

    now = ngx_time();
    claims = json_object_new_object();

    if (json_object_object_get_ex(profile, "user_id", &field)) {
        json_object_object_add(claims, "sub",
                               json_object_new_string(
                                   json_object_get_string(field)));
    }

    if (json_object_object_get_ex(profile, "role", &field)) {
        json_object_object_add(claims, "role", json_object_get(field));
    }

    if (json_object_object_get_ex(profile, "email", &field)) {
        json_object_object_add(claims, "email", json_object_get(field));
    }

    if (rlcf->issuer.len) {
        json_object_object_add(claims, "iss", json_object_new_string(
                                   (const char *) rlcf->issuer.data));
    }

    if (rlcf->audience.len) {
        json_object_object_add(claims, "aud", json_object_new_string(
                                   (const char *) rlcf->audience.data));
    }

    json_object_object_add(claims, "iat", json_object_new_int64(now));
    json_object_object_add(claims, "exp", json_object_new_int64(now + ttl));

    if (session_exp) {
        json_object_object_add(claims, "scope", json_object_new_string(
                                   NGX_HTTP_RECOVERY_TICKET_SCOPE));
        json_object_object_add(claims, "session_exp",
                               json_object_new_int64(session_exp));
    }

    /* an HS256 token names its key, so that a rotation can tell them apart */
    token = recovery_jwt_sign((unsigned) rlcf->sign_algorithm,
                              rlcf->secret.data, rlcf->secret.len,
                              rlcf->sign_algorithm == RECOVERY_JWT_HS256
                              ? rlcf->verifier.kid : NULL,
                              rlcf->private_key, claims);
    json_object_put(claims);

    if (token == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: cannot sign a token");
    }

    return token;
}


/* a token is a credential: no cache may keep it */
static ngx_int_t
ngx_http_recovery_send_credential(ngx_http_request_t *r, json_object *out)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        json_object_put(out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    return ngx_http_recovery_send_object(r, NGX_HTTP_OK, out);
}


/* directives */


char *
ngx_http_recovery_algorithms(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    unsigned    alg;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (rlcf->algorithms != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    rlcf->algorithms = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        alg = recovery_jwt_algorithm((const char *) value[i].data);

        if (alg == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unsupported JWT algorithm \"%V\": use HS256, "
                               "RS256 or ES256", &value[i]);
            return NGX_CONF_ERROR;
        }

        rlcf->algorithms |= alg;
    }

    return NGX_CONF_OK;
}


/* An HS256 secret from a file, into secret. */
static char *
ngx_http_recovery_read_secret(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *secret)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        name;
    ngx_file_info_t  fi;

    name = *file;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || ngx_file_size(&fi) > 4096) {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a secret of at most 4096 bytes",
                           &name);
        return NGX_CONF_ERROR;
    }

    secret->data = ngx_pnalloc(cf->pool, 4097);
    if (secret->data == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, secret->data, 4096);
    ngx_close_file(fd);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    /* a trailing newline left by an editor is not part of the secret */
    while (n > 0 && (secret->data[n - 1] == '\n'
                     || secret->data[n - 1] == '\r'))
    {
        n--;
    }

    secret->len = (size_t) n;

    if (secret->len < NGX_HTTP_RECOVERY_MIN_SECRET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the HS256 secret in \"%V\" is shorter than %d "
                           "bytes: make one with "
                           "\"openssl rand -base64 48 > %V\"",
                           &name, NGX_HTTP_RECOVERY_MIN_SECRET, &name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * recovery_jwt_secret_file FILE [PREVIOUS]: the HS256 secret tokens are
 * signed with, and, during a rotation, the previous one, which still
 * verifies the tokens it signed until they expire.
 */
char *
ngx_http_recovery_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    ngx_str_t  *value;

    if (rlcf->secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_recovery_read_secret(cf, &value[1], &rlcf->secret)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3
        && ngx_http_recovery_read_secret(cf, &value[2],
                                         &rlcf->previous_secret)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_recovery_free_key(void *data)
{
    EVP_PKEY_free(data);
}


char *
ngx_http_recovery_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    BIO                 *bio;
    EVP_PKEY           **key;
    ngx_str_t           *value, name;
    ngx_pool_cleanup_t  *cln;

    key = (EVP_PKEY **) (p + cmd->offset);

    if (*key != NGX_CONF_UNSET_PTR && *key != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    bio = BIO_new_file((const char *) name.data, "r");
    if (bio == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open the key file \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (cmd->offset == offsetof(ngx_http_recovery_loc_conf_t, public_key)) {
        *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);

    } else {
        *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    }

    BIO_free(bio);

    if (*key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds no PEM %s key", &name,
                           cmd->offset == offsetof(ngx_http_recovery_loc_conf_t,
                                                   public_key)
                           ? "public" : "private");
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(*key);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_recovery_free_key;
    cln->data = *key;

    return NGX_CONF_OK;
}


char *
ngx_http_recovery_sign_algorithm(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    ngx_str_t  *value;

    if (rlcf->sign_algorithm != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    rlcf->sign_algorithm = recovery_jwt_algorithm((const char *) value[1].data);

    if (rlcf->sign_algorithm == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unsupported JWT algorithm \"%V\": use HS256, "
                           "RS256 or ES256", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* recovery_jwt_roles role ...; */
char *
ngx_http_recovery_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    ngx_str_t   *value, *role;
    ngx_uint_t   i;

    if (rlcf->roles != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rlcf->roles = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                   sizeof(ngx_str_t));
    if (rlcf->roles == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        role = ngx_array_push(rlcf->roles);
        if (role == NULL) {
            return NGX_CONF_ERROR;
        }

        *role = value[i];
    }

    return NGX_CONF_OK;
}
