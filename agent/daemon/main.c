/* aether-agent: loads the data path, keeps the maps equal to the config
 * document from the file, SIGHUP and the API socket, and serves metrics. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "agent.h"
#include "agent_api.h"
#include "api.h"
#include "apply.h"
#include "bgp.h"
#include "config.h"
#include "health.h"
#include "k8s_render.h"
#include "k8s_watch.h"
#include "loader.h"
#include "log.h"
#include "log_event.h"
#include "metrics.h"
#include "node_detect.h"
#include "node_watch.h"
#include "version.h"
#include "watch.h"

#define DEFAULT_METRICS "127.0.0.1:9464"
#define WATCH_DEBOUNCE_MS 100	/* a burst of writes or a ConfigMap swap settles */
#define DETACH_WITHDRAW_WAIT_MS 1000	/* routers act on the withdrawal */

struct options {
	const char *config, *pin_dir, *socket, *metrics, *check_config;
	const char *render_k8s;		/* --render-kubernetes OBJECTS.json */
	const char *kubeconfig;
	bool kubernetes;
	bool detach, json;
	enum aeth_log_level level;
	struct aeth_node_hint node;	/* --interface, --node-address */
};

struct daemon {
	struct aeth_agent agent;
	struct event_base *base;
	struct aeth_health *health;
	const struct aeth_node_hint *node;
	struct aeth_k8s_watch *k8s;	/* --kubernetes */
	/* what run() starts after the first apply, stopped in reverse */
	struct aeth_metrics *metrics;
	struct aeth_api *api;
	struct aeth_watch *watch;
	struct aeth_node_watch *node_watch;
	struct event *ev_term, *ev_int;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: aether-agent --config FILE [--pin-dir DIR] [--socket PATH]\n"
		"                    [--metrics-addr HOST:PORT|none]\n"
		"                    [--log-format text|json]\n"
		"                    [--log-level error|warn|info|debug]\n"
		"                    [--interface NIC] [--node-address IP]...\n"
		"                    [--kubernetes [--kubeconfig FILE]]\n"
		"       aether-agent --check-config FILE\n"
		"       aether-agent --render-kubernetes OBJECTS.json --config FILE\n"
		"       aether-agent --detach [--pin-dir DIR] [--socket PATH]\n"
		"       aether-agent --version\n");
}

/* --help, and the man page (scripts/help2man.py reads this output). */
static void help(void)
{
	usage(stdout);
	fputs("\n"
	      "The aether-lb node agent: loads the XDP program onto the node's\n"
	      "NICs and keeps its maps equal to the configuration document.\n"
	      "It reapplies the document when the file changes, on SIGHUP and\n"
	      "on PUT /v1/config; exiting leaves the program attached.\n"
	      "\n"
	      "Options:\n"
	      "  --config FILE         the configuration document (JSON)\n"
	      "  --pin-dir DIR         where the maps are pinned (default "
	      AETH_DEFAULT_PIN_DIR ")\n"
	      "  --socket PATH         the API socket (default " AETH_DEFAULT_SOCKET ")\n"
	      "  --metrics-addr ADDR   /metrics, /healthz and /readyz on HOST:PORT,\n"
	      "                        [IPV6]:PORT, or none (default "
	      DEFAULT_METRICS ")\n"
	      "  --log-format FORMAT   text or json\n"
	      "  --log-level LEVEL     error, warn, info or debug\n"
	      "  --interface NIC       the NIC when the document names none\n"
	      "                        (default: the NIC that holds the node\n"
	      "                        address, else the default route's)\n"
	      "  --node-address IP     the node's address of IP's family when the\n"
	      "                        document has no node.addresses (once per\n"
	      "                        family; default: the NIC's addresses)\n"
	      "  --kubernetes          also serve the cluster's Services of type\n"
	      "                        LoadBalancer (SPEC.md section 8)\n"
	      "  --kubeconfig FILE     credentials for --kubernetes (default: the\n"
	      "                        pod's service account)\n"
	      "  --render-kubernetes OBJECTS.json\n"
	      "                        print the document --config plus the\n"
	      "                        Services of a kubectl List make, and exit\n"
	      "  --check-config FILE   validate FILE and exit (0 valid, 1 not)\n"
	      "  --detach              withdraw the BGP announcements (the BIRD\n"
	      "                        beside --socket), then remove the program\n"
	      "                        from the NICs and unpin\n"
	      "  --version             print the version and the commit\n"
	      "  -h, --help            this help\n", stdout);
}

