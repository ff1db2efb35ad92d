/*
 * http_load — native HTTP/1.1 keep-alive load generator for sluice's plain-HTTP benchmark
 * (bench/http_bench.ts runs it; it is not part of the library).
 *
 *     http_load [-c 64] [-d 5] [-w 1] [--body TEXT] http://127.0.0.1:PORT/PATH
 *     http_load probe [--body TEXT] http://127.0.0.1:PORT/PATH
 *
 *     cc -O2 -o bench/load/.build/http_load bench/load/http_load.c
 *
 * One thread, Linux epoll (level-triggered), non-blocking sockets, TCP_NODELAY; C11 and libc.
 * Written from RFC 9112 (HTTP/1.1 message syntax). Loopback targets only (127.0.0.0/8).
 *
 * Load: -c N persistent connections, each with one request in flight (no pipelining): the
 * next request goes out in the same epoll round as the previous response's last byte came.
 * Every request is `GET PATH HTTP/1.1` with a Host header and nothing else. Each response must
 * be a 200 whose body, framed by Content-Length (a chunked response is an error), is --body
 * (default `hello`). A response with `Connection: close` ends its connection: the load closes
 * it and opens another (counted in `reconnects`). A connection that fails is an error and is
 * replaced. After the warm-up (-w, from the moment every connection is open) come -d seconds of
 * measurement; then no request is sent, those in flight get up to 2 s, every socket closes with
 * a RST (SO_LINGER 0: nothing left in TIME_WAIT), and one line goes to stdout (after the lines
 * `window start` and `window end`, printed as the window begins and ends, for a parent that
 * samples the server's CPU over it):
 *     result {"mode":"http","conns":N,"reqs_per_s":...,"bytes_per_s":...,"p50_us":...,
 *             "p99_us":...,"p999_us":...,"max_us":...,"errors":E,"error":"first error",
 *             "reconnects":R,"response_bytes":B,"client_cpu_pct":...,"seconds":...}
 * Rates and latencies are of the window: a response counts if its last byte came inside it,
 * its latency is from its request's write to that byte (the clock is read once per epoll
 * round; a log-linear histogram, about 3 % resolution). response_bytes: the size of the last
 * response, head and body; client_cpu_pct: this process's CPU (getrusage) in the window, in %
 * of one core. Exit 0 with no errors, 1 otherwise, 2 on usage errors.
 *
 * Probe: one request on one connection; prints the response as it came (head and body), then
 * a line `probe {"head_bytes":H,"body_bytes":B}`. Exit 1 if it is not a valid 200 with --body.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000ULL
#define IN_SIZE 16384
#define MAX_CONNS 4096
#define BUCKETS 2048

/* ---------------------------------------------------------------- clock and histogram */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* Values below 64 ns have a bucket each; above, 32 buckets per power of two. */
static uint64_t histogram[BUCKETS];
static uint64_t histogram_count;

static int bucket_of(uint64_t v) {
  if (v < 64) return (int)v;
  int shift = 63 - __builtin_clzll(v) - 5;
  return 64 + (shift - 1) * 32 + (int)((v >> shift) & 31);
}

static double bucket_mid(int i) {
  if (i < 64) return i;
  int shift = (i - 64) / 32 + 1;
  uint64_t low = (uint64_t)(32 + (i - 64) % 32) << shift;
  return (double)low + (double)(1ULL << shift) / 2;
}

static void record(uint64_t ns) {
  histogram[bucket_of(ns)]++;
  histogram_count++;
}

/* The value at quantile q, in µs (0 with no samples). */
static double quantile_us(double q) {
  if (histogram_count == 0) return 0;
  uint64_t want = (uint64_t)(q * (double)histogram_count);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (int i = 0; i < BUCKETS; i++) {
    seen += histogram[i];
    if (seen >= want) return bucket_mid(i) / 1000;
  }
  return 0;
}

static double max_us(void) {
  for (int i = BUCKETS - 1; i >= 0; i--)
    if (histogram[i] > 0) return bucket_mid(i) / 1000;
  return 0;
}

/* ---------------------------------------------------------------- target and errors */

static struct sockaddr_in target;
static char request[512];
static size_t request_len;
static const char *body = "hello";
static size_t body_len = 5;

