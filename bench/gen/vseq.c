// vseq: the continuity bench's numbered frame stream (bench/continuity.bench.ts builds it with cc).
// One TCP flow: a SYN (so vipgate picks a backend and keeps the flow), then ACK frames numbered
// 1, 2, ... in the TCP sequence field, paced; the receiver on the backend counts them by number,
// so a gap in forwarding shows as time between two arrivals and a loss as a number never seen.
//
//   vseq send IFACE SRC_MAC DST_MAC SRC_IP SPORT DST_IP DPORT RATE SECONDS
//       sends for SECONDS or until a line or EOF on stdin; prints {"sent":N,"seconds":S,"start_ms":T,"gen_max_gap_ms":G,"errors":E}
//   vseq recv IFACE SRC_IP SPORT SECONDS [MIN_GAP_MS]
//       counts ACK frames from SRC_IP:SPORT (any destination: vipgate's nat rewrites it) until
//       SECONDS pass or stdin closes; prints {"received":R,"unique":U,"dups":D,"max_seq":M,
//       "first_ms":F,"last_ms":L,"max_gap_ms":G,"max_stall_ms":S,"max_latency_ms":X,
//       "gaps":[[start_ms,gap_ms,stall_ms,seq_before,seq_after],...]} with every gap or stall
//       longer than MIN_GAP_MS (default 2). gap: time between two arrivals; stall: the part of it
//       in which a frame was already waiting (a pause of the generator is a gap, not a stall).
// Times are CLOCK_REALTIME in ms (the bench's Date.now()); arrivals are the kernel's receive
// timestamps (SO_TIMESTAMPNS), so the receiver's own scheduling does not count as a gap.
// The generator is late when the machine is busy: it never bursts to catch up (a burst would
// hide a gap), and reports its own longest pause (gen_max_gap_ms) so the bench can tell.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"

/* Ethernet 14 + IPv4 20 + TCP 20 + 8 bytes of payload: the send time (CLOCK_REALTIME ns, big endian). */
#define FRAME 62
#define MAX_SEQ (1u << 24)
#define MAX_GAPS 4096

static double now_ms(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_socket(const char *iface, struct sockaddr_ll *sll) {
  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) { perror("vseq: socket"); exit(1); }
  memset(sll, 0, sizeof *sll);
  sll->sll_family = AF_PACKET;
  sll->sll_protocol = htons(ETH_P_ALL);
  sll->sll_ifindex = (int)if_nametoindex(iface);
  if (sll->sll_ifindex == 0) { fprintf(stderr, "vseq: no interface %s\n", iface); exit(2); }
  if (bind(fd, (struct sockaddr *)sll, sizeof *sll) < 0) { perror("vseq: bind"); exit(1); }
  return fd;
}

/* Ethernet + IPv4 + TCP (no options, no payload); seq and flags filled per frame. */
static void build(uint8_t *f, const uint8_t *smac, const uint8_t *dmac, struct in_addr sip, struct in_addr dip, int sport, int dport) {
  memset(f, 0, FRAME);
  memcpy(f, dmac, 6);
  memcpy(f + 6, smac, 6);
  f[12] = 0x08; f[13] = 0x00;
  uint8_t *ip = f + 14;
  ip[0] = 0x45; ip[2] = 0; ip[3] = 48; ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
  memcpy(ip + 12, &sip, 4);
  memcpy(ip + 16, &dip, 4);
  uint16_t c = csum(ip, 20, 0);
  ip[10] = c >> 8; ip[11] = c & 0xff;
  uint8_t *tcp = ip + 20;
  tcp[0] = sport >> 8; tcp[1] = sport & 0xff; tcp[2] = dport >> 8; tcp[3] = dport & 0xff;
  tcp[12] = 5 << 4;
  tcp[14] = 0xff; tcp[15] = 0xff;
}

