/* What loader.c (the skeleton over the pinned maps) and attach.c (the
 * program on the interfaces) share, and no other file needs. */
#ifndef AETHER_LOADER_INTERNAL_H
#define AETHER_LOADER_INTERNAL_H

#include <stddef.h>

#include "agent.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

/* Where the links are pinned, under the pin directory. */
#define LINKS_DIR "links"

/* "dir/name" into buf, or -ENAMETOOLONG. */
int loader_pin_path(char *buf, size_t len, const char *dir, const char *name);

/* Note the id of the program this process loaded (a->skel): known to be
 * ours on a NIC even without CAP_SYS_ADMIN. */
void attach_remember_own_prog(const struct aeth_agent *a);

/* <pin_dir>/links/<ifname> into buf, or -ENAMETOOLONG. */
int attach_link_pin_path(char *buf, size_t len, const char *pin_dir,
			 const char *ifname);
/* Pin link fd at <pin_dir>/links/<ifname> (the directory made). */
int attach_pin_link(const char *pin_dir, const char *ifname, int fd);
/* Close the link fds the agent holds (the pins keep the links). */
void attach_release_links(struct aeth_agent *a);
/* Take our program off the interface of st, if it is still ours. */
int attach_detach_one(const char *pin_dir, const struct aeth_iface_status *st);

#endif /* AETHER_LOADER_INTERNAL_H */
