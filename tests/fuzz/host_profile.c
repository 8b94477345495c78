/*
 * tests/fuzz/host_profile.c: one host CPU profile (a CPUID dump, the
 * ../shared/cpuid-hosts format) through host_cpu_from_profile, which reads
 * a file: the input is handed over as a memfd.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpumodels/cpumodel.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	int fd = memfd_create("profile", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct host_cpu *h = NULL;
		struct vmm_error err;
		if (host_cpu_from_profile(path, NULL, &h, &err) == 0)
			host_cpu_free(h);
	}
	close(fd);
	return 0;
}
