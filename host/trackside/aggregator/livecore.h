/* Live hot path of the aggregator (C, via cffi): split a port's bytes into frames, decode
 * intact sample batches, and run the sequence/clock checks of the common case ("lanes").
 *
 * The wire format's source of truth stays shared/tsproto (docs/protocol.md); this is the C twin
 * of tsproto.fast._fast_batch and of the clean branch of NodeTracker.check + Unwrapper, checked
 * against them by tests/aggregator/test_livecore.py. Anything unusual (other messages, damaged
 * or newer frames, sequence gaps, duplicates, reboots, F_GAP) is handed to Python unchanged.
 */
#include <stdint.h>

#define LC_MAX_FRAME 2048   /* bytes between delimiters kept for a frame (tsproto max_frame) */
#define LC_NV 13            /* values per output sample row */

/* record kinds */
#define LC_LANE 1    /* sample batch accepted by its node's lane: seq/clock checked, u_first set */
#define LC_BATCH 2   /* intact sample batch, decoded, NOT judged: Python checks it */
#define LC_OTHER 3   /* anything else: raw COBS body for the reference decoder */

typedef struct {
    int32_t tail_len;                 /* bytes of an unfinished frame (no delimiter yet) */
    int32_t index;                    /* the caller's port number, copied into records */
    uint8_t tail[LC_MAX_FRAME + 8];
    int64_t bytes_in;
    int64_t fast_frames;              /* frames decoded here (LC_LANE + LC_BATCH) */
    int64_t lane_frames;              /* of which accepted by their node's lane */
    int64_t oversize;                 /* > LC_MAX_FRAME without a delimiter: dropped */
    int64_t bytes_discarded;
} lc_port;

#define LC_LAT 64              /* latencies kept per lane between two syncs */

typedef struct {
    int32_t armed;                    /* 1: this node's clean frames are judged here */
    int32_t port;                     /* port index the lane belongs to */
    /* NodeTracker */
    int32_t last_seq;
    uint32_t last_t_node;
    double last_t_host;
    int32_t reboot_jump_us;
    /* Unwrapper */
    int64_t unwrap_last;              /* Unwrapper.last (unwrapped node µs of last_raw) */
    uint32_t unwrap_raw;              /* Unwrapper.last_raw */
    /* ClockSync.one_way: a frame that would close the window goes to Python (refit) */
    int32_t has_win, has_best;
    double win_start, window_s;
    double best_cost, best_host;
    int64_t best_u;
    double provisional;               /* min(t_recv - node time) */
    int32_t model;                    /* 1: host = c0 + u * c1 fixed; 0: c0 = provisional, c1 = 1e-6 */
    double c0, c1;
    /* since armed (the pipeline adds them to its node state when it syncs) */
    int64_t frames, samples;
    int32_t n_lat;
    double lat_ms[LC_LAT];            /* frame latency ring: entry k at k % LC_LAT */
} lc_lane;

typedef struct {
    int32_t port, kind, node, seq;
    uint32_t t_us;
    int32_t period_us, flags, n;
    int32_t row;                      /* first row in the samples buffer (LC_LANE / LC_BATCH) */
    int32_t raw_off, raw_len;         /* wire frame (body + 0x00) in the raw buffer */
    int32_t mtype;                    /* message type byte (CRC-valid frames), else -1 */
    int32_t version;                  /* version byte (CRC-valid frames), else 0 */
    int32_t end;                      /* offset of the frame's 0x00 in the data of its lc_feed */
    double t_host;
    int64_t u_first;                  /* unwrapped node µs of the first sample (LC_LANE) */
    double c0, c1;                    /* LC_LANE: sample k at host c0 + (u_first + k period) c1 */
} lc_record;

/* The live aligner (the C twin of clock.StreamAligner): grid t0 + k / rate; a slot is emitted
 * once every active node (newest slot within stale_s of now) has passed it, or max_wait_s after
 * its time; each node keeps the sample nearest the slot. Slots further than LCA_SLOTS ahead of the
 * next one cannot be held: such samples are counted (ahead) and dropped. */
#define LCA_SLOTS 2048
#define LCA_COLS 64                   /* nodes (columns, in first-seen order) */
#define LCA_ROWS 256                  /* emitted rows kept until Python takes them */

