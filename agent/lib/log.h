/* One logging family for the agent and the CLI: levels, text or JSON lines on
 * stderr. libbpf's own messages are routed through it. */
#ifndef AETHER_LOG_H
#define AETHER_LOG_H

#include <stdbool.h>

enum aeth_log_level { AETH_LOG_ERROR = 0, AETH_LOG_WARN, AETH_LOG_INFO, AETH_LOG_DEBUG };

void aeth_log_init(enum aeth_log_level level, bool json);
int aeth_log_level_parse(const char *s, enum aeth_log_level *out);
/* Route libbpf's messages into our log (warn and debug levels). */
void aeth_log_hook_libbpf(void);

__attribute__((format(printf, 2, 3)))
void aeth_log(enum aeth_log_level level, const char *fmt, ...);

#define log_err(...) aeth_log(AETH_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) aeth_log(AETH_LOG_WARN, __VA_ARGS__)
#define log_info(...) aeth_log(AETH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) aeth_log(AETH_LOG_DEBUG, __VA_ARGS__)

#endif /* AETHER_LOG_H */
