/*
 * api/format.c: the text side of `vmm ctl`: KEY=VALUE arguments to
 * JSON, replies in human form, and for `migrate` the live progress line and
 * the final statistics computed from a query-migrate return value (every
 * field may be absent; its part is then left out). Pure functions: no I/O
 * but the FILE they are given.
 */
#include "api/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_WIDTH 9 /* strlen("completed"), so the bar does not jump */
#define BAR_MIN 10
#define BAR_MAX 30
#define MIB (1024.0 * 1024.0)

#define CTL_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- arguments ---- */

struct json_object *api_client_arg_value(const char *v)
{
	if (strcmp(v, "true") == 0)
		return json_object_new_boolean(1);
	if (strcmp(v, "false") == 0)
		return json_object_new_boolean(0);
	const char *d = v[0] == '-' ? v + 1 : v;
	if (*d >= '0' && *d <= '9') {
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_object_new_int64(x);
	}
	return json_object_new_string(v);
}

int api_client_parse_args(int argc, char *const *argv, struct json_object **out,
			  struct vmm_error *err)
{
	struct json_object *args = json_object_new_object();
	if (!args)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		int r = 0;
		if (!eq)
			r = vmm_error_set(err, -EINVAL, "argument \"%s\" is not KEY=VALUE", argv[i]);
		else if (eq == argv[i])
			r = vmm_error_set(err, -EINVAL, "argument \"%s\" has an empty key", argv[i]);
		char *key = r ? NULL : strndup(argv[i], (size_t)(eq - argv[i]));
		if (!r && !key)
			r = vmm_error_set(err, -ENOMEM, "out of memory");
		if (!r && json_object_object_get_ex(args, key, NULL))
			r = vmm_error_set(err, -EINVAL, "argument \"%s\" given twice", key);
		if (!r)
			json_object_object_add(args, key, api_client_arg_value(eq + 1));
		free(key);
		if (r) {
			json_object_put(args);
			return r;
		}
	}
	*out = args;
	return 0;
}

/* ---- human output ---- */

static bool is_nonempty_container(struct json_object *v)
{
	return (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0) ||
	       (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0);
}

static void print_scalar(FILE *out, struct json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		fputs(json_object_get_string(v), out);
	else
		fputs(json_object_to_json_string_ext(v, CTL_JSON_FLAGS), out);
}

/* Prints a non-empty container, children at `indent`; the first line's
 * indentation is already printed when `first_inline` (a "- " item). */
static void print_node(FILE *out, struct json_object *v, int indent, bool first_inline)
{
	bool first = true;
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val) {
			if (!(first && first_inline))
				fprintf(out, "%*s", indent, "");
			first = false;
			fprintf(out, "%s:", key);
			if (is_nonempty_container(val)) {
				fputc('\n', out);
				print_node(out, val, indent + 2, false);
			} else {
				fputc(' ', out);
				print_scalar(out, val);
				fputc('\n', out);
			}
		}
		return;
	}
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(v, i);
		if (!(first && first_inline))
			fprintf(out, "%*s", indent, "");
		first = false;
		if (json_object_is_type(item, json_type_object) && is_nonempty_container(item)) {
			fputs("- ", out); /* first member on the dash's line */
			print_node(out, item, indent + 2, true);
		} else if (is_nonempty_container(item)) {
			fputs("-\n", out); /* an array in an array */
			print_node(out, item, indent + 2, false);
		} else {
			fputs("- ", out);
			print_scalar(out, item);
			fputc('\n', out);
		}
	}
}

void api_client_print_human(FILE *out, struct json_object *v)
{
	if (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0)
		return;
	if (is_nonempty_container(v)) {
		print_node(out, v, 0, false);
	} else {
		print_scalar(out, v);
		fputc('\n', out);
	}
}

/* ---- migration progress ---- */

static bool get_num(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return false;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	*out = json_object_get_double(v);
	return true;
}

static bool get_u64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	int64_t i = json_object_get_int64(v);
	*out = i < 0 ? 0 : (uint64_t)i;
	return true;
}

