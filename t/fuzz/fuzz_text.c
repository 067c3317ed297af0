/*
 * fuzz_text.c
 *		libFuzzer target of the free-text and SMS parser, and of the amount
 *		and date readers on their own.
 */
#include <stdint.h>
#include <string.h>

#include "extract.h"

static bool
check_item(void *arg, const TextItem *item)
{
	size_t		len = *(size_t *) arg;

	/* a span always lies inside the text */
	if (item->start > item->end || item->end > len)
		__builtin_trap();
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ExtractError error;
	char		amount[40];
	char		date[11];

	memset(&error, 0, sizeof(error));
	text_parse((const char *) data, size, check_item, &size, &error);
	extract_parse_amount((const char *) data, size, 0, amount, sizeof(amount));
	extract_parse_amount((const char *) data, size, ',', amount, sizeof(amount));
	extract_parse_date((const char *) data, size, 0, date);
	extract_parse_date((const char *) data, size, 'M', date);
	return 0;
}
