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

/* Watch path's directory with inotify (changes are debounced by
 * debounce_ms and delivered only when the content differs from the last
 * delivery) and re-read on SIGHUP. initial, when not NULL, is the content
 * already applied. NULL with errno set on failure. */
struct aeth_watch *aeth_watch_start(struct event_base *base, const char *path,
				    unsigned int debounce_ms,
				    const char *initial, size_t initial_len,
				    aeth_watch_cb cb, void *arg);
void aeth_watch_stop(struct aeth_watch *w);

/* Read a whole file of at most max bytes into a new NUL-terminated buffer.
 * Returns 0 or a negative errno (-EFBIG when larger). */
int aeth_read_file(const char *path, size_t max, char **text, size_t *len);

#endif /* AETHER_WATCH_H */
