/*
 * tools/maptool: the shard map's command-line tool (see maptool.h, doc/shard-map.md).
 *
 * Each command is a row of a table (name, how many operands, which options, handler). The map
 * logic is shard/map.c's and the text shard/mapfile.c's: this file reads arguments and files,
 * writes maps and prints what changed. Moves are always reported by comparing two maps by
 * shard name, so `plan` and `diff` print the same figures for the same pair of maps. The
 * fraction of keys moved is the fraction of buckets moved (keys spread evenly over buckets);
 * the ideal is the least any map could move: the sum of the shares shards must gain.
 */
#include "tools/maptool.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shard/map.h"
#include "shard/mapfile.h"

#define MAP_FILE_MAX (64u << 20) /* bytes: far above any real map */
#define RANGES_SHOWN 12          /* ranges listed per pair of shards before "and N more" */

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

/* Options, as bits of struct command's allowed. */
enum { OPT_OUT = 1, OPT_BUCKETS = 2, OPT_SEED = 4, OPT_VERSION = 8, OPT_REMOVE = 16 };

struct args {
	const char *out; /* -o FILE */
	uint64_t buckets, seed, version;
	bool remove;
	unsigned given; /* OPT_* bits seen */
	int n;          /* operands */
	char **op;
};

struct command {
	const char *name;
	int min, max; /* operands; max -1: no limit */
	unsigned allowed;
	int (*run)(struct args *a);
	const char *usage;
};

static const struct command COMMANDS[];

static void usage(FILE *f)
{
	fprintf(f, "usage: pgmux --shard-map COMMAND ...\n\n");
	for (const struct command *c = COMMANDS; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\nSHARD[=WEIGHT]: a shard's name (letters, digits, _ and -) and its weight "
		   "(default 1).\nWithout -o the map goes to stdout. See doc/shard-map.md.\n");
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "pgmux --shard-map: %s%s%s\n\n", what, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return EXIT_USAGE;
}

/* A whole decimal number into *v; false when arg is not one. */
static bool number(const char *arg, uint64_t *v)
{
	char *end;

	if (!arg || *arg < '0' || *arg > '9')
		return false;
	errno = 0;
	*v = strtoull(arg, &end, 10);
	return !*end && !errno;
}

/* Options anywhere among the operands ("--" ends them); false (usage said) when wrong. */
static bool read_args(int argc, char **argv, struct args *a, int *status)
{
	static const struct {
		const char *name;
		unsigned bit;
	} valued[] = {
		{ "--buckets", OPT_BUCKETS },
		{ "--seed", OPT_SEED },
		{ "--version", OPT_VERSION },
	};
	bool options = true;

	a->op = calloc((size_t)argc + 1, sizeof(*a->op));
	if (!a->op) {
		*status = EXIT_REFUSED;
		return false;
	}
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		size_t v;

		if (!options || arg[0] != '-' || strcmp(arg, "-") == 0) {
			a->op[a->n++] = argv[i];
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options = false;
		} else if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
			if (++i == argc)
				return *status = usage_error("-o needs a file", NULL), false;
			a->out = argv[i];
			a->given |= OPT_OUT;
		} else if (strcmp(arg, "--remove") == 0) {
			a->remove = true;
			a->given |= OPT_REMOVE;
		} else {
			for (v = 0; v < sizeof(valued) / sizeof(valued[0]); v++)
				if (strcmp(arg, valued[v].name) == 0)
					break;
			if (v == sizeof(valued) / sizeof(valued[0]))
				return *status = usage_error("unknown option", arg), false;
			if (!number(i + 1 < argc ? argv[i + 1] : NULL,
				    valued[v].bit == OPT_BUCKETS ? &a->buckets
				    : valued[v].bit == OPT_SEED  ? &a->seed
								 : &a->version))
				return *status = usage_error("a number must follow", arg), false;
			a->given |= valued[v].bit;
			i++;
		}
	}
	return true;
}

