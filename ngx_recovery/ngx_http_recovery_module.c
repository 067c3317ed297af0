
/*
 * ngx_recovery: the module itself.  Its directives, its configuration
 * created, merged and checked at "nginx -t", and each worker's pool started
 * and stopped.  A request's way begins in ngx_http_recovery_handler.c.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_auth.h"
#include "ngx_http_recovery_call.h"
#include "ngx_http_recovery_handler.h"
#include "ngx_http_recovery_metrics.h"
#include "ngx_http_recovery_ready.h"
#include "ngx_http_recovery_redact.h"
#include "ngx_http_recovery_request_id.h"
#include "ngx_http_recovery_route.h"


static ngx_int_t ngx_http_recovery_init(ngx_conf_t *cf);
static void *ngx_http_recovery_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_recovery_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_recovery_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_recovery_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_recovery_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_recovery_conninfo_check(ngx_conf_t *cf,
    const char *directive, ngx_str_t *conninfo);
static void ngx_http_recovery_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_recovery_route_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_recovery_ops(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#define NGX_HTTP_RECOVERY_READY      1
#define NGX_HTTP_RECOVERY_METRICS    2


static ngx_command_t  ngx_http_recovery_commands[] = {

    { ngx_string("recovery_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.conninfo),
      NULL },

    { ngx_string("recovery_replicas"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, replica_conf.conninfo),
      NULL },

    { ngx_string("recovery_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.size),
      NULL },

    { ngx_string("recovery_pool_read_reserve"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.read_reserve),
      NULL },

    { ngx_string("recovery_pipeline_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.depth),
      NULL },

    { ngx_string("recovery_queue_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.queue_size),
      NULL },

    { ngx_string("recovery_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.queue_timeout),
      NULL },

    { ngx_string("recovery_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.connect_timeout),
      NULL },

    { ngx_string("recovery_statement_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.statement_timeout),
      NULL },

    { ngx_string("recovery_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t, pool_conf.lock_timeout),
      NULL },

    { ngx_string("recovery_reconnect_max_delay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_recovery_main_conf_t,
               pool_conf.reconnect_max_delay),
      NULL },

    { ngx_string("recovery_call"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_recovery_route_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_CALL },

    { ngx_string("recovery_login"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_route_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_LOGIN },

    { ngx_string("recovery_events"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_route_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_EVENTS },

    { ngx_string("recovery_events_ticket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_recovery_route_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_RECOVERY_TICKET },

    { ngx_string("recovery_events_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, events_buffer),
      NULL },

    { ngx_string("recovery_events_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_recovery_loc_conf_t, events_heartbeat),
      NULL },

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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
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
    ngx_http_recovery_request_id_add_variable, /* preconfiguration */
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


