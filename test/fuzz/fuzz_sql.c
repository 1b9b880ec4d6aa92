/* link: src/route/classify.c src/route/setstmt.c src/route/pin.c src/route/dealloc.c src/route/sqlscan.c */
/* libFuzzer target: the SQL scanners (route classifier, SET, pin and DEALLOCATE recognisers). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route/classify.h"
#include "route/dealloc.h"
#include "route/pin.h"
#include "route/setstmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading one byte past the end is caught. */
	char *sql = malloc(size ? size : 1);
	struct route_result r;
	struct set_stmt st;
	struct dealloc_stmt ds;

	if (!sql)
		return 0;
	memcpy(sql, data, size);
	classify_sql(sql, size, NULL, &r);
	(void)setstmt_parse(sql, size, &st);
	(void)pin_reason(sql, size);
	(void)dealloc_parse(sql, size, &ds);
	free(sql);
	return 0;
}
