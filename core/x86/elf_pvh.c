/*
 * core/x86/elf_pvh.c: loading a PVH kernel: an ELF (64- or 32-bit) whose
 * note "Xen"/18 (XEN_ELFNOTE_PHYS32_ENTRY) gives the 32-bit entry point.
 * The file is untrusted: every count, size and offset is checked against
 * the file and guest RAM before anything is read or written.
 */
#include "core/x86/x86.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MAX_PHDRS 128
#define MAX_NOTE_BYTES (64 * 1024)

/* Class-independent program header. */
struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

static int read_exact(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int read_phdrs(int fd, const char *path, uint64_t fsize, struct phdr *ph, unsigned *nph,
		      struct vmm_error *err)
{
	unsigned char ident[EI_NIDENT + 2] = {0};
	if (fsize < SELFMAG || read_exact(fd, ident, fsize < sizeof(ident) ? fsize : sizeof(ident),
					  0) < 0)
		return vmm_error_set(err, -ENOEXEC, "kernel %s: not an ELF file (%llu bytes)", path,
				     (unsigned long long)fsize);
	if (memcmp(ident, ELFMAG, SELFMAG) != 0) {
		char hdrs[4];
		if (fsize > 0x206 && read_exact(fd, hdrs, 4, 0x202) == 0 && memcmp(hdrs, "HdrS", 4) == 0)
			return vmm_error_set(err, -ENOEXEC,
					     "kernel %s: is a bzImage; vmm boots ELF kernels with a PVH "
					     "entry: extract vmlinux (scripts/extract-vmlinux.sh)",
					     path);
		return vmm_error_set(err, -ENOEXEC, "kernel %s: not an ELF file", path);
	}
	if (fsize < sizeof(Elf32_Ehdr))
		return vmm_error_set(err, -ENOEXEC, "kernel %s: truncated ELF header", path);
	if (ident[EI_DATA] != ELFDATA2LSB)
		return vmm_error_set(err, -ENOEXEC, "kernel %s: not a little-endian ELF", path);

	uint64_t phoff;
	unsigned phnum, phentsize;
	if (ident[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr eh;
		if (fsize < sizeof(eh) || read_exact(fd, &eh, sizeof(eh), 0) < 0)
			return vmm_error_set(err, -ENOEXEC, "kernel %s: truncated ELF header", path);
		if (eh.e_machine != EM_X86_64)
			return vmm_error_set(err, -ENOEXEC, "kernel %s: ELF for machine %u, not x86-64",
					     path, eh.e_machine);
		phoff = eh.e_phoff;
		phnum = eh.e_phnum;
		phentsize = eh.e_phentsize;
		if (phnum && phentsize != sizeof(Elf64_Phdr))
			return vmm_error_set(err, -ENOEXEC, "kernel %s: bad program header size %u",
					     path, phentsize);
	} else if (ident[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr eh;
		if (read_exact(fd, &eh, sizeof(eh), 0) < 0)
			return vmm_error_set(err, -ENOEXEC, "kernel %s: truncated ELF header", path);
		if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64)
			return vmm_error_set(err, -ENOEXEC, "kernel %s: ELF for machine %u, not x86",
					     path, eh.e_machine);
		phoff = eh.e_phoff;
		phnum = eh.e_phnum;
		phentsize = eh.e_phentsize;
		if (phnum && phentsize != sizeof(Elf32_Phdr))
			return vmm_error_set(err, -ENOEXEC, "kernel %s: bad program header size %u",
					     path, phentsize);
	} else {
		return vmm_error_set(err, -ENOEXEC, "kernel %s: unknown ELF class %u", path,
				     ident[EI_CLASS]);
	}
	if (phnum == 0 || phnum > MAX_PHDRS)
		return vmm_error_set(err, -ENOEXEC, "kernel %s: %u program headers (need 1..%d)",
				     path, phnum, MAX_PHDRS);
	if (phoff > fsize || (uint64_t)phnum * phentsize > fsize - phoff)
		return vmm_error_set(err, -ENOEXEC, "kernel %s: program headers beyond end of file",
				     path);
	for (unsigned i = 0; i < phnum; i++) {
		uint64_t off = phoff + (uint64_t)i * phentsize;
		if (ident[EI_CLASS] == ELFCLASS64) {
			Elf64_Phdr p;
			if (read_exact(fd, &p, sizeof(p), off) < 0)
				return vmm_error_set(err, -EIO, "kernel %s: cannot read", path);
			ph[i] = (struct phdr){p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz};
		} else {
			Elf32_Phdr p;
			if (read_exact(fd, &p, sizeof(p), off) < 0)
				return vmm_error_set(err, -EIO, "kernel %s: cannot read", path);
			ph[i] = (struct phdr){p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz};
		}
		if (ph[i].filesz > fsize || ph[i].offset > fsize - ph[i].filesz)
			return vmm_error_set(err, -ENOEXEC,
					     "kernel %s: segment %u lies beyond the end of the file",
					     path, i);
	}
	*nph = phnum;
	return 0;
}

/* Looks for the PVH entry note in one PT_NOTE segment. */
static int find_pvh_note(int fd, const struct phdr *ph, uint64_t *entry)
{
	if (ph->filesz == 0 || ph->filesz > MAX_NOTE_BYTES)
		return 0;
	uint8_t *buf = malloc(ph->filesz);
	if (!buf)
		return -ENOMEM;
	int r = read_exact(fd, buf, ph->filesz, ph->offset);
	for (uint64_t pos = 0; r == 0 && pos + 12 <= ph->filesz;) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, buf + pos, 4);
		memcpy(&descsz, buf + pos + 4, 4);
		memcpy(&type, buf + pos + 8, 4);
		uint64_t name_off = pos + 12;
		uint64_t desc_off = name_off + ((namesz + 3ull) & ~3ull);
		uint64_t next = desc_off + ((descsz + 3ull) & ~3ull);
		if (next > ph->filesz)
			break;
		if (namesz == 4 && memcmp(buf + name_off, "Xen", 4) == 0 &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY && (descsz == 4 || descsz == 8)) {
			uint64_t v = 0;
			memcpy(&v, buf + desc_off, descsz);
			*entry = v;
			r = 1;
			break;
		}
		pos = next;
	}
	free(buf);
	return r;
}

