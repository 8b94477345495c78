/*
 * util/error.h: how every module reports failure.
 *
 * A function that can fail returns 0 (or a count) on success and a negative
 * errno on failure, and fills an optional `struct vmm_error` with one line
 * saying what failed and why, e.g.
 *   "cpu model Cascadelake-Server-v5: host lacks CPUID.07H:EBX.avx512f [bit 16]".
 * Callers that add context use vmm_error_prefix(). Passing a NULL error is
 * always allowed (the message is then dropped, the code is still returned).
 */
#ifndef VMM_UTIL_ERROR_H
#define VMM_UTIL_ERROR_H

#include <stddef.h>

#define VMM_ERROR_MAX 1024

struct vmm_error {
	int code;		  /* negative errno, 0 when unset */
	char msg[VMM_ERROR_MAX];  /* one line, no trailing newline */
};

/* Sets err (if non-NULL) to the formatted message and returns `code`
 * (a negative errno), so callers can write `return vmm_error_set(...)`. */
int vmm_error_set(struct vmm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "<formatted>: " to an already set message; returns err->code
 * (or -EIO when err is NULL or unset). */
int vmm_error_prefix(struct vmm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void vmm_error_clear(struct vmm_error *err);

#endif
