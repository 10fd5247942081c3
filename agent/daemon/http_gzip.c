/* gzip for HTTP answers: Accept-Encoding read as RFC 9110 says, the body
 * compressed in one pass with zlib. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "http_gzip.h"

#define GZIP_WINDOW (15 + 16)	/* zlib: 32 KiB window, gzip wrapper */
#define GZIP_LEVEL 1		/* the page is repetitive: 1 already gives ~10x */

/* q of one "coding;q=VALUE" element, 1 when absent. */
static double coding_q(const char *params, const char *end)
{
	const char *q = params;

	while (q < end && (q = strchr(q, ';')) && q < end) {
		q++;
		while (q < end && isspace((unsigned char)*q))
			q++;
		if (end - q > 2 && tolower((unsigned char)q[0]) == 'q' && q[1] == '=')
			return strtod(q + 2, NULL);
	}
	return 1.0;
}

bool http_accepts_gzip(const char *h)
{
	const char *p = h, *end, *name_end;
	size_t n;

	while (p && *p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		name_end = p;
		while (name_end < end && *name_end != ';' &&
		       !isspace((unsigned char)*name_end))
			name_end++;
		n = (size_t)(name_end - p);
		if (((n == 4 && !strncasecmp(p, "gzip", 4)) ||
		     (n == 6 && !strncasecmp(p, "x-gzip", 6))) &&
		    coding_q(name_end, end) > 0)
			return true;
		p = end;
	}
	return false;
}

int http_gzip(struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	unsigned char *in = evbuffer_pullup(buf, -1);
	struct evbuffer *out = evbuffer_new();
	struct evbuffer_iovec v;
	z_stream zs = { 0 };
	uLong bound;
	int err = 0;

	if (!out || (len && !in) ||
	    deflateInit2(&zs, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		if (out)
			evbuffer_free(out);
		return -ENOMEM;
	}
	bound = deflateBound(&zs, len);
	if (evbuffer_reserve_space(out, bound, &v, 1) != 1) {
		err = -ENOMEM;
		goto done;
	}
	zs.next_in = in;
	zs.avail_in = (uInt)len;
	zs.next_out = v.iov_base;
	zs.avail_out = (uInt)v.iov_len;
	if (len > UINT32_MAX || deflate(&zs, Z_FINISH) != Z_STREAM_END) {
		err = -EFBIG;
		goto done;
	}
	v.iov_len = zs.total_out;
	if (evbuffer_commit_space(out, &v, 1) ||
	    evbuffer_drain(buf, len) || evbuffer_add_buffer(buf, out))
		err = -ENOMEM;
done:
	deflateEnd(&zs);
	evbuffer_free(out);
	return err;
}
