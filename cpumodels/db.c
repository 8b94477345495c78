/*
 * cpumodels/db.c: the model database: loading the data directory, unique
 * names across files, lookup of "NAME", "NAME-vN" and aliases, and the
 * per-version digest that freezes released versions.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "cpumodels/engine.h"

#define DATA_SUFFIX   ".cpumodel"
#define DATA_FILE_MAX (1u << 20)

const char *cpumodel_default_dir(void)
{
	const char *env = getenv("VMM_CPU_MODEL_DIR");
	return env && env[0] ? env : VMM_CPU_MODEL_DIR_DEFAULT;
}

const char *cpu_vendor_string(enum cpu_vendor v)
{
	return v == VENDOR_AMD ? "AuthenticAMD" : "GenuineIntel";
}

const char *cpu_vendor_name(enum cpu_vendor v)
{
	return v == VENDOR_AMD ? "AMD" : "Intel";
}

struct cpumodel_db *cpumodel_db_new(void)
{
	return calloc(1, sizeof(struct cpumodel_db));
}

void cpumodel_db_free(struct cpumodel_db *db)
{
	if (!db)
		return;
	for (unsigned i = 0; i < db->nmodels; i++)
		free(db->models[i].versions);
	free(db->models);
	free(db);
}

/* FNV-1a 64 over the guest-visible definition (props and feature bits; not
 * names, notes or aliases). Recorded per released version by the tests. */
