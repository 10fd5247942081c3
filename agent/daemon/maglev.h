/* Maglev lookup tables: deterministic from the document alone. */
#ifndef AETHER_MAGLEV_H
#define AETHER_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct aeth_maglev_backend {
	struct aeth_ip ip;	/* the canonical order and permutation key */
	uint32_t id;		/* what the table stores (aeth_backend index) */
	uint32_t weight;	/* 0 = takes no slots */
};

/* Fill table[0..size) with backend ids (AETH_NO_BACKEND if every weight is
 * 0 or n == 0). The result depends only on the set of backends (not their
 * order), their weights, seed and size. size must be prime. Returns 0 or a
 * negative errno: -EINVAL for a size that is not a prime up to
 * AETH_MAX_TABLE_SIZE, an address given twice or an id equal to
 * AETH_NO_BACKEND; -E2BIG above AETH_MAX_BACKENDS backends.
 *
 * Shares are proportional to weight within a slot or so for weights up to
 * 65535 (the document's range); larger weights lose precision. */
int aeth_maglev_build(const struct aeth_maglev_backend *backends, size_t n,
		      const uint8_t seed[16], uint32_t size, uint32_t *table);

#endif /* AETHER_MAGLEV_H */