static void print_version(void)
{
	printf("aether-agent %s (commit %s)\n", AETH_VERSION, AETH_COMMIT);
}

static int parse_node_option(bool iface, const char *arg,
			     struct aeth_node_hint *node)
{
	if (iface && (!*arg || strlen(arg) >= sizeof(node->interface) ||
		      strpbrk(arg, "/: \t\n"))) {
		fprintf(stderr, "aether-agent: --interface: not an interface "
			"name: '%s'\n", arg);
		return -EINVAL;
	}
	if (iface) {
		snprintf(node->interface, sizeof(node->interface), "%s", arg);
		return 0;
	}
	if (aeth_node_hint_address(node, arg)) {
		fprintf(stderr, "aether-agent: --node-address: not an IP "
			"address: '%s'\n", arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_CONFIG = 1, O_PIN_DIR, O_SOCKET, O_METRICS, O_LOG_FORMAT,
	       O_LOG_LEVEL, O_CHECK, O_DETACH, O_HELP, O_VERSION, O_IFACE,
	       O_NODE_ADDR, O_RENDER_K8S, O_K8S, O_KUBECONFIG };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "pin-dir", required_argument, NULL, O_PIN_DIR },
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "metrics-addr", required_argument, NULL, O_METRICS },
		{ "log-format", required_argument, NULL, O_LOG_FORMAT },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "check-config", required_argument, NULL, O_CHECK },
		{ "detach", no_argument, NULL, O_DETACH },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ "interface", required_argument, NULL, O_IFACE },
		{ "node-address", required_argument, NULL, O_NODE_ADDR },
		{ "render-kubernetes", required_argument, NULL, O_RENDER_K8S },
		{ "kubernetes", no_argument, NULL, O_K8S },
		{ "kubeconfig", required_argument, NULL, O_KUBECONFIG },
		{ 0 },
	};
	int c;

	o->pin_dir = AETH_DEFAULT_PIN_DIR;
	o->socket = AETH_DEFAULT_SOCKET;
	o->metrics = DEFAULT_METRICS;
	o->level = AETH_LOG_INFO;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: o->config = optarg; break;
		case O_PIN_DIR: o->pin_dir = optarg; break;
		case O_SOCKET: o->socket = optarg; break;
		case O_METRICS: o->metrics = optarg; break;
		case O_CHECK: o->check_config = optarg; break;
		case O_DETACH: o->detach = true; break;
		case O_RENDER_K8S: o->render_k8s = optarg; break;
		case O_K8S: o->kubernetes = true; break;
		case O_KUBECONFIG: o->kubeconfig = optarg; break;
		case O_LOG_FORMAT:
			if (strcmp(optarg, "json") == 0) {
				o->json = true;
			} else if (strcmp(optarg, "text")) {
				fprintf(stderr, "aether-agent: --log-format: "
					"text or json, not %s\n", optarg);
				return -EINVAL;
			}
			break;
		case O_LOG_LEVEL:
			if (aeth_log_level_parse(optarg, &o->level)) {
				fprintf(stderr, "aether-agent: --log-level: "
					"error, warn, info or debug, not %s\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'h':
		case O_HELP:
			help();
			exit(0);
		case O_VERSION:
			print_version();
			exit(0);
		case O_IFACE:
		case O_NODE_ADDR:
			if (parse_node_option(c == O_IFACE, optarg, &o->node))
				return -EINVAL;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aether-agent: unexpected argument %s\n",
			argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (o->kubeconfig && !o->kubernetes) {
		fprintf(stderr, "aether-agent: --kubeconfig needs --kubernetes\n");
		return -EINVAL;
	}
	if (!o->check_config && !o->detach && !o->config) {
		fprintf(stderr, "aether-agent: --config FILE is required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int check_config(const char *path)
{
	struct aeth_error err;
	struct aeth_config *cfg = NULL;
	char msg[600];
	int ret;

	memset(&err, 0, sizeof(err));
	ret = aeth_config_load_file(path, &cfg, &err);
	if (ret) {
		aeth_error_format(&err, msg, sizeof(msg));
		/* I/O errors already name the file; document errors do not */
		if (ret == -EINVAL)
			printf("%s: %s\n", path, msg);
		else
			printf("%s\n", msg);
		return 1;
	}
	/* what an apply on this node would refuse too */
	for (size_t i = 0; i < cfg->n_interfaces; i++) {
		if (if_nametoindex(cfg->interfaces[i]))
			continue;
		printf("%s: node.interfaces[%zu]: no interface %s on this "
		       "node\n", path, i, cfg->interfaces[i]);
		ret = 1;
	}
	aeth_config_free(cfg);
	if (ret)
		return 1;
	printf("ok\n");
	return 0;
}

static bool backend_up(void *arg, const char *service,
		       const struct aeth_ip *backend)
{
	struct daemon *d = arg;

	return !d->health || aeth_health_is_up(d->health, service, backend);
}

/* A backend's health flipped: rebuild the tables that change. */
static void health_changed(void *arg, const char *service,
			   const struct aeth_ip *backend, bool up)
{
	struct daemon *d = arg;

	aeth_apply_refresh(&d->agent);
	aeth_bgp_update(d->agent.bgp);
}

static int complete_node(struct aeth_agent *a, struct aeth_config *cfg,
			 struct aeth_error *err)
{
	struct daemon *d = (struct daemon *)a;	/* agent is the first member */

	return aeth_node_complete(cfg, d->node, err);
}

static void on_applied(struct aeth_agent *a)
{
	struct daemon *d = (struct daemon *)a;	/* agent is the first member */

	aeth_loader_attach(a, a->cfg);
	if (d->health && aeth_health_update(d->health, a->cfg))
		log_warn("updating health checks failed");
	aeth_bgp_update(a->bgp);
}

static int precheck(struct aeth_agent *a, const struct aeth_config *cfg,
		    struct aeth_error *err)
{
	int ret = aeth_loader_check_ifaces(a->fds.meta, a->pin_dir, cfg, err);

	return ret ? ret : aeth_loader_attach_new(a, cfg, err);
}

/* Before touching anything: is another agent serving this socket, or do
 * the interfaces carry a program that is not of this pin directory? */
static int refuse_takeover(const struct options *o,
			   const struct aeth_config *cfg)
{
	struct aeth_error cerr;
	char msg[600];
	int err;

	err = aeth_api_socket_in_use(o->socket);
	if (err) {
		log_err("API socket %s: %s; refusing to start", o->socket,
			err == -EADDRINUSE ? "another process serves it" :
			strerror(-err));
		return err;
	}
	memset(&cerr, 0, sizeof(cerr));
	err = aeth_loader_check_ifaces(0, o->pin_dir, cfg, &cerr);
	if (err) {
		aeth_error_format(&cerr, msg, sizeof(msg));
		log_err("%s: %s; refusing to start", o->config, msg);
	}
	return err;
}

static void on_file(void *arg, const char *text, size_t len, const char *source)
{
	struct daemon *d = arg;
	struct aeth_apply_result res;

	/* with --kubernetes the file is the base of the translation */
	if (d->k8s)
		aeth_k8s_watch_set_base(d->k8s, text, len);
	else
		aeth_apply_text(&d->agent, text, len, source, &res);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("signal %d: exiting; the program stays attached and the "
		 "maps pinned", (int)sig);
	event_base_loopbreak(d->base);
}

/* The directory of the API socket, absolute: BIRD runs detached and must
 * not depend on our working directory. */
static const char *state_dir(const char *socket, char *buf, size_t len)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof(dir), "%s", socket);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (!realpath(dir, buf))
		snprintf(buf, len, "%s", dir);
	return buf;
}

static struct aeth_metrics *start_metrics(struct event_base *base,
					  const char *addr, struct aeth_agent *a)
{
	struct aeth_metrics *m = aeth_metrics_start(base, addr, &a->fds,
						    &a->status);

	if (!m && errno == EINVAL)
		log_err("--metrics-addr %s: not A.B.C.D:PORT or [ADDRESS]:PORT "
			"with a literal address", addr);
	else if (!m)
		log_err("metrics listener on %s: %s", addr, strerror(errno));
	return m;
}

/* Read and check the document, refuse to take over what another agent
 * runs, and open (or re-open) the pinned maps sized by the document. */
static int open_agent(const struct options *o, struct aeth_agent *a,
		      const char *text, size_t len)
{
	struct aeth_error cerr = { 0 };
	struct aeth_config *cfg = NULL;
	char errbuf[600];
	int err;

	/* the document sizes the connection table: validate it first */
	err = aeth_config_parse(text, len, &cfg, &cerr);
	if (err) {
		aeth_error_format(&cerr, errbuf, sizeof(errbuf));
		log_err("%s: %s", o->config, errbuf);
		return err;
	}
	err = refuse_takeover(o, cfg);	/* logs why */
	if (!err) {
		err = aeth_loader_open(a, o->pin_dir, cfg->ct_max_entries,
				       &cerr);
		if (err) {
			aeth_error_format(&cerr, errbuf, sizeof(errbuf));
			log_err("%s", errbuf);
		}
	}
	aeth_config_free(cfg);
	return err;
}

/* The first apply: the program attached and the maps filled before any
 * other source of change starts. */
static int first_apply(const struct options *o, struct daemon *d,
		       const char *text, size_t len)
{
	struct aeth_agent *a = &d->agent;
	struct aeth_apply_result res;
	int err;

	d->health = aeth_health_start(d->base, health_changed, d);
	if (!d->health)
		log_warn("health checks unavailable: %s", strerror(errno));
	a->backend_up = backend_up;
	a->backend_up_arg = d;
	a->on_applied = on_applied;
	a->complete = complete_node;
	d->node = &o->node;
	a->precheck = precheck;

	if (aeth_apply_text(a, text, len, "file", &res))
		return -EINVAL;
	if (!a->status.attached) {
		log_err("not attached to every interface of %s", o->config);
		return -ENODEV;
	}
	/* entries a replaced program of a build without the filter wrote
	 * since the loader filled it (aeth_loader_fill_ct_bloom) */
	err = aeth_loader_fill_ct_bloom(a);
	if (err)
		log_err("%s: filling: %s", AETH_MAP_CT_BLOOM, strerror(-err));
	return 0;
}

/* The sources of change and the listeners, each logged when it fails. */
static int start_services(const struct options *o, struct daemon *d,
			  const char *text, size_t len)
{
	struct aeth_agent *a = &d->agent;
	char statebuf[PATH_MAX];

	if (strcmp(o->metrics, "none") &&
	    !(d->metrics = start_metrics(d->base, o->metrics, a)))
		return -1;
	d->api = aeth_api_start(d->base, o->socket, a);
	if (!d->api)
		return -1;
	/* BIRD's files live beside the API socket */
	a->bgp = aeth_bgp_start(d->base, a, state_dir(o->socket, statebuf,
						      sizeof(statebuf)));
	if (!a->bgp) {
		log_err("BGP supervisor: %s", strerror(errno));
		return -1;
	}
	a->status.scrape_more = aeth_bgp_scrape;
	a->status.scrape_more_arg = a->bgp;
	d->watch = aeth_watch_start(d->base, o->config, WATCH_DEBOUNCE_MS, text,
				    len, on_file, d);
	if (!d->watch) {
		log_err("watching %s: %s", o->config, strerror(errno));
		return -1;
	}
	if (o->kubernetes) {
		d->k8s = aeth_k8s_watch_start(d->base, a, o->kubeconfig, text,
					      len);
		if (!d->k8s)
			return -1;
		if (d->metrics)
			aeth_metrics_add_source(d->metrics,
						aeth_k8s_watch_metrics, d->k8s);
	}
	/* interfaces re-created and pins deleted under us */
	d->node_watch = aeth_node_watch_start(d->base, a,
					      AETH_NODE_WATCH_INTERVAL_MS);
	if (!d->node_watch) {
		log_err("watching the node: %s", strerror(errno));
		return -1;
	}
	d->ev_term = evsignal_new(d->base, SIGTERM, on_stop, d);
	d->ev_int = evsignal_new(d->base, SIGINT, on_stop, d);
	if (!d->ev_term || !d->ev_int || event_add(d->ev_term, NULL) ||
	    event_add(d->ev_int, NULL)) {
		log_err("cannot handle signals");
		return -1;
	}
	return 0;
}

/* Everything stopped; the program stays attached and BIRD keeps
 * announcing for the next agent. */
static void stop_all(struct daemon *d)
{
	struct aeth_agent *a = &d->agent;

	if (d->ev_term)
		event_free(d->ev_term);
	if (d->ev_int)
		event_free(d->ev_int);
	aeth_node_watch_stop(d->node_watch);
	aeth_k8s_watch_stop(d->k8s);
	aeth_watch_stop(d->watch);
	aeth_api_stop(d->api);
	a->status.scrape_more = NULL;
	aeth_bgp_stop(a->bgp);
	if (d->metrics)
		aeth_metrics_stop(d->metrics);
	if (d->health)
		aeth_health_stop(d->health);
	aeth_loader_close(a);	/* never detaches */
	if (d->base)
		event_base_free(d->base);
}

static int run(const struct options *o)
{
	struct daemon d;
	char *text = NULL;
	size_t len;
	int err, ret = 1;

	memset(&d, 0, sizeof(d));
	err = aeth_read_file(o->config, AETH_CONFIG_MAX_BYTES, &text, &len);
	if (err) {
		log_err("reading %s: %s", o->config,
			aeth_read_file_strerror(err));
		return 1;
	}
	if (open_agent(o, &d.agent, text, len))
		goto out;
	d.base = event_base_new();
	if (!d.base) {
		log_err("cannot create the event loop");
		goto out;
	}
	if (first_apply(o, &d, text, len) || start_services(o, &d, text, len))
		goto out;
	log_info("running: pin dir %s, socket %s, metrics %s", o->pin_dir,
		 o->socket, o->metrics);
	event_base_dispatch(d.base);
	ret = 0;
out:
	stop_all(&d);
	free(text);
	return ret;
}

int main(int argc, char **argv)
{
	struct options o;
	char errbuf[600];

	memset(&o, 0, sizeof(o));
	if (parse_options(argc, argv, &o))
		return 1;
	aeth_log_init(o.level, o.json);
	aeth_log_hook_libbpf();
	aeth_log_hook_libevent();
	signal(SIGPIPE, SIG_IGN);
	/* until the watch takes SIGHUP over, it must not end the daemon */
	signal(SIGHUP, SIG_IGN);

	if (o.check_config)
		return check_config(o.check_config);
	if (o.render_k8s)
		return aeth_k8s_render(o.render_k8s, o.config);
	if (o.detach) {
		struct aeth_error derr;
		char dir[PATH_MAX];

		/* routers move the flows away before the program goes */
		if (aeth_bgp_withdraw_all(state_dir(o.socket, dir, sizeof(dir)),
					  DETACH_WITHDRAW_WAIT_MS) < 0)
			log_warn("could not stop bird in %s; detaching anyway", dir);
		memset(&derr, 0, sizeof(derr));
		if (aeth_loader_detach(o.pin_dir, &derr)) {
			aeth_error_format(&derr, errbuf, sizeof(errbuf));
			log_err("%s", errbuf);
			return 1;
		}
		log_info("detached and unpinned %s", o.pin_dir);
		return 0;
	}
	return run(&o);
}
