/* The one error convention of the userspace code: a function returns 0 or a
 * negative errno, and when its caller needs to say where and why, it also
 * fills a struct aeth_error (never logs and returns: the caller decides).
 * The errno is the machine-readable part, the struct the human one. */
#ifndef AETHER_ERROR_H
#define AETHER_ERROR_H

#include <stddef.h>

struct aeth_error {
	/* Where: a path in the document ("services[2].port"), a file, an
	 * interface, a map. Empty when the message says it all. */
	char path[256];
	char message[512];
	/* A syntax error of a document carries its place instead of a path. */
	int line, column;
};

/* Fills err (when not NULL) and returns code, so that
 * "return aeth_fail(err, -EINVAL, path, "must be >= 1");" both reports and
 * returns. */
__attribute__((format(printf, 4, 5)))
int aeth_fail(struct aeth_error *err, int code, const char *path,
	      const char *fmt, ...);

/* "path: message", "line L, column C: message" or "message" into buf. */
void aeth_error_format(const struct aeth_error *err, char *buf, size_t len);

#endif /* AETHER_ERROR_H */
