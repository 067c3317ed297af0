/*
 * extract_email.c
 *		Remittance emails, parsed with GMime rather than by hand: RFC 5322
 *		headers and RFC 2047 encoded words, nested multipart, quoted-
 *		printable and base64, charsets converted to UTF-8.  The result is
 *		JSON: subject, sender, date, the text (from text/plain, else from
 *		text/html with the tags stripped) and the attachments with their
 *		content in base64.
 *
 * GMime's parser recurses once per nested part, so the raw message is
 * checked for how many multipart containers it declares before GMime sees
 * it: a message built to nest ten thousand parts deep is refused, not
 * allowed to exhaust the backend's stack.
 */
#include "extract.h"

#include <stdio.h>
#include <string.h>

#include <gmime/gmime.h>

#define MAX_CONTAINERS 100

typedef struct EmailWalk
{
	ExtractBuf *out;
	ExtractBuf	plain;
	ExtractBuf	html;
	int			attachments;
	int			parts;
	ExtractError *error;
} EmailWalk;

static void
ensure_gmime(void)
{
	static bool initialised = false;

	if (!initialised)
	{
		g_mime_init();
		initialised = true;
	}
}

/* case-insensitive count of a needle; stops counting at limit */
static int
count_occurrences(const char *input, size_t len, const char *needle, int limit)
{
	size_t		n = strlen(needle),
				i;
	int			count = 0;

	for (i = 0; i + n <= len && count <= limit; i++)
	{
		size_t		k;

		for (k = 0; k < n; k++)
			if ((input[i + k] | 0x20) != needle[k])
				break;
		if (k == n)
			count++;
	}
	return count;
}

static const char base64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
append_base64(ExtractBuf *buf, const unsigned char *data, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i += 3)
	{
		unsigned int v = data[i] << 16;
		char		quad[4];

		if (i + 1 < len)
			v |= data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		quad[0] = base64_alphabet[(v >> 18) & 63];
		quad[1] = base64_alphabet[(v >> 12) & 63];
		quad[2] = i + 1 < len ? base64_alphabet[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < len ? base64_alphabet[v & 63] : '=';
		xbuf_append(buf, quad, 4);
	}
}

/* Text of an HTML body: tags become spaces, script and style vanish. */
static void
strip_html(const char *html, size_t len, ExtractBuf *out)
{
	static const struct
	{
		const char *entity;
		const char *text;
	}			entities[] = {
		{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
		{"&#39;", "'"}, {"&nbsp;", " "}, {"&euro;", "\xE2\x82\xAC"}, {"&pound;", "\xC2\xA3"},
	};
	size_t		i = 0;

	while (i < len)
	{
		if (html[i] == '<')
		{
			const char *skip_to = NULL;
			const char *close;

			if (len - i > 7 && g_ascii_strncasecmp(html + i, "<script", 7) == 0)
				skip_to = "</script";
			else if (len - i > 6 && g_ascii_strncasecmp(html + i, "<style", 6) == 0)
				skip_to = "</style";
			if (skip_to)
			{
				size_t		k = i;

				while (k < len && !(len - k >= strlen(skip_to) &&
									g_ascii_strncasecmp(html + k, skip_to, strlen(skip_to)) == 0))
					k++;
				i = k;
			}
			close = memchr(html + i, '>', len - i);
			i = close ? (size_t) (close - html) + 1 : len;
			xbuf_appendc(out, ' ');
			continue;
		}
		if (html[i] == '&')
		{
			size_t		e;
			bool		found = false;

			for (e = 0; e < sizeof(entities) / sizeof(entities[0]); e++)
			{
				size_t		n = strlen(entities[e].entity);

				if (len - i >= n && g_ascii_strncasecmp(html + i, entities[e].entity, n) == 0)
				{
					xbuf_appends(out, entities[e].text);
					i += n;
					found = true;
					break;
				}
			}
			if (found)
				continue;
		}
		xbuf_appendc(out, html[i]);
		i++;
	}
}

static void
part_bytes(GMimePart *part, GByteArray **bytes)
{
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeStream *stream = g_mime_stream_mem_new();

	*bytes = NULL;
	if (content)
	{
		g_mime_data_wrapper_write_to_stream(content, stream);
		*bytes = g_byte_array_new();
		g_byte_array_append(*bytes, g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream))->data,
							g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream))->len);
	}
	g_object_unref(stream);
}

