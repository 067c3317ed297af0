
/*
 * Metrics in shared memory, counted by every worker and served in the
 * Prometheus text format: requests by route and status, a latency histogram
 * per route, each worker's pool (busy, idle, queued, pipelined) and open event
 * streams, event streams cut off, and database errors.
 * Counters start again from zero when nginx reloads its configuration.
 */

#include "ngx_http_recovery_module.h"
#include "ngx_http_recovery_metrics.h"
#include "ngx_http_recovery_response.h"


#define NGX_HTTP_RECOVERY_WORKERS   64


static ngx_uint_t  ngx_http_recovery_statuses[] = {
    200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 500, 503, 504,
    0   /* any other */
};

#define NGX_HTTP_RECOVERY_NSTATUSES                                           \
    (sizeof(ngx_http_recovery_statuses) / sizeof(ngx_uint_t))

/*
 * Upper bounds of the latency buckets, in milliseconds, and their "le"
 * labels in seconds, written as Prometheus' client libraries write them.
 */
typedef struct {
    ngx_msec_t   ms;
    ngx_str_t    le;
} ngx_http_recovery_bucket_t;

static ngx_http_recovery_bucket_t  ngx_http_recovery_buckets[] = {
    { 1, ngx_string("0.001") },    { 2, ngx_string("0.002") },
    { 5, ngx_string("0.005") },    { 10, ngx_string("0.01") },
    { 25, ngx_string("0.025") },   { 50, ngx_string("0.05") },
    { 100, ngx_string("0.1") },    { 250, ngx_string("0.25") },
    { 500, ngx_string("0.5") },    { 1000, ngx_string("1.0") },
    { 2500, ngx_string("2.5") },   { 5000, ngx_string("5.0") },
    { 10000, ngx_string("10.0") }
};

#define NGX_HTTP_RECOVERY_NBUCKETS                                            \
    (sizeof(ngx_http_recovery_buckets) / sizeof(ngx_http_recovery_bucket_t))


typedef struct {
    ngx_atomic_t   requests[NGX_HTTP_RECOVERY_NSTATUSES];
    ngx_atomic_t   latency[NGX_HTTP_RECOVERY_NBUCKETS + 1];
    ngx_atomic_t   latency_sum_ms;
} ngx_http_recovery_route_metrics_t;


typedef struct {
    ngx_atomic_t   busy;
    ngx_atomic_t   idle;
    ngx_atomic_t   queued;
    ngx_atomic_t   pipelined;   /* calls sent behind others, ever */
    ngx_atomic_t   streams;     /* event streams open */
    ngx_atomic_t   seen;
} ngx_http_recovery_worker_metrics_t;


typedef struct {
    ngx_atomic_t                         database_errors;
    ngx_atomic_t                         streams_cut;   /* too slow */
    ngx_http_recovery_worker_metrics_t   workers[NGX_HTTP_RECOVERY_WORKERS];
    ngx_uint_t                           nroutes;
    /* one row per route, and a last one for requests that matched none */
    ngx_http_recovery_route_metrics_t    routes[1];
} ngx_http_recovery_metrics_t;


static ngx_int_t ngx_http_recovery_metrics_init(ngx_shm_zone_t *zone,
    void *data);
static ngx_http_recovery_metrics_t *ngx_http_recovery_metrics(
    ngx_http_request_t *r);
static void ngx_http_recovery_metrics_request(ngx_http_request_t *r,
    ngx_http_recovery_route_t *route, ngx_uint_t status, ngx_msec_t start);
static void ngx_http_recovery_metrics_pool(
    ngx_http_recovery_main_conf_t *rmcf);
static u_char *ngx_http_recovery_metrics_workers(u_char *p,
    ngx_http_recovery_metrics_t *metrics);


