/* Credentials of aether-agent --kubernetes: kubeconfig (JSON or YAML) with a token,
 * a token file, inline certificates; in-cluster without a cluster. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "k8s_client.h"

/* The credentials' error as one line ("path: message"), as the agent logs it. */
static int kubeconfig_creds(const char *path, struct k8s_creds *c, char *msg,
			    size_t len)
{
	struct aeth_error err = { 0 };
	int ret = k8s_creds_kubeconfig(path, c, &err);

	aeth_error_format(&err, msg, len);
	return ret;
}

static int in_cluster_creds(struct k8s_creds *c, char *msg, size_t len)
{
	struct aeth_error err = { 0 };
	int ret = k8s_creds_in_cluster(c, &err);

	aeth_error_format(&err, msg, len);
	return ret;
}

static char path[64];

static void write_kubeconfig(const char *user, const char *cluster)
{
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/aeth-kubeconfig-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fprintf(f, "{\"apiVersion\": \"v1\", \"kind\": \"Config\",\n"
		" \"current-context\": \"ctx\",\n"
		" \"clusters\": [{\"name\": \"other\", \"cluster\": {\"server\": \"https://x\"}},\n"
		"   {\"name\": \"c\", \"cluster\": %s}],\n"
		" \"users\": [{\"name\": \"u\", \"user\": %s}],\n"
		" \"contexts\": [{\"name\": \"ctx\", \"context\": {\"cluster\": \"c\",\n"
		"   \"user\": \"u\", \"namespace\": \"aether-system\"}}]}\n",
		cluster, user);
	fclose(f);
}

static void teardown(void)
{
	if (path[0])
		unlink(path);
	path[0] = '\0';
}

TestSuite(k8s_client, .fini = teardown);

Test(k8s_client, kubeconfig_with_a_token_and_a_ca_file)
{
	struct k8s_creds c;
	char msg[300] = "";

	write_kubeconfig("{\"token\": \"abc.def\"}",
			 "{\"server\": \"https://192.0.2.1:6443/\", "
			 "\"certificate-authority\": \"/etc/ca.crt\"}");
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_str_eq(c.server, "https://192.0.2.1:6443");
	cr_assert_str_eq(c.ca_file, "/etc/ca.crt");
	cr_assert_str_eq(c.token, "abc.def");
	cr_assert_str_eq(c.ns, "aether-system");
	cr_assert_not(c.insecure);
	k8s_creds_free(&c);
}

Test(k8s_client, kubeconfig_with_inline_certificates_and_a_token_file)
{
	struct k8s_creds c;
	char msg[300] = "";

	/* "-----BEGIN X-----\n" in base64, broken over lines as some tools do */
	write_kubeconfig("{\"client-certificate-data\": \"LS0tLS1CRUdJTiBY\\nLS0tLS0K\","
			 " \"client-key-data\": \"a2V5\", \"tokenFile\": \"/run/tok\"}",
			 "{\"server\": \"https://[2001:db8::1]:6443\", "
			 "\"certificate-authority-data\": \"Y2E=\", "
			 "\"insecure-skip-tls-verify\": true}");
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(c.cert.len, 18);
	cr_assert_eq(memcmp(c.cert.data, "-----BEGIN X-----\n", 18), 0);
	cr_assert_eq(c.key.len, 3);
	cr_assert_eq(memcmp(c.key.data, "key", 3), 0);
	cr_assert_eq(c.ca.len, 2);
	cr_assert_eq(memcmp(c.ca.data, "ca", 2), 0);
	cr_assert_str_eq(c.token_file, "/run/tok");
	cr_assert_null(c.token);
	cr_assert(c.insecure);
	k8s_creds_free(&c);
}

Test(k8s_client, kubeconfig_refusals_say_why)
{
	struct k8s_creds c;
	char msg[300];

	write_kubeconfig("{}", "{\"server\": \"http://192.0.2.1:8080\"}");
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "needs a cluster with an https:// server"), "%s", msg);
	teardown();
	write_kubeconfig("{\"client-key-data\": \"not base64!\"}",
			 "{\"server\": \"https://192.0.2.1\"}");
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "a *-data field is not base64"), "%s", msg);
	cr_assert_eq(kubeconfig_creds("/nonexistent/kubeconfig", &c, msg,
					  sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "/nonexistent/kubeconfig: No such file"), "%s", msg);
}

Test(k8s_client, in_cluster_needs_the_service_environment)
{
	struct k8s_creds c;
	char msg[300];

	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_assert_eq(in_cluster_creds(&c, msg, sizeof(msg)), -ENOENT);
	cr_assert(strstr(msg, "give --kubeconfig"), "%s", msg);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	cr_assert_eq(in_cluster_creds(&c, msg, sizeof(msg)), 0);
	cr_assert_str_eq(c.server, "https://[fd00::1]:443");
	cr_assert_str_eq(c.token_file,
			 "/var/run/secrets/kubernetes.io/serviceaccount/token");
	k8s_creds_free(&c);
}

Test(k8s_client, kubeconfig_in_yaml_as_kubectl_writes_it)
{
	struct k8s_creds c;
	char msg[300] = "";
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/aeth-kubeconfig-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs("apiVersion: v1\n"
	      "clusters:\n"
	      "- cluster:\n"
	      "    certificate-authority-data: Y2E=\n"
	      "    server: https://192.0.2.1:6443\n"
	      "  name: prod\n"
	      "contexts:\n"
	      "- context:\n"
	      "    cluster: prod\n"
	      "    user: agent\n"
	      "  name: prod\n"
	      "current-context: prod\n"
	      "kind: Config\n"
	      "preferences: {}\n"
	      "users:\n"
	      "- name: agent\n"
	      "  user:\n"
	      "    token: \"tok-123\"\n", f);
	fclose(f);
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_str_eq(c.server, "https://192.0.2.1:6443");
	cr_assert_str_eq(c.token, "tok-123");
	cr_assert_eq(c.ca.len, 2);
	cr_assert_str_eq(c.ns, "default");
	k8s_creds_free(&c);
	teardown();

	write_kubeconfig("{}", "{\"server\": \"https://x\"}");
	f = fopen(path, "w");
	fputs("clusters:\n  - a\n b: [\n", f);
	fclose(f);
	cr_assert_eq(kubeconfig_creds(path, &c, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "line "), "%s", msg);
}
