/*
 * dqlite-node: run one dqlite server node until SIGTERM or SIGINT.
 *
 *   dqlite-node --id N --address HOST:PORT --dir DATA_DIR
 *               [--bind ADDR] [--latency-ms MS] [--failure-domain N]
 *
 * Once the node accepts connections, one line "ready <address>" is written to
 * stdout. On SIGTERM or SIGINT the node is stopped and the program exits 0.
 * Any failure is reported on stderr and the program exits 1.
 *
 * Node 1 bootstraps a new single-voter cluster on its first start; other nodes
 * start empty and wait for a client to add them to the cluster.
 */

#define _POSIX_C_SOURCE 200809L

#include <dqlite.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

static const char *program = "dqlite-node";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s --id N --address HOST:PORT --dir DATA_DIR\n"
		"       [--bind ADDR] [--latency-ms MS] [--failure-domain N]\n"
		"       %s --version\n"
		"\n"
		"Runs one dqlite node until SIGTERM or SIGINT.\n"
		"\n"
		"  --id N              node id (> 0); node 1 bootstraps a new cluster\n"
		"  --address HOST:PORT address advertised to clients and other nodes\n"
		"  --dir DATA_DIR      data directory (created if missing)\n"
		"  --bind ADDR         address to listen on (default: --address);\n"
		"                      \"@name\" is an abstract unix socket\n"
		"  --latency-ms MS     expected one-way network latency in ms\n"
		"  --failure-domain N  failure domain reported by DESCRIBE\n"
		"\n"
		"Prints \"ready <address>\" on stdout once the node accepts connections.\n"
		"--version prints \"libdqlite N\", the version number of the libdqlite\n"
		"it runs with (major * 10000 + minor * 100 + patch), and exits.\n",
		program, program);
}

static int parse_u64(const char *option, const char *text,
		     unsigned long long *value)
{
	char *end = NULL;
	if (text[0] == '\0' || text[0] == '-') {
		fprintf(stderr, "%s: invalid value for %s: '%s'\n", program,
			option, text);
		return -1;
	}
	errno = 0;
	*value = strtoull(text, &end, 10);
	if (errno != 0 || end == NULL || *end != '\0') {
		fprintf(stderr, "%s: invalid value for %s: '%s'\n", program,
			option, text);
		return -1;
	}
	return 0;
}

static int ensure_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create data directory '%s': %s\n",
			program, dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0) {
		fprintf(stderr, "%s: cannot access data directory '%s': %s\n",
			program, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: '%s' is not a directory\n", program, dir);
		return -1;
	}
	return 0;
}

static void fail(dqlite_node *node, const char *what, int rv)
{
	const char *msg = node != NULL ? dqlite_node_errmsg(node) : NULL;
	fprintf(stderr, "%s: %s failed (%d): %s\n", program, what, rv,
		msg != NULL && msg[0] != '\0' ? msg : "no details");
}

int main(int argc, char *argv[])
{
	unsigned long long id = 0;
	const char *address = NULL;
	const char *dir = NULL;
	const char *bind = NULL;
	unsigned long long latency_ms = 0;
	int have_latency = 0;
	unsigned long long failure_domain = 0;
	int have_failure_domain = 0;
	dqlite_node *node = NULL;
	sigset_t stop_signals;
	int sig = 0;
	int rv;
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value;
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("libdqlite %d\n", dqlite_version_number());
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "%s: missing value for '%s'\n", program,
				arg);
			usage(stderr);
			return 1;
		}
		value = argv[++i];
		if (strcmp(arg, "--id") == 0) {
			if (parse_u64(arg, value, &id) != 0) {
				return 1;
			}
		} else if (strcmp(arg, "--address") == 0) {
			address = value;
		} else if (strcmp(arg, "--dir") == 0) {
			dir = value;
		} else if (strcmp(arg, "--bind") == 0) {
			bind = value;
		} else if (strcmp(arg, "--latency-ms") == 0) {
			if (parse_u64(arg, value, &latency_ms) != 0) {
				return 1;
			}
			have_latency = 1;
		} else if (strcmp(arg, "--failure-domain") == 0) {
			if (parse_u64(arg, value, &failure_domain) != 0) {
				return 1;
			}
			have_failure_domain = 1;
		} else {
			fprintf(stderr, "%s: unknown option '%s'\n", program,
				arg);
			usage(stderr);
			return 1;
		}
	}

	if (id == 0 || address == NULL || address[0] == '\0' || dir == NULL ||
	    dir[0] == '\0') {
		fprintf(stderr, "%s: --id (> 0), --address and --dir are required\n",
			program);
		usage(stderr);
		return 1;
	}
	if (have_latency && (latency_ms == 0 || latency_ms > 3600000ULL)) {
		fprintf(stderr, "%s: --latency-ms must be in 1..3600000\n",
			program);
		return 1;
	}
	if (bind == NULL) {
		bind = address;
	}

	/* A peer closing its socket must not kill the node. */
	signal(SIGPIPE, SIG_IGN);

	/* Block the stop signals before any thread exists, so that every thread
	 * started by libdqlite inherits the mask and sigwait() below receives
	 * them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	rv = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	if (rv != 0) {
		fprintf(stderr, "%s: pthread_sigmask: %s\n", program,
			strerror(rv));
		return 1;
	}

	if (ensure_dir(dir) != 0) {
		return 1;
	}

	rv = dqlite_node_create((dqlite_node_id)id, address, dir, &node);
	if (rv != 0) {
		fail(node, "dqlite_node_create", rv);
		return 1;
	}
	/* libdqlite 1.11 opens the listening socket here already, so a port in
	 * use is reported by this call (without an error message). */
	rv = dqlite_node_set_bind_address(node, bind);
	if (rv != 0) {
		fprintf(stderr,
			"%s: cannot listen on '%s' (address in use, or not a "
			"valid HOST:PORT or @name?)\n",
			program, bind);
		fail(node, "dqlite_node_set_bind_address", rv);
		dqlite_node_destroy(node);
		return 1;
	}
	if (have_latency) {
		rv = dqlite_node_set_network_latency_ms(node,
							(unsigned)latency_ms);
		if (rv != 0) {
			fail(node, "dqlite_node_set_network_latency_ms", rv);
			dqlite_node_destroy(node);
			return 1;
		}
	}
	if (have_failure_domain) {
		rv = dqlite_node_set_failure_domain(node, failure_domain);
		if (rv != 0) {
			fail(node, "dqlite_node_set_failure_domain", rv);
			dqlite_node_destroy(node);
			return 1;
		}
	}
	rv = dqlite_node_start(node);
	if (rv != 0) {
		fail(node, "dqlite_node_start", rv);
		dqlite_node_destroy(node);
		return 1;
	}

	printf("ready %s\n", address);
	fflush(stdout);

	for (;;) {
		rv = sigwait(&stop_signals, &sig);
		if (rv == 0) {
			break;
		}
		if (rv != EINTR) {
			fprintf(stderr, "%s: sigwait: %s\n", program,
				strerror(rv));
			break;
		}
	}

	rv = dqlite_node_stop(node);
	if (rv != 0) {
		fail(node, "dqlite_node_stop", rv);
		dqlite_node_destroy(node);
		return 1;
	}
	dqlite_node_destroy(node);
	return 0;
}
