/*
 * pong_server: the test servers of testbed/slow_net.ts (compiled there with
 * `cc`, like frame_delay.c), small enough that many test namespaces can each
 * run one or two on a busy machine.
 *
 *     pong_server PORT
 *
 * Listens on [::]:PORT (IPv4 too, as mapped addresses), prints "listening"
 * on stdout, and for every connection answers each "ping\n" with "pong\n"
 * until the client closes, then closes. One process, one poll loop; runs
 * until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXCONN 1024

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pong_server PORT\n");
    return 2;
  }
  int l = socket(AF_INET6, SOCK_STREAM, 0);
  int zero = 0, one = 1;
  setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_port = htons((unsigned short)atoi(argv[1]));
  a.sin6_addr = in6addr_any;
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0) {
    fprintf(stderr, "pong_server: bind/listen on port %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  static struct pollfd fds[MAXCONN + 1];
  static char seen[MAXCONN + 1][5]; /* the last bytes read, to find "ping\n" across reads */
  int n = 1;
  fds[0].fd = l;
  fds[0].events = POLLIN;
  for (;;) {
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if ((fds[0].revents & POLLIN) && n <= MAXCONN) {
      int c = accept(l, NULL, NULL);
      if (c >= 0) {
        fds[n].fd = c;
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        memset(seen[n], 0, sizeof seen[n]);
        n++;
      }
    }
    for (int i = 1; i < n; i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        close(fds[i].fd);
        fds[i] = fds[n - 1];
        memcpy(seen[i], seen[n - 1], sizeof seen[i]);
        n--;
        i--;
        continue;
      }
      for (ssize_t k = 0; k < got; k++) {
        memmove(seen[i], seen[i] + 1, 4);
        seen[i][4] = buf[k];
        if (memcmp(seen[i], "ping\n", 5) == 0) {
          if (write(fds[i].fd, "pong\n", 5) < 0) break;
        }
      }
    }
  }
}
