/*
 * cpumodels/engine.h: the CPU-model engine's inner interface, for its own
 * files, the `vmm cpu-model` CLI and the unit tests. The rest of the VMM uses
 * cpumodel.h only.
 *
 * Pieces, one file each:
 *   features.c / features_table.c  named CPUID feature bits and feature sets
 *   cpuid_table.c                  cpuid_table helpers, text read/write, diff
 *   db_parse.c / db.c              model data files -> versioned model database
 *   host.c / host_kvm.c            what a host (dump, profile or KVM) can provide
 *   host_rule.c                    the rule for features the VMM provides itself
 *   host_profile.c                 the host profile file format (read and write)
 *   guest.c / cpuid_build.c        model spec -> guest_cpu -> per-vCPU CPUID
 *   ops.c                          check, compare, baseline, matrix
 * Nothing here needs /dev/kvm except host_cpu_from_kvm() and
 * host_cpu_open_kvm() (host_kvm.c).
 */
#ifndef VMM_CPUMODELS_ENGINE_H
#define VMM_CPUMODELS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpumodels/cpumodel.h"

/* ------------------------------------------------------------------ */
/* Feature table (features.c, rows in features_table.c)                */

enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

/* The CPUID registers that hold named feature bits ("feature words"). */
enum cpufeat_word_id {
	FW_1_EDX,
	FW_1_ECX,
	FW_6_EAX,
	FW_7_0_EBX,
	FW_7_0_ECX,
	FW_7_0_EDX,
	FW_7_1_EAX,
	FW_7_1_EDX,
	FW_D_1_EAX,
	FW_14_0_EBX,
	FW_14_0_ECX,
	FW_19_0_EBX,
	FW_8000_0001_EDX,
	FW_8000_0001_ECX,
	FW_8000_0007_EDX,
	FW_8000_0008_EBX,
	FW_8000_0021_EAX,
	FW_4000_0001_EAX,
	FW_4000_0001_EDX,
	CPUFEAT_NWORDS
};

struct cpufeat_word {
	uint32_t leaf, subleaf;
	enum cpuid_reg reg;
};
extern const struct cpufeat_word cpufeat_words[CPUFEAT_NWORDS];

/* Row flags: how the engine treats a bit. */
enum {
	CPUFEAT_COMPUTED = 1 << 0, /* set by the engine (ht, hypervisor); not in models/specs */
	CPUFEAT_DYNAMIC = 1 << 1,  /* guest-OS controlled (osxsave, ospke); always 0 in tables */
	CPUFEAT_NOKVM = 1 << 2,	   /* host-only: KVM never gives it to a guest (est, Key Locker);
				    * never in a model, dropped from CPU dumps */
	CPUFEAT_KVM_EMU = 1 << 3,  /* every KVM reports it on any CPU (PV features); added to
				    * CPU dumps, which cannot record it */
	CPUFEAT_PV = 1 << 4,	   /* KVM paravirt leaf 0x40000001 */
	CPUFEAT_PV_DEFAULT =
	    1 << 5, /* in the engine's default PV set (every model starts with it) */
	CPUFEAT_NOMIGRATE = 1 << 6, /* ties a guest to its host (invtsc); never suggested */
};

struct cpufeat {
	const char *name;    /* Linux /proc/cpuinfo spelling (or its define, lower case) */
	const char *aliases; /* space-separated other spellings (QEMU's), or NULL */
	uint32_t leaf, subleaf;
	uint8_t reg; /* enum cpuid_reg */
	uint8_t bit; /* 0..31 */
	uint8_t flags;
};

size_t cpufeat_count(void);
const struct cpufeat *cpufeat_at(size_t i);
/* Looks a name up among names and aliases. Case-insensitive; '-', '_' and
 * '.' are equivalent ("sse4.1" == "sse4_1" == "SSE4-1"). NULL if unknown. */
