
/*
 * Routes declared in nginx.conf: "recovery_call METHOD function arg=source"
 * maps a location and a method to a SQL function, and says where each
 * argument comes from.  Every value travels as a bound parameter of a
 * statement prepared once per connection; none is ever put into SQL text.
 *
 *   $variable    path captures, headers, any nginx variable (complex value)
 *   ?name        query string parameter, percent-decoded
 *   @field       field of the JSON body: strings as they are, other values
 *                as JSON text; missing or null is SQL NULL
 *   @            the whole JSON body
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_route.h"


static ngx_conf_bitmask_t  ngx_http_recovery_methods[] = {
    { ngx_string("GET"), NGX_HTTP_GET },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("DELETE"), NGX_HTTP_DELETE },
    { ngx_null_string, 0 }
};


static char *ngx_http_recovery_route_arg(ngx_conf_t *cf,
    ngx_http_recovery_route_t *route, ngx_str_t *word);
static char *ngx_http_recovery_route_check(ngx_conf_t *cf,
    ngx_http_recovery_route_t *route);
static char *ngx_http_recovery_route_sql(ngx_conf_t *cf,
    ngx_http_recovery_route_t *route);
static char *ngx_http_recovery_route_names(ngx_conf_t *cf,
    ngx_http_recovery_route_t *route);
static ngx_int_t ngx_http_recovery_is_identifier(ngx_str_t *s,
    ngx_uint_t dots);


/*
 * recovery_call METHOD schema.function [name=source ...] [status=201]
 *               [timeout=60s] [primary];
 * recovery_login schema.function [name=source ...];
 * recovery_events schema.function [name=source ...];      GET, a stream
 * recovery_events_ticket schema.function;                  POST, a ticket
 */
