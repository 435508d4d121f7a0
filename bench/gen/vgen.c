// vgen: the lab benchmark's traffic generator (bench/lab.bench.ts builds it with cc). A Node
// generator cannot saturate the path; this one prebuilds one 60-byte Ethernet frame (64 on the
// wire with the FCS) per flow and sends them round-robin from an AF_PACKET socket with
// PACKET_QDISC_BYPASS and sendmmsg batches, optionally paced to a rate.
//
//   vgen IFACE SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT FLOWS syn|ack SECONDS [RATE_PPS] [COUNT]
//
// Flow i comes from SRC_IP + i / 50000, port 10000 + i % 50000 (distinct 5-tuples). RATE_PPS 0
// means as fast as possible; COUNT > 0 sends exactly COUNT frames (e.g. FLOWS SYNs to create
// every flow) and ignores SECONDS. Prints one JSON line: {"sent":N,"seconds":S,"pps":P,"errors":E}.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"

#define FRAME 60
#define BATCH 64

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 10) {
    fprintf(stderr, "usage: vgen IFACE SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT FLOWS syn|ack SECONDS [RATE_PPS] [COUNT]\n");
    return 2;
  }
  uint8_t smac[6], dmac[6];
  struct in_addr sip, dip;
  if (!parse_mac(argv[2], smac) || !parse_mac(argv[3], dmac) || !inet_aton(argv[4], &sip) || !inet_aton(argv[5], &dip)) {
    fprintf(stderr, "vgen: bad MAC or IPv4 address\n");
    return 2;
  }
  int dport = atoi(argv[6]);
  long flows = atol(argv[7]);
  int syn = strcmp(argv[8], "syn") == 0;
  double seconds = atof(argv[9]);
  double rate = argc > 10 ? atof(argv[10]) : 0;
  long count = argc > 11 ? atol(argv[11]) : 0;
  if (flows < 1 || flows > 10000000 || dport < 1 || dport > 65535) { fprintf(stderr, "vgen: bad flows or port\n"); return 2; }

  uint8_t *frames = calloc((size_t)flows, FRAME);
  if (!frames) { perror("vgen: calloc"); return 1; }
  for (long i = 0; i < flows; i++) {
    uint8_t *f = frames + (size_t)i * FRAME;
    memcpy(f, dmac, 6); memcpy(f + 6, smac, 6);
    f[12] = 0x08; f[13] = 0x00;
    uint8_t *ip = f + 14;
    uint32_t src = ntohl(sip.s_addr) + (uint32_t)(i / 50000);
    ip[0] = 0x45; ip[1] = 0; ip[2] = 0; ip[3] = 40;           // total length 40: IP + TCP, no payload
    ip[4] = (uint8_t)(i >> 8); ip[5] = (uint8_t)i; ip[6] = 0x40; ip[7] = 0;  // DF
    ip[8] = 64; ip[9] = 6;
    uint32_t s = htonl(src); memcpy(ip + 12, &s, 4); memcpy(ip + 16, &dip.s_addr, 4);
    uint16_t ic = csum(ip, 20, 0); ip[10] = (uint8_t)(ic >> 8); ip[11] = (uint8_t)ic;
    uint8_t *tcp = ip + 20;
    int sport = 10000 + (int)(i % 50000);
    tcp[0] = (uint8_t)(sport >> 8); tcp[1] = (uint8_t)sport; tcp[2] = (uint8_t)(dport >> 8); tcp[3] = (uint8_t)dport;
    tcp[4] = 0; tcp[5] = 0; tcp[6] = 0x10; tcp[7] = 0;          // seq
    tcp[8] = 0; tcp[9] = 0; tcp[10] = syn ? 0 : 0x20; tcp[11] = 0; // ack
    tcp[12] = 5 << 4; tcp[13] = syn ? 0x02 : 0x10;
    tcp[14] = 0xfa; tcp[15] = 0xf0;                            // window 64240
    // pseudo-header sum: src, dst, proto, TCP length
    uint32_t ps = (src >> 16) + (src & 0xffff) + (ntohl(dip.s_addr) >> 16) + (ntohl(dip.s_addr) & 0xffff) + 6 + 20;
    uint16_t tc = csum(tcp, 20, ps); tcp[16] = (uint8_t)(tc >> 8); tcp[17] = (uint8_t)tc;
  }

  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) { perror("vgen: socket(AF_PACKET)"); return 1; }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)if_nametoindex(argv[1]) };
  if (sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) { perror("vgen: bind"); return 1; }

  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  memset(m, 0, sizeof m);
  for (int k = 0; k < BATCH; k++) { iov[k].iov_len = FRAME; m[k].msg_hdr.msg_iov = &iov[k]; m[k].msg_hdr.msg_iovlen = 1; }
  long next = 0, sent = 0, errors = 0;
  double t0 = now_s(), t = t0;
  for (;;) {
    t = now_s();
    if (count > 0 ? sent >= count : t - t0 >= seconds) break;
    int b = BATCH;
    if (rate > 0) {
      // Pace: never ahead of rate * elapsed; small batches keep the stream smooth.
      long due = (long)((t - t0) * rate) - sent;
      if (due <= 0) { struct timespec ns = { 0, 20000 }; nanosleep(&ns, NULL); continue; }
      if (due < b) b = (int)due;
    }
    if (count > 0 && count - sent < b) b = (int)(count - sent);
    for (int k = 0; k < b; k++) { iov[k].iov_base = frames + (size_t)next * FRAME; if (++next == flows) next = 0; }
    int r = sendmmsg(fd, m, (unsigned)b, 0);
    if (r < 0) { if (errno == ENOBUFS || errno == EAGAIN) { errors++; continue; } perror("vgen: sendmmsg"); return 1; }
    sent += r;
  }
  double el = now_s() - t0;
  printf("{\"sent\":%ld,\"seconds\":%.6f,\"pps\":%.0f,\"errors\":%ld}\n", sent, el, el > 0 ? sent / el : 0, errors);
  return 0;
}