static struct json_object *get_ram(struct json_object *info)
{
	struct json_object *v;
	if (info && json_object_object_get_ex(info, "ram", &v) &&
	    json_object_is_type(v, json_type_object))
		return v;
	return NULL;
}

static void __attribute__((format(printf, 4, 5)))
appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	if (*pos >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos = *pos + (size_t)n < len ? *pos + (size_t)n : len - 1;
}

void api_progress_bytes(unsigned long long bytes, char *buf, size_t len)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", bytes);
		return;
	}
	double v = (double)bytes / 1024.0;
	unsigned u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.2f %s", v, units[u]);
}

/* Percent of RAM sent: (total - remaining) / total, else transferred / total.
 * "remaining" is not trusted while it is 0 before the first dirty sync (a vmm
 * may only compute it then). */
static bool percent_done(struct json_object *info, struct json_object *ram, double *pct)
{
	uint64_t total, remaining, transferred, syncs;
	if (!get_u64(ram, "total", &total) || total == 0)
		return false;
	const char *st = NULL;
	struct json_object *v;
	if (json_object_object_get_ex(info, "status", &v))
		st = json_object_get_string(v);
	bool first_pass = get_u64(ram, "dirty-sync-count", &syncs) && syncs == 0;
	if (st && strcmp(st, "completed") == 0)
		*pct = 100.0;
	else if (get_u64(ram, "remaining", &remaining) && (remaining > 0 || !first_pass))
		*pct = 100.0 * (double)(total - (remaining < total ? remaining : total)) / (double)total;
	else if (get_u64(ram, "transferred", &transferred))
		*pct = 100.0 * (double)(transferred < total ? transferred : total) / (double)total;
	else
		return false;
	return true;
}

#define SEP(pos) ((pos) ? " | " : "")

/* Everything after the status and the bar, parts separated by " | ". */
static void details(struct json_object *info, char *buf, size_t len, bool *have_pct, double *pct)
{
	struct json_object *ram = get_ram(info);
	size_t pos = 0;
	char b1[32], b2[32];
	uint64_t u = 0;
	double d;
	buf[0] = '\0';
	*have_pct = percent_done(info, ram, pct);
	if (*have_pct) {
		get_u64(ram, "total", &u);
		api_progress_bytes(u, b1, sizeof(b1));
		appendf(buf, len, &pos, "%5.1f%% of %s", *pct, b1);
	}
	if (get_u64(ram, "transferred", &u)) {
		api_progress_bytes(u, b2, sizeof(b2));
		appendf(buf, len, &pos, "%ssent %s", SEP(pos), b2);
	}
	if (get_num(ram, "mbps", &d))
		appendf(buf, len, &pos, "%s%.1f MiB/s", SEP(pos), d * 1e6 / 8.0 / MIB);
	if (get_num(ram, "dirty-pages-rate", &d)) {
		uint64_t page = 4096;
		get_u64(ram, "page-size", &page);
		appendf(buf, len, &pos, "%sdirty %.1f MiB/s", SEP(pos), d * (double)page / MIB);
	}
	if (get_u64(ram, "dirty-sync-count", &u))
		appendf(buf, len, &pos, "%siter %llu", SEP(pos), (unsigned long long)u);
	if (get_u64(info, "expected-downtime", &u))
		appendf(buf, len, &pos, "%sdowntime ~%llu ms", SEP(pos), (unsigned long long)u);
	if (get_u64(info, "throttle-percentage", &u) && u > 0)
		appendf(buf, len, &pos, "%sthrottle %llu%%", SEP(pos), (unsigned long long)u);
}

