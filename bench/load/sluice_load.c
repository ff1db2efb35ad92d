/*
 * sluice_load — native WebSocket load generator for sluice's end-to-end benchmarks
 * (bench/e2e.ts runs it; it is not part of the library).
 *
 *     sluice_load MODE [options] ws://127.0.0.1:PORT/PATH
 *     sluice_load selftest
 *
 *     cc -O2 -o bench/load/.build/sluice_load bench/load/sluice_load.c
 *     cc -O2 -DHAVE_ZLIB -o bench/load/.build/sluice_load bench/load/sluice_load.c -lz
 *
 * One thread, Linux epoll (level-triggered), non-blocking sockets, TCP_NODELAY; C11 and libc,
 * plus zlib behind HAVE_ZLIB (to inflate permessage-deflate echoes). Written from RFC 6455
 * (WebSocket), RFC 7692 (permessage-deflate), RFC 3174 (SHA-1) and RFC 4648 (base64).
 * Loopback targets only (127.0.0.0/8, localhost, [::1]). Raises RLIMIT_NOFILE to its hard limit.
 *
 * Modes (N = -c, K/W = -P, S = -s):
 *   echo -c N -P K -s S [--text] [--deflate FILE]
 *       N connections, each with K messages in flight (closed loop: one more is sent for each
 *       echo). Checked per echo: opcode, size, content; when S >= 16 the first 16 bytes carry
 *       the sequence number and the send time (binary: two u64 LE, seq and monotonic ns;
 *       text: 8 + 8 lowercase hex digits of seq and ns >> 10), the rest is a fixed template
 *       (printable ASCII with --text). A lost echo is reported once and the loop goes on.
 *       --deflate FILE: offers permessage-deflate with client_no_context_takeover and requires
 *       it; FILE holds records [u32 LE raw_len][raw][u32 LE comp_len][comp] (comp = raw
 *       deflated, no context, sync flush, 00 00 ff ff removed); each connection sends them in
 *       file order, cycling (connection i starts at record i mod count), as text frames with
 *       RSV1. A compressed echo is inflated (one raw inflate stream per connection, context
 *       kept) and compared with the raw bytes when built with zlib, else only counted; an
 *       uncompressed echo is compared with the raw bytes. bytes_per_s counts raw bytes.
 *   connect -c N
 *       N slots, each looping: connect, upgrade (101 and Sec-WebSocket-Accept checked),
 *       masked Close 1000, the server's Close, its FIN, close(). msgs_per_s = handshakes/s;
 *       latency = connect start to verified 101. Extras: handshakes, closes, no_fin (server
 *       Close seen but no FIN within 1 s). TIME_WAIT: see the note above slot_start().
 *   idle -c N [-d SECONDS]
 *       Opens N connections (200 handshakes at a time), prints `open N` (the number opened),
 *       sends nothing until stdin ends (or -d seconds, or SIGINT/SIGTERM), closes them.
 *       Latency = handshake time. If stdin cannot be polled (a file, /dev/null), it counts as
 *       ended unless -d is given. --spread: source addresses spread over 127.0.0.2..255, as
 *       connect mode does (one address has only ~28k ephemeral ports; with --spread N can
 *       pass that, RLIMIT_NOFILE allowing).
 *   fanout -c N -P W -s S [--pub-path /pub]
 *       N subscribers on PATH, then one publisher on the pub path, at most W messages not yet
 *       received by every subscriber. Binary messages: u32 LE sequence number, then (S >= 12)
 *       the u64 LE send time, then a template. Every subscriber must get every message once,
 *       in order. msgs_per_s = deliveries summed over subscribers; extras: pub_per_s.
 *   overload -c N --slow K -r RATE -s S [--pub-path /pub]
 *       Like fanout, but open loop (every 10 ms the publisher sends what the clock says is
 *       due, whatever the server does; beyond a 64 MiB backlog messages are counted in
 *       not_offered instead of queued) and K of the subscribers (every N/K-th) never read after
 *       their handshake (no EPOLLIN, default SO_RCVBUF). msgs_per_s = deliveries to the fast
 *       ones; extras: offered_per_s, fast_lost (gaps in a fast subscriber's sequence),
 *       fast_undelivered (still missing when the drain ended), fast_closed (an error),
 *       slow_closed (not an error). A slow subscriber closed by the server gracefully cannot
 *       be seen without reading (its FIN waits behind the data it did not read), so after the
 *       drain the slow subscribers still open are read for up to 1 s.
 *
 * Common: -d SECONDS measured (5), -w SECONDS warm-up (1) once every connection is open; -v
 * prints a progress line (the last second's rate) to stderr every second.
 * After the window sending stops, what is in flight gets up to 2 s (missing echoes or
 * deliveries are errors; in overload they are fast_undelivered), then every socket is closed
 * with a RST (SO_LINGER 0: nothing left in TIME_WAIT) and one line goes to stdout:
 *     result {"mode":...,"conns":N,"msgs_per_s":...,"bytes_per_s":...,"p50_us":...,
 *             "p99_us":...,"errors":E,"error":"first error","p999_us":...,"max_us":...,
 *             ...mode extras...,"client_cpu_pct":...,"seconds":...}
 * Counts and rates are of the window only (fast_lost, slow_closed, fast_closed,
 * fast_undelivered and errors: the whole run); client_cpu_pct = this process's CPU
 * (getrusage) in the window, % of one core. errors counts protocol and verification errors
 * and lost connections; a server Close is answered and counted as one (except in connect
 * mode, and for slow subscribers). Server Pings are answered with Pongs. Exit 0 with no
 * errors, 1 otherwise, 2 on usage errors. Progress and errors go to stderr.
 *
 * How it stays out of the way of a fast server:
 * - one read per readable connection per epoll round into one shared 256 KiB buffer; the
 *   frame parser is a streaming state machine, so nothing but a frame header (<= 14 bytes),
 *   the first 16 payload bytes and control payloads is ever kept between reads;
 * - frames to send are built (masked, with a fresh xorshift64* key per frame) straight into
 *   the connection's output buffer, which grows only when it must (never per message), and
 *   go out in one write per connection per round, right after that connection's read; a
 *   partial write leaves the rest there and arms EPOLLOUT;
 * - the clock is read once per read() call, not per message; latencies go into a log-linear
 *   histogram (about 1.5 % resolution);
 * - content checks are memcmp against a template; masking XORs 16 bytes at a time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_PER_S 1000000000ULL
#define NS_PER_MS 1000000ULL
#define RBUF_SIZE (256 * 1024)
#define HS_MAX 8192
#define HS_CONCURRENCY 200
#define HS_TIMEOUT_NS (10 * NS_PER_S)
#define MAX_EVENTS 4096
#define STAMP_LEN 16

/* ------------------------------------------------------------------------------------------
 * SHA-1 (RFC 3174) and base64 (RFC 4648), for Sec-WebSocket-Accept.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
  uint32_t h[5];
  uint64_t total;
  uint8_t block[64];
  size_t used;
} Sha1;

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_compress(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
           (uint32_t)p[4 * t + 3];
  for (int t = 16; t < 80; t++) w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rol32(b, 30);
    b = a;
    a = tmp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

static void sha1_init(Sha1 *s) {
  s->h[0] = 0x67452301u;
  s->h[1] = 0xEFCDAB89u;
  s->h[2] = 0x98BADCFEu;
  s->h[3] = 0x10325476u;
  s->h[4] = 0xC3D2E1F0u;
  s->total = 0;
  s->used = 0;
}

static void sha1_update(Sha1 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->total += n;
  while (n > 0) {
    if (s->used == 0 && n >= 64) {
      sha1_compress(s->h, p);
      p += 64;
      n -= 64;
      continue;
    }
    size_t k = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, k);
    s->used += k;
    p += k;
    n -= k;
    if (s->used == 64) {
      sha1_compress(s->h, s->block);
      s->used = 0;
    }
  }
}

static void sha1_final(Sha1 *s, uint8_t out[20]) {
  uint64_t bits = s->total * 8;
  uint8_t pad = 0x80;
  sha1_update(s, &pad, 1);
  uint8_t zero = 0;
  while (s->used != 56) sha1_update(s, &zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(s, len, 8);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(s->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)s->h[i];
  }
}

/* Writes base64 of in[0..n) and a NUL to out (4 * ceil(n / 3) + 1 bytes); returns the length. */
static size_t base64_encode(const uint8_t *in, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = A[v >> 18];
    out[o++] = A[(v >> 12) & 63];
    out[o++] = A[(v >> 6) & 63];
    out[o++] = A[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = A[v >> 18];
    out[o++] = A[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = A[v >> 18];
    out[o++] = A[(v >> 12) & 63];
    out[o++] = A[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = 0;
  return o;
}

/* Sec-WebSocket-Accept for a 24-character key: base64(SHA-1(key + GUID)), 28 chars + NUL. */
static void accept_for_key(const char *key, size_t keylen, char out[29]) {
  static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  Sha1 s;
  uint8_t d[20];
  sha1_init(&s);
  sha1_update(&s, key, keylen);
  sha1_update(&s, GUID, sizeof GUID - 1);
  sha1_final(&s, d);
  base64_encode(d, 20, out);
}

/* ------------------------------------------------------------------------------------------
 * Randomness and time.
 * ---------------------------------------------------------------------------------------- */

static uint8_t rnd_pool[4096];
static size_t rnd_pos = sizeof rnd_pool;

static void rnd_bytes(void *out, size_t n) {
  if (rnd_pos + n > sizeof rnd_pool) {
    size_t got = 0;
    while (got < sizeof rnd_pool) {
      ssize_t r = getrandom(rnd_pool + got, sizeof rnd_pool - got, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        perror("sluice_load: getrandom");
        exit(1);
      }
      got += (size_t)r;
    }
    rnd_pos = 0;
  }
  memcpy(out, rnd_pool + rnd_pos, n);
  rnd_pos += n;
}

/* xorshift64*: a fresh masking key per frame, seeded from getrandom. Fine for load
 * generation (RFC 6455 §10.3 wants unpredictable keys from browsers facing proxies). */
static uint64_t xs_state = 88172645463325252ULL;

static inline uint32_t mask_key(void) {
  uint64_t x = xs_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  xs_state = x;
  return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static inline uint64_t clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
         (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* ------------------------------------------------------------------------------------------
 * Latency histogram: exact below 128 µs, then 64 sub-buckets per power of two.
 * ---------------------------------------------------------------------------------------- */

#define H_N (128 + 57 * 64)
static uint64_t hist[H_N];
static uint64_t hist_n, hist_max;

static inline void hist_add(uint64_t us) {
  unsigned idx;
  if (us < 128) {
    idx = (unsigned)us;
  } else {
    int e = 63 - __builtin_clzll(us);
    idx = 128 + (unsigned)(e - 7) * 64 + (unsigned)((us >> (e - 6)) & 63);
  }
  hist[idx]++;
  hist_n++;
  if (us > hist_max) hist_max = us;
}

static uint64_t hist_pct(double p) {
  if (hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_n + 0.999999);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < H_N; i++) {
    seen += hist[i];
    if (seen >= want) {
      if (i < 128) return i;
      unsigned e = (i - 128) / 64 + 7, sub = (i - 128) % 64;
      uint64_t lo = (uint64_t)(64 + sub) << (e - 6), width = 1ULL << (e - 6);
      uint64_t mid = lo + width / 2;
      return mid > hist_max ? hist_max : mid;
    }
  }
  return hist_max;
}

/* ------------------------------------------------------------------------------------------
 * Configuration and global state.
 * ---------------------------------------------------------------------------------------- */

enum { M_ECHO, M_CONNECT, M_IDLE, M_FANOUT, M_OVERLOAD };
static const char *const MODE_NAMES[] = {"echo", "connect", "idle", "fanout", "overload"};

enum { R_ECHO, R_SUB, R_SLOW, R_PUB, R_SLOT, R_IDLE, R_TEST };
enum { S_DEAD, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING };
enum { PH_OPEN, PH_PUB, PH_WARM, PH_WINDOW, PH_DRAIN, PH_PROBE, PH_HOLD, PH_DONE };

typedef struct {
  const uint8_t *raw, *comp;
  uint32_t raw_len, comp_len;
} DMsg;

static struct {
  int mode;
  int conns;
  int inflight; /* -P */
  int size;     /* -s */
  bool text;
  const char *deflate_file;
  double dur, warm;
  bool dur_set;
  const char *pub_path;
  int slow;
  double rate;
  /* target */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  int family;
  char hostport[300];
  char path[1024];
  bool spread; /* connect mode: spread source addresses over 127.0.0.2..255 */
  bool verbose; /* -v: a progress line on stderr every second */
} cfg;

/* One connection. What every message touches comes first (two cache lines). */
typedef struct Conn {
  int fd;
  uint32_t idx;
  uint32_t ev; /* registered epoll events, 0 = not registered */
  uint8_t role, state;
  /* parser */
  uint8_t ps;   /* 0: header, 1: payload */
  uint8_t hlen; /* header bytes stashed in hdr */
  uint8_t fb0;  /* current frame's first byte */
  uint8_t in_msg, mop, mrsv1;
  uint8_t mbad; /* current message: 1 size, 2 content, 3 deflate stream broken */
  uint8_t ctllen;
  uint8_t got_close, zend;
  uint64_t frem; /* payload bytes left in the current frame */
  uint64_t moff; /* bytes of the current message so far (as received) */
  /* output: pending bytes are ob[ooff, olen) */
  uint8_t *ob;
  size_t ooff, olen, ocap;
  /* traffic */
  uint64_t sent, recvd;
  uint64_t *ring; /* echo: send times, indexed by seq & ring_mask */
  uint8_t stamp[STAMP_LEN];
  /* less often */
  uint64_t zout; /* inflated bytes of the current message */
  uint32_t msg0; /* deflate: index of the first message this connection sends */
  uint8_t hdr[14];
  uint8_t ctl[125];
  char key[25];
  char *hs; /* handshake response so far, when it came in pieces */
  size_t hslen;
  uint64_t t_start, deadline;
#ifdef HAVE_ZLIB
  z_stream *zs;
#endif
} Conn;

typedef struct {
  uint64_t msgs, bytes, sent, handshakes, closes, no_fin, pub_sent, compressed;
} Ctr;

static Conn *conns;
static int nconns; /* entries in conns (N, plus the publisher) */
static int ep = -1;
static uint8_t *rbuf;
static uint64_t now;
static int phase;
static bool sending;
static Ctr C, C0, C1;
static uint64_t t_w0, t_w1, cpu0, cpu1, t_phase_end;
static uint64_t errors;
static char first_error[512];

/* opener */
static int n_started, n_pending, n_open, n_failed_open, n_slots_active;
static uint32_t spread_next;
static char req_head[1500], req_tail[300];
static size_t req_head_len, req_tail_len;

/* payload */
static uint8_t *tmpl;
static size_t stamp_len; /* echo: STAMP_LEN when size >= 16; fanout: 4 or 12 */
static uint8_t echo_b0;
static size_t frame_max; /* echo: biggest frame we send */
static uint64_t ring_mask;
static DMsg *dmsgs;
static uint32_t ndmsgs;
static uint64_t inflight_total;

/* fan-out / overload */
static Conn *pub;
static uint32_t *fcnt;
static uint64_t *ftime;
static uint64_t fmask;
static uint64_t pub_seq, f_done, pub_due, pub_skipped;
static int alive_subs, nslow_target;
static uint64_t fast_lost, slow_closed, fast_closed, fast_undelivered;
static uint64_t t_pub0, next_tick, pub_start_at;

/* idle */
static bool stdin_eof;
static int idle_opened;

/* selftest */
static char test_err[400];

/* SIGINT/SIGTERM: stop, and still print the result line */
static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* ------------------------------------------------------------------------------------------
 * Errors.
 * ---------------------------------------------------------------------------------------- */

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  errors++;
  if (errors == 1) snprintf(first_error, sizeof first_error, "%s", msg);
  if (errors <= 20) fprintf(stderr, "sluice_load: error: %s\n", msg);
  else if (errors == 21) fprintf(stderr, "sluice_load: (further errors only counted)\n");
}

static const char *role_name(const Conn *c) {
  switch (c->role) {
  case R_ECHO: return "echo";
  case R_SUB: return "subscriber";
  case R_SLOW: return "slow subscriber";
  case R_PUB: return "publisher";
  case R_SLOT: return "connect slot";
  case R_IDLE: return "idle";
  default: return "test";
  }
}

static void conn_kill(Conn *c, bool abortive);

static void conn_fail(Conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(Conn *c, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->role == R_TEST) {
    if (!test_err[0]) snprintf(test_err, sizeof test_err, "%s", msg);
    c->state = S_DEAD;
    return;
  }
  note_error("%s %u: %s", role_name(c), c->idx, msg);
  conn_kill(c, true);
}

/* ------------------------------------------------------------------------------------------
 * Framing helpers.
 * ---------------------------------------------------------------------------------------- */

#if defined(__GNUC__)
typedef uint8_t v16u8 __attribute__((vector_size(16)));
#endif

/* dst[i] = src[i] ^ key[i % 4], key as its 4 bytes in memory order. */
static inline void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key) {
  uint8_t kb[16];
  for (int j = 0; j < 16; j += 4) memcpy(kb + j, &key, 4);
  size_t i = 0;
#if defined(__GNUC__)
  v16u8 kv;
  memcpy(&kv, kb, 16);
  for (; i + 32 <= n; i += 32) {
    v16u8 a, b;
    memcpy(&a, src + i, 16);
    memcpy(&b, src + i + 16, 16);
    a ^= kv;
    b ^= kv;
    memcpy(dst + i, &a, 16);
    memcpy(dst + i + 16, &b, 16);
  }
#endif
  uint64_t k8;
  memcpy(&k8, kb, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t a;
    memcpy(&a, src + i, 8);
    a ^= k8;
    memcpy(dst + i, &a, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ kb[i & 3];
}

/* A masked client frame header: returns its length (6, 8 or 14). */
static inline size_t put_header(uint8_t *d, uint8_t b0, uint64_t len, uint32_t key) {
  size_t h;
  d[0] = b0;
  if (len < 126) {
    d[1] = (uint8_t)(0x80 | len);
    h = 2;
  } else if (len < 65536) {
    d[1] = 0x80 | 126;
    d[2] = (uint8_t)(len >> 8);
    d[3] = (uint8_t)len;
    h = 4;
  } else {
    d[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) d[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    h = 10;
  }
  memcpy(d + h, &key, 4);
  return h + 4;
}

static void ob_grow(Conn *c, size_t need) {
  if (c->ooff > 0) {
    memmove(c->ob, c->ob + c->ooff, c->olen - c->ooff);
    c->olen -= c->ooff;
    c->ooff = 0;
    if (c->olen + need <= c->ocap) return;
  }
  size_t cap = c->ocap ? c->ocap * 2 : 1024;
  while (cap < c->olen + need) cap *= 2;
  uint8_t *nb = realloc(c->ob, cap);
  if (!nb) {
    fprintf(stderr, "sluice_load: out of memory (%zu bytes)\n", cap);
    exit(1);
  }
  c->ob = nb;
  c->ocap = cap;
}

/* Room for `need` more bytes at c->ob + c->olen. */
static inline uint8_t *ob_reserve(Conn *c, size_t need) {
  if (c->olen + need > c->ocap) ob_grow(c, need);
  return c->ob + c->olen;
}

/* Appends one masked frame with the given payload. */
static void ob_frame(Conn *c, uint8_t b0, const uint8_t *payload, size_t len) {
  uint8_t *d = ob_reserve(c, len + 14);
  uint32_t key = mask_key();
  size_t h = put_header(d, b0, len, key);
  mask_copy(d + h, payload, len, key);
  c->olen += h + len;
}

static void ob_close(Conn *c, uint16_t code) {
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  ob_frame(c, 0x88, p, 2);
}

static bool probing; /* overload, after the drain: slow subscribers are read */
static uint64_t probe_last_data;

static inline uint32_t base_events(const Conn *c) {
  if (c->state == S_CONNECTING) return 0;
  if (c->role == R_SLOW && c->state == S_OPEN && !probing) return EPOLLRDHUP;
  return EPOLLIN | EPOLLRDHUP;
}

static void set_events(Conn *c, uint32_t ev) {
  if (ev == c->ev || c->fd < 0 || c->role == R_TEST) return;
  struct epoll_event e = {.events = ev, .data.u32 = c->idx};
  if (epoll_ctl(ep, c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) < 0) {
    conn_fail(c, "epoll_ctl: %s", strerror(errno));
    return;
  }
  c->ev = ev;
}

/* One write of whatever is pending; arms EPOLLOUT for the rest. Returns -1 if the
 * connection was lost. */
static int conn_flush(Conn *c) {
  if (c->role == R_TEST) return 0;
  size_t left = c->olen - c->ooff;
  if (left) {
    ssize_t w = write(c->fd, c->ob + c->ooff, left);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        w = 0;
      } else {
        conn_fail(c, "write: %s", strerror(errno));
        return -1;
      }
    }
    c->ooff += (size_t)w;
    left -= (size_t)w;
    if (!left) c->ooff = c->olen = 0;
  }
  uint32_t want = base_events(c) | (left ? EPOLLOUT : 0);
  if (c->state == S_CONNECTING) want = EPOLLOUT;
  if (want != c->ev) set_events(c, want);
  return c->state == S_DEAD ? -1 : 0;
}

static inline void put_le32(uint8_t *p, uint32_t v) {
  v = htole32(v);
  memcpy(p, &v, 4);
}
static inline void put_le64(uint8_t *p, uint64_t v) {
  v = htole64(v);
  memcpy(p, &v, 8);
}
static inline uint32_t get_le32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return le32toh(v);
}
static inline uint64_t get_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64toh(v);
}

static inline void hex8(uint8_t *p, uint32_t v) {
  static const char H[] = "0123456789abcdef";
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)H[v & 15];
    v >>= 4;
  }
}

