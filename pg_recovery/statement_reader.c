/*
 * statement_reader.c
 *		A CSV statement read into batches of payment lines (parsing, amounts,
 *		dates, fingerprints), on a thread of its own when the file is large:
 *		the backend then stores each batch while the thread reads the next,
 *		and an import takes about as long as storing alone.
 *
 * The thread runs plain C only (extract_csv.c, payment_csv.c, OpenSSL),
 * allocates with malloc (extract_realloc() sees extract_own_thread),
 * blocks every signal so that PostgreSQL's handlers run on the backend's
 * own thread, and never calls into PostgreSQL.  At most MAX_QUEUED batches
 * wait for the backend, so memory stays bounded whatever the file's size.
 * The backend cancels and joins the thread if it gives up (an error, a
 * cancelled query): see extraction_import.c.
 */
#include "statement_reader.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUEUED 4

struct StatementReader
{
	const char *input;
	size_t		len;
	CsvMapping	mapping;
	PaymentReader *payments;
	bool		threaded;
	pthread_t	thread;

	/* shared with the thread, under lock */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	PaymentBatch *head;
	PaymentBatch *tail;
	int			queued;
	PaymentBatch *spare;		/* batches the backend is done with */
	bool		done;
	bool		cancelled;

	/* the thread's own until done */
	PaymentBatch *filling;
	bool		out_of_memory;
	CsvSummary	summary;
	ExtractError error;
};

/* hands a full batch to the backend; false when the backend gave up */
static bool
push(StatementReader *reader, PaymentBatch *batch)
{
	pthread_mutex_lock(&reader->lock);
	while (reader->threaded && reader->queued >= MAX_QUEUED && !reader->cancelled)
		pthread_cond_wait(&reader->changed, &reader->lock);
	if (reader->cancelled)
	{
		pthread_mutex_unlock(&reader->lock);
		payment_batch_free(batch);
		return false;
	}
	if (reader->tail)
		reader->tail->next = batch;
	else
		reader->head = batch;
	reader->tail = batch;
	reader->queued++;
	pthread_cond_broadcast(&reader->changed);
	pthread_mutex_unlock(&reader->lock);
	return true;
}

static bool
on_line(void *arg, const CsvLine *csv)
{
	StatementReader *reader = arg;
	PaymentBatch *batch;

	if (__atomic_load_n(&reader->cancelled, __ATOMIC_RELAXED))
		return false;
	if (reader->filling == NULL)
	{
		/* a batch the backend is done with, else a new one */
		pthread_mutex_lock(&reader->lock);
		if ((reader->filling = reader->spare) != NULL)
			reader->spare = reader->filling->next;
		pthread_mutex_unlock(&reader->lock);
		if (reader->filling)
			payment_batch_clear(reader->filling);
		else if ((reader->filling = payment_batch_new()) == NULL)
		{
			reader->out_of_memory = true;
			return false;
		}
	}
	batch = reader->filling;
	if (!payment_reader_convert(reader->payments, csv, &batch->lines[batch->count], &batch->arena))
	{
		reader->out_of_memory = true;
		return false;
	}
	if (++batch->count < PAYMENT_BATCH_LINES)
		return true;
	reader->filling = NULL;
	return push(reader, batch);
}

static void
mark_done(StatementReader *reader)
{
	pthread_mutex_lock(&reader->lock);
	reader->done = true;
	pthread_cond_broadcast(&reader->changed);
	pthread_mutex_unlock(&reader->lock);
}

static void
read_all(StatementReader *reader)
{
	(void) csv_parse(reader->input, reader->len, &reader->mapping, on_line, reader,
					 &reader->summary, &reader->error);
	if (reader->out_of_memory)
		extract_fail(&reader->error, 0, "out of memory while reading the statement");
	if (reader->filling && reader->filling->count > 0 && !reader->error.failed)
		(void) push(reader, reader->filling);
	else
		payment_batch_free(reader->filling);
	reader->filling = NULL;
}

static void
thread_gave_up(void *arg)
{
	StatementReader *reader = arg;

	if (!reader->done)
	{
		extract_fail(&reader->error, 0, "out of memory while reading the statement");
		mark_done(reader);
	}
}

