// SPDX-License-Identifier: GPL-2.0-only
/* verifier_log OBJ PROG LEVEL OUT: loads program PROG of BPF object OBJ
 * (nothing pinned) with the verifier's log at LEVEL (1 or 2) into a 1 GiB
 * buffer, writes the log to OUT and prints its last line, the count of
 * processed instructions ("processed N insns (limit 1000000) ..."), also
 * when the load fails. bench/profile/verifier.sh charges the log's
 * instructions to source lines: where the verifier's work goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#define LOG_SIZE ((size_t)1 << 30)

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	const char *last;
	char *log;
	FILE *out;
	size_t n;
	int err;

	if (argc != 5) {
		fprintf(stderr, "usage: verifier_log OBJ PROG LEVEL OUT\n");
		return 2;
	}
	log = calloc(1, LOG_SIZE);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!log || !obj) {
		fprintf(stderr, "verifier_log: %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	bpf_object__for_each_map(map, obj)
		bpf_map__set_pin_path(map, NULL);
	prog = bpf_object__find_program_by_name(obj, argv[2]);
	if (!prog) {
		fprintf(stderr, "verifier_log: no program %s\n", argv[2]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, false);
	prog = bpf_object__find_program_by_name(obj, argv[2]);
	bpf_program__set_autoload(prog, true);
	bpf_program__set_log_buf(prog, log, LOG_SIZE - 1);
	bpf_program__set_log_level(prog, atoi(argv[3]));
	err = bpf_object__load(obj);
	n = strlen(log);
	out = fopen(argv[4], "w");
	if (!out || fwrite(log, 1, n, out) != n || fclose(out)) {
		fprintf(stderr, "verifier_log: %s: %s\n", argv[4],
			strerror(errno));
		return 1;
	}
	last = strstr(log, "processed ");
	while (last && strstr(last + 1, "processed "))
		last = strstr(last + 1, "processed ");
	printf("%.*s\n", last ? (int)strcspn(last, "\n") : 0, last ? last : "");
	bpf_object__close(obj);
	return err ? 1 : 0;
}
