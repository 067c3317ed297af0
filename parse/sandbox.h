/*
 * sandbox.h
 *		What recovery-parse may do once it has read its libraries and opened
 *		what it needs: limits on CPU time, memory and output, and a seccomp
 *		filter that allows no file opening, no network and no new process.
 */
#ifndef RECOVERY_SANDBOX_H
#define RECOVERY_SANDBOX_H

#include <stdbool.h>

typedef struct SandboxLimits
{
	int			cpu_seconds;
	int			memory_mb;		/* address space */
	int			output_mb;		/* what it may write to stdout */
} SandboxLimits;

/* resource limits: first thing, before reading the input */
extern bool sandbox_limit(const SandboxLimits *limits);
/* the seccomp filter: from here on, only the allowed system calls */
extern bool sandbox_enter(void);

#endif							/* RECOVERY_SANDBOX_H */