static void *
thread_main(void *arg)
{
	StatementReader *reader = arg;

	extract_own_thread = true;
	pthread_cleanup_push(thread_gave_up, reader);
	read_all(reader);
	mark_done(reader);
	pthread_cleanup_pop(0);
	return NULL;
}

StatementReader *
statement_reader_start(const char *input, size_t len, const CsvMapping *mapping,
					   const PaymentCurrency *currencies, int n_currencies,
					   const char *default_currency)
{
	StatementReader *reader = calloc(1, sizeof(StatementReader));

	if (reader == NULL)
		return NULL;
	reader->input = input;
	reader->len = len;
	reader->mapping = *mapping;
	/* statements have lines of 60 to 200 bytes */
	reader->payments = payment_reader_new(currencies, n_currencies, default_currency, len / 80);
	if (reader->payments == NULL)
	{
		free(reader);
		return NULL;
	}
	pthread_mutex_init(&reader->lock, NULL);
	pthread_cond_init(&reader->changed, NULL);

	if (len >= STATEMENT_READER_THREAD_FROM)
	{
		sigset_t	all,
					before;

		/* the thread starts with every signal blocked */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &before);
		reader->threaded = pthread_create(&reader->thread, NULL, thread_main, reader) == 0;
		pthread_sigmask(SIG_SETMASK, &before, NULL);
	}
	return reader;
}

StatementReaderStatus
statement_reader_next(StatementReader *reader, PaymentBatch **batch)
{
	StatementReaderStatus status;

	if (!reader->threaded && !reader->done)
	{
		/* small files are read whole, here, at the first call */
		read_all(reader);
		reader->done = true;
	}
	pthread_mutex_lock(&reader->lock);
	if (reader->head == NULL && !reader->done)
	{
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000 * 1000;
		if (until.tv_nsec >= 1000 * 1000 * 1000)
		{
			until.tv_sec++;
			until.tv_nsec -= 1000 * 1000 * 1000;
		}
		(void) pthread_cond_timedwait(&reader->changed, &reader->lock, &until);
	}
	if (reader->head)
	{
		*batch = reader->head;
		reader->head = (*batch)->next;
		if (reader->head == NULL)
			reader->tail = NULL;
		reader->queued--;
		(*batch)->next = NULL;
		pthread_cond_broadcast(&reader->changed);
		status = READER_BATCH;
	}
	else
		status = reader->done ? READER_END : READER_WAITING;
	pthread_mutex_unlock(&reader->lock);
	return status;
}

/* reuses the memory of a batch: no page faults and unmapping per batch */
void
statement_reader_recycle(StatementReader *reader, PaymentBatch *batch)
{
	if (batch == NULL)
		return;
	pthread_mutex_lock(&reader->lock);
	batch->next = reader->spare;
	reader->spare = batch;
	pthread_mutex_unlock(&reader->lock);
}

static void
free_batches(PaymentBatch *batch)
{
	PaymentBatch *next;

	for (; batch; batch = next)
	{
		next = batch->next;
		payment_batch_free(batch);
	}
}

static void
free_reader(StatementReader *reader)
{
	free_batches(reader->head);
	free_batches(reader->spare);
	payment_batch_free(reader->filling);
	payment_reader_free(reader->payments);
	pthread_mutex_destroy(&reader->lock);
	pthread_cond_destroy(&reader->changed);
	free(reader);
}

bool
statement_reader_finish(StatementReader *reader, CsvSummary *summary, ExtractError *error)
{
	bool		ok;

	if (reader->threaded)
		pthread_join(reader->thread, NULL);
	*summary = reader->summary;
	*error = reader->error;
	ok = !reader->error.failed;
	free_reader(reader);
	return ok;
}

void
statement_reader_cancel(StatementReader *reader)
{
	pthread_mutex_lock(&reader->lock);
	/* atomic: on_line() reads it without the lock */
	__atomic_store_n(&reader->cancelled, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&reader->changed);
	pthread_mutex_unlock(&reader->lock);
	if (reader->threaded)
		pthread_join(reader->thread, NULL);
	free_reader(reader);
}