char *
ngx_http_recovery_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_recovery_loc_conf_t  *rlcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i, first;
    ngx_conf_bitmask_t             *m;
    ngx_http_recovery_route_t      *route, **slot;
    ngx_http_recovery_main_conf_t  *rmcf;

    value = cf->args->elts;
    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_recovery_module);

    route = ngx_pcalloc(cf->pool, sizeof(ngx_http_recovery_route_t));
    if (route == NULL) {
        return NGX_CONF_ERROR;
    }

    route->status = NGX_HTTP_OK;

    if (cmd->post == (void *) NGX_HTTP_RECOVERY_LOGIN
        || cmd->post == (void *) NGX_HTTP_RECOVERY_TICKET)
    {
        route->kind = (ngx_uint_t) cmd->post;
        route->method = NGX_HTTP_POST;
        ngx_str_set(&route->method_name, "POST");
        first = 1;

    } else if (cmd->post == (void *) NGX_HTTP_RECOVERY_EVENTS) {
        /* the stream follows the primary, as its reader does */
        route->kind = NGX_HTTP_RECOVERY_EVENTS;
        route->method = NGX_HTTP_GET;
        ngx_str_set(&route->method_name, "GET");
        route->primary = 1;
        rmcf->events = 1;
        first = 1;

    } else {
        route->kind = NGX_HTTP_RECOVERY_CALL;

        for (m = ngx_http_recovery_methods; m->name.len; m++) {
            if (ngx_strcmp(value[1].data, m->name.data) == 0) {
                route->method = m->mask;
                route->method_name = m->name;
                break;
            }
        }

        if (route->method == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown method \"%V\" in \"%V\": use GET, "
                               "POST, PUT, PATCH or DELETE",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        first = 2;
    }

    route->function = value[first];

    if (ngx_http_recovery_is_identifier(&route->function, 1) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid function name \"%V\": write it as "
                           "schema.function in lower case",
                           &route->function);
        return NGX_CONF_ERROR;
    }

    if (rlcf->routes == NULL) {
        rlcf->routes = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_recovery_route_t *));
        if (rlcf->routes == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    slot = rlcf->routes->elts;
    for (i = 0; i < rlcf->routes->nelts; i++) {
        if (slot[i]->method == route->method) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "method %V is already routed in this location",
                               &route->method_name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_array_init(&route->args, cf->pool, 4,
                       sizeof(ngx_http_recovery_arg_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = first + 1; i < cf->args->nelts; i++) {
        if (ngx_http_recovery_route_arg(cf, route, &value[i]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_recovery_route_check(cf, route) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    route->index = rmcf->routes.nelts;
    ngx_sprintf(route->statement, "r%ui%Z", route->index);

    if (ngx_http_recovery_route_sql(cf, route) != NGX_CONF_OK
        || ngx_http_recovery_route_names(cf, route) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    route->label.len = route->method_name.len + 1 + route->function.len;
    route->label.data = ngx_pnalloc(cf->pool, route->label.len + 1);
    if (route->label.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(route->label.data, "%V %V%Z", &route->method_name,
                &route->function);

    slot = ngx_array_push(rlcf->routes);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = route;

    slot = ngx_array_push(&rmcf->routes);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = route;
    rmcf->used = 1;

    return NGX_CONF_OK;
}


/* one name=source argument, or an option (response=, status=, timeout=) */
static char *
ngx_http_recovery_route_arg(ngx_conf_t *cf, ngx_http_recovery_route_t *route,
    ngx_str_t *word)
{
    u_char                            *p;
    ngx_str_t                          name, source;
    ngx_http_recovery_arg_t           *arg;
    ngx_http_compile_complex_value_t   ccv;

    /* a read that must see the newest data: never on a standby */
    if (word->len == 7 && ngx_strncmp(word->data, "primary", 7) == 0) {
        route->primary = 1;
        return NGX_CONF_OK;
    }

    p = ngx_strlchr(word->data, word->data + word->len, '=');

    if (p == NULL || p == word->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid argument \"%V\": write "
                           "name=$variable, name=?query, name=@field "
                           "or name=@", word);
        return NGX_CONF_ERROR;
    }

    name.data = word->data;
    name.len = p - word->data;
    source.data = p + 1;
    source.len = word->data + word->len - source.data;

    if (name.len == 8 && ngx_strncmp(name.data, "response", 8) == 0
        && source.len == 4 && ngx_strncmp(source.data, "file", 4) == 0)
    {
        /* the function returns (content_type, filename, content) */
        route->file = 1;
        return NGX_CONF_OK;
    }

    if (name.len == 6 && ngx_strncmp(name.data, "status", 6) == 0
        && source.len == 3 && route->kind == NGX_HTTP_RECOVERY_CALL)
    {
        route->status = ngx_atoi(source.data, 3);
        if (route->status < 200 || route->status > 299) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\": the status of a "
                               "successful call is between 200 and 299",
                               word);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    /* a created resource's address: the path its id is appended to */
    if (name.len == 8 && ngx_strncmp(name.data, "location", 8) == 0) {
        if (source.len < 2 || source.data[0] != '/'
            || source.data[source.len - 1] != '/')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\": write the path the new "
                               "resource's id completes, such as "
                               "location=/api/v1/customers/", word);
            return NGX_CONF_ERROR;
        }

        route->location = source;
        return NGX_CONF_OK;
    }

    /* a long call (a statement import) outlasts the default timeout */
    if (name.len == 7 && ngx_strncmp(name.data, "timeout", 7) == 0) {
        route->timeout = ngx_parse_time(&source, 0);
        if (route->timeout == (ngx_msec_t) NGX_ERROR || route->timeout == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\": write a time such as "
                               "timeout=60s", word);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_recovery_is_identifier(&name, 0) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter name \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    arg = ngx_array_push(&route->args);
    if (arg == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(arg, sizeof(ngx_http_recovery_arg_t));
    arg->name = name;

    if (source.len && source.data[0] == '@') {
        arg->from_body = 1;
        arg->whole_body = (source.len == 1);
        arg->field.data = source.data + 1;
        arg->field.len = source.len - 1;
        route->needs_body = 1;
        route->whole_body |= arg->whole_body;
        return NGX_CONF_OK;
    }

    if (source.len == 4 && ngx_strncmp(source.data, "%raw", 4) == 0) {
        arg->raw_body = 1;
        route->needs_body = 1;
        route->raw_body = 1;
        return NGX_CONF_OK;
    }

    /* the uploaded file's type and name, raw or multipart */
    if (source.len == 13
        && ngx_strncmp(source.data, "%content_type", 13) == 0)
    {
        arg->upload_type = 1;
        return NGX_CONF_OK;
    }

    if (source.len == 9 && ngx_strncmp(source.data, "%filename", 9) == 0) {
        arg->upload_name = 1;
        ngx_str_set(&arg->field, "filename");
        return NGX_CONF_OK;
    }

    if (source.len > 1 && source.data[0] == '?') {
        arg->field.data = source.data + 1;
        arg->field.len = source.len - 1;
        return NGX_CONF_OK;
    }

    arg->value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (arg->value == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &source;
    ccv.complex_value = arg->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* what the arguments may not be together */
static char *
ngx_http_recovery_route_check(ngx_conf_t *cf, ngx_http_recovery_route_t *route)
{
    if (route->file && route->method != NGX_HTTP_GET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "response=file is for GET routes");
        return NGX_CONF_ERROR;
    }

    if (route->location.len && route->status != NGX_HTTP_CREATED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "location= is for routes that create: add "
                           "status=201");
        return NGX_CONF_ERROR;
    }

    if (route->raw_body && route->whole_body) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a route takes its body as %%raw bytes or as JSON, "
                           "not both");
        return NGX_CONF_ERROR;
    }

    if (route->needs_body && (route->method & (NGX_HTTP_GET|NGX_HTTP_DELETE))) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V requests have no body: take the arguments "
                           "from the path or the query string",
                           &route->method_name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The statements: SELECT schema.function("name" => $1, ...), since names
 * may be keywords; and for a POST with an Idempotency-Key, the call inside
 * recovery.idempotency_store($1, status, call), with the key first, unless
 * recovery.idempotency_begin found the request a retry.
 */
static char *
ngx_http_recovery_route_sql(ngx_conf_t *cf, ngx_http_recovery_route_t *route)
{
    u_char                   *p;
    size_t                    len;
    ngx_uint_t                i, n;
    ngx_http_recovery_arg_t  *arg;

    n = route->args.nelts;
    arg = route->args.elts;
    len = sizeof("SELECT f.content_type, f.filename, f.content FROM () AS f")
          + route->function.len;

    for (i = 0; i < n; i++) {
        len += arg[i].name.len + sizeof("\"\" => $, ") + NGX_INT_T_LEN;
    }

    route->sql = ngx_pnalloc(cf->pool, len);
    if (route->sql == NULL) {
        return NGX_CONF_ERROR;
    }

    /* a file comes back as three columns, fetched in binary */
    p = ngx_sprintf(route->sql, route->file
                                ? "SELECT f.content_type, f.filename, f.content"
                                  " FROM %V(" : "SELECT %V(",
                    &route->function);

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s\"%V\" => $%ui", i ? ", " : "", &arg[i].name,
                        i + 1);
    }

    p = ngx_cpymem(p, route->file ? ") AS f" : ")",
                   route->file ? sizeof(") AS f") - 1 : 1);
    *p = '\0';

    if (route->method != NGX_HTTP_POST
        || route->kind != NGX_HTTP_RECOVERY_CALL)
    {
        return NGX_CONF_OK;
    }

    /* the call's SQL, the wrapper, and a digit more per shifted $n */
    route->idempotent_sql = ngx_pnalloc(cf->pool,
                                        ngx_strlen(route->sql) + 160 + n);
    if (route->idempotent_sql == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_sprintf(route->idempotent_sql,
                    "SELECT CASE WHEN recovery.idempotency_replaying($1)"
                    " THEN NULL ELSE recovery.idempotency_store($1, %ui,"
                    " (%V(",
                    route->status, &route->function);

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s\"%V\" => $%ui", i ? ", " : "",
                        &arg[i].name, i + 2);
    }

    p = ngx_cpymem(p, "))::jsonb) END", sizeof("))::jsonb) END") - 1);
    *p = '\0';

    ngx_sprintf(route->idempotent_statement, "i%ui%Z", route->index);

    return NGX_CONF_OK;
}


/* the fields a body and the parameters a query may have, for the errors */
static char *
ngx_http_recovery_route_names(ngx_conf_t *cf, ngx_http_recovery_route_t *route)
{
    u_char                   *p;
    size_t                    len;
    ngx_uint_t                i, n;
    ngx_http_recovery_arg_t  *arg;

    n = route->args.nelts;
    arg = route->args.elts;
    len = 0;

    for (i = 0; i < n; i++) {
        len += arg[i].field.len + 2;
    }

    route->fields.data = ngx_pnalloc(cf->pool, len + 1);
    if (route->fields.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = route->fields.data;
    for (i = 0; i < n; i++) {
        if (arg[i].from_body && !arg[i].whole_body) {
            p = ngx_sprintf(p, "%s%V", p == route->fields.data ? "" : ", ",
                            &arg[i].field);
        }
    }

    route->fields.len = p - route->fields.data;

    route->parameters.data = ngx_pnalloc(cf->pool, len + 1);
    if (route->parameters.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = route->parameters.data;
    for (i = 0; i < n; i++) {
        if (!arg[i].from_body && arg[i].value == NULL && !arg[i].raw_body
            && !arg[i].upload_type)
        {
            p = ngx_sprintf(p, "%s%V",
                            p == route->parameters.data ? "" : ", ",
                            &arg[i].field);
        }
    }

    route->parameters.len = p - route->parameters.data;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_recovery_is_identifier(ngx_str_t *s, ngx_uint_t dots)
{
    ngx_uint_t  i, seen;

    seen = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '.' && i > 0 && i < s->len - 1 && seen < dots) {
            seen++;
            continue;
        }

        if ((s->data[i] >= 'a' && s->data[i] <= 'z') || s->data[i] == '_'
            || (i > 0 && s->data[i] >= '0' && s->data[i] <= '9'))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return (s->len && seen == dots) ? NGX_OK : NGX_ERROR;
}


ngx_http_recovery_route_t *
ngx_http_recovery_route_find(ngx_http_recovery_loc_conf_t *rlcf,
    ngx_uint_t method)
{
    ngx_uint_t                   i;
    ngx_http_recovery_route_t  **routes;

    if (rlcf->routes == NULL) {
        return NULL;
    }

    routes = rlcf->routes->elts;

    /* HEAD is GET without the body (ngx_http_recovery_send_json) */
    if (method == NGX_HTTP_HEAD) {
        method = NGX_HTTP_GET;
    }

    for (i = 0; i < rlcf->routes->nelts; i++) {
        if (routes[i]->method == method) {
            return routes[i];
        }
    }

    return NULL;
}


/* the Allow header of a 405: the methods this location routes */
ngx_int_t
ngx_http_recovery_route_allow(ngx_http_request_t *r,
    ngx_http_recovery_loc_conf_t *rlcf)
{
    u_char                      *p;
    ngx_uint_t                   i;
    ngx_table_elt_t             *h;
    ngx_http_recovery_route_t  **routes;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 8 * rlcf->routes->nelts);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = p;

    routes = rlcf->routes->elts;
    for (i = 0; i < rlcf->routes->nelts; i++) {
        p = ngx_sprintf(p, "%s%V", i ? ", " : "", &routes[i]->method_name);
    }

    h->value.len = p - h->value.data;

    return NGX_OK;
}