static bool read_file(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 65536, n = 0;
	char *p = malloc(cap), *bigger;

	if (!f || !p) {
		fprintf(stderr, "pgmux --shard-map: cannot read %s: %s\n", path, strerror(errno));
		goto fail;
	}
	for (size_t got; (got = fread(p + n, 1, cap - n, f)) > 0;) {
		n += got;
		if (n == cap) {
			if (cap >= MAP_FILE_MAX) {
				fprintf(stderr,
					"pgmux --shard-map: %s is larger than %u MB: not a map\n",
					path, MAP_FILE_MAX >> 20);
				goto fail;
			}
			if (!(bigger = realloc(p, cap * 2)))
				goto fail;
			p = bigger;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "pgmux --shard-map: cannot read %s: %s\n", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	*text = p;
	*len = n;
	return true;
fail:
	if (f)
		fclose(f);
	free(p);
	return false;
}

/* The map in a file, checked whole; NULL (said on stderr, with what to do) when refused. */
static struct shard_map *load(const char *path)
{
	char *text, err[512];
	size_t len;
	struct shard_map *m;

	if (!read_file(path, &text, &len))
		return NULL;
	m = shard_map_parse(text, len, err, sizeof(err));
	free(text);
	if (!m)
		fprintf(stderr,
			"%s: %s\n%s: refused whole; restore the last good copy, or write a new map "
			"with pgmux --shard-map create / plan\n",
			path, err, path);
	return m;
}

/* The map to path (written aside and renamed over it), or to stdout when path is NULL. */
static bool save(const struct shard_map *m, const char *path)
{
	char *text = shard_map_format(m), tmp[4096];
	FILE *f;
	bool ok;

	if (!text) {
		fprintf(stderr, "pgmux --shard-map: out of memory\n");
		return false;
	}
	if (!path) {
		ok = fputs(text, stdout) >= 0 && fflush(stdout) == 0;
		free(text);
		return ok;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	f = fopen(tmp, "w");
	ok = f && fputs(text, f) >= 0;
	ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	ok = f && fclose(f) == 0 && ok;
	if (ok && rename(tmp, path) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, "pgmux --shard-map: cannot write %s: %s (nothing was changed)\n",
			path, strerror(errno));
		remove(tmp);
	}
	free(text);
	return ok;
}

/* SHARD[=WEIGHT] operands into names and weights; false (said) when one is wrong. */
static bool read_shards(char **op, int n, const char **names, double *weights)
{
	if (n > SHARD_MAX) {
		fprintf(stderr, "pgmux --shard-map: at most %d shards\n", SHARD_MAX);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char *eq = strchr(op[i], '='), *end;

		names[i] = op[i];
		weights[i] = 1;
		if (!eq)
			continue;
		*eq = '\0';
		errno = 0;
		weights[i] = strtod(eq + 1, &end);
		if (*end || end == eq + 1 || errno || !isfinite(weights[i]) || !(weights[i] > 0)) {
			fprintf(stderr,
				"pgmux --shard-map: %s=%s: a weight is a positive number, as %s=2\n",
				op[i], eq + 1, op[i]);
			return false;
		}
	}
	return true;
}

static int shard_index(const struct shard_map *m, const char *name)
{
	for (int i = 0; i < m->n_shards; i++)
		if (strcmp(m->names[i], name) == 0)
			return i;
	return -1;
}

/* A run of buckets that moved between the same two shards. */
struct span {
	uint32_t lo, hi;
};

/* The buckets that went from one shard to another, as ranges. */
struct pair {
	const char *from, *to;
	uint32_t buckets;
	int n_spans, cap_spans;
	struct span *spans;
};

static struct pair *pair_of(struct pair *pairs, int *n, const char *from, const char *to)
{
	for (int i = 0; i < *n; i++)
		if (pairs[i].from == from && pairs[i].to == to)
			return &pairs[i];
	pairs[*n] = (struct pair){ from, to, 0, 0, 0, NULL };
	return &pairs[(*n)++];
}

static bool add_bucket(struct pair *p, uint32_t b)
{
	struct span *s = p->n_spans ? &p->spans[p->n_spans - 1] : NULL;

	p->buckets++;
	if (s && s->hi + 1 == b) {
		s->hi = b;
		return true;
	}
	if (p->n_spans == p->cap_spans) {
		int cap = p->cap_spans ? p->cap_spans * 2 : 8;
		struct span *more = realloc(p->spans, (size_t)cap * sizeof(*more));

		if (!more)
			return false;
		p->spans = more;
		p->cap_spans = cap;
	}
	p->spans[p->n_spans++] = (struct span){ b, b };
	return true;
}

static void print_pair(FILE *out, const struct pair *p, uint32_t n_buckets)
{
	fprintf(out, "  %s -> %s: %" PRIu32 " bucket%s (%.4f of keys):", p->from, p->to, p->buckets,
		p->buckets == 1 ? "" : "s", (double)p->buckets / n_buckets);
	for (int i = 0; i < p->n_spans && i < RANGES_SHOWN; i++) {
		if (p->spans[i].lo == p->spans[i].hi)
			fprintf(out, " %" PRIu32, p->spans[i].lo);
		else
			fprintf(out, " %" PRIu32 "-%" PRIu32, p->spans[i].lo, p->spans[i].hi);
	}
	if (p->n_spans > RANGES_SHOWN)
		fprintf(out, " and %d more ranges", p->n_spans - RANGES_SHOWN);
	fprintf(out, "\n");
}

/*
 * Ranges named by one MOVE BUCKETS line: a move takes at most 64 ranges and 255 characters
 * (shard/move.h); 16 ranges of 5-digit buckets stay well inside both.
 */
#define COMMAND_RANGES 16

/* The admin console commands that make p's moves online, each for up to COMMAND_RANGES ranges. */
static void print_commands(FILE *out, const struct pair *p)
{
	for (int i = 0; i < p->n_spans; i++) {
		const struct span *s = &p->spans[i];

		if (i % COMMAND_RANGES == 0)
			fprintf(out, "  MOVE BUCKETS <section> ");
		else
			fprintf(out, ",");
		if (s->lo == s->hi)
			fprintf(out, "%" PRIu32, s->lo);
		else
			fprintf(out, "%" PRIu32 "-%" PRIu32, s->lo, s->hi);
		if (i % COMMAND_RANGES == COMMAND_RANGES - 1 || i == p->n_spans - 1)
			fprintf(out, " TO %s;\n", p->to);
	}
}

/* The least fraction of keys any map could move from old to new's weights. */
static double ideal_moved(const struct shard_map *old, const struct shard_map *m)
{
	uint32_t *counts = calloc((size_t)old->n_shards, sizeof(*counts));
	double total = 0, gain = 0;

	if (!counts)
		return NAN;
	shard_map_counts(old, counts);
	for (int i = 0; i < m->n_shards; i++)
		total += m->weights[i];
	for (int i = 0; i < m->n_shards; i++) {
		int j = shard_index(old, m->names[i]);
		double had = j < 0 ? 0 : (double)counts[j] / old->n_buckets;

		if (m->weights[i] / total > had)
			gain += m->weights[i] / total - had;
	}
	free(counts);
	return gain;
}

/*
 * Print the buckets whose shard changed from old to m (same buckets and seed), by pair of
 * shards, then the fraction of keys moved, the ideal and what moved between shards both keep.
 */
static bool print_moves(FILE *out, const struct shard_map *old, const struct shard_map *m)
{
	struct pair *pairs = calloc((size_t)old->n_shards * (size_t)m->n_shards, sizeof(*pairs));
	uint32_t moved = 0, between_kept = 0;
	int n = 0;
	bool ok = pairs != NULL;

	for (uint32_t b = 0; ok && b < m->n_buckets; b++) {
		const char *from = old->names[old->owner[b]], *to = m->names[m->owner[b]];

		if (strcmp(from, to) == 0)
			continue;
		moved++;
		if (shard_index(m, from) >= 0 && shard_index(old, to) >= 0)
			between_kept++;
		ok = add_bucket(pair_of(pairs, &n, from, to), b);
	}
	if (ok) {
		fprintf(out, "buckets moved, from -> to:%s\n", n ? "" : " none");
		for (int i = 0; i < n; i++)
			print_pair(out, &pairs[i], m->n_buckets);
		fprintf(out,
			"moved %" PRIu32 " of %" PRIu32 " buckets: %.4f of the keys (ideal %.4f); "
			"%" PRIu32 " between shards in both maps\n",
			moved, m->n_buckets, (double)moved / m->n_buckets, ideal_moved(old, m),
			between_kept);
		if (n)
			fprintf(out, "to move them online, in pgmux's admin console (<section>: "
				     "the [shards.NAME] section's NAME):\n");
		for (int i = 0; i < n; i++)
			print_commands(out, &pairs[i]);
	} else {
		fprintf(stderr, "pgmux --shard-map: out of memory\n");
	}
	for (int i = 0; pairs && i < n; i++)
		free(pairs[i].spans);
	free(pairs);
	return ok;
}

static void print_key(FILE *out, const char *key)
{
	fprintf(out, "'");
	for (; *key; key++)
		fprintf(out, *key == '\'' ? "''" : "%c", *key);
	fprintf(out, "'");
}

/* Overrides added, removed or moved to another shard from old to m. */
static void print_override_changes(FILE *out, const struct shard_map *old,
				   const struct shard_map *m)
{
	int changes = 0;

	for (int i = 0; i < m->n_overrides; i++) {
		int j = shard_map_override_index(old, m->overrides[i].key);
		const char *to = m->names[m->overrides[i].shard];

		if (j >= 0 && strcmp(old->names[old->overrides[j].shard], to) == 0)
			continue;
		fprintf(out, "  override ");
		print_key(out, m->overrides[i].key);
		if (j < 0)
			fprintf(out, " added: on %s\n", to);
		else
			fprintf(out, " moved: %s -> %s\n", old->names[old->overrides[j].shard], to);
		changes++;
	}
	for (int j = 0; j < old->n_overrides; j++) {
		if (shard_map_override_index(m, old->overrides[j].key) >= 0)
			continue;
		fprintf(out, "  override ");
		print_key(out, old->overrides[j].key);
		fprintf(out, " removed: was on %s\n", old->names[old->overrides[j].shard]);
		changes++;
	}
	fprintf(out, "overrides changed: %d\n", changes);
}

static int cmd_create(struct args *a)
{
	const char *names[SHARD_MAX];
	double weights[SHARD_MAX];
	char err[512];
	struct shard_map *m;
	bool ok;

	if (!read_shards(a->op, a->n, names, weights))
		return EXIT_REFUSED;
	if (!(a->given & OPT_BUCKETS))
		a->buckets = 16384;
	if (a->buckets > UINT32_MAX || ((a->given & OPT_VERSION) && a->version == 0)) {
		fprintf(stderr, "pgmux --shard-map: buckets is a power of two up to 65536, version "
				"starts at 1\n");
		return EXIT_REFUSED;
	}
	m = shard_map_create((uint32_t)a->buckets, a->seed, names, weights, a->n, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "pgmux --shard-map: %s\n", err);
		return EXIT_REFUSED;
	}
	if (a->given & OPT_VERSION) {
		m->version = a->version;
		m->checksum = shard_map_checksum(m);
	}
	ok = save(m, a->out);
	if (ok && a->out)
		printf("%s: version %" PRIu64 ", %" PRIu32
		       " buckets, %d shards, checksum %016" PRIx64 "\n",
		       a->out, m->version, m->n_buckets, m->n_shards, m->checksum);
	shard_map_free(m);
	return ok ? EXIT_OK : EXIT_REFUSED;
}

static int cmd_plan(struct args *a)
{
	const char *names[SHARD_MAX];
	double weights[SHARD_MAX];
	char err[1024];
	struct shard_map *old = load(a->op[0]), *m = NULL;
	struct shard_move *moves = NULL;
	size_t n_moves;
	FILE *report = a->out ? stdout : stderr;
	int status = EXIT_REFUSED;

	if (!old || !read_shards(a->op + 1, a->n - 1, names, weights))
		goto done;
	m = shard_map_plan(old, names, weights, a->n - 1, &moves, &n_moves, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "pgmux --shard-map: %s\n", err);
		goto done;
	}
	if (!save(m, a->out))
		goto done;
	fprintf(report, "version %" PRIu64 " -> %" PRIu64 ", checksum %016" PRIx64 "\n",
		old->version, m->version, m->checksum);
	if (err[0])
		fprintf(report, "note: %s\n", err);
	if (print_moves(report, old, m))
		status = EXIT_OK;
done:
	free(moves);
	shard_map_free(m);
	shard_map_free(old);
	return status;
}

