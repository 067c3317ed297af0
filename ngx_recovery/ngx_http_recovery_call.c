
/*
 * The SQL of a request: one call on the pool that runs, in one round trip
 * and one transaction, the request context (who is acting, whether it may
 * write, its timeout), idempotency_begin when the request has an
 * Idempotency-Key, and the routed function.  A read on a standby first asks
 * whether the standby has the caller's last write (recovery.replayed); with
 * standbys to read from, a write asks, once committed, where the WAL is: its
 * commit position, which the client sends back so that its next reads see
 * what it wrote.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_call.h"


/*
 * The request context, set with set_config(..., true) so that it ends with
 * the transaction.  The role comes last: every other value is set by the
 * authenticator.  An API key is checked by the extension in the same
 * statement, which returns the key's role or fails with PR007.  The last
 * parameter of each is the call's statement_timeout, in ms: the route's
 * timeout= or recovery_statement_timeout (the connection's default).
 */
static const char  *ngx_http_recovery_context_sql[] = {
    /* NGX_HTTP_RECOVERY_AUTH_NONE */
    "SELECT set_config('recovery.request_id', $1, true),"
    " set_config('transaction_read_only', $2, true),"
    " set_config('statement_timeout', $3, true)",

    /* NGX_HTTP_RECOVERY_AUTH_JWT */
    "SELECT set_config('recovery.user_id', recovery.token_user($2), true),"
    " set_config('recovery.actor', $3, true),"
    " set_config('recovery.request_id', $4, true),"
    " set_config('recovery.claims', $5, true),"
    " set_config('transaction_read_only', $6, true),"
    " set_config('statement_timeout', $7, true),"
    " set_config('role', $1, true)",

    /* NGX_HTTP_RECOVERY_AUTH_KEY */
    "SELECT set_config('role', recovery.api_key_context($1, $2), true),"
    " set_config('transaction_read_only', $3, true),"
    " set_config('statement_timeout', $4, true)"
};

static const char  *ngx_http_recovery_context_name[] = {
    "ctx_anon", "ctx_jwt", "ctx_key"
};

/* claims the Idempotency-Key, or returns the first response of a retry */
static const char  ngx_http_recovery_begin_sql[] =
    "SELECT recovery.idempotency_begin($1, $2, $3)";
static const char  ngx_http_recovery_begin_name[] = "idem_begin";

/* after the commit: the WAL's end is past the commit record */
static const char  ngx_http_recovery_lsn_sql[] =
    "SELECT pg_current_wal_insert_lsn()::text";
static const char  ngx_http_recovery_lsn_name[] = "commit_lsn";

/* on a standby: PR011 until it has replayed the caller's last write */
static const char  ngx_http_recovery_replayed_sql[] =
    "SELECT recovery.replayed($1::pg_lsn)";
static const char  ngx_http_recovery_replayed_name[] = "replayed";


/*
 * Prepared statements of a connection, by index: the routes' calls [0, n),
 * their idempotent forms [n, 2n), the three request contexts,
 * idempotency_begin, the commit position and the standby's check.
 */
#define ngx_http_recovery_context_index(rmcf, auth)                           \
    (2 * (rmcf)->routes.nelts + (auth))
#define ngx_http_recovery_begin_index(rmcf)                                   \
    (2 * (rmcf)->routes.nelts + 3)
#define ngx_http_recovery_lsn_index(rmcf)                                     \
    (2 * (rmcf)->routes.nelts + 4)
#define ngx_http_recovery_replayed_index(rmcf)                                \
    (2 * (rmcf)->routes.nelts + 5)


static int ngx_http_recovery_context_params(ngx_http_recovery_ctx_t *ctx,
    ngx_msec_t timeout);


ngx_uint_t
ngx_http_recovery_call_statements(ngx_http_recovery_main_conf_t *rmcf)
{
    return 2 * rmcf->routes.nelts + 6;
}


/*
 * Fills the request's call; its arguments (ctx->params) are set already.
 * standby: the call goes to a standby, which must have the caller's writes.
 */
