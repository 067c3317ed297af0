/*
 * xlsx.c
 *		Excel workbooks (Office Open XML): the zip's parts read as streams
 *		with libxml2's reader, sheets in the workbook's order, shared
 *		strings, and the styles that make a number a date.  A number is its
 *		literal text ("1234.5"), never a double; a date is counted from the
 *		workbook's epoch (1900, or 1904 when it says so).
 */
#include "parse.h"
#include "zip.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <libxml/xmlreader.h>

#define XLSX_MAX_SHEETS		256
#define XLSX_MAX_STRINGS	(4 * 1024 * 1024)
#define XLSX_MAX_STYLES		65536
#define XLSX_MAX_COLUMN		16384

typedef struct Xlsx
{
	const char *zip;
	size_t		len;
	ExtractError *error;
	bool		epoch_1904;
	char	   *sheet_ids[XLSX_MAX_SHEETS];		/* r:id, workbook order */
	int			n_sheets;
	char	   *sheet_paths[XLSX_MAX_SHEETS];
	char	  **strings;
	long		n_strings;
	long		max_strings;
	bool	   *date_styles;	/* cellXfs index: a date format */
	long		n_styles;
	int			date_formats[512];	/* numFmtId < 512: custom date formats */
} Xlsx;

typedef bool (*XmlVisit) (Xlsx *x, xmlTextReaderPtr reader, int type, void *arg);

typedef struct PartError
{
	ExtractError *error;
	const char *name;
} PartError;

static void
part_error(void *arg, const char *msg, xmlParserSeverities severity,
		   xmlTextReaderLocatorPtr locator)
{
	PartError  *part = arg;
	char		message[160];
	size_t		n;

	if (severity != XML_PARSER_SEVERITY_ERROR)
		return;
	snprintf(message, sizeof(message), "%s", msg);
	for (n = strlen(message); n > 0 && isspace((unsigned char) message[n - 1]); n--)
		message[n - 1] = '\0';
	extract_fail(part->error, 0, "the workbook's %s is not readable XML: %s", part->name, message);
}

/* reads one part of the workbook through visit; absent parts are empty */
static bool
read_part(Xlsx *x, const char *name, bool required, XmlVisit visit, void *arg)
{
	ZipMember	member;
	xmlTextReaderPtr reader;
	int			status;
	PartError	part = {x->error, name};

	if (!zip_open_member(x->zip, x->len, name, &member, x->error))
	{
		if (!x->error->failed && required)
			extract_fail(x->error, 0, "the workbook has no %s: not an xlsx file", name);
		return !x->error->failed;
	}
	reader = xmlReaderForIO(zip_read, NULL, &member, NULL, NULL,
							XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_COMPACT);
	if (reader == NULL)
	{
		extract_fail(x->error, 0, "cannot start the XML reader");
		return false;
	}
	xmlTextReaderSetErrorHandler(reader, part_error, &part);
	while (!x->error->failed && (status = xmlTextReaderRead(reader)) == 1)
	{
		int			type = xmlTextReaderNodeType(reader);

		if (type == XML_READER_TYPE_DOCUMENT_TYPE || type == XML_READER_TYPE_ENTITY_REFERENCE)
			extract_fail(x->error, 0, "the workbook's %s declares a DTD or an entity: refused", name);
		else if (!visit(x, reader, type, arg))
			break;
	}
	if (!x->error->failed && status < 0)
	{
		const xmlError *last = xmlGetLastError();
		char		message[160];
		size_t		n;

		snprintf(message, sizeof(message), "%s", last && last->message ? last->message : "not well-formed");
		for (n = strlen(message); n > 0 && isspace((unsigned char) message[n - 1]); n--)
			message[n - 1] = '\0';
		extract_fail(x->error, 0, "the workbook's %s is not readable XML: %s", name, message);
	}
	xmlFreeTextReader(reader);
	zip_close_member(&member);
	return !x->error->failed;
}

static bool
named(xmlTextReaderPtr reader, const char *name)
{
	return strcmp((const char *) xmlTextReaderConstLocalName(reader), name) == 0;
}

static char *
attribute(xmlTextReaderPtr reader, const char *name)
{
	char	   *value = NULL;

	if (xmlTextReaderMoveToFirstAttribute(reader) == 1)
	{
		do
		{
			if (named(reader, name))
			{
				const char *v = (const char *) xmlTextReaderConstValue(reader);
				size_t		n = strlen(v);

				value = extract_realloc(NULL, n + 1);
				memcpy(value, v, n + 1);
				break;
			}
		} while (xmlTextReaderMoveToNextAttribute(reader) == 1);
		xmlTextReaderMoveToElement(reader);
	}
	return value;
}

static bool
visit_workbook(Xlsx *x, xmlTextReaderPtr reader, int type, void *arg)
{
	if (type != XML_READER_TYPE_ELEMENT)
		return true;
	if (named(reader, "workbookPr"))
	{
		char	   *v = attribute(reader, "date1904");

		x->epoch_1904 = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
		extract_free(v);
	}
	else if (named(reader, "sheet") && x->n_sheets < XLSX_MAX_SHEETS)
	{
		char	   *id = attribute(reader, "id");

		if (id)
			x->sheet_ids[x->n_sheets++] = id;
	}
	return true;
}

