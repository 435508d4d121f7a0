// vipgate's native packet I/O: an AF_PACKET socket with a TPACKET_V2 memory-mapped receive ring,
// batched transmit with sendmmsg(2) and PACKET_QDISC_BYPASS, and wake-ups through libuv.
//
// Why TPACKET_V2 drained until empty rather than TPACKET_V3: V3 hands frames over a block at a
// time and retires a partly filled block only on its timer (1 ms at best), so at low load every
// frame waits for the timer; V2 hands each frame over as soon as the kernel has written it, and
// a batch is simply whatever is waiting (up to the caller's budget). Measured in issue 10.
//
// The ring is handed to JavaScript once as one external ArrayBuffer; a receive fills two
// Int32Arrays (offsets into the ring, lengths) bound once at setup and returns a count, so no
// JavaScript object is made per frame or per batch. The packet path rewrites frames in place in
// the ring, and tx_release() sends those whose length it left positive straight from the ring
// (sendmmsg copies them) and gives every slot of the batch back to the kernel.
//
// Wake-ups: a uv_poll_t on the socket (POLLIN while the newest frame is still ours, so it is
// level-triggered: a batch cut short by the budget is picked up on the next loop turn after
// timers and I/O ran). After a batch, a uv_idle_t keeps the event loop from sleeping for `spin`
// nanoseconds (epoll with a zero timeout each turn, after a sched_yield): a steady stream never
// pays a wake-up, and when the stream stops the loop goes back to sleeping in epoll.
//
// Error texts say what failed and what to do; the JS side (afpacket.ts) adds the interface name.

#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <pcap/pcap.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS 64
#define TX_CHUNK 256   // one sendmmsg per batch at the default batch size
// How long the first frame of each batch waited in the ring (the kernel's receive timestamp to
// the packet path taking it): the packet path's stalls, whatever held it (a GC pause, a slow
// turn, the scheduler). Buckets up to 8, 16, 32, ... 8192 µs, then more.
#define WAIT_BUCKETS 12
#define STATS_LEN (9 + WAIT_BUCKETS)

typedef struct {
  int used;
  int fd;
  int ifindex;
  uint8_t *ring;
  size_t ring_size;
  uint32_t frame_size;
  uint32_t frame_count;
  uint32_t head;          // next frame to look at
  uint32_t pending;       // frames handed out by rx() and not yet released
  int32_t *offs;          // bound Int32Arrays (their backing stores never move)
  int32_t *lens;
  uint32_t batch_cap;
  napi_ref offs_ref, lens_ref, ring_ref, cb_ref;
  napi_env env;
  napi_async_context actx;
  uv_poll_t poll;
  uv_idle_t idle;
  int polling, idling, closing;
  uint64_t spin_ns;
  uint64_t last_frame_ns;
  // accumulated statistics (PACKET_STATISTICS resets on read)
  double kernel_packets, kernel_drops, tx_errors, tx_sent, batches, wakeups, sock_errors;
  int last_tx_errno, last_sock_errno;
  double wait_hist[WAIT_BUCKETS];
} link_t;

