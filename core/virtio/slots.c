/*
 * core/virtio/slots.c: virtio devices the command line adds, on the
 * virtio-mmio slots the machine type defines (microvm-1.2 and later):
 *
 *   virtio-mmio.base, .size   the first slot's address and each slot's size
 *   virtio-mmio.slots         how many slots
 *   virtio-mmio.irqs          their I/O APIC pins (ISA IRQs no other device uses)
 *   virtio-<type>.features    feature bits a device of that type may offer
 *   virtio-<type>.queue-size  its queues' maximum size
 *
 * Slots are handed out in a fixed order, whatever the order of the options:
 * every --disk in the order given, then --rng, then every --net in the
 * order given. So the same command line gives the same hardware on a
 * migration's destination. Devices are named disk0, disk1, ..., rng0,
 * net0, net1, ...; the names are what migration matches.
 */
#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 32

/* ---- --disk ---- */

static int disk_opt(const char *key, const char *val, struct vm_disk *d,
		    struct vmm_error *err)
{
	if (strcmp(key, "path") == 0) {
		if (!*val)
			return vmm_error_set(err, -EINVAL, "--disk: empty path");
		if (strlen(val) >= sizeof(d->path))
			return vmm_error_set(err, -ENAMETOOLONG, "--disk: path longer than %zu bytes",
					     sizeof(d->path) - 1);
		snprintf(d->path, sizeof(d->path), "%s", val);
	} else if (strcmp(key, "readonly") == 0) {
		if (strcmp(val, "on") != 0 && strcmp(val, "off") != 0)
			return vmm_error_set(err, -EINVAL,
					     "--disk: readonly=%s: expected on or off", val);
		d->readonly = strcmp(val, "on") == 0;
	} else if (strcmp(key, "serial") == 0) {
		if (strlen(val) > VM_DISK_SERIAL_MAX)
			return vmm_error_set(err, -EINVAL,
					     "--disk: serial=%s: longer than virtio-blk's 20 bytes",
					     val);
		for (const char *p = val; *p; p++)
			if (!isgraph((unsigned char)*p))
				return vmm_error_set(
				    err, -EINVAL,
				    "--disk: serial=%s: only printable characters, no "
				    "spaces",
				    val);
		snprintf(d->serial, sizeof(d->serial), "%s", val);
	} else {
		return vmm_error_set(
		    err, -EINVAL,
		    "--disk: unknown key \"%s\" (path=FILE[,readonly=on][,serial=ID])", key);
	}
	return 0;
}

int vm_request_add_disk(struct vm_request *req, const char *arg, struct vmm_error *err)
{
	if (req->ndisks == VM_MAX_DISKS)
		return vmm_error_set(err, -E2BIG, "--disk: at most %d disks", VM_MAX_DISKS);
	char *copy = strdup(arg);
	if (!copy)
		return vmm_error_set(err, -ENOMEM, "--disk: out of memory");
	struct vm_disk d = {.serial = ""};
	char *save = NULL;
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			int r = vmm_error_set(err, -EINVAL, "--disk: \"%s\" is not KEY=VALUE", kv);
			free(copy); /* after the message: kv points into it */
			return r;
		}
		*eq = '\0';
		int r = disk_opt(kv, eq + 1, &d, err);
		if (r < 0) {
			free(copy);
			return r;
		}
	}
	free(copy);
	if (!d.path[0])
		return vmm_error_set(err, -EINVAL, "--disk %s: no path=FILE", arg);
	req->disks[req->ndisks++] = d;
	return 0;
}

/* ---- --net ---- */

/* Linux's rule for interface names (dev_valid_name): 1..15 bytes, not "."
 * or "..", no '/', ':' or white space. */
static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > VM_NET_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || !isgraph((unsigned char)*s))
			return false;
	return true;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;
	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static int net_opt(const char *key, const char *val, struct vm_net *n, struct vmm_error *err)
{
	if (strcmp(key, "tap") == 0) {
		if (!valid_ifname(val))
			return vmm_error_set(err, -EINVAL,
					     "--net: tap=%s: not an interface name (1-%d bytes, no "
					     "'/', ':' or spaces)",
					     val, VM_NET_IFNAME_MAX);
		snprintf(n->tap, sizeof(n->tap), "%s", val);
	} else if (strcmp(key, "mac") == 0) {
		if (parse_mac(val, n->mac) < 0)
			return vmm_error_set(err, -EINVAL,
					     "--net: mac=%s: expected six hex bytes like "
					     "52:54:00:12:34:56",
					     val);
		if (n->mac[0] & 1)
			return vmm_error_set(err, -EINVAL,
					     "--net: mac=%s: a multicast address (the first byte "
					     "is odd) cannot be a card's",
					     val);
		static const uint8_t zero[6];
		if (memcmp(n->mac, zero, 6) == 0)
			return vmm_error_set(err, -EINVAL, "--net: mac=%s: all zeros", val);
	} else {
		return vmm_error_set(err, -EINVAL,
				     "--net: unknown key \"%s\" (tap=IFNAME[,mac=MAC])", key);
	}
	return 0;
}

