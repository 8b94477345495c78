/*
 * core/vm.h: the VM core: the resolved VM description (spec), guest memory,
 * the VM, vCPUs, the I/O buses and the device interface. The core owns
 * every KVM ioctl; callers above it (migration, the front end) see plain
 * structs (core/state.h for saved KVM state).
 *
 * Life of a VM (the front end, vmm/run.c, owns it):
 *   vm_spec_resolve()             request -> spec (versions, defaults, pins)
 *   vm_init()                     an empty VM (exit requests and destroy are safe)
 *   vm_create()                   /dev/kvm, CPU model on this host, RAM (memfd),
 *                                 irqchip + PIT, devices, vCPUs with their CPUID
 *   pvh_boot_setup()              (fresh boot) load the kernel, boot data, regs
 *     or vm_recreate() + state loads (core/state.h) for an incoming guest
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
#ifndef VMM_CORE_VM_H
#define VMM_CORE_VM_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cpumodels/cpumodel.h"
#include "machine-types/machine.h"
#include "util/error.h"

/* ---- the VM description (spec.c) ---- */

enum serial_backend { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

#define VMM_MAX_CPUS 254	     /* most vCPUs any machine type may allow */
#define VMM_CPUS_PARSE_MAX 4096 /* beyond this --cpus is not even a vCPU count */
#define VM_SPEC_STR_MAX 256
#define VM_MAX_DEVICES 32

/* A disk: --disk path=FILE[,readonly=on][,serial=ID] (virtio-blk). */
#define VM_MAX_DISKS 8
#define VM_DISK_SERIAL_MAX 20 /* virtio-blk's ID */
struct vm_disk {
	char path[VM_SPEC_STR_MAX];
	char serial[VM_DISK_SERIAL_MAX + 1]; /* "" if none */
	bool readonly;
};

/* A network card: --net tap=IFNAME[,mac=MAC] (virtio-net on a host tap).
 * The MAC is guest hardware (the stream checks it); the tap is the host's.
 * Without mac= the card gets 52:54:00:12:34:56 + its index (as QEMU's
 * first card): give each guest on one segment its own. */
#define VM_MAX_NETS 4
#define VM_NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
struct vm_net {
	char tap[VM_NET_IFNAME_MAX + 1];
	uint8_t mac[6];
	/* Tests and embedders: an open descriptor that carries one frame per
	 * read/write (a tap, or a socketpair standing in for one) instead of
	 * opening `tap`; fd_vnet_hdr: its frames carry a 12-byte virtio-net
	 * header (and it then "supports" checksum and TSO offloads). Never
	 * set from the command line. */
	bool use_fd, fd_vnet_hdr;
	int fd;
};

/* What a person (the command line) asks for. NULL or 0 means "the machine
 * type's default". Nothing here is resolved yet. */
struct vm_request {
	const char *machine;	      /* name or alias */
	const char *cpu_model;	      /* "NAME[-vN][,+feat][,-feat]" */
	uint64_t mem_size;	      /* bytes */
	bool mem_hugepages;	      /* back RAM with 2 MiB hugetlb pages (host-side only) */
	unsigned ncpus;		      /* 0 = the machine type's default */
	const char *host_cpu_profile; /* act as the host this CPUID profile describes */
	enum serial_backend serial;
	const char *serial_path;
	struct vm_disk disks[VM_MAX_DISKS]; /* virtio-blk, in slot order */
	unsigned ndisks;
	bool rng;      /* virtio-rng */
	struct vm_net nets[VM_MAX_NETS]; /* virtio-net, in slot order */
	unsigned nnets;
	bool incoming; /* the VM receives a guest: devices wait for activation (Go) */
};
/* Adds --disk's value to the request (core/virtio/slots.c). */
int vm_request_add_disk(struct vm_request *req, const char *arg, struct vmm_error *err);
/* Adds --net's value to the request (core/virtio/slots.c). */
int vm_request_add_net(struct vm_request *req, const char *arg, struct vmm_error *err);

/* Where a resolved value came from, for --print-config and errors. */
enum vm_spec_origin {
	SPEC_FROM_REQUEST,	 /* given explicitly */
	SPEC_FROM_MACHINE,	 /* the machine type's default */
	SPEC_FROM_MACHINE_PIN, /* an unversioned name the machine type pins to a version */
	SPEC_FROM_STREAM,	 /* an incoming migration's header */
};
const char *vm_spec_origin_name(enum vm_spec_origin o);

/* The one resolved description a VM is built from: plain data, no handles.
 * vm_spec_resolve() makes it from a request; an incoming migration makes it
 * from the stream's header (vm_spec_adopt). Building a VM is "construct
 * from a spec"; restoring is "construct from the stream's spec, then load". */
struct vm_spec {
	struct machine machine;		       /* the resolved version and its properties */
	char machine_asked[MACHINE_NAME_MAX];  /* as asked ("microvm" for the alias) */
	enum vm_spec_origin machine_origin;
	char cpu_model[VM_SPEC_STR_MAX];       /* resolved version, "Skylake-Server-v4" */
	char cpu_spec[VM_SPEC_STR_MAX];	       /* with adjustments, "Skylake-Server-v4,-hle" */
	char cpu_asked[VM_SPEC_STR_MAX];       /* as asked ("Skylake-Server,-hle") */
	enum vm_spec_origin cpu_origin;
	uint64_t mem_size;
	enum vm_spec_origin mem_origin;
	bool mem_hugepages; /* host-side: never part of the guest ABI or the stream */
	unsigned ncpus;
	enum vm_spec_origin ncpus_origin;
	char host_cpu_profile[VM_SPEC_STR_MAX]; /* "" = this host's KVM */
	enum serial_backend serial;
	char serial_path[VM_SPEC_STR_MAX];
	/* Devices the command line adds on the machine type's virtio-mmio slots:
	 * guest hardware (the stream names disks by size and serial), backed by
	 * host paths. */
	struct vm_disk disks[VM_MAX_DISKS];
	unsigned ndisks;
	bool rng;
	struct vm_net nets[VM_MAX_NETS]; /* the stream checks each MAC */
	unsigned nnets;
	bool incoming; /* host side: devices wait for activation (Go) */
};

/* Resolves a request: machine name/alias -> version; defaults from that
 * version; an unversioned CPU model name -> the version the machine type
 * pins it to (a model it does not pin -> the model's first version), so the
 * same command line gives the same guest on every later vmm. Needs no KVM:
 * whether the host can run the model is vm_create()'s question. */
int vm_spec_resolve(const struct vm_request *req, struct vm_spec *out, struct vmm_error *err);

/* The spec a destination builds for an incoming stream whose source was
 * described by `theirs`: the stream's machine type and CPU model versions
 * where the local request gives aliases or nothing; an explicit version
 * that differs, or a different RAM size or vCPU count, is refused. The
 * local request's CPU adjustments are kept (the CPUID comparison then
 * catches any difference they make); host-side settings are the request's. */
int vm_spec_adopt(const struct vm_request *req, const struct vm_spec *theirs, struct vm_spec *out,
		  struct vmm_error *err);

/* Whether two specs describe the same guest hardware (machine, CPU, RAM, vCPUs). */
bool vm_spec_same_guest(const struct vm_spec *a, const struct vm_spec *b);

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
	uint64_t page_size; /* host backing: 4096, or 2 MiB for hugetlb */
	bool hugetlb;	    /* a hugetlbfs memfd: SEEK_DATA does not see holes there */
	unsigned nregions;
	struct mem_region regions[GUEST_MEM_MAX_REGIONS];
};