int elf_load_pvh(const struct vm *vm, const char *path, uint64_t min_addr, struct elf_image *img,
		 struct vmm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmm_error_set(err, -errno, "kernel %s: %s", path, strerror(errno));
	struct stat st;
	struct phdr *ph = calloc(MAX_PHDRS, sizeof(*ph));
	unsigned nph = 0;
	int r;
	if (!ph) {
		r = vmm_error_set(err, -ENOMEM, "kernel %s: out of memory", path);
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = vmm_error_set(err, -EINVAL, "kernel %s: not a regular file", path);
		goto out;
	}
	if ((r = read_phdrs(fd, path, (uint64_t)st.st_size, ph, &nph, err)) < 0)
		goto out;

	/* The PVH note first: a plain ELF program should hear "not PVH", not
	 * a complaint about where its segments are. */
	bool have_entry = false;
	for (unsigned i = 0; i < nph && !have_entry; i++) {
		if (ph[i].type != PT_NOTE)
			continue;
		r = find_pvh_note(fd, &ph[i], &img->entry);
		if (r < 0) {
			r = vmm_error_set(err, r, "kernel %s: cannot read notes", path);
			goto out;
		}
		have_entry = r == 1;
	}
	if (!have_entry) {
		r = vmm_error_set(err, -ENOEXEC,
				  "kernel %s: no PVH entry note (Xen note XEN_ELFNOTE_PHYS32_ENTRY): "
				  "not a PVH-bootable kernel",
				  path);
		goto out;
	}

	img->low = UINT64_MAX;
	img->high = 0;
	for (unsigned i = 0; i < nph; i++) {
		if (ph[i].type != PT_LOAD || ph[i].memsz == 0)
			continue;
		if (ph[i].filesz > ph[i].memsz) {
			r = vmm_error_set(err, -ENOEXEC, "kernel %s: segment %u: file size > memory size",
					  path, i);
			goto out;
		}
		if (ph[i].paddr < min_addr) {
			r = vmm_error_set(err, -ENOEXEC,
					  "kernel %s: segment %u at 0x%llx is below 0x%llx (boot data area)",
					  path, i, (unsigned long long)ph[i].paddr,
					  (unsigned long long)min_addr);
			goto out;
		}
		uint8_t *dst = guest_ptr(&vm->mem, ph[i].paddr, ph[i].memsz);
		if (!dst) {
			r = vmm_error_set(err, -ENOEXEC,
					  "kernel %s: segment %u (0x%llx+0x%llx) does not fit in guest RAM",
					  path, i, (unsigned long long)ph[i].paddr,
					  (unsigned long long)ph[i].memsz);
			goto out;
		}
		if ((r = read_exact(fd, dst, ph[i].filesz, ph[i].offset)) < 0) {
			r = vmm_error_set(err, r, "kernel %s: reading segment %u: %s", path, i,
					  strerror(-r));
			goto out;
		}
		memset(dst + ph[i].filesz, 0, ph[i].memsz - ph[i].filesz);
		if (ph[i].paddr < img->low)
			img->low = ph[i].paddr;
		if (ph[i].paddr + ph[i].memsz > img->high)
			img->high = ph[i].paddr + ph[i].memsz;
	}
	if (img->high == 0) {
		r = vmm_error_set(err, -ENOEXEC, "kernel %s: no loadable segments", path);
		goto out;
	}
	if (img->entry >= 0x100000000ull || !guest_ptr(&vm->mem, img->entry, 1)) {
		r = vmm_error_set(err, -ENOEXEC, "kernel %s: PVH entry 0x%llx is outside guest RAM",
				  path, (unsigned long long)img->entry);
		goto out;
	}
	r = 0;
out:
	free(ph);
	close(fd);
	return r;
}
