/*
 * xls.c
 *		Excel 97-2003 workbooks (BIFF8) through FreeXL.  FreeXL opens a path,
 *		so the bytes go to an anonymous memory file first; the workbook is
 *		opened before the sandbox closes and read after it.  A number in an
 *		.xls is a binary double in the file itself: it is written with 15
 *		significant digits, as Excel shows it.
 */
#define _GNU_SOURCE
#include "parse.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <freexl.h>

bool
xls_open(const char *data, size_t len, const void **workbook, ExtractError *error)
{
	int			fd = memfd_create("statement.xls", 0);
	char		path[64];
	size_t		done = 0;
	int			status;

	if (fd < 0)
	{
		extract_fail(error, 0, "cannot hold the workbook in memory");
		return false;
	}
	while (done < len)
	{
		ssize_t		n = write(fd, data + done, len - done);

		if (n <= 0)
		{
			close(fd);
			extract_fail(error, 0, "cannot hold the workbook in memory");
			return false;
		}
		done += (size_t) n;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	status = freexl_open(path, workbook);
	close(fd);
	/* FreeXL 1.0.6 may fail with FREEXL_OK and no workbook */
	if (status != FREEXL_OK || *workbook == NULL)
	{
		extract_fail(error, 0, status != FREEXL_OK ? "not a readable Excel 97-2003 workbook (FreeXL error %d)"
					 : "not a readable Excel 97-2003 workbook (FreeXL refused it)", status);
		return false;
	}
	return true;
}

static void
cell_text(const FreeXL_CellValue *cell, char *buf, size_t size, const char **text)
{
	*text = buf;
	buf[0] = '\0';
	switch (cell->type)
	{
		case FREEXL_CELL_INT:
			snprintf(buf, size, "%d", cell->value.int_value);
			break;
		case FREEXL_CELL_DOUBLE:
			snprintf(buf, size, "%.15g", cell->value.double_value);
			break;
		case FREEXL_CELL_DATETIME:
			/* "2026-12-04 10:00:00": the day */
			snprintf(buf, size, "%.10s", cell->value.text_value ? cell->value.text_value : "");
			break;
		case FREEXL_CELL_TEXT:
		case FREEXL_CELL_SST_TEXT:
		case FREEXL_CELL_DATE:
		case FREEXL_CELL_TIME:
			*text = cell->value.text_value ? cell->value.text_value : "";
			break;
		default:
			break;
	}
}

bool
xls_parse(const void *workbook, StatementSink *sink, ExtractError *error)
{
	unsigned int sheets = 0,
				s;
	bool		found = false;

	sink_format(sink, "xls");
	if (freexl_get_info(workbook, FREEXL_BIFF_SHEET_COUNT, &sheets) != FREEXL_OK)
		sheets = 0;
	for (s = 0; s < sheets && !found; s++)
	{
		unsigned int rows,
					r;
		unsigned short columns,
					c;
		SheetReader *reader;

		if (freexl_select_active_worksheet(workbook, (unsigned short) s) != FREEXL_OK ||
			freexl_worksheet_dimensions(workbook, &rows, &columns) != FREEXL_OK)
			continue;
		reader = sheet_reader_new(sink);
		for (r = 0; r < rows; r++)
		{
			for (c = 0; c < columns && c < EXTRACT_MAX_COLUMNS; c++)
			{
				FreeXL_CellValue cell;
				char		buf[64];
				const char *text;

				if (freexl_get_cell_value(workbook, r, c, &cell) != FREEXL_OK)
					continue;
				cell_text(&cell, buf, sizeof(buf), &text);
				if (text[0])
					sheet_cell(reader, c, text, cell.type == FREEXL_CELL_INT ||
							   cell.type == FREEXL_CELL_DOUBLE);
			}
			sheet_row_end(reader);
		}
		found = sheet_reader_finish(reader, error);
		sheet_reader_free(reader);
	}
	freexl_close(workbook);
	if (!found)
		extract_fail(error, 0, "no sheet of the workbook (%u) has a header row with an amount and a reference or payer column",
					 sheets);
	return !error->failed;
}
