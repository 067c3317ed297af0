/*
 * alloc.c
 *		The parsers' allocator outside PostgreSQL: malloc, and an abort
 *		when memory runs out (libFuzzer reports it).
 */
#include <stdlib.h>

#include "extract.h"

__thread bool extract_own_thread = false;

void *
extract_realloc(void *pointer, size_t size)
{
	void	   *grown = realloc(pointer, size);

	if (grown == NULL)
		abort();
	return grown;
}

void
extract_free(void *pointer)
{
	free(pointer);
}
