/* struct aeth_error: see error.h. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

int aeth_fail(struct aeth_error *err, int code, const char *path,
	      const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	if (snprintf(err->path, sizeof(err->path), "%s", path ? path : "") < 0)
		err->path[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->line = 0;
	err->column = 0;
	return code;
}

void aeth_error_format(const struct aeth_error *err, char *buf, size_t len)
{
	if (err->path[0])
		snprintf(buf, len, "%s: %s", err->path, err->message);
	else if (err->line)
		snprintf(buf, len, "line %d, column %d: %s", err->line,
			 err->column, err->message);
	else
		snprintf(buf, len, "%s", err->message);
}
