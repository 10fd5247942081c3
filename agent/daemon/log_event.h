/* libevent's own messages in the agent's log, rate limited. */
#ifndef AETHER_LOG_EVENT_H
#define AETHER_LOG_EVENT_H

/* At most this many libevent messages per second reach the log; the rest
 * are counted and the count logged with the next one let through. */
#define AETH_LOG_EVENT_PER_SEC 5

void aeth_log_hook_libevent(void);

#endif /* AETHER_LOG_EVENT_H */
