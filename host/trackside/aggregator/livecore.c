/* Live hot path of the aggregator: see livecore.h. Mirrors tsproto.fast._fast_batch (decode),
 * the clean branch of NodeTracker.check + Unwrapper + ClockSync.one_way (lanes) and
 * StreamAligner (lca) exactly. Reading (poll/epoll, read, sleeps) is POSIX only: on Windows
 * lc_read/lc_wait return -2 and the pipeline reads in Python. */
#include <math.h>
#include <string.h>

#ifndef _WIN32
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#endif
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "livecore.h"

#define LC_POLL_MAX 256
#define LC_READ_MAX 65536

#define VERSION_MAJOR 1
#define VERSION_MINOR 0
#define HEADER_LEN 9
#define MIN_PAYLOAD 13
#define T_SAMPLES 0x10
#define F_RAW 0x01
#define F_GAP 0x02
#define CRC_INIT 0xD202EF8Du

static uint32_t crc_table[256];
static int crc_ready = 0;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t lc_crc32(const uint8_t *data, int32_t n, uint32_t crc) {
    if (!crc_ready) crc_init();
    crc = ~crc;
    for (int32_t i = 0; i < n; i++) crc = crc_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* COBS body (no 0x00) -> payload in p (n - 1 bytes). Single-block-length frames only (no 0xFF
 * code), as the fast path of the reference: 0 on anything else. */
static int cobs_small(const uint8_t *chunk, int32_t n, uint8_t *p) {
    if (n < 1 || n > 254 || chunk[0] == 0xFF) return 0;
    memcpy(p, chunk + 1, (size_t)(n - 1));
    int32_t i = chunk[0];
    while (i < n) {
        uint8_t c = chunk[i];
        if (c == 0xFF) return 0;
        p[i - 1] = 0;
        i += c;
    }
    return i == n;
}

/* Sample batch payload p (len plen, CRC checked) -> rows. Returns the row count, 0 if this is
 * not a batch the fast path takes (the reference decides then). */
static int decode_batch(const uint8_t *p, int32_t plen, int16_t *rows, int32_t max_rows,
                        int32_t *period, int32_t *flags) {
    int32_t end = plen - 4;
    if (end < HEADER_LEN + 4) return 0;
    uint8_t ver = p[0];
    if (p[1] != T_SAMPLES || (ver >> 4) != VERSION_MAJOR || (ver & 15) > VERSION_MINOR) return 0;
    int32_t cnt = p[12];
    if (cnt == 0 || cnt > max_rows) return 0;
    *period = rd16(p + 9);
    *flags = p[11];
    int raw = p[11] & F_RAW;
    int nv = raw ? 9 : 13;
    int32_t o = HEADER_LEN + 4;
    if (o + 2 * nv > end) return 0;
    uint16_t v[LC_NV], q[LC_NV], r[LC_NV];
    for (int c = 0; c < nv; c++) {
        v[c] = rd16(p + o + 2 * c) ^ 0x8080;
        q[c] = 0;
    }
    o += 2 * nv;
    for (int c = 0; c < LC_NV; c++) rows[c] = c < nv ? (int16_t)v[c] : 0;
    static const int shift[4] = {0, 2, 4, 6}, col0[4] = {0, 3, 6, 9}, count[4] = {3, 3, 3, 4};
    for (int32_t s = 1; s < cnt; s++) {
        if (o >= end) return 0;
        uint8_t tag = p[o++];
        int groups = raw ? 3 : 4;
        if (raw && (tag >> 6)) return 0;
        for (int g = 0; g < groups; g++) {
            int code = (tag >> shift[g]) & 3;
            if (code == 3) return 0;
            for (int c = col0[g]; c < col0[g] + count[g]; c++) {
                if (code == 0) {
                    r[c] = 0;
                } else if (code == 1) {
                    if (o + 1 > end) return 0;
                    r[c] = (uint16_t)(p[o] + 0xFF80);
                    o += 1;
                } else {
                    if (o + 2 > end) return 0;
                    r[c] = rd16(p + o) ^ 0x8080;
                    o += 2;
                }
            }
        }
        for (int c = 0; c < nv; c++) {
            /* acc, gyr, quat second order (running difference); mag (6..8) first order */
            uint16_t d = (c >= 6 && c <= 8) ? r[c] : (q[c] = (uint16_t)(q[c] + r[c]));
            v[c] = (uint16_t)(v[c] + d);
        }
        int16_t *row = rows + (int64_t)s * LC_NV;
        for (int c = 0; c < LC_NV; c++) row[c] = c < nv ? (int16_t)v[c] : 0;
    }
    return cnt;
}

static void disarm_port(lc_out *out, int32_t port) {
    for (int i = 0; i < 256; i++)
        if (out->lanes[i].armed && out->lanes[i].port == port) out->lanes[i].armed = 0;
}

void lc_disarm_port(lc_out *out, int32_t port) { disarm_port(out, port); }

static int room(const lc_out *out, int32_t frame_len) {
    return out->n_records < out->max_records && out->n_rows + 255 <= out->max_rows &&
           out->raw_len + frame_len + 1 <= out->raw_cap;
}


/* ---- live aligner (clock.StreamAligner's rules) ---------------------------------------- */

void lca_init(lca *a, double rate, double t0, double max_wait_s, double stale_s) {
    memset(a, 0, sizeof *a);
    a->rate = rate;
    a->t0 = t0;
    a->max_wait_s = max_wait_s;
    a->stale_s = stale_s;
    for (int i = 0; i < LCA_SLOTS; i++) a->slot_k[i] = -1;
}

void lca_add(lca *a, int32_t node, double t_host, const int16_t *v, double t_recv) {
    double pos = (t_host - a->t0) * a->rate;
    int64_t k = pos >= -0.5 ? (int64_t)(pos + 0.5) : -1;
    if (k < a->next_k) {
        a->late++;                    /* its slot was already emitted (stays missing there) */
        return;
    }
    int32_t c = a->col_of[node & 255] - 1;
    if (c < 0) {
        if (a->n_cols >= LCA_COLS) {
            a->too_many_nodes++;
            return;
        }
        c = a->n_cols++;
        a->col_of[node & 255] = c + 1;
        a->node_of[c] = node;
        a->latest[c] = -1;
    }
    if (k >= a->next_k + LCA_SLOTS) {
        a->ahead++;                   /* too far ahead to hold */
    } else {
        int64_t s = k % LCA_SLOTS;
        if (a->slot_k[s] != k) {      /* a fresh slot: clear what the ring held */
            a->slot_k[s] = k;
            for (int32_t j = 0; j < LCA_COLS; j++) a->cells[s][j].d = -1.0;
        }
        lca_cell *cell = &a->cells[s][c];
        double d = fabs(pos - (double)k);
        if (cell->d < 0 || d < cell->d) {
            cell->d = d;
            cell->t_recv = t_recv;
            memcpy(cell->v, v, sizeof cell->v);
        }
    }
    if (k > a->latest[c]) a->latest[c] = k;
}

int32_t lca_poll(lca *a, double now) {
    if (a->n_cols == 0) return 0;
    double horizon = (now - a->stale_s - a->t0) * a->rate;
    int64_t done_all = -1;
    int any = 0;
    for (int32_t c = 0; c < a->n_cols; c++) {
        if ((double)a->latest[c] >= horizon && (!any || a->latest[c] < done_all)) {
            done_all = a->latest[c];
            any = 1;
        }
    }
    int32_t n = 0;
    int32_t cols = a->n_cols;         /* a row has the nodes known when the poll began */
    for (;;) {
        int64_t k = a->next_k;
        double t_slot = a->t0 + (double)k / a->rate;
        if (k > done_all && now < t_slot + a->max_wait_s) break;
        int64_t s = k % LCA_SLOTS;
        int held = a->slot_k[s] == k;
        if (a->n_rows >= LCA_ROWS) {  /* a backlog beyond the buffer (a clock jumped ahead): */
            a->undelivered++;         /* emitted, counted, not handed over row by row */
            if (held) a->slot_k[s] = -1;
            a->next_k++;
            n++;
            continue;
        }
        int32_t r = a->n_rows++;
        a->row_k[r] = k;
        a->row_t[r] = t_slot;
        a->row_cols[r] = cols;
        for (int32_t c = 0; c < cols; c++) {
            const lca_cell *cell = &a->cells[s][c];
            int has = held && cell->d >= 0;
            a->row_has[r][c] = (uint8_t)has;
            if (has) {
                memcpy(a->row_v[r][c], cell->v, sizeof cell->v);
                a->lat_ms[a->n_lat++] = (now - cell->t_recv) * 1e3;
            }
        }
        if (held) a->slot_k[s] = -1;
        a->next_k++;
        n++;
    }
    a->emitted += n;
    return n;
}

/* One complete frame (its bytes between delimiters, n > 0), its 0x00 at data offset end. */
static void frame(lc_port *port, const uint8_t *chunk, int32_t n, double t_host, lc_out *out, int32_t end) {
    uint8_t p[256];
    lc_record *rec = out->records + out->n_records;
    int ok = cobs_small(chunk, n, p);
    int32_t plen = n - 1;
    int crc_ok = ok && plen >= MIN_PAYLOAD && lc_crc32(p, plen - 4, CRC_INIT) == rd32(p + plen - 4);
    int32_t rows = 0, period = 0, flags = 0;
    if (crc_ok)
        rows = decode_batch(p, plen, out->samples + (int64_t)out->n_rows * LC_NV, out->max_rows - out->n_rows,
                            &period, &flags);
    rec->port = port->index;
    rec->t_host = t_host;
    rec->end = end;
    rec->raw_off = out->raw_len;
    rec->raw_len = n + 1;
    memcpy(out->raw + out->raw_len, chunk, (size_t)n);
    out->raw[out->raw_len + n] = 0;
    out->raw_len += n + 1;
    rec->u_first = 0;
    rec->c0 = rec->c1 = 0.0;
    rec->row = -1;
    if (!crc_ok) {
        /* the reference decoder may still recover a frame of any node from these bytes */
        rec->kind = LC_OTHER;
        rec->node = -1;
        rec->seq = -1;
        rec->t_us = 0;
        rec->mtype = -1;
        rec->version = 0;
        rec->period_us = rec->flags = rec->n = 0;
        disarm_port(out, port->index);
        out->n_records++;
        return;
    }
    int32_t node = p[2], seq = rd16(p + 3);
    uint32_t t_us = rd32(p + 5);
    lc_lane *lane = out->lanes + node;
    rec->node = node;
    rec->seq = seq;
    rec->t_us = t_us;
    rec->mtype = p[1];
    rec->version = p[0];
    if (rows == 0) {
        rec->kind = LC_OTHER;
        rec->period_us = rec->flags = rec->n = 0;
        lane->armed = 0;
        out->n_records++;
        return;
    }
    port->fast_frames++;
    rec->period_us = period;
    rec->flags = flags;
    rec->n = rows;
    rec->row = out->n_rows;
    out->n_rows += rows;
    rec->kind = LC_BATCH;
    if (lane->armed && lane->port == port->index && !(flags & F_GAP)) {
        int32_t d = (seq - lane->last_seq) & 0xFFFF;
        int64_t step = (int32_t)(t_us - lane->last_t_node);
        int clean = d == 1 && step >= -(int64_t)lane->reboot_jump_us &&
                    !((double)step - (t_host - lane->last_t_host) * 1e6 > (double)lane->reboot_jump_us);
        /* a frame closing the clock window makes Python refit the model: it goes there */
        if (clean && lane->has_win && lane->has_best && t_host - lane->win_start >= lane->window_s) clean = 0;
        if (clean) {
            lane->last_seq = seq;
            lane->last_t_node = t_us;
            lane->last_t_host = t_host;
            lane->unwrap_last += (int32_t)(t_us - lane->unwrap_raw);
            lane->unwrap_raw = t_us;
            int64_t u_first = lane->unwrap_last;
            int64_t u_last = u_first + (int64_t)(rows - 1) * period;
            double cost = t_host - (double)u_last * 1e-6;     /* ClockSync.one_way */
            if (!lane->has_win) {
                lane->has_win = 1;
                lane->win_start = t_host;
            }
            if (!lane->has_best || cost < lane->best_cost) {
                lane->has_best = 1;
                lane->best_cost = cost;
                lane->best_u = u_last;
                lane->best_host = t_host;
            }
            if (cost < lane->provisional) lane->provisional = cost;
            double c0 = lane->model ? lane->c0 : lane->provisional;
            double c1 = lane->model ? lane->c1 : 1e-6;
            lane->lat_ms[lane->n_lat % LC_LAT] = (t_host - (c0 + (double)u_last * c1)) * 1e3;
            lane->n_lat++;
            lane->frames++;
            lane->samples += rows;
            rec->u_first = u_first;
            rec->c0 = c0;
            rec->c1 = c1;
            rec->kind = LC_LANE;
            port->lane_frames++;
            if (out->aligner != NULL) {
                const int16_t *rv = out->samples + (int64_t)rec->row * LC_NV;
                for (int32_t k = 0; k < rows; k++)
                    lca_add(out->aligner, node, c0 + (double)(u_first + (int64_t)k * period) * c1, rv + k * LC_NV,
                            t_host);
            }
        }
    }
    if (rec->kind != LC_LANE) lane->armed = 0;   /* Python judges it: its state moves on */
    out->n_records++;
}

int32_t lc_feed(lc_port *port, const uint8_t *data, int32_t n, double t_host, lc_out *out) {
    int32_t start = 0;   /* start of the current frame's bytes in data */
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *z = memchr(data + i, 0, (size_t)(n - i));
        if (z == NULL) break;
        i = (int32_t)(z - data);
        int32_t seg = i - start;
        int32_t total = port->tail_len + seg;
        if (total > 0) {
            if (total <= LC_MAX_FRAME && !room(out, total)) {
                /* output full: keep this frame's bytes for the next call (delimiter unread) */
                memcpy(port->tail + port->tail_len, data + start, (size_t)seg);
                port->tail_len = total;
                port->bytes_in += i;
                return i;
            }
            if (total > LC_MAX_FRAME) {
                port->oversize++;                 /* too long for a frame: only counted */
                port->bytes_discarded += total + 1;
            } else if (port->tail_len == 0) {
                frame(port, data + start, seg, t_host, out, i);
            } else {
                memcpy(port->tail + port->tail_len, data + start, (size_t)seg);
                frame(port, port->tail, total, t_host, out, i);
            }
        }
        port->tail_len = 0;
        start = i + 1;
    }
    int32_t rest = n - start;
    int32_t total = port->tail_len + rest;
    if (total > LC_MAX_FRAME) {
        /* no delimiter in sight: what cannot be a frame is dropped (StreamDecoder.feed) */
        port->oversize++;
        port->bytes_discarded += total;
        port->tail_len = 0;
    } else {
        memcpy(port->tail + port->tail_len, data + start, (size_t)rest);
        port->tail_len = total;
    }
    port->bytes_in += n;
    return n;
}


