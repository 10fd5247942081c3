/* SHA-256 (FIPS 180-4), used to fingerprint the applied configuration. */
#ifndef AETHER_SHA256_H
#define AETHER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define AETH_SHA256_LEN 32

struct aeth_sha256 {
	uint32_t state[8];
	uint64_t total;		/* bytes hashed so far */
	uint8_t block[64];
	size_t used;		/* bytes waiting in block */
};

void aeth_sha256_init(struct aeth_sha256 *ctx);
void aeth_sha256_update(struct aeth_sha256 *ctx, const void *data, size_t len);
void aeth_sha256_final(struct aeth_sha256 *ctx, uint8_t out[AETH_SHA256_LEN]);

/* One call for a whole buffer. */
void aeth_sha256(const void *data, size_t len, uint8_t out[AETH_SHA256_LEN]);

/* Lower-case hex, NUL-terminated (65 bytes). */
void aeth_sha256_hex(const uint8_t digest[AETH_SHA256_LEN], char out[65]);

#endif /* AETHER_SHA256_H */