static link_t links[MAX_LINKS];

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case ENETDOWN: return "ENETDOWN";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case EMSGSIZE: return "EMSGSIZE";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ESRCH: return "ESRCH";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value num(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

static napi_value int32v(napi_env env, int32_t x) {
  napi_value v;
  napi_create_int32(env, x, &v);
  return v;
}

#define ARGS(n)                                                   \
  size_t argc = n;                                                \
  napi_value argv[n];                                             \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static link_t *get_link(napi_env env, napi_value v) {
  int32_t id;
  if (!get_i32(env, v, &id) || id < 0 || id >= MAX_LINKS || !links[id].used || links[id].closing) {
    throw_msg(env, "EBADF", "afpacket: no such open link (closed already?)");
    return NULL;
  }
  return &links[id];
}

// Compile a tcpdump-syntax filter with libpcap and attach it to the socket, so the kernel drops
// what vipgate does not want before it reaches the ring (the same filter the pcap backend uses).
static int attach_filter(napi_env env, int fd, const char *expr) {
  pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
  if (!p) { throw_msg(env, "ENOMEM", "afpacket: pcap_open_dead failed"); return 0; }
  struct bpf_program prog;
  if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "afpacket: the capture filter does not compile: %s", pcap_geterr(p));
    pcap_close(p);
    throw_msg(env, "EFILTER", msg);
    return 0;
  }
  struct sock_fprog fp = { .len = (unsigned short)prog.bf_len, .filter = (struct sock_filter *)prog.bf_insns };
  int rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
  int e = errno;
  pcap_freecode(&prog);
  pcap_close(p);
  if (rc != 0) { throw_errno(env, "afpacket: SO_ATTACH_FILTER", e); return 0; }
  return 1;
}

// Set up (or, for an inherited fd that already has it, map) the TPACKET_V2 receive ring and bind
// the socket to the interface. Idempotent for an fd that went through it before: a ring that
// exists already (EBUSY) is mapped with the same geometry.
static napi_value setup(napi_env env, int fd, int inherited, const char *ifname, uint32_t frame_size,
                        uint32_t frame_count, const char *filter, int qdisc_bypass) {
  int id = -1;
  for (int i = 0; i < MAX_LINKS; i++) if (!links[i].used) { id = i; break; }
  if (id < 0) { if (!inherited) close(fd); return throw_msg(env, "EMFILE", "afpacket: too many open links"); }
  int ifindex = (int)if_nametoindex(ifname);
  if (ifindex == 0) {
    int e = errno;
    if (!inherited) close(fd);
    return throw_errno(env, "afpacket: if_nametoindex", e == 0 ? ENODEV : e);
  }
  int v = TPACKET_V2;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0 && !(inherited && errno == EBUSY)) {
    int e = errno; if (!inherited) close(fd); return throw_errno(env, "afpacket: PACKET_VERSION TPACKET_V2", e);
  }
  // Frames this process sends (and the host kernel's own) are not input.
  int one = 1;
  (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (qdisc_bypass) (void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  if (filter && *filter && !attach_filter(env, fd, filter)) { if (!inherited) close(fd); return NULL; }
  // Blocks of 64 KiB hold whole frames (frame_size divides it), so frame i sits at i * frame_size.
  uint32_t block_size = 1u << 16;
  if (frame_size < 256 || (block_size % frame_size) != 0) {
    if (!inherited) close(fd);
    return throw_msg(env, "EINVAL", "afpacket: frame size must be a power of two from 256 to 65536");
  }
  uint32_t per_block = block_size / frame_size;
  uint32_t blocks = (frame_count + per_block - 1) / per_block;
  struct tpacket_req req = { .tp_block_size = block_size, .tp_block_nr = blocks,
                             .tp_frame_size = frame_size, .tp_frame_nr = blocks * per_block };
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0 && !(inherited && errno == EBUSY)) {
    int e = errno; if (!inherited) close(fd); return throw_errno(env, "afpacket: PACKET_RX_RING", e);
  }
  size_t size = (size_t)block_size * blocks;
  void *ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
  if (ring == MAP_FAILED) ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (ring == MAP_FAILED) { int e = errno; if (!inherited) close(fd); return throw_errno(env, "afpacket: mmap of the receive ring", e); }
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex };
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
    int e = errno; munmap(ring, size); if (!inherited) close(fd); return throw_errno(env, "afpacket: bind to the interface", e);
  }
  link_t *l = &links[id];
  memset(l, 0, sizeof *l);
  l->used = 1; l->fd = fd; l->ifindex = ifindex; l->ring = ring; l->ring_size = size;
  l->frame_size = frame_size; l->frame_count = blocks * per_block; l->env = env;
  // An inherited ring may hold frames the kernel handed over while nobody was reading (the
  // previous owner gave back everything it had read, or was killed holding a batch): start at the
  // oldest of them. With none, start where the kernel writes next: right after the frame it
  // wrote last. Giving a frame back only resets its status word, so each header keeps the time
  // the kernel stamped it with (tpacket_rcv always stamps V2 frames): the newest stamp marks the
  // kernel's last write. (Starting at 0 instead would wait for the kernel to wrap the whole ring
  // while poll() keeps reporting the frames we are not looking at.)
  if (inherited) {
    uint32_t n = l->frame_count;
    int64_t oldest_user = -1, newest = -1;
    uint64_t oldest_user_ts = UINT64_MAX, newest_ts = 0;
    for (uint32_t i = 0; i < n; i++) {
      struct tpacket2_hdr *h = (struct tpacket2_hdr *)(l->ring + (size_t)i * frame_size);
      uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
      uint64_t ts = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
      if ((st & TP_STATUS_USER) && ts < oldest_user_ts) { oldest_user_ts = ts; oldest_user = i; }
      if (ts > newest_ts) { newest_ts = ts; newest = i; }
    }
    if (oldest_user >= 0) l->head = (uint32_t)oldest_user;
    else if (newest >= 0) l->head = (uint32_t)((newest + 1) % n);
  }
  // Start the kernel's statistics from zero for this owner.
  struct tpacket_stats st; socklen_t sl = sizeof st;
  (void)getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
  return int32v(env, id);
}