#ifndef _WIN32
/* Read fd i (ready) into its port; 1 if the output could overflow (nothing read). */
static int read_one(int32_t fd, lc_port *port, double t_host, lc_out *out, int32_t *status, int32_t *failed) {
    static uint8_t buf[LC_READ_MAX];
    /* a frame yields at most one record, its bytes at most as many rows and raw bytes */
    int64_t cap = LC_READ_MAX;
    int64_t free_raw = (int64_t)out->raw_cap - out->raw_len - LC_MAX_FRAME - 8;
    int64_t free_rows = (int64_t)out->max_rows - out->n_rows - LC_MAX_FRAME - 256;
    int64_t free_recs = (int64_t)out->max_records - out->n_records - 2;
    if (free_raw < cap) cap = free_raw;
    if (free_rows < cap) cap = free_rows;
    if (free_recs < cap) cap = free_recs;
    if (cap < 64) return 1;
    ssize_t got = read(fd, buf, (size_t)cap);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        *status = errno;
        (*failed)++;
        return 0;
    }
    if (got == 0) {
        *status = -1;
        (*failed)++;
        return 0;
    }
    lc_feed(port, buf, (int32_t)got, t_host, out);
    return 0;
}

#endif

int32_t lc_epoll_new(const int32_t *fds, int32_t n) {
#ifdef __linux__
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    for (int32_t i = 0; i < n; i++) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
            close(ep);
            return -1;
        }
    }
    return ep;
