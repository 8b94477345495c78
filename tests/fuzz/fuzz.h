/*
 * tests/fuzz/fuzz.h: what every fuzz target defines. Built two ways
 * (tests/fuzz/meson.build): with clang and -Dfuzz=true as a libFuzzer
 * binary, or with replay_main.c as a plain program that runs the target
 * over every file of its corpus directory (CI: `meson test --suite fuzz`).
 * A target never exits or aborts on bad input and frees all it allocates.
 */
#ifndef VMM_TESTS_FUZZ_H
#define VMM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
