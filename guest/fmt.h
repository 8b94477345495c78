/*
 * fmt.h: a small snprintf for the freestanding guest (no libc). Understands
 * %d %i %u %x %X %s %c %p %% with the flags '0' and '-', a width, and the
 * length modifiers l, ll and z. Always NUL-terminates when size > 0 and
 * returns the number of characters stored (not the would-be length).
 */
#ifndef GUEST_FMT_H
#define GUEST_FMT_H

#include <stdarg.h>
#include <stddef.h>

size_t fmt_vsn(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
size_t fmt_sn(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* freestanding versions of the libc calls gcc may emit */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
