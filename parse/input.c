/*
 * input.c
 *		The file on stdin as the parsers read it (parse.h): first the bytes
 *		read to tell its format, then the rest of the pipe.
 */
#include "parse.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

ssize_t
input_read(ParseInput *in, char *buf, size_t len)
{
	ssize_t		n;

	if (in->head_pos < in->head_len)
	{
		n = (ssize_t) (in->head_len - in->head_pos < len ? in->head_len - in->head_pos : len);
		memcpy(buf, in->head + in->head_pos, (size_t) n);
		in->head_pos += (size_t) n;
	}
	else if (in->fd < 0)
		n = 0;
	else
		do
			n = read(in->fd, buf, len);
		while (n < 0 && errno == EINTR);
	if (n > 0)
		in->total += (unsigned long long) n;
	return n;
}

char *
input_read_all(ParseInput *in, size_t max, size_t *len, ExtractError *error)
{
	size_t		cap = 1 << 16,
				have = 0;
	char	   *data = extract_realloc(NULL, cap);
	ssize_t		n;

	for (;;)
	{
		if (have == cap)
		{
			if (cap >= max)
			{
				extract_free(data);
				extract_fail(error, 0, "the file is larger than %zu MiB, the most read for this format",
							 max >> 20);
				return NULL;
			}
			cap = cap * 2 < max ? cap * 2 : max;
			data = extract_realloc(data, cap);
		}
		n = input_read(in, data + have, cap - have);
		if (n < 0)
		{
			extract_free(data);
			extract_fail(error, 0, "cannot read the file: %s", strerror(errno));
			return NULL;
		}
		if (n == 0)
			break;
		have += (size_t) n;
	}
	*len = have;
	return data;
}
