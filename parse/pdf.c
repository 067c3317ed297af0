/*
 * pdf.c
 *		PDF statements and remittance advices through poppler: the text of
 *		each page with the position of every character, rebuilt into lines
 *		by position.  A table of bookings (a line the CSV import would take
 *		for a header, then lines whose cells sit under its columns) comes
 *		out as CSV; anything else comes out as text, which the extension
 *		reads as it reads an email or an SMS.  A PDF with no text layer (a
 *		scan) is an error that says a person must read it.
 */
#include "parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poppler.h>

#define PDF_MAX_PAGES	2000
#define PDF_MAX_CHARS	(8 * 1024 * 1024)
#define PDF_MAX_CELLS	64

typedef struct Glyph
{
	double		x0,
				x1,
				y;				/* middle of the glyph */
	double		height;
	int			page;
	const char *utf8;			/* into the page's text */
	int			bytes;
} Glyph;

typedef struct Cell
{
	double		x0,
				x1;
	ExtractBuf	text;
} Cell;

typedef struct PdfLine
{
	Cell		cells[PDF_MAX_CELLS];
	int			n;
} PdfLine;

bool
pdf_open(const char *data, size_t len, void **document, ExtractError *error)
{
	GError	   *gerror = NULL;
	GBytes	   *bytes = g_bytes_new_static(data, len);
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerror);

	g_bytes_unref(bytes);
	if (doc == NULL)
	{
		extract_fail(error, 0, "not a readable PDF: %s", gerror ? gerror->message : "unknown error");
		if (gerror)
			g_error_free(gerror);
		return false;
	}
	*document = doc;
	return true;
}

/* pages, then top to bottom: lines are runs of this order */
static int
by_page_and_height(const void *a, const void *b)
{
	const Glyph *g = a,
			   *h = b;

	if (g->page != h->page)
		return g->page - h->page;
	if (g->y != h->y)
		return g->y < h->y ? -1 : 1;
	return g->x0 < h->x0 ? -1 : g->x0 > h->x0;
}

/* within a line, left to right */
static int
by_x(const void *a, const void *b)
{
	const Glyph *g = a,
			   *h = b;

	return g->x0 < h->x0 ? -1 : g->x0 > h->x0;
}

static void
line_reset(PdfLine *line)
{
	int			i;

	for (i = 0; i < line->n; i++)
		line->cells[i].text.len = 0, line->cells[i].text.data[0] = '\0';
	line->n = 0;
}

/*
 * Glyphs of one line into cells: a gap of a glyph's height parts two cells
 * (columns); with words, every space or gap parts them (a table's row is
 * read word by word, each word under its column).
 */
static void
line_build(PdfLine *line, const Glyph *g, int n, bool words)
{
	int			i;
	double		last_x1 = 0;
	bool		space = false;

	line_reset(line);
	for (i = 0; i < n; i++)
	{
		double		gap = g[i].x0 - last_x1;
		Cell	   *cell;

		if (g[i].bytes == 1 && (g[i].utf8[0] == ' ' || g[i].utf8[0] == '\t'))
		{
			space = true;
			continue;
		}
		if (line->n == 0 || (line->n < PDF_MAX_CELLS &&
							 (gap > 1.0 * g[i].height || (words && (space || gap > 0.15 * g[i].height)))))
		{
			cell = &line->cells[line->n++];
			cell->x0 = g[i].x0;
		}
		else
		{
			cell = &line->cells[line->n - 1];
			if (space || gap > 0.25 * g[i].height)
				xbuf_appendc(&cell->text, ' ');
		}
		space = false;
		xbuf_append(&cell->text, g[i].utf8, (size_t) g[i].bytes);
		cell->x1 = g[i].x1;
		last_x1 = g[i].x1;
	}
}

static void
csv_field(ExtractBuf *row, const char *text, bool first)
{
	if (!first)
		xbuf_appendc(row, ',');
	csv_quote(row, text);
}

typedef struct Table
{
	bool		found;
	PdfLine		header;
	char	   *header_row;		/* as CSV: a page repeats it */
	ExtractBuf	csv;
	long		rows;
} Table;

/* is the line a header the CSV import would take? */
static bool
table_header(Table *table, const PdfLine *line)
{
	ExtractBuf	row;
	long		amount_column;
	int			i;
	bool		ok;

	if (line->n < 2)
		return false;
	xbuf_init(&row);
	for (i = 0; i < line->n; i++)
		csv_field(&row, line->cells[i].text.data, i == 0);
	xbuf_appendc(&row, '\n');
	ok = sheet_header_row(row.data, row.len, &amount_column);
	if (ok)
	{
		xbuf_append(&table->csv, row.data, row.len);
		table->header_row = extract_realloc(NULL, row.len + 1);
		memcpy(table->header_row, row.data, row.len + 1);
		table->header.n = line->n;
		for (i = 0; i < line->n; i++)
			table->header.cells[i].x0 = line->cells[i].x0,
				table->header.cells[i].x1 = line->cells[i].x1;
	}
	xbuf_free(&row);
	return ok;
}

/*
 * A line under the header, word by word: a word belongs to the last column
 * whose heading starts at or before it (text is left-aligned under its
 * heading), unless it ends where a heading ends (a right-aligned amount).
 * Words of one column are joined.  A line of fewer than two words is not a
 * row.
 */
