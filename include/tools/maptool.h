/*
 * tools/maptool: `pgmux --shard-map COMMAND ...`, the shard map's command-line tool: create a
 * first map, plan the next one for a new list of shards, validate, diff, show, set or remove
 * an override. Maps are files in the text of shard/mapfile.h; a map written to a file replaces
 * it whole (written aside, then renamed), so a pgmux reading it never sees half a map.
 *
 * Not pure: it reads files and writes them, and reports on stdout and stderr.
 */
#ifndef PGMUX_TOOLS_MAPTOOL_H
#define PGMUX_TOOLS_MAPTOOL_H

/*
 * Run the tool on argv[0..argc-1] (the command and its arguments, without the program name
 * and --shard-map). The exit status: 0 done, 1 a map or file refused (the message says why
 * and what to do), 2 bad arguments (with the usage).
 */
int maptool_main(int argc, char **argv);

#endif