/* The first 16 bytes of an echo message: sequence number and send time. Binary: u64 LE seq,
 * u64 LE monotonic ns. Text: 8 hex digits of seq, 8 hex digits of (ns >> 10), ASCII. */
static inline void make_stamp(uint8_t st[STAMP_LEN], uint64_t seq, uint64_t t) {
  if (cfg.text) {
    hex8(st, (uint32_t)seq);
    hex8(st + 8, (uint32_t)(t >> 10));
  } else {
    put_le64(st, seq);
    put_le64(st + 8, t);
  }
}

/* ------------------------------------------------------------------------------------------
 * Mode hooks called by the parser.
 * ---------------------------------------------------------------------------------------- */

/* selftest recording */
typedef struct {
  uint8_t op;
  uint64_t len;
  uint64_t hash;
} TEv;
static TEv tlog[64];
static int tlog_n;
static uint64_t t_hash, t_len;
static bool t_opened;

static inline uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static void tlog_add(uint8_t op, uint64_t len, uint64_t hash) {
  if (tlog_n < 64) tlog[tlog_n++] = (TEv){op, len, hash};
}

static void echo_send(Conn *c, unsigned n);

#ifdef HAVE_ZLIB
static uint8_t *zbuf;
#define ZBUF_SIZE (64 * 1024)

/* Inflates n bytes into the connection's stream, comparing the output with exp[c->zout..]. */
static void zfeed(Conn *c, const uint8_t *p, size_t n, const uint8_t *exp, uint64_t elen) {
  z_stream *z = c->zs;
  z->next_in = (Bytef *)(uintptr_t)p;
  z->avail_in = (uInt)n;
  for (;;) {
    z->next_out = zbuf;
    z->avail_out = ZBUF_SIZE;
    int r = inflate(z, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
      c->mbad = 3; /* stream broken: fatal */
      return;
    }
    size_t got = ZBUF_SIZE - z->avail_out;
    if (got) {
      if (c->zout + got > elen || memcmp(zbuf, exp + c->zout, got) != 0) {
        if (!c->mbad) c->mbad = 2;
      }
      c->zout += got;
    }
    if (r == Z_STREAM_END) {
      c->zend = 1;
      return;
    }
    if (z->avail_out != 0) return;
  }
}
#endif

static inline const DMsg *echo_dmsg(const Conn *c, uint64_t seq) {
  return &dmsgs[(c->msg0 + seq) % ndmsgs];
}

/* Payload bytes [c->moff, c->moff + n) of the current data message. */
static inline void on_data(Conn *c, const uint8_t *p, size_t n) {
  uint64_t off = c->moff;
  switch (c->role) {
  case R_ECHO:
    if (dmsgs) {
      const DMsg *m = echo_dmsg(c, c->recvd);
      if (c->mrsv1) {
#ifdef HAVE_ZLIB
        if (c->mbad != 3) zfeed(c, p, n, m->raw, m->raw_len);
#endif
      } else if (off + n > m->raw_len || memcmp(p, m->raw + off, n) != 0) {
        c->mbad = 1;
      }
      return;
    }
    /* same checks as a subscriber, against the echo template */
    /* fall through */
  case R_SUB:
  case R_PUB:
    if (c->mbad) return;
    if (off + n > (uint64_t)cfg.size) {
      c->mbad = 1;
      return;
    }
    if (off < stamp_len) {
      size_t k = stamp_len - off < n ? stamp_len - off : n;
      memcpy(c->stamp + off, p, k);
      p += k;
      n -= k;
      off += k;
    }
    if (n && memcmp(p, tmpl + off, n) != 0) c->mbad = 2;
    return;
  case R_TEST:
    t_hash = fnv(t_hash, p, n);
    t_len += n;
    return;
  default:
    return;
  }
}