typedef struct {
  char ifname[IF_NAMESIZE + 1];
  char filter[4096];
  int32_t frame_size, frame_count;
  bool bypass;
} open_args_t;

// The arguments open() and attach() share: (ifname, frameSize, frameCount, filter, qdiscBypass).
static int read_open_args(napi_env env, napi_value *argv, open_args_t *a) {
  size_t n;
  memset(a, 0, sizeof *a);
  a->bypass = true;
  if (napi_get_value_string_utf8(env, argv[0], a->ifname, sizeof a->ifname, &n) != napi_ok) {
    throw_msg(env, "EINVAL", "afpacket: interface name must be a string of at most 15 bytes");
    return 0;
  }
  if (!get_i32(env, argv[1], &a->frame_size) || !get_i32(env, argv[2], &a->frame_count) || a->frame_count <= 0) {
    throw_msg(env, "EINVAL", "afpacket: frame size and count must be positive integers");
    return 0;
  }
  napi_get_value_string_utf8(env, argv[3], a->filter, sizeof a->filter, &n);
  napi_get_value_bool(env, argv[4], &a->bypass);
  return 1;
}

// open(ifname, frameSize, frameCount, filter, qdiscBypass) -> link id
static napi_value js_open(napi_env env, napi_callback_info info) {
  ARGS(5);
  open_args_t a;
  if (!read_open_args(env, argv, &a)) return NULL;
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return throw_errno(env, "afpacket: socket(AF_PACKET)", errno);
  return setup(env, fd, 0, a.ifname, (uint32_t)a.frame_size, (uint32_t)a.frame_count, a.filter, a.bypass);
}

// attach(fd, ifname, frameSize, frameCount, filter, qdiscBypass) -> link id, for a socket opened
// by another process (a supervisor) and inherited; the fd is not closed on failure.
static napi_value js_attach(napi_env env, napi_callback_info info) {
  ARGS(6);
  int32_t fd;
  open_args_t a;
  if (!get_i32(env, argv[0], &fd) || fd < 0) return throw_msg(env, "EBADF", "afpacket: fd must be a non-negative integer");
  int type; socklen_t tl = sizeof type;
  struct sockaddr_storage ss; socklen_t sl = sizeof ss;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) return throw_errno(env, "afpacket: the inherited fd", errno);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 || ss.ss_family != AF_PACKET || type != SOCK_RAW)
    return throw_msg(env, "ENOTSOCK", "afpacket: the inherited fd is not a raw AF_PACKET socket");
  if (!read_open_args(env, argv + 1, &a)) return NULL;
  return setup(env, fd, 1, a.ifname, (uint32_t)a.frame_size, (uint32_t)a.frame_count, a.filter, a.bypass);
}

