/* A periodic look at what the agent put on the node: the pins under the
 * pin directory and the program on each configured interface. When nothing
 * changed a tick costs a stat per pin, and per interface one
 * if_nametoindex and one bpf_xdp_query. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>
#include <event2/event.h>
#include <net/if.h>

#include "aether/names.h"
#include "loader.h"
#include "log.h"
#include "node_watch.h"

struct slot_state {
	char name[IF_NAMESIZE];
	bool absent_logged;	/* "is gone" said once until it is back */
	/* an attach that failed is retried only once the interface or the
	 * program on it changed, so a persistent failure logs once */
	int failed_ifindex;
	__u32 failed_prog;
};

struct aeth_node_watch {
	struct aeth_agent *a;
	struct event *ev;
	struct slot_state slots[AETH_MAX_INTERFACES];
	bool pin_err_logged;
};

static void check_pins(struct aeth_node_watch *w)
{
	char names[512];
	int n = aeth_loader_repin(w->a, names, sizeof(names));

	if (n < 0) {
		if (!w->pin_err_logged)
			log_err("%s: pins are missing and cannot be restored: "
				"%s", w->a->pin_dir, strerror(-n));
		w->pin_err_logged = true;
		return;
	}
	w->pin_err_logged = false;
	if (n > 0)
		log_warn("%s: %d pinned map%s had been removed: re-pinned %s",
			 w->a->pin_dir, n, n == 1 ? "" : "s", names);
}

static void check_slot(struct aeth_node_watch *w, size_t i)
{
	struct aeth_agent *a = w->a;
	const char *name = a->cfg->interfaces[i];
	const struct aeth_iface_status *st = &a->meta.ifaces[i];
	struct slot_state *s = &w->slots[i];
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int ifindex;
	__u32 cur;

	if (strncmp(s->name, name, sizeof(s->name))) {
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
	}
	ifindex = if_nametoindex(name);
	/* only ENODEV says the interface is gone; out of descriptors (the
	 * lookup needs a socket) says nothing about it */
	if (!ifindex && errno != ENODEV)
		return;
	if (!ifindex) {
		if (!s->absent_logged) {
			log_warn("%s: interface is gone; attaching again once "
				 "it is back", name);
			aeth_loader_mark_absent(a, i);
		}
		s->absent_logged = true;
		return;
	}
	if (bpf_xdp_query(ifindex, 0, &q))
		return;		/* gone between the two calls: next tick */
	cur = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
	if ((int)st->ifindex == ifindex && cur && cur == st->prog_id) {
		s->absent_logged = false;
		s->failed_ifindex = 0;
		return;
	}
	if (s->failed_ifindex == ifindex && s->failed_prog == cur)
		return;
	if (st->ifindex && (int)st->ifindex != ifindex)
		log_warn("%s: ifindex changed from %u to %d; attaching again",
			 name, st->ifindex, ifindex);
	else if (s->absent_logged || !st->ifindex)
		log_warn("%s: interface is back (ifindex %d); attaching again",
			 name, ifindex);
	else if (!cur)
		log_warn("%s: our program %u is no longer attached; attaching "
			 "again", name, st->prog_id);
	else
		log_warn("%s: program %u is attached instead of ours (%u); "
			 "attaching again", name, cur, st->prog_id);
	s->absent_logged = false;
	if (aeth_loader_reattach(a, i)) {
		s->failed_ifindex = ifindex;
		s->failed_prog = cur;
		log_err("%s: not attached; retried when the interface changes "
			"or at the next apply", name);
		return;
	}
	s->failed_ifindex = 0;
	log_info("%s: attached again: ifindex %d, %s mode, program %u", name,
		 ifindex, aeth_xdp_mode_names[a->meta.ifaces[i].mode],
		 a->meta.ifaces[i].prog_id);
}

void aeth_node_watch_check(struct aeth_node_watch *w)
{
	struct aeth_agent *a = w->a;

	if (!a->skel)
		return;
	check_pins(w);
	if (!a->cfg)
		return;		/* nothing applied yet */
	for (size_t i = 0; i < a->cfg->n_interfaces &&
			   i < AETH_MAX_INTERFACES; i++)
		check_slot(w, i);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	aeth_node_watch_check(arg);
}

struct aeth_node_watch *aeth_node_watch_start(struct event_base *base,
					      struct aeth_agent *a,
					      unsigned int interval_ms)
{
	struct timeval tv = {
		.tv_sec = interval_ms / 1000,
		.tv_usec = (interval_ms % 1000) * 1000,
	};
	struct aeth_node_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->a = a;
	w->ev = event_new(base, -1, EV_PERSIST, on_tick, w);
	if (!w->ev || event_add(w->ev, &tv)) {
		if (w->ev)
			event_free(w->ev);
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	return w;
}

void aeth_node_watch_stop(struct aeth_node_watch *w)
{
	if (!w)
		return;
	event_free(w->ev);
	free(w);
}
