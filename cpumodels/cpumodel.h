/*
 * cpumodels/cpumodel.h: the CPU-model engine as the rest of the VMM sees it.
 *
 * Data flows one way: a model database (data files) + a host (what KVM, or a
 * host CPU profile standing in for another machine, can provide) + the
 * user's model spec resolve to a `guest_cpu`; the guest_cpu builds the exact
 * CPUID table for each vCPU. Nothing else in the VMM invents CPUID bits.
 *
 * Order of calls in `vmm`:
 *   cpumodel_db_load() -> host_cpu_from_kvm() [-> host_cpu_from_profile()]
 *   -> guest_cpu_resolve() -> per vCPU: guest_cpu_apic_id(),
 *      guest_cpu_build_cpuid() -> KVM_SET_CPUID2.
 * All functions return 0 (or a count) on success, negative errno on failure
 * with a one-line message in `err`. The engine's inner interface (feature
 * table, database, check/compare/baseline/matrix) is cpumodels/engine.h.
 */
#ifndef VMM_CPUMODEL_H
#define VMM_CPUMODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

#define CPUID_TABLE_MAX 256 /* KVM_SET_CPUID2 accepts at most 256 entries */

struct cpuid_leaf {
	uint32_t leaf, subleaf;
	uint32_t eax, ebx, ecx, edx;
	bool subleaf_significant; /* becomes KVM_CPUID_FLAG_SIGNIFCANT_INDEX */
};

/* A full CPUID table, sorted by (leaf, subleaf), no duplicates. */
struct cpuid_table {
	unsigned n;
	struct cpuid_leaf leaves[CPUID_TABLE_MAX];
};

const struct cpuid_leaf *cpuid_table_find(const struct cpuid_table *t, uint32_t leaf,
					  uint32_t subleaf);
/* Canonical text form, the format of ../shared/cpuid-hosts: one line per leaf,
 * "0x%08x 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x\n" (leaf subleaf eax ebx ecx edx),
 * sorted. Tests compare these texts byte for byte. */
int cpuid_table_write(const struct cpuid_table *t, FILE *out);
/* Names every difference between two tables as features where the bits are
 * named ("+avx512f -hle", "CPUID.07H:EBX.avx512f [bit 16]"), else as raw
 * registers; writes at most `len` bytes to buf. Returns the number of
 * differences (0 = identical). Used by the migration CPUID check. */
int cpuid_table_diff(const struct cpuid_table *expected, const struct cpuid_table *got, char *buf,
		     size_t len);

/* KVM's struct kvm_cpuid2 <-> a table (host_kvm.c): the one conversion,
 * used for KVM_SET_CPUID2, KVM_GET_CPUID2 and KVM_GET_SUPPORTED_CPUID. An
 * entry's index counts only with KVM_CPUID_FLAG_SIGNIFCANT_INDEX; the flag
 * is kept as KVM holds it. `c` of to_kvm has room for `max` entries. */
struct kvm_cpuid2;
int cpuid_table_from_kvm(const struct kvm_cpuid2 *c, struct cpuid_table *t,
			 struct vmm_error *err);
int cpuid_table_to_kvm(const struct cpuid_table *t, struct kvm_cpuid2 *c, unsigned max,
		       struct vmm_error *err);

/* ---- model database ---- */
struct cpumodel_db;
/* Directory holding the model data files: $VMM_CPU_MODEL_DIR if set, else the
 * build-time default. */
const char *cpumodel_default_dir(void);
int cpumodel_db_load(const char *dir, struct cpumodel_db **out, struct vmm_error *err);
void cpumodel_db_free(struct cpumodel_db *db);

/* What a model name means (names.c). `versioned` is true for "NAME-vN" and
 * a version's own alias (e.g. "Skylake-Server-IBRS"), false for a model
 * name or model-level alias, which stand for a version chosen elsewhere:
 * the newest in this build, or the machine type's pin (core/spec.c).
 * -ENOENT for an unknown name. */
struct cpumodel_name {
	char model[64];	  /* canonical model name, "Skylake-Server" */
	char version[80]; /* the version the name resolves to in this build */
	char first[80];	  /* the model's first version, "Skylake-Server-v1" */
	bool versioned;
};
int cpumodel_name_info(const struct cpumodel_db *db, const char *name, struct cpumodel_name *out,
		       struct vmm_error *err);