#else
    (void)fds; (void)n;
    return -1;
#endif
}

int32_t lc_read(int32_t epfd, const int32_t *fds, lc_port **ports, int32_t n, double t_host, lc_out *out,
                int32_t *status) {
#ifdef _WIN32
    (void)epfd; (void)fds; (void)ports; (void)n; (void)t_host; (void)out; (void)status;
    return -2;
#else
    int32_t failed = 0;
    if (n <= 0) return 0;
#ifdef __linux__
    if (epfd >= 0) {     /* only the ready fds come back: no per-call scan of every port */
        struct epoll_event ev[LC_POLL_MAX];
        int k = epoll_wait(epfd, ev, LC_POLL_MAX, 0);
        for (int j = 0; j < k; j++) {
            uint32_t i = ev[j].data.u32;
            if (i >= (uint32_t)n) continue;
            if (read_one(fds[i], ports[i], t_host, out, status + i, &failed)) return 1 | (failed << 1);
        }
        return failed << 1;
    }
#else
    (void)epfd;
#endif
    struct pollfd pf[LC_POLL_MAX];
    if (n > LC_POLL_MAX) n = LC_POLL_MAX;
    for (int32_t i = 0; i < n; i++) {
        pf[i].fd = fds[i];
        pf[i].events = POLLIN;
        pf[i].revents = 0;
    }
    if (poll(pf, (nfds_t)n, 0) <= 0) return 0;
    for (int32_t i = 0; i < n; i++) {
        if (!pf[i].revents) continue;
        if (read_one(fds[i], ports[i], t_host, out, status + i, &failed)) return 1 | (failed << 1);
    }
    return failed << 1;
#endif
}