size_t api_progress_line(struct json_object *info, bool bar, unsigned width, char *buf,
			 size_t len)
{
	char rest[512];
	bool have_pct;
	double pct = 0;
	const char *status = "?";
	struct json_object *v;
	if (len == 0)
		return 0;
	if (info && json_object_object_get_ex(info, "status", &v) &&
	    json_object_is_type(v, json_type_string))
		status = json_object_get_string(v);
	if (strcmp(status, "setup") == 0) {
		rest[0] = '\0'; /* nothing measured yet */
		have_pct = false;
	} else {
		details(info, rest, sizeof(rest), &have_pct, &pct);
	}

	size_t pos = 0;
	appendf(buf, len, &pos, "%-*s", STATUS_WIDTH, status);
	unsigned bar_width = 0;
	if (bar && have_pct) {
		bar_width = BAR_MAX;
		if (width > 0) {
			/* status, " [", bar, "] ", rest and the last column left free */
			size_t used = pos + 4 + strlen(rest) + 1;
			bar_width = used + BAR_MIN > width ? 0
				  : width - used > BAR_MAX ? BAR_MAX
							   : (unsigned)(width - used);
		}
	}
	if (bar_width) {
		unsigned filled = (unsigned)(pct / 100.0 * bar_width); /* full only at 100% */
		appendf(buf, len, &pos, " [");
		for (unsigned i = 0; i < bar_width; i++)
			appendf(buf, len, &pos, "%c", i < filled ? '#' : '-');
		appendf(buf, len, &pos, "]");
	}
	if (rest[0])
		appendf(buf, len, &pos, " %s", rest);
	while (pos > 0 && buf[pos - 1] == ' ')
		buf[--pos] = '\0';
	if (width > 0 && pos > width - 1) {
		/* drop the parts that do not fit whole, else cut */
		char *sep = strstr(buf, " | "), *cut = buf + width - 1;
		for (; sep && sep <= buf + width - 1; sep = strstr(sep + 1, " | "))
			cut = sep;
		*cut = '\0';
		pos = (size_t)(cut - buf);
	}
	return pos;
}

static void __attribute__((format(printf, 3, 4)))
stat_line(FILE *out, const char *label, const char *fmt, ...)
{
	va_list ap;
	fprintf(out, "  %-24s", label);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

void api_progress_summary(FILE *out, struct json_object *info)
{
	struct json_object *ram = get_ram(info);
	uint64_t u;
	double d;
	char b[32];
	fprintf(out, "migration completed\n");
	if (get_u64(info, "total-time", &u))
		stat_line(out, "total time:", "%llu ms", (unsigned long long)u);
	if (get_u64(info, "setup-time", &u))
		stat_line(out, "setup time:", "%llu ms", (unsigned long long)u);
	if (get_u64(info, "downtime", &u))
		stat_line(out, "downtime:", "%llu ms", (unsigned long long)u);
	if (get_u64(ram, "transferred", &u)) {
		api_progress_bytes(u, b, sizeof(b));
		stat_line(out, "transferred:", "%s (%llu bytes)", b, (unsigned long long)u);
	}
	if (get_u64(ram, "duplicate", &u))
		stat_line(out, "duplicate (zero) pages:", "%llu", (unsigned long long)u);
	if (get_u64(ram, "normal", &u))
		stat_line(out, "normal pages:", "%llu", (unsigned long long)u);
	if (get_u64(ram, "untouched", &u))
		stat_line(out, "untouched pages:", "%llu", (unsigned long long)u);
	if (get_u64(ram, "dirty-sync-count", &u))
		stat_line(out, "iterations:", "%llu", (unsigned long long)u);
	if (get_num(ram, "mbps", &d))
		stat_line(out, "throughput:", "%.2f Mbps (%.1f MiB/s)", d, d * 1e6 / 8.0 / MIB);
	if (get_num(info, "compression-ratio", &d) && d > 0) /* 0: no compression */
		stat_line(out, "compression ratio:", "%.2f", d);
	struct json_object *tls, *v, *p, *c, *pr;
	if (json_object_object_get_ex(info, "tls", &tls) &&
	    json_object_object_get_ex(tls, "encrypted", &v)) {
		if (!json_object_get_boolean(v))
			stat_line(out, "channel:", "plaintext");
		else if (json_object_object_get_ex(tls, "protocol", &pr) &&
			 json_object_object_get_ex(tls, "cipher", &c) &&
			 json_object_object_get_ex(tls, "peer", &p))
			stat_line(out, "channel:", "%s %s, peer %s", json_object_get_string(pr),
				  json_object_get_string(c), json_object_get_string(p));
	}
}
