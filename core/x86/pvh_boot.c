/*
 * core/x86/pvh_boot.c: a fresh boot through the PVH entry: e820 map, boot
 * data (hvm_start_info, memory map, command line, initrd module, a flat
 * GDT), BIOS data area pointers, MP table, and the BSP's registers: 32-bit
 * protected mode, paging off, flat segments, EBX = start_info.
 */
#include "core/x86/x86.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PVH_START_MAGIC 0x336ec578u
#define KERNEL_MIN_ADDR 0x100000ull /* boot data lives below 1 MiB */

/* Layout defined by the PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
} __attribute__((packed));

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
} __attribute__((packed));

/* GDT selectors the BSP starts with. */
#define SEL_CODE32 0x10
#define SEL_DATA32 0x18
#define SEL_TSS32 0x20

int e820_build(const struct vm *vm, struct e820_entry *out, unsigned max, struct vmm_error *err)
{
	uint64_t ebda, bios;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, "memory", "ebda-base", &ebda, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "memory", "bios-base", &bios, err)) < 0)
		return r;
	const struct mem_region *low = &vm->mem.regions[0];
	if (max < 6 || low->gpa != 0 || low->size <= KERNEL_MIN_ADDR)
		return vmm_error_set(err, -EINVAL, "e820: unexpected RAM layout");
	unsigned n = 0;
	out[n++] = (struct e820_entry){0, ebda, E820_RAM};
	out[n++] = (struct e820_entry){ebda, 0xa0000 - ebda, E820_RESERVED};
	out[n++] = (struct e820_entry){bios, KERNEL_MIN_ADDR - bios, E820_RESERVED};
	out[n++] = (struct e820_entry){KERNEL_MIN_ADDR, low->size - KERNEL_MIN_ADDR, E820_RAM};
	for (unsigned i = 1; i < vm->mem.nregions; i++)
		out[n++] = (struct e820_entry){vm->mem.regions[i].gpa, vm->mem.regions[i].size,
					       E820_RAM};
	return (int)n;
}

static int write_gdt(struct vm *vm, uint64_t gdt_addr, struct vmm_error *err)
{
	static const uint64_t gdt[] = {
		0,
		0,
		0x00cf9b000000ffffull, /* 0x10: 32-bit code, flat */
		0x00cf93000000ffffull, /* 0x18: data, flat */
		0x00008b0000000067ull, /* 0x20: 32-bit TSS (busy), base 0 */
	};
	void *p = guest_ptr(&vm->mem, gdt_addr, sizeof(gdt));
	if (!p)
		return vmm_error_set(err, -EINVAL, "boot.gdt 0x%llx outside RAM",
				     (unsigned long long)gdt_addr);
	memcpy(p, gdt, sizeof(gdt));
	return 0;
}

static int load_initrd(struct vm *vm, const char *path, uint64_t kernel_end, uint64_t *addr, uint64_t *size,
		       struct vmm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmm_error_set(err, -errno, "initrd %s: %s", path, strerror(errno));
	struct stat st;
	int r = 0;
	uint64_t max_addr;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = vmm_error_set(err, -EINVAL, "initrd %s: not a regular file", path);
		goto out;
	}
	if ((r = machine_get_u64(&vm->spec.machine, "boot", "initrd-max-addr", &max_addr, err)) < 0)
		goto out;
	uint64_t top = vm->mem.regions[0].size < max_addr ? vm->mem.regions[0].size : max_addr;
	uint64_t len = (uint64_t)st.st_size;
	if (len == 0 || len > top || ((top - len) & ~0xfffull) < kernel_end) {
		r = vmm_error_set(err, -ENOMEM, "initrd %s: %llu bytes do not fit in RAM below 0x%llx "
				  "above the kernel", path, (unsigned long long)len,
				  (unsigned long long)top);
		goto out;
	}
	*addr = (top - len) & ~0xfffull;
	*size = len;
	uint8_t *dst = guest_ptr(&vm->mem, *addr, len);
	if (!dst) {
		r = vmm_error_set(err, -EINVAL, "initrd %s: target 0x%llx outside RAM", path,
				  (unsigned long long)*addr);
		goto out;
	}
	for (uint64_t done = 0; done < len;) {
		ssize_t n = pread(fd, dst + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = vmm_error_set(err, -EIO, "initrd %s: short read", path);
			goto out;
		}
		done += (uint64_t)n;
	}
out:
	close(fd);
	return r;
}