#ifndef _WIN32
static double now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_until_mono(double t) {
#ifdef __linux__
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
#else   /* macOS and BSDs: no absolute-time clock_nanosleep */
    for (;;) {
        double d = t - now_mono();
        if (d <= 0) return;
        struct timespec ts;
        ts.tv_sec = (time_t)d;
        ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) == 0) return;
    }
#endif
}

#endif

int32_t lc_wait(int32_t epfd, const int32_t *fds, lc_port **ports, int32_t n, lc_out *out, int32_t *status,
                lc_wait_params *w, double *t_read) {
#ifdef _WIN32
    (void)epfd; (void)fds; (void)ports; (void)n; (void)out; (void)status; (void)w; (void)t_read;
    return -2;
#else
    double start = now_mono();
    double next = start;
    double pending_since = -1.0;
    int32_t seen = 0;
    w->reads = 0;
    for (;;) {
        sleep_until_mono(next);
        double t = now_real();
        *t_read = t;
        int32_t r = lc_read(epfd, fds, ports, n, t, out, status);
        w->reads++;
        if (r != 0) return r;                         /* failed read(s) or output full */
        int samples_pending = 0;
        for (; seen < out->n_records; seen++) {
            const lc_record *rec = out->records + seen;
            if (rec->kind == LC_LANE) continue;
            if (pending_since < 0) pending_since = t;
            /* a batch Python judges (or bytes the reference might recover one from) */
            if (rec->kind == LC_BATCH || rec->mtype < 0 || rec->mtype == T_SAMPLES) samples_pending = 1;
        }
        if (out->n_records > out->max_records / 2 || out->n_rows > out->max_rows / 2) return 0;
        /* Python adds those samples before the aligner may emit their slots: now */
        if (samples_pending) return 0;
        /* statuses, time-sync replies, acks: no samples, no hurry (receive times are taken) */
        if (pending_since >= 0 && t - pending_since >= w->py_delay) return 0;
        if (out->aligner != NULL) {
            lca_poll(out->aligner, t);
            if (out->aligner->n_rows > 0 && (w->rows_wake || out->aligner->n_rows >= LCA_ROWS / 2)) return 0;
        }
        double m = now_mono();
        if (m - start >= w->max_block) return 0;
        next += w->min_period;
        if (next < m) next = m;                      /* late: no burst of catch-up reads */
    }
#endif
}