static inline void on_msg_begin(Conn *c) {
  c->mbad = 0;
  c->zout = 0;
  if (c->role == R_TEST) {
    t_hash = 0xcbf29ce484222325ULL;
    t_len = 0;
  }
}

static inline void record_latency(uint64_t t0) {
  if (phase == PH_WINDOW && now >= t0) hist_add((now - t0) / 1000);
}

/* The sequence number in an echo's stamp, as the one nearest `near` (text stamps carry 32 bits). */
static uint64_t stamp_seq(const uint8_t *st, uint64_t near) {
  if (!cfg.text) return get_le64(st);
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    uint8_t ch = st[i];
    uint32_t d = 0;
    if (ch >= '0' && ch <= '9') d = (uint32_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') d = (uint32_t)(ch - 'a' + 10);
    v = v << 4 | d;
  }
  return near + (uint64_t)(int64_t)(int32_t)(v - (uint32_t)near);
}

static void echo_msg_end(Conn *c) {
  uint64_t seq = c->recvd;
  if (seq >= c->sent) {
    conn_fail(c, "echo received with nothing in flight");
    return;
  }
  uint64_t t0 = c->ring[seq & ring_mask];
  uint64_t bytes;
  if (dmsgs) {
    const DMsg *m = echo_dmsg(c, seq);
    bytes = m->raw_len;
    if (c->mop != 1) {
      note_error("echo %u: message %" PRIu64 ": opcode %u, expected text", c->idx, seq, c->mop);
    } else if (c->mrsv1) {
      C.compressed++;
#ifdef HAVE_ZLIB
      static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
      if (c->mbad != 3 && !c->zend) zfeed(c, tail, 4, m->raw, m->raw_len);
      if (c->mbad == 3) {
        conn_fail(c, "message %" PRIu64 ": corrupt deflate stream", seq);
        return;
      }
      if (c->zend) {
        inflateReset(c->zs); /* a final block ended the stream: start afresh */
        c->zend = 0;
      }
      if (c->mbad || c->zout != m->raw_len)
        note_error("echo %u: message %" PRIu64 ": inflated echo differs (%" PRIu64
                   " bytes, expected %u)",
                   c->idx, seq, c->zout, m->raw_len);
#endif
    } else if (c->mbad || c->moff != m->raw_len) {
      note_error("echo %u: message %" PRIu64 ": uncompressed echo differs (%" PRIu64
                 " bytes, expected %u)",
                 c->idx, seq, c->moff, m->raw_len);
    }
  } else {
    bytes = (uint64_t)cfg.size;
    if (c->mop != (cfg.text ? 1 : 2)) {
      note_error("echo %u: message %" PRIu64 ": opcode %u, expected %u", c->idx, seq, c->mop,
                 cfg.text ? 1 : 2);
    } else if (c->moff != (uint64_t)cfg.size) {
      note_error("echo %u: message %" PRIu64 ": %" PRIu64 " bytes, expected %d", c->idx, seq,
                 c->moff, cfg.size);
    } else if (c->mbad) {
      note_error("echo %u: message %" PRIu64 ": content differs from what was sent", c->idx,
                 seq);
    } else if (stamp_len) {
      uint8_t st[STAMP_LEN];
      make_stamp(st, seq, t0);
      if (memcmp(st, c->stamp, STAMP_LEN) != 0) {
        /* which message is it? */
        uint64_t got = stamp_seq(c->stamp, seq);
        if (got > seq && got < c->sent) { /* echoes lost: count once, carry on from here */
          uint64_t lost = got - seq;
          note_error("echo %u: %" PRIu64 " echo(es) lost before message %" PRIu64, c->idx, lost,
                     got);
          c->recvd += lost;
          inflight_total -= lost;
          if (sending) echo_send(c, (unsigned)lost);
          seq = got;
          t0 = c->ring[seq & ring_mask];
          make_stamp(st, seq, t0);
        }
        if (memcmp(st, c->stamp, STAMP_LEN) != 0) {
          note_error("echo %u: message %" PRIu64 ": wrong sequence number/time stamp (%s)",
                     c->idx, seq, got < seq ? "an echo again, or out of order" : "garbled");
          if (got < seq) return; /* not counted */
        }
      }
    }
  }
  c->recvd++;
  inflight_total--;
  C.msgs++;
  C.bytes += bytes;
  record_latency(t0);
  if (sending) echo_send(c, 1);
}

static void sub_msg_end(Conn *c) {
  if (c->mop != 2) {
    note_error("subscriber %u: opcode %u, expected binary", c->idx, c->mop);
    return;
  }
  if (c->moff != (uint64_t)cfg.size) {
    note_error("subscriber %u: %" PRIu64 " bytes, expected %d", c->idx, c->moff, cfg.size);
    return;
  }
  if (c->mbad) note_error("subscriber %u: content differs from what was published", c->idx);
  uint32_t seq = get_le32(c->stamp);
  uint32_t exp = (uint32_t)c->recvd;
  int32_t d = (int32_t)(seq - exp);
  if ((int32_t)(seq - (uint32_t)pub_seq) >= 0) {
    note_error("subscriber %u: sequence number %u never published", c->idx, seq);
    return;
  }
  if (d < 0) {
    note_error("subscriber %u: message %u again or out of order (expected %u)", c->idx, seq, exp);
    return;
  }
  if (d > 0) {
    if (cfg.mode == M_FANOUT) {
      note_error("subscriber %u: %d message(s) lost before %u", c->idx, d, seq);
      for (uint64_t m = c->recvd; m < c->recvd + (uint64_t)d; m++)
        if (m >= f_done && m < pub_seq) fcnt[m & fmask]++;
    } else {
      fast_lost += (uint64_t)d;
    }
    c->recvd += (uint64_t)d;
  }
  c->recvd++;
  uint64_t full = c->recvd - 1;
  uint64_t t0 = stamp_len >= 12 ? get_le64(c->stamp + 4) : ftime[full & fmask];
  if (cfg.mode == M_FANOUT) fcnt[full & fmask]++;
  C.msgs++;
  C.bytes += (uint64_t)cfg.size;
  record_latency(t0);
}

static inline int on_msg_end(Conn *c) {
  switch (c->role) {
  case R_ECHO:
    echo_msg_end(c);
    break;
  case R_SUB:
    sub_msg_end(c);
    break;
  case R_TEST:
    tlog_add(c->mop, t_len, t_hash);
    break;
  case R_PUB:
    note_error("publisher: received a message (opcode %u, %" PRIu64 " bytes)", c->mop, c->moff);
    break;
  case R_IDLE:
    note_error("idle %u: received a message (opcode %u)", c->idx, c->mop);
    break;
  default:
    break;
  }
  return c->state == S_DEAD ? -1 : 0;
}

static void slot_finish(Conn *c);

/* A complete control frame in c->ctl. Returns -1 if the connection is gone. */
static int on_control(Conn *c) {
  uint8_t op = c->fb0 & 0x0f;
  if (c->role == R_TEST) tlog_add(op, c->ctllen, fnv(0xcbf29ce484222325ULL, c->ctl, c->ctllen));
  if (op == 9) { /* Ping: answer with a Pong carrying the same payload */
    ob_frame(c, 0x8A, c->ctl, c->ctllen);
    return 0;
  }
  if (op == 10) return 0; /* unsolicited Pong: ignored */
  /* Close */
  if (c->ctllen == 1) {
    conn_fail(c, "Close frame with a 1-byte payload");
    return -1;
  }
  unsigned code = c->ctllen >= 2 ? (unsigned)c->ctl[0] << 8 | c->ctl[1] : 1005;
  if (c->role == R_TEST) return 0;
  if (c->role == R_SLOT && c->state == S_CLOSING) {
    if (c->got_close) {
      conn_fail(c, "second Close frame");
      return -1;
    }
    c->got_close = 1;
    C.closes++;
    c->deadline = now + NS_PER_S; /* the server's FIN should follow */
    return 0;
  }
  /* The server closed a connection we were using: answer the Close, then drop it. */
  int rl = c->ctllen > 2 ? c->ctllen - 2 : 0;
  if (c->role == R_SLOW) {
    slow_closed++;
    conn_kill(c, true);
    return -1;
  }
  if (c->role == R_SUB && cfg.mode == M_OVERLOAD) fast_closed++;
  ob_close(c, code == 1005 ? 1000 : (uint16_t)code);
  conn_flush(c);
  if (c->state != S_DEAD)
    conn_fail(c, "server closed the connection (Close %u%s%.*s)", code, rl ? ": " : "", rl,
              (const char *)c->ctl + 2);
  return -1;
}

/* ------------------------------------------------------------------------------------------
 * Frame parser (RFC 6455 §5.2), streaming: fed whatever each read returns.
 * ---------------------------------------------------------------------------------------- */

static inline size_t header_len(uint8_t b1) {
  uint8_t l = b1 & 0x7f;
  return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0);
}