static uint64_t errors;
static char first_error[200];

static void fail(const char *fmt, const char *detail) {
  errors++;
  if (first_error[0] == '\0') snprintf(first_error, sizeof first_error, fmt, detail);
  fprintf(stderr, "http_load: ");
  fprintf(stderr, fmt, detail);
  fprintf(stderr, "\n");
}

static void usage(void) {
  fprintf(stderr, "usage: http_load [probe] [-c N] [-d SECONDS] [-w SECONDS] [--body TEXT] "
                  "http://127.0.0.1:PORT/PATH\n");
  exit(2);
}

/* Parses http://127.x.y.z:PORT/PATH into target and request. */
static void parse_url(const char *url) {
  if (strncmp(url, "http://", 7) != 0) usage();
  const char *host = url + 7;
  const char *colon = strchr(host, ':');
  if (colon == NULL) usage();
  char ip[64];
  size_t ip_len = (size_t)(colon - host);
  if (ip_len >= sizeof ip) usage();
  memcpy(ip, host, ip_len);
  ip[ip_len] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  const char *path = *end == '/' ? end : "/";
  if (port <= 0 || port > 65535 || (*end != '\0' && *end != '/')) usage();
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, ip, &target.sin_addr) != 1 || ip[0] != '1' || strncmp(ip, "127.", 4))
    usage();
  int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%ld\r\n\r\n", path, ip,
                   port);
  if (n <= 0 || (size_t)n >= sizeof request) usage();
  request_len = (size_t)n;
}

/* ---------------------------------------------------------------- one response */

/* What the head of a response says. */
typedef struct {
  size_t head_len; /* up to and with the blank line */
  size_t content_length;
  bool close;
} Head;

/* Whether header `name` (lower case) starts line `line` of length `len`; sets *value. */
static bool header_is(const char *line, size_t len, const char *name, const char **value,
                      size_t *value_len) {
  size_t n = strlen(name);
  if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0) return false;
  const char *v = line + n + 1;
  const char *e = line + len;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
  *value = v;
  *value_len = (size_t)(e - v);
  return true;
}

/*
 * Reads the head at the start of buf[0..len): 1 with *head set, 0 if incomplete, -1 on an
 * error (reported).
 */
static int parse_head(const char *buf, size_t len, Head *head) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (end == NULL) {
    if (len >= IN_SIZE) {
      fail("%s", "a response head longer than 16 KiB");
      return -1;
    }
    return 0;
  }
  head->head_len = (size_t)(end - buf) + 4;
  head->close = false;
  bool has_length = false;
  if (head->head_len < 16 || memcmp(buf, "HTTP/1.1 200 ", 13) != 0) {
    char line[64];
    size_t n = strcspn(buf, "\r");
    if (n >= sizeof line) n = sizeof line - 1;
    memcpy(line, buf, n);
    line[n] = '\0';
    fail("not a 200: %s", line);
    return -1;
  }
  const char *line = memchr(buf, '\n', head->head_len) + 1;
  while (line < end + 2) {
    const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
    size_t n = (size_t)(eol - line);
    const char *value;
    size_t value_len;
    if (header_is(line, n, "content-length", &value, &value_len)) {
      has_length = true;
      head->content_length = strtoul(value, NULL, 10);
    } else if (header_is(line, n, "transfer-encoding", &value, &value_len)) {
      fail("%s", "a response with Transfer-Encoding (expected Content-Length)");
      return -1;
    } else if (header_is(line, n, "connection", &value, &value_len)) {
      head->close = value_len == 5 && strncasecmp(value, "close", 5) == 0;
    }
    line = eol + 2;
  }
  if (!has_length) {
    fail("%s", "a response without Content-Length");
    return -1;
  }
  if (head->content_length != body_len) {
    fail("%s", "a body of the wrong length");
    return -1;
  }
  return 1;
}

/* ---------------------------------------------------------------- connections */

typedef struct {
  int fd;
  bool connecting;
  bool waiting; /* a request is in flight */
  size_t sent;  /* of the request, while a write was partial */
  uint64_t sent_at;
  char in[IN_SIZE];
  size_t in_len;
} Conn;

