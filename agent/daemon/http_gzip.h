/* gzip for HTTP answers (Content-Encoding: gzip), on zlib. */
#ifndef AETHER_HTTP_GZIP_H
#define AETHER_HTTP_GZIP_H

#include <stdbool.h>

struct evbuffer;

/* Whether an Accept-Encoding header admits gzip ("gzip;q=0" does not).
 * NULL: no header, no gzip. */
bool http_accepts_gzip(const char *accept_encoding);
/* Replace the contents of buf by one gzip member of them. 0 or -errno;
 * buf is unchanged on failure. */
int http_gzip(struct evbuffer *buf);

#endif /* AETHER_HTTP_GZIP_H */