/* Returns 0, or -1 when the connection was dropped (protocol error or close). */
static int ws_parse(Conn *c, const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  while (p < end) {
    if (c->ps == 0) {
      const uint8_t *h;
      size_t avail = (size_t)(end - p);
      if (c->hlen == 0 && avail >= 2 && avail >= header_len(p[1])) {
        h = p;
        p += header_len(p[1]);
      } else {
        while (c->hlen < 2 && p < end) c->hdr[c->hlen++] = *p++;
        if (c->hlen < 2) return 0;
        size_t hl = header_len(c->hdr[1]);
        size_t k = hl - c->hlen;
        if (k > (size_t)(end - p)) k = (size_t)(end - p);
        memcpy(c->hdr + c->hlen, p, k);
        c->hlen = (uint8_t)(c->hlen + k);
        p += k;
        if (c->hlen < hl) return 0;
        h = c->hdr;
      }
      c->hlen = 0;
      uint8_t b0 = h[0], b1 = h[1];
      if (b1 & 0x80) {
        conn_fail(c, "masked frame from the server");
        return -1;
      }
      uint64_t len = b1 & 0x7f;
      if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        if (len < 126) {
          conn_fail(c, "non-minimal 16-bit payload length %" PRIu64, len);
          return -1;
        }
      } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
        if (len >> 63) {
          conn_fail(c, "64-bit payload length with the top bit set");
          return -1;
        }
        if (len < 65536) {
          conn_fail(c, "non-minimal 64-bit payload length %" PRIu64, len);
          return -1;
        }
      }
      uint8_t op = b0 & 0x0f, rsv = b0 & 0x70;
      if (rsv & 0x30) {
        conn_fail(c, "RSV2/RSV3 set (first byte 0x%02x)", b0);
        return -1;
      }
      if (op >= 8) {
        if (op > 10) {
          conn_fail(c, "reserved control opcode %u", op);
          return -1;
        }
        if (!(b0 & 0x80)) {
          conn_fail(c, "fragmented control frame");
          return -1;
        }
        if (len > 125) {
          conn_fail(c, "control frame of %" PRIu64 " bytes", len);
          return -1;
        }
        if (rsv) {
          conn_fail(c, "RSV1 on a control frame");
          return -1;
        }
        c->ctllen = 0;
      } else if (op == 0) {
        if (!c->in_msg) {
          conn_fail(c, "continuation frame outside a message");
          return -1;
        }
        if (rsv) {
          conn_fail(c, "RSV1 on a continuation frame");
          return -1;
        }
      } else if (op == 1 || op == 2) {
        if (c->in_msg) {
          conn_fail(c, "new data frame inside a fragmented message");
          return -1;
        }
        if (rsv && !dmsgs) {
          conn_fail(c, "RSV1 set without permessage-deflate");
          return -1;
        }
        c->in_msg = 1;
        c->mop = op;
        c->mrsv1 = rsv != 0;
        c->moff = 0;
        on_msg_begin(c);
      } else {
        conn_fail(c, "reserved data opcode %u", op);
        return -1;
      }
      c->fb0 = b0;
      c->frem = len;
      c->ps = 1;
    }
    /* payload */
    size_t take = (size_t)(end - p);
    if (c->frem < take) take = (size_t)c->frem;
    if (c->fb0 & 0x08) {
      memcpy(c->ctl + c->ctllen, p, take);
      c->ctllen = (uint8_t)(c->ctllen + take);
    } else if (take) {
      on_data(c, p, take);
      c->moff += take;
    }
    p += take;
    c->frem -= take;
    if (c->frem == 0) {
      c->ps = 0;
      if (c->fb0 & 0x08) {
        if (on_control(c) < 0) return -1;
      } else if (c->fb0 & 0x80) {
        c->in_msg = 0;
        if (on_msg_end(c) < 0) return -1;
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------
 * Connections: open, handshake, close.
 * ---------------------------------------------------------------------------------------- */

static void conn_reset(Conn *c) {
  c->ps = c->hlen = c->in_msg = c->mop = c->mrsv1 = c->mbad = c->ctllen = 0;
  c->got_close = c->zend = 0;
  c->frem = c->moff = c->zout = 0;
  c->ooff = c->olen = 0;
  c->sent = c->recvd = 0;
  c->ev = 0;
  free(c->hs);
  c->hs = NULL;
  c->hslen = 0;
}

static void conn_kill(Conn *c, bool abortive) {
  int st = c->state;
  if (c->fd >= 0) {
    if (abortive) {
      struct linger lg = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    c->fd = -1;
  }
  c->ev = 0;
  c->state = S_DEAD;
  free(c->hs);
  c->hs = NULL;
  if (st == S_CONNECTING || st == S_HANDSHAKE) {
    n_pending--;
    if (phase == PH_OPEN || phase == PH_PUB) n_failed_open++;
  }
  if (c->role == R_SLOT && st != S_DEAD) {
    n_slots_active--;
    c->deadline = now + 10 * NS_PER_MS; /* restarted by the timer scan */
  } else if (st == S_OPEN || st == S_CLOSING) {
    n_open--;
    if (c->role == R_ECHO) inflight_total -= c->sent - c->recvd;
    if (c->role == R_SUB) alive_subs--;
  }
}

static void slot_start(Conn *c);

/* Starts a TCP connect and sends the upgrade request (loopback connects complete at once, so
 * the request usually goes out in the same round; if not, EPOLLOUT tells when). */
static int conn_start(Conn *c, const char *path) {
  conn_reset(c);
  c->t_start = now;
  c->deadline = now + HS_TIMEOUT_NS;
  int fd = socket(cfg.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c->state = S_DEAD;
    note_error("%s %u: socket: %s", role_name(c), c->idx, strerror(errno));
    if (phase == PH_OPEN || phase == PH_PUB) n_failed_open++;
    if (c->role == R_SLOT) {
      n_slots_active--;
      c->deadline = now + 10 * NS_PER_MS;
    }
    return -1;
  }
  c->fd = fd;
  c->state = S_CONNECTING;
  n_pending++;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg.spread) {
    /* connect mode: see the note at slot_start(). The port is chosen at connect() time
     * (IP_BIND_ADDRESS_NO_PORT), so each source address has its own 4-tuple space. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000000u | (2 + spread_next++ % 254));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
      conn_fail(c, "bind to a 127.0.0.x source: %s", strerror(errno));
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) < 0 && errno != EINPROGRESS) {
    conn_fail(c, "connect: %s", strerror(errno));
    return -1;
  }
  /* the request, with a fresh key */
  uint8_t kb[16];
  rnd_bytes(kb, 16);
  base64_encode(kb, 16, c->key);
  size_t plen = strlen(path);
  uint8_t *d = ob_reserve(c, req_head_len + plen + req_tail_len + 64);
  size_t o = 0;
  memcpy(d + o, "GET ", 4);
  o += 4;
  memcpy(d + o, path, plen);
  o += plen;
  memcpy(d + o, req_head, req_head_len);
  o += req_head_len;
  memcpy(d + o, c->key, 24);
  o += 24;
  memcpy(d + o, req_tail, req_tail_len);
  o += req_tail_len;
  c->olen = o;
  ssize_t w = write(fd, c->ob, o);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      conn_fail(c, "write request: %s", strerror(errno));
      return -1;
    }
    /* not connected yet */
    return conn_flush(c);
  }
  c->state = S_HANDSHAKE;
  c->ooff = (size_t)w;
  if (c->ooff == c->olen) c->ooff = c->olen = 0;
  return conn_flush(c);
}

static bool hdr_name_is(const char *p, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static void trim(const char **p, size_t *n) {
  while (*n && (**p == ' ' || **p == '\t')) (*p)++, (*n)--;
  while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) (*n)--;
}

/* Is `tok` one of the comma-separated tokens of the value? */
static bool has_token(const char *v, size_t n, const char *tok) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && v[j] != ',') j++;
    const char *t = v + i;
    size_t tn = j - i;
    trim(&t, &tn);
    if (hdr_name_is(t, tn, tok)) return true;
    i = j + 1;
  }
  return false;
}

/* permessage-deflate response parameters (RFC 7692 §7.1): NULL if acceptable. */
static const char *check_deflate_params(const char *v, size_t n, char *err, size_t errn) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == ',') return "more than one extension in the 101";
  size_t i = 0;
  bool first = true;
  while (i <= n) {
    size_t j = i;
    while (j < n && v[j] != ';') j++;
    const char *t = v + i;
    size_t tn = j - i;
    trim(&t, &tn);
    if (first) {
      if (!hdr_name_is(t, tn, "permessage-deflate")) {
        snprintf(err, errn, "unexpected extension '%.*s'", (int)tn, t);
        return err;
      }
      first = false;
    } else {
      const char *eq = memchr(t, '=', tn);
      size_t nn = eq ? (size_t)(eq - t) : tn;
      const char *nm = t;
      trim(&nm, &nn);
      if (hdr_name_is(nm, nn, "server_no_context_takeover") ||
          hdr_name_is(nm, nn, "client_no_context_takeover")) {
        if (eq) return "permessage-deflate: *_no_context_takeover takes no value";
      } else if (hdr_name_is(nm, nn, "server_max_window_bits")) {
        const char *val = eq ? eq + 1 : "";
        size_t vn = eq ? tn - (size_t)(eq + 1 - t) : 0;
        trim(&val, &vn);
        if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') val++, vn -= 2;
        int bits = 0;
        for (size_t k = 0; k < vn; k++) {
          if (val[k] < '0' || val[k] > '9') return "permessage-deflate: bad server_max_window_bits";
          bits = bits * 10 + (val[k] - '0');
          if (bits > 99) break;
        }
        if (vn == 0 || bits < 8 || bits > 15)
          return "permessage-deflate: bad server_max_window_bits";
      } else if (hdr_name_is(nm, nn, "client_max_window_bits")) {
        return "permessage-deflate: client_max_window_bits in the response, not offered";
      } else {
        snprintf(err, errn, "permessage-deflate: unknown parameter '%.*s'", (int)nn, nm);
        return err;
      }
    }
    i = j + 1;
  }
  return NULL;
}

/* Checks a complete response head (ending with CRLF CRLF). NULL if it is a valid 101. */
static const char *hs_check(Conn *c, const char *buf, size_t len, char *err, size_t errn) {
  const char *end = buf + len;
  const char *eol = memmem(buf, len, "\r\n", 2);
  size_t l0 = (size_t)(eol - buf);
  if (l0 < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0 || (l0 > 12 && buf[12] != ' ')) {
    snprintf(err, errn, "expected HTTP/1.1 101, got '%.*s'", (int)(l0 > 100 ? 100 : l0), buf);
    return err;
  }
  bool up = false, conn = false, acc = false, ext = false;
  char want[29];
  accept_for_key(c->key, 24, want);
  const char *p = eol + 2;
  while (p < end) {
    eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol || eol == p) break;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (!colon) {
      snprintf(err, errn, "malformed header line '%.*s'", (int)(eol - p > 80 ? 80 : eol - p), p);
      return err;
    }
    const char *name = p, *val = colon + 1;
    size_t nn = (size_t)(colon - p), vn = (size_t)(eol - val);
    trim(&name, &nn);
    trim(&val, &vn);
    if (hdr_name_is(name, nn, "upgrade")) {
      up = hdr_name_is(val, vn, "websocket");
    } else if (hdr_name_is(name, nn, "connection")) {
      conn = has_token(val, vn, "upgrade");
    } else if (hdr_name_is(name, nn, "sec-websocket-accept")) {
      if (vn != 28 || memcmp(val, want, 28) != 0) {
        snprintf(err, errn, "wrong Sec-WebSocket-Accept '%.*s' (expected %s)",
                 (int)(vn > 40 ? 40 : vn), val, want);
        return err;
      }
      acc = true;
    } else if (hdr_name_is(name, nn, "sec-websocket-extensions")) {
      if (!dmsgs) {
        snprintf(err, errn, "extensions in the 101 though none were offered: '%.*s'",
                 (int)(vn > 80 ? 80 : vn), val);
        return err;
      }
      if (ext) return "Sec-WebSocket-Extensions twice";
      const char *e = check_deflate_params(val, vn, err, errn);
      if (e) return e;
      ext = true;
    }
    p = eol + 2;
  }
  if (!up) return "101 without 'Upgrade: websocket'";
  if (!conn) return "101 without 'Connection: Upgrade'";
  if (!acc) return "101 without Sec-WebSocket-Accept";
  if (dmsgs && !ext) return "the server did not accept permessage-deflate";
  return NULL;
}

static void on_open(Conn *c);

/* Bytes of the handshake response (and perhaps frames after it). Returns -1 if dropped. */
static int hs_input(Conn *c, const uint8_t *p, size_t n) {
  const char *head;
  size_t hl;
  const uint8_t *rest1 = NULL, *rest2 = NULL;
  size_t rest1n = 0, rest2n = 0;
  const uint8_t *e;
  if (!c->hs && (e = memmem(p, n, "\r\n\r\n", 4)) != NULL) {
    head = (const char *)p;
    hl = (size_t)(e + 4 - p);
    rest2 = p + hl;
    rest2n = n - hl;
  } else {
    if (!c->hs) {
      c->hs = malloc(HS_MAX);
      if (!c->hs) {
        fprintf(stderr, "sluice_load: out of memory\n");
        exit(1);
      }
      c->hslen = 0;
    }
    size_t old = c->hslen;
    size_t k = n < HS_MAX - old ? n : HS_MAX - old;
    memcpy(c->hs + old, p, k);
    c->hslen += k;
    size_t from = old >= 3 ? old - 3 : 0;
    e = memmem(c->hs + from, c->hslen - from, "\r\n\r\n", 4);
    if (!e) {
      if (c->hslen == HS_MAX) {
        conn_fail(c, "handshake response longer than %d bytes", HS_MAX);
        return -1;
      }
      return 0;
    }
    head = c->hs;
    hl = (size_t)((const char *)e + 4 - c->hs);
    rest1 = (const uint8_t *)c->hs + hl;
    rest1n = c->hslen - hl;
    rest2 = p + k;
    rest2n = n - k;
  }
  char err[300];
  const char *bad = hs_check(c, head, hl, err, sizeof err);
  if (bad) {
    conn_fail(c, "handshake: %s", bad);
    return -1;
  }
  on_open(c);
  int r = 0;
  if (c->state != S_DEAD && rest1n) r = ws_parse(c, rest1, rest1n);
  if (r == 0 && c->state != S_DEAD && rest2n) r = ws_parse(c, rest2, rest2n);
  free(c->hs);
  c->hs = NULL;
  c->hslen = 0;
  return c->state == S_DEAD ? -1 : r;
}

static void echo_start(Conn *c);

/* The 101 was verified. */
static void on_open(Conn *c) {
  if (c->role == R_TEST) {
    c->state = S_OPEN;
    t_opened = true;
    return;
  }
  n_pending--;
  c->state = S_OPEN;
  uint64_t hs_ns = now - c->t_start;
  switch (c->role) {
  case R_SLOT:
    C.handshakes++;
    record_latency(c->t_start);
    c->state = S_CLOSING;
    c->deadline = now + 5 * NS_PER_S;
    ob_close(c, 1000);
    conn_flush(c);
    return;
  case R_IDLE:
    hist_add(hs_ns / 1000); /* idle mode reports handshake latency */
    idle_opened++;
    break;
  case R_SUB:
    alive_subs++;
    break;
  case R_SLOW:
    set_events(c, EPOLLRDHUP); /* never read again */
    break;
  case R_ECHO:
#ifdef HAVE_ZLIB
    if (dmsgs && !c->zs) {
      c->zs = calloc(1, sizeof *c->zs);
      if (!c->zs || inflateInit2(c->zs, -15) != Z_OK) {
        fprintf(stderr, "sluice_load: inflateInit2 failed\n");
        exit(1);
      }
    }
#endif
    break;
  default:
    break;
  }
  n_open++;
}

