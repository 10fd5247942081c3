/* Files and directories: a non-blocking open of regular files only, reading
 * a whole document, mkdir -p. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_util.h"

int aeth_open_regular(const char *path)
{
	struct stat st;
	int fd, err;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	return fd;
}

/* Reads fd to its end into *buf (capacity *cap, grown by doubling); stops
 * with -EFBIG once more than max bytes came. */
static int read_all(int fd, size_t max, char **buf, size_t *cap, size_t *n)
{
	for (;;) {
		ssize_t r;

		if (*n == *cap) {
			char *p;

			if (*cap > max)
				return -EFBIG;
			p = realloc(*buf, *cap * 2 + 1);
			if (!p)
				return -ENOMEM;
			*buf = p;
			*cap *= 2;
		}
		r = read(fd, *buf + *n, *cap - *n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return *n > max ? -EFBIG : 0;
		*n += (size_t)r;
	}
}

int aeth_read_file(const char *path, size_t max, char **text, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf;
	int fd, err;

	fd = aeth_open_regular(path);
	if (fd < 0)
		return fd == -EINVAL ? -ENOTSUP : fd;
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	err = read_all(fd, max, &buf, &cap, &n);
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

const char *aeth_read_file_strerror(int err)
{
	if (err == -ENOTSUP)
		return "not a regular file (a FIFO, device or socket is "
		       "refused)";
	return strerror(-err);
}

static int mkdir_prefixes(char *buf, mode_t mode)
{
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int aeth_mkdir_p(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];
	int err;

	if ((size_t)snprintf(buf, sizeof(buf), "%s", dir) >= sizeof(buf) ||
	    !buf[0])
		return -ENAMETOOLONG;
	err = mkdir_prefixes(buf, mode);
	if (err)
		return err;
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int aeth_mkdir_parents(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
		return -ENAMETOOLONG;
	return mkdir_prefixes(buf, mode);
}
