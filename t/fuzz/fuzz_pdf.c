/*
 * fuzz_pdf.c
 *		libFuzzer target of recovery-parse's PDF reader (parse/pdf.c): any
 *		bytes through poppler, then lines rebuilt from the glyphs' positions
 *		and the table found under its header.
 */
#include <stdint.h>

#include "statement_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StatementSink sink;
	ExtractError error;
	void	   *document;

	memset(&error, 0, sizeof(error));
	if (!pdf_open((const char *) data, size, &document, &error))
		return 0;
	fuzz_sink_init(&sink, "pdf");
	fuzz_sink_done(&sink, pdf_parse(document, &sink, &error));
	return 0;
}