/* ------------------------------------------------------------------------------------------
 * Sending.
 * ---------------------------------------------------------------------------------------- */

static void echo_send(Conn *c, unsigned n) {
  uint8_t *d = ob_reserve(c, (size_t)n * frame_max);
  for (unsigned i = 0; i < n; i++) {
    uint64_t seq = c->sent++;
    c->ring[seq & ring_mask] = now;
    uint32_t key = mask_key();
    if (dmsgs) {
      const DMsg *m = echo_dmsg(c, seq);
      size_t h = put_header(d, 0xC1, m->comp_len, key);
      mask_copy(d + h, m->comp, m->comp_len, key);
      d += h + m->comp_len;
    } else {
      size_t s = (size_t)cfg.size;
      size_t h = put_header(d, echo_b0, s, key);
      uint8_t *pl = d + h;
      mask_copy(pl, tmpl, s, key);
      if (stamp_len) {
        uint8_t st[STAMP_LEN];
        make_stamp(st, seq, now);
        mask_copy(pl, st, STAMP_LEN, key);
      }
      d += h + s;
    }
  }
  c->olen = (size_t)(d - c->ob);
  inflight_total += n;
  C.sent += n;
}

static void echo_start(Conn *c) {
  if (c->state != S_OPEN) return;
  echo_send(c, (unsigned)cfg.inflight);
  conn_flush(c);
}

/* Publisher: n more messages (u32 LE seq, then u64 LE send time when size >= 12). */
static void pub_send(uint64_t n) {
  Conn *c = pub;
  size_t s = (size_t)cfg.size;
  size_t fsz = s + 14;
  while (n > 0) {
    uint64_t batch = n > 4096 ? 4096 : n;
    uint8_t *d = ob_reserve(c, (size_t)batch * fsz);
    for (uint64_t i = 0; i < batch; i++) {
      uint64_t seq = pub_seq++;
      if (ftime) ftime[seq & fmask] = now;
      if (fcnt) fcnt[seq & fmask] = 0;
      uint32_t key = mask_key();
      size_t h = put_header(d, 0x82, s, key);
      uint8_t *pl = d + h;
      mask_copy(pl, tmpl, s, key);
      uint8_t st[32];
      put_le32(st, (uint32_t)seq);
      put_le64(st + 4, now);
      mask_copy(pl, st, stamp_len, key);
      d += h + s;
    }
    c->olen = (size_t)(d - c->ob);
    C.pub_sent += batch;
    n -= batch;
  }
}

/* ------------------------------------------------------------------------------------------
 * Connect mode.
 *
 * Each slot: connect, 101, our Close 1000, the server's Close, the server's FIN, close().
 * TIME_WAIT: the server closes the TCP connection first (it sends FIN after its Close), so
 * the client's close() after EOF goes through LAST_ACK, not TIME_WAIT; the TIME_WAIT state
 * stays on the server's side. What can still bite at ~20k handshakes/s is the 4-tuple: the
 * server's TIME_WAIT sockets hold (server, client-port) pairs for 60 s, and 127.0.0.1 has only
 * ~28k ephemeral ports, so a reused port would meet a TIME_WAIT socket (accepted only when
 * TCP timestamps say the SYN is newer; otherwise the SYN is answered with an ACK and retried
 * a second later). So connect mode spreads its source addresses over 127.0.0.2..127.0.0.255
 * (bind with IP_BIND_ADDRESS_NO_PORT before connect: 254 x 28k tuples, minutes before any
 * reuse). Cost: one setsockopt and one bind per connection (on this machine, with TCP
 * timestamps on, 8 s at ~20k/s from 127.0.0.1 alone also worked; the difference between the
 * two was within the run-to-run noise). When the client has to close first (no FIN within
 * 1 s of the server's Close, errors, end of run) it sets SO_LINGER {1, 0}: a RST, no
 * TIME_WAIT on the client either.
 * ---------------------------------------------------------------------------------------- */

static void slot_start(Conn *c) {
  if (!sending) return;
  n_slots_active++;
  conn_start(c, cfg.path); /* a failure is counted and the slot retried by the timer scan */
}

/* Server Close seen and then EOF: a completed cycle. */
static void slot_finish(Conn *c) {
  close(c->fd);
  c->fd = -1;
  c->ev = 0;
  c->state = S_DEAD;
  n_slots_active--;
  slot_start(c);
}

/* ------------------------------------------------------------------------------------------
 * Events.
 * ---------------------------------------------------------------------------------------- */

static void on_eof(Conn *c) {
  if (c->role == R_SLOT && c->got_close) {
    slot_finish(c);
    return;
  }
  if (c->role == R_SLOW) {
    slow_closed++;
    conn_kill(c, true);
    return;
  }
  if (c->role == R_SUB && cfg.mode == M_OVERLOAD) fast_closed++;
  conn_fail(c, "%s",
            c->state == S_HANDSHAKE ? "EOF during the handshake"
                                    : "the server closed the TCP connection without a Close frame");
}

static void on_event(Conn *c, uint32_t ev) {
  if (c->state == S_DEAD) return;
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      conn_fail(c, "connect: %s", strerror(err));
      return;
    }
    if (!(ev & EPOLLOUT)) return;
    c->state = S_HANDSHAKE;
    conn_flush(c);
    return;
  }
  if (c->role == R_SLOW && c->state == S_OPEN && !probing) {
    /* not reading: only a hang-up (RST, or FIN that got through) can be seen */
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      slow_closed++;
      conn_kill(c, true);
    }
    return;
  }
  if (ev & EPOLLOUT) {
    if (conn_flush(c) < 0) return;
  }
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
    ssize_t r = read(c->fd, rbuf, RBUF_SIZE);
    if (r > 0) {
      now = clock_ns();
      if (c->role == R_SLOW) probe_last_data = now;
      int rc = c->state == S_HANDSHAKE ? hs_input(c, rbuf, (size_t)r)
                                       : ws_parse(c, rbuf, (size_t)r);
      if (rc < 0 || c->state == S_DEAD) return;
      if (c->role == R_SLOT && c->got_close && (ev & EPOLLRDHUP) && r < RBUF_SIZE) {
        slot_finish(c); /* the FIN came with the Close: no need for another read */
        return;
      }
    } else if (r == 0) {
      on_eof(c);
      return;
    } else if (errno != EAGAIN && errno != EINTR) {
      if (c->role == R_SLOW) {
        slow_closed++;
        conn_kill(c, true);
        return;
      }
      if (c->role == R_SUB && cfg.mode == M_OVERLOAD) fast_closed++;
      conn_fail(c, "read: %s", strerror(errno));
      return;
    }
  }
  /* answer this read's worth at once: the server can work on it while we read the others */
  if (c->olen > c->ooff && !(c->ev & EPOLLOUT)) conn_flush(c);
}

/* ------------------------------------------------------------------------------------------
 * Phases.
 * ---------------------------------------------------------------------------------------- */

static int target_conns(void) { return cfg.conns; }

static void open_more(void) {
  while (n_started < target_conns() && n_pending < HS_CONCURRENCY) {
    Conn *c = &conns[n_started++];
    conn_start(c, cfg.path);
  }
}

static void begin_warm(void) {
  phase = PH_WARM;
  sending = true;
  t_phase_end = now + (uint64_t)(cfg.warm * 1e9);
  fprintf(stderr, "sluice_load: %d connection(s) open (%d failed); warm-up %.1f s, window %.1f s\n",
          n_open, n_failed_open, cfg.warm, cfg.dur);
  if (cfg.mode == M_ECHO) {
    for (int i = 0; i < nconns; i++) echo_start(&conns[i]);
  } else if (cfg.mode == M_FANOUT) {
    pub_send((uint64_t)cfg.inflight);
    conn_flush(pub);
  } else if (cfg.mode == M_OVERLOAD) {
    t_pub0 = now;
    next_tick = now;
  }
}

static void begin_window(void) {
  phase = PH_WINDOW;
  C0 = C;
  t_w0 = clock_ns();
  cpu0 = cpu_us();
  t_phase_end = t_w0 + (uint64_t)(cfg.dur * 1e9);
}

static void end_window(void) {
  C1 = C;
  t_w1 = clock_ns();
  cpu1 = cpu_us();
  phase = PH_DRAIN;
  sending = false;
  t_phase_end = now + 2 * NS_PER_S;
}

static bool drained(void) {
  switch (cfg.mode) {
  case M_ECHO:
    return inflight_total == 0;
  case M_CONNECT:
    return n_slots_active == 0;
  case M_FANOUT:
    return (pub->state == S_DEAD || pub->olen == pub->ooff) && f_done >= pub_seq;
  case M_OVERLOAD:
    if (pub->state != S_DEAD && pub->olen != pub->ooff) return false;
    for (int i = 0; i < cfg.conns; i++)
      if (conns[i].role == R_SUB && conns[i].state == S_OPEN && conns[i].recvd < pub_seq)
        return false;
    return true;
  default:
    return true;
  }
}

static void fanout_advance(void) {
  while (f_done < pub_seq && fcnt[f_done & fmask] >= (uint32_t)alive_subs) {
    fcnt[f_done & fmask] = 0;
    f_done++;
  }
  if (sending && pub->state == S_OPEN) {
    uint64_t out = pub_seq - f_done;
    if (out < (uint64_t)cfg.inflight) {
      pub_send((uint64_t)cfg.inflight - out);
      conn_flush(pub);
    }
  }
}

static void overload_tick(void) {
  if (!sending || pub->state != S_OPEN) return;
  uint64_t due = (uint64_t)((double)(now - t_pub0) * cfg.rate / 1e9);
  if (due <= pub_due) return;
  uint64_t n = due - pub_due;
  pub_due = due;
  if (pub->olen - pub->ooff > (64u << 20)) {
    pub_skipped += n; /* the server stopped reading the publisher: do not queue without end */
    return;
  }
  pub_send(n);
  conn_flush(pub);
}

/* Deadlines of single connections; restarts of failed connect slots. */
static uint64_t next_scan;
static void scan_deadlines(void) {
  if (now < next_scan) return;
  next_scan = now + 20 * NS_PER_MS;
  for (int i = 0; i < nconns; i++) {
    Conn *c = &conns[i];
    if (c->role == R_SLOT) {
      if (c->state == S_DEAD) {
        if (sending && now >= c->deadline && c->deadline) {
          c->deadline = 0;
          slot_start(c);
        }
        continue;
      }
      if (now < c->deadline) continue;
      if (c->got_close) {
        C.no_fin++;
        conn_kill(c, true); /* RST: the client closes first, no TIME_WAIT left behind */
        c->deadline = 0;
        slot_start(c);
      } else {
        const char *what = c->state == S_CLOSING ? "no Close from the server within 5 s"
                                                 : "no handshake within 10 s";
        conn_fail(c, "%s", what);
      }
      continue;
    }
    if ((c->state == S_CONNECTING || c->state == S_HANDSHAKE) && now >= c->deadline)
      conn_fail(c, "no handshake within 10 s");
  }
}

static void open_pub(void) {
  phase = PH_PUB;
  pub->role = R_PUB;
  conn_start(pub, cfg.pub_path);
}

static uint64_t next_drain_check;

/* Overload: was a slow subscriber closed by the server? Unless it was reset, that cannot be
 * seen without reading (its FIN waits behind the data it did not read), so after the drain
 * the slow subscribers are read, up to 1 s, until each has closed or 100 ms pass without data.
 * The window is over: this changes no figure but slow_closed. */
static void begin_probe(void) {
  phase = PH_DONE;
  if (cfg.mode != M_OVERLOAD || stop_signal) return;
  phase = PH_PROBE;
  probing = true;
  probe_last_data = now;
  t_phase_end = now + NS_PER_S;
  int n = 0;
  for (int i = 0; i < cfg.conns; i++)
    if (conns[i].role == R_SLOW && conns[i].state == S_OPEN) {
      n++;
      conn_flush(&conns[i]); /* now with EPOLLIN */
    }
  fprintf(stderr, "sluice_load: %" PRIu64 " slow subscriber(s) closed during the run; reading the "
          "%d still open to see whether the server closed them\n", slow_closed, n);
}