/* ---- host side: what a host can give a guest ---- */
struct host_cpu;
/* This machine: KVM_GET_SUPPORTED_CPUID on an open /dev/kvm fd, with the
 * host rule for the features the VMM provides itself (cpumodels/README.md). */
int host_cpu_from_kvm(int kvm_fd, struct host_cpu **out, struct vmm_error *err);
/* A file standing in for another machine: a host profile written by `vmm
 * cpu-model host-profile` on it (what its KVM offers), or a raw CPUID dump
 * (../shared/cpuid-hosts format: "a KVM host on that CPU"); the first
 * non-comment line tells which. Untrusted input: bounded, errors name
 * "path:line". With `limit` non-NULL (the real KVM host), the result is the
 * intersection of both: what this VMM could give a guest if it ran here and
 * the CPU were that one (`vmm --host-cpu-profile`). */
int host_cpu_from_profile(const char *path, const struct host_cpu *limit, struct host_cpu **out,
			  struct vmm_error *err);
const char *host_cpu_name(const struct host_cpu *host);
void host_cpu_free(struct host_cpu *host);

/* ---- a resolved guest CPU ---- */
struct guest_cpu;
/* spec: "NAME", "NAME-vN", or either followed by ",+feat,-feat,..."
 * ("feat=on"/"feat=off" also work); "host" is the pass-through pseudo-model
 * (not migratable). An alias (no -vN) resolves to the newest version. Errors:
 * -ENOENT unknown model or version, -EINVAL malformed spec, unknown feature
 * name or a broken dependency ("avx2 needs avx"), -ENOTSUP host lacks
 * features (the message lists every missing one, as
 * "cpu model X-vN: host lacks CPUID.07H:EBX.avx512f [bit 16], ... (host kvm)";
 * when that would not fit one message, grouped by register:
 * "host lacks 40 features: CPUID.01H:ECX.{pni,ssse3} CPUID.07H:EBX.{...}").
 * host == NULL skips the runnable check (tools only; `vmm` always passes one).
 * The result does not point into host; it does point into db (free db last). */
int guest_cpu_resolve(const struct cpumodel_db *db, const char *spec, const struct host_cpu *host,
		      struct guest_cpu **out, struct vmm_error *err);
/* The resolved "NAME-vN": what the VMM records, prints and sends. */
const char *guest_cpu_name(const struct guest_cpu *g);
/* Canonical full spec, "NAME-vN" plus sorted "+feat"/"-feat" adjustments. */
const char *guest_cpu_spec(const struct guest_cpu *g);
/* APIC ID of vCPU `vcpu_index` of `ncpus` (also the KVM vcpu id). */
uint32_t guest_cpu_apic_id(const struct guest_cpu *g, unsigned ncpus, unsigned vcpu_index);
/* The complete CPUID table the vCPU sees: features, vendor, signature,
 * model-id, cache/topology leaves for ncpus, APIC ID, xsave sizes, KVM
 * paravirt leaves. Deterministic: depends only on the model, the user's
 * adjustments, ncpus and vcpu_index (never on host values beyond the
 * runnable check), so two hosts that accept a model build equal tables.
 * ncpus 1..255; -EINVAL otherwise or when vcpu_index >= ncpus. The "current
 * XCR0" sizes (0xD.0 EBX, 0xD.1 EBX) hold their reset value, which is what
 * KVM writes there at KVM_SET_CPUID2; OSXSAVE/OSPKE are 0 (KVM sets them).
 * Note: kvm_pvm replaces leaves 1, 7 and 0xD with the physical CPU's values
 * in what KVM_GET_CPUID2 returns (see cpumodels/README.md). */
int guest_cpu_build_cpuid(const struct guest_cpu *g, unsigned ncpus, unsigned vcpu_index,
			  struct cpuid_table *out, struct vmm_error *err);
/* The physical-address width the guest sees (CPUID 0x80000008 EAX[7:0]) and
 * the XSAVE components it may enable (CPUID 0xD.0 EDX:EAX), without building
 * a table (names.c). */
unsigned guest_cpu_phys_bits(const struct guest_cpu *g);
uint64_t guest_cpu_xcr0(const struct guest_cpu *g);
void guest_cpu_free(struct guest_cpu *g);

#endif
