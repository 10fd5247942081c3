/* aetherctl output: errors once in the right form, JSON documents, and
 * aligned human tables. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void error_emit(struct ctl_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (ctx->json) {
		json_t *doc = json_pack("{s:s}", "error", msg);

		json_dumpf(doc, stdout, ctx->pretty ? JSON_INDENT(2) : 0);
		fputc('\n', stdout);
		json_decref(doc);
		fflush(stdout);
	} else {
		fprintf(stderr, "aetherctl: %s\n", msg);
	}
}

void ctl_error(struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_emit(ctx, fmt, ap);
	va_end(ap);
}

int ctl_usage_error(struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_emit(ctx, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int ctl_json_print(struct ctl_ctx *ctx, json_t *doc)
{
	size_t flags = JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10);
	int ret;

	if (!doc) {
		ctl_error(ctx, "out of memory");
		return -ENOMEM;
	}
	if (ctx->pretty)
		flags |= JSON_INDENT(2);
	ret = json_dumpf(doc, stdout, flags);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(doc);
	return ret ? -EIO : 0;
}

void ctl_json_stream_begin(struct ctl_ctx *ctx, struct ctl_json_stream *st)
{
	st->n = 0;
	fputc('[', stdout);
}

int ctl_json_stream_item(struct ctl_ctx *ctx, struct ctl_json_stream *st,
			 json_t *item)
{
	size_t flags = JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10);
	int ret;

	if (!item)
		return -ENOMEM;
	if (ctx->pretty)
		flags |= JSON_INDENT(2);
	fputs(st->n++ ? (ctx->pretty ? ",\n" : ", ") : (ctx->pretty ? "\n" : ""),
	      stdout);
	ret = json_dumpf(item, stdout, flags);
	json_decref(item);
	return ret ? -EIO : 0;
}

void ctl_json_stream_end(struct ctl_ctx *ctx, struct ctl_json_stream *st)
{
	fputs(ctx->pretty && st->n ? "\n]\n" : "]\n", stdout);
	fflush(stdout);
}

struct ctl_table {
	int ncols;
	const char *const *headers;
	bool *right;
	char **cells;		/* nrows * ncols */
	size_t nrows, cap;
};

struct ctl_table *ctl_table_new(int ncols, const char *const *headers)
{
	struct ctl_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	t->headers = headers;
	t->right = calloc(ncols, sizeof(*t->right));
	if (!t->right) {
		free(t);
		return NULL;
	}
	return t;
}

void ctl_table_align_right(struct ctl_table *t, int col)
{
	if (t && col >= 0 && col < t->ncols)
		t->right[col] = true;
}

int ctl_table_add(struct ctl_table *t, ...)
{
	va_list ap;
	int ret = 0;

	if (!t)
		return -ENOMEM;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, t);
	for (int i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *dup = strdup(s ? s : "-");

		if (!dup)
			ret = -ENOMEM;
		t->cells[t->nrows * t->ncols + i] = dup;
	}
	va_end(ap);
	t->nrows++;
	return ret;
}

void ctl_table_print(const struct ctl_table *t)
{
	size_t *w;

	if (!t)
		return;
	w = calloc(t->ncols, sizeof(*w));
	if (!w)
		return;
	for (int c = 0; c < t->ncols; c++) {
		w[c] = strlen(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : 0;

			if (l > w[c])
				w[c] = l;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *s = r ? t->cells[(r - 1) * t->ncols + c]
					  : t->headers[c];
			bool last = c == t->ncols - 1;

			if (!s)
				s = "";
			if (t->right[c])
				printf("%*s", (int)w[c], s);
			else if (last)
				fputs(s, stdout);
			else
				printf("%-*s", (int)w[c], s);
			if (!last)
				fputs("  ", stdout);
		}
		fputc('\n', stdout);
	}
	free(w);
	fflush(stdout);
}

void ctl_table_free(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
}
