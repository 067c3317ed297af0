/*
 * zip.c
 *		The central directory of a zip archive, and its members inflated as
 *		streams (zip.h).
 */
#include "zip.h"

#include <stdint.h>
#include <string.h>

static unsigned
le16(const unsigned char *p)
{
	return (unsigned) p[0] | (unsigned) p[1] << 8;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

bool
zip_open_member(const char *zip, size_t len, const char *name, ZipMember *member,
				ExtractError *error)
{
	const unsigned char *z = (const unsigned char *) zip;
	size_t		at,
				dir,
				dir_end,
				count,
				i;
	size_t		name_len = strlen(name);

	memset(member, 0, sizeof(*member));
	member->error = error;
	member->name = name;
	if (len < 22)
		goto malformed;
	/* the end of central directory record, within the last 64 kB */
	for (at = len - 22;; at--)
	{
		if (le32(z + at) == 0x06054b50)
			break;
		if (at == 0 || len - at > 65557)
			goto malformed;
	}
	count = le16(z + at + 10);
	dir = le32(z + at + 16);
	dir_end = dir + le32(z + at + 12);
	if (dir_end > at || dir > dir_end)
		goto malformed;
	for (i = 0, at = dir; i < count; i++)
	{
		size_t		n,
					extra,
					comment,
					local,
					data;

		if (at + 46 > dir_end || le32(z + at) != 0x02014b50)
			goto malformed;
		n = le16(z + at + 28);
		extra = le16(z + at + 30);
		comment = le16(z + at + 32);
		if (at + 46 + n > dir_end)
			goto malformed;
		if (n == name_len && memcmp(z + at + 46, name, n) == 0)
		{
			member->method = (int) le16(z + at + 10);
			member->size = le32(z + at + 20);
			/* what it says it inflates to; a liar meets the bound in zip_read */
			if (le32(z + at + 24) > ZIP_MAX_MEMBER)
			{
				extract_fail(error, 0, "the workbook's %s inflates to %u MiB, more than %llu: refused as a zip bomb",
							 name, le32(z + at + 24) >> 20, ZIP_MAX_MEMBER >> 20);
				return false;
			}
			local = le32(z + at + 42);
			if (local + 30 > len || le32(z + local) != 0x04034b50)
				goto malformed;
			data = local + 30 + le16(z + local + 26) + le16(z + local + 28);
			if (data > len || member->size > len - data)
				goto malformed;
			if (member->method != 0 && member->method != 8)
			{
				extract_fail(error, 0, "the workbook's %s is compressed with method %d: only stored and deflated are read",
							 name, member->method);
				return false;
			}
			member->data = z + data;
			return true;
		}
		at += 46 + n + extra + comment;
	}
	return false;

malformed:
	extract_fail(error, 0, "the file is not a readable zip archive (an xlsx workbook is one)");
	return false;
}

int
zip_read(void *arg, char *buffer, int len)
{
	ZipMember  *m = arg;
	int			status;
	size_t		n;

	if (m->method == 0)
	{
		n = m->size < (size_t) len ? m->size : (size_t) len;
		memcpy(buffer, m->data, n);
		m->data += n;
		m->size -= n;
		return (int) n;
	}
	if (!m->started)
	{
		if (inflateInit2(&m->z, -MAX_WBITS) != Z_OK)
			return -1;
		m->z.next_in = (unsigned char *) m->data;
		m->z.avail_in = (uInt) m->size;
		m->started = true;
	}
	m->z.next_out = (unsigned char *) buffer;
	m->z.avail_out = (uInt) len;
	status = inflate(&m->z, Z_NO_FLUSH);
	if (status != Z_OK && status != Z_STREAM_END && !(status == Z_BUF_ERROR && m->z.avail_in == 0))
	{
		extract_fail(m->error, 0, "the workbook's %s is corrupt (%s)", m->name,
					 m->z.msg ? m->z.msg : "inflate failed");
		return -1;
	}
	n = (size_t) len - m->z.avail_out;
	m->out += n;
	if (m->out > ZIP_MAX_MEMBER)
	{
		extract_fail(m->error, 0, "the workbook's %s inflates to more than %llu MiB: refused as a zip bomb",
					 m->name, ZIP_MAX_MEMBER >> 20);
		return -1;
	}
	return (int) n;
}

void
zip_close_member(ZipMember *member)
{
	if (member->started)
		inflateEnd(&member->z);
	member->started = false;
}
