/*
 * statement_format.c
 *		Telling a statement's format from its first bytes: the magic numbers
 *		of zip (xlsx), OLE2 (xls) and PDF, a CAMT namespace in the first XML
 *		element, or MT940's ":20:" tag on a line of its own.
 */
#include "statement_format.h"

#include <string.h>

static const char *const formats[] = {"camt", "mt940", "xlsx", "xls", "pdf", "csv", NULL};

static const char *
find(const char *head, size_t len, const char *needle)
{
	size_t		n = strlen(needle);
	size_t		i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(head + i, needle, n) == 0)
			return head + i;
	return NULL;
}

const char *
statement_format(const char *head, size_t len)
{
	size_t		at = 0;
	const char *tag;

	if (len >= 4 && memcmp(head, "PK\003\004", 4) == 0)
		return "xlsx";
	if (len >= 8 && memcmp(head, "\320\317\021\340\241\261\032\341", 8) == 0)
		return "xls";
	if (len >= 5 && find(head, len < 1024 ? len : 1024, "%PDF-"))
		return "pdf";
	if (len >= 3 && memcmp(head, "\357\273\277", 3) == 0)
		at = 3;
	while (at < len && strchr(" \t\r\n", head[at]))
		at++;
	if (at < len && head[at] == '<' && find(head + at, len - at, "camt.05"))
		return "camt";
	if (at < len && head[at] == '<')
		return "xml";
	/* ":20:" opens an MT940 or MT942, after the SWIFT blocks if any */
	tag = find(head + at, len - at, ":20:");
	if (tag && (tag == head + at || tag[-1] == '\n' || tag[-1] == ':') &&
		(find(head, len, ":25:") || find(head, len, ":61:")))
		return "mt940";
	return "csv";
}

const char *
statement_format_known(const char *name)
{
	int			i;

	for (i = 0; formats[i]; i++)
		if (strcmp(name, formats[i]) == 0)
			return formats[i];
	if (strcmp(name, "mt942") == 0)
		return "mt940";
	return NULL;
}
