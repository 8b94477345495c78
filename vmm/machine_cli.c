/* vmm/machine_cli.c: `vmm machine list|show`: machine type versions and their guest ABI. */
#include "vmm/vmm.h"

#include <json-c/json.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm machine list [--json]\n"
		   "       vmm machine show NAME     the guest ABI of a machine type version\n");
}

static int list(bool json)
{
	unsigned nv, na;
	const struct machine_version *v = machine_versions(&nv);
	const struct machine_alias *a = machine_aliases(&na);
	if (json) {
		struct json_object *arr = json_object_new_array();
		for (unsigned i = 0; i < nv; i++) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(v[i].name));
			json_object_object_add(o, "parent",
					       v[i].parent ? json_object_new_string(v[i].parent) : NULL);
			json_object_object_add(o, "changes", json_object_new_string(v[i].summary));
			struct json_object *al = json_object_new_array();
			for (unsigned j = 0; j < na; j++)
				if (strcmp(a[j].target, v[i].name) == 0)
					json_object_array_add(al, json_object_new_string(a[j].alias));
			json_object_object_add(o, "aliases", al);
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
		return 0;
	}
	printf("%-14s %-14s %-10s %s\n", "VERSION", "BASED ON", "ALIASES", "WHAT CHANGED");
	for (unsigned i = 0; i < nv; i++) {
		char aliases[64] = "";
		for (unsigned j = 0; j < na; j++)
			if (strcmp(a[j].target, v[i].name) == 0)
				snprintf(aliases + strlen(aliases), sizeof(aliases) - strlen(aliases),
					 "%s%s", aliases[0] ? "," : "", a[j].alias);
		printf("%-14s %-14s %-10s %s\n", v[i].name, v[i].parent ? v[i].parent : "-",
		       aliases[0] ? aliases : "-", v[i].summary);
	}
	return 0;
}

int machine_cli(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return list(argc >= 3 && strcmp(argv[2], "--json") == 0);
	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		struct vmm_error err = {0};
		if (machine_abi_dump(argv[2], stdout, &err) < 0) {
			fprintf(stderr, "vmm machine: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	usage(stderr);
	return 2;
}