static bool
visit_relationships(Xlsx *x, xmlTextReaderPtr reader, int type, void *arg)
{
	char	   *id,
			   *target;
	int			i;

	if (type != XML_READER_TYPE_ELEMENT || !named(reader, "Relationship"))
		return true;
	id = attribute(reader, "Id");
	target = attribute(reader, "Target");
	for (i = 0; id && target && i < x->n_sheets; i++)
		if (strcmp(x->sheet_ids[i], id) == 0 && x->sheet_paths[i] == NULL)
		{
			size_t		n = strlen(target) + 4;

			x->sheet_paths[i] = extract_realloc(NULL, n);
			/* "/xl/worksheets/sheet1.xml" or "worksheets/sheet1.xml" */
			snprintf(x->sheet_paths[i], n, "%s%s", target[0] == '/' ? "" : "xl/",
					 target + (target[0] == '/'));
		}
	extract_free(id);
	extract_free(target);
	return true;
}

/* text of <t> inside <si>, skipping phonetic runs (rPh) */
typedef struct StringsState
{
	ExtractBuf	text;
	bool		in_t;
	bool		in_phonetic;
} StringsState;

static bool
visit_strings(Xlsx *x, xmlTextReaderPtr reader, int type, void *arg)
{
	StringsState *s = arg;

	if (type == XML_READER_TYPE_ELEMENT)
	{
		if (named(reader, "si"))
			s->text.len = 0, s->text.data[0] = '\0';
		else if (named(reader, "rPh"))
			s->in_phonetic = !xmlTextReaderIsEmptyElement(reader);
		else if (named(reader, "t"))
			s->in_t = !xmlTextReaderIsEmptyElement(reader);
		if (named(reader, "si") && xmlTextReaderIsEmptyElement(reader))
			type = XML_READER_TYPE_END_ELEMENT;
	}
	if (type == XML_READER_TYPE_END_ELEMENT)
	{
		if (named(reader, "t"))
			s->in_t = false;
		else if (named(reader, "rPh"))
			s->in_phonetic = false;
		else if (named(reader, "si"))
		{
			if (x->n_strings >= XLSX_MAX_STRINGS)
			{
				extract_fail(x->error, 0, "the workbook has more than %d shared strings", XLSX_MAX_STRINGS);
				return false;
			}
			if (x->n_strings == x->max_strings)
			{
				x->max_strings = x->max_strings ? x->max_strings * 2 : 1024;
				x->strings = extract_realloc(x->strings, sizeof(char *) * x->max_strings);
			}
			x->strings[x->n_strings] = extract_realloc(NULL, s->text.len + 1);
			memcpy(x->strings[x->n_strings++], s->text.data, s->text.len + 1);
		}
	}
	else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
			 s->in_t && !s->in_phonetic)
		xbuf_appends(&s->text, (const char *) xmlTextReaderConstValue(reader));
	return true;
}

/* a custom number format that shows a date: d, m or y outside quotes */
static bool
date_format_code(const char *code)
{
	bool		quoted = false;
	const char *p;

	for (p = code; *p; p++)
	{
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '\\' && p[1])
			p++;
		else if (*p == '[')
			p += strcspn(p, "]") - (p[strcspn(p, "]")] ? 0 : 1);
		else if (!quoted && strchr("dDyY", *p))
			return true;
	}
	return false;
}

typedef struct StylesState
{
	bool		in_cell_xfs;
} StylesState;

static bool
visit_styles(Xlsx *x, xmlTextReaderPtr reader, int type, void *arg)
{
	StylesState *s = arg;

	if (type == XML_READER_TYPE_END_ELEMENT && named(reader, "cellXfs"))
		s->in_cell_xfs = false;
	if (type != XML_READER_TYPE_ELEMENT)
		return true;
	if (named(reader, "numFmt"))
	{
		char	   *id = attribute(reader, "numFmtId");
		char	   *code = attribute(reader, "formatCode");

		if (id && code && atoi(id) >= 0 && atoi(id) < 512)
			x->date_formats[atoi(id)] = date_format_code(code);
		extract_free(id);
		extract_free(code);
	}
	else if (named(reader, "cellXfs"))
		s->in_cell_xfs = !xmlTextReaderIsEmptyElement(reader);
	else if (named(reader, "xf") && s->in_cell_xfs && x->n_styles < XLSX_MAX_STYLES)
	{
		char	   *v = attribute(reader, "numFmtId");
		int			id = v ? atoi(v) : 0;

		x->date_styles = extract_realloc(x->date_styles, sizeof(bool) * (x->n_styles + 1));
		/* the built-in date formats are 14 to 22 and 45 to 47 */
		x->date_styles[x->n_styles++] = (id >= 14 && id <= 22) || (id >= 45 && id <= 47) ||
			(id >= 0 && id < 512 && x->date_formats[id]);
		extract_free(v);
	}
	return true;
}

typedef struct SheetState
{
	SheetReader *rows;
	int			column;
	char		type[12];
	long		style;
	ExtractBuf	value;
	bool		in_value;
} SheetState;

