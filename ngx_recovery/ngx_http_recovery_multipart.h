
/*
 * multipart/form-data uploads: the first file part, its type and its name.
 */

#ifndef _NGX_HTTP_RECOVERY_MULTIPART_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_MULTIPART_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t ngx_http_recovery_is_multipart(ngx_str_t *type);
ngx_int_t ngx_http_recovery_multipart_file(ngx_pool_t *pool,
    ngx_str_t *content_type, u_char *body, size_t len, ngx_str_t *file,
    ngx_str_t *type, ngx_str_t *filename, const char **error);


#endif /* _NGX_HTTP_RECOVERY_MULTIPART_H_INCLUDED_ */
