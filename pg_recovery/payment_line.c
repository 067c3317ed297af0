/*
 * payment_line.c
 *		The memory payment lines live in: their text in arena blocks, the
 *		lines in batches that are freed, or emptied for reuse, together.
 *		Plain C (malloc): it runs on the statement reader's thread too.
 */
#include "payment_line.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK (256 * 1024)

const char *const payment_status_names[PAYMENT_STATUS_COUNT] = {
	"applied", "review", "unmatched", "ignored"
};

typedef struct PaymentArenaBlock
{
	struct PaymentArenaBlock *next;
	char		data[];
} PaymentArenaBlock;

char *
payment_arena_strdup(PaymentArena *arena, const char *text)
{
	size_t		size;
	char	   *copy;

	if (text == NULL || text[0] == '\0')
		return NULL;
	size = strlen(text) + 1;
	if (size > arena->left)
	{
		size_t		block_size = size > ARENA_BLOCK ? size : ARENA_BLOCK;
		PaymentArenaBlock *block = malloc(sizeof(PaymentArenaBlock) + block_size);

		if (block == NULL)
			return NULL;
		block->next = arena->blocks;
		arena->blocks = block;
		arena->next = block->data;
		arena->left = block_size;
	}
	copy = arena->next;
	memcpy(copy, text, size);
	arena->next += size;
	arena->left -= size;
	return copy;
}

PaymentBatch *
payment_batch_new(void)
{
	PaymentBatch *batch = malloc(sizeof(PaymentBatch));

	if (batch)
	{
		batch->count = 0;
		batch->next = NULL;
		memset(&batch->arena, 0, sizeof(batch->arena));
	}
	return batch;
}

void
payment_batch_clear(PaymentBatch *batch)
{
	PaymentArenaBlock *block = batch->arena.blocks,
			   *next;

	batch->count = 0;
	batch->next = NULL;
	if (block == NULL)
		return;
	for (next = block->next; next; next = block->next)
	{
		block->next = next->next;
		free(next);
	}
	/* the block kept is the newest, of at least ARENA_BLOCK bytes */
	batch->arena.next = block->data;
	batch->arena.left = ARENA_BLOCK;
}

void
payment_arena_free(PaymentArena *arena)
{
	PaymentArenaBlock *block,
			   *next;

	for (block = arena->blocks; block; block = next)
	{
		next = block->next;
		free(block);
	}
	memset(arena, 0, sizeof(*arena));
}

void
payment_batch_free(PaymentBatch *batch)
{
	if (batch == NULL)
		return;
	payment_arena_free(&batch->arena);
	free(batch);
}