static void ring_finalize(napi_env env, void *data, void *hint) { (void)env; (void)data; (void)hint; }

// ring(id) -> ArrayBuffer over the mapped ring (external: valid until close; made once).
static napi_value js_ring(napi_env env, napi_callback_info info) {
  ARGS(1);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  napi_value ab;
  if (l->ring_ref) { napi_get_reference_value(env, l->ring_ref, &ab); return ab; }
  if (napi_create_external_arraybuffer(env, l->ring, l->ring_size, ring_finalize, NULL, &ab) != napi_ok)
    return throw_msg(env, "ENOMEM", "afpacket: cannot expose the ring to JavaScript");
  napi_create_reference(env, ab, 1, &l->ring_ref);
  return ab;
}

static int32_t *typed_i32(napi_env env, napi_value v, size_t *len) {
  napi_typedarray_type t; void *data; napi_value ab; size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, &data, &ab, &off) != napi_ok || t != napi_int32_array) return NULL;
  return (int32_t *)data;
}

// bind(id, offsets: Int32Array, lengths: Int32Array): where rx() writes each batch.
static napi_value js_bind(napi_env env, napi_callback_info info) {
  ARGS(3);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  size_t a, b;
  int32_t *o = typed_i32(env, argv[1], &a), *s = typed_i32(env, argv[2], &b);
  if (!o || !s || a != b || a == 0) return throw_msg(env, "EINVAL", "afpacket: bind needs two Int32Arrays of one non-zero length");
  if (l->offs_ref) napi_delete_reference(env, l->offs_ref);
  if (l->lens_ref) napi_delete_reference(env, l->lens_ref);
  napi_create_reference(env, argv[1], 1, &l->offs_ref);
  napi_create_reference(env, argv[2], 1, &l->lens_ref);
  l->offs = o; l->lens = s; l->batch_cap = (uint32_t)a;
  return NULL;
}

static inline struct tpacket2_hdr *frame_at(link_t *l, uint32_t i) {
  return (struct tpacket2_hdr *)(l->ring + (size_t)i * l->frame_size);
}

// rx(id, max) -> count of frames now in offsets/lengths[0, count). A frame the kernel had to cut
// to fit its slot gets its full length negated (the caller drops and counts it). A VLAN tag the
// kernel took out of the frame (rx VLAN offload) is put back, as libpcap does, so the packet
// path sees the frame as it was on the wire.
static napi_value js_rx(napi_env env, napi_callback_info info) {
  ARGS(2);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  int32_t max;
  if (!get_i32(env, argv[1], &max) || !l->offs) return throw_msg(env, "EINVAL", "afpacket: rx needs a budget and bound arrays");
  if (l->pending) return throw_msg(env, "EBUSY", "afpacket: rx called again before tx_release of the last batch");
  if ((uint32_t)max > l->batch_cap) max = (int32_t)l->batch_cap;
  uint32_t n = 0, i = l->head;
  struct tpacket2_hdr *first = frame_at(l, i);
  while (n < (uint32_t)max) {
    struct tpacket2_hdr *h = frame_at(l, i);
    uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(st & TP_STATUS_USER)) break;
    int32_t off = (int32_t)((size_t)i * l->frame_size + h->tp_mac);
    int32_t len = (int32_t)h->tp_snaplen;
    if ((st & TP_STATUS_VLAN_VALID) && len >= 12 && h->tp_mac >= TPACKET2_HDRLEN + 4) {
      uint8_t *p = l->ring + off;
      uint16_t tpid = (st & TP_STATUS_VLAN_TPID_VALID) ? h->tp_vlan_tpid : ETH_P_8021Q;
      memmove(p - 4, p, 12);
      p[8] = (uint8_t)(tpid >> 8); p[9] = (uint8_t)tpid;
      p[10] = (uint8_t)(h->tp_vlan_tci >> 8); p[11] = (uint8_t)h->tp_vlan_tci;
      off -= 4; len += 4;
    }
    if (h->tp_snaplen < h->tp_len) len = -(int32_t)h->tp_len;
    l->offs[n] = off;
    l->lens[n] = len;
    n++;
    if (++i == l->frame_count) i = 0;
  }
  l->pending = n;
  if (n) {
    l->batches++;
    l->last_frame_ns = mono_ns();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);   // the clock of tp_sec/tp_nsec
    int64_t waited = ((int64_t)ts.tv_sec - (int64_t)first->tp_sec) * 1000000000LL + ((int64_t)ts.tv_nsec - (int64_t)first->tp_nsec);
    int b = 0;
    for (int64_t bound = 8000; b < WAIT_BUCKETS - 1 && waited > bound; bound *= 2) b++;
    l->wait_hist[b]++;
  }
  return int32v(env, (int32_t)n);
}

