
/*
 * Authentication: JWTs and API keys, the 401 answers, the tokens that
 * recovery_login mints and the event-stream tickets, and the directives
 * that configure them.
 */

#ifndef _NGX_HTTP_RECOVERY_AUTH_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_AUTH_H_INCLUDED_


#include "ngx_http_recovery_module.h"


ngx_int_t ngx_http_recovery_authenticate(ngx_http_request_t *r,
    ngx_http_recovery_ctx_t *ctx, ngx_http_recovery_loc_conf_t *rlcf,
    const char **refusal);
ngx_int_t ngx_http_recovery_unauthorized(ngx_http_request_t *r,
    const char *description);
ngx_int_t ngx_http_recovery_auth_login(ngx_http_recovery_ctx_t *ctx,
    u_char *user, size_t len);
ngx_int_t ngx_http_recovery_auth_ticket(ngx_http_recovery_ctx_t *ctx,
    u_char *user, size_t len);

char *ngx_http_recovery_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_recovery_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_recovery_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_recovery_sign_algorithm(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_recovery_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_RECOVERY_AUTH_H_INCLUDED_ */
