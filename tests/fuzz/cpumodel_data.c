/*
 * tests/fuzz/cpumodel_data.c: one CPU-model data file's text through the
 * engine's parser and its cross-file checks (cpumodels/db_parse.c; read
 * only: the engine is not changed here).
 */
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	char *text = malloc(size + 1);
	struct cpumodel_db *db = cpumodel_db_new();
	if (text && db) {
		memcpy(text, data, size);
		text[size] = '\0';
		struct vmm_error err;
		if (cpumodel_db_parse(db, "fuzz.cpumodel", text, &err) == 0)
			cpumodel_db_finish(db, &err);
	}
	cpumodel_db_free(db);
	free(text);
	return 0;
}
