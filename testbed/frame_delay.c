/*
 * frame_delay: a two-port Ethernet relay that delays one direction, for test
 * namespaces on kernels without netem (this repository's testbed/slow_net.ts
 * compiles it with `cc` into a temporary directory and runs it inside a
 * namespace of its own).
 *
 *     frame_delay IF_A IF_B A_TO_B_MS B_TO_A_MS
 *
 * Every frame received on IF_A is sent on IF_B after A_TO_B_MS milliseconds,
 * every frame received on IF_B is sent on IF_A after B_TO_A_MS, in order.
 * Frames are read and written with PACKET_VNET_HDR, so a frame whose checksum
 * the sender left to the device (veth: CHECKSUM_PARTIAL) or that is still one
 * large GSO segment crosses as it was, and the far end finishes it. Our own
 * sends are not read back (PACKET_IGNORE_OUTGOING). Prints "ready" on stdout
 * once both ports are open; runs until killed. At most QUEUE frames wait per
 * direction; more are dropped and counted on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE 4096
#define MAXFRAME (sizeof(struct virtio_net_hdr) + 65536)

struct frame {
  long long due;
  size_t len;
  unsigned char *data;
};

struct port {
  const char *name;
  int fd;
  long long delay; /* for frames received on this port, sent on the other */
  struct frame q[QUEUE];
  int head, count;
  unsigned long dropped;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *name) {
  fprintf(stderr, "frame_delay: %s %s: %s\n", what, name, strerror(errno));
  exit(1);
}

static int open_port(const char *name) {
  unsigned idx = if_nametoindex(name);
  if (idx == 0) die("no interface", name);
  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) die("socket for", name);
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
    die("PACKET_VNET_HDR on", name);
  }
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) {
    die("PACKET_IGNORE_OUTGOING on", name);
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)idx;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind to", name);
  struct packet_mreq mr;
  memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = (int)idx;
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
    die("promiscuous mode on", name);
  }
  return fd;
}

static void receive(struct port *from, unsigned char *buf) {
  struct sockaddr_ll sll;
  socklen_t sl = sizeof sll;
  ssize_t n = recvfrom(from->fd, buf, MAXFRAME, MSG_DONTWAIT, (struct sockaddr *)&sll, &sl);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    die("recv on", from->name);
  }
  if (sll.sll_pkttype == PACKET_OUTGOING) return;
  if (from->count == QUEUE) {
    from->dropped++;
    fprintf(stderr, "frame_delay: queue full on %s, %lu dropped\n", from->name, from->dropped);
    return;
  }
  struct frame *f = &from->q[(from->head + from->count) % QUEUE];
  f->data = malloc((size_t)n);
  if (f->data == NULL) die("out of memory on", from->name);
  memcpy(f->data, buf, (size_t)n);
  f->len = (size_t)n;
  f->due = now_ms() + from->delay;
  from->count++;
}

/* Sends the frames of `from` that are due, on `to`. */
static void flush(struct port *from, struct port *to, long long now) {
  while (from->count > 0 && from->q[from->head].due <= now) {
    struct frame *f = &from->q[from->head];
    if (send(to->fd, f->data, f->len, 0) < 0 && errno != ENOBUFS) {
      fprintf(stderr, "frame_delay: send on %s: %s\n", to->name, strerror(errno));
    }
    free(f->data);
    from->head = (from->head + 1) % QUEUE;
    from->count--;
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: frame_delay IF_A IF_B A_TO_B_MS B_TO_A_MS\n");
    return 2;
  }
  static struct port a, b;
  static unsigned char buf[MAXFRAME];
  a.name = argv[1];
  b.name = argv[2];
  a.delay = atoll(argv[3]);
  b.delay = atoll(argv[4]);
  if (a.delay < 0 || b.delay < 0) {
    fprintf(stderr, "frame_delay: delays must be >= 0\n");
    return 2;
  }
  a.fd = open_port(a.name);
  b.fd = open_port(b.name);
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    long long now = now_ms();
    flush(&a, &b, now);
    flush(&b, &a, now);
    int timeout = -1;
    for (int i = 0; i < 2; i++) {
      struct port *p = i == 0 ? &a : &b;
      if (p->count == 0) continue;
      long long wait = p->q[p->head].due - now;
      if (wait < 0) wait = 0;
      if (timeout < 0 || wait < timeout) timeout = (int)wait;
    }
    struct pollfd fds[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
    if (poll(fds, 2, timeout) < 0) {
      if (errno == EINTR) continue;
      die("poll", "");
    }
    if (fds[0].revents & POLLIN) receive(&a, buf);
    if (fds[1].revents & POLLIN) receive(&b, buf);
  }
}