// Send frames [offs[k], offs[k]+lens[k]) of the batch whose length is positive, from the ring,
// with as few sendmmsg calls as the kernel allows; returns how many failed. A failed message is
// skipped (sendmmsg stops at the first failure), so one bad frame never holds the rest back.
static uint32_t send_batch(link_t *l, uint32_t n) {
  struct mmsghdr m[TX_CHUNK];
  struct iovec iov[TX_CHUNK];
  uint32_t failed = 0, k = 0;
  while (k < n) {
    uint32_t c = 0;
    while (k < n && c < TX_CHUNK) {
      if (l->lens[k] > 0) {
        iov[c].iov_base = l->ring + l->offs[k];
        iov[c].iov_len = (size_t)l->lens[k];
        memset(&m[c].msg_hdr, 0, sizeof m[c].msg_hdr);
        m[c].msg_hdr.msg_iov = &iov[c];
        m[c].msg_hdr.msg_iovlen = 1;
        c++;
      }
      k++;
    }
    uint32_t done = 0;
    while (done < c) {
      int r = sendmmsg(l->fd, m + done, c - done, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        l->last_tx_errno = errno;
        failed++; done++;             // skip the frame that failed
      } else {
        done += (uint32_t)r;
        l->tx_sent += r;
      }
    }
  }
  l->tx_errors += failed;
  return failed;
}

