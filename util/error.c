/* util/error.c: one-line error messages carried next to negative errno codes. */
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vmm_error_set(struct vmm_error *err, int code, const char *fmt, ...)
{
	if (code >= 0)
		code = -EIO; /* a failure must never look like success */
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

int vmm_error_prefix(struct vmm_error *err, const char *fmt, ...)
{
	if (!err)
		return -EIO;
	char prefix[VMM_ERROR_MAX];
	char old[VMM_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) >= (int)sizeof(err->msg))
		err->msg[sizeof(err->msg) - 1] = '\0'; /* truncated: still one line */
	if (err->code >= 0)
		err->code = -EIO;
	return err->code;
}

void vmm_error_clear(struct vmm_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
