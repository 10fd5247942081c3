/* Config file sources: the --config file watched through its directory
 * (ConfigMap ..data swaps, editors' rename-over) and SIGHUP. */
#ifndef AETHER_WATCH_H
#define AETHER_WATCH_H

#include <stddef.h>

struct event_base;
struct aeth_watch;

/* A new document: source is "file" (the file changed) or "sighup". */
typedef void (*aeth_watch_cb)(void *arg, const char *text, size_t len,
			      const char *source);

/* Watch path's directory with inotify for the names that can change what
 * path reads. Changes are debounced by debounce_ms (bounded by
 * AETH_WATCH_MAX_DELAY_MS) and delivered only when the content differs from
 * the last delivery; SIGHUP re-reads. initial, when not NULL, is the content
 * already applied. NULL with errno set on failure. */
struct aeth_watch *aeth_watch_start(struct event_base *base, const char *path,
				    unsigned int debounce_ms,
				    const char *initial, size_t initial_len,
				    aeth_watch_cb cb, void *arg);
void aeth_watch_stop(struct aeth_watch *w);

/* A change is delivered at most this long after its first inotify event,
 * however busy the file stays. */
#define AETH_WATCH_MAX_DELAY_MS 300

/* Read a whole file of at most max bytes into a new NUL-terminated buffer,
 * without blocking on a FIFO. Returns 0 or a negative errno (-EFBIG when
 * larger, -ENOTSUP when not a regular file). */
int aeth_read_file(const char *path, size_t max, char **text, size_t *len);
/* The message for an error of aeth_read_file. */
const char *aeth_read_file_strerror(int err);

#endif /* AETHER_WATCH_H */
