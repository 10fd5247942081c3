/* aetherctl: the operators' view of the pinned maps (SPEC.md section 5).
 * Global options, OBJECT VERB dispatch with unique prefixes, and help. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "version.h"

static const struct ctl_object *const objects[] = {
	&ctl_obj_service, &ctl_obj_backend,   &ctl_obj_maglev,
	&ctl_obj_conntrack, &ctl_obj_acl,     &ctl_obj_ratelimit,
	&ctl_obj_stats,   &ctl_obj_status,    &ctl_obj_explain,
	&ctl_obj_node,    &ctl_obj_config,
};

#define N_OBJECTS (sizeof(objects) / sizeof(objects[0]))

static const char global_usage[] =
	"Usage: aetherctl [--pin-dir DIR] [--socket PATH] [-j | -p] OBJECT VERB [ARGS]\n"
	"\n"
	"Reads the aether-lb maps pinned under DIR (default "
	AETH_DEFAULT_PIN_DIR ");\n"
	"never writes them. node and config go through the agent's API socket.\n"
	"Objects and verbs may be abbreviated; options may come anywhere.\n"
	"\n"
	"Options:\n"
	"  --pin-dir DIR  where the maps are pinned\n"
	"  --socket PATH  the agent's API socket (default " AETH_DEFAULT_SOCKET ")\n"
	"  -j, --json     JSON output\n"
	"  -p, --pretty   indented JSON output (implies -j)\n"
	"  -h, --help     this help; OBJECT --help and OBJECT VERB --help too\n"
	"  --version      print the version and the commit\n"
	"\n"
	"Objects:\n";

static void print_global_usage(FILE *f)
{
	fputs(global_usage, f);
	for (size_t i = 0; i < N_OBJECTS; i++) {
		const struct ctl_object *o = objects[i];

		if (!o->verbs) {
			fprintf(f, "  %s%*s%s\n", o->name,
				o->usage[0] ? 10 - (int)strlen(o->name) : 0, "",
				o->usage);
			continue;
		}
		for (size_t v = 0; v < o->n_verbs; v++)
			fprintf(f, "  %-9s %s\n", v ? "" : o->name,
				o->verbs[v].usage);
	}
	fputs("\nSERVICE is a service name or VIP:PORT/PROTO "
	      "(e.g. 203.0.113.10:6443/tcp).\n", f);
}

static void print_object_usage(const struct ctl_object *o)
{
	printf("Usage: aetherctl [--pin-dir DIR] [-j | -p] %s", o->name);
	if (!o->verbs) {
		printf("%s%s\n\n%s\n", o->usage[0] ? " " : "", o->usage,
		       o->summary);
		return;
	}
	printf(" VERB\n\n%s\n\nVerbs:\n", o->summary);
	for (size_t v = 0; v < o->n_verbs; v++)
		printf("  %s\n", o->verbs[v].usage);
}

/* Exact name first, then a unique prefix. names is an array of structs
 * whose first member is the name; returns the index or a negative errno. */
static int match_name(const char *word, const char *const *names, size_t n)
{
	int found = -ENOENT;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(word, names[i]))
			return (int)i;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(word, names[i], strlen(word)))
			continue;
		if (found >= 0)
			return -EEXIST;
		found = (int)i;
	}
	return found;
}

static void list_names(char *buf, size_t len, const char *const *names,
		       size_t n, const char *prefix)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		if (prefix && strncmp(prefix, names[i], strlen(prefix)))
			continue;
		off += snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
				names[i]);
	}
}

/* -j, -p, --pin-dir and --socket wherever they are on the line
 * ("aetherctl service list -j"): applied to ctx and taken out of argv. "--"
 * ends them. 0, or -EINVAL (reported) for a missing value. */
