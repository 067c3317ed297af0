/*
 * The clients of bench/events.sh, in one small program:
 *
 *   events-client sse PORT TOKEN CONNECTIONS SECONDS
 *       opens CONNECTIONS streams (GET /api/v1/events) on 127.0.0.1:PORT,
 *       reads them for SECONDS, and prints the latency of every event whose
 *       data carries "t": <microseconds since the epoch when it was
 *       written>: count, p50 and p99 in microseconds.
 *   events-client hold PORT TOKEN CONNECTIONS
 *       opens CONNECTIONS streams, prints "open N" once they all answered,
 *       and keeps them until standard input closes.
 *   events-client listen CONNINFO CHANNEL SECONDS
 *       the reference: a plain libpq LISTEN client, the same latencies from
 *       the payload of NOTIFY (the same microseconds).
 *
 * One thread and epoll: the client must cost less than what it measures.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define LINE_MAX_BYTES  8192
#define OPENING         100

typedef struct {
	int			fd;
	int			answered;		/* the response headers came */
	size_t		len;			/* bytes of an unfinished line */
	char		line[LINE_MAX_BYTES];
} Stream;

static long *latencies;
static size_t nlatencies, latencies_cap;

static long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void
record(const char *text)
{
	const char *t = strstr(text, "\"t\":");

	if (t == NULL)
		return;
	if (nlatencies == latencies_cap)
	{
		latencies_cap = latencies_cap ? latencies_cap * 2 : 65536;
		latencies = realloc(latencies, latencies_cap * sizeof(long));
		if (latencies == NULL)
		{
			perror("realloc");
			exit(1);
		}
	}
	latencies[nlatencies++] = now_us() - atol(t + 4);
}

static int
compare(const void *a, const void *b)
{
	long		x = *(const long *) a, y = *(const long *) b;

	return (x > y) - (x < y);
}

static void
report(void)
{
	qsort(latencies, nlatencies, sizeof(long), compare);
	if (nlatencies == 0)
	{
		printf("events 0\n");
		return;
	}
	printf("events %zu p50_us %ld p99_us %ld\n", nlatencies,
		   latencies[nlatencies / 2], latencies[nlatencies * 99 / 100]);
}

static int
connect_stream(int port, const char *token)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	char		request[4096];
	int			fd, n, one = 1;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0)
	{
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n = snprintf(request, sizeof(request),
				 "GET /api/v1/events?types=case.changed HTTP/1.1\r\n"
				 "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n"
				 "Authorization: Bearer %s\r\n\r\n", token);
	if (write(fd, request, n) != n)
	{
		perror("write");
		exit(1);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* one complete line of the stream */
static void
stream_line(Stream *s)
{
	s->line[s->len] = '\0';
	if (!s->answered && strncmp(s->line, "HTTP/1.1 ", 9) == 0)
	{
		if (strncmp(s->line + 9, "200", 3) != 0)
		{
			fprintf(stderr, "stream refused: %s\n", s->line);
			exit(1);
		}
		s->answered = 1;
	}
	if (strncmp(s->line, "data: ", 6) == 0)
		record(s->line);
	s->len = 0;
}

/* reads what came; lines of data are recorded; 0: the stream closed */
static int
read_stream(Stream *s)
{
	char		buf[65536];
	char	   *p, *end, *nl;
	ssize_t		n;
	size_t		take;

	for (;;)
	{
		n = read(s->fd, buf, sizeof(buf));
		if (n == 0)
			return 0;
		if (n < 0)
			return errno == EAGAIN ? 1 : 0;
		for (p = buf, end = buf + n; p < end; p = nl + 1)
		{
			nl = memchr(p, '\n', end - p);
			take = (nl ? nl : end) - p;
			if (take > LINE_MAX_BYTES - 1 - s->len)
				take = LINE_MAX_BYTES - 1 - s->len;
			memcpy(s->line + s->len, p, take);
			s->len += take;
			if (nl == NULL)
				break;
			stream_line(s);
		}
	}
}

static void
open_stream(Stream *s, int port, const char *token, int epfd)
{
	struct epoll_event ev;

	s->fd = connect_stream(port, token);
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static int
pump(int epfd, int timeout_ms)
{
	struct epoll_event events[256];
	int			n, i, closed = 0;

	n = epoll_wait(epfd, events, 256, timeout_ms);
	for (i = 0; i < n; i++)
	{
		Stream	   *s = events[i].data.ptr;

		if (!read_stream(s))
		{
			epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
			close(s->fd);
			closed++;
		}
	}
	return closed;
}

static int
run_sse(int port, const char *token, int count, int seconds, int hold)
{
	int			epfd, i, opened = 0, answered = 0, closed = 0;
	long		deadline;
	Stream	   *streams = calloc(count, sizeof(Stream));

	/*
	 * Every stream answered before the clock starts.  Each opening is a
	 * call on the gateway's pool, whose queue holds a few hundred: at most
	 * OPENING are on their way at once.
	 */
	epfd = epoll_create1(0);
	deadline = now_us() + 300 * 1000000L;
	do
	{
		while (opened < count && opened - answered < OPENING)
			open_stream(&streams[opened++], port, token, epfd);
		closed += pump(epfd, 20);
		for (answered = 0, i = 0; i < opened; i++)
			answered += streams[i].answered;
	} while (answered < count && now_us() < deadline && closed == 0);
	if (answered < count || closed)
	{
		fprintf(stderr, "only %d of %d streams opened (%d closed)\n", answered, count, closed);
		return 1;
	}
	nlatencies = 0;
	if (hold)
	{
		struct pollfd in = {.fd = 0, .events = POLLIN};
		char		c;

		printf("open %d\n", count);
		fflush(stdout);
		while (poll(&in, 1, 0) == 0 || read(0, &c, 1) > 0)
			closed += pump(epfd, 200);
		printf("closed %d\n", closed);
		return 0;
	}
	printf("open %d\n", count);
	fflush(stdout);
	deadline = now_us() + seconds * 1000000L;
	while (now_us() < deadline)
		closed += pump(epfd, 100);
	if (closed)
		fprintf(stderr, "%d streams closed while measured\n", closed);
	report();
	return 0;
}

static int
run_listen(const char *conninfo, const char *channel, int seconds)
{
	PGconn	   *pg = PQconnectdb(conninfo);
	PGnotify   *notify;
	char		sql[256];
	long		deadline;

	if (PQstatus(pg) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(pg));
		return 1;
	}
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	PQclear(PQexec(pg, sql));
	printf("open 1\n");
	fflush(stdout);
	deadline = now_us() + seconds * 1000000L;
	while (now_us() < deadline)
	{
		struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};

		if (poll(&p, 1, 100) > 0)
		{
			PQconsumeInput(pg);
			while ((notify = PQnotifies(pg)) != NULL)
			{
				char		text[128];

				snprintf(text, sizeof(text), "\"t\":%s", notify->extra);
				record(text);
				PQfreemem(notify);
			}
		}
	}
	report();
	PQfinish(pg);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "sse") == 0)
		return run_sse(atoi(argv[2]), argv[3], atoi(argv[4]), atoi(argv[5]), 0);
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return run_sse(atoi(argv[2]), argv[3], atoi(argv[4]), 0, 1);
	if (argc == 5 && strcmp(argv[1], "listen") == 0)
		return run_listen(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: events-client sse PORT TOKEN CONNECTIONS SECONDS\n"
			"       events-client hold PORT TOKEN CONNECTIONS\n"
			"       events-client listen CONNINFO CHANNEL SECONDS\n");
	return 2;
}