/* configuration */

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

    *h = ngx_http_recovery_metrics_log_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_recovery_redact_handler;

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

    rmcf->pool_conf.size = NGX_CONF_UNSET_UINT;
    rmcf->pool_conf.read_reserve = NGX_CONF_UNSET_UINT;
    rmcf->pool_conf.depth = NGX_CONF_UNSET_UINT;
    rmcf->pool_conf.lock_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->pool_conf.queue_size = NGX_CONF_UNSET_UINT;
    rmcf->pool_conf.queue_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->pool_conf.connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->pool_conf.statement_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->pool_conf.reconnect_max_delay = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_recovery_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_recovery_main_conf_t  *rmcf = conf;

    ngx_conf_init_uint_value(rmcf->pool_conf.size, 4);
    ngx_conf_init_uint_value(rmcf->pool_conf.depth, NGX_HTTP_RECOVERY_DEPTH);
    ngx_conf_init_uint_value(rmcf->pool_conf.queue_size, 256);
    ngx_conf_init_msec_value(rmcf->pool_conf.queue_timeout, 2000);
    ngx_conf_init_msec_value(rmcf->pool_conf.connect_timeout, 2000);
    ngx_conf_init_msec_value(rmcf->pool_conf.statement_timeout, 5000);
    ngx_conf_init_msec_value(rmcf->pool_conf.lock_timeout, 1000);
    ngx_conf_init_msec_value(rmcf->pool_conf.reconnect_max_delay, 2000);

    rmcf->request_id_index = ngx_http_get_variable_index(cf,
                                 &(ngx_str_t) ngx_string("request_id"));
    if (rmcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (!rmcf->used) {
        return NGX_CONF_OK;
    }

    if (rmcf->pool_conf.conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "recovery_call needs \"recovery_database\" with "
                           "a libpq connection string in the http block");
        return NGX_CONF_ERROR;
    }

    if (rmcf->pool_conf.size == 0 || rmcf->pool_conf.size > 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"recovery_pool_size\" must be between 1 and 256 "
                           "(on 2 cores, about 4 per worker is plenty)");
        return NGX_CONF_ERROR;
    }

    if (rmcf->pool_conf.depth == 0
        || rmcf->pool_conf.depth > NGX_HTTP_RECOVERY_MAX_DEPTH)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"recovery_pipeline_depth\" must be between 1 "
                           "(one call at a time per connection) and %d",
                           NGX_HTTP_RECOVERY_MAX_DEPTH);
        return NGX_CONF_ERROR;
    }

    /* a write that waits on a row lock must not make reads wait too */
    ngx_conf_init_uint_value(rmcf->pool_conf.read_reserve,
                             rmcf->pool_conf.size > 1 ? 1 : 0);

    if (rmcf->pool_conf.read_reserve >= rmcf->pool_conf.size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"recovery_pool_read_reserve\" must be less than "
                           "\"recovery_pool_size\" (%ui), or writes could "
                           "never run", rmcf->pool_conf.size);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_recovery_conninfo_check(cf, "recovery_database",
                                         &rmcf->pool_conf.conninfo)
        != NGX_OK
        || (rmcf->replica_conf.conninfo.len
            && ngx_http_recovery_conninfo_check(cf, "recovery_replicas",
                                                &rmcf->replica_conf.conninfo)
               != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_recovery_metrics_init_zone(cf, rmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_recovery_conninfo_check(ngx_conf_t *cf, const char *directive,
    ngx_str_t *conninfo)
{
    char              *error;
    PQconninfoOption  *options;

    error = NULL;
    options = PQconninfoParse((const char *) conninfo->data, &error);

    if (options == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid \"%s\": %s",
                           directive, error ? error : "out of memory");
        PQfreemem(error);
        return NGX_ERROR;
    }

    PQconninfoFree(options);

    return NGX_OK;
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
     *     rlcf->previous_secret = { 0, NULL };
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
    rlcf->events_buffer = NGX_CONF_UNSET_SIZE;
    rlcf->events_heartbeat = NGX_CONF_UNSET_MSEC;

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
    ngx_conf_merge_str_value(conf->previous_secret, prev->previous_secret, "");
    ngx_conf_merge_ptr_value(conf->public_key, prev->public_key, NULL);
    ngx_conf_merge_ptr_value(conf->private_key, prev->private_key, NULL);
    ngx_conf_merge_uint_value(conf->sign_algorithm, prev->sign_algorithm, 0);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 30);
    ngx_conf_merge_sec_value(conf->token_ttl, prev->token_ttl, 900);
    ngx_conf_merge_str_value(conf->issuer, prev->issuer, "");
    ngx_conf_merge_str_value(conf->audience, prev->audience, "");
    ngx_conf_merge_ptr_value(conf->roles, prev->roles, NULL);
    ngx_conf_merge_size_value(conf->events_buffer, prev->events_buffer,
                              256 * 1024);
    ngx_conf_merge_msec_value(conf->events_heartbeat, prev->events_heartbeat,
                              15000);

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
        login |= (routes[i]->kind == NGX_HTTP_RECOVERY_LOGIN
                  || routes[i]->kind == NGX_HTTP_RECOVERY_TICKET);
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
                               "recovery_login and recovery_events_ticket "
                               "need a key to sign tokens "
                               "with: \"recovery_jwt_secret_file\" for HS256, "
                               "or \"recovery_jwt_private_key\" and "
                               "\"recovery_jwt_sign_algorithm\"");
            return NGX_CONF_ERROR;
        }
    }

    conf->verifier.algorithms = (unsigned) conf->algorithms;
    conf->verifier.secret = conf->secret.data;
    conf->verifier.secret_len = conf->secret.len;
    conf->verifier.previous_secret = conf->previous_secret.len
                                     ? conf->previous_secret.data : NULL;
    conf->verifier.previous_secret_len = conf->previous_secret.len;

    if (conf->secret.len) {
        recovery_jwt_key_id(conf->secret.data, conf->secret.len,
                            conf->verifier.kid);
    }

    if (conf->previous_secret.len) {
        recovery_jwt_key_id(conf->previous_secret.data,
                            conf->previous_secret.len,
                            conf->verifier.previous_kid);
    }
    conf->verifier.public_key = conf->public_key;
    conf->verifier.leeway = (long) conf->leeway;
    conf->verifier.issuer = conf->issuer.len
                            ? (const char *) conf->issuer.data : NULL;
    conf->verifier.audience = conf->audience.len
                              ? (const char *) conf->audience.data : NULL;

    return NGX_CONF_OK;
}


/*
 * recovery_call, recovery_login, recovery_events, recovery_events_ticket:
 * a route, and the gateway's handler here
 */
static char *
ngx_http_recovery_route_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_http_recovery_route(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_recovery_handler;

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
    ngx_str_t                       conninfo;
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

    rmcf->pool_conf.statements = ngx_http_recovery_call_statements(rmcf);

    rmcf->pool = ngx_http_recovery_pool_init(cycle, &rmcf->pool_conf);
    if (rmcf->pool == NULL) {
        return NGX_ERROR;
    }

    /* the standbys' pool: the same settings; every connection reads */
    if (rmcf->replica_conf.conninfo.len) {
        conninfo = rmcf->replica_conf.conninfo;
        rmcf->replica_conf = rmcf->pool_conf;
        rmcf->replica_conf.conninfo = conninfo;
        rmcf->replica_conf.read_reserve = 0;
        rmcf->replica_conf.spread = 1;

        rmcf->replicas = ngx_http_recovery_pool_init(cycle,
                                                     &rmcf->replica_conf);
        if (rmcf->replicas == NULL) {
            return NGX_ERROR;
        }
    }

    /* live events come from the primary, as the pool's connections do */
    if (rmcf->events) {
        rmcf->listen = ngx_http_recovery_listen_init(cycle,
                           &rmcf->pool_conf.conninfo,
                           rmcf->pool_conf.connect_timeout,
                           rmcf->pool_conf.reconnect_max_delay);
        if (rmcf->listen == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_recovery_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_recovery_module);
    if (rmcf) {
        ngx_http_recovery_pool_done(rmcf->pool);
        ngx_http_recovery_pool_done(rmcf->replicas);

        if (rmcf->listen) {
            ngx_http_recovery_listen_done(rmcf->listen);
        }
    }
}
