/*
 * vmm/vmm.h: the VM core: configuration, guest memory, the VM, vCPUs, the
 * I/O buses and the device interface.
 *
 * Life of a VM (run.c drives it):
 *   vmm_options_parse()           command line -> struct vmm_config
 *   vm_init()                     an empty VM (exit requests and destroy are safe)
 *   vm_create()                   /dev/kvm, machine type, CPU model, RAM (memfd),
 *                                 irqchip + PIT, devices, vCPUs with their CPUID
 *   pvh_boot_setup()              (fresh boot) load the kernel, boot data, regs
 *     or a migration/snapshot load (incoming) that sets all state instead
 *   vm_start()                    one thread per vCPU enters KVM_RUN
 *   vm_pause() / vm_resume()      park / release every vCPU outside KVM_RUN
 *   vm_destroy()                  joins threads, frees everything
 *
 * Threads: the main thread owns the libuv loop (console input, control API,
 * migration); each vCPU thread runs KVM_RUN and handles its own exits,
 * taking the target device's lock. vCPU threads report VM-wide events
 * (guest exit, reset, crash) with vm_request_exit(), which wakes the loop.
 * Every function returns 0 or negative errno with a message in `err`.
 */
#ifndef VMM_VMM_H
#define VMM_VMM_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpumodels/cpumodel.h"
#include "machine-types/machine.h"
#include "util/error.h"

/* ---- configuration (options.c) ---- */

enum serial_backend { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

/* --disk path=FILE[,readonly=on][,serial=ID] (vmm/virtio/slots.c parses it) */
#define VMM_MAX_DISKS 8
struct vmm_disk_config {
	const char *path;
	const char *serial; /* at most 20 bytes (virtio-blk's ID), "" if none */
	bool readonly;
};

struct vmm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	uint64_t mem_size;
	unsigned ncpus;
	const char *cpu_model;	      /* spec, e.g. "x86-64-v1,+pdpe1gb" */
	const char *host_cpu_profile; /* test-only: act as that host */
	const char *machine;	      /* name or alias */
	enum serial_backend serial;
	const char *serial_path;
	const char *dump_cpuid; /* write KVM_GET_CPUID2 of every vCPU here */
	const char *api_socket;
	const char *incoming;
	bool print_config;
	struct vmm_disk_config disks[VMM_MAX_DISKS]; /* virtio-blk, in slot order */
	unsigned ndisks;
	bool rng; /* --rng: virtio-rng */
};

#define VMM_MAX_CPUS 254	     /* most vCPUs any machine type may allow */
#define VMM_CPUS_PARSE_MAX 4096 /* beyond this --cpus is not even a vCPU count */

/* Parses argv (after the program name); on error returns -EINVAL with the
 * message naming the option. Returns 1 for --help (usage printed). */
int vmm_options_parse(int argc, char **argv, struct vmm_config *cfg, struct vmm_error *err);
void vmm_usage(FILE *out);
/* "512M", "4G", "1024" (MiB) -> bytes. */
int parse_size(const char *s, uint64_t *out, struct vmm_error *err);
/* --disk's value into cfg->disks (vmm/virtio/slots.c). */
int vmm_parse_disk(const char *arg, struct vmm_config *cfg, struct vmm_error *err);

/* ---- guest memory (memory.c) ---- */

#define GUEST_MEM_MAX_REGIONS 2

struct mem_region {
	uint64_t gpa;	 /* guest-physical start */
	uint64_t size;	 /* bytes */
	uint64_t offset; /* offset in the memfd */
	uint8_t *hva;	 /* host mapping of this region */
	uint32_t slot;	 /* KVM memory slot */
	/* Pages the VMM itself wrote (virtio devices): KVM's dirty log does not
	 * see those writes, so migration merges this bitmap in (memory_dirty.c). */
	_Atomic(unsigned long) *vmm_dirty;
};

