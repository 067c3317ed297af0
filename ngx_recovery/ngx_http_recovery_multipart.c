
/*
 * multipart/form-data (RFC 7578), as browsers send a file input: the first
 * part that carries a filename is the upload.  Only what a document upload
 * needs: its bytes, its Content-Type and its filename.  Every read is
 * bounded by the body's length; binary content may hold any byte.
 */

#include "ngx_http_recovery_multipart.h"


#define NGX_HTTP_RECOVERY_MAX_BOUNDARY      70
#define NGX_HTTP_RECOVERY_MAX_PART_HEADERS  8192


static ngx_int_t ngx_http_recovery_multipart_boundary(ngx_str_t *type,
    ngx_str_t *boundary);
static void ngx_http_recovery_multipart_header(u_char *line, u_char *end,
    ngx_str_t *type, ngx_str_t *filename);
static u_char *ngx_http_recovery_find(u_char *p, u_char *last, u_char *what,
    size_t len);


ngx_int_t
ngx_http_recovery_is_multipart(ngx_str_t *type)
{
    return type->len >= sizeof("multipart/form-data") - 1
           && ngx_strncasecmp(type->data, (u_char *) "multipart/form-data",
                              sizeof("multipart/form-data") - 1) == 0;
}


/*
 * Finds the file in a multipart body.  NGX_DECLINED with *error set when
 * the body is not what it says it is.
 */
ngx_int_t
ngx_http_recovery_multipart_file(ngx_pool_t *pool, ngx_str_t *content_type,
    u_char *body, size_t len, ngx_str_t *file, ngx_str_t *type,
    ngx_str_t *filename, const char **error)
{
    u_char     *p, *last, *delimiter, *headers_end, *line, *eol, *next;
    size_t      dlen;
    ngx_str_t   boundary, part_type, part_name;

    if (ngx_http_recovery_multipart_boundary(content_type, &boundary)
        != NGX_OK)
    {
        *error = "multipart/form-data needs a boundary of 1 to 70 characters";
        return NGX_DECLINED;
    }

    /* "\r\n--boundary": the first one may start the body without CRLF */
    delimiter = ngx_pnalloc(pool, boundary.len + 4);
    if (delimiter == NULL) {
        return NGX_ERROR;
    }

    delimiter[0] = CR;
    delimiter[1] = LF;
    delimiter[2] = '-';
    delimiter[3] = '-';
    ngx_memcpy(delimiter + 4, boundary.data, boundary.len);
    dlen = boundary.len + 4;

    last = body + len;

    if (len >= dlen - 2 && ngx_memcmp(body, delimiter + 2, dlen - 2) == 0) {
        p = body + dlen - 2;

    } else {
        p = ngx_http_recovery_find(body, last, delimiter, dlen);
        if (p == NULL) {
            *error = "the multipart body has no part";
            return NGX_DECLINED;
        }

        p += dlen;
    }

    for ( ;; ) {
        /* after a delimiter: "--" ends the body, CRLF starts a part */
        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {
            *error = "the multipart body has no file";
            return NGX_DECLINED;
        }

        if (last - p < 2 || p[0] != CR || p[1] != LF) {
            *error = "the multipart body is malformed after a boundary";
            return NGX_DECLINED;
        }

        p += 2;

        headers_end = ngx_http_recovery_find(p,
                          ngx_min(last, p + NGX_HTTP_RECOVERY_MAX_PART_HEADERS),
                          (u_char *) CRLF CRLF, 4);
        if (headers_end == NULL) {
            *error = "a part's headers do not end, or are over 8 KiB";
            return NGX_DECLINED;
        }

        ngx_str_null(&part_type);
        ngx_str_null(&part_name);

        for (line = p; line < headers_end; line = eol + 2) {
            eol = ngx_http_recovery_find(line, headers_end + 2,
                                         (u_char *) CRLF, 2);
            if (eol == NULL) {
                eol = headers_end;
            }

            ngx_http_recovery_multipart_header(line, eol, &part_type,
                                               &part_name);
        }

        p = headers_end + 4;

        next = ngx_http_recovery_find(p, last, delimiter, dlen);
        if (next == NULL) {
            *error = "the multipart body does not end with its boundary";
            return NGX_DECLINED;
        }

        if (part_name.data) {
            file->data = p;
            file->len = next - p;
            *type = part_type;
            *filename = part_name;
            return NGX_OK;
        }

        p = next + dlen;
    }
}


static ngx_int_t
ngx_http_recovery_multipart_boundary(ngx_str_t *type, ngx_str_t *boundary)
{
    u_char  *p, *last, *start;

    last = type->data + type->len;

    for (p = type->data; p + sizeof("boundary=") - 1 <= last; p++) {
        if (ngx_strncasecmp(p, (u_char *) "boundary=",
                            sizeof("boundary=") - 1) == 0)
        {
            break;
        }
    }

    if (p + sizeof("boundary=") - 1 > last) {
        return NGX_ERROR;
    }

    p += sizeof("boundary=") - 1;

    if (p < last && *p == '"') {
        start = ++p;
        while (p < last && *p != '"') {
            p++;
        }

    } else {
        start = p;
        while (p < last && *p != ';' && *p != ' ' && *p != '\t') {
            p++;
        }
    }

    boundary->data = start;
    boundary->len = p - start;

    return (boundary->len >= 1
            && boundary->len <= NGX_HTTP_RECOVERY_MAX_BOUNDARY)
           ? NGX_OK : NGX_ERROR;
}


/* Content-Type: and Content-Disposition: ...; filename="..." of a part */
static void
ngx_http_recovery_multipart_header(u_char *line, u_char *end, ngx_str_t *type,
    ngx_str_t *filename)
{
    u_char  *p, *start;

    if ((size_t) (end - line) > sizeof("Content-Type:") - 1
        && ngx_strncasecmp(line, (u_char *) "Content-Type:",
                           sizeof("Content-Type:") - 1) == 0)
    {
        for (p = line + sizeof("Content-Type:") - 1;
             p < end && (*p == ' ' || *p == '\t');
             p++)
        { /* void */ }

        type->data = p;
        type->len = end - p;
        return;
    }

    if ((size_t) (end - line) <= sizeof("Content-Disposition:") - 1
        || ngx_strncasecmp(line, (u_char *) "Content-Disposition:",
                           sizeof("Content-Disposition:") - 1) != 0)
    {
        return;
    }

    for (p = line; p + sizeof("filename=\"") - 1 <= end; p++) {
        if (ngx_strncasecmp(p, (u_char *) "filename=\"",
                            sizeof("filename=\"") - 1) == 0
            && (p == line || p[-1] == ' ' || p[-1] == ';'))
        {
            start = p + sizeof("filename=\"") - 1;

            for (p = start; p < end && *p != '"'; p++) { /* void */ }

            if (p < end) {
                filename->data = start;
                filename->len = p - start;
            }

            return;
        }
    }
}


/* memmem within [p, last), for bodies that may hold any byte */
static u_char *
ngx_http_recovery_find(u_char *p, u_char *last, u_char *what, size_t len)
{
    if (p >= last || (size_t) (last - p) < len) {
        return NULL;
    }

    return memmem(p, last - p, what, len);
}
