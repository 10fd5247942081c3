/* A YAML file as a jansson value: for kubeconfig files, which kubectl
 * writes in YAML. */
#ifndef AETHER_YAML_JSON_H
#define AETHER_YAML_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "error.h"

/* The first document of the file; plain true/false become booleans, ~ and
 * null null, every other scalar a string. NULL with msg filled (line and
 * column) when it cannot be read. */
json_t *aeth_yaml_load_file(const char *path, struct aeth_error *err);

#endif /* AETHER_YAML_JSON_H */