ngx_int_t
ngx_http_recovery_metrics_init_zone(ngx_conf_t *cf,
    ngx_http_recovery_main_conf_t *rmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("recovery_metrics");

    size = sizeof(ngx_http_recovery_metrics_t)
           + rmcf->routes.nelts * sizeof(ngx_http_recovery_route_metrics_t);

    /* the slab allocator's own pages come on top */
    size = ngx_align(size, ngx_pagesize) + 8 * ngx_pagesize;

    rmcf->metrics_zone = ngx_shared_memory_add(cf, &name, size,
                                               &ngx_http_recovery_module);
    if (rmcf->metrics_zone == NULL) {
        return NGX_ERROR;
    }

    rmcf->metrics_zone->init = ngx_http_recovery_metrics_init;
    rmcf->metrics_zone->data = rmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_recovery_metrics_init(ngx_shm_zone_t *zone, void *data)
{
    size_t                           size;
    ngx_slab_pool_t                 *shpool;
    ngx_http_recovery_metrics_t     *metrics;
    ngx_http_recovery_main_conf_t   *rmcf;

    rmcf = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    size = sizeof(ngx_http_recovery_metrics_t)
           + rmcf->routes.nelts * sizeof(ngx_http_recovery_route_metrics_t);

    /* a reload that keeps the zone's size reuses its memory */
    metrics = data;

    if (metrics && metrics->nroutes == rmcf->routes.nelts) {
        ngx_memzero(metrics, size);

    } else {
        if (metrics) {
            ngx_slab_free(shpool, metrics);
        }

        metrics = ngx_slab_calloc(shpool, size);
        if (metrics == NULL) {
            return NGX_ERROR;
        }
    }

    metrics->nroutes = rmcf->routes.nelts;
    shpool->data = metrics;
    zone->data = metrics;

    return NGX_OK;
}


static ngx_http_recovery_metrics_t *
ngx_http_recovery_metrics(ngx_http_request_t *r)
{
    ngx_http_recovery_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

    if (rmcf->metrics_zone == NULL) {
        return NULL;
    }

    return rmcf->metrics_zone->data;
}


static void
ngx_http_recovery_metrics_request(ngx_http_request_t *r,
    ngx_http_recovery_route_t *route, ngx_uint_t status, ngx_msec_t start)
{
    ngx_uint_t                          i;
    ngx_msec_t                          ms;
    ngx_http_recovery_metrics_t        *metrics;
    ngx_http_recovery_route_metrics_t  *row;

    metrics = ngx_http_recovery_metrics(r);
    if (metrics == NULL) {
        return;
    }

    row = &metrics->routes[route ? route->index : metrics->nroutes];

    for (i = 0; i < NGX_HTTP_RECOVERY_NSTATUSES - 1; i++) {
        if (ngx_http_recovery_statuses[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&row->requests[i], 1);

    ms = ngx_current_msec - start;

    for (i = 0; i < NGX_HTTP_RECOVERY_NBUCKETS; i++) {
        if (ms <= ngx_http_recovery_buckets[i].ms) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&row->latency[i], 1);
    (void) ngx_atomic_fetch_add(&row->latency_sum_ms, ms);
}


/* the log phase: each request of the gateway is counted once, when done */
ngx_int_t
ngx_http_recovery_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_msec_t                      start;
    ngx_http_recovery_ctx_t        *ctx;
    ngx_http_recovery_main_conf_t  *rmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_recovery_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);

    /* an event stream: how long it took to open, not how long it was open */
    start = ctx->start;
    if (ctx->opened) {
        start += ngx_current_msec - ctx->opened;
    }

    ngx_http_recovery_metrics_request(r, ctx->route, r->headers_out.status,
                                      start);
    ngx_http_recovery_metrics_pool(rmcf);

    return NGX_OK;
}


void
ngx_http_recovery_metrics_db_error(ngx_http_request_t *r)
{
    ngx_http_recovery_metrics_t  *metrics;

    metrics = ngx_http_recovery_metrics(r);

    if (metrics) {
        (void) ngx_atomic_fetch_add(&metrics->database_errors, 1);
    }
}


/* an event stream opened (1) or ended (-1) in this worker */
void
ngx_http_recovery_metrics_stream(ngx_http_request_t *r, ngx_int_t change)
{
    ngx_http_recovery_metrics_t  *metrics;

    metrics = ngx_http_recovery_metrics(r);

    if (metrics && ngx_worker < NGX_HTTP_RECOVERY_WORKERS) {
        (void) ngx_atomic_fetch_add(&metrics->workers[ngx_worker].streams,
                                    change);
        metrics->workers[ngx_worker].seen = 1;
    }
}


void
ngx_http_recovery_metrics_stream_cut(ngx_http_request_t *r)
{
    ngx_http_recovery_metrics_t  *metrics;

    metrics = ngx_http_recovery_metrics(r);

    if (metrics) {
        (void) ngx_atomic_fetch_add(&metrics->streams_cut, 1);
    }
}


/* publishes this worker's pool state for /metrics served by any worker */
static void
ngx_http_recovery_metrics_pool(ngx_http_recovery_main_conf_t *rmcf)
{
    ngx_uint_t                           busy, idle, queued, pipelined;
    ngx_http_recovery_metrics_t         *metrics;
    ngx_http_recovery_worker_metrics_t  *worker;

    if (rmcf->metrics_zone == NULL || ngx_worker >= NGX_HTTP_RECOVERY_WORKERS) {
        return;
    }

    metrics = rmcf->metrics_zone->data;
    worker = &metrics->workers[ngx_worker];

    ngx_http_recovery_pool_stats(rmcf->pool, &busy, &idle, &queued,
                                 &pipelined);

    worker->busy = busy;
    worker->idle = idle;
    worker->queued = queued;
    worker->pipelined = pipelined;
    worker->seen = 1;
}


ngx_int_t
ngx_http_recovery_metrics_handler(ngx_http_request_t *r)
{
    u_char                              *p, *body;
    size_t                               size;
    ngx_int_t                            rc;
    ngx_uint_t                           i, j, n, cumulative;
    ngx_str_t                            label;
    ngx_http_recovery_route_t          **routes;
    ngx_http_recovery_metrics_t         *metrics;
    ngx_http_recovery_main_conf_t       *rmcf;
    ngx_http_recovery_route_metrics_t   *row;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_recovery_module);
    metrics = ngx_http_recovery_metrics(r);

    if (metrics == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    ngx_http_recovery_metrics_pool(rmcf);

    routes = rmcf->routes.elts;
    n = metrics->nroutes;

    size = 1024 + NGX_HTTP_RECOVERY_WORKERS * 384;
    for (i = 0; i <= n; i++) {
        label = (i < n) ? routes[i]->label : (ngx_str_t) ngx_string("none");
        size += (NGX_HTTP_RECOVERY_NSTATUSES + NGX_HTTP_RECOVERY_NBUCKETS + 4)
                * (label.len + 128);
    }

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body,
            "# HELP recovery_http_requests_total Requests by route and "
            "status.\n# TYPE recovery_http_requests_total counter\n");

    for (i = 0; i <= n; i++) {
        row = &metrics->routes[i];
        label = (i < n) ? routes[i]->label : (ngx_str_t) ngx_string("none");

        for (j = 0; j < NGX_HTTP_RECOVERY_NSTATUSES; j++) {
            if (row->requests[j] == 0) {
                continue;
            }

            if (ngx_http_recovery_statuses[j]) {
                p = ngx_sprintf(p, "recovery_http_requests_total{route=\"%V\","
                                "status=\"%ui\"} %uA\n", &label,
                                ngx_http_recovery_statuses[j],
                                row->requests[j]);
            } else {
                p = ngx_sprintf(p, "recovery_http_requests_total{route=\"%V\","
                                "status=\"other\"} %uA\n", &label,
                                row->requests[j]);
            }
        }
    }

    p = ngx_sprintf(p,
            "# HELP recovery_http_request_duration_seconds Time from the "
            "request to its response.\n"
            "# TYPE recovery_http_request_duration_seconds histogram\n");

    for (i = 0; i <= n; i++) {
        row = &metrics->routes[i];
        label = (i < n) ? routes[i]->label : (ngx_str_t) ngx_string("none");
        cumulative = 0;

        for (j = 0; j < NGX_HTTP_RECOVERY_NBUCKETS; j++) {
            cumulative += row->latency[j];
            p = ngx_sprintf(p, "recovery_http_request_duration_seconds_bucket"
                            "{route=\"%V\",le=\"%V\"} %ui\n", &label,
                            &ngx_http_recovery_buckets[j].le, cumulative);
        }

        cumulative += row->latency[j];
        p = ngx_sprintf(p, "recovery_http_request_duration_seconds_bucket"
                        "{route=\"%V\",le=\"+Inf\"} %ui\n"
                        "recovery_http_request_duration_seconds_sum"
                        "{route=\"%V\"} %.3f\n"
                        "recovery_http_request_duration_seconds_count"
                        "{route=\"%V\"} %ui\n",
                        &label, cumulative, &label,
                        (double) row->latency_sum_ms / 1000, &label,
                        cumulative);
    }

    p = ngx_http_recovery_metrics_workers(p, metrics);

    p = ngx_sprintf(p,
            "# HELP recovery_event_streams_cut_total Event streams cut off "
            "because their client read too slowly.\n"
            "# TYPE recovery_event_streams_cut_total counter\n"
            "recovery_event_streams_cut_total %uA\n",
            metrics->streams_cut);

    p = ngx_sprintf(p,
            "# HELP recovery_database_errors_total Calls that failed for "
            "the server's reasons (not the client's).\n"
            "# TYPE recovery_database_errors_total counter\n"
            "recovery_database_errors_total %uA\n",
            metrics->database_errors);

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    return ngx_http_recovery_send_body(r, NGX_HTTP_OK, body, p - body);
}


