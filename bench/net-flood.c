/*
 * bench/net-flood.c: the host side of bench/net-bench.py, in C so that the
 * sender is not what is measured: keeps WINDOW frames (ethertype 0x88b5)
 * in flight to the echo guest through DEV (AF_PACKET, sendmmsg/recvmmsg in
 * batches), a new frame for each echo, for SECONDS, and prints one JSON
 * line {"sent", "echoes", "bytes", "seconds"}. Root (AF_PACKET).
 *
 *   cc -O2 -o /tmp/net-flood bench/net-flood.c
 *   /tmp/net-flood DEV GUEST_MAC SECONDS FRAME_SIZE WINDOW
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE 0x88b5
#define BATCH	  64
#define MAXF	  9216

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s DEV GUEST_MAC SECONDS FRAME_SIZE WINDOW\n", argv[0]);
		return 2;
	}
	const char *dev = argv[1];
	uint8_t guest[6], me[6];
	if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &guest[0], &guest[1], &guest[2],
		   &guest[3], &guest[4], &guest[5]) != 6)
		return 2;
	double seconds = atof(argv[3]);
	int size = atoi(argv[4]), window = atoi(argv[5]);
	if (size < 60 || size > MAXF || window < 1 || window > 4096)
		return 2;
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETHERTYPE));
	if (s < 0) {
		perror("socket");
		return 1;
	}
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) {
		perror(dev);
		return 1;
	}
	memcpy(me, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
		perror(dev);
		return 1;
	}
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETHERTYPE),
				  .sll_ifindex = ifr.ifr_ifindex};
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		perror("bind");
		return 1;
	}
	int big = 8 << 20, one = 1;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

	static uint8_t tx[BATCH][MAXF], rx[BATCH][MAXF];
	struct mmsghdr tmsg[BATCH], rmsg[BATCH];
	struct iovec tiov[BATCH], riov[BATCH];
	for (int i = 0; i < BATCH; i++) {
		memcpy(tx[i], guest, 6);
		memcpy(tx[i] + 6, me, 6);
		tx[i][12] = ETHERTYPE >> 8;
		tx[i][13] = ETHERTYPE & 0xff;
		memcpy(tx[i] + 14, "VMMNET01", 8);
		tiov[i] = (struct iovec){tx[i], (size_t)size};
		riov[i] = (struct iovec){rx[i], MAXF};
		tmsg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &tiov[i], .msg_iovlen = 1}};
		rmsg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &riov[i], .msg_iovlen = 1}};
	}
	uint64_t seq = 0, echoes = 0, bytes = 0;
	/* the guest answers at all? (it may still be booting) */
	double deadline = now() + 60;
	for (;;) {
		send(s, tx[0], (size_t)size, 0);
		struct pollfd p = {s, POLLIN, 0};
		if (poll(&p, 1, 50) > 0)
			break;
		if (now() > deadline) {
			fprintf(stderr, "net-flood: no echo within 60 s\n");
			return 1;
		}
	}
	usleep(200000);
	while (recvmmsg(s, rmsg, BATCH, MSG_DONTWAIT, NULL) > 0)
		;
	double t0 = now(), end = t0 + seconds;
	int inflight = 0;
	while (now() < end) {
		while (inflight < window) {
			int n = window - inflight < BATCH ? window - inflight : BATCH;
			for (int i = 0; i < n; i++)
				memcpy(tx[i] + 22, &seq, sizeof(seq)), seq++;
			int k = sendmmsg(s, tmsg, (unsigned)n, 0);
			if (k <= 0)
				break;
			seq -= (uint64_t)(n - k);
			inflight += k;
		}
		struct pollfd p = {s, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0) {
			inflight = 0; /* lost: refill the window */
			continue;
		}
		int k;
		while ((k = recvmmsg(s, rmsg, BATCH, MSG_DONTWAIT, NULL)) > 0)
			for (int i = 0; i < k; i++) {
				const uint8_t *f = rx[i];
				if (rmsg[i].msg_len < 30 || memcmp(f, me, 6) ||
				    memcmp(f + 6, guest, 6) || memcmp(f + 14, "VMMNET01", 8))
					continue;
				echoes++;
				bytes += rmsg[i].msg_len;
				inflight--;
			}
	}
	printf("{\"sent\": %llu, \"echoes\": %llu, \"bytes\": %llu, \"seconds\": %.6f}\n",
	       (unsigned long long)seq, (unsigned long long)echoes, (unsigned long long)bytes,
	       now() - t0);
	return 0;
}
