/* What the suites of the document assert again and again: a document is
 * accepted, or refused with exactly this "path: message". */
#ifndef AETHER_TEST_CONFIG_ASSERTS_H
#define AETHER_TEST_CONFIG_ASSERTS_H

#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"

/* The parsed document (the test frees it); the test stops on a refusal. */
static inline struct aeth_config *parse_ok(const char *text)
{
	struct aeth_error err = { 0 };
	struct aeth_config *cfg = NULL;
	char msg[800];
	int ret;

	ret = aeth_config_parse(text, strlen(text), &cfg, &err);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(ret, 0, "rejected: %s", msg);
	cr_assert_not_null(cfg);
	return cfg;
}

/* Refused with -EINVAL and exactly want as the formatted error; the
 * caller's pointer is left alone. name says which case failed. */
static inline void expect_refused_len(const char *name, const char *text,
				      size_t len, const char *want)
{
	struct aeth_config *sentinel = (struct aeth_config *)0x1;
	struct aeth_config *cfg = sentinel;
	struct aeth_error err = { 0 };
	char msg[800];
	int ret;

	ret = aeth_config_parse(text, len, &cfg, &err);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_expect_eq(ret, -EINVAL, "%s: accepted", name);
	cr_expect_eq(cfg, sentinel, "%s: out pointer written", name);
	cr_expect_str_eq(msg, want, "%s: got \"%s\"", name, msg);
}

static inline void expect_refused(const char *text, const char *want)
{
	expect_refused_len(text, text, strlen(text), want);
}

#endif /* AETHER_TEST_CONFIG_ASSERTS_H */
