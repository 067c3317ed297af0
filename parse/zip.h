/*
 * zip.h
 *		Reading the members of a zip archive (xlsx) held in memory, each as
 *		a stream inflated on demand (zlib), with a bound on how much one
 *		member may inflate to: a zip bomb stops at the bound.
 */
#ifndef RECOVERY_ZIP_H
#define RECOVERY_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

#include "extract.h"

#define ZIP_MAX_MEMBER	(256ULL * 1024 * 1024)	/* inflated, each */

typedef struct ZipMember
{
	const unsigned char *data;	/* compressed bytes */
	size_t		size;
	int			method;			/* 0 stored, 8 deflated */
	z_stream	z;
	bool		started;
	unsigned long long out;		/* inflated so far */
	ExtractError *error;
	const char *name;
} ZipMember;

/* the member named name, ready to read; false if absent or malformed */
extern bool zip_open_member(const char *zip, size_t len, const char *name,
							ZipMember *member, ExtractError *error);
/* as xmlInputReadCallback: bytes, 0 at the end, -1 on an error */
extern int	zip_read(void *member, char *buffer, int len);
extern void zip_close_member(ZipMember *member);

#endif							/* RECOVERY_ZIP_H */