static void
table_row(Table *table, const PdfLine *line)
{
	ExtractBuf	values[PDF_MAX_CELLS];
	int			i,
				c,
				filled;
	ExtractBuf	row;

	if (line->n < 2)
		return;
	for (c = 0; c < table->header.n; c++)
		xbuf_init(&values[c]);
	for (i = 0; i < line->n; i++)
	{
		const Cell *word = &line->cells[i];
		double		tolerance = 2.0;
		int			best = -1;

		for (c = 0; c < table->header.n; c++)
			if (table->header.cells[c].x0 <= word->x0 + tolerance)
				best = c;
		for (c = 0; c < table->header.n; c++)
			if (fabs(table->header.cells[c].x1 - word->x1) <= tolerance)
				best = c;
		if (best < 0)
			continue;
		if (values[best].len)
			xbuf_appendc(&values[best], ' ');
		xbuf_appends(&values[best], line->cells[i].text.data);
	}
	xbuf_init(&row);
	for (c = 0, filled = 0; c < table->header.n; c++)
	{
		filled += values[c].len > 0;
		csv_field(&row, values[c].data, c == 0);
		xbuf_free(&values[c]);
	}
	xbuf_appendc(&row, '\n');
	/* a page's title or footer fills one column; its repeated header, all */
	if (filled >= 2 && strcmp(row.data, table->header_row) != 0)
	{
		xbuf_append(&table->csv, row.data, row.len);
		table->rows++;
	}
	xbuf_free(&row);
}

bool
pdf_parse(void *document, StatementSink *sink, ExtractError *error)
{
	PopplerDocument *doc = document;
	int			pages = poppler_document_get_n_pages(doc);
	int			p,
				i,
				start;
	Glyph	   *glyphs = NULL;
	long		n = 0,
				max = 0;
	char	  **texts;
	ExtractBuf	text;
	PdfLine    *line = extract_realloc(NULL, sizeof(PdfLine));
	Table		table;

	if (pages > PDF_MAX_PAGES)
	{
		extract_fail(error, 0, "the PDF has %d pages: at most %d are read", pages, PDF_MAX_PAGES);
		g_object_unref(doc);
		return false;
	}
	texts = extract_realloc(NULL, sizeof(char *) * (pages + 1));
	memset(texts, 0, sizeof(char *) * (pages + 1));
	for (p = 0; p < pages && !error->failed; p++)
	{
		PopplerPage *page = poppler_document_get_page(doc, p);
		PopplerRectangle *rects = NULL;
		guint		n_rects = 0;
		const char *c;
		guint		r = 0;

		texts[p] = NULL;
		if (page == NULL)
			continue;
		texts[p] = poppler_page_get_text(page);
		if (texts[p] && poppler_page_get_text_layout(page, &rects, &n_rects))
		{
			for (c = texts[p]; *c && r < n_rects; c = g_utf8_next_char(c), r++)
			{
				if (*c == '\n')
					continue;
				if (n == max)
				{
					max = max ? max * 2 : 4096;
					if (max > PDF_MAX_CHARS)
					{
						extract_fail(error, 0, "the PDF has more than %d characters of text", PDF_MAX_CHARS);
						break;
					}
					glyphs = extract_realloc(glyphs, sizeof(Glyph) * max);
				}
				glyphs[n].x0 = rects[r].x1;
				glyphs[n].x1 = rects[r].x2;
				glyphs[n].y = (rects[r].y1 + rects[r].y2) / 2;
				glyphs[n].height = fmax(rects[r].y2 - rects[r].y1, 1.0);
				glyphs[n].page = p;
				glyphs[n].utf8 = c;
				glyphs[n].bytes = (int) (g_utf8_next_char(c) - c);
				n++;
			}
			g_free(rects);
		}
		g_object_unref(page);
	}

	memset(line, 0, sizeof(*line));
	for (i = 0; i < PDF_MAX_CELLS; i++)
		xbuf_init(&line->cells[i].text);
	memset(&table, 0, sizeof(table));
	xbuf_init(&table.csv);
	xbuf_init(&text);
	if (!error->failed && n == 0)
		extract_fail(error, 0, "no text: needs a person (the PDF has no text layer, a scan perhaps; %d page%s)",
					 pages, pages == 1 ? "" : "s");
	if (!error->failed)
		qsort(glyphs, (size_t) n, sizeof(Glyph), by_page_and_height);
	for (start = 0; !error->failed && start < n;)
	{
		int			end = start + 1;

		/* one line: middles within half a glyph of the line's first */
		while (end < n && glyphs[end].page == glyphs[start].page &&
			   fabs(glyphs[end].y - glyphs[start].y) <= 0.5 * fmax(glyphs[start].height, glyphs[end].height))
			end++;
		qsort(glyphs + start, (size_t) (end - start), sizeof(Glyph), by_x);
		line_build(line, glyphs + start, end - start, false);
		for (i = 0; i < line->n; i++)
		{
			xbuf_appends(&text, line->cells[i].text.data);
			xbuf_appends(&text, i + 1 < line->n ? "   " : "\n");
		}
		if (!table.found)
			table.found = table_header(&table, line);
		else
		{
			line_build(line, glyphs + start, end - start, true);
			table_row(&table, line);
		}
		start = end;
	}
	if (!error->failed && table.found && table.rows > 0)
	{
		sink_format(sink, "pdf (table)");
		sink->entries = table.rows;
		sink_raw(sink, table.csv.data, table.csv.len);
	}
	else if (!error->failed)
	{
		sink_format(sink, "pdf (text)");
		sink->text = true;
		sink_raw(sink, text.data, text.len);
	}
	for (i = 0; i < PDF_MAX_CELLS; i++)
		xbuf_free(&line->cells[i].text);
	extract_free(line);
	xbuf_free(&table.csv);
	extract_free(table.header_row);
	xbuf_free(&text);
	for (p = 0; p < pages; p++)
		g_free(texts[p]);
	extract_free(texts);
	extract_free(glyphs);
	g_object_unref(doc);
	return !error->failed;
}