static Conn *conns;
static int conn_count = 64;
static int epfd;
static bool sending = true;
static bool measuring;
static uint64_t done_in_window;
static uint64_t bytes_in_window;
static uint64_t reconnects;
static size_t response_bytes;
static int in_flight;

static void arm(Conn *c, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data = {.ptr = c}};
  if (epoll_ctl(epfd, op, c->fd, &ev) != 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

/* Closes a socket with a RST (SO_LINGER 0), so nothing waits in TIME_WAIT. */
static void close_hard(Conn *c) {
  if (c->fd < 0) return;
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd);
  c->fd = -1;
  if (c->waiting) in_flight--;
  c->waiting = false;
}

static void open_conn(Conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) {
    perror("socket");
    exit(1);
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->in_len = 0;
  c->sent = 0;
  c->waiting = false;
  c->connecting = true;
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) != 0 && errno != EINPROGRESS) {
    perror("connect");
    exit(1);
  }
  arm(c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* Writes (the rest of) the request; arms EPOLLOUT if the socket took only part of it. */
static void send_request(Conn *c, uint64_t now) {
  if (c->sent == 0) {
    c->sent_at = now;
    c->waiting = true;
    in_flight++;
  }
  ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
  if (n < 0 && errno != EAGAIN) {
    fail("write: %s", strerror(errno));
    close_hard(c);
    if (sending) open_conn(c);
    return;
  }
  if (n > 0) c->sent += (size_t)n;
  if (c->sent == request_len) {
    c->sent = 0;
  } else {
    arm(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
  }
}

/* Handles the bytes that came: complete responses are checked, counted and answered. */
static void on_readable(Conn *c, uint64_t now) {
  ssize_t n = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    if (n == 0 && !c->waiting && c->in_len == 0) {
      /* The server ended an idle connection (after a response that said close). */
      reconnects++;
    } else {
      fail("%s", n == 0 ? "the server closed the connection mid-request" : strerror(errno));
    }
    close_hard(c);
    if (sending) open_conn(c);
    return;
  }
  c->in_len += (size_t)n;
  Head head;
  int status = parse_head(c->in, c->in_len, &head);
  if (status == 0) return;
  size_t total = status == 1 ? head.head_len + head.content_length : 0;
  if (status == 1 && c->in_len < total) {
    if (total > IN_SIZE) {
      fail("%s", "a response longer than 16 KiB");
      status = -1;
    } else {
      return;
    }
  }
  if (status == 1 && memcmp(c->in + head.head_len, body, body_len) != 0) {
    fail("%s", "a body other than the expected one");
    status = -1;
  }
  if (status == 1 && c->in_len > total) {
    fail("%s", "bytes after the response (no request was pipelined)");
    status = -1;
  }
  if (status == -1) {
    close_hard(c);
    if (sending) open_conn(c);
    return;
  }
  c->waiting = false;
  in_flight--;
  c->in_len = 0;
  response_bytes = total;
  if (measuring) {
    done_in_window++;
    bytes_in_window += total;
    record(now - c->sent_at);
  }
  if (head.close) {
    reconnects++;
    close_hard(c);
    if (sending) open_conn(c);
  } else if (sending) {
    send_request(c, now);
  }
}

static void on_event(Conn *c, uint32_t events, uint64_t now) {
  if (c->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fprintf(stderr, "http_load: connect: %s\n", strerror(err));
      exit(1);
    }
    c->connecting = false;
    arm(c, EPOLLIN, EPOLL_CTL_MOD);
    if (sending) send_request(c, now);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
  if (c->fd >= 0 && (events & EPOLLOUT) && c->sent > 0) {
    arm(c, EPOLLIN, EPOLL_CTL_MOD);
    send_request(c, now);
  }
}

/* One epoll round; returns the time after it. */
static uint64_t round_once(int timeout_ms) {
  struct epoll_event events[256];
  int n = epoll_wait(epfd, events, 256, timeout_ms);
  if (n < 0 && errno != EINTR) {
    perror("epoll_wait");
    exit(1);
  }
  uint64_t now = now_ns();
  for (int i = 0; i < n; i++) {
    Conn *c = events[i].data.ptr;
    if (c->fd >= 0) on_event(c, events[i].events, now);
  }
  return now;
}

static int run_load(double seconds, double warmup) {
  epfd = epoll_create1(0);
  conns = calloc((size_t)conn_count, sizeof(Conn));
  for (int i = 0; i < conn_count; i++) {
    conns[i].fd = -1;
    open_conn(&conns[i]);
  }
  /* The warm-up starts once every connection is open: the first requests are out. */
  uint64_t now = now_ns();
  for (;;) {
    int open = 0;
    for (int i = 0; i < conn_count; i++) open += conns[i].fd >= 0 && !conns[i].connecting;
    if (open == conn_count) break;
    now = round_once(100);
  }
  uint64_t start = now + (uint64_t)(warmup * NS_PER_S);
  uint64_t stop = start + (uint64_t)(seconds * NS_PER_S);
  while (now < start) now = round_once(10);
  double cpu_start = cpu_seconds();
  uint64_t window_start = now;
  measuring = true;
  puts("window start");
  fflush(stdout);
  while (now < stop) now = round_once(10);
  measuring = false;
  sending = false;
  puts("window end");
  fflush(stdout);
  double window = (double)(now - window_start) / NS_PER_S;
  double cpu = cpu_seconds() - cpu_start;
  uint64_t drain_end = now + 2 * NS_PER_S;
  while (in_flight > 0 && now < drain_end) now = round_once(10);
  if (in_flight > 0) fail("%s", "responses still missing 2 s after the window");
  for (int i = 0; i < conn_count; i++) close_hard(&conns[i]);
  printf("result {\"mode\":\"http\",\"conns\":%d,\"reqs_per_s\":%.1f,\"bytes_per_s\":%.1f,"
         "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"errors\":%" PRIu64
         ",\"error\":\"%s\",\"reconnects\":%" PRIu64 ",\"response_bytes\":%zu,"
         "\"client_cpu_pct\":%.1f,\"seconds\":%.3f}\n",
         conn_count, (double)done_in_window / window, (double)bytes_in_window / window,
         quantile_us(0.5), quantile_us(0.99), quantile_us(0.999), max_us(), errors, first_error,
         reconnects, response_bytes, 100 * cpu / window, window);
  fflush(stdout);
  return errors > 0 ? 1 : 0;
}

/* One request, blocking; prints the response and its sizes. */
static int run_probe(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&target, sizeof target) != 0) {
    perror("connect");
    return 1;
  }
  if (write(fd, request, request_len) != (ssize_t)request_len) {
    perror("write");
    return 1;
  }
  static char in[IN_SIZE];
  size_t len = 0;
  Head head;
  int status = 0;
  while (len < IN_SIZE) {
    ssize_t n = read(fd, in + len, IN_SIZE - len);
    if (n <= 0) break;
    len += (size_t)n;
    status = parse_head(in, len, &head);
    if (status != 0 && (status == -1 || len >= head.head_len + head.content_length)) break;
  }
  close(fd);
  fwrite(in, 1, len, stdout);
  if (status != 1 || len != head.head_len + head.content_length ||
      memcmp(in + head.head_len, body, body_len) != 0) {
    fprintf(stderr, "http_load: probe: not a complete 200 with the expected body\n");
    return 1;
  }
  printf("\nprobe {\"head_bytes\":%zu,\"body_bytes\":%zu}\n", head.head_len, head.content_length);
  return 0;
}

int main(int argc, char **argv) {
  bool probe = false;
  double seconds = 5, warmup = 1;
  const char *url = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool more = i + 1 < argc;
    if (strcmp(a, "probe") == 0 && i == 1) probe = true;
    else if (strcmp(a, "-c") == 0 && more) conn_count = atoi(argv[++i]);
    else if (strcmp(a, "-d") == 0 && more) seconds = atof(argv[++i]);
    else if (strcmp(a, "-w") == 0 && more) warmup = atof(argv[++i]);
    else if (strcmp(a, "--body") == 0 && more) {
      body = argv[++i];
      body_len = strlen(body);
    } else if (a[0] != '-' && url == NULL) url = a;
    else usage();
  }
  if (url == NULL || conn_count < 1 || conn_count > MAX_CONNS || seconds <= 0 || warmup < 0)
    usage();
  parse_url(url);
  return probe ? run_probe() : run_load(seconds, warmup);
}
