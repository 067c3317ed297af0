
/*
 * ngx_recovery: directives, configuration, and the request's way through
 * the gateway: route by method, authenticate, read the JSON body, run the
 * SQL call on the pool, answer with its JSON.
 */

#include "ngx_http_recovery_module.h"

#include <openssl/pem.h>
#include <openssl/sha.h>


static ngx_int_t ngx_http_recovery_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_recovery_init(ngx_conf_t *cf);
static void *ngx_http_recovery_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_recovery_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_recovery_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_recovery_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_recovery_init_process(ngx_cycle_t *cycle);
static void ngx_http_recovery_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_recovery_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_recovery_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_recovery_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_recovery_sign_algorithm(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_recovery_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_recovery_ops(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

static ngx_int_t ngx_http_recovery_authenticate(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    const char **refusal);
static ngx_int_t ngx_http_recovery_unauthorized(ngx_http_request_t *r,
    const char *description);
static void ngx_http_recovery_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_recovery_parse_body(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_uint_t *status, const char **code,
    ngx_str_t *message);
static ngx_int_t ngx_http_recovery_idempotency(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx);
static void ngx_http_recovery_hash_body(ngx_http_recovery_ctx_t *ctx,
    u_char *body, size_t len);
static ngx_int_t ngx_http_recovery_replay(ngx_http_request_t *r,
    PGresult *result);
static ngx_int_t ngx_http_recovery_upload(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, u_char *body, size_t len,
    ngx_uint_t *status, const char **code, ngx_str_t *message);
static ngx_int_t ngx_http_recovery_start(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx);
static ngx_int_t ngx_http_recovery_respond(ngx_http_recovery_ctx_t *ctx);
static ngx_int_t ngx_http_recovery_respond_login(ngx_http_recovery_ctx_t *ctx,
    u_char *user, size_t len);
static ngx_int_t ngx_http_recovery_unavailable(ngx_http_request_t *r,
    ngx_str_t *message);
static ngx_int_t ngx_http_recovery_send_file(ngx_http_request_t *r,
    PGresult *result);
static void ngx_http_recovery_cleanup(void *data);
static ngx_int_t ngx_http_recovery_ready_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_recovery_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_recovery_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_recovery_copy(ngx_pool_t *pool, ngx_str_t *dst,
    const char *src, size_t len);
static ngx_table_elt_t *ngx_http_recovery_header(ngx_http_request_t *r,
    ngx_str_t *name);


static ngx_str_t  ngx_http_recovery_api_key_header = ngx_string("X-API-Key");
static ngx_str_t  ngx_http_recovery_request_id_header =
    ngx_string("X-Request-Id");
static ngx_str_t  ngx_http_recovery_idempotency_header =
    ngx_string("Idempotency-Key");
static ngx_str_t  ngx_http_recovery_filename = ngx_string("filename");


#define NGX_HTTP_RECOVERY_READY      1
#define NGX_HTTP_RECOVERY_METRICS    2

#define NGX_HTTP_RECOVERY_MIN_SECRET 32
#define NGX_HTTP_RECOVERY_MAX_KEY    256
#define NGX_HTTP_RECOVERY_MAX_ID     128


static ngx_command_t  ngx_http_recovery_commands[] = {

    { ngx_string("recovery_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, conninfo),
      NULL },

    { ngx_string("recovery_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_size),
      NULL },

    { ngx_string("recovery_pool_read_reserve"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, read_reserve),
      NULL },

    { ngx_string("recovery_queue_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, queue_size),
      NULL },

    { ngx_string("recovery_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, queue_timeout),
      NULL },

    { ngx_string("recovery_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("recovery_statement_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, statement_timeout),
      NULL },

    { ngx_string("recovery_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, lock_timeout),
      NULL },

    { ngx_string("recovery_reconnect_max_delay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, reconnect_max_delay),
      NULL },

    { ngx_string("recovery_call"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_recovery_route,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_CALL },

    { ngx_string("recovery_login"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_route,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_LOGIN },

    { ngx_string("recovery_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, auth),
      NULL },

    { ngx_string("recovery_api_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, api_keys),
      NULL },

    { ngx_string("recovery_jwt_algorithms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_algorithms,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("recovery_jwt_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_recovery_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("recovery_jwt_public_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_recovery_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, public_key),
      NULL },

    { ngx_string("recovery_jwt_private_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_recovery_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, private_key),
      NULL },

    { ngx_string("recovery_jwt_sign_algorithm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_recovery_sign_algorithm,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("recovery_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, leeway),
      NULL },

    { ngx_string("recovery_jwt_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, token_ttl),
      NULL },

    { ngx_string("recovery_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, issuer),
      NULL },

    { ngx_string("recovery_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, audience),
      NULL },

    { ngx_string("recovery_jwt_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, roles),
      NULL },

    { ngx_string("recovery_readiness"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_recovery_ops,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_READY },

    { ngx_string("recovery_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_recovery_ops,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_METRICS },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_recovery_module_ctx = {
    ngx_http_recovery_add_variables,       /* preconfiguration */
    ngx_http_recovery_init,                /* postconfiguration */

    ngx_http_recovery_create_main_conf,    /* create main configuration */
    ngx_http_recovery_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_recovery_create_loc_conf,     /* create location configuration */
    ngx_http_recovery_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_recovery_module = {
    NGX_MODULE_V1,
    &ngx_http_recovery_module_ctx,         /* module context */
    ngx_http_recovery_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_recovery_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_recovery_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_recovery_request_id_name =
    ngx_string("recovery_request_id");
static ngx_str_t  ngx_http_recovery_no_request_id = ngx_null_string;


/* configuration */

static ngx_int_t
ngx_http_recovery_add_variables(ngx_conf_t *cf)
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


static ngx_int_t
ngx_http_recovery_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_recovery_log_handler;

    return NGX_OK;
}


static void *
ngx_http_recovery_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_recovery_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&rmcf->routes, cf->pool, 8,
                       sizeof(ngx_http_recovery_route_t *))
        != NGX_OK)
    {
        return NULL;
    }

    rmcf->pool_size = NGX_CONF_UNSET_UINT;
    rmcf->read_reserve = NGX_CONF_UNSET_UINT;
    rmcf->lock_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->queue_size = NGX_CONF_UNSET_UINT;
    rmcf->queue_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->statement_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->reconnect_max_delay = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_recovery_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_recovery_main_conf_t  *rmcf = conf;

    char              *error;
    PQconninfoOption  *options;

    ngx_conf_init_uint_value(rmcf->pool_size, 4);
    ngx_conf_init_uint_value(rmcf->queue_size, 256);
    ngx_conf_init_msec_value(rmcf->queue_timeout, 2000);
    ngx_conf_init_msec_value(rmcf->connect_timeout, 2000);
    ngx_conf_init_msec_value(rmcf->statement_timeout, 5000);
    ngx_conf_init_msec_value(rmcf->lock_timeout, 1000);
    ngx_conf_init_msec_value(rmcf->reconnect_max_delay, 2000);

    rmcf->request_id_index = ngx_http_get_variable_index(cf,
                                 &(ngx_str_t) ngx_string("request_id"));
    if (rmcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (!rmcf->used) {
        return NGX_CONF_OK;
    }

    if (rmcf->conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "recovery_call needs \"recovery_database\" with "
                           "a libpq connection string in the http block");
        return NGX_CONF_ERROR;
    }

    if (rmcf->pool_size == 0 || rmcf->pool_size > 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"recovery_pool_size\" must be between 1 and 256 "
                           "(on 2 cores, about 4 per worker is plenty)");
        return NGX_CONF_ERROR;
    }

    /* a write that waits on a row lock must not make reads wait too */
    ngx_conf_init_uint_value(rmcf->read_reserve, rmcf->pool_size > 1 ? 1 : 0);

    if (rmcf->read_reserve >= rmcf->pool_size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"recovery_pool_read_reserve\" must be less than "
                           "\"recovery_pool_size\" (%ui), or writes could "
                           "never run", rmcf->pool_size);
        return NGX_CONF_ERROR;
    }

    error = NULL;
    options = PQconninfoParse((const char *) rmcf->conninfo.data, &error);

    if (options == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"recovery_database\": %s",
                           error ? error : "out of memory");
        PQfreemem(error);
        return NGX_CONF_ERROR;
    }

    PQconninfoFree(options);

    if (ngx_http_recovery_metrics_init_zone(cf, rmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_recovery_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_recovery_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_recovery_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rlcf->routes = NULL;
     *     rlcf->secret = { 0, NULL };
     *     rlcf->issuer = { 0, NULL };
     *     rlcf->audience = { 0, NULL };
     *     rlcf->handler = 0;
     */

    rlcf->auth = NGX_CONF_UNSET;
    rlcf->api_keys = NGX_CONF_UNSET;
    rlcf->algorithms = NGX_CONF_UNSET_UINT;
    rlcf->sign_algorithm = NGX_CONF_UNSET_UINT;
    rlcf->leeway = NGX_CONF_UNSET;
    rlcf->token_ttl = NGX_CONF_UNSET;
    rlcf->roles = NGX_CONF_UNSET_PTR;
    rlcf->public_key = NGX_CONF_UNSET_PTR;
    rlcf->private_key = NGX_CONF_UNSET_PTR;

    return rlcf;
}


static char *
ngx_http_recovery_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_recovery_loc_conf_t  *prev = parent;
    ngx_http_recovery_loc_conf_t  *conf = child;

    ngx_uint_t                   i, login;
    ngx_http_recovery_route_t  **routes;

    ngx_conf_merge_value(conf->auth, prev->auth, 1);
    ngx_conf_merge_value(conf->api_keys, prev->api_keys, 1);
    ngx_conf_merge_uint_value(conf->algorithms, prev->algorithms, 0);
    ngx_conf_merge_str_value(conf->secret, prev->secret, "");
    ngx_conf_merge_ptr_value(conf->public_key, prev->public_key, NULL);
    ngx_conf_merge_ptr_value(conf->private_key, prev->private_key, NULL);
    ngx_conf_merge_uint_value(conf->sign_algorithm, prev->sign_algorithm, 0);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 30);
    ngx_conf_merge_sec_value(conf->token_ttl, prev->token_ttl, 900);
    ngx_conf_merge_str_value(conf->issuer, prev->issuer, "");
    ngx_conf_merge_str_value(conf->audience, prev->audience, "");
    ngx_conf_merge_ptr_value(conf->roles, prev->roles, NULL);

    if (conf->public_key == NGX_CONF_UNSET_PTR) {
        conf->public_key = NULL;
    }

    if (conf->private_key == NGX_CONF_UNSET_PTR) {
        conf->private_key = NULL;
    }

    if (conf->routes == NULL) {
        return NGX_CONF_OK;
    }

    /* checked where a route needs them, so that "nginx -t" names the fix */
    if ((conf->algorithms & RECOVERY_JWT_HS256) && conf->secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "recovery_jwt_algorithms HS256 needs "
                           "\"recovery_jwt_secret_file\"");
        return NGX_CONF_ERROR;
    }

    if ((conf->algorithms & RECOVERY_JWT_RS256)
        && (conf->public_key == NULL
            || EVP_PKEY_base_id(conf->public_key) != EVP_PKEY_RSA))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "recovery_jwt_algorithms RS256 needs an RSA key "
                           "in \"recovery_jwt_public_key\"");
        return NGX_CONF_ERROR;
    }

    if ((conf->algorithms & RECOVERY_JWT_ES256)
        && (conf->public_key == NULL
            || EVP_PKEY_base_id(conf->public_key) != EVP_PKEY_EC))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "recovery_jwt_algorithms ES256 needs a P-256 key "
                           "in \"recovery_jwt_public_key\"");
        return NGX_CONF_ERROR;
    }

    if (conf->algorithms && conf->roles == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tokens need \"recovery_jwt_roles\": the "
                           "PostgreSQL roles that a token's role claim may "
                           "name");
        return NGX_CONF_ERROR;
    }

    login = 0;
    routes = conf->routes->elts;

    for (i = 0; i < conf->routes->nelts; i++) {
        login |= (routes[i]->kind == NGX_HTTP_RECOVERY_LOGIN);
    }

    if (login) {
        if (conf->sign_algorithm == 0) {
            conf->sign_algorithm = conf->secret.len ? RECOVERY_JWT_HS256 : 0;
        }

        if (conf->sign_algorithm == 0
            || (conf->sign_algorithm == RECOVERY_JWT_HS256
                && conf->secret.len == 0)
            || (conf->sign_algorithm != RECOVERY_JWT_HS256
                && conf->private_key == NULL))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "recovery_login needs a key to sign tokens "
                               "with: \"recovery_jwt_secret_file\" for HS256, "
                               "or \"recovery_jwt_private_key\" and "
                               "\"recovery_jwt_sign_algorithm\"");
            return NGX_CONF_ERROR;
        }
    }

    conf->verifier.algorithms = (unsigned) conf->algorithms;
    conf->verifier.secret = conf->secret.data;
    conf->verifier.secret_len = conf->secret.len;
    conf->verifier.public_key = conf->public_key;
    conf->verifier.leeway = (long) conf->leeway;
    conf->verifier.issuer = conf->issuer.len
                            ? (const char *) conf->issuer.data : NULL;
    conf->verifier.audience = conf->audience.len
                              ? (const char *) conf->audience.data : NULL;

    return NGX_CONF_OK;
}


static char *
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


static char *
ngx_http_recovery_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t       *value, name;
    ngx_file_info_t  fi;

    if (rlcf->secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

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

    rlcf->secret.data = ngx_pnalloc(cf->pool, 4097);
    if (rlcf->secret.data == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, rlcf->secret.data, 4096);
    ngx_close_file(fd);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    /* a trailing newline left by an editor is not part of the secret */
    while (n > 0 && (rlcf->secret.data[n - 1] == '\n'
                     || rlcf->secret.data[n - 1] == '\r'))
    {
        n--;
    }

    rlcf->secret.len = (size_t) n;

    if (rlcf->secret.len < NGX_HTTP_RECOVERY_MIN_SECRET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the HS256 secret in \"%V\" is shorter than %d "
                           "bytes: make one with "
                           "\"openssl rand -base64 48 > %V\"",
                           &name, NGX_HTTP_RECOVERY_MIN_SECRET, &name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_recovery_free_key(void *data)
{
    EVP_PKEY_free(data);
}


static char *
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


static char *
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
static char *
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


/* recovery_readiness; recovery_metrics; */
static char *
ngx_http_recovery_ops(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (cmd->post == (void *) NGX_HTTP_RECOVERY_READY) {
        clcf->handler = ngx_http_recovery_ready_handler;

    } else {
        clcf->handler = ngx_http_recovery_metrics_handler;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_recovery_init_process(ngx_cycle_t *cycle)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_recovery_module);
    if (rmcf == NULL || !rmcf->used) {
        return NGX_OK;
    }

    return ngx_http_recovery_pool_init(cycle, rmcf);
}


static void
ngx_http_recovery_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_recovery_module);
    if (rmcf) {
        ngx_http_recovery_pool_done(rmcf);
    }
}


/* requests */

ngx_int_t
ngx_http_recovery_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                     *id;
    const char                    *refusal;
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
        rc = ngx_http_recovery_idempotency(r, ctx);
        if (rc != NGX_OK) {
            ngx_http_discard_request_body(r);
            return rc;
        }
    }

    if (ctx->route->needs_body) {
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_recovery_body_handler);
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
 * A JWT is verified here, without the database; an API key is only taken
 * along: the extension checks its hash in the request's own round trip.
 * NGX_DECLINED: refused, *refusal says why (NULL: no credentials at all).
 */
static ngx_int_t
ngx_http_recovery_authenticate(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    const char **refusal)
{
    u_char           *p, *last, *copy;
    size_t            len;
    ngx_str_t         token, *role;
    ngx_uint_t        i;
    const char       *error, *s;
    json_object      *claims, *field;
    ngx_table_elt_t  *header;

    ngx_str_null(&token);

    header = ngx_http_recovery_header(r, &ngx_http_recovery_api_key_header);
    if (header) {
        token = header->value;
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

        token.data = p;
        token.len = last - p;

        /* a JWT has three dot-separated parts; an API key has none */
        ctx->auth = ngx_strlchr(p, last, '.') ? NGX_HTTP_RECOVERY_AUTH_JWT
                                              : NGX_HTTP_RECOVERY_AUTH_KEY;
    }

    if (ctx->auth == NGX_HTTP_RECOVERY_AUTH_NONE || token.len == 0) {
        *refusal = NULL;
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

    claims = recovery_jwt_verify(&rlcf->verifier, (const char *) token.data,
                                 token.len, ngx_time(), &error);
    if (claims == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "recovery: token refused: %s", error);
        *refusal = error;
        return NGX_DECLINED;
    }

    error = NULL;

    /* sub: the id of a row of recovery.users, digits only */
    if (!json_object_object_get_ex(claims, "sub", &field)
        || (!json_object_is_type(field, json_type_string)
            && !json_object_is_type(field, json_type_int)))
    {
        error = "token has no sub claim";
        goto failed;
    }

    s = json_object_get_string(field);
    len = ngx_strlen(s);

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            break;
        }
    }

    if (len == 0 || len > 18 || i != len) {
        error = "token sub claim is not a user id";
        goto failed;
    }

    if (ngx_http_recovery_copy(r->pool, &ctx->user_id, s, len) != NGX_OK) {
        goto internal;
    }

    /* role: one of the roles this location lets tokens switch to */
    if (!json_object_object_get_ex(claims, "role", &field)
        || !json_object_is_type(field, json_type_string))
    {
        error = "token has no role claim";
        goto failed;
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
        error = "token role is not accepted";
        goto failed;
    }

    ctx->role = role[i];

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
        goto internal;
    }

    ctx->actor.data = copy;
    ctx->actor.len = (s ? ngx_sprintf(copy, "%*s%Z", len, s)
                        : ngx_sprintf(copy, "user:%V%Z", &ctx->user_id))
                     - copy - 1;

    s = json_object_to_json_string_ext(claims, NGX_HTTP_RECOVERY_JSON);
    if (ngx_http_recovery_copy(r->pool, &ctx->claims, s, ngx_strlen(s))
        != NGX_OK)
    {
        goto internal;
    }

    json_object_put(claims);

    return NGX_OK;

failed:

    json_object_put(claims);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "recovery: token refused: %s", error);

    *refusal = error;
    return NGX_DECLINED;

internal:

    json_object_put(claims);

    return NGX_ERROR;
}


static ngx_int_t
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


static void
ngx_http_recovery_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_str_t                 message;
    ngx_uint_t                status;
    const char               *code;
    ngx_http_recovery_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);

    rc = ngx_http_recovery_parse_body(r, ctx, &status, &code, &message);

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


/* NGX_DECLINED: the body is refused with *status, *code and *message */
static ngx_int_t
ngx_http_recovery_parse_body(ngx_http_request_t *r,
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
        ngx_http_recovery_hash_body(ctx, text, len);
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

    if (ngx_http_recovery_route_fields(ctx, message) != NGX_OK) {
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


/* NGX_DONE: the pool has the request; anything else is the response */
static ngx_int_t
ngx_http_recovery_start(ngx_http_request_t *r, ngx_http_recovery_ctx_t *ctx)
{
    u_char                          buf[256];
    ngx_int_t                       rc;
    ngx_str_t                       error;
    ngx_http_recovery_main_conf_t  *rmcf;

    error.data = buf;
    error.len = 0;

    if (ngx_http_recovery_route_query(ctx, &error) != NGX_OK) {
        return ngx_http_recovery_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "unknown_parameter", &error, NULL);
    }

    rc = ngx_http_recovery_route_params(ctx, &error);

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

    rc = ngx_http_recovery_pool_run(ctx);

    if (rc == NGX_OK) {
        /* a client that goes away is noticed; its connection is detached */
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_DONE;
    }

    ngx_http_recovery_metrics_db_error(r);

    if (rc == NGX_BUSY) {
        return ngx_http_recovery_unavailable(r,
                   ngx_http_recovery_pool_connected(rmcf->pool)
                   ? &(ngx_str_t) ngx_string("every database connection is "
                                             "busy and the queue is full")
                   : &(ngx_str_t) ngx_string("the database is unavailable"));
    }

    return ngx_http_recovery_unavailable(r,
               &(ngx_str_t) ngx_string("the database connection was lost"));
}


/* called by the pool: the database has answered, or failed */
void
ngx_http_recovery_finish(ngx_http_recovery_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    rc = ngx_http_recovery_respond(ctx);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_recovery_respond(ngx_http_recovery_ctx_t *ctx)
{
    u_char              *json;
    size_t               len;
    ngx_int_t            rc;
    ngx_str_t            message;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->failure.len) {
        ngx_http_recovery_metrics_db_error(r);
        return ngx_http_recovery_unavailable(r, &ctx->failure);
    }

    if (ctx->error) {
        rc = ngx_http_recovery_send_sql_error(r, ctx->error);
        PQclear(ctx->error);
        ctx->error = NULL;
        return rc;
    }

    if (ctx->replay) {
        rc = ngx_http_recovery_replay(r, ctx->replay);
        PQclear(ctx->replay);
        ctx->replay = NULL;
        goto done;
    }

    if (ctx->result == NULL || PQntuples(ctx->result) != 1
        || PQnfields(ctx->result) != (ctx->route->file ? 3 : 1)
        || PQgetisnull(ctx->result, 0, ctx->route->file ? 2 : 0))
    {
        ngx_str_set(&message, "nothing was found");
        rc = ngx_http_recovery_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          &message, NULL);
        goto done;
    }

    len = ctx->route->file ? 0 : PQgetlength(ctx->result, 0, 0);
    json = ngx_pnalloc(r->pool, len + 1);
    if (json == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    ngx_memcpy(json, PQgetvalue(ctx->result, 0, 0), len);
    json[len] = '\0';

    if (ctx->route->file) {
        rc = ngx_http_recovery_send_file(r, ctx->result);

    } else if (ctx->route->kind == NGX_HTTP_RECOVERY_LOGIN) {
        rc = ngx_http_recovery_respond_login(ctx, json, len);

    } else {
        rc = ngx_http_recovery_send_json(r, ctx->route->status, json, len);
    }

done:

    if (ctx->result) {
        PQclear(ctx->result);
        ctx->result = NULL;
    }

    return rc;
}


/*
 * Idempotency-Key on a POST: the extension keeps the first response under
 * the key and replays it to retries (recovery.idempotency_begin).
 */
static ngx_int_t
ngx_http_recovery_idempotency(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx)
{
    ngx_str_t         message;
    ngx_uint_t        i;
    ngx_table_elt_t  *header;

    header = ngx_http_recovery_header(r, &ngx_http_recovery_idempotency_header);
    if (header == NULL) {
        return NGX_OK;
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
    ngx_http_recovery_hash_body(ctx, NULL, 0);

    return NGX_OK;
}


static void
ngx_http_recovery_hash_body(ngx_http_recovery_ctx_t *ctx, u_char *body,
    size_t len)
{
    u_char  digest[SHA256_DIGEST_LENGTH];

    SHA256(body ? body : (u_char *) "", len, digest);
    ngx_hex_dump(ctx->request_hash, digest, SHA256_DIGEST_LENGTH);
    ctx->request_hash[2 * SHA256_DIGEST_LENGTH] = '\0';
}


/* a retry: idempotency_begin returned the first response's status and body */
static ngx_int_t
ngx_http_recovery_replay(ngx_http_request_t *r, PGresult *result)
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

    json_object_get(body);
    json_object_put(replay);

    return ngx_http_recovery_send_object(r, status, body);
}


/* the extension checked the password; the gateway mints the token */
static ngx_int_t
ngx_http_recovery_respond_login(ngx_http_recovery_ctx_t *ctx, u_char *user,
    size_t len)
{
    char                          *token;
    time_t                         now;
    json_object                   *profile, *claims, *field, *out;
    ngx_table_elt_t               *h;
    ngx_http_request_t            *r;
    ngx_http_recovery_loc_conf_t  *rlcf;

    r = ctx->request;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_recovery_module);

    profile = json_tokener_parse((const char *) user);
    if (profile == NULL || !json_object_is_type(profile, json_type_object)) {
        json_object_put(profile);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: %V did not return a JSON object",
                      &ctx->route->function);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
    json_object_object_add(claims, "exp",
                           json_object_new_int64(now + rlcf->token_ttl));

    token = recovery_jwt_sign((unsigned) rlcf->sign_algorithm,
                              rlcf->secret.data, rlcf->secret.len,
                              rlcf->private_key, claims);
    json_object_put(claims);

    if (token == NULL) {
        json_object_put(profile);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "recovery: cannot sign a token");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = json_object_new_object();
    json_object_object_add(out, "token", json_object_new_string(token));
    json_object_object_add(out, "token_type", json_object_new_string("Bearer"));
    json_object_object_add(out, "expires_in",
                           json_object_new_int64(rlcf->token_ttl));
    json_object_object_add(out, "user", profile);
    free(token);

    /* a token is a credential: no cache may keep it */
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


/*
 * A stored document, as an attachment: its content type was checked
 * against its bytes on upload, and nosniff keeps browsers to it.
 */
static ngx_int_t
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


static ngx_int_t
ngx_http_recovery_unavailable(ngx_http_request_t *r, ngx_str_t *message)
{
    ngx_table_elt_t                *h;
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

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
    h->value.len = ngx_sprintf(h->value.data, "%T",
                               ngx_http_recovery_pool_retry_after(rmcf->pool))
                   - h->value.data;

    return ngx_http_recovery_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "database_unavailable", message, NULL);
}


static void
ngx_http_recovery_cleanup(void *data)
{
    ngx_http_recovery_ctx_t  *ctx = data;

    ngx_http_recovery_pool_detach(ctx);

    if (ctx->body) {
        json_object_put(ctx->body);
        ctx->body = NULL;
    }
}


/* /readyz: 200 while this worker holds a live database connection */
static ngx_int_t
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
        return ngx_http_recovery_unavailable(r,
                   &(ngx_str_t) ngx_string("no connection to the database"));
    }

    body = ngx_pnalloc(r->pool, 64);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_recovery_send_json(r, NGX_HTTP_OK, body,
               ngx_sprintf(body, "{\"status\":\"ready\",\"connections\":%ui}",
                           connected) - body);
}


static ngx_int_t
ngx_http_recovery_log_handler(ngx_http_request_t *r)
{
    ngx_http_recovery_ctx_t        *ctx;
    ngx_http_recovery_main_conf_t  *rmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

    ngx_http_recovery_metrics_request(r, ctx->route, r->headers_out.status,
                                      ctx->start);
    ngx_http_recovery_metrics_pool(rmcf);

    return NGX_OK;
}


/*
 * The request id: the client's X-Request-Id when it is a sane token, else
 * nginx's own $request_id.  It is echoed, logged, and set in the database
 * so that the audit rows of the request carry it.
 */
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


/* the first request header of that name */
static ngx_table_elt_t *
ngx_http_recovery_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *header;

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        if (header[i].key.len == name->len
            && ngx_strncasecmp(header[i].key.data, name->data, name->len) == 0)
        {
            return &header[i];
        }
    }
}


/* a NUL-terminated copy, as libpq takes text parameters */
static ngx_int_t
ngx_http_recovery_copy(ngx_pool_t *pool, ngx_str_t *dst, const char *src,
    size_t len)
{
    dst->data = ngx_pnalloc(pool, len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, len);
    dst->data[len] = '\0';
    dst->len = len;

    return NGX_OK;
}