static void
visit_part(GMimeObject *parent, GMimeObject *object, gpointer data)
{
	EmailWalk  *walk = data;
	GMimePart  *part;
	GMimeContentType *type;
	const char *filename;
	const char *disposition;
	char	   *mime_type;

	walk->parts++;
	if (!GMIME_IS_PART(object))
		return;
	part = GMIME_PART(object);
	type = g_mime_object_get_content_type(object);
	mime_type = g_mime_content_type_get_mime_type(type);
	filename = g_mime_part_get_filename(part);
	disposition = g_mime_object_get_disposition(object);

	if (filename == NULL && (disposition == NULL || g_ascii_strcasecmp(disposition, "attachment") != 0) &&
		GMIME_IS_TEXT_PART(object) &&
		(g_mime_content_type_is_type(type, "text", "plain") ||
		 g_mime_content_type_is_type(type, "text", "html")))
	{
		char	   *text = g_mime_text_part_get_text(GMIME_TEXT_PART(object));

		if (text)
		{
			size_t		n = strlen(text);
			ExtractBuf *into = g_mime_content_type_is_type(type, "text", "plain")
				? &walk->plain : &walk->html;

			if (into->len + n > EXTRACT_MAX_TEXT)
				n = into->len < EXTRACT_MAX_TEXT ? EXTRACT_MAX_TEXT - into->len : 0;
			/* charsets GMime cannot convert leave bytes that are not UTF-8 */
			if (extract_valid_utf8(text, n))
			{
				if (into->len)
					xbuf_appendc(into, '\n');
				xbuf_append(into, text, n);
			}
			g_free(text);
		}
	}
	else if (walk->attachments < EXTRACT_MAX_ATTACHMENTS)
	{
		GByteArray *bytes;

		part_bytes(part, &bytes);
		if (bytes)
		{
			const char *name = filename ? filename : "attachment";

			if (walk->attachments++)
				xbuf_appendc(walk->out, ',');
			xbuf_appends(walk->out, "{\"filename\":");
			xbuf_json_string(walk->out, name, extract_valid_utf8(name, strlen(name)) ? strlen(name) : 0);
			xbuf_appends(walk->out, ",\"content_type\":");
			xbuf_json_string(walk->out, mime_type, strlen(mime_type));
			xbuf_appends(walk->out, ",\"size\":");
			{
				char		size[32];

				snprintf(size, sizeof(size), "%u", bytes->len);
				xbuf_appends(walk->out, size);
			}
			xbuf_appends(walk->out, ",\"content_base64\":\"");
			append_base64(walk->out, bytes->data, bytes->len);
			xbuf_appends(walk->out, "\"}");
			g_byte_array_free(bytes, TRUE);
		}
	}
	g_free(mime_type);
}

static void
append_field(ExtractBuf *out, const char *name, const char *value)
{
	xbuf_appendc(out, '"');
	xbuf_appends(out, name);
	xbuf_appends(out, "\":");
	if (value && extract_valid_utf8(value, strlen(value)))
		xbuf_json_string(out, value, strlen(value));
	else
		xbuf_appends(out, "null");
	xbuf_appendc(out, ',');
}

bool
email_parse(const char *input, size_t len, ExtractBuf *out, ExtractError *error)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *message;
	EmailWalk	walk;
	char	   *from = NULL;
	char	   *date = NULL;
	GDateTime  *when;

	if (len > EXTRACT_MAX_EMAIL)
	{
		extract_fail(error, 0, "the email is larger than %d MiB", EXTRACT_MAX_EMAIL >> 20);
		return false;
	}
	if (count_occurrences(input, len, "multipart/", MAX_CONTAINERS) +
		count_occurrences(input, len, "message/rfc822", MAX_CONTAINERS) > MAX_CONTAINERS)
	{
		extract_fail(error, 0, "the email declares more than %d nested containers", MAX_CONTAINERS);
		return false;
	}
	ensure_gmime();
	stream = g_mime_stream_mem_new_with_buffer(input, len);
	parser = g_mime_parser_new_with_stream(stream);
	message = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (message == NULL || g_mime_message_get_mime_part(message) == NULL)
	{
		if (message)
			g_object_unref(message);
		extract_fail(error, 0, "this is not an email: no headers and body could be read");
		return false;
	}

	memset(&walk, 0, sizeof(walk));
	walk.out = out;
	walk.error = error;
	xbuf_init(&walk.plain);
	xbuf_init(&walk.html);

	xbuf_appendc(out, '{');
	append_field(out, "subject", g_mime_message_get_subject(message));
	if (g_mime_message_get_from(message))
		from = internet_address_list_to_string(g_mime_message_get_from(message), NULL, FALSE);
	append_field(out, "from", from);
	when = g_mime_message_get_date(message);
	if (when)
		date = g_date_time_format_iso8601(when);
	append_field(out, "date", date);
	append_field(out, "message_id", g_mime_message_get_message_id(message));
	xbuf_appends(out, "\"attachments\":[");
	g_mime_message_foreach(message, visit_part, &walk);
	xbuf_appends(out, "],");
	if (walk.plain.len)
	{
		append_field(out, "text_source", "text/plain");
		xbuf_appends(out, "\"text\":");
		xbuf_json_string(out, walk.plain.data, walk.plain.len);
	}
	else if (walk.html.len)
	{
		ExtractBuf	stripped;

		xbuf_init(&stripped);
		strip_html(walk.html.data, walk.html.len, &stripped);
		append_field(out, "text_source", "text/html");
		xbuf_appends(out, "\"text\":");
		xbuf_json_string(out, stripped.data, extract_valid_utf8(stripped.data, stripped.len) ? stripped.len : 0);
		xbuf_free(&stripped);
	}
	else
		xbuf_appends(out, "\"text_source\":null,\"text\":\"\"");
	{
		char		parts[48];

		snprintf(parts, sizeof(parts), ",\"parts\":%d}", walk.parts);
		xbuf_appends(out, parts);
	}
	xbuf_free(&walk.plain);
	xbuf_free(&walk.html);
	g_free(from);
	g_free(date);
	g_object_unref(message);
	return true;
}
