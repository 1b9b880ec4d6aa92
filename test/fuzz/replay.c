/*
 * replay: runs a fuzz target over the files named on its command line (its seeds, or an input
 * libFuzzer saved) without libFuzzer. `make check` builds every target this way with gcc and the
 * project's warnings, and replays its seeds, so a target cannot rot unseen between fuzzing runs
 * and a fixed finding stays fixed.
 *
 * Each input is copied into a buffer of exactly its size, so that under SANITIZE=1 a read past
 * the end is caught as it would be by the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	long size;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		if (f)
			fclose(f);
		return 1;
	}
	/* malloc(0) may return NULL: keep one byte, hand over size 0. */
	data = malloc((size_t)size + (size == 0));
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
		perror(path);
		free(data);
		fclose(f);
		return 1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	int failed = 0;

	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	for (int i = 1; i < argc; i++)
		failed |= replay_file(argv[i]);
	return failed;
}
