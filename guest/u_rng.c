/*
 * u_rng.c: rng=N reads N bytes from the virtio entropy device (4 KiB per
 * request) and reports whether they look random: a chi-square over the
 * byte histogram (255 degrees of freedom: a random source stays far below
 * 400) and the share of one bits (within 5 standard deviations of half).
 */
#include "user.h"

#define CHUNK		  4096
#define VIRTIO_ID_ENTROPY 4
#define DESC_F_WRITE	  2

static uint32_t bits(uint8_t v)
{
	uint32_t n = 0;

	for (; v; v &= (uint8_t)(v - 1))
		n++;
	return n;
}

bool rng_run(void)
{
	static struct vdev d UBSS;
	static uint64_t hist[256] UBSS;
	uint64_t buf, got = 0, ones = 0, chi = 0, expect_x256, dev_ones, i, irqs0, until;
	bool irq_ok;
	uint32_t id, len;
	bool random;

	if (!vdev_open(&d, VIRTIO_ID_ENTROPY, 1ull << 29, 64) || !(buf = mem_alloc(CHUNK)))
		return false;
	/* This device also exercises the interrupt path (irqfd -> I/O APIC ->
	 * LAPIC): one per buffer returned, counted by the kernel. */
	irq_ok = vdev_use_irq(&d);
	irqs0 = k_device_irqs;
	while (got < u_cfg.rng) {
		uint32_t want = (uint32_t)(u_cfg.rng - got < CHUNK ? u_cfg.rng - got : CHUNK);
		const uint8_t *p = (const uint8_t *)(uintptr_t)buf;

		vq_set_desc(&d.q, 0, buf, want, DESC_F_WRITE, 0);
		vq_publish(&d, 0);
		while (!vq_take_used(&d.q, &id, &len))
			;
		if (id != 0 || len == 0 || len > want) {
			u_printf("testguest: rng: device returned id %u len %u for %u bytes\n", id,
				 len, want);
			return false;
		}
		for (i = 0; i < len; i++) {
			hist[p[i]]++;
			ones += bits(p[i]);
		}
		got += len;
	}
	/* interrupts are edges: give the last one a tick to arrive */
	for (until = u_ticks() + 2; k_device_irqs == irqs0 && u_ticks() < until;)
		u_sleep_until(u_ticks() + 1);
	vdev_ack_irq(&d);
	/* chi2 = sum (256*c - N)^2 / (256 N), in integers (no FPU at CPL3 here) */
	for (i = 0; i < 256; i++) {
		int64_t dlt = (int64_t)(256 * hist[i]) - (int64_t)got;
		uint64_t t = (uint64_t)(dlt * dlt) / (256 * got);
		chi = chi + t < chi ? ~0ull : chi + t;
	}
	/* ones ~ N*8/2 with sd sqrt(N*8)/2: |2*ones - 8N|^2 <= 25 * 8N */
	expect_x256 = 8 * got;
	dev_ones = 2 * ones > expect_x256 ? 2 * ones - expect_x256 : expect_x256 - 2 * ones;
	random = dev_ones * dev_ones <= 25 * expect_x256 && (got < 2560 || chi < 400);
	u_printf("rng bytes=%lu chi2=%lu ones-permille=%lu random=%s irqs=%lu%s\n", got, chi,
		 ones * 1000 / (8 * got), random ? "yes" : "no", k_device_irqs - irqs0,
		 irq_ok ? "" : " (pin not routed)");
	return random;
}