static int cmd_validate(struct args *a)
{
	struct shard_map *m = load(a->op[0]);

	if (!m)
		return EXIT_REFUSED;
	printf("%s: valid: version %" PRIu64 ", %" PRIu32
	       " buckets, %d shards, checksum %016" PRIx64 ", %d override%s\n",
	       a->op[0], m->version, m->n_buckets, m->n_shards, m->checksum, m->n_overrides,
	       m->n_overrides == 1 ? "" : "s");
	shard_map_free(m);
	return EXIT_OK;
}

static int cmd_diff(struct args *a)
{
	struct shard_map *old = load(a->op[0]), *m = old ? load(a->op[1]) : NULL;
	int status = EXIT_REFUSED;

	if (!m)
		goto done;
	printf("version %" PRIu64 " -> %" PRIu64 "\n", old->version, m->version);
	if (old->n_buckets != m->n_buckets || old->seed != m->seed) {
		printf("the maps hash keys differently (buckets %" PRIu32 " -> %" PRIu32
		       ", seed %" PRIu64 " -> %" PRIu64 "): any key may move\n",
		       old->n_buckets, m->n_buckets, old->seed, m->seed);
		status = EXIT_OK;
	} else if (print_moves(stdout, old, m)) {
		status = EXIT_OK;
	}
	print_override_changes(stdout, old, m);
done:
	shard_map_free(old);
	shard_map_free(m);
	return status;
}

