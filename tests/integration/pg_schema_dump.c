/*
 * pg_schema_dump: prints the statements of pg_schema_v1 for test_pg_views.py, each followed by
 * a line ";;" (a statement may itself contain semicolons: the function bodies do).
 */
#include <stdio.h>

#include "pg_schema.h"

int main(void)
{
	for (size_t i = 0; i < pg_schema_v1_count; i++)
		printf("%s\n;;\n", pg_schema_v1[i]);
	return fflush(stdout) == 0 ? 0 : 1;
}
