// SPDX-License-Identifier: GPL-2.0-only
/* jit_lines OBJ PROG: loads program PROG of BPF object OBJ (its maps at
 * their declared sizes, nothing pinned, as bench/cost loads it: the same
 * JIT image) and prints where each source line starts in the JITed image,
 * as "OFFSET FILE:LINE SOURCE" lines (hex offset from the program's
 * symbol). The kernel keeps this for programs with BTF (jited_line_info);
 * Debian's bpftool cannot print it (its "dump jited" needs libbfd), and
 * perf's samples give symbol offsets: bench/profile/run.sh joins the two. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

static int load(const char *path, const char *name, struct bpf_object **objp)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *prog;
	struct bpf_map *map;

	if (!obj)
		return -errno;
	bpf_object__for_each_map(map, obj)
		bpf_map__set_pin_path(map, NULL);
	prog = bpf_object__find_program_by_name(obj, name);
	if (!prog || bpf_object__load(obj)) {
		bpf_object__close(obj);
		return -ENOENT;
	}
	*objp = obj;
	return bpf_program__fd(prog);
}

int main(int argc, char **argv)
{
	struct bpf_prog_info info;
	struct bpf_object *obj = NULL;
	__u32 len = sizeof(info), nl, njl, nk, lrs, jrs, i;
	__u64 *jited, *ksyms;
	struct btf *btf;
	char *lines;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s OBJ PROG\n", argv[0]);
		return 2;
	}
	fd = load(argv[1], argv[2], &obj);
	if (fd < 0) {
		fprintf(stderr, "jit_lines: loading %s of %s: %s\n", argv[2],
			argv[1], strerror(-fd));
		return 1;
	}
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "jit_lines: %s\n", strerror(errno));
		return 1;
	}
	nl = info.nr_line_info;
	njl = info.nr_jited_line_info;
	nk = info.nr_jited_ksyms;
	lrs = info.line_info_rec_size;
	jrs = info.jited_line_info_rec_size;
	if (!nl || nl != njl || !nk || jrs != sizeof(__u64)) {
		fprintf(stderr, "jit_lines: %s has no JITed line info\n",
			argv[1]);
		return 1;
	}
	lines = calloc(nl, lrs);
	jited = calloc(njl, jrs);
	ksyms = calloc(nk, sizeof(*ksyms));
	btf = btf__load_from_kernel_by_id(info.btf_id);
	if (!lines || !jited || !ksyms || !btf) {
		fprintf(stderr, "jit_lines: no memory or no BTF\n");
		return 1;
	}
	memset(&info, 0, sizeof(info));
	info.nr_line_info = nl;
	info.line_info_rec_size = lrs;
	info.line_info = (unsigned long)lines;
	info.nr_jited_line_info = njl;
	info.jited_line_info_rec_size = jrs;
	info.jited_line_info = (unsigned long)jited;
	info.nr_jited_ksyms = nk;
	info.jited_ksyms = (unsigned long)ksyms;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "jit_lines: %s\n", strerror(errno));
		return 1;
	}
	/* one program without subprograms: every line is in ksyms[0]'s image */
	for (i = 0; i < nl; i++) {
		const struct bpf_line_info *l = (void *)(lines + (size_t)i * lrs);
		const char *file = btf__name_by_offset(btf, l->file_name_off);
		const char *src = btf__name_by_offset(btf, l->line_off);
		const char *base = file ? strrchr(file, '/') : NULL;

		printf("%llx %s:%u %s\n",
		       (unsigned long long)(jited[i] - ksyms[0]),
		       base ? base + 1 : (file ? file : "?"),
		       BPF_LINE_INFO_LINE_NUM(l->line_col), src ? src : "");
	}
	btf__free(btf);
	bpf_object__close(obj);
	return 0;
}
