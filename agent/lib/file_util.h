/* Files and directories, shared by the daemon, the CLI and the tests. */
#ifndef AETHER_FILE_UTIL_H
#define AETHER_FILE_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Open a document for reading without blocking: a FIFO or a device at the
 * path must not stall the agent. Returns the fd, or -errno (-EISDIR for a
 * directory, -EINVAL for any other file that is not a regular one). */
int aeth_open_regular(const char *path);

/* Read a whole regular file into a NUL-terminated buffer (freed by the
 * caller). Reads to the end rather than trusting st_size: a file being
 * replaced may change under us. Returns 0, -EFBIG above max, -ENOTSUP for a
 * file that is not a regular one, or another -errno. */
int aeth_read_file(const char *path, size_t max, char **text, size_t *len);
/* The message for an error of aeth_read_file. */
const char *aeth_read_file_strerror(int err);

/* mkdir -p dir. Returns 0 or -errno. */
int aeth_mkdir_p(const char *dir, mode_t mode);
/* mkdir -p of the directory that holds path (path itself is not made). */
int aeth_mkdir_parents(const char *path, mode_t mode);

#endif /* AETHER_FILE_UTIL_H */
