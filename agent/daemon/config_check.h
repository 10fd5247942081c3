/* Checks on a whole document that no single field can make: the bytes are
 * UTF-8, no string hides a NUL, and the addresses mean something together
 * (a VIP is not a backend, not loopback, not this node). */
#ifndef AETHER_CONFIG_CHECK_H
#define AETHER_CONFIG_CHECK_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"

/* -EINVAL with line and column of the first byte that is not UTF-8. */
int aeth_config_check_utf8(const char *text, size_t len,
			   struct aeth_error *err);
/* -EINVAL naming the first string (by its path) that holds a NUL. */
int aeth_config_check_nul(json_t *root, struct aeth_error *err);
/* -EINVAL naming the first address that cannot work with the others. */
int aeth_config_check_addresses(const struct aeth_config *cfg,
				struct aeth_error *err);

#endif /* AETHER_CONFIG_CHECK_H */