static int write_boot_data(struct vm *vm, const struct vm_boot *boot, const struct elf_image *img,
			   uint64_t *start_info_addr, struct vmm_error *err)
{
	uint64_t si_addr, cmd_addr, cmd_max, ebda;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, "boot", "start-info", &si_addr, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "boot", "cmdline", &cmd_addr, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "boot", "cmdline-max", &cmd_max, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "memory", "ebda-base", &ebda, err)) < 0)
		return r;

	/* virtio: the devices' "virtio_mmio.device=" words follow the user's */
	char words[1024];
	int nwords = vm_virtio_cmdline(vm, words, sizeof(words));
	size_t user_len = strlen(boot->cmdline), cmd_len = user_len + (size_t)(nwords > 0 ? nwords : 0);
	if (nwords < 0 || cmd_len >= cmd_max)
		return vmm_error_set(err, -E2BIG, "--cmdline: %zu bytes%s, machine %s allows %llu",
				     cmd_len, nwords > 0 ? " with the virtio_mmio.device= words" : "",
				     vm->spec.machine.name, (unsigned long long)cmd_max - 1);
	char *cmd = guest_ptr(&vm->mem, cmd_addr, cmd_len + 1);
	if (!cmd)
		return vmm_error_set(err, -EINVAL, "boot.cmdline outside RAM");
	memcpy(cmd, boot->cmdline, user_len);
	memcpy(cmd + user_len, words, cmd_len - user_len + 1);

	struct e820_entry e820[E820_MAX];
	int n = e820_build(vm, e820, E820_MAX, err);
	if (n < 0)
		return n;
	uint64_t mod_addr = si_addr + 0x40;
	uint64_t map_addr = si_addr + 0x80;
	struct hvm_start_info *si = guest_ptr(&vm->mem, si_addr, sizeof(*si));
	struct hvm_modlist_entry *mod = guest_ptr(&vm->mem, mod_addr, sizeof(*mod));
	struct hvm_memmap_entry *map = guest_ptr(&vm->mem, map_addr, sizeof(*map) * (size_t)n);
	if (!si || !mod || !map)
		return vmm_error_set(err, -EINVAL, "boot.start-info outside RAM");

	memset(si, 0, sizeof(*si));
	si->magic = PVH_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = cmd_addr;
	si->memmap_paddr = map_addr;
	si->memmap_entries = (uint32_t)n;
	for (int i = 0; i < n; i++)
		map[i] = (struct hvm_memmap_entry){e820[i].addr, e820[i].size, e820[i].type, 0};
	if (boot->initrd) {
		uint64_t addr = 0, size = 0;
		if ((r = load_initrd(vm, boot->initrd, img->high, &addr, &size, err)) < 0)
			return r;
		*mod = (struct hvm_modlist_entry){.paddr = addr, .size = size};
		si->nr_modules = 1;
		si->modlist_paddr = mod_addr;
	}

	/* BIOS data area: EBDA segment and base memory size, where guests look
	 * for the MP floating pointer. */
	uint8_t *bda = guest_ptr(&vm->mem, 0x400, 0x100);
	if (!bda)
		return vmm_error_set(err, -EINVAL, "BIOS data area outside RAM");
	uint16_t ebda_seg = (uint16_t)(ebda >> 4), base_kib = (uint16_t)(ebda >> 10);
	memcpy(bda + 0x0e, &ebda_seg, 2);
	memcpy(bda + 0x13, &base_kib, 2);
	*start_info_addr = si_addr;
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
				  .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1};
}

static int set_bsp_registers(struct vcpu *bsp, uint64_t entry, uint64_t start_info,
			     uint64_t gdt_addr, struct vmm_error *err)
{
	struct kvm_sregs sregs;
	if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0)
		return vmm_error_set(err, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	flat_segment(&sregs.cs, SEL_CODE32, 0xb);
	flat_segment(&sregs.ds, SEL_DATA32, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){.base = 0, .limit = 0x67, .selector = SEL_TSS32,
					.type = 0xb, .present = 1};
	sregs.gdt.base = gdt_addr;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x11; /* PE | ET: protected mode, paging off */
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_SREGS: %s", strerror(errno));

	struct kvm_regs regs = {.rip = entry, .rflags = 0x2, .rbx = start_info};
	if (ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_REGS: %s", strerror(errno));

	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(bsp->fd, KVM_SET_FPU, &fpu) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

int pvh_boot_setup(struct vm *vm, const struct vm_boot *boot, struct vmm_error *err)
{
	struct elf_image img;
	uint64_t gdt_addr, start_info = 0;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, "boot", "gdt", &gdt_addr, err)) < 0)
		return r;
	if ((r = elf_load_pvh(vm, boot->kernel, KERNEL_MIN_ADDR, &img, err)) < 0)
		return r;
	if ((r = write_gdt(vm, gdt_addr, err)) < 0)
		return r;
	if ((r = write_boot_data(vm, boot, &img, &start_info, err)) < 0)
		return r;
	if ((r = mptable_write(vm, err)) < 0)
		return r;
	return set_bsp_registers(vm->vcpus[0], img.entry, start_info, gdt_addr, err);
}
