/*
 * statement-reader-test.c
 *		The statement reader's thread under ThreadSanitizer (TAP): a
 *		statement read on the thread gives the same lines, in the same
 *		order, with the same fingerprints as read inline; a slow consumer
 *		bounds the batches waiting; a cancel midway joins the thread; an
 *		error on the last line is reported after every batch before it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "statement_reader.h"

static int	tests = 0,
			failures = 0;

static void
ok(int passed, const char *what)
{
	tests++;
	failures += !passed;
	printf("%s %d - %s\n", passed ? "ok" : "not ok", tests, what);
}

__thread bool extract_own_thread = false;

/* as the extension's allocator on the reader's thread: give up reading */
void *
extract_realloc(void *pointer, size_t size)
{
	void	   *grown = realloc(pointer, size);

	if (grown == NULL)
		pthread_exit(NULL);
	return grown;
}

void
extract_free(void *pointer)
{
	free(pointer);
}

static const PaymentCurrency currencies[] = {{"EUR", 2}, {"USD", 2}, {"JPY", 0}};

/* lines lines of a bank's layout; every 1000th the same as the one before */
static char *
statement(int lines, size_t *len)
{
	size_t		cap = (size_t) lines * 100 + 100;
	char	   *text = malloc(cap);
	size_t		n = (size_t) sprintf(text, "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n");
	int			i;

	for (i = 1; i <= lines; i++)
	{
		int			k = i % 1000 == 0 ? i - 1 : i;

		n += (size_t) sprintf(text + n, "%02d.11.2026;\"Kunde %d\";\"Rechnung INV-T-%07d RC-%06d\";%d,%02d;%s\n",
							  1 + k % 28, k, k, k % 5000, 1 + k % 900, k % 100, k % 3 ? "EUR" : "JPY");
	}
	*len = n;
	return text;
}

typedef struct Read
{
	long		lines;
	long		batches;
	unsigned char *fingerprints;	/* lines * 32 */
	long		with_tokens;
	bool		ok;
	ExtractError error;
} Read;

static Read
read_statement(const char *text, size_t len, int slow_every, int cancel_after)
{
	CsvMapping	mapping;
	CsvSummary	summary;
	StatementReader *reader;
	PaymentBatch *batch;
	StatementReaderStatus status;
	Read		read;

	memset(&read, 0, sizeof(read));
	memset(&mapping, 0, sizeof(mapping));
	mapping.decimal = ',';
	read.fingerprints = malloc(len / 40 * FINGERPRINT_LENGTH + FINGERPRINT_LENGTH);
	reader = statement_reader_start(text, len, &mapping, currencies, 3, NULL);
	while ((status = statement_reader_next(reader, &batch)) != READER_END)
	{
		int			i;

		if (status != READER_BATCH)
			continue;
		for (i = 0; i < batch->count; i++)
		{
			memcpy(read.fingerprints + read.lines * FINGERPRINT_LENGTH, batch->lines[i].fingerprint,
				   FINGERPRINT_LENGTH);
			read.with_tokens += batch->lines[i].tokens[TOKEN_INVOICE] != NULL &&
				batch->lines[i].tokens[TOKEN_CASE] != NULL;
			read.lines++;
		}
		statement_reader_recycle(reader, batch);
		read.batches++;
		if (slow_every && read.batches % slow_every == 0)
		{
			struct timespec pause = {0, 20 * 1000 * 1000};

			nanosleep(&pause, NULL);
		}
		if (cancel_after && read.batches == cancel_after)
		{
			statement_reader_cancel(reader);
			return read;
		}
	}
	read.ok = statement_reader_finish(reader, &summary, &read.error);
	return read;
}

int
main(void)
{
	size_t		len,
				small_len;
	char	   *big = statement(100000, &len);
	char	   *small;
	Read		threaded,
				again,
				inline_read,
				cancelled,
				broken;
	int			i,
				same = 1;

	/* the first 5000 lines, inline (under 1 MiB) and on the thread */
	small_len = strchr(big + 400000, '\n') + 1 - big;
	small = malloc(small_len);
	memcpy(small, big, small_len);
	ok(len > STATEMENT_READER_THREAD_FROM && small_len < STATEMENT_READER_THREAD_FROM,
	   "one statement to read on the thread, one inline");

	threaded = read_statement(big, len, 0, 0);
	ok(threaded.ok && threaded.lines == 100000, "on the thread: every line, no error");
	ok(threaded.batches == (100000 + PAYMENT_BATCH_LINES - 1) / PAYMENT_BATCH_LINES, "in full batches but the last");
	ok(threaded.with_tokens == 100000, "each with its invoice and case tokens");

	inline_read = read_statement(small, small_len, 0, 0);
	ok(inline_read.ok && inline_read.lines > 4000, "inline: the lines of the smaller file");
	for (i = 0; i < inline_read.lines; i++)
		same &= memcmp(inline_read.fingerprints + i * FINGERPRINT_LENGTH,
					   threaded.fingerprints + i * FINGERPRINT_LENGTH, FINGERPRINT_LENGTH) == 0;
	ok(same, "with the fingerprints the thread gave its first lines, in the same order");
	ok(memcmp(threaded.fingerprints + 999 * FINGERPRINT_LENGTH,
			  threaded.fingerprints + 998 * FINGERPRINT_LENGTH, FINGERPRINT_LENGTH) != 0,
	   "two equal lines have two fingerprints");

	again = read_statement(big, len, 3, 0);
	ok(again.ok && again.lines == 100000 &&
	   memcmp(again.fingerprints, threaded.fingerprints, 100000 * FINGERPRINT_LENGTH) == 0,
	   "a slow reader of the batches gets the same lines");

	cancelled = read_statement(big, len, 0, 3);
	ok(cancelled.batches == 3, "a reader that gives up after three batches stops the thread");

	big[len - 4] = '"';			/* the last field opens a quote it never closes */
	broken = read_statement(big, len, 0, 0);
	ok(!broken.ok && strstr(broken.error.message, "never closed") != NULL,
	   "an unterminated quote at the end is reported");
	ok(broken.lines > 90000, "after the batches before it");

	printf("1..%d\n", tests);
	free(big);
	free(small);
	free(threaded.fingerprints);
	free(again.fingerprints);
	free(inline_read.fingerprints);
	free(cancelled.fingerprints);
	free(broken.fingerprints);
	return failures ? 1 : 0;
}