static void stamp(uint8_t *f, uint32_t seq, uint8_t flags) {
  uint8_t *ip = f + 14, *tcp = ip + 20;
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  uint64_t ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
  for (int i = 0; i < 8; i++) tcp[20 + i] = (uint8_t)(ns >> (56 - 8 * i));
  tcp[4] = seq >> 24; tcp[5] = seq >> 16; tcp[6] = seq >> 8; tcp[7] = seq;
  tcp[8] = 0; tcp[9] = 0; tcp[10] = 0; tcp[11] = flags == 0x02 ? 0 : 1; /* ack number 1 on ACKs */
  tcp[13] = flags;
  tcp[16] = 0; tcp[17] = 0;
  /* pseudo header: src, dst, proto, length */
  uint32_t sum = 0;
  for (int i = 12; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
  sum += 6 + 28;
  uint16_t c = csum(tcp, 28, sum);
  tcp[16] = c >> 8; tcp[17] = c & 0xff;
}

static int do_send(int argc, char **argv) {
  if (argc < 11) { fprintf(stderr, "usage: vseq send IFACE SRC_MAC DST_MAC SRC_IP SPORT DST_IP DPORT RATE SECONDS\n"); return 2; }
  uint8_t smac[6], dmac[6];
  struct in_addr sip, dip;
  if (!parse_mac(argv[3], smac) || !parse_mac(argv[4], dmac) || !inet_aton(argv[5], &sip) || !inet_aton(argv[7], &dip)) {
    fprintf(stderr, "vseq: bad MAC or IPv4 address\n");
    return 2;
  }
  int sport = atoi(argv[6]), dport = atoi(argv[8]);
  double rate = atof(argv[9]), seconds = atof(argv[10]);
  if (rate <= 0 || rate > 1e6 || seconds <= 0) { fprintf(stderr, "vseq: RATE must be 1..1000000, SECONDS > 0\n"); return 2; }
  struct sockaddr_ll sll;
  int fd = open_socket(argv[2], &sll);
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  uint8_t f[FRAME];
  build(f, smac, dmac, sip, dip, sport, dport);
  long errors = 0;
  stamp(f, 0, 0x02);
  if (send(fd, f, FRAME, 0) != FRAME) errors++;
  /* Let vipgate and the backend's ARP settle on the SYN before the numbered frames start. */
  usleep(100 * 1000);
  double period_ns = 1e9 / rate, gen_max_gap = 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double start_ms = now_ms(CLOCK_REALTIME), base = (double)t0.tv_sec * 1e9 + t0.tv_nsec, last_sent = base;
  uint64_t n = (uint64_t)(rate * seconds), sent = 0;
  for (uint64_t i = 0; i < n; i++) {
    if ((i & 63) == 0) {
      struct pollfd in = { .fd = 0, .events = POLLIN };
      if (poll(&in, 1, 0) > 0) break; /* the bench says stop */
    }
    double due = base + (double)i * period_ns;
    struct timespec ts = { .tv_sec = (time_t)(due / 1e9), .tv_nsec = (long)(due - (double)(time_t)(due / 1e9) * 1e9) };
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t = (double)now.tv_sec * 1e9 + now.tv_nsec;
    /* Late by more than 5 periods (and 1 ms): the machine stalled us; start the schedule again from now. */
    if (t - due > 5 * period_ns && t - due > 1e6) base += t - due;
    if (t - last_sent > gen_max_gap) gen_max_gap = t - last_sent;
    last_sent = t;
    stamp(f, (uint32_t)(i + 1), 0x10);
    if (send(fd, f, FRAME, 0) == FRAME) sent++; else errors++;
  }
  double secs = (now_ms(CLOCK_REALTIME) - start_ms) / 1e3;
  printf("{\"sent\":%llu,\"seconds\":%.3f,\"start_ms\":%.3f,\"gen_max_gap_ms\":%.3f,\"errors\":%ld}\n",
         (unsigned long long)sent, secs, start_ms, gen_max_gap / 1e6, errors);
  return 0;
}

static int do_recv(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: vseq recv IFACE SRC_IP SPORT SECONDS [MIN_GAP_MS]\n"); return 2; }
  struct in_addr sip;
  if (!inet_aton(argv[3], &sip)) { fprintf(stderr, "vseq: bad IPv4 address %s\n", argv[3]); return 2; }
  int sport = atoi(argv[4]);
  double seconds = atof(argv[5]), min_gap = argc > 6 ? atof(argv[6]) : 2;
  struct sockaddr_ll sll;
  int fd = open_socket(argv[2], &sll);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) { perror("vseq: SO_TIMESTAMPNS"); return 1; }
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  uint8_t *seen = calloc(MAX_SEQ / 8, 1);
  static double gaps[MAX_GAPS][5];
  int ngaps = 0;
  unsigned long long received = 0, unique = 0, dups = 0;
  uint32_t max_seq = 0, prev_seq = 0;
  double first = 0, last = 0, max_gap = 0, max_stall = 0, max_latency = 0, prev_sent = 0;
  double end = now_ms(CLOCK_MONOTONIC) + seconds * 1e3;
  printf("{\"ready\":true}\n");
  fflush(stdout);
  uint8_t buf[2048];
  char ctrl[256];
  for (;;) {
    double left = end - now_ms(CLOCK_MONOTONIC);
    if (left <= 0) break;
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
    int r = poll(p, 2, left > 100 ? 100 : (int)left + 1);
    if (r < 0 && errno != EINTR) { perror("vseq: poll"); return 1; }
    if (p[1].revents) break; /* a line or EOF on stdin: the bench says stop */
    if (!(p[0].revents & POLLIN)) continue;
    for (;;) {
      struct iovec iov = { buf, sizeof buf };
      struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
      ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
      if (n < 0) break;
      if (n < 54 || buf[12] != 0x08 || buf[13] != 0x00) continue;
      const uint8_t *ip = buf + 14;
      size_t ihl = (size_t)(ip[0] & 15) * 4;
      if (ip[9] != 6 || memcmp(ip + 12, &sip, 4) != 0 || (size_t)n < 14 + ihl + 20) continue;
      const uint8_t *tcp = ip + ihl;
      if ((tcp[0] << 8 | tcp[1]) != sport || !(tcp[13] & 0x10)) continue;
      uint32_t seq = (uint32_t)tcp[4] << 24 | tcp[5] << 16 | tcp[6] << 8 | tcp[7];
      double t = now_ms(CLOCK_REALTIME);
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof ts);
          t = (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
        }
      }
      /* The frame's send time (the generator's payload): how long it waited somewhere on the way. */
      double sent_at = t;
      if ((size_t)n >= 14 + ihl + 28) {
        uint64_t ns = 0;
        for (int i = 0; i < 8; i++) ns = ns << 8 | tcp[20 + i];
        sent_at = (double)ns / 1e6;
      }
      if (t - sent_at > max_latency) max_latency = t - sent_at;
      received++;
      if (seq < MAX_SEQ) {
        if (seen[seq >> 3] & (1 << (seq & 7))) dups++;
        else { seen[seq >> 3] |= (uint8_t)(1 << (seq & 7)); unique++; }
      }
      if (seq > max_seq) max_seq = seq;
      if (received == 1) first = t;
      else {
        double g = t - last;
        /* The stall: since when a frame was waiting to be forwarded and none was. Frame `seq`
           waited from its send time; if frames were lost in between, the first of them was sent
           about one spacing after the previous arrival's frame. A pause of the generator is no
           stall: nothing was waiting. */
        double waiting_since = sent_at;
        if (seq > prev_seq + 1) waiting_since = prev_sent + (sent_at - prev_sent) / (double)(seq - prev_seq);
        double stall = t - (waiting_since > last ? waiting_since : last);
        if (stall < 0) stall = 0;
        if (g > max_gap) max_gap = g;
        if (stall > max_stall) max_stall = stall;
        if ((g > min_gap || stall > min_gap) && ngaps < MAX_GAPS) {
          gaps[ngaps][0] = last; gaps[ngaps][1] = g; gaps[ngaps][2] = stall; gaps[ngaps][3] = prev_seq; gaps[ngaps][4] = seq;
          ngaps++;
        }
      }
      last = t;
      prev_seq = seq;
      prev_sent = sent_at;
    }
  }
  printf("{\"received\":%llu,\"unique\":%llu,\"dups\":%llu,\"max_seq\":%u,\"first_ms\":%.3f,\"last_ms\":%.3f,\"max_gap_ms\":%.3f,\"max_stall_ms\":%.3f,\"max_latency_ms\":%.3f,\"gaps\":[",
         received, unique, dups, max_seq, first, last, max_gap, max_stall, max_latency);
  for (int i = 0; i < ngaps; i++) printf("%s[%.3f,%.3f,%.3f,%.0f,%.0f]", i ? "," : "", gaps[i][0], gaps[i][1], gaps[i][2], gaps[i][3], gaps[i][4]);
  printf("]}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "send") == 0) return do_send(argc, argv);
  if (argc > 1 && strcmp(argv[1], "recv") == 0) return do_recv(argc, argv);
  fprintf(stderr, "usage: vseq send|recv ... (see bench/gen/vseq.c)\n");
  return 2;
}