const struct cpufeat *cpufeat_find(const char *name);
const struct cpufeat *cpufeat_by_bit(enum cpufeat_word_id w, unsigned bit);
/* Index of the feature word a row lives in (every row has one). */
enum cpufeat_word_id cpufeat_word_of(const struct cpufeat *f);
/* "CPUID.07H:EBX.avx512f [bit 16]", "CPUID.07H.01H:EAX.avx512_bf16 [bit 5]",
 * "CPUID.80000001H:ECX.lahf_lm [bit 0]". Returns snprintf's result. */
int cpufeat_describe(const struct cpufeat *f, char *buf, size_t len);
/* "CPUID.07H:EBX" / "CPUID.0DH.01H:EAX" for a leaf/subleaf/register. */
int cpufeat_reg_describe(uint32_t leaf, uint32_t subleaf, enum cpuid_reg reg, char *buf,
			 size_t len);
const char *cpuid_reg_name(enum cpuid_reg reg);

/* Dependencies: a feature that needs another (avx needs xsave, ...). */
struct cpufeat_dep {
	const char *feature, *needs;
};
size_t cpufeat_dep_count(void);
const struct cpufeat_dep *cpufeat_dep_at(size_t i);

/* A set of named feature bits, one 32-bit mask per feature word. */
struct cpufeat_set {
	uint32_t w[CPUFEAT_NWORDS];
};

void cpufeat_set_add(struct cpufeat_set *s, const struct cpufeat *f);
void cpufeat_set_del(struct cpufeat_set *s, const struct cpufeat *f);
bool cpufeat_set_has(const struct cpufeat_set *s, const struct cpufeat *f);
bool cpufeat_set_has_name(const struct cpufeat_set *s, const char *name);
bool cpufeat_set_equal(const struct cpufeat_set *a, const struct cpufeat_set *b);
bool cpufeat_set_subset(const struct cpufeat_set *a, const struct cpufeat_set *b); /* a <= b */
void cpufeat_set_and(struct cpufeat_set *a, const struct cpufeat_set *b);
void cpufeat_set_andnot(struct cpufeat_set *a, const struct cpufeat_set *b);
void cpufeat_set_or(struct cpufeat_set *a, const struct cpufeat_set *b);
unsigned cpufeat_set_count(const struct cpufeat_set *s);
/* Every named feature. */
void cpufeat_set_all(struct cpufeat_set *s);
/* All rows whose flags intersect `flags`. */
void cpufeat_set_with_flags(struct cpufeat_set *s, unsigned flags);
/* Iterates the named features of a set in table order: pass *i = 0 first. */
const struct cpufeat *cpufeat_set_next(const struct cpufeat_set *s, size_t *i);
/* Named bits of a CPUID table (leaves beyond the table's max levels and
 * leaves it lacks count as 0). */
void cpufeat_set_from_table(const struct cpuid_table *t, struct cpufeat_set *out);
/* Checks the dependency rows; on a violation returns -EINVAL with
 * "F needs N" in err. */
int cpufeat_set_check_deps(const struct cpufeat_set *s, struct vmm_error *err);
/* Makes every feature whose dependency is missing unusable (removes it),
 * repeatedly until the set respects every dependency row. The removed ones
 * are added to *dropped when it is not NULL. Returns how many were removed.
 * Used for what hosts offer: a real CPU may report a feature without the one
 * it needs (Key Locker's wide_kl without aeskle), which is no error. */