#define GUEST_HUGEPAGE_SIZE (2ull << 20)

/* Creates the memfd and mapping and splits RAM around the 32-bit hole as the
 * machine type says. With `hugepages` the memfd is hugetlb (2 MiB pages),
 * reserved from the host's pool at once: a pool too small is an error
 * naming /proc/sys/vm/nr_hugepages, never a SIGBUS later. Dirty tracking
 * stays at 4 KiB either way (KVM maps the huge pages small while logging). */
int guest_memory_create(struct guest_memory *mem, uint64_t size, bool hugepages,
			const struct machine *m, struct vmm_error *err);
/* The next populated range at or after memfd offset `off`, below `end`:
 * [*data, *hole). -ENXIO when there is none. Never-touched memory is a
 * hole: for a plain memfd SEEK_DATA/SEEK_HOLE says so; hugetlbfs reports
 * every offset as data, so there the page cache is asked (mincore) per
 * 2 MiB page. Reads nothing and populates nothing. */
int guest_memory_next_data(const struct guest_memory *mem, uint64_t off, uint64_t end,
			   uint64_t *data, uint64_t *hole, struct vmm_error *err);
/* Registers the regions with KVM (flags: e.g. KVM_MEM_LOG_DIRTY_PAGES). */
int guest_memory_register(struct guest_memory *mem, int vm_fd, uint32_t flags,
			  struct vmm_error *err);
