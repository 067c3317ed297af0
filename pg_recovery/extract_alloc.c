/*
 * extract_alloc.c
 *		The parsers' memory in the extension: palloc in the caller's memory
 *		context on the backend's own thread, malloc on the statement
 *		reader's, which gives up reading when memory runs out.
 */
#include "postgres.h"

#include <pthread.h>
#include <stdlib.h>

#include "extract.h"

__thread bool extract_own_thread = false;

/*
 * The parsers allocate in the caller's memory context, or with malloc on
 * the statement reader's thread.
 */
void *
extract_realloc(void *pointer, size_t size)
{
	if (extract_own_thread)
	{
		/* on the statement reader's thread: nothing of PostgreSQL */
		void	   *moved = realloc(pointer, size);

		if (moved == NULL)
			pthread_exit(NULL);	/* the reader gives up; see statement_reader.c */
		return moved;
	}
	return pointer ? repalloc(pointer, size) : palloc(size);
}

void
extract_free(void *pointer)
{
	if (extract_own_thread)
		free(pointer);
	else if (pointer)
		pfree(pointer);
}
