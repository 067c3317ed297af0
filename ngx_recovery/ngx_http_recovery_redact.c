
/*
 * nginx's error log ends each line it writes for a request with that
 * request's line ("request: ..."): limit_req's refusals, a call that
 * failed with a 5xx, a client that timed out.  The query string carries
 * personal data (?q=, ?email=, ?phone=, ?filename=), so from the first
 * phase on the line keeps the method, the path and the protocol only.
 * The arguments themselves (r->args) are untouched.
 */

#include "ngx_http_recovery_redact.h"


ngx_int_t
ngx_http_recovery_redact_handler(ngx_http_request_t *r)
{
    u_char  *line, *end, *query, *protocol, *p;

    line = r->request_line.data;
    end = line + r->request_line.len;

    query = (line != NULL) ? ngx_strlchr(line, end, '?') : NULL;
    if (query == NULL) {
        return NGX_DECLINED;
    }

    /* " HTTP/1.1" after the query, if the line has a protocol */
    for (protocol = end; protocol > query && protocol[-1] != ' '; protocol--) {
        /* void */
    }

    if (protocol > query) {
        protocol--;

    } else {
        protocol = end;
    }

    p = ngx_pnalloc(r->pool, (query - line) + (end - protocol));
    if (p == NULL) {
        return NGX_DECLINED;
    }

    r->request_line.data = p;
    p = ngx_cpymem(p, line, query - line);
    p = ngx_cpymem(p, protocol, end - protocol);
    r->request_line.len = p - r->request_line.data;

    return NGX_DECLINED;
}
