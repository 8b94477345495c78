/*
 * migration/local.c: a same-host move ("local": true over unix:). The
 * guest's RAM is not copied: its memfd travels over the unix socket
 * (SCM_RIGHTS) with a MemFd record, the destination maps it and answers
 * with an Ack that says so, and only then does the source stop the guest;
 * vCPU and device state follow as in any migration. Until Go the source
 * owns the guest (the destination never writes the memory: no RAM records
 * come, and its vCPUs do not run), so a failed move just resumes it at the
 * source. After Go the source never touches the memory again.
 */
#include "migration/channel.h"
#include "migration/local.h"

#include <errno.h>
#include <unistd.h>

int mig_local_send(struct mig_channel *ch, struct mig_writer *w, struct vm *vm, unsigned timeout_ms,
		   struct vmm_error *err)
{
	int r = mig_channel_flush(ch, err); /* the descriptor rides with this record alone */
	if (r < 0)
		return r;
	Vmm__Migration__MemFd m = VMM__MIGRATION__MEM_FD__INIT;
	m.size = vm->mem.size;
	m.page_size = (uint32_t)vm->mem.page_size;
	if ((r = mig_write_record(w, MIG_REC_MEM_FD, &m.base, err)) < 0 ||
	    (r = mig_channel_flush_fd(ch, vm->mem.fd, err)) < 0)
		return r;
	return mig_channel_wait_adopted(ch, timeout_ms, err);
}

int mig_local_adopt(struct mig_conn *conn, struct vm *vm, const struct mig_record *rec,
		    struct vmm_error *err)
{
	Vmm__Migration__MemFd *m;
	int r = mig_unpack(rec, &vmm__migration__mem_fd__descriptor, (ProtobufCMessage **)&m, err);
	if (r < 0)
		return r;
	uint64_t size = m->size;
	protobuf_c_message_free_unpacked(&m->base, NULL);
	if (size != vm->mem.size)
		return vmm_error_set(err, -EINVAL,
				     "local move: the source's RAM is %llu MiB, this "
				     "guest's %llu MiB",
				     (unsigned long long)(size >> 20),
				     (unsigned long long)(vm->mem.size >> 20));
	int fd;
	if ((r = mig_conn_recv_fd(conn, &fd, err)) < 0)
		return vmm_error_prefix(err, "local move");
	if ((r = vm_memory_adopt(vm, fd, err)) < 0) {
		close(fd);
		return vmm_error_prefix(err, "local move: this vmm cannot use the guest's memory");
	}
	return 0;
}
