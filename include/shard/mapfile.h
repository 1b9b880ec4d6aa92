/*
 * shard/mapfile: the shard map as text, the form it takes in a file or an etcd key (the format
 * is described in doc/shard-map.md). One directive a line: format, version, buckets, seed, one
 * `shard NAME weight W` per shard, `range FIRST-LAST NAME` lines covering every bucket once,
 * `override KEY NAME` lines, and the checksum last. `#` starts a comment.
 *
 * A text is taken whole or refused whole: parsing validates everything, the checksum included,
 * so a map that was edited by hand, truncated or damaged never replaces a good one. Formatting
 * is canonical (the fewest ranges, in bucket order), so format(parse(text)) == text for every
 * text that format() wrote, and parse(format(m)) equals m field for field.
 *
 * Pure: no I/O; text in, map out (and back).
 */
#ifndef PGMUX_SHARD_MAPFILE_H
#define PGMUX_SHARD_MAPFILE_H

#include <stddef.h>

#include "shard/map.h"

/* The map as text; malloc'd, NUL-terminated, the caller frees it. NULL when out of memory. */
char *shard_map_format(const struct shard_map *m);

/*
 * The map a whole text describes (len bytes, no NUL needed), checked as shard_map_validate()
 * does and against its checksum line; the caller frees it with shard_map_free(). NULL with err
 * set to "line N: what is wrong" for an unknown or repeated directive, a bucket covered twice or
 * not at all, an unknown shard name, a bucket count that is not a power of two, a checksum that
 * does not match the content, version 0, anything after the checksum line, or out of memory.
 */
struct shard_map *shard_map_parse(const char *text, size_t len, char *err, size_t errlen);

#endif
