/*
 * fuzz_email.c
 *		libFuzzer target of the email parser (GMime), including the JSON it
 *		writes.
 */
#include <stdint.h>
#include <string.h>

#include "extract.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ExtractBuf	out;
	ExtractError error;

	memset(&error, 0, sizeof(error));
	xbuf_init(&out);
	email_parse((const char *) data, size, &out, &error);
	xbuf_free(&out);
	return 0;
}
