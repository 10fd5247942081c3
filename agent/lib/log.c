/* Log lines: "2026-11-26T15:00:00.123Z info message" or one JSON object. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "log.h"

static enum aeth_log_level log_level = AETH_LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void aeth_log_init(enum aeth_log_level level, bool json)
{
	log_level = level;
	log_json = json;
}

int aeth_log_level_parse(const char *s, enum aeth_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum aeth_log_level)i;
			return 0;
		}
	}
	return -1;
}

static void json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static void log_emit(enum aeth_log_level level, const char *fmt, va_list ap)
{
	char msg[2048], stamp[40];
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';	/* one event, one line */
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	/* one line per event also when the Kubernetes threads log */
	flockfile(stderr);
	if (log_json) {
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
			level_names[level]);
		json_escape(stderr, msg);
		fputs("\"}\n", stderr);
	} else {
		fprintf(stderr, "%s %s %s\n", stamp, level_names[level], msg);
	}
	fflush(stderr);
	funlockfile(stderr);
}

void aeth_log(enum aeth_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	log_emit(level == LIBBPF_WARN ? AETH_LOG_WARN : AETH_LOG_DEBUG, fmt, ap);
	return 0;
}

void aeth_log_hook_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