static int cmd_show(struct args *a)
{
	struct shard_map *m = load(a->op[0]);
	uint32_t *counts;
	double total = 0;

	if (!m)
		return EXIT_REFUSED;
	counts = calloc((size_t)m->n_shards, sizeof(*counts));
	if (!counts) {
		shard_map_free(m);
		return EXIT_REFUSED;
	}
	shard_map_counts(m, counts);
	for (int i = 0; i < m->n_shards; i++)
		total += m->weights[i];
	printf("version %" PRIu64 ", %" PRIu32 " buckets, seed %" PRIu64 ", checksum %016" PRIx64
	       "\n",
	       m->version, m->n_buckets, m->seed, m->checksum);
	printf("%-16s %10s %8s %8s %8s  %s\n", "shard", "weight", "buckets", "keys", "target",
	       "runs");
	for (int i = 0; i < m->n_shards; i++) {
		int runs = 0;

		printf("%-16s %10g %8" PRIu32 " %8.4f %8.4f ", m->names[i], m->weights[i],
		       counts[i], (double)counts[i] / m->n_buckets, m->weights[i] / total);
		for (uint32_t lo = 0, hi; lo < m->n_buckets; lo = hi + 1) {
			for (hi = lo; hi + 1 < m->n_buckets && m->owner[hi + 1] == m->owner[lo];
			     hi++)
				;
			if (m->owner[lo] == i)
				runs++;
		}
		printf(" %d:", runs);
		for (uint32_t lo = 0, hi; lo < m->n_buckets; lo = hi + 1) {
			for (hi = lo; hi + 1 < m->n_buckets && m->owner[hi + 1] == m->owner[lo];
			     hi++)
				;
			if (m->owner[lo] != i)
				continue;
			if (lo == hi)
				printf(" %" PRIu32, lo);
			else
				printf(" %" PRIu32 "-%" PRIu32, lo, hi);
		}
		printf("\n");
	}
	printf("overrides: %d\n", m->n_overrides);
	for (int i = 0; i < m->n_overrides; i++) {
		printf("  ");
		print_key(stdout, m->overrides[i].key);
		printf(" -> %s\n", m->names[m->overrides[i].shard]);
	}
	free(counts);
	shard_map_free(m);
	return EXIT_OK;
}

