/* Running BIRD as a detached daemon and talking to its control socket. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bird.h"

#define BIRD_BIN "bird"
#define CMD_TIMEOUT_S 1	/* BIRD answers in microseconds; frozen, never */

static int path_in(char *out, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int aeth_bird_init(struct aeth_bird *b, const char *dir)
{
	memset(b, 0, sizeof(*b));
	if ((size_t)snprintf(b->dir, sizeof(b->dir), "%s", dir) >= sizeof(b->dir))
		return -ENAMETOOLONG;
	if (path_in(b->conf, sizeof(b->conf), dir, "bird.conf") ||
	    path_in(b->sock, sizeof(b->sock), dir, "bird.ctl") ||
	    path_in(b->pidfile, sizeof(b->pidfile), dir, "bird.pid") ||
	    path_in(b->log, sizeof(b->log), dir, "bird.log") ||
	    path_in(b->out, sizeof(b->out), dir, "bird.out"))
		return -ENAMETOOLONG;
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

bool aeth_bird_alive(pid_t pid)
{
	char path[64], stat[256], *rp;

	if (pid <= 0 || kill(pid, 0))
		return false;
	/* a daemon nobody reaps stays a zombie: that is dead too */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, stat, sizeof(stat)))
		return false;
	rp = strrchr(stat, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

pid_t aeth_bird_find(const struct aeth_bird *b)
{
	char buf[64], path[64];
	long pid;

	if (read_small(b->pidfile, buf, sizeof(buf)))
		return 0;
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid > INT32_MAX || !aeth_bird_alive((pid_t)pid))
		return 0;
	/* a stale pid file whose number was reused */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if (read_small(path, buf, sizeof(buf)) || strcmp(buf, "bird\n"))
		return 0;
	return (pid_t)pid;
}

static void exec_bird(const struct aeth_bird *b)
{
	int fd;

	setsid();
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	fd = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	/* none of the agent's sockets and map fds may live on in BIRD */
	close_range(3, ~0u, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	execlp(BIRD_BIN, BIRD_BIN, "-c", b->conf, "-s", b->sock, "-P",
	       b->pidfile, (char *)NULL);
	fprintf(stderr, "cannot run %s: %s\n", BIRD_BIN, strerror(errno));
	_exit(127);
}

/* BIRD's first process exits once the daemon runs (0) or the config was
 * refused (not 0). */
static int wait_foreground(pid_t child, int *status)
{
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(child, status, WNOHANG);

		if (r == child)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		sleep_ms(10);
	}
	kill(child, SIGKILL);
	waitpid(child, status, 0);
	return -ETIMEDOUT;
}

/* what, and the first lines BIRD printed, into err; returns code. */
static int start_error(const struct aeth_bird *b, int code, const char *what,
		       struct aeth_error *err)
{
	char out[400] = "";
	char *nl;

	read_small(b->out, out, sizeof(out));
	while ((nl = strchr(out, '\n')) && nl[1])
		*nl = ' ';
	if ((nl = strchr(out, '\n')))
		*nl = '\0';
	return aeth_fail(err, code, "", "%s%s%s", what, out[0] ? ": " : "",
			 out);
}

pid_t aeth_bird_start(const struct aeth_bird *b, struct aeth_error *err)
{
	int status = 0, ret;
	pid_t child, pid;

	unlink(b->pidfile);
	child = fork();
	if (child < 0) {
		ret = -errno;
		return aeth_fail(err, ret, "", "fork: %s", strerror(-ret));
	}
	if (child == 0)
		exec_bird(b);
	ret = wait_foreground(child, &status);
	if (ret)
		return start_error(b, ret, "bird did not start in 5 s", err);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return start_error(b, -ECHILD, "bird refused to start", err);
	for (int i = 0; i < 100; i++) {
		pid = aeth_bird_find(b);
		if (pid > 0)
			return pid;
		sleep_ms(10);
	}
	return start_error(b, -ESRCH, "bird started but wrote no pid file", err);
}

int aeth_bird_stop(pid_t pid, int timeout_ms)
{
	if (pid <= 0 || kill(pid, SIGTERM))
		return 0;
	for (int t = 0; t < timeout_ms; t += 10) {
		if (!aeth_bird_alive(pid))
			return 0;
		sleep_ms(10);
	}
	return -ETIMEDOUT;
}

int aeth_bird_write_conf(const struct aeth_bird *b, const char *text)
{
	char tmp[PATH_MAX + 8];
	size_t len = strlen(text);
	int fd, err = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", b->conf) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, b->conf))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static int ctl_connect(const struct aeth_bird *b)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { CMD_TIMEOUT_S, 0 };
	int fd, err;

	if (strlen(b->sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, b->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A reply line is "NNNN-text" (more follows), "NNNN text" (the last) or
 * " text" (continues the previous code). Returns the final code, or -1
 * while the reply goes on. */
static int reply_line(const char *line, char *reply, size_t len, size_t *off)
{
	const char *text = line;
	int code = -1;

	if (strlen(line) >= 5 && strspn(line, "0123456789") == 4 &&
	    (line[4] == ' ' || line[4] == '-')) {
		text = line + 5;
		if (line[4] == ' ')
			code = atoi(line);
	} else if (line[0] == ' ') {
		text = line + 1;
	}
	if (*text && *off < len)
		*off += (size_t)snprintf(reply + *off, len - *off, "%s%s",
					 *off ? "\n" : "", text);
	return code;
}

/* Read lines until the reply's final code; the greeting counts as one
 * reply. Returns the code or a negative errno. */
static int read_reply(int fd, char *reply, size_t len)
{
	char buf[4096];
	size_t have = 0, off = 0;

	if (len)
		reply[0] = '\0';
	for (;;) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(buf, '\n', have))) {
			int code;

			*nl = '\0';
			code = reply_line(buf, reply, len, &off);
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
			if (code >= 0)
				return code;
		}
		if (have == sizeof(buf) - 1)
			have = 0;	/* a line too long to keep: drop it */
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		have += (size_t)n;
	}
}

int aeth_bird_command(const struct aeth_bird *b, const char *cmd, char *reply,
		      size_t len)
{
	char greeting[128], line[256];
	int fd, code, n;

	fd = ctl_connect(b);
	if (fd < 0)
		return fd;
	code = read_reply(fd, greeting, sizeof(greeting));
	n = snprintf(line, sizeof(line), "%s\n", cmd);
	if (code >= 0 && write(fd, line, (size_t)n) != n)
		code = -errno;
	if (code >= 0)
		code = read_reply(fd, reply, len);
	close(fd);
	if (code < 0)
		return code;
	/* 0xxx: done; 8xxx run-time and 9xxx parse errors */
	return code >= 8000 ? -EPROTO : 0;
}