struct guest_memory {
	int fd;		/* memfd holding all of guest RAM, MAP_SHARED */
	uint64_t size;	/* total RAM bytes */
	uint8_t *base;	/* mapping of the whole memfd */
	unsigned nregions;
	struct mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Creates the memfd and mapping and splits RAM around the 32-bit hole as the
 * machine type says. */
int guest_memory_create(struct guest_memory *mem, uint64_t size, const struct machine *m,
			struct vmm_error *err);
/* Registers the regions with KVM (flags: e.g. KVM_MEM_LOG_DIRTY_PAGES). */
int guest_memory_register(struct guest_memory *mem, int vm_fd, uint32_t flags,
			  struct vmm_error *err);
void guest_memory_destroy(struct guest_memory *mem);
/* The one checked accessor for guest-physical memory: a host pointer for
 * [gpa, gpa+len) if it lies inside one RAM region, else NULL. */
void *guest_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
/* Device writes to guest RAM (memory_dirty.c): mark [gpa, gpa+len) dirty
 * after writing it; migration takes the marks with guest_memory_take_dirty()
 * (ORs region i's marks into `bitmap` and clears them). */
void guest_memory_mark_dirty(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
void guest_memory_take_dirty(const struct guest_memory *mem, unsigned region, unsigned long *bitmap,
			     size_t words);

/* ---- I/O buses (io_bus.c) ---- */

struct device;
typedef void (*io_read_fn)(struct device *dev, uint64_t offset, uint8_t *data, unsigned size);
typedef void (*io_write_fn)(struct device *dev, uint64_t offset, const uint8_t *data,
			    unsigned size);

struct io_range {
	uint64_t base, len;
	struct device *dev;
	io_read_fn read;
	io_write_fn write;
};

#define IO_BUS_MAX 32
struct io_bus {
	const char *name; /* "pio" or "mmio" */
	unsigned n;
	struct io_range ranges[IO_BUS_MAX]; /* registered before vCPUs start, then read-only */
};

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, struct device *dev,
		    io_read_fn read, io_write_fn write, struct vmm_error *err);
/* Dispatches one access under the device's lock. Returns false when no
 * device claims the address (reads then see all-ones). */
bool io_bus_access(struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned size, bool write);

/* ---- devices (devices/) ---- */

struct vm;

/* Migratable state is declared, not hand-coded: a device lists the fields
 * of its guest-visible state struct; migration saves and loads them by
 * name. A field added later carries the state version that introduced it
 * (`since`), so an older stream without it keeps the reset default. */
enum state_kind { STATE_U8, STATE_U16, STATE_U32, STATE_U64, STATE_I64, STATE_BOOL, STATE_BYTES };

struct state_field {
	const char *name;
	enum state_kind kind;
	size_t offset;
	size_t size;
	unsigned since;
};

struct state_desc {
	unsigned version;     /* of this layout, written to the stream */
	unsigned min_version; /* oldest layout this build still loads */
	const struct state_field *fields;
	unsigned nfields;
};

#define STATE_FIELD(type, member, kind)                                                        \
	{                                                                                      \
		#member, kind, offsetof(type, member), sizeof(((type *)0)->member), 1           \
	}
#define STATE_DESC(ver, minver, table)                                                         \
	{                                                                                      \
		ver, minver, table, sizeof(table) / sizeof((table)[0])                          \
	}

struct device_type {
	const char *name; /* the machine type's "type" property, e.g. "uart-16550a" */
	/* Reads properties from the machine type, allocates state, registers
	 * I/O ranges. NULL for devices KVM itself provides. */
	int (*create)(struct vm *vm, struct device *dev, struct vmm_error *err);
	void (*destroy)(struct device *dev);
	/* Migration: the declared guest-visible state, where it lives, and a
	 * hook that validates loaded values and re-derives runtime state
	 * (e.g. the IRQ line). NULL state: nothing guest-visible to move. */
	const struct state_desc *state;
	void *(*state_ptr)(struct device *dev);
	int (*post_load)(struct device *dev, struct vmm_error *err);
	/* Migration hooks, NULL when there is nothing to do (device_hooks.c
	 * calls them for every device). At the source: quiesce once the vCPUs
	 * are paused and before any state is saved (finish requests in flight,
	 * flush); handover right before Go (give up what only the owner of the
	 * guest may hold, e.g. an image's write lock); unquiesce when the guest
	 * resumes here after all (take it back, process queues again). At the
	 * destination: activate right before the vCPUs first run (at Go, or at
	 * the end of a snapshot restore). */
	int (*quiesce)(struct device *dev, struct vmm_error *err);
	void (*handover)(struct device *dev);
	int (*unquiesce)(struct device *dev, struct vmm_error *err);
	int (*activate)(struct device *dev, struct vmm_error *err);
};

struct device {
	const struct device_type *type;
	const char *name; /* instance name in the machine type, e.g. "serial0" */
	struct vm *vm;
	pthread_mutex_t lock;
	void *state; /* owned by the device file */
	/* Devices the command line adds (virtio): which --disk etc. and which slot. */
	const void *config;
	unsigned slot;
};

/* The table of device types (devices/devices.c). */
const struct device_type *device_type_find(const char *name);
struct device *vm_find_device(struct vm *vm, const char *name);
/* The migration hooks over every device of the VM (device_hooks.c);
 * unquiesce and activate go on past a failing device and return the first
 * error. */
int vm_devices_quiesce(struct vm *vm, struct vmm_error *err);
void vm_devices_handover(struct vm *vm);
int vm_devices_unquiesce(struct vm *vm, struct vmm_error *err);
int vm_devices_activate(struct vm *vm, struct vmm_error *err);
/* The devices the command line adds on the machine type's virtio-mmio
 * slots (--disk, --rng): part of vm_create() (vmm/virtio/slots.c). */
int vm_create_virtio_devices(struct vm *vm, struct vmm_error *err);
/* " virtio_mmio.device=SIZE@ADDR:IRQ" for each of them, for the kernel
 * command line; returns the length written (0 without virtio devices). */
int vm_virtio_cmdline(const struct vm *vm, char *buf, size_t size);

/* ---- vCPUs (vcpu.c) ---- */

struct vcpu {
	struct vm *vm;
	unsigned index;
	uint32_t apic_id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	struct cpuid_table cpuid;     /* the CPU model's table, given to KVM_SET_CPUID2 */
	struct cpuid_table kvm_cpuid; /* KVM_GET_CPUID2 right after: what KVM holds. Equal
				       * to `cpuid` on VMX/SVM; kvm_pvm reports the host's
				       * leaves 1 (ECX, EDX), 7.0 and 0xD instead */
	uint32_t tsc_khz;	  /* KVM_GET_TSC_KHZ at creation, 0 if unknown */
};

int vcpu_create(struct vm *vm, unsigned index, struct vmm_error *err);
void vcpu_destroy(struct vcpu *vcpu);
/* Reads back the CPUID table KVM holds for the vCPU (KVM_GET_CPUID2).
 * Only on a vCPU that is not running: on a running one the ioctl waits
 * until the vCPU leaves KVM_RUN. Running code uses vcpu->kvm_cpuid. */
int vcpu_get_cpuid(struct vcpu *vcpu, struct cpuid_table *out, struct vmm_error *err);

/* ---- the VM (vm.c) ---- */

enum vm_exit_reason {
	VM_EXIT_NONE = 0,
	VM_EXIT_GUEST_STATUS, /* guest wrote the debug-exit port */
	VM_EXIT_RESET,	      /* guest asked for a reset (0xcf9, i8042) */
	VM_EXIT_SHUTDOWN,     /* triple fault */
	VM_EXIT_CRASH,	      /* KVM internal error, failed entry, VMM error */
	VM_EXIT_SIGNAL,	      /* SIGINT/SIGTERM, quit command */
	VM_EXIT_MIGRATED,     /* the guest now runs elsewhere */
	VM_EXIT_QUIT,	      /* the control API's quit */
	VM_EXIT_FAILED,	      /* the VMM could not go on (e.g. an incoming migration failed) */
};

struct vm {
	const struct vmm_config *cfg;
	int kvm_fd;
	int vm_fd;
	struct machine machine;
	struct cpumodel_db *cpumodels;
	struct host_cpu *host;
	struct guest_cpu *cpu;
	struct guest_memory mem;
	struct io_bus pio, mmio;