static int cmd_override(struct args *a)
{
	struct shard_map *m, *next = NULL;
	char err[512];
	int shard = -1, status = EXIT_REFUSED;

	if (a->remove != (a->n == 2))
		return usage_error("override takes FILE KEY SHARD, or FILE KEY --remove", NULL);
	if (!(m = load(a->op[0])))
		return EXIT_REFUSED;
	if (!a->remove && (shard = shard_index(m, a->op[2])) < 0) {
		fprintf(stderr,
			"pgmux --shard-map: no shard %s in %s: name one of its shards "
			"(pgmux --shard-map show %s)\n",
			a->op[2], a->op[0], a->op[0]);
		goto done;
	}
	next = shard_map_set_override(m, a->op[1], shard, err, sizeof(err));
	if (!next) {
		fprintf(stderr, "pgmux --shard-map: %s\n", err);
		goto done;
	}
	if (save(next, a->out)) {
		fprintf(a->out ? stdout : stderr, "version %" PRIu64 " -> %" PRIu64 "\n",
			m->version, next->version);
		print_override_changes(a->out ? stdout : stderr, m, next);
		status = EXIT_OK;
	}
done:
	shard_map_free(next);
	shard_map_free(m);
	return status;
}

static int cmd_help(struct args *a)
{
	usage(stdout);
	return EXIT_OK;
}

