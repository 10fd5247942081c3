/* libevent's warnings go through the agent's log, at most
 * AETH_LOG_EVENT_PER_SEC a second: a condition that repeats on every loop
 * turn (accept failing, say) must not flood stderr. */
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "log_event.h"

static uint64_t window_start, in_window, suppressed;

static void on_event_log(int severity, const char *msg)
{
	struct timespec ts;
	uint64_t sec;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sec = (uint64_t)ts.tv_sec;
	if (sec != window_start) {
		window_start = sec;
		in_window = 0;
	}
	if (++in_window > AETH_LOG_EVENT_PER_SEC) {
		suppressed++;
		return;
	}
	if (suppressed) {
		log_warn("libevent: %llu messages suppressed",
			 (unsigned long long)suppressed);
		suppressed = 0;
	}
	aeth_log(severity >= EVENT_LOG_ERR ? AETH_LOG_ERROR :
		 severity == EVENT_LOG_WARN ? AETH_LOG_WARN : AETH_LOG_DEBUG,
		 "libevent: %s", msg);
}

void aeth_log_hook_libevent(void)
{
	event_set_log_callback(on_event_log);
}
