/*
 * statement_format.h
 *		Which format a statement file is in, from its first bytes: the
 *		extension reads CSV itself and hands every other format to the
 *		sandboxed recovery-parse (parse_sandbox.c), which asks the same.
 */
#ifndef RECOVERY_STATEMENT_FORMAT_H
#define RECOVERY_STATEMENT_FORMAT_H

#include <stddef.h>

/* how much of the file statement_format() needs to have seen */
#define STATEMENT_FORMAT_HEAD 65536

/* "camt", "mt940", "xlsx", "xls", "pdf" or "csv" (anything else) */
extern const char *statement_format(const char *head, size_t len);
/* a format name a caller may give (?format=), or NULL */
extern const char *statement_format_known(const char *name);

#endif							/* RECOVERY_STATEMENT_FORMAT_H */