static void post_round(void) {
  switch (phase) {
  case PH_OPEN:
    open_more();
    if (n_started < target_conns() || n_pending > 0) break;
    if (n_open == 0) {
      note_error("no connection could be opened");
      phase = PH_DONE;
      break;
    }
    if (cfg.mode == M_IDLE) {
      printf("open %d\n", idle_opened);
      fflush(stdout);
      fprintf(stderr, "sluice_load: %d connection(s) open (%d failed), holding\n", idle_opened,
              n_failed_open);
      phase = PH_HOLD;
      t_w0 = now;
      cpu0 = cpu_us();
      t_phase_end = cfg.dur_set ? now + (uint64_t)(cfg.dur * 1e9) : UINT64_MAX;
    } else if (cfg.mode == M_FANOUT || cfg.mode == M_OVERLOAD) {
      /* a short pause so every subscriber is registered before the first publish (servers
       * may run the open handler after the 101 went out) */
      if (!pub_start_at) pub_start_at = now + 50 * NS_PER_MS;
      if (now >= pub_start_at) open_pub();
    } else {
      begin_warm();
    }
    break;
  case PH_PUB:
    if (pub->state == S_OPEN) {
      begin_warm();
    } else if (pub->state == S_DEAD) {
      phase = PH_DONE;
    }
    break;
  default:
    break;
  }
  if (cfg.mode == M_FANOUT && phase >= PH_WARM && phase <= PH_DRAIN) fanout_advance();
  if (stop_signal && phase != PH_DONE) {
    if (phase == PH_HOLD) { /* idle: a signal ends the hold like the end of stdin */
      t_w1 = now;
      cpu1 = cpu_us();
    } else {
      if (phase == PH_WINDOW) end_window();
      note_error("stopped by signal %d before the end of the run", (int)stop_signal);
    }
    phase = PH_DONE;
    return;
  }
  if (cfg.mode == M_OVERLOAD && now >= next_tick && phase >= PH_WARM) {
    overload_tick();
    next_tick += 10 * NS_PER_MS;
    if (next_tick < now) next_tick = now + 10 * NS_PER_MS;
  }
  scan_deadlines();
  if (phase == PH_WARM && now >= t_phase_end) begin_window();
  if (phase == PH_WINDOW && now >= t_phase_end) end_window();
  if (phase == PH_DRAIN && now >= next_drain_check) {
    /* (overload's check walks every subscriber: not more often than every 5 ms) */
    if (cfg.mode == M_OVERLOAD) next_drain_check = now + 5 * NS_PER_MS;
    if (drained() || now >= t_phase_end) begin_probe();
  }
  if (phase == PH_PROBE) {
    bool open = false;
    for (int i = 0; i < cfg.conns && !open; i++)
      open = conns[i].role == R_SLOW && conns[i].state == S_OPEN;
    if (!open || now >= t_phase_end || now - probe_last_data > 100 * NS_PER_MS) phase = PH_DONE;
  }
  if (phase == PH_HOLD && (stdin_eof || now >= t_phase_end)) {
    t_w1 = now;
    cpu1 = cpu_us();
    phase = PH_DONE;
  }
  /* everything lost: stop early */
  bool lost = n_open <= 0;
  if ((cfg.mode == M_FANOUT || cfg.mode == M_OVERLOAD) &&
      ((alive_subs <= 0 && cfg.conns > nslow_target) || pub->state == S_DEAD))
    lost = true;
  if ((phase == PH_WARM || phase == PH_WINDOW) && cfg.mode != M_CONNECT && lost) {
    if (phase == PH_WINDOW) end_window();
    phase = PH_DONE;
  }
  if (phase == PH_HOLD && n_open <= 0) {
    t_w1 = now;
    cpu1 = cpu_us();
    phase = PH_DONE;
  }
}

/* -v: once a second, what the last second brought (to watch a server warm up). */
static uint64_t next_progress, progress_at;
static Ctr progress_last;
static void progress(void) {
  if (!cfg.verbose || now < next_progress) return;
  if (next_progress) {
    double s = (double)(now - progress_at) / 1e9;
    uint64_t n = cfg.mode == M_CONNECT ? C.handshakes - progress_last.handshakes
                                       : C.msgs - progress_last.msgs;
    static const char *const PHASES[] = {"open", "pub", "warm", "window", "drain", "probe",
                                         "hold", "done"};
    fprintf(stderr, "sluice_load: progress phase=%s open=%d per_s=%.0f\n", PHASES[phase],
            n_open, (double)n / s);
  }
  progress_last = C;
  progress_at = now;
  next_progress = now + NS_PER_S;
}

static int next_timeout_ms(void) {
  uint64_t next = now + 100 * NS_PER_MS;
  if (phase == PH_OPEN && pub_start_at && pub_start_at < next) next = pub_start_at;
  if ((phase == PH_WARM || phase == PH_WINDOW || phase == PH_DRAIN || phase == PH_HOLD) &&
      t_phase_end < next)
    next = t_phase_end;
  if (cfg.mode == M_OVERLOAD && phase >= PH_WARM && next_tick < next) next = next_tick;
  if (cfg.mode == M_CONNECT && next_scan < next) next = next_scan;
  if (phase == PH_PROBE && now + 10 * NS_PER_MS < next) next = now + 10 * NS_PER_MS;
  if (next <= now) return 0;
  return (int)((next - now + NS_PER_MS - 1) / NS_PER_MS);
}

static void watch_stdin(void) {
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e) == 0) return;
  /* a regular file or /dev/null (cannot be polled): EOF at once unless -d was given */
  if (!cfg.dur_set) stdin_eof = true;
}

static void on_stdin(void) {
  char b[4096];
  ssize_t r = read(0, b, sizeof b);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
    stdin_eof = true;
    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
  }
}

/* ------------------------------------------------------------------------------------------
 * Result.
 * ---------------------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void finish(void) {
  /* what the drain did not bring back (not asked after a signal: there was no drain) */
  bool drained_run = !stop_signal;
  if (drained_run && cfg.mode == M_ECHO) {
    for (int i = 0; i < nconns; i++) {
      Conn *c = &conns[i];
      if (c->state == S_OPEN && c->sent > c->recvd)
        note_error("echo %d: %" PRIu64 " echo(es) missing 2 s after the window", i,
                   c->sent - c->recvd);
    }
  } else if (drained_run && (cfg.mode == M_FANOUT || cfg.mode == M_OVERLOAD)) {
    for (int i = 0; i < cfg.conns; i++) {
      Conn *c = &conns[i];
      if (c->role != R_SUB || c->state != S_OPEN || c->recvd >= pub_seq) continue;
      if (cfg.mode == M_FANOUT)
        note_error("subscriber %d: %" PRIu64 " message(s) not delivered 2 s after the window", i,
                   pub_seq - c->recvd);
      else
        fast_undelivered += pub_seq - c->recvd;
    }
  }
  if (cfg.mode == M_OVERLOAD) {
    /* last look at the slow subscribers still open: the kernel's view of them */
    for (int i = 0; i < cfg.conns; i++) {
      Conn *c = &conns[i];
      if (c->role != R_SLOW || c->state != S_OPEN) continue;
      struct tcp_info ti;
      socklen_t tl = sizeof ti;
      int err = 0;
      socklen_t el = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err || (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
                  ti.tcpi_state != TCP_ESTABLISHED)) {
        slow_closed++;
        conn_kill(c, true);
      }
    }
  }
  if (cfg.mode == M_OVERLOAD && pub_skipped)
    fprintf(stderr, "sluice_load: %" PRIu64 " message(s) not offered: the publisher's backlog "
                    "passed 64 MiB\n", pub_skipped);
  /* close everything: RST, nothing left in TIME_WAIT */
  for (int i = 0; i < nconns; i++)
    if (conns[i].fd >= 0) conn_kill(&conns[i], true);

  if (t_w1 == 0) { /* stopped before the window ended */
    if (t_w0 == 0) {
      t_w0 = now;
      cpu0 = cpu_us();
      C0 = C;
    }
    t_w1 = clock_ns();
    cpu1 = cpu_us();
    C1 = C;
  }
  if (cfg.mode == M_IDLE) C1 = C0 = C;
  double secs = (double)(t_w1 - t_w0) / 1e9;
  double per = secs > 0 ? 1.0 / secs : 0;
  double cpu = secs > 0 ? (double)(cpu1 - cpu0) / 1e6 / secs * 100.0 : 0;
  Ctr d = {C1.msgs - C0.msgs,         C1.bytes - C0.bytes,     C1.sent - C0.sent,
           C1.handshakes - C0.handshakes, C1.closes - C0.closes, C1.no_fin - C0.no_fin,
           C1.pub_sent - C0.pub_sent,     C1.compressed - C0.compressed};
  double mps = cfg.mode == M_CONNECT ? (double)d.handshakes * per : (double)d.msgs * per;
  FILE *f = stdout;
  fprintf(f, "result {\"mode\":\"%s\",\"conns\":%d,\"msgs_per_s\":%.1f,\"bytes_per_s\":%.0f,",
          MODE_NAMES[cfg.mode], cfg.conns, mps, (double)d.bytes * per);
  fprintf(f, "\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"error\":",
          hist_pct(0.50), hist_pct(0.99), errors);
  json_str(f, first_error);
  fprintf(f, ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64, hist_pct(0.999), hist_max);
  switch (cfg.mode) {
  case M_ECHO:
    fprintf(f, ",\"in_flight\":%d,\"size\":%d,\"text\":%s,\"deflate\":%s,\"messages\":%" PRIu64,
            cfg.inflight, dmsgs ? 0 : cfg.size, cfg.text || dmsgs ? "true" : "false",
            dmsgs ? "true" : "false", d.msgs);
#ifdef HAVE_ZLIB
    fprintf(f, ",\"inflate_checked\":%s", dmsgs ? "true" : "false");
#else
    fprintf(f, ",\"inflate_checked\":false");
#endif
    if (dmsgs) fprintf(f, ",\"compressed_echoes\":%" PRIu64, d.compressed);
    break;
  case M_CONNECT:
    fprintf(f, ",\"handshakes\":%" PRIu64 ",\"closes\":%" PRIu64 ",\"no_fin\":%" PRIu64,
            d.handshakes, d.closes, d.no_fin);
    break;
  case M_IDLE:
    fprintf(f, ",\"open\":%d", idle_opened);
    break;
  case M_FANOUT:
    fprintf(f, ",\"subscribers\":%d,\"window\":%d,\"size\":%d,\"pub_per_s\":%.1f", cfg.conns,
            cfg.inflight, cfg.size, (double)d.pub_sent * per);
    break;
  case M_OVERLOAD:
    fprintf(f,
            ",\"subscribers\":%d,\"slow\":%d,\"rate\":%.0f,\"size\":%d,\"offered_per_s\":%.1f,"
            "\"fast_lost\":%" PRIu64 ",\"slow_closed\":%" PRIu64 ",\"fast_closed\":%" PRIu64
            ",\"fast_undelivered\":%" PRIu64 ",\"not_offered\":%" PRIu64,
            cfg.conns, cfg.slow, cfg.rate, cfg.size, (double)d.pub_sent * per, fast_lost,
            slow_closed, fast_closed, fast_undelivered, pub_skipped);
    break;
  }
  fprintf(f, ",\"client_cpu_pct\":%.1f,\"seconds\":%.3f}\n", cpu, secs);
  fflush(f);
}

/* ------------------------------------------------------------------------------------------
 * Setup.
 * ---------------------------------------------------------------------------------------- */

static void usage(const char *msg) {
  if (msg) fprintf(stderr, "sluice_load: %s\n", msg);
  fprintf(stderr,
          "usage: sluice_load MODE [options] ws://127.0.0.1:PORT/PATH\n"
          "  echo     -c N -P K -s BYTES [--text] [--deflate FILE]\n"
          "  connect  -c N\n"
          "  idle     -c N [-d SECONDS] [--spread]   (holds until stdin ends, or -d)\n"
          "  fanout   -c N -P W -s BYTES [--pub-path /pub]\n"
          "  overload -c N --slow K -r RATE -s BYTES [--pub-path /pub]\n"
          "  common: -d SECONDS measured [5], -w SECONDS warm-up [1], -v progress each second\n"
          "  sluice_load selftest\n");
  exit(2);
}

static double num_arg(const char *opt, const char *v, double lo, double hi) {
  if (!v) {
    fprintf(stderr, "sluice_load: %s needs a value\n", opt);
    usage(NULL);
  }
  char *e;
  double x = strtod(v, &e);
  if (e == v || *e || x < lo || x > hi) {
    fprintf(stderr, "sluice_load: bad value for %s: '%s'\n", opt, v);
    usage(NULL);
  }
  return x;
}