// tx_release(id, count): send the batch's frames with positive length and give all `count`
// frames back to the kernel. Returns the number of send failures.
static napi_value js_tx_release(napi_env env, napi_callback_info info) {
  ARGS(2);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  int32_t n;
  if (!get_i32(env, argv[1], &n) || n < 0 || (uint32_t)n > l->pending)
    return throw_msg(env, "EINVAL", "afpacket: tx_release count must be at most what rx returned");
  uint32_t failed = n ? send_batch(l, (uint32_t)n) : 0;
  uint32_t i = l->head;
  for (uint32_t k = 0; k < l->pending; k++) {   // the whole batch goes back, sent or not
    __atomic_store_n(&frame_at(l, i)->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    if (++i == l->frame_count) i = 0;
  }
  l->head = i;
  l->pending = 0;
  return int32v(env, (int32_t)failed);
}

// send(id, buffer, length) -> errno of the failure, or 0. For control traffic (ARP requests,
// gratuitous ARP): one frame, off the batch path.
static napi_value js_send(napi_env env, napi_callback_info info) {
  ARGS(3);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  void *data; size_t blen; int32_t len;
  bool is_typed = false;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (is_typed) {
    napi_typedarray_type t; napi_value ab; size_t off;
    napi_get_typedarray_info(env, argv[1], &t, &blen, &data, &ab, &off);
    if (t != napi_uint8_array) return throw_msg(env, "EINVAL", "afpacket: send needs a Uint8Array or Buffer");
  } else if (napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok) {
    return throw_msg(env, "EINVAL", "afpacket: send needs a Uint8Array or Buffer");
  }
  if (!get_i32(env, argv[2], &len) || len < 0 || (size_t)len > blen) return throw_msg(env, "EINVAL", "afpacket: send length out of range");
  for (;;) {
    ssize_t r = send(l->fd, data, (size_t)len, MSG_DONTWAIT);
    if (r >= 0) { l->tx_sent++; return int32v(env, 0); }
    if (errno == EINTR) continue;
    l->last_tx_errno = errno;
    l->tx_errors++;
    return int32v(env, errno);
  }
}

static void read_kernel_stats(link_t *l) {
  struct tpacket_stats st; socklen_t sl = sizeof st;
  if (getsockopt(l->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) {
    l->kernel_packets += st.tp_packets;
    l->kernel_drops += st.tp_drops;
  }
}

// stats(id, out: Float64Array(9 + 12)): kernel packets, kernel ring drops, tx sent, tx errors,
// batches, poll wake-ups, last tx errno, socket errors (interface down), last socket errno; then
// the ring-wait histogram (batches per bucket, see WAIT_BUCKETS).
static napi_value js_stats(napi_env env, napi_callback_info info) {
  ARGS(2);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  napi_typedarray_type t; void *data; napi_value ab; size_t len, off;
  if (napi_get_typedarray_info(env, argv[1], &t, &len, &data, &ab, &off) != napi_ok || t != napi_float64_array || len < STATS_LEN)
    return throw_msg(env, "EINVAL", "afpacket: stats needs a Float64Array of 21");
  read_kernel_stats(l);
  double *d = data;
  d[0] = l->kernel_packets; d[1] = l->kernel_drops; d[2] = l->tx_sent; d[3] = l->tx_errors;
  d[4] = l->batches; d[5] = l->wakeups; d[6] = l->last_tx_errno; d[7] = l->sock_errors; d[8] = l->last_sock_errno;
  for (int b = 0; b < WAIT_BUCKETS; b++) d[9 + b] = l->wait_hist[b];
  return NULL;
}

static void call_js(link_t *l) {
  napi_env env = l->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, result;
  napi_get_reference_value(env, l->cb_ref, &cb);
  napi_get_global(env, &recv);   // make_callback needs an object receiver
  // make_callback runs queued microtasks and nextTicks after, as for any libuv-driven callback;
  // an exception becomes an uncaughtException (the JS side catches per batch, so this is a bug).
  if (napi_make_callback(env, l->actx, recv, cb, 0, NULL, &result) == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

static void on_idle(uv_idle_t *h) {
  link_t *l = h->data;
  // Spin while frames arrived recently: the loop polls epoll with a zero timeout meanwhile, so
  // the next frame is seen at the next turn instead of after a wake-up.
  if (mono_ns() - l->last_frame_ns > l->spin_ns) { uv_idle_stop(h); l->idling = 0; return; }
  // Polite polling: let any other runnable task on this CPU go first (a client or server on
  // the same small box, or the kernel's own threads); with none, this returns at once.
  sched_yield();
}

static void on_readable(uv_poll_t *h, int status, int events) {
  link_t *l = h->data;
  (void)events;
  if (l->closing) return;
  if (status < 0) {
    // POLLERR: libuv stopped the poll. For a packet socket this is the interface going down
    // (sk_err = ENETDOWN); reading SO_ERROR clears it, and the kernel re-binds the socket when the
    // interface comes back up, so count it, keep the errno for the logs and poll again.
    int err = 0; socklen_t el = sizeof err;
    (void)getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    l->sock_errors++;
    l->last_sock_errno = err ? err : EIO;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    return;
  }
  if (!l->idling) l->wakeups++;
  call_js(l);
  if (!l->closing && l->spin_ns && !l->idling) { uv_idle_start(&l->idle, on_idle); l->idling = 1; }
}

// start(id, callback, spinNs): call callback() whenever frames are waiting (it calls rx /
// tx_release); keep the loop awake for spinNs after the last frame.
static napi_value js_start(napi_env env, napi_callback_info info) {
  ARGS(3);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  double spin;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_msg(env, "EINVAL", "afpacket: start needs a callback");
  if (napi_get_value_double(env, argv[2], &spin) != napi_ok || spin < 0) return throw_msg(env, "EINVAL", "afpacket: spin must be >= 0 ns");
  if (l->polling) return throw_msg(env, "EBUSY", "afpacket: already started");
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  napi_create_reference(env, argv[1], 1, &l->cb_ref);
  napi_value name;
  napi_create_string_utf8(env, "vipgate.afpacket", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &l->actx);
  l->spin_ns = (uint64_t)spin;
  uv_poll_init_socket(loop, &l->poll, l->fd);
  uv_idle_init(loop, &l->idle);
  l->poll.data = l; l->idle.data = l;
  int r = uv_poll_start(&l->poll, UV_READABLE, on_readable);
  if (r != 0) return throw_msg(env, "EIO", uv_strerror(r));
  l->polling = 1;
  return NULL;
}

static void on_closed(uv_handle_t *h) {
  link_t *l = h->data;
  // Both handles are closed; the second callback frees the slot.
  if (--l->closing == 1) {
    munmap(l->ring, l->ring_size);
    close(l->fd);
    memset(l, 0, sizeof *l);
  }
}

// close(id): stop polling, unmap the ring, close the socket. The ring's ArrayBuffer must not be
// touched afterwards (the JS side drops every view of it before calling this).
static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t id;
  if (!get_i32(env, argv[0], &id) || id < 0 || id >= MAX_LINKS || !links[id].used || links[id].closing) return NULL;
  link_t *l = &links[id];
  if (l->offs_ref) napi_delete_reference(env, l->offs_ref);
  if (l->lens_ref) napi_delete_reference(env, l->lens_ref);
  if (l->cb_ref) napi_delete_reference(env, l->cb_ref);
  if (l->actx) napi_async_destroy(env, l->actx);
  if (l->ring_ref) {
    napi_value ab;
    napi_get_reference_value(env, l->ring_ref, &ab);
    napi_detach_arraybuffer(env, ab);    // any view left over now reads as empty, not freed memory
    napi_delete_reference(env, l->ring_ref);
  }
  l->offs = l->lens = NULL;
  if (l->polling) {
    l->closing = 3;
    uv_poll_stop(&l->poll);
    uv_idle_stop(&l->idle);
    uv_close((uv_handle_t *)&l->poll, on_closed);
    uv_close((uv_handle_t *)&l->idle, on_closed);
  } else {
    munmap(l->ring, l->ring_size);
    close(l->fd);
    memset(l, 0, sizeof *l);
  }
  return NULL;
}

// fd(id) -> the socket's descriptor (to hand to another process).
static napi_value js_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  link_t *l = get_link(env, argv[0]);
  return l ? int32v(env, l->fd) : NULL;
}

// geometry(id) -> [frameSize, frameCount, ringBytes]
static napi_value js_geometry(napi_env env, napi_callback_info info) {
  ARGS(1);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  napi_value a;
  napi_create_array_with_length(env, 3, &a);
  napi_set_element(env, a, 0, num(env, l->frame_size));
  napi_set_element(env, a, 1, num(env, l->frame_count));
  napi_set_element(env, a, 2, num(env, (double)l->ring_size));
  return a;
}

// waiting(id) -> 1 when a frame is ready at the head of the ring (tests and diagnostics).
static napi_value js_waiting(napi_env env, napi_callback_info info) {
  ARGS(1);
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  return int32v(env, (__atomic_load_n(&frame_at(l, l->head)->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) ? 1 : 0);
}

static void huge_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

// hugeBuffer(bytes) -> a zeroed ArrayBuffer backed by anonymous memory aligned to 2 MiB and
// advised MADV_HUGEPAGE (transparent huge pages in "madvise" mode, Debian's default): a large
// flow table then costs a TLB entry per 2 MiB instead of per 4 KiB, so a lookup's one cache
// miss is not also a page walk. Falls back to ordinary pages where THP is off.
static napi_value js_huge_buffer(napi_env env, napi_callback_info info) {
  ARGS(1);
  double want;
  if (napi_get_value_double(env, argv[0], &want) != napi_ok || want < 1 || want > (double)(1ull << 40))
    return throw_msg(env, "EINVAL", "afpacket: hugeBuffer needs a size in bytes");
  const size_t huge = 2u << 20;
  size_t size = ((size_t)want + huge - 1) & ~(huge - 1);
  uint8_t *p = mmap(NULL, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return throw_errno(env, "afpacket: mmap for the state memory", errno);
  uint8_t *a = (uint8_t *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
  if (a > p) munmap(p, (size_t)(a - p));
  if (a + size < p + size + huge) munmap(a + size, (size_t)((p + size + huge) - (a + size)));
  (void)madvise(a, size, MADV_HUGEPAGE);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, a, (size_t)want, huge_finalize, (void *)(uintptr_t)size, &ab) != napi_ok) {
    munmap(a, size);
    return throw_msg(env, "ENOMEM", "afpacket: cannot expose the state memory to JavaScript");
  }
  return ab;
}

// threadCpuNs() -> this thread's CPU time (ns, CLOCK_THREAD_CPUTIME_ID): for benches that split a
// gap into the time the thread ran and the time the CPU was taken from it (bench/gap.bench.ts).
static napi_value js_thread_cpu_ns(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec t;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) return throw_errno(env, "afpacket: clock_gettime(CLOCK_THREAD_CPUTIME_ID)", errno);
  napi_value v;
  napi_create_double(env, (double)t.tv_sec * 1e9 + (double)t.tv_nsec, &v);
  return v;
}

// setFifo(pid, priority) -> make thread `pid` (a process's main thread: its PID) SCHED_FIFO at
// `priority` 1-99 (io.rt_priority: the packet worker), or SCHED_OTHER again with 0. Node has no
// call for it. Throws EPERM without CAP_SYS_NICE (or an RLIMIT_RTPRIO that allows it).
static napi_value js_set_fifo(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t pid, prio;
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &prio) != napi_ok || pid <= 0 || prio < 0 || prio > 99)
    return throw_msg(env, "EINVAL", "afpacket: setFifo needs a PID and a priority 0..99");
  struct sched_param sp = { .sched_priority = prio };
  if (sched_setscheduler(pid, prio > 0 ? SCHED_FIFO : SCHED_OTHER, &sp) != 0) return throw_errno(env, "afpacket: sched_setscheduler", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor d[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
    { "attach", NULL, js_attach, NULL, NULL, NULL, napi_default, NULL },
    { "ring", NULL, js_ring, NULL, NULL, NULL, napi_default, NULL },
    { "bind", NULL, js_bind, NULL, NULL, NULL, napi_default, NULL },
    { "rx", NULL, js_rx, NULL, NULL, NULL, napi_default, NULL },
    { "txRelease", NULL, js_tx_release, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
    { "fd", NULL, js_fd, NULL, NULL, NULL, napi_default, NULL },
    { "geometry", NULL, js_geometry, NULL, NULL, NULL, napi_default, NULL },
    { "waiting", NULL, js_waiting, NULL, NULL, NULL, napi_default, NULL },
    { "hugeBuffer", NULL, js_huge_buffer, NULL, NULL, NULL, napi_default, NULL },
    { "threadCpuNs", NULL, js_thread_cpu_ns, NULL, NULL, NULL, napi_default, NULL },
    { "setFifo", NULL, js_set_fifo, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}