void guest_memory_destroy(struct guest_memory *mem);
/* Same-host migration: makes the VM's RAM the memfd `fd` (the source's,
 * received over a unix socket) instead of its own. Checks that fd is a
 * memfd (or hugetlbfs file) of exactly this RAM's size and maps it before
 * anything changes; on success the KVM slots point at the new mapping, the
 * old memory is freed and fd is owned by the VM. On failure nothing
 * changed and fd is still the caller's. Nothing here reads or writes the
 * guest's memory. vCPUs must not be running. */
struct vm;
int vm_memory_adopt(struct vm *vm, int fd, struct vmm_error *err);
/* The one checked accessor for guest-physical memory: a host pointer for
 * [gpa, gpa+len) if it lies inside one RAM region, else NULL. */
void *guest_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
/* Device writes to guest RAM (memory_dirty.c): mark [gpa, gpa+len) dirty
 * after writing it; the dirty log takes the marks with
 * guest_memory_take_dirty() (ORs region i's marks into `bitmap`, clears them). */
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
 * slots (--disk, --rng, --net): part of vm_create() (core/virtio/slots.c). */
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
	struct vm_spec spec; /* what this VM was built from */
	int kvm_fd;
	int vm_fd;
	struct machine machine;
	struct cpumodel_db *cpumodels;
	struct host_cpu *host;
	struct guest_cpu *cpu;
	struct guest_memory mem;
	struct io_bus pio, mmio;

	unsigned ndevices;
	struct device devices[VM_MAX_DEVICES];

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
/* Builds the VM from a spec (after vm_init); on failure vm_destroy() cleans up. */
int vm_create(struct vm *vm, const struct vm_spec *spec, struct vmm_error *err);
/* Destroys the VM and builds it again from another spec, keeping the
 * owner's bindings (exit_notify, loop_data): an incoming stream that names
 * other versions than the ones built at start-up. */
int vm_recreate(struct vm *vm, const struct vm_spec *spec, struct vmm_error *err);
void vm_destroy(struct vm *vm);
/* Creates the devices the machine type lists (vm->spec set; needs no KVM),
 * and destroys them. Part of vm_create()/vm_destroy(). */
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
/* Writes every vCPU's KVM_GET_CPUID2 table (as read back at creation),
 * canonical text with a "# vcpu I apic-id A" line before each. */
int vm_dump_cpuid(struct vm *vm, const char *path, struct vmm_error *err);
/* The guest's TSC rate on every vCPU (an incoming guest keeps its source's
 * rate where KVM can scale); warns when this KVM cannot. */
int vm_set_tsc_khz(struct vm *vm, uint32_t khz, struct vmm_error *err);

/* ---- guest ABI dump (machine_abi.c) ---- */

/* The guest-visible ABI of a machine type version in canonical text: its
 * properties, the e820 map for two RAM sizes, claimed ports, and each
 * device's migratable state (version and fields). Read off the real code
 * paths on a VM without KVM. */
int machine_abi_dump(const char *name, FILE *out, struct vmm_error *err);

#endif