/* each worker's gauges: its pool's connections and queue, its streams */
static u_char *
ngx_http_recovery_metrics_workers(u_char *p,
    ngx_http_recovery_metrics_t *metrics)
{
    ngx_uint_t                           i;
    ngx_http_recovery_worker_metrics_t  *worker;

    p = ngx_sprintf(p,
            "# HELP recovery_pool_connections Database connections of each "
            "worker's pool.\n# TYPE recovery_pool_connections gauge\n");

    for (i = 0; i < NGX_HTTP_RECOVERY_WORKERS; i++) {
        worker = &metrics->workers[i];
        if (!worker->seen) {
            continue;
        }

        p = ngx_sprintf(p, "recovery_pool_connections{worker=\"%ui\","
                        "state=\"busy\"} %uA\n"
                        "recovery_pool_connections{worker=\"%ui\","
                        "state=\"idle\"} %uA\n",
                        i, worker->busy, i, worker->idle);
    }

    p = ngx_sprintf(p,
            "# HELP recovery_pool_queue_length Requests waiting for a "
            "database connection.\n# TYPE recovery_pool_queue_length gauge\n");

    for (i = 0; i < NGX_HTTP_RECOVERY_WORKERS; i++) {
        worker = &metrics->workers[i];
        if (worker->seen) {
            p = ngx_sprintf(p, "recovery_pool_queue_length{worker=\"%ui\"} "
                            "%uA\n", i, worker->queued);
        }
    }

    p = ngx_sprintf(p,
            "# HELP recovery_pool_pipelined_total Calls sent on a database "
            "connection behind others not answered yet.\n"
            "# TYPE recovery_pool_pipelined_total counter\n");

    for (i = 0; i < NGX_HTTP_RECOVERY_WORKERS; i++) {
        worker = &metrics->workers[i];
        if (worker->seen) {
            p = ngx_sprintf(p, "recovery_pool_pipelined_total{worker=\"%ui\"} "
                            "%uA\n", i, worker->pipelined);
        }
    }

    p = ngx_sprintf(p,
            "# HELP recovery_event_streams Event streams open "
            "(GET /api/v1/events).\n# TYPE recovery_event_streams gauge\n");

    for (i = 0; i < NGX_HTTP_RECOVERY_WORKERS; i++) {
        worker = &metrics->workers[i];
        if (worker->seen) {
            p = ngx_sprintf(p, "recovery_event_streams{worker=\"%ui\"} "
                            "%uA\n", i, worker->streams);
        }
    }

    return p;
}
