// Helpers the lab generators share (vgen.c, vseq.c): MAC parsing and the Internet checksum.
#ifndef VIPGATE_BENCH_FRAMES_H
#define VIPGATE_BENCH_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static inline int parse_mac(const char *s, uint8_t *m) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6;
}

/* One's complement sum of p[0..n) added to sum, folded and inverted (RFC 1071). */
static inline uint16_t csum(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

#endif