	unsigned ndevices;
	struct device devices[16];

	unsigned ncpus;
	struct vcpu *vcpus[VMM_MAX_CPUS];

	/* pause / stop protocol between the main thread and vCPU threads */
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond;
	unsigned pause_depth; /* vCPUs run only at 0: user stop, migration, throttling */
	unsigned paused; /* vCPU threads currently parked */
	unsigned running_threads;
	atomic_bool stopping;

	/* first VM-wide exit request wins */
	pthread_mutex_t exit_lock;
	enum vm_exit_reason exit_reason;
	int exit_status;
	char exit_message[512];
	void (*exit_notify)(struct vm *vm); /* set by run.c: wakes the loop */
	void *loop_data;
};

/* An empty VM: vm_request_exit() and vm_destroy() are safe on it. */
void vm_init(struct vm *vm);
/* Builds the VM (after vm_init); on failure vm_destroy() cleans up. */
int vm_create(struct vm *vm, const struct vmm_config *cfg, struct vmm_error *err);
void vm_destroy(struct vm *vm);
/* Creates the devices the machine type lists (vm->machine and vm->cfg set;
 * needs no KVM), and destroys them. Part of vm_create()/vm_destroy(). */
int vm_create_devices(struct vm *vm, struct vmm_error *err);
void vm_destroy_devices(struct vm *vm);
/* Starts one thread per vCPU. */
int vm_start(struct vm *vm, struct vmm_error *err);
/* Takes a pause reference: parks every vCPU outside KVM_RUN and waits
 * until all are parked. vm_resume() drops one; vCPUs run again at zero. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Makes every vCPU thread leave its loop and joins them. */
void vm_stop(struct vm *vm);
/* Asks every vCPU thread to leave its loop, without waiting (any thread). */
void vm_kick_stop(struct vm *vm);
/* Records a VM-wide exit (first caller wins) and wakes the main loop. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Asserts or deasserts an interrupt line (GSI) of the in-kernel irqchip. */
void vm_set_irq(struct vm *vm, unsigned gsi, bool level);
/* Writes every vCPU's KVM_GET_CPUID2 table, canonical text with a
 * "# vcpu I apic-id A" line before each. */
int vm_dump_cpuid(struct vm *vm, const char *path, struct vmm_error *err);

/* `--print-config` (print_config.c). */
int vmm_print_config(const struct vmm_config *cfg, struct vmm_error *err);

/* ---- the `vmm run` flow (run.c) ---- */
int vmm_run(int argc, char **argv);

#endif