typedef struct {
    double d;                         /* distance to the slot time, in periods; < 0: empty */
    double t_recv;
    int16_t v[LC_NV];
} lca_cell;

typedef struct {
    double rate, t0, max_wait_s, stale_s;
    int64_t next_k;
    int32_t n_cols;
    int32_t col_of[256];              /* node id -> column + 1 (0: not seen) */
    int32_t node_of[LCA_COLS];
    int64_t latest[LCA_COLS];         /* newest slot per column */
    int64_t slot_k[LCA_SLOTS];        /* the slot a ring entry holds, -1 none */
    lca_cell cells[LCA_SLOTS][LCA_COLS];
    int64_t late, ahead, emitted, too_many_nodes, undelivered;
    /* emitted rows, until taken */
    int32_t n_rows;
    int64_t row_k[LCA_ROWS];
    double row_t[LCA_ROWS];
    int32_t row_cols[LCA_ROWS];       /* columns (nodes) the row has */
    uint8_t row_has[LCA_ROWS][LCA_COLS];
    int16_t row_v[LCA_ROWS][LCA_COLS][LC_NV];
    int32_t n_lat;
    double lat_ms[LCA_ROWS * LCA_COLS];   /* emit time - receive time of each emitted sample */
} lca;

void lca_init(lca *a, double rate, double t0, double max_wait_s, double stale_s);
void lca_add(lca *a, int32_t node, double t_host, const int16_t *v, double t_recv);
/* Emit the slots due at host time now (into the row buffer, while it has room); returns how many. */
int32_t lca_poll(lca *a, double now);

typedef struct {
    lc_record *records;
    int32_t max_records, n_records;
    int16_t *samples;                 /* rows of LC_NV int16 */
    int32_t max_rows, n_rows;
    uint8_t *raw;
    int32_t raw_cap, raw_len;
    lc_lane *lanes;                   /* 256, indexed by node id */
    lca *aligner;                     /* lane samples go straight in (NULL: none) */
} lc_out;

/* Feed bytes received on one port at host time t_host. Returns how many input bytes were
 * consumed: less than n only when the output is full (take the records, then feed the rest). */
int32_t lc_feed(lc_port *port, const uint8_t *data, int32_t n, double t_host, lc_out *out);

/* An epoll set of these fds (Linux; their index as data), or -1 (then lc_read polls). */
int32_t lc_epoll_new(const int32_t *fds, int32_t n);

/* Read every readable fd once without waiting (epoll set epfd, or poll when epfd < 0) and feed
 * its port, at host time t_host. A failed read sets status[i] (-1 end of file, else errno: the
 * cable was pulled; the caller clears it). Returns (failed reads << 1) | more, where more = 1
 * when reading stopped early because the output could overflow (take the records and call
 * again; unread bytes wait in the kernel); -2 where this is not supported (Windows). */
int32_t lc_read(int32_t epfd, const int32_t *fds, lc_port **ports, int32_t n, double t_host, lc_out *out,
                int32_t *status);

/* When lc_wait hands control back to Python. */
typedef struct {
    double min_period;                /* seconds between two reads (latency vs CPU) */
    double max_block;                 /* return at least this often (housekeeping, stop) */
    double py_delay;                  /* a record for Python waits at most this long */
    int32_t rows_wake;                /* return as soon as the aligner emitted a row */
    int32_t reads;                    /* out: read passes done in this call */
} lc_wait_params;

/* Read (as lc_read) every min_period with the GIL released until Python has something to do:
 * a record a lane did not take waiting for py_delay (the aligner is not polled meanwhile: that
 * record's samples may belong to the slots due), emitted rows (rows_wake, or the row buffer half
 * full), max_block elapsed, a failed read, or the output filling up. The aligner (out->aligner)
 * is polled after each read. *t_read gets the host time (CLOCK_REALTIME, as time.time()) of the
 * last read. Returns as lc_read. */
int32_t lc_wait(int32_t epfd, const int32_t *fds, lc_port **ports, int32_t n, lc_out *out, int32_t *status,
                lc_wait_params *w, double *t_read);

/* Disarm every lane of a port (unplug, undecodable bytes). */
void lc_disarm_port(lc_out *out, int32_t port);

/* CRC-32 (zlib) of data continuing from crc: the same as zlib.crc32(data, crc). */
uint32_t lc_crc32(const uint8_t *data, int32_t n, uint32_t crc);