static void parse_url(const char *u) {
  if (strncmp(u, "ws://", 5) != 0) usage("the target must be a ws:// URL (no TLS)");
  const char *h = u + 5;
  const char *slash = strchr(h, '/');
  const char *hp_end = slash ? slash : h + strlen(h);
  snprintf(cfg.path, sizeof cfg.path, "%s", slash ? slash : "/");
  char host[256];
  const char *portp = NULL;
  size_t hl;
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(hp_end - h));
    if (!rb) usage("bad IPv6 address in the URL");
    hl = (size_t)(rb - h - 1);
    if (hl >= sizeof host) usage("bad host");
    memcpy(host, h + 1, hl);
    host[hl] = 0;
    if (rb + 1 < hp_end && rb[1] == ':') portp = rb + 2;
  } else {
    const char *colon = memchr(h, ':', (size_t)(hp_end - h));
    hl = (size_t)((colon ? colon : hp_end) - h);
    if (hl >= sizeof host) usage("bad host");
    memcpy(host, h, hl);
    host[hl] = 0;
    if (colon) portp = colon + 1;
  }
  long port = 80;
  if (portp) {
    char *e;
    port = strtol(portp, &e, 10);
    if (e != hp_end || port <= 0 || port > 65535) usage("bad port in the URL");
  }
  memset(&cfg.addr, 0, sizeof cfg.addr);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg.addr;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) usage("refusing a non-loopback target");
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    cfg.family = AF_INET;
    cfg.addrlen = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) usage("refusing a non-loopback target");
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    cfg.family = AF_INET6;
    cfg.addrlen = sizeof *a6;
  } else {
    usage("the host must be a loopback address (127.x.x.x, localhost or [::1])");
  }
  snprintf(cfg.hostport, sizeof cfg.hostport, "%.*s", (int)(hp_end - h), h);
}

static void load_deflate_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "sluice_load: %s: %s\n", path, strerror(errno));
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (sz <= 0) {
    fprintf(stderr, "sluice_load: %s: empty\n", path);
    exit(2);
  }
  uint8_t *buf = malloc((size_t)sz);
  if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
    fprintf(stderr, "sluice_load: %s: read failed\n", path);
    exit(2);
  }
  fclose(f);
  size_t cap = 16, off = 0;
  dmsgs = malloc(cap * sizeof *dmsgs);
  while (off < (size_t)sz) {
    if ((size_t)sz - off < 4) goto bad;
    uint32_t rl = get_le32(buf + off);
    off += 4;
    if ((size_t)sz - off < rl) goto bad;
    const uint8_t *raw = buf + off;
    off += rl;
    if ((size_t)sz - off < 4) goto bad;
    uint32_t cl = get_le32(buf + off);
    off += 4;
    if ((size_t)sz - off < cl) goto bad;
    if (ndmsgs == cap) {
      cap *= 2;
      dmsgs = realloc(dmsgs, cap * sizeof *dmsgs);
    }
    dmsgs[ndmsgs++] = (DMsg){raw, buf + off, rl, cl};
    off += cl;
  }
  return;
bad:
  fprintf(stderr, "sluice_load: %s: truncated record at byte %zu\n", path, off);
  exit(2);
}

static int selftest(void);

int main(int argc, char **argv) {
  if (argc < 2) usage(NULL);
  const char *m = argv[1];
  if (strcmp(m, "selftest") == 0) return selftest();
  int mode = -1;
  for (int i = 0; i < 5; i++)
    if (strcmp(m, MODE_NAMES[i]) == 0) mode = i;
  if (mode < 0) usage("unknown mode");
  cfg.mode = mode;
  cfg.conns = mode == M_CONNECT ? 64 : 100;
  cfg.inflight = mode == M_FANOUT ? 32 : 16;
  cfg.size = mode == M_ECHO ? 32 : 64;
  cfg.dur = 5;
  cfg.warm = 1;
  cfg.pub_path = "/pub";
  const char *url = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-c")) cfg.conns = (int)num_arg(a, v, 1, 1000000), i++;
    else if (!strcmp(a, "-P")) cfg.inflight = (int)num_arg(a, v, 1, 1 << 20), i++;
    else if (!strcmp(a, "-s")) cfg.size = (int)num_arg(a, v, 0, 1 << 30), i++;
    else if (!strcmp(a, "-d")) cfg.dur = num_arg(a, v, 0, 1e7), cfg.dur_set = true, i++;
    else if (!strcmp(a, "-w")) cfg.warm = num_arg(a, v, 0, 1e7), i++;
    else if (!strcmp(a, "-r")) cfg.rate = num_arg(a, v, 0, 1e9), i++;
    else if (!strcmp(a, "--slow")) cfg.slow = (int)num_arg(a, v, 0, 1000000), i++;
    else if (!strcmp(a, "--text")) cfg.text = true;
    else if (!strcmp(a, "-v")) cfg.verbose = true;
    else if (!strcmp(a, "--deflate")) {
      if (!v) usage("--deflate needs a FILE");
      cfg.deflate_file = v;
      i++;
    } else if (!strcmp(a, "--pub-path")) {
      if (!v || v[0] != '/') usage("--pub-path needs a path starting with /");
      cfg.pub_path = v;
      i++;
    } else if (!strcmp(a, "--max-pending")) {
      num_arg(a, v, 0, 1e12); /* accepted, not needed: the loops are closed */
      i++;
    } else if (!strcmp(a, "--spread")) {
      cfg.spread = true;
    } else if (!strncmp(a, "ws://", 5) || !strncmp(a, "wss://", 6)) {
      url = a;
    } else {
      fprintf(stderr, "sluice_load: unknown option '%s'\n", a);
      usage(NULL);
    }
  }
  if (!url) usage("no ws:// URL given");
  parse_url(url);
  if (mode == M_OVERLOAD) {
    if (cfg.rate <= 0) usage("overload needs -r RATE > 0");
    if (cfg.slow > cfg.conns) usage("--slow cannot exceed -c");
  }
  if ((mode == M_FANOUT || mode == M_OVERLOAD) && cfg.size < 4)
    usage("fanout/overload need -s >= 4 (sequence number)");
  if (cfg.deflate_file && mode != M_ECHO) usage("--deflate is an echo option");
  if (cfg.text && mode != M_ECHO) usage("--text is an echo option");

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  uint64_t seed;
  rnd_bytes(&seed, sizeof seed);
  xs_state = seed | 1;

  /* request template */
  req_head_len = (size_t)snprintf(req_head, sizeof req_head,
                                  " HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: ",
                                  cfg.hostport);
  if (cfg.deflate_file) load_deflate_file(cfg.deflate_file);
  req_tail_len = (size_t)snprintf(req_tail, sizeof req_tail,
                                  "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                                  dmsgs ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                          "client_no_context_takeover\r\n"
                                        : "");

  /* payload template: ASCII for text, a byte pattern for binary */
  size_t tsz = (size_t)cfg.size + 16;
  tmpl = malloc(tsz);
  for (size_t i = 0; i < tsz; i++)
    tmpl[i] = cfg.text ? (uint8_t)(0x21 + (i * 7) % 94) : (uint8_t)(i * 131 + 17);
  rbuf = malloc(RBUF_SIZE);
#ifdef HAVE_ZLIB
  zbuf = malloc(ZBUF_SIZE);
#endif

  nconns = cfg.conns + (mode == M_FANOUT || mode == M_OVERLOAD ? 1 : 0);
  conns = calloc((size_t)nconns, sizeof *conns);

  if (!conns || !rbuf || !tmpl) {
    fprintf(stderr, "sluice_load: out of memory\n");
    return 1;
  }
  uint8_t role = mode == M_ECHO      ? R_ECHO
                 : mode == M_CONNECT ? R_SLOT
                 : mode == M_IDLE    ? R_IDLE
                                     : R_SUB;
  int slow_every = cfg.slow > 0 ? cfg.conns / cfg.slow : 0;
  for (int i = 0; i < nconns; i++) {
    Conn *c = &conns[i];
    c->fd = -1;
    c->idx = (uint32_t)i;
    c->role = role;
    if (mode == M_OVERLOAD && i < cfg.conns && slow_every > 0 && i % slow_every == 0 &&
        nslow_target < cfg.slow) {
      c->role = R_SLOW;
      nslow_target++;
    }
  }
  if (mode == M_FANOUT || mode == M_OVERLOAD) {
    pub = &conns[cfg.conns];
    pub->role = R_PUB;
    stamp_len = cfg.size >= 12 ? 12 : 4;
    uint64_t rs = 1;
    uint64_t want = mode == M_FANOUT ? (uint64_t)cfg.inflight : (1u << 20);
    while (rs < want) rs <<= 1;
    fmask = rs - 1;
    if (mode == M_FANOUT) fcnt = calloc(rs, sizeof *fcnt);
    if (stamp_len < 12) ftime = calloc(rs, sizeof *ftime);
  }
  if (mode == M_ECHO) {
    stamp_len = !dmsgs && cfg.size >= STAMP_LEN ? STAMP_LEN : 0;
    echo_b0 = cfg.text ? 0x81 : 0x82;
    if (dmsgs) {
      size_t mx = 0;
      for (uint32_t i = 0; i < ndmsgs; i++)
        if (dmsgs[i].comp_len > mx) mx = dmsgs[i].comp_len;
      frame_max = mx + 14;
    } else {
      frame_max = (size_t)cfg.size + 14;
    }
    uint64_t rs = 1;
    while (rs < (uint64_t)cfg.inflight) rs <<= 1;
    ring_mask = rs - 1;
    for (int i = 0; i < nconns; i++) {
      conns[i].ring = malloc(rs * sizeof(uint64_t));
      conns[i].msg0 = ndmsgs ? (uint32_t)i % ndmsgs : 0;
      conns[i].ocap = (size_t)cfg.inflight * frame_max + 256;
      conns[i].ob = malloc(conns[i].ocap);
      if (!conns[i].ring || !conns[i].ob) {
        fprintf(stderr, "sluice_load: out of memory\n");
        return 1;
      }
    }
  }
  /* connect mode spreads source addresses (see the note above slot_start), idle mode on
   * --spread (to hold more connections than one source address has ports) */
  if (cfg.spread && (mode != M_IDLE || cfg.family != AF_INET))
    usage("--spread is an idle option, for an IPv4 target");
  cfg.spread = (cfg.spread || mode == M_CONNECT) && cfg.family == AF_INET;

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("sluice_load: epoll_create1");
    return 1;
  }
  now = clock_ns();
  if (mode == M_IDLE) watch_stdin();
  if (mode == M_CONNECT) {
    phase = PH_WARM;
    sending = true;
    t_phase_end = now + (uint64_t)(cfg.warm * 1e9);
    for (int i = 0; i < nconns; i++) slot_start(&conns[i]);
  } else {
    phase = PH_OPEN;
    open_more();
  }
  static struct epoll_event evs[MAX_EVENTS];
  while (phase != PH_DONE) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, next_timeout_ms());
    if (n < 0 && errno != EINTR) {
      perror("sluice_load: epoll_wait");
      return 1;
    }
    now = clock_ns();
    for (int i = 0; i < n; i++) {
      uint32_t id = evs[i].data.u32;
      if (id == UINT32_MAX) on_stdin();
      else on_event(&conns[id], evs[i].events);
    }
    now = clock_ns();
    post_round();
    progress();
  }
  finish();
  return errors ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------
 * selftest
 * ---------------------------------------------------------------------------------------- */

static int st_fail;
static void st_check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "selftest FAILED: %s\n", what);
    st_fail++;
  }
}

