/* Config file sources: the --config file watched through its directory
 * (ConfigMap ..data swaps, editors' rename-over) and SIGHUP. */
#ifndef AETHER_WATCH_H
#define AETHER_WATCH_H

#include <stddef.h>

#include "file_util.h"

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

#endif /* AETHER_WATCH_H */
