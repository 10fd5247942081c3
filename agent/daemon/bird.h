/* Running BIRD: its files in a state directory, starting, finding and
 * stopping the daemon, and commands over its control socket. */
#ifndef AETHER_BIRD_H
#define AETHER_BIRD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct aeth_bird {
	char dir[PATH_MAX];
	char conf[PATH_MAX];	/* bird.conf, written by us */
	char sock[108];		/* bird.ctl, its control socket */
	char pidfile[PATH_MAX];	/* bird.pid */
	char log[PATH_MAX];	/* bird.log, BIRD's own log */
	char out[PATH_MAX];	/* bird.out, what it printed while starting */
};

/* Fill the paths under dir (absolute). Returns 0 or -ENAMETOOLONG. */
int aeth_bird_init(struct aeth_bird *b, const char *dir);

/* The pid of a BIRD daemon running on b's files (pid file names a live
 * process called bird), else 0. */
pid_t aeth_bird_find(const struct aeth_bird *b);
/* pid is alive and not a zombie. */
bool aeth_bird_alive(pid_t pid);

/* Start the daemon on b->conf (already written). It detaches itself, so it
 * outlives the agent. Returns its pid, or a negative errno with err filled
 * (BIRD's own message when it refused to start). */
pid_t aeth_bird_start(const struct aeth_bird *b, struct aeth_error *err);

/* SIGTERM (BIRD closes its sessions with a notification), then wait up to
 * timeout_ms for it to go. Returns 0, or -ETIMEDOUT. */
int aeth_bird_stop(pid_t pid, int timeout_ms);

/* Write b->conf atomically. */
int aeth_bird_write_conf(const struct aeth_bird *b, const char *text);

/* One command on the control socket. The reply's text (codes stripped,
 * lines joined by '\n') goes to reply. Returns 0 when BIRD reports success,
 * -EPROTO when it reports an error (reply holds it), or a negative errno
 * when the socket failed. */
int aeth_bird_command(const struct aeth_bird *b, const char *cmd, char *reply,
		      size_t len);

#endif /* AETHER_BIRD_H */