static int take_global_options(struct ctl_ctx *ctx, int *argc, char **argv)
{
	static const struct { const char *name; size_t off; } vals[] = {
		{ "--pin-dir", offsetof(struct ctl_ctx, pin_dir) },
		{ "--socket", offsetof(struct ctl_ctx, socket) },
	};
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		size_t v;

		if (!strcmp(a, "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(a, "-j") || !strcmp(a, "--json") ||
		    !strcmp(a, "-p") || !strcmp(a, "--pretty")) {
			ctx->json = true;
			ctx->pretty |= a[1] == 'p' || a[2] == 'p';
			continue;
		}
		for (v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			size_t n = strlen(vals[v].name);
			const char **dst = (const char **)((char *)ctx + vals[v].off);

			if (strncmp(a, vals[v].name, n) || (a[n] && a[n] != '='))
				continue;
			if (!a[n] && i + 1 >= *argc)
				return ctl_usage_error(ctx, "%s needs a value",
						       vals[v].name);
			*dst = a[n] ? a + n + 1 : argv[++i];
			break;
		}
		if (v == sizeof(vals) / sizeof(vals[0]))
			argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

static bool is_help(const char *s)
{
	return !strcmp(s, "--help") || !strcmp(s, "-h") || !strcmp(s, "help");
}

int ctl_parse_args(struct ctl_ctx *ctx, const char *cmd, int argc,
		   char **argv, const struct ctl_opt *opts, size_t n_opts,
		   const char **values, const char **pos, size_t min_pos,
		   size_t max_pos)
{
	size_t npos = 0;

	for (size_t i = 0; i < n_opts; i++)
		values[i] = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *name;
		size_t nlen;
		int hit = -1;

		if (strncmp(a, "--", 2) || a[2] == '\0') {
			if (npos >= max_pos)
				return ctl_usage_error(ctx,
					"%s: unexpected argument '%s' (see %s --help)",
					cmd, a, cmd);
			pos[npos++] = a;
			continue;
		}
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		for (size_t o = 0; o < n_opts; o++) {
			if (strncmp(name, opts[o].name, nlen))
				continue;
			if (strlen(opts[o].name) == nlen) {
				hit = (int)o;
				break;
			}
			if (hit >= 0)
				return ctl_usage_error(ctx,
					"%s: ambiguous option '%.*s'", cmd,
					(int)nlen + 2, a);
			hit = (int)o;
		}
		if (hit < 0)
			return ctl_usage_error(ctx,
				"%s: unknown option '%.*s' (see %s --help)",
				cmd, (int)nlen + 2, a, cmd);
		if (!opts[hit].has_arg) {
			if (eq)
				return ctl_usage_error(ctx,
					"%s: --%s takes no value", cmd,
					opts[hit].name);
			values[hit] = "";
		} else if (eq) {
			values[hit] = eq + 1;
		} else if (i + 1 < argc) {
			values[hit] = argv[++i];
		} else {
			return ctl_usage_error(ctx, "%s: --%s needs a value",
					       cmd, opts[hit].name);
		}
	}
	if (npos < min_pos)
		return ctl_usage_error(ctx, "%s: missing argument (see %s --help)",
				       cmd, cmd);
	for (size_t i = npos; i < max_pos; i++)
		pos[i] = NULL;
	return 0;
}

static int run_object(struct ctl_ctx *ctx, const struct ctl_object *o,
		      int argc, char **argv)
{
	const char *names[16];
	char cmd[64], list[256];
	const struct ctl_cmd *verb;
	int idx;

	/* argv[0] is the object word */
	if (!o->verbs) {
		for (int i = 1; i < argc; i++) {
			if (is_help(argv[i])) {
				print_object_usage(o);
				return 0;
			}
		}
		return o->handler(ctx, argc, argv);
	}
	if (argc < 2)
		return ctl_usage_error(ctx, "%s: missing VERB (see aetherctl %s --help)",
				       o->name, o->name);
	if (is_help(argv[1])) {
		print_object_usage(o);
		return 0;
	}
	for (size_t v = 0; v < o->n_verbs && v < 16; v++)
		names[v] = o->verbs[v].name;
	idx = match_name(argv[1], names, o->n_verbs);
	if (idx < 0) {
		list_names(list, sizeof(list), names, o->n_verbs,
			   idx == -EEXIST ? argv[1] : NULL);
		return ctl_usage_error(ctx, "%s: %s verb '%s' (%s)", o->name,
				       idx == -EEXIST ? "ambiguous" : "unknown",
				       argv[1], list);
	}
	verb = &o->verbs[idx];
	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i])) {
			printf("Usage: aetherctl [--pin-dir DIR] [-j | -p] %s %s\n"
			       "\n%s\n", o->name, verb->usage, o->summary);
			return 0;
		}
	}
	snprintf(cmd, sizeof(cmd), "%s %s", o->name, verb->name);
	argv[1] = cmd;	/* errors name the full command */
	return verb->handler(ctx, argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	struct ctl_ctx ctx = { .pin_dir = AETH_DEFAULT_PIN_DIR,
			       .socket = AETH_DEFAULT_SOCKET };
	const char *names[N_OBJECTS];
	char list[256];
	int i, idx, ret;

	/* libbpf's own warnings would repeat what we report; keep errors */
	aeth_log_init(AETH_LOG_ERROR, false);
	aeth_log_hook_libbpf();
	if (take_global_options(&ctx, &argc, argv))
		return CTL_EXIT_USAGE;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			ctx.json = true;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--pretty")) {
			ctx.json = true;
			ctx.pretty = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_global_usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("aetherctl %s (commit %s)\n", AETH_VERSION,
			       AETH_COMMIT);
			return 0;
		} else if (!strcmp(a, "--pin-dir")) {
			if (i + 1 >= argc) {
				ctl_usage_error(&ctx, "--pin-dir needs a directory");
				return CTL_EXIT_USAGE;
			}
			ctx.pin_dir = argv[++i];
		} else if (!strncmp(a, "--pin-dir=", 10)) {
			ctx.pin_dir = a + 10;
		} else if (a[0] == '-') {
			/* later options may turn JSON on: look ahead first */
			for (int k = i + 1; k < argc && argv[k][0] == '-'; k++)
				if (!strcmp(argv[k], "-j") || !strcmp(argv[k], "-p"))
					ctx.json = true;
			ctl_usage_error(&ctx, "unknown option '%s' (see aetherctl --help)",
					a);
			return CTL_EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		if (ctx.json) {
			ctl_usage_error(&ctx, "missing OBJECT (see aetherctl --help)");
		} else {
			print_global_usage(stderr);
		}
		return CTL_EXIT_USAGE;
	}
	if (!ctx.pin_dir[0]) {
		ctl_usage_error(&ctx, "--pin-dir is empty");
		return CTL_EXIT_USAGE;
	}

	for (size_t o = 0; o < N_OBJECTS; o++)
		names[o] = objects[o]->name;
	if (is_help(argv[i])) {
		print_global_usage(stdout);
		return 0;
	}
	idx = match_name(argv[i], names, N_OBJECTS);
	if (idx < 0) {
		list_names(list, sizeof(list), names, N_OBJECTS,
			   idx == -EEXIST ? argv[i] : NULL);
		ctl_usage_error(&ctx, "%s object '%s' (%s)",
				idx == -EEXIST ? "ambiguous" : "unknown",
				argv[i], list);
		return CTL_EXIT_USAGE;
	}

	ret = run_object(&ctx, objects[idx], argc - i, argv + i);
	if (ctx.opened)
		aeth_pinned_close(&ctx.fds);
	if (ret == -EINVAL)
		return CTL_EXIT_USAGE;
	return ret ? CTL_EXIT_FAIL : 0;
}
