/* SHA-256 against the FIPS 180-2 / NIST test vectors. */
#include <string.h>

#include <criterion/criterion.h>

#include "sha256.h"

static void check_hex(const void *data, size_t len, const char *want)
{
	uint8_t d[32];
	char hex[65];

	aeth_sha256(data, len, d);
	aeth_sha256_hex(d, hex);
	cr_assert_str_eq(hex, want, "len %zu", len);
}

Test(sha256, empty)
{
	check_hex("", 0,
		  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(sha256, abc)
{
	check_hex("abc", 3,
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(sha256, two_blocks_448_bits)
{
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	check_hex(m, strlen(m),
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, message_of_896_bits)
{
	const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
			"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

	check_hex(m, strlen(m),
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

Test(sha256, million_a_in_uneven_pieces)
{
	static uint8_t buf[1000000];
	struct aeth_sha256 ctx;
	size_t off = 0, step = 1;
	uint8_t d[32];
	char hex[65];

	memset(buf, 'a', sizeof(buf));
	check_hex(buf, sizeof(buf),
		  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	/* Streaming in pieces of growing, block-unaligned sizes gives the
	 * same digest. */
	aeth_sha256_init(&ctx);
	while (off < sizeof(buf)) {
		size_t n = step < sizeof(buf) - off ? step : sizeof(buf) - off;

		aeth_sha256_update(&ctx, buf + off, n);
		off += n;
		step = step * 3 + 1;
	}
	aeth_sha256_final(&ctx, d);
	aeth_sha256_hex(d, hex);
	cr_assert_str_eq(hex,
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, padding_edges_match_one_shot)
{
	/* Lengths around the 55/56/64-byte padding boundaries, hashed one
	 * byte at a time and in one call. */
	uint8_t buf[130], a[32], b[32];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		struct aeth_sha256 ctx;

		aeth_sha256(buf, len, a);
		aeth_sha256_init(&ctx);
		for (size_t i = 0; i < len; i++)
			aeth_sha256_update(&ctx, buf + i, 1);
		aeth_sha256_final(&ctx, b);
		cr_assert_arr_eq(a, b, 32, "len %zu", len);
	}
}

Test(sha256, fifty_five_and_sixty_four_bytes)
{
	/* Known digests (sha256sum) of 55 and 64 'a' characters: the last
	 * length that pads in one block and an exact block. */
	char m[64];

	memset(m, 'a', sizeof(m));
	check_hex(m, 55,
		  "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
	check_hex(m, 64,
		  "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}