int vm_request_add_net(struct vm_request *req, const char *arg, struct vmm_error *err)
{
	if (req->nnets == VM_MAX_NETS)
		return vmm_error_set(err, -E2BIG, "--net: at most %d network cards", VM_MAX_NETS);
	char *copy = strdup(arg);
	if (!copy)
		return vmm_error_set(err, -ENOMEM, "--net: out of memory");
	/* the default MAC: QEMU's first card's, plus the index */
	struct vm_net n = {.mac = {0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + req->nnets)},
			   .fd = -1};
	char *save = NULL;
	int r = 0;
	for (char *kv = strtok_r(copy, ",", &save); kv && r == 0; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			r = vmm_error_set(err, -EINVAL, "--net: \"%s\" is not KEY=VALUE", kv);
			break;
		}
		*eq = '\0';
		r = net_opt(kv, eq + 1, &n, err);
	}
	free(copy);
	if (r < 0)
		return r;
	if (!n.tap[0])
		return vmm_error_set(err, -EINVAL, "--net %s: no tap=IFNAME", arg);
	for (unsigned i = 0; i < req->nnets; i++) {
		if (strcmp(req->nets[i].tap, n.tap) == 0)
			return vmm_error_set(err, -EINVAL, "--net: tap %s given twice", n.tap);
		if (memcmp(req->nets[i].mac, n.mac, 6) == 0)
			return vmm_error_set(
			    err, -EINVAL, "--net: two cards with MAC %02x:%02x:%02x:%02x:%02x:%02x",
			    n.mac[0], n.mac[1], n.mac[2], n.mac[3], n.mac[4], n.mac[5]);
	}
	req->nets[req->nnets++] = n;
	return 0;
}

/* ---- the machine type's slots ---- */

/* The first machine version that has virtio-mmio slots, for messages. */
static const char *first_version_with_slots(void)
{
	unsigned n;
	const struct machine_version *v = machine_versions(&n);
	static struct machine m; /* 4 KiB: off the stack */
	for (unsigned i = 0; i < n; i++)
		if (machine_resolve(v[i].name, &m, NULL) == 0 &&
		    machine_has_device(&m, "virtio-mmio"))
			return v[i].name;
	return "(none)";
}

static int parse_irqs(const struct vm *vm, unsigned *irqs, unsigned max, unsigned *n,
		      struct vmm_error *err)
{
	const char *s;
	int r = machine_get_str(&vm->spec.machine, "virtio-mmio", "irqs", &s, err);
	if (r < 0)
		return r;
	*n = 0;
	while (*s) {
		char *end;
		unsigned long v = strtoul(s, &end, 0);
		if (end == s || (*end && *end != ',') || v >= 24 || *n == max)
			return vmm_error_set(err, -EINVAL, "machine %s: virtio-mmio.irqs malformed",
					     vm->spec.machine.name);
		/* a pin of its own: no other device of the machine may use it */
		for (unsigned i = 0; i < vm->spec.machine.nprops; i++) {
			const struct machine_prop *p = &vm->spec.machine.props[i];
			if (strcmp(p->prop, "irq") == 0 && strtoul(p->value, NULL, 0) == v)
				return vmm_error_set(err, -EINVAL,
						     "machine %s: virtio-mmio irq %lu is %s's",
						     vm->spec.machine.name, v, p->device);
		}
		irqs[(*n)++] = (unsigned)v;
		s = *end ? end + 1 : end;
	}
	return 0;
}

int virtio_slot(const struct vm *vm, unsigned i, uint64_t *base, unsigned *irq,
		struct vmm_error *err)
{
	const struct machine *m = &vm->spec.machine;
	if (!machine_has_device(m, "virtio-mmio"))
		return vmm_error_set(err, -ENODEV,
				     "machine type %s has no virtio-mmio slots (the first version "
				     "with them is %s)",
				     m->name, first_version_with_slots());
	uint64_t b, size, nslots;
	unsigned irqs[MAX_SLOTS], nirqs;
	int r;
	if ((r = machine_get_u64(m, "virtio-mmio", "base", &b, err)) < 0 ||
	    (r = machine_get_u64(m, "virtio-mmio", "size", &size, err)) < 0 ||
	    (r = machine_get_u64(m, "virtio-mmio", "slots", &nslots, err)) < 0 ||
	    (r = parse_irqs(vm, irqs, MAX_SLOTS, &nirqs, err)) < 0)
		return r;
	if (nslots != nirqs || size < VIRTIO_MMIO_SIZE)
		return vmm_error_set(err, -EINVAL, "machine %s: %llu virtio-mmio slots, %u irqs",
				     m->name, (unsigned long long)nslots, nirqs);
	if (i >= nslots)
		return vmm_error_set(err, -ENOSPC,
				     "machine type %s has %llu virtio-mmio slots, all taken",
				     m->name, (unsigned long long)nslots);
	*base = b + i * size;
	*irq = irqs[i];
	return 0;
}