unsigned cpufeat_set_downgrade(struct cpufeat_set *s, struct cpufeat_set *dropped);
/* A dependency of f that s lacks (the first in the table), or NULL. */
const struct cpufeat *cpufeat_missing_dep(const struct cpufeat_set *s, const struct cpufeat *f);
/* Space-separated canonical names, truncated with "..." to fit. */
void cpufeat_set_format(const struct cpufeat_set *s, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* CPUID tables (cpuid_table.c)                                        */

#define CPUID_LINE_MAX 256

/* Leaves that KVM indexes by subleaf (KVM_CPUID_FLAG_SIGNIFCANT_INDEX). */
bool cpuid_leaf_has_subleaves(uint32_t leaf);
/* Inserts or replaces (leaf, subleaf), keeping the table sorted. -ENOSPC when full. */
int cpuid_table_set(struct cpuid_table *t, uint32_t leaf, uint32_t subleaf, uint32_t eax,
		    uint32_t ebx, uint32_t ecx, uint32_t edx);
/* Reads the text format (# comments, then sorted unique 6-field lines).
 * Errors name "path:line". */
int cpuid_table_read(const char *path, struct cpuid_table *t, char *comment_name,
		     size_t comment_name_len, struct vmm_error *err);
uint32_t cpuid_table_reg(const struct cpuid_table *t, uint32_t leaf, uint32_t subleaf,
			 enum cpuid_reg reg);
/* One row of the text format: six "0x%08x" fields, single spaces (trailing
 * blanks and a newline allowed). */
bool cpuid_line_parse(const char *line, uint32_t v[6]);

/* ------------------------------------------------------------------ */
/* Model database (db_parse.c, db.c)                                   */

#define CPUMODEL_NAME_MAX     48
#define CPUMODEL_MODEL_ID_MAX 48 /* 47 characters + NUL (leaves 0x80000002-4) */
#define CPUMODEL_MAX_MODELS   256
#define CPUMODEL_MAX_VERSIONS 64
#define CPUMODEL_MAX_ALIASES  8
#define CPUMODEL_MAX_FILES    256
#define CPUMODEL_NOTE_MAX     160

enum cpu_vendor { VENDOR_INTEL, VENDOR_AMD };

/* Guest-visible properties of one model version (everything but features). */
struct cpumodel_props {
	enum cpu_vendor vendor;
	unsigned family, model, stepping;
	char model_id[CPUMODEL_MODEL_ID_MAX];
	uint32_t level, xlevel; /* minimum max-leaf values; raised to what features need */
	unsigned phys_bits;
};

/* One released version, fully resolved (base + all deltas up to it). */
struct cpumodel_version {
	char name[CPUMODEL_NAME_MAX + 8]; /* "NAME-vN" */
	unsigned version;
	struct cpumodel_props props;
	struct cpufeat_set features;
	struct cpufeat_set added, removed; /* the delta against version-1 */
	char note[CPUMODEL_NOTE_MAX];
	char aliases[CPUMODEL_MAX_ALIASES][CPUMODEL_NAME_MAX];
	unsigned naliases;
	char file[256]; /* data file path and line of "version N" */
	unsigned line;
	uint64_t digest; /* FNV-1a 64 of the guest-visible definition */
};

struct cpumodel {
	char name[CPUMODEL_NAME_MAX];
	char aliases[CPUMODEL_MAX_ALIASES][CPUMODEL_NAME_MAX]; /* resolve to newest */
	unsigned naliases;
	char file[256];
	unsigned line;
	unsigned nversions;
	struct cpumodel_version *versions; /* [0] is v1 */
};

struct cpumodel_db {
	unsigned nmodels;
	struct cpumodel *models;
	char dir[512];
};

/* Parses one file's text into db (appending models). `fname` is used in
 * messages. Returns 0 or -EINVAL with "fname:line: what" in err. */
int cpumodel_db_parse(struct cpumodel_db *db, const char *fname, const char *text,
		      struct vmm_error *err);
/* After all files: cross-file checks (unique names/aliases). */
int cpumodel_db_finish(struct cpumodel_db *db, struct vmm_error *err);
struct cpumodel_db *cpumodel_db_new(void);

/* Looks up "NAME", "NAME-vN" or an alias; a model name or model-level alias
 * gives the newest version (cpumodel_name_info() tells which kind a name
 * is). Returns NULL if unknown; *model_out (optional) is then the model
 * when only the version is unknown, else NULL. */
const struct cpumodel_version *cpumodel_db_lookup(const struct cpumodel_db *db, const char *name,
						  const struct cpumodel **model_out);
const struct cpumodel_version *cpumodel_newest(const struct cpumodel *m);
uint64_t cpumodel_version_digest(const struct cpumodel_version *v);
const char *cpu_vendor_string(enum cpu_vendor v); /* "GenuineIntel" */
const char *cpu_vendor_name(enum cpu_vendor v);	  /* "Intel" */

/* ------------------------------------------------------------------ */
/* The host rule (host_rule.c)                                         */

/* Facts about a host's KVM that decide what the VMM can provide. */
enum kvm_fact {
	KVM_FACT_IRQCHIP,	/* KVM_CAP_IRQCHIP: the in-kernel APIC vmm creates */
	KVM_FACT_TSC_DEADLINE,	/* KVM_CAP_TSC_DEADLINE_TIMER */
	KVM_FACT_ARCH_CAPS_MSR, /* MSR_IA32_ARCH_CAPABILITIES in KVM_GET_MSR_INDEX_LIST */
	KVM_NFACTS
};
struct kvm_facts {
	bool has[KVM_NFACTS];
};
/* "irqchip", "tsc-deadline-timer", "arch-capabilities-msr" (profile files). */
const char *kvm_fact_name(enum kvm_fact f);
int kvm_fact_find(const char *name); /* -1 if unknown */
/* Every fact true: what a raw CPU dump stands for (a current KVM). */
void kvm_facts_all(struct kvm_facts *f);

enum host_rule_kind {
	HOST_RULE_PROVIDE, /* the VMM provides it: offered when `needs` holds, reported or not */
	HOST_RULE_BACKED,  /* KVM reports it but it needs more: withdrawn unless `needs` holds */
};
struct host_rule {
	const char *feature;
	enum host_rule_kind kind;
	unsigned needs; /* bit (1 << enum kvm_fact) per fact needed; 0: nothing */
	const char *why;
};
bool host_rule_holds(const struct host_rule *r, const struct kvm_facts *facts);
size_t host_rule_count(void);
const struct host_rule *host_rule_at(size_t i);
const struct host_rule *host_rule_for(const struct cpufeat *f); /* NULL: no row */
/* Applies every row to s (the bits a host reports). */
void host_rule_apply(struct cpufeat_set *s, const struct kvm_facts *facts);

/* ------------------------------------------------------------------ */
/* Hosts (host.c, host_kvm.c, host_profile.c)                          */

struct host_cpu {
	char name[128];
	char vendor[13];
	uint32_t signature; /* leaf 1 EAX */
	char brand[49];
	unsigned phys_bits; /* 0 = unknown */
	bool is_kvm;	    /* KVM_GET_SUPPORTED_CPUID (this host, a host profile, or a
			     * dump intersected with this host) */
	bool is_profile;    /* read from a file (raw CPUID dump or host profile) */
	struct kvm_facts facts;
	struct cpufeat_set features; /* offered: reported bits after the host rule */
	struct cpufeat_set usable;   /* offered minus features whose dependency is not
				      * offered (cpufeat_set_downgrade) */
	struct cpufeat_set unknown;  /* dump words the dump did not record: counted
				      * in `features` (assumed present) and reported */
	struct cpuid_table raw;	     /* the profile's or KVM's table as read */
};

/* A host built from a CPUID table directly. is_kvm: the table is what KVM
 * reports (all facts assumed true); else a raw CPU dump. */
int host_cpu_from_table(const char *name, const struct cpuid_table *t, bool is_kvm,
			const struct host_cpu *limit, struct host_cpu **out, struct vmm_error *err);
/* A KVM host from its KVM_GET_SUPPORTED_CPUID table and kvm facts (this
 * machine, or a host profile): the host rule, then the downgrade. */
int host_cpu_from_kvm_table(const char *name, const struct cpuid_table *t,
			    const struct kvm_facts *facts, const struct host_cpu *limit,
			    struct host_cpu **out, struct vmm_error *err);
/* Reads this machine's KVM: KVM_GET_SUPPORTED_CPUID and the kvm facts. */
int host_kvm_read(int kvm_fd, struct cpuid_table *t, struct kvm_facts *facts,
		  struct vmm_error *err);
/* The brand string of the CPU this process runs on (CPUID 0x80000002-4),
 * trimmed; "" when it has none. */
void host_cpu_brand_here(char *buf, size_t len);
/* Opens /dev/kvm (or $VMM_KVM_DEV) and reads it; the message suggests
 * --host-cpu-profile when /dev/kvm is missing. */
int host_cpu_open_kvm(struct host_cpu **out, struct vmm_error *err);

/* Host profiles (host_profile.c), format in cpumodels/README.md. */
#define HOST_PROFILE_MAGIC     "vmm-host-profile"
#define HOST_PROFILE_VERSION   1
#define HOST_PROFILE_MAX_BYTES (64 * 1024)
struct host_profile_info {
	char hostname[65], kernel[65], vmm_version[33];
};
/* Writes this host (KVM table, facts, identity) as a profile. */
int host_profile_write(FILE *out, const struct cpuid_table *t, const struct kvm_facts *facts,
		       const char *brand, const struct host_profile_info *info,
		       struct vmm_error *err);
/* True if the text (a file's first bytes) is a host profile, not a dump. */
bool host_profile_detect(const char *text, size_t len);
/* Parses a profile's text; errors name "path:line". */
int host_profile_parse(const char *path, const char *text, size_t len, struct cpuid_table *t,
		       struct kvm_facts *facts, char *brand, size_t brand_len,
		       struct host_profile_info *info, struct vmm_error *err);

/* ------------------------------------------------------------------ */
/* Guest CPU (guest.c, cpuid_build.c)                                  */

#define CPUMODEL_MAX_CPUS 255 /* APIC IDs 0..254 fit leaf 1 EBX[31:24] */
#define CPUMODEL_SPEC_MAX 8192

struct guest_cpu {
	char name[CPUMODEL_NAME_MAX + 8];
	char spec[CPUMODEL_SPEC_MAX];
	bool migratable; /* false for the `host` pseudo-model */
	struct cpumodel_props props;
	struct cpufeat_set features;		/* model features after +/- adjustments */
	const struct cpumodel_version *version; /* NULL for `host` */
};

/* Like guest_cpu_resolve() but without a host check when host is NULL. */
int guest_cpu_resolve_spec(const struct cpumodel_db *db, const char *spec,
			   const struct host_cpu *host, struct guest_cpu **out,
			   struct vmm_error *err);
/* The features a guest of `g` needs the host to provide (its features minus
 * computed/dynamic bits). */
void guest_cpu_required(const struct guest_cpu *g, struct cpufeat_set *out);

/* ------------------------------------------------------------------ */
/* XSAVE components (xsave.c)                                          */

struct xsave_comp {
	unsigned id;
	uint32_t size, offset, ecx;
	const char *feature; /* the feature that enables it */
	const char *name;    /* the SDM's name: "opmask", "ZMM_Hi256", ... */
};
/* The vendor's standard-format layout (components 2 and up). */
const struct xsave_comp *xsave_layout(enum cpu_vendor v, unsigned *n);
/* XCR0 bits a feature set enables; -EINVAL if a feature has no component
 * in the vendor's layout (e.g. mpx on AMD). */
int xsave_components(enum cpu_vendor v, const struct cpufeat_set *fs, uint64_t *mask,
		     struct vmm_error *err);
/* Size of the standard-format area holding the components in mask. */
uint32_t xsave_size(enum cpu_vendor v, uint64_t mask);
uint32_t xsave_reset_size(void);
/* Components of mask that the host lays out differently; describes them in
 * words ("... the model keeps AVX-512 state (opmask, ZMM_Hi256, Hi16_ZMM) at
 * 0x440, 0x480, 0x680, where Intel CPUs do; this host's CPU keeps it at
 * 0x340, 0x380, 0x580, where AMD CPUs do. KVM cannot move ..."). */
unsigned xsave_host_mismatch(enum cpu_vendor v, uint64_t mask, const struct host_cpu *host,
			     char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Operations (ops.c)                                                  */

/* Features of `need` the host lacks, whether physical-address bits fit and
 * whether the host's XSAVE layout is the one the model's vendor uses. */
struct cpumodel_check {
	bool runnable;
	struct cpufeat_set missing;
	bool phys_bits_short; /* model needs more address bits than the host has */
	unsigned need_phys_bits, host_phys_bits;
	unsigned xsave_bad; /* components at other offsets/sizes on the host */
	char xsave_msg[768];
	struct cpufeat_set assumed; /* needed, not recorded by the profile, assumed present */
};
void cpumodel_check_host(const struct cpumodel_props *props, const struct cpufeat_set *need,
			 const struct host_cpu *host, struct cpumodel_check *out);
/* "host lacks CPUID.07H:EBX.avx512f [bit 16], CPUID.07H:EBX.hle [bit 4]" */
void cpumodel_check_format(const struct cpumodel_check *c, char *buf, size_t len);

enum cpumodel_relation { REL_IDENTICAL, REL_SUBSET, REL_SUPERSET, REL_INCOMPATIBLE };
const char *cpumodel_relation_name(enum cpumodel_relation r);
struct cpumodel_compare {
	enum cpumodel_relation relation; /* of A's features to B's */
	struct cpufeat_set only_a, only_b;
	bool props_differ;
	char prop_diffs[512]; /* "family 6 != 23; model-id ..." */
};
/* Either side may be a guest model or a host (props NULL for hosts). */
void cpumodel_compare_sets(const struct cpufeat_set *a, const struct cpumodel_props *pa,
			   const struct cpufeat_set *b, const struct cpumodel_props *pb,
			   struct cpumodel_compare *out);

struct cpumodel_baseline {
	const struct cpumodel_version *best; /* NULL: nothing runs on all hosts */
	const struct cpumodel *model;
	struct cpufeat_set common;    /* features every host can use (host->usable) */
	struct cpufeat_set extra;     /* common features the model lacks (addable with +feat) */
	struct cpufeat_set withheld;  /* common features not added: a host lays out their
				       * XSAVE state differently, or a feature they need
				       * is missing */
	unsigned candidates;	      /* versions runnable on all hosts */
	char spec[CPUMODEL_SPEC_MAX]; /* best version plus +extras */
};
int cpumodel_baseline(const struct cpumodel_db *db, struct host_cpu *const *hosts, unsigned nhosts,
		      struct cpumodel_baseline *out, struct vmm_error *err);

/* matrix[row * ncols + col] for every model version (rows, db order) x host. */
struct cpumodel_matrix_cell {
	bool runnable;
	struct cpumodel_check check;
};
struct cpumodel_matrix {
	unsigned nrows, ncols;
	const struct cpumodel_version **rows;
	const struct cpumodel **row_models;
	struct cpumodel_matrix_cell *cells;
};
int cpumodel_matrix_build(const struct cpumodel_db *db, struct host_cpu *const *hosts,
			  unsigned nhosts, bool newest_only, struct cpumodel_matrix *out,
			  struct vmm_error *err);
void cpumodel_matrix_free(struct cpumodel_matrix *m);

/* Features of a model version a host must have (computed/dynamic removed). */
void cpumodel_version_required(const struct cpumodel_version *v, struct cpufeat_set *out);

#endif
