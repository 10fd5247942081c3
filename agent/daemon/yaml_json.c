/* YAML (libyaml's document API) to jansson, for kubeconfig files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "yaml_json.h"

#define MAX_DEPTH 64	/* aliases can nest a document into itself */

static json_t *scalar(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (!strcmp(v, "true") || !strcmp(v, "True"))
			return json_true();
		if (!strcmp(v, "false") || !strcmp(v, "False"))
			return json_false();
		if (!strcmp(v, "~") || !strcmp(v, "null") || !*v)
			return json_null();
	}
	return json_stringn(v, n->data.scalar.length);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth)
{
	json_t *out;

	if (!n || depth > MAX_DEPTH)
		return NULL;
	if (n->type == YAML_SCALAR_NODE)
		return scalar(n);
	if (n->type == YAML_SEQUENCE_NODE) {
		out = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     out && i < n->data.sequence.items.top; i++) {
			json_t *v = convert(doc, yaml_document_get_node(doc, *i),
					    depth + 1);

			if (!v || json_array_append_new(out, v))
				return json_decref(out), NULL;
		}
		return out;
	}
	out = json_object();
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     out && p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		json_t *v;

		if (!k || k->type != YAML_SCALAR_NODE)
			return json_decref(out), NULL;
		v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1);
		if (!v || json_object_set_new(out, (const char *)k->data.scalar.value, v))
			return json_decref(out), NULL;
	}
	return out;
}

json_t *aeth_yaml_load_file(const char *path, struct aeth_error *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	json_t *out = NULL;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		aeth_fail(err, -errno, path, "%s", strerror(errno));
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		aeth_fail(err, -ENOMEM, path, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		aeth_fail(err, -EINVAL, path, "line %zu, column %zu: %s",
			  parser.problem_mark.line + 1,
			  parser.problem_mark.column + 1,
			  parser.problem ? parser.problem : "not YAML");
	} else {
		out = convert(&doc, yaml_document_get_root_node(&doc), 0);
		if (!out)
			aeth_fail(err, -EINVAL, path,
				  "empty, or nested too deep");
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return out;
}
