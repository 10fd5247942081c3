/* aether-agent --render-kubernetes OBJECTS.json --config FILE: the
 * translation of SPEC.md section 8, offline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "k8s_render.h"
#include "k8s_translate.h"
#include "file_util.h"

static json_t *load_objects(const char *path)
{
	json_error_t jerr;
	json_t *list;

	list = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!list)
		fprintf(stderr, "aether-agent: %s: line %d, column %d: %s\n",
			path, jerr.line, jerr.column, jerr.text);
	return list;
}

int aeth_k8s_render(const char *objects, const char *config)
{
	struct aeth_error err;
	struct aeth_k8s_result res;
	char msg[900], *base = NULL;
	json_t *list = NULL;
	size_t len;
	int ret;

	ret = aeth_read_file(config, AETH_CONFIG_MAX_BYTES, &base, &len);
	if (ret) {
		fprintf(stderr, "aether-agent: %s: %s\n", config, strerror(-ret));
		return 1;
	}
	list = load_objects(objects);
	if (!list) {
		free(base);
		return 1;
	}
	ret = aeth_k8s_translate(base, len, list, &res, &err);
	json_decref(list);
	free(base);
	if (ret) {
		aeth_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "aether-agent: %s: %s\n",
			!strcmp(err.path, "objects") ? objects : config,
			ret == -EINVAL ? msg : strerror(-ret));
		return 1;
	}
	/* The document is printed with what could be used; each object left
	 * out is named on stderr and makes the exit status 1. */
	fwrite(res.text, 1, res.len, stdout);
	for (size_t i = 0; i < res.n_rejects; i++) {
		aeth_k8s_reject_format(&res.rejects[i], msg, sizeof(msg));
		fprintf(stderr, "aether-agent: %s (%s)\n", msg,
			aeth_k8s_reason_names[res.rejects[i].reason]);
	}
	ret = res.n_rejects ? 1 : 0;
	aeth_k8s_result_free(&res);
	return ret;
}