uint64_t cpumodel_version_digest(const struct cpumodel_version *v)
{
	char buf[512 + CPUFEAT_NWORDS * 12];
	const struct cpumodel_props *p = &v->props;
	int n = snprintf(buf, sizeof(buf),
			 "vendor=%s family=%u model=%u stepping=%u model-id=%s level=0x%x "
			 "xlevel=0x%x phys-bits=%u features=",
			 cpu_vendor_string(p->vendor), p->family, p->model, p->stepping,
			 p->model_id, p->level, p->xlevel, p->phys_bits);
	for (int w = 0; w < CPUFEAT_NWORDS && n > 0 && (size_t)n < sizeof(buf); w++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%08x.", v->features.w[w]);
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < n && (size_t)i < sizeof(buf); i++) {
		h ^= (unsigned char)buf[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

const struct cpumodel_version *cpumodel_newest(const struct cpumodel *m)
{
	return m->nversions ? &m->versions[m->nversions - 1] : NULL;
}

static const struct cpumodel *find_model(const struct cpumodel_db *db, const char *name)
{
	for (unsigned i = 0; i < db->nmodels; i++)
		if (strcmp(db->models[i].name, name) == 0)
			return &db->models[i];
	return NULL;
}

/* "NAME-vN" -> model and N; false if the name has no -vN suffix. */
static bool split_version(const char *name, char *model, size_t mlen, unsigned long *ver)
{
	const char *dash = strrchr(name, '-');
	if (!dash || dash[1] != 'v' || dash[2] < '1' || dash[2] > '9')
		return false;
	char *end;
	errno = 0;
	*ver = strtoul(dash + 2, &end, 10);
	if (errno || *end || (size_t)(dash - name) >= mlen)
		return false;
	memcpy(model, name, (size_t)(dash - name));
	model[dash - name] = '\0';
	return true;
}

const struct cpumodel_version *cpumodel_db_lookup(const struct cpumodel_db *db, const char *name,
						  const struct cpumodel **model_out)
{
	const struct cpumodel *dummy;
	if (!model_out)
		model_out = &dummy;
	*model_out = NULL;
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		bool hit = strcmp(m->name, name) == 0;
		for (unsigned a = 0; a < m->naliases && !hit; a++)
			hit = strcmp(m->aliases[a], name) == 0;
		if (hit) {
			*model_out = m;
			return cpumodel_newest(m);
		}
		for (unsigned v = 0; v < m->nversions; v++)
			for (unsigned a = 0; a < m->versions[v].naliases; a++)
				if (strcmp(m->versions[v].aliases[a], name) == 0) {
					*model_out = m;
					return &m->versions[v];
				}
	}
	char model[CPUMODEL_NAME_MAX];
	unsigned long ver;
	if (!split_version(name, model, sizeof(model), &ver))
		return NULL;
	const struct cpumodel *m = find_model(db, model);
	*model_out = m;
	if (!m || ver < 1 || ver > m->nversions)
		return NULL;
	return &m->versions[ver - 1];
}

/* Every name a user can type must mean one thing. */
struct name_ref {
	const char *name, *file;
	unsigned line;
};

static int check_unique(const struct cpumodel_db *db, struct vmm_error *err)
{
	unsigned cap = 0, n = 0;
	for (unsigned i = 0; i < db->nmodels; i++) {
		cap += 1 + db->models[i].naliases;
		for (unsigned v = 0; v < db->models[i].nversions; v++)
			cap += 1 + db->models[i].versions[v].naliases;
	}
	struct name_ref *refs = calloc(cap ? cap : 1, sizeof(*refs));
	if (!refs)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		refs[n++] = (struct name_ref){m->name, m->file, m->line};
		for (unsigned a = 0; a < m->naliases; a++)
			refs[n++] = (struct name_ref){m->aliases[a], m->file, m->line};
		for (unsigned v = 0; v < m->nversions; v++) {
			const struct cpumodel_version *ver = &m->versions[v];
			refs[n++] = (struct name_ref){ver->name, ver->file, ver->line};
			for (unsigned a = 0; a < ver->naliases; a++)
				refs[n++] =
				    (struct name_ref){ver->aliases[a], ver->file, ver->line};
		}
	}
	int rc = 0;
	for (unsigned i = 0; i < n && !rc; i++)
		for (unsigned j = i + 1; j < n && !rc; j++)
			if (strcasecmp(refs[i].name, refs[j].name) == 0)
				rc = vmm_error_set(err, -EINVAL,
						   "%s:%u: name '%s' already used at %s:%u",
						   refs[j].file, refs[j].line, refs[j].name,
						   refs[i].file, refs[i].line);
	free(refs);
	return rc;
}

int cpumodel_db_finish(struct cpumodel_db *db, struct vmm_error *err)
{
	if (!db->nmodels)
		return vmm_error_set(err, -ENOENT, "%s: no models defined", db->dir);
	return check_unique(db, err);
}

static int read_file(const char *path, char **out, struct vmm_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return vmm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	char *buf = malloc(DATA_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return vmm_error_set(err, -ENOMEM, "out of memory");
	}
	size_t n = fread(buf, 1, DATA_FILE_MAX + 1, f);
	int rc = 0;
	if (ferror(f))
		rc = vmm_error_set(err, -EIO, "%s: read error", path);
	else if (n > DATA_FILE_MAX)
		rc = vmm_error_set(err, -EFBIG, "%s: larger than %u bytes", path, DATA_FILE_MAX);
	else if (memchr(buf, '\0', n))
		rc = vmm_error_set(err, -EINVAL, "%s: contains a NUL byte", path);
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the *.cpumodel files in dir (so load order is stable). */
static int list_files(const char *dir, char ***out, unsigned *count, struct vmm_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return vmm_error_set(err, -errno, "model directory %s: %s", dir, strerror(errno));
	char **names = NULL;
	unsigned n = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name), sl = strlen(DATA_SUFFIX);
		if (e->d_name[0] == '.' || len <= sl || strcmp(e->d_name + len - sl, DATA_SUFFIX))
			continue;
		if (n >= CPUMODEL_MAX_FILES || len >= 64) {
			rc = vmm_error_set(err, -E2BIG, "%s: %s", dir,
					   n >= CPUMODEL_MAX_FILES ? "too many model files"
								   : "file name too long");
			break;
		}
		char **nn = realloc(names, (n + 1) * sizeof(*nn));
		if (!nn || !(nn[n] = strdup(e->d_name))) {
			names = nn ? nn : names;
			rc = vmm_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (!rc && !n)
		rc = vmm_error_set(err, -ENOENT, "model directory %s: no *%s files", dir,
				   DATA_SUFFIX);
	if (rc) {
		for (unsigned i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return rc;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*count = n;
	return 0;
}

int cpumodel_db_load(const char *dir, struct cpumodel_db **out, struct vmm_error *err)
{
	char **files = NULL;
	unsigned nfiles = 0;
	*out = NULL;
	if (!dir || strlen(dir) >= sizeof(((struct cpumodel_db *)0)->dir) - 80)
		return vmm_error_set(err, -EINVAL, "model directory path missing or too long");
	int rc = list_files(dir, &files, &nfiles, err);
	if (rc)
		return rc;
	struct cpumodel_db *db = cpumodel_db_new();
	if (!db) {
		rc = vmm_error_set(err, -ENOMEM, "out of memory");
		goto out_files;
	}
	snprintf(db->dir, sizeof(db->dir), "%s", dir);
	for (unsigned i = 0; i < nfiles && !rc; i++) {
		char path[640], *text = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		rc = read_file(path, &text, err);
		if (!rc)
			rc = cpumodel_db_parse(db, path, text, err);
		free(text);
	}
	if (!rc)
		rc = cpumodel_db_finish(db, err);
	if (rc)
		cpumodel_db_free(db);
	else
		*out = db;
out_files:
	for (unsigned i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	return rc;
}
