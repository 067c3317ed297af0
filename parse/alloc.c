/*
 * alloc.c
 *		The parsers' memory in recovery-parse: malloc, and on running out
 *		(the --memory-mb limit) a clear last line for the extension and an
 *		exit, never a parser carrying on with a NULL.
 */
#include "extract.h"

#include <stdlib.h>
#include <unistd.h>

__thread bool extract_own_thread = false;

void *
extract_realloc(void *pointer, size_t size)
{
	void	   *grown = realloc(pointer, size);

	if (grown == NULL)
	{
		static const char message[] = "\nerror: the parser ran out of memory (its limit is --memory-mb)\n";

		(void) !write(STDERR_FILENO, message, sizeof(message) - 1);
		_exit(1);
	}
	return grown;
}

void
extract_free(void *pointer)
{
	free(pointer);
}
