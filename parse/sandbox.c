/*
 * sandbox.c
 *		Limits and the seccomp filter of recovery-parse (sandbox.h).
 *
 * The filter is an allow-list.  Opening a file fails with EACCES, so that a
 * library looking for a font or a CMap goes on without it; a system call
 * outside the list (a socket, execve, fork, ptrace, ...) stops the process
 * with SIGSYS, and the handler first says which call it was, so that the
 * extraction records why.
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <seccomp.h>

static bool
set_limit(int resource, rlim_t value)
{
	struct rlimit limit = {value, value};

	return setrlimit(resource, &limit) == 0;
}

bool
sandbox_limit(const SandboxLimits *limits)
{
	/* SIGXCPU at the soft limit, SIGKILL a second later */
	struct rlimit cpu = {(rlim_t) limits->cpu_seconds, (rlim_t) limits->cpu_seconds + 1};

	return setrlimit(RLIMIT_CPU, &cpu) == 0 &&
		set_limit(RLIMIT_AS, (rlim_t) limits->memory_mb << 20) &&
		set_limit(RLIMIT_FSIZE, (rlim_t) limits->output_mb << 20) &&
		set_limit(RLIMIT_CORE, 0);
}

static void
refused(int signo, siginfo_t *info, void *context)
{
	char		message[96];
	int			n = snprintf(message, sizeof(message),
							 "\nerror: the sandbox refused system call %d\n", info->si_syscall);

	if (n > 0)
		(void) !write(STDERR_FILENO, message, (size_t) n);
	_exit(3);
}

static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64), SCMP_SYS(write), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(lseek), SCMP_SYS(fcntl),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(brk),
	SCMP_SYS(madvise), SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(getrandom), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(getrusage), SCMP_SYS(prlimit64),
};

/* calls that fail gently: the library goes on without what it looked for */
static const struct
{
	int			call;
	int			error;
}			failing[] = {
	{SCMP_SYS(open), EACCES}, {SCMP_SYS(openat), EACCES}, {SCMP_SYS(creat), EACCES},
	{SCMP_SYS(stat), EACCES}, {SCMP_SYS(lstat), EACCES}, {SCMP_SYS(newfstatat), EACCES},
	{SCMP_SYS(statx), EACCES}, {SCMP_SYS(access), EACCES}, {SCMP_SYS(faccessat), EACCES},
	{SCMP_SYS(faccessat2), EACCES}, {SCMP_SYS(readlink), EACCES},
	{SCMP_SYS(readlinkat), EACCES}, {SCMP_SYS(getdents64), EACCES},
	{SCMP_SYS(ioctl), ENOTTY}, {SCMP_SYS(sysinfo), EPERM}, {SCMP_SYS(uname), EPERM},
	/* glibc then starts a thread with clone, which the filter can inspect */
	{SCMP_SYS(clone3), ENOSYS},
};

bool
sandbox_enter(void)
{
	struct sigaction action;
	scmp_filter_ctx filter;
	size_t		i;
	bool		ok = true;

	memset(&action, 0, sizeof(action));
	action.sa_sigaction = refused;
	action.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &action, NULL) != 0)
		return false;
	filter = seccomp_init(SCMP_ACT_TRAP);
	if (filter == NULL)
		return false;
	for (i = 0; ok && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		ok = seccomp_rule_add(filter, SCMP_ACT_ALLOW, allowed[i], 0) == 0;
	for (i = 0; ok && i < sizeof(failing) / sizeof(failing[0]); i++)
		ok = seccomp_rule_add(filter, SCMP_ACT_ERRNO(failing[i].error), failing[i].call, 0) == 0;
	/* threads (glib may start one), never a new process */
	if (ok)
		ok = seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
							  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) == 0;
	ok = ok && seccomp_load(filter) == 0;
	seccomp_release(filter);
	return ok;
}