/* "BC12" into 54 (0-based) */
static int
column_of(const char *reference)
{
	int			column = 0;
	const char *p;

	for (p = reference; isalpha((unsigned char) *p); p++)
	{
		column = column * 26 + (toupper((unsigned char) *p) - 'A' + 1);
		if (column > XLSX_MAX_COLUMN)
			return XLSX_MAX_COLUMN;	/* past the last column: skipped */
	}
	return column - 1;
}

static void
cell_end(Xlsx *x, SheetState *s)
{
	const char *text = s->value.data;
	char		date[11];
	bool		number = false;

	if (strcmp(s->type, "s") == 0)
	{
		char	   *end;
		long		i = strtol(text, &end, 10);

		text = *end == '\0' && i >= 0 && i < x->n_strings ? x->strings[i] : "";
	}
	else if (strcmp(s->type, "e") == 0)
		text = "";
	else if (strcmp(s->type, "b") == 0)
		text = strcmp(text, "1") == 0 ? "TRUE" : "FALSE";
	else if ((s->type[0] == '\0' || strcmp(s->type, "n") == 0) &&
			 s->style >= 0 && s->style < x->n_styles && x->date_styles[s->style] &&
			 sheet_serial_date(text, x->epoch_1904, date))
		text = date;
	else
		number = s->type[0] == '\0' || strcmp(s->type, "n") == 0;
	sheet_cell(s->rows, s->column, text, number);
}

static bool
visit_sheet(Xlsx *x, xmlTextReaderPtr reader, int type, void *arg)
{
	SheetState *s = arg;

	if (type == XML_READER_TYPE_ELEMENT)
	{
		if (named(reader, "c"))
		{
			char	   *r = attribute(reader, "r");
			char	   *t = attribute(reader, "t");
			char	   *style = attribute(reader, "s");

			s->column = r ? column_of(r) : s->column + 1;
			snprintf(s->type, sizeof(s->type), "%s", t ? t : "");
			s->style = style ? atol(style) : 0;
			s->value.len = 0;
			s->value.data[0] = '\0';
			extract_free(r);
			extract_free(t);
			extract_free(style);
			if (s->column < 0 || s->column >= XLSX_MAX_COLUMN)
				s->column = XLSX_MAX_COLUMN;
		}
		else if (named(reader, "v") || named(reader, "t"))
			s->in_value = !xmlTextReaderIsEmptyElement(reader);
		else if (named(reader, "row"))
		{
			s->column = -1;
			if (xmlTextReaderIsEmptyElement(reader))
				sheet_row_end(s->rows);
		}
	}
	else if (type == XML_READER_TYPE_END_ELEMENT)
	{
		if (named(reader, "v") || named(reader, "t"))
			s->in_value = false;
		else if (named(reader, "c") && s->column < XLSX_MAX_COLUMN)
			cell_end(x, s);
		else if (named(reader, "row"))
			sheet_row_end(s->rows);
	}
	else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
			 s->in_value)
		xbuf_appends(&s->value, (const char *) xmlTextReaderConstValue(reader));
	return true;
}

bool
xlsx_parse(const char *data, size_t len, StatementSink *sink, ExtractError *error)
{
	Xlsx		x;
	StringsState strings;
	StylesState styles = {false};
	int			i;
	bool		found = false;

	memset(&x, 0, sizeof(x));
	x.zip = data;
	x.len = len;
	x.error = error;
	xbuf_init(&strings.text);
	strings.in_t = strings.in_phonetic = false;
	if (read_part(&x, "xl/workbook.xml", true, visit_workbook, NULL) &&
		read_part(&x, "xl/_rels/workbook.xml.rels", true, visit_relationships, NULL) &&
		read_part(&x, "xl/sharedStrings.xml", false, visit_strings, &strings) &&
		read_part(&x, "xl/styles.xml", false, visit_styles, &styles))
	{
		for (i = 0; i < x.n_sheets && !found && !error->failed; i++)
		{
			SheetState	sheet;

			if (x.sheet_paths[i] == NULL)
				continue;
			memset(&sheet, 0, sizeof(sheet));
			sheet.rows = sheet_reader_new(sink);
			xbuf_init(&sheet.value);
			if (read_part(&x, x.sheet_paths[i], false, visit_sheet, &sheet))
				found = sheet_reader_finish(sheet.rows, NULL);
			sheet_reader_free(sheet.rows);
			xbuf_free(&sheet.value);
		}
		if (!found && !error->failed)
			extract_fail(error, 0, "no sheet of the workbook (%d) has a header row with an amount and a reference or payer column",
						 x.n_sheets);
	}
	sink_format(sink, x.epoch_1904 ? "xlsx (1904 dates)" : "xlsx");
	for (i = 0; i < x.n_sheets; i++)
		extract_free(x.sheet_ids[i]), extract_free(x.sheet_paths[i]);
	for (i = 0; i < x.n_strings; i++)
		extract_free(x.strings[i]);
	extract_free(x.strings);
	extract_free(x.date_styles);
	xbuf_free(&strings.text);
	return !error->failed;
}
