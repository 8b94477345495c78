/*
 * vmm/cpu_model/html.c: the compatibility matrix as one self-contained HTML
 * page (no scripts, no external files): green = runnable, red shades = the
 * number of missing features; hovering a cell lists them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/cpu_model/cli.h"

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static const char *shade(unsigned missing)
{
	return missing == 0    ? "#f4c7a8"
	       : missing <= 3  ? "#f3a683"
	       : missing <= 10 ? "#e77f67"
			       : "#c0392b";
}

int cli_matrix_html(const struct cpumodel_matrix *m, struct host_cpu *const *hosts,
		    const char *path, struct vmm_error *err)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return vmm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	      "<title>CPU model compatibility matrix</title>\n<style>\n"
	      "body{font-family:sans-serif;font-size:13px}\n"
	      "table{border-collapse:collapse}\n"
	      "td,th{border:1px solid #999;padding:2px 6px;text-align:center}\n"
	      "th.h{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}\n"
	      "td.m{text-align:left;white-space:nowrap}\n"
	      ".ok{background:#7bc67b}\n"
	      "</style></head><body>\n<h1>CPU model compatibility matrix</h1>\n"
	      "<p>Rows: model versions. Columns: hosts. <b>ok</b> = the model runs there; "
	      "a number = features the host lacks (hover for the list).</p>\n<table>\n<tr><th>"
	      "model version</th>",
	      f);
	for (unsigned h = 0; h < m->ncols; h++) {
		fputs("<th class=\"h\" title=\"", f);
		esc(f, hosts[h]->brand);
		fputs("\">", f);
		esc(f, host_cpu_name(hosts[h]));
		fputs("</th>", f);
	}
	fputs("</tr>\n", f);
	for (unsigned r = 0; r < m->nrows; r++) {
		fputs("<tr><td class=\"m\">", f);
		esc(f, m->rows[r]->name);
		fputs("</td>", f);
		for (unsigned h = 0; h < m->ncols; h++) {
			const struct cpumodel_matrix_cell *cell =
			    &m->cells[(size_t)r * m->ncols + h];
			unsigned miss = cpufeat_set_count(&cell->check.missing);
			if (cell->runnable && !cpufeat_set_count(&cell->check.assumed)) {
				fputs("<td class=\"ok\">ok</td>", f);
				continue;
			}
			if (cell->runnable) {
				char a[VMM_ERROR_MAX];
				cpufeat_set_format(&cell->check.assumed, a, sizeof(a));
				fputs("<td class=\"ok\" title=\"assumed present (not in the "
				      "profile): ",
				      f);
				esc(f, a);
				fputs("\">ok*</td>", f);
				continue;
			}
			char why[VMM_ERROR_MAX];
			cpumodel_check_format(&cell->check, why, sizeof(why));
			fprintf(f, "<td style=\"background:%s\" title=\"", shade(miss));
			esc(f, why);
			if (miss)
				fprintf(f, "\">%u</td>", miss);
			else
				fputs("\">x</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</table>\n</body></html>\n", f);
	int rc = 0;
	if (ferror(f))
		rc = vmm_error_set(err, -EIO, "%s: write error", path);
	if (fclose(f) != 0 && !rc)
		rc = vmm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	return rc;
}