static size_t st_frame(uint8_t *d, uint8_t b0, const uint8_t *p, size_t n) {
  size_t h = 2;
  d[0] = b0;
  if (n < 126) {
    d[1] = (uint8_t)n;
  } else if (n < 65536) {
    d[1] = 126;
    d[2] = (uint8_t)(n >> 8);
    d[3] = (uint8_t)n;
    h = 4;
  } else {
    d[1] = 127;
    for (int i = 0; i < 8; i++) d[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    h = 10;
  }
  memcpy(d + h, p, n);
  return h + n;
}

static void st_conn(Conn *c) {
  free(c->ob);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->role = R_TEST;
  c->state = S_OPEN;
}

/* Feeds the stream in chunks of `chunk` bytes; returns true if the log matches. */
static bool st_feed(const uint8_t *s, size_t n, size_t chunk, const TEv *want, int nwant,
                    bool expect_error) {
  Conn c = {0};
  st_conn(&c);
  tlog_n = 0;
  test_err[0] = 0;
  for (size_t off = 0; off < n && c.state != S_DEAD; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    ws_parse(&c, s + off, k);
  }
  bool ok;
  if (expect_error) {
    ok = test_err[0] != 0;
  } else {
    ok = !test_err[0] && tlog_n == nwant && c.ps == 0 && c.hlen == 0;
    for (int i = 0; ok && i < nwant; i++)
      ok = tlog[i].op == want[i].op && tlog[i].len == want[i].len && tlog[i].hash == want[i].hash;
  }
  free(c.ob);
  return ok;
}

static int selftest(void) {
  /* SHA-1 (RFC 3174 / FIPS 180 vectors) */
  struct {
    const char *in;
    const char *hex;
  } sv[] = {
      {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
  };
  for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
    Sha1 s;
    uint8_t d[20];
    char hx[41];
    sha1_init(&s);
    sha1_update(&s, sv[i].in, strlen(sv[i].in));
    sha1_final(&s, d);
    for (int j = 0; j < 20; j++) snprintf(hx + 2 * j, 3, "%02x", d[j]);
    st_check(strcmp(hx, sv[i].hex) == 0, "SHA-1 vector");
  }
  {
    Sha1 s;
    uint8_t d[20];
    char hx[41];
    char a[1000];
    memset(a, 'a', sizeof a);
    sha1_init(&s);
    for (int i = 0; i < 1000; i++) sha1_update(&s, a, sizeof a);
    sha1_final(&s, d);
    for (int j = 0; j < 20; j++) snprintf(hx + 2 * j, 3, "%02x", d[j]);
    st_check(strcmp(hx, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0, "SHA-1 million a");
  }
  /* base64 (RFC 4648 §10) */
  {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
      char b[16];
      base64_encode((const uint8_t *)in[i], strlen(in[i]), b);
      st_check(strcmp(b, out[i]) == 0, "base64 vector");
    }
  }
  /* RFC 6455 §1.3 accept example */
  {
    char a[29];
    accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", 24, a);
    st_check(strcmp(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "RFC 6455 Sec-WebSocket-Accept");
  }
  /* RFC 6455 §5.7 masked "Hello" */
  {
    uint8_t d[32];
    uint8_t kb[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint32_t key;
    memcpy(&key, kb, 4);
    size_t h = put_header(d, 0x81, 5, key);
    mask_copy(d + h, (const uint8_t *)"Hello", 5, key);
    const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    st_check(h + 5 == sizeof want && memcmp(d, want, sizeof want) == 0, "RFC 6455 masked Hello");
    /* long masks: every length up to 100, and the unmask round trip */
    uint8_t src[100], dst[100], back[100];
    for (int i = 0; i < 100; i++) src[i] = (uint8_t)(i * 37);
    for (size_t n = 0; n <= 100; n++) {
      mask_copy(dst, src, n, 0xdeadbeef);
      bool ok = true;
      uint32_t k = 0xdeadbeef;
      const uint8_t *kp = (const uint8_t *)&k;
      for (size_t i = 0; i < n; i++) ok &= dst[i] == (src[i] ^ kp[i & 3]);
      mask_copy(back, dst, n, 0xdeadbeef);
      st_check(ok && memcmp(back, src, n) == 0, "mask_copy");
    }
  }
  /* frame parser: a stream of frames, fed in every chunk size */
  {
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + (i >> 8));
    size_t cap = 300000;
    uint8_t *s = malloc(cap);
    size_t n = 0;
    TEv want[32];
    int nw = 0;
#define EXPECT(op_, p_, n_) \
  (want[nw++] = (TEv){(op_), (n_), fnv(0xcbf29ce484222325ULL, (p_), (n_))})
    const uint8_t *hello = (const uint8_t *)"hello";
    n += st_frame(s + n, 0x82, big, 0);
    EXPECT(2, big, 0);
    n += st_frame(s + n, 0x81, hello, 5);
    EXPECT(1, hello, 5);
    n += st_frame(s + n, 0x82, big, 125);
    EXPECT(2, big, 125);
    n += st_frame(s + n, 0x89, (const uint8_t *)"png", 3);
    EXPECT(9, (const uint8_t *)"png", 3);
    n += st_frame(s + n, 0x82, big, 126);
    EXPECT(2, big, 126);
    /* fragmented text "abcdef" with a ping between fragments */
    n += st_frame(s + n, 0x01, (const uint8_t *)"ab", 2);
    n += st_frame(s + n, 0x89, (const uint8_t *)"x", 1);
    EXPECT(9, (const uint8_t *)"x", 1);
    n += st_frame(s + n, 0x00, (const uint8_t *)"cd", 2);
    n += st_frame(s + n, 0x80, (const uint8_t *)"ef", 2);
    EXPECT(1, (const uint8_t *)"abcdef", 6);
    n += st_frame(s + n, 0x8A, big, 0);
    EXPECT(10, big, 0);
    n += st_frame(s + n, 0x82, big + 3, 300);
    EXPECT(2, big + 3, 300);
    size_t small_n = n, small_w = (size_t)nw;
    for (size_t ch = 1; ch <= small_n; ch++)
      if (!st_feed(s, small_n, ch, want, (int)small_w, false)) {
        char w[80];
        snprintf(w, sizeof w, "frame parser, small stream, chunk size %zu", ch);
        st_check(false, w);
        break;
      }
    n += st_frame(s + n, 0x82, big, 65535);
    EXPECT(2, big, 65535);
    n += st_frame(s + n, 0x82, big, 65536);
    EXPECT(2, big, 65536);
    n += st_frame(s + n, 0x02, big, 70000);
    n += st_frame(s + n, 0x80, big, 3);
    {
      uint64_t hsh = fnv(fnv(0xcbf29ce484222325ULL, big, 70000), big, 3);
      want[nw++] = (TEv){2, 70003, hsh};
    }
    n += st_frame(s + n, 0x88, (const uint8_t *)"\x03\xe8" "bye", 5);
    EXPECT(8, (const uint8_t *)"\x03\xe8" "bye", 5);
    size_t sizes[] = {1, 2, 3, 4, 5, 7, 9, 13, 14, 15, 16, 17, 31, 64, 127, 128, 129, 1000, 4093,
                      65535, 65536, 65537, 131072, 262144, 300000};
    for (size_t ch = 1; ch <= 600; ch++)
      if (!st_feed(s, n, ch, want, nw, false)) {
        char w[80];
        snprintf(w, sizeof w, "frame parser, full stream, chunk size %zu", ch);
        st_check(false, w);
        break;
      }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      st_check(st_feed(s, n, sizes[i], want, nw, false), "frame parser, large chunks");
    /* random cuts */
    for (int r = 0; r < 200; r++) {
      Conn c = {0};
      st_conn(&c);
      tlog_n = 0;
      test_err[0] = 0;
      size_t off = 0;
      while (off < n) {
        size_t k = 1 + mask_key() % 3000;
        if (k > n - off) k = n - off;
        ws_parse(&c, s + off, k);
        off += k;
      }
      bool ok = !test_err[0] && tlog_n == nw;
      for (int i = 0; ok && i < nw; i++) ok = tlog[i].hash == want[i].hash;
      st_check(ok, "frame parser, random cuts");
      if (!ok) break;
      free(c.ob);
    }
    /* the pings were answered with masked Pongs carrying their payloads */
    {
      Conn c = {0};
      st_conn(&c);
      tlog_n = 0;
      ws_parse(&c, s, small_n);
      bool ok = c.olen == 6 + 3 + 6 + 1 && c.ob[0] == 0x8A && c.ob[1] == (0x80 | 3);
      if (ok) {
        uint32_t key;
        memcpy(&key, c.ob + 2, 4);
        uint8_t p[3];
        mask_copy(p, c.ob + 6, 3, key);
        ok = memcmp(p, "png", 3) == 0 && c.ob[9] == 0x8A && c.ob[10] == (0x80 | 1);
      }
      st_check(ok, "Pong answers");
      free(c.ob);
    }
    free(s);
  }
  /* malformed frames */
  {
    struct {
      const char *what;
      uint8_t b[16];
      size_t n;
    } bad[] = {
        {"masked server frame", {0x82, 0x81, 1, 2, 3, 4, 5}, 7},
        {"RSV2", {0xA2, 0x00}, 2},
        {"RSV3", {0x92, 0x00}, 2},
        {"RSV1 without deflate", {0xC2, 0x00}, 2},
        {"non-minimal 16-bit length", {0x82, 126, 0x00, 0x05, 1, 2, 3, 4, 5}, 9},
        {"non-minimal 64-bit length", {0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00}, 10},
        {"64-bit length top bit", {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10},
        {"long control frame", {0x89, 126, 0x00, 0x7e}, 4},
        {"fragmented control frame", {0x09, 0x00}, 2},
        {"continuation without message", {0x80, 0x00}, 2},
        {"data frame inside a fragmented message", {0x01, 0x01, 'a', 0x81, 0x01, 'b'}, 6},
        {"reserved opcode 3", {0x83, 0x00}, 2},
        {"reserved control opcode 11", {0x8B, 0x00}, 2},
        {"1-byte Close", {0x88, 0x01, 0x03}, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      bool ok = true;
      for (size_t ch = 1; ch <= bad[i].n; ch++)
        ok &= st_feed(bad[i].b, bad[i].n, ch, NULL, 0, true);
      char w[100];
      snprintf(w, sizeof w, "malformed frame not rejected: %s", bad[i].what);
      st_check(ok, w);
    }
  }
  /* handshake response check, fed in every chunk size, with a frame right behind the head */
  {
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                       "\r\n\r\n\x81\x02hi";
    size_t rn = strlen(resp);
    for (size_t ch = 1; ch <= rn; ch++) {
      Conn c = {0};
      st_conn(&c);
      c.state = S_HANDSHAKE;
      memcpy(c.key, "dGhlIHNhbXBsZSBub25jZQ==", 25);
      tlog_n = 0;
      test_err[0] = 0;
      t_opened = false;
      for (size_t off = 0; off < rn && c.state != S_DEAD; off += ch) {
        size_t k = rn - off < ch ? rn - off : ch;
        if (c.state == S_HANDSHAKE) hs_input(&c, (const uint8_t *)resp + off, k);
        else ws_parse(&c, (const uint8_t *)resp + off, k);
      }
      bool ok = t_opened && !test_err[0] && tlog_n == 1 && tlog[0].len == 2;
      free(c.hs);
      free(c.ob);
      if (!ok) {
        char w[500];
        snprintf(w, sizeof w, "handshake, chunk size %zu (%s)", ch, test_err);
        st_check(false, w);
        break;
      }
    }
    const char *bads[] = {
        "HTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOx=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
      Conn c = {0};
      st_conn(&c);
      memcpy(c.key, "dGhlIHNhbXBsZSBub25jZQ==", 25);
      char err[300];
      st_check(hs_check(&c, bads[i], strlen(bads[i]), err, sizeof err) != NULL,
               "bad handshake response accepted");
    }
    /* permessage-deflate parameters */
    char err[300];
    const char *okp[] = {"permessage-deflate", "permessage-deflate; client_no_context_takeover",
                         "permessage-deflate; server_no_context_takeover; "
                         "server_max_window_bits=10",
                         "permessage-deflate;server_max_window_bits=\"15\""};
    for (size_t i = 0; i < 4; i++)
      st_check(check_deflate_params(okp[i], strlen(okp[i]), err, sizeof err) == NULL,
               "good permessage-deflate response refused");
    const char *badp[] = {"permessage-deflate; client_max_window_bits=10", "x-webkit-deflate-frame",
                          "permessage-deflate; server_max_window_bits=7",
                          "permessage-deflate; foo", "permessage-deflate, permessage-deflate"};
    for (size_t i = 0; i < 5; i++)
      st_check(check_deflate_params(badp[i], strlen(badp[i]), err, sizeof err) != NULL,
               "bad permessage-deflate response accepted");
  }
#ifdef HAVE_ZLIB
  /* RFC 7692 §7.2.3.2: "Hello" twice with context takeover */
  {
    zbuf = malloc(ZBUF_SIZE);
    Conn c = {0};
    st_conn(&c);
    c.zs = calloc(1, sizeof *c.zs);
    inflateInit2(c.zs, -15);
    const uint8_t m1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    const uint8_t m2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    const uint8_t tail[] = {0, 0, 0xff, 0xff};
    const uint8_t *hello = (const uint8_t *)"Hello";
    for (int r = 0; r < 2; r++) {
      c.mbad = 0;
      c.zout = 0;
      const uint8_t *m = r ? m2 : m1;
      size_t mn = r ? sizeof m2 : sizeof m1;
      for (size_t i = 0; i < mn; i++) zfeed(&c, m + i, 1, hello, 5);
      zfeed(&c, tail, 4, hello, 5);
      st_check(c.mbad == 0 && c.zout == 5, "inflate RFC 7692 example");
    }
    inflateEnd(c.zs);
    free(c.zs);
  }
#endif
  if (st_fail) {
    fprintf(stderr, "selftest: %d failure(s)\n", st_fail);
    return 1;
  }
  printf("selftest ok\n");
  return 0;
}