static const struct command COMMANDS[] = {
	{ "create", 1, -1, OPT_OUT | OPT_BUCKETS | OPT_SEED | OPT_VERSION, cmd_create,
	  "create [--buckets N] [--seed S] [--version V] [-o FILE] SHARD[=WEIGHT]...\n"
	  "      a first map: each shard's weighted share of the buckets, in one range" },
	{ "plan", 2, -1, OPT_OUT, cmd_plan,
	  "plan FILE [-o FILE] SHARD[=WEIGHT]...\n"
	  "      the next map for this full list of shards (add, remove, reweight), and what moves" },
	{ "validate", 1, 1, 0, cmd_validate, "validate FILE\n      check a map file whole" },
	{ "diff", 2, 2, 0, cmd_diff,
	  "diff OLD NEW\n      the buckets and overrides that changed shard, and the keys moved" },
	{ "show", 1, 1, 0, cmd_show,
	  "show FILE\n      per shard: weight, buckets, share of keys, runs of buckets" },
	{ "override", 2, 3, OPT_OUT | OPT_REMOVE, cmd_override,
	  "override FILE KEY SHARD [-o FILE] | override FILE KEY --remove [-o FILE]\n"
	  "      the next map with KEY placed on SHARD whatever its bucket (or no longer)" },
	{ "help", 0, 0, 0, cmd_help, "help\n      this text" },
	{ NULL, 0, 0, 0, NULL, NULL },
};

int maptool_main(int argc, char **argv)
{
	const struct command *c = COMMANDS;
	struct args a = { 0 };
	int status = EXIT_USAGE;

	if (argc < 1)
		return usage_error("a command is needed", NULL);
	while (c->name && strcmp(c->name, argv[0]) != 0)
		c++;
	if (!c->name)
		return usage_error("unknown command", argv[0]);
	if (!read_args(argc - 1, argv + 1, &a, &status))
		goto done;
	if (a.given & ~c->allowed)
		status = usage_error("an option this command does not take", c->name);
	else if (a.n < c->min || (c->max >= 0 && a.n > c->max))
		status = usage_error("wrong number of operands for", c->name);
	else
		status = c->run(&a);
done:
	free(a.op);
	return status;
}