void
ngx_http_recovery_call_init(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_call_done_pt done,
    ngx_uint_t standby)
{
    ngx_uint_t                      idempotent;
    ngx_http_recovery_call_t       *call;
    ngx_http_recovery_route_t      *route;
    ngx_http_recovery_statement_t  *st;
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    route = ctx->route;
    call = &ctx->call;
    idempotent = (ctx->idempotency_key.len != 0);

    call->timeout = route->timeout ? route->timeout
                                   : rmcf->pool_conf.statement_timeout;
    call->writes = !ctx->read_only;
    call->log = r->connection->log;
    call->done = done;
    call->data = ctx;
    call->committed = 0;
    call->error = NULL;
    ngx_str_null(&call->failure);
    ngx_memzero(call->statements, sizeof(call->statements));

    st = &call->statements[0];
    st->index = ngx_http_recovery_context_index(rmcf, ctx->auth);
    st->name = ngx_http_recovery_context_name[ctx->auth];
    st->sql = ngx_http_recovery_context_sql[ctx->auth];
    st->nparams = ngx_http_recovery_context_params(ctx, call->timeout);
    st->params = ctx->context;
    call->nstatements = 1;

    if (idempotent) {
        ctx->begin[0] = (const char *) ctx->idempotency_key.data;
        ctx->begin[1] = (const char *) route->label.data;
        ctx->begin[2] = (const char *) ctx->request_hash;

        st = &call->statements[call->nstatements++];
        st->index = ngx_http_recovery_begin_index(rmcf);
        st->name = ngx_http_recovery_begin_name;
        st->sql = ngx_http_recovery_begin_sql;
        st->nparams = 3;
        st->params = ctx->begin;
        st->keep = 1;
    }

    if (standby && ctx->lsn[0]) {
        ctx->replayed[0] = (const char *) ctx->lsn;

        st = &call->statements[call->nstatements++];
        st->index = ngx_http_recovery_replayed_index(rmcf);
        st->name = ngx_http_recovery_replayed_name;
        st->sql = ngx_http_recovery_replayed_sql;
        st->nparams = 1;
        st->params = ctx->replayed;
    }

    /* the idempotent form takes the key first, then the route's arguments */
    ctx->routed = call->nstatements;
    st = &call->statements[call->nstatements++];
    st->index = idempotent ? rmcf->routes.nelts + route->index : route->index;
    st->name = (const char *) (idempotent ? route->idempotent_statement
                                          : route->statement);
    st->sql = (const char *) (idempotent ? route->idempotent_sql
                                         : route->sql);
    st->nparams = (int) ctx->nparams + (idempotent ? 1 : 0);
    st->params = idempotent ? ctx->params : ctx->params + 1;
    st->binary = route->file ? 1 : 0;
    st->keep = 1;

    /* only reads on standbys need a write's position */
    if (call->writes && rmcf->replica_conf.conninfo.len) {
        call->committed = call->nstatements;

        st = &call->statements[call->nstatements++];
        st->index = ngx_http_recovery_lsn_index(rmcf);
        st->name = ngx_http_recovery_lsn_name;
        st->sql = ngx_http_recovery_lsn_sql;
        st->keep = 1;
    }
}


/* the write's commit position, once the call is answered; NULL: none */
const char *
ngx_http_recovery_call_commit_lsn(ngx_http_recovery_ctx_t *ctx)
{
    PGresult  *lsn;

    if (!ctx->call.committed) {
        return NULL;
    }

    lsn = ctx->call.statements[ctx->call.committed].result;

    if (lsn == NULL || PQntuples(lsn) != 1 || PQgetisnull(lsn, 0, 0)) {
        return NULL;
    }

    return PQgetvalue(lsn, 0, 0);
}


/* the routed function's rows, once the call is answered */
PGresult *
ngx_http_recovery_call_result(ngx_http_recovery_ctx_t *ctx)
{
    return ctx->call.statements[ctx->routed].result;
}


/* a retry: the first response, as idempotency_begin returned it */
PGresult *
ngx_http_recovery_call_replay(ngx_http_recovery_ctx_t *ctx)
{
    PGresult  *begin;

    if (ctx->idempotency_key.len == 0) {
        return NULL;
    }

    begin = ctx->call.statements[1].result;

    if (begin == NULL || PQntuples(begin) != 1 || PQgetisnull(begin, 0, 0)) {
        return NULL;
    }

    return begin;
}


/* the values of the request context statement, by how the caller came in */
static int
ngx_http_recovery_context_params(ngx_http_recovery_ctx_t *ctx,
    ngx_msec_t timeout)
{
    const char  **context, *read_only;

    context = ctx->context;
    read_only = ctx->read_only ? "on" : "off";
    ngx_sprintf(ctx->timeout, "%M%Z", timeout);

    switch (ctx->auth) {

    case NGX_HTTP_RECOVERY_AUTH_JWT:
        context[0] = (const char *) ctx->role.data;
        context[1] = (const char *) ctx->user_id.data;
        context[2] = (const char *) ctx->actor.data;
        context[3] = (const char *) ctx->request_id.data;
        context[4] = (const char *) ctx->claims.data;
        context[5] = read_only;
        context[6] = (const char *) ctx->timeout;
        return 7;

    case NGX_HTTP_RECOVERY_AUTH_KEY:
        context[0] = (const char *) ctx->api_key.data;
        context[1] = (const char *) ctx->request_id.data;
        context[2] = read_only;
        context[3] = (const char *) ctx->timeout;
        return 4;

    default:
        context[0] = (const char *) ctx->request_id.data;
        context[1] = read_only;
        context[2] = (const char *) ctx->timeout;
        return 3;
    }
}
