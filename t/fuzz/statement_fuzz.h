/*
 * statement_fuzz.h
 *		What the libFuzzer targets of recovery-parse's parsers share: a sink
 *		that writes to /dev/null and summarizes, as the program does.
 */
#ifndef RECOVERY_STATEMENT_FUZZ_H
#define RECOVERY_STATEMENT_FUZZ_H

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"

static int	fuzz_null_fd = -1;

static void
fuzz_sink_init(StatementSink *sink, const char *format)
{
	if (fuzz_null_fd < 0)
		fuzz_null_fd = open("/dev/null", O_WRONLY);
	sink_init(sink, fuzz_null_fd, format);
}

static void
fuzz_sink_done(StatementSink *sink, bool ok)
{
	ExtractBuf	summary;

	xbuf_init(&summary);
	if (ok)
		(void) sink_finish(sink, &summary);
	xbuf_free(&summary);
	sink_free(sink);
}

#endif							/* RECOVERY_STATEMENT_FUZZ_H */