int virtio_type_props(const struct vm *vm, const char *type, uint64_t *features,
		      uint16_t *queue_size, struct vmm_error *err)
{
	uint64_t qs;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, type, "features", features, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, type, "queue-size", &qs, err)) < 0)
		return r;
	if (qs == 0 || qs > VIRTQ_MAX_SIZE || (qs & (qs - 1)))
		return vmm_error_set(err, -EINVAL, "machine %s: %s.queue-size %llu",
				     vm->spec.machine.name, type, (unsigned long long)qs);
	*queue_size = (uint16_t)qs;
	return 0;
}

/* ---- what the command line adds, in slot order ---- */

static unsigned disk_count(const struct vm_spec *spec)
{
	return spec->ndisks;
}

static const void *disk_config(const struct vm_spec *spec, unsigned i)
{
	return &spec->disks[i];
}

static unsigned rng_count(const struct vm_spec *spec)
{
	return spec->rng ? 1 : 0;
}

static const void *no_config(const struct vm_spec *spec, unsigned i)
{
	(void)spec, (void)i;
	return NULL;
}

static unsigned net_count(const struct vm_spec *spec)
{
	return spec->nnets;
}

static const void *net_config(const struct vm_spec *spec, unsigned i)
{
	return &spec->nets[i];
}

static const char *const disk_names[VM_MAX_DISKS] = {"disk0", "disk1", "disk2", "disk3",
						      "disk4", "disk5", "disk6", "disk7"};
static const char *const rng_names[] = {"rng0"};
static const char *const net_names[VM_MAX_NETS] = {"net0", "net1", "net2", "net3"};

static const struct virtio_frontend {
	const char *option;
	const struct device_type *type;
	unsigned (*count)(const struct vm_spec *spec);
	const void *(*config)(const struct vm_spec *spec, unsigned i);
	const char *const *names;
} frontends[] = {
    {"--disk", &device_virtio_blk, disk_count, disk_config, disk_names},
    {"--rng", &device_virtio_rng, rng_count, no_config, rng_names},
    {"--net", &device_virtio_net, net_count, net_config, net_names},
};
#define NFRONTENDS (sizeof(frontends) / sizeof(frontends[0]))

static bool is_virtio(const struct device *dev)
{
	for (size_t f = 0; f < NFRONTENDS; f++)
		if (dev->type == frontends[f].type)
			return true;
	return false;
}

int vm_create_virtio_devices(struct vm *vm, struct vmm_error *err)
{
	unsigned slot = 0;
	for (size_t f = 0; f < NFRONTENDS; f++) {
		const struct virtio_frontend *fe = &frontends[f];
		for (unsigned i = 0; i < fe->count(&vm->spec); i++, slot++) {
			uint64_t base;
			unsigned irq;
			int r = virtio_slot(vm, slot, &base, &irq, err);
			if (r < 0)
				return vmm_error_prefix(err, "%s", fe->option);
			if (vm->ndevices == sizeof(vm->devices) / sizeof(vm->devices[0]))
				return vmm_error_set(err, -ENOSPC, "%s: too many devices",
						     fe->option);
			struct device *dev = &vm->devices[vm->ndevices++];
			dev->type = fe->type;
			dev->name = fe->names[i];
			dev->vm = vm;
			dev->config = fe->config(&vm->spec, i);
			dev->slot = slot;
			pthread_mutex_init(&dev->lock, NULL);
			if ((r = fe->type->create(vm, dev, err)) < 0)
				return r;
		}
	}
	return 0;
}

int vm_virtio_cmdline(const struct vm *vm, char *buf, size_t size)
{
	size_t n = 0;
	if (size)
		buf[0] = '\0';
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct device *dev = &vm->devices[i];
		uint64_t base;
		unsigned irq;
		if (!is_virtio(dev) || virtio_slot(vm, dev->slot, &base, &irq, NULL) < 0)
			continue;
		int k =
		    snprintf(buf + n, size > n ? size - n : 0, " virtio_mmio.device=%u@0x%llx:%u",
			     VIRTIO_MMIO_SIZE, (unsigned long long)base, irq);
		if (k < 0 || n + (size_t)k >= size)
			return -E2BIG;
		n += (size_t)k;
	}
	return (int)n;
}
