/*
 * The scorer's per-view record update in C: `services.scorer.features.apply_view`, compiled.
 *
 * One call takes an entity's packed record (or None), one view and the engine's settings,
 * applies the view exactly as the Python reference does (same float operations in the same
 * order, the same libm exp, float32 counters rounded only when packed) and returns
 *
 *   (0, risk_score)                               the view was applied before (offset replay)
 *   (1, packed_record, now_ms)                    a quiet entity: stored as is, nothing to score
 *   (2, values, changed, activity, modem, features)  the unpacked list and the entity's features
 *                                                 (a new dict) for the engine's rules and models
 *   None                                          anything unusual: the caller runs the Python
 *                                                 reference, which also raises its errors
 *
 * scan(is_number, records, idle_before_ms, horizon_s) is the sweep's one pass over a table
 * (features.scan_records): the keys of idle entities and of expired flags.
 *
 * The record layouts and the feature names are fixed here and checked against the catalogue
 * (services/scorer/catalogue.py) at import (features.LAYOUT_SIGNATURE, features.FEATURE_SIGNATURE)
 * and by tests/scorer/test_catalogue.py; a mismatch disables this module. Nothing here stores or logs
 * an identifier: it reads pseudonyms' first hex digits as fingerprints, as the Python does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "little-endian only (records are '<' structs read with memcpy)"
#endif

#define MAXF 128
#define HEADER_LEN 21
#define N_WIN 3
#define RCPT_CAP 16
#define CELL_CAP 4
#define IDS_CAP 8
#define SKETCH_WORDS 4

/* header indices (features.py) */
enum {
    LAST_MS, OFFSET, FIRST_S, SIM_CHANGED_S, DEVICE_CHANGED_S, ACTIVATED_S, FLAG_FIRST_S, FLAG_EXPIRES_S,
    EPISODE_S, LAST_HIGH_S, SCORED_S, N_VIEWS, DEVICE_FP, RISK_SCORE, RISK_LEVEL, EVICTED, TAC,
    MODEL_POINTS, SCORED_ACTIVITY, RISK_AT_S, BASE_MS
};
static const char HEADER[] = "qqIIIIIIIIIIQBBBIffIq";
static const char LINK_TAIL[] = "IIBI";
enum { LINK_S, LINK_EXPIRES_S, LINK_SCORE, LINK_FP, N_LINK };   /* the link tail's fields */
/* numbers' change tail, after the link tail (layout.CHG_*): what the number did since its latest change */
static const char CHANGE_TAIL[] = "BBBBBBBI";
enum { CHG_NEW_OUT, CHG_KNOWN_OUT, CHG_CODES, CHG_LINKS, CHG_CELLS, CHG_RCPT_LO, CHG_RCPT_HI, LINK_RUNS, N_CHG };
/* layout.LINK_RUNS: bits 0-23 the latest link SMS to a stranger (s mod 2**24), bits 24-31 the runs
   up to it decayed over a day, in 1/LINK_RUN_ONE */
#define LINK_RUN_TIME_MASK 0xFFFFFFLL
#define LINK_RUN_ONE 16
#define LINK_RUN_TAU_S 86400.0
#define LINK_RUN_FORGET_S (7LL * 86400LL)
#define CHG_SAW_NEW 16
#define CHG_SAW_OLD 32
#define CHG_HAD_CELLS 64
#define CHG_HAD_RCPTS 128
#define CHANGE_MERGE_S 3600
#define CHANGE_WINDOW_S 86400
#define ON_NET 2
/* a number's line in EVICTED's bits 2-7 (layout.py: FORWARDING_BITS, LINE_*) */
#define FWD_UNCONDITIONAL 4
#define FWD_BUSY 8
#define FWD_NO_ANSWER 16
#define FWD_NOT_REACHABLE 32
#define FORWARDING_MASK 60
#define LINE_MASK 192
#define LINE_ACTIVE 64
#define LINE_CEASED 128
#define LINE_RECYCLED 192
#define LINE_STATE_MASK (FORWARDING_MASK | LINE_MASK)
#define REBASE_MS (40LL * 300000LL)
static const double TAU_5M = 300000.0, TAU_1H = 3600000.0, TAU_24H = 86400000.0;
/* features.BURST_PRIOR: an SMS sent while the 5-minute SMS count already holds this is part of a run */
static const double BURST_PRIOR = 0.9;
/* features.RUN_GAP_MS: ... and the number's latest event at most this far from it */
#define RUN_GAP_MS 30000LL

/* number counters (x3 windows), in features.NUMBER.counters order */
enum { N_SMS_OUT, N_SMS_IN, N_CALL_OUT, N_CALL_IN, N_URL, N_NEW_RCPT, N_NIGHT, N_SHORT, N_UNANS,
       N_NEW_CELL, N_A2P, N_REPLY, N_BURST, N_COUNTERS };
/* device counters, in features.DEVICE.counters order */
enum { D_OUT, D_NEW_IMSI, D_NEW_NUMBER, D_NEW_CELL, D_NEW_RCPT, D_CHANGE, D_URL, D_CALL, D_A2P, D_REPLY,
       D_IMSI_BACK, D_COUNTERS };

#define CNT(k) (HEADER_LEN + (k) * N_WIN)
/* numbers: rcpt set, cell set, sketch */
#define N_RCPT_AT CNT(N_COUNTERS)
#define N_CELL_AT (N_RCPT_AT + RCPT_CAP)
#define N_SKETCH_AT (N_CELL_AT + CELL_CAP)
/* devices: rcpt, imsi, number, cell sets, sketch */
#define D_RCPT_AT CNT(D_COUNTERS)
#define D_IMSI_AT (D_RCPT_AT + RCPT_CAP)
#define D_NUMBER_AT (D_IMSI_AT + IDS_CAP)
#define D_CELL_AT (D_NUMBER_AT + IDS_CAP)
#define D_SKETCH_AT (D_CELL_AT + CELL_CAP)

typedef struct {
    char fmt[MAXF + 1];
    int n;
    int link_at;          /* index of the link tail's first field */
    int tail_at;          /* index of the change tail's first field (numbers; == n without one) */
    Py_ssize_t size;
    int off[MAXF];
} layout_t;

static layout_t NUMBER_L, DEVICE_L;

typedef struct {
    int64_t iv[MAXF];     /* integer fields (Q fields hold their 64 bits) */
    double dv[MAXF];      /* float32 fields, widened; counters stay unrounded until packed */
} rec_t;

static PyObject *S_occurred_ms, *S_role, *S_type, *S_sms, *S_has_url, *S_call, *S_answered, *S_duration_s,
    *S_forwarding, *S_subscription, *S_action, *S_kind,
    *S_peer, *S_peer_kind, *S_sim, *S_change, *S_cell, *S_subscriber, *S_device, *S_tac, *S_entity, *S_imsi,
    *S_number;
static PyObject *CODE_SENDERS;    /* the current apply()'s one-time-code senders (borrowed) */

static int build_layout(layout_t *l, int n_counters, const int *caps, int n_sets, const char *tail) {
    int n = 0;
    for (const char *c = HEADER; *c; c++) l->fmt[n++] = *c;
    for (int i = 0; i < n_counters * N_WIN; i++) l->fmt[n++] = 'f';
    for (int s = 0; s < n_sets; s++)
        for (int i = 0; i < caps[s]; i++) l->fmt[n++] = 'I';
    for (int i = 0; i < SKETCH_WORDS; i++) l->fmt[n++] = 'Q';
    l->link_at = n;
    for (const char *c = LINK_TAIL; *c; c++) l->fmt[n++] = *c;
    l->tail_at = n;
    for (const char *c = tail; *c; c++) l->fmt[n++] = *c;
    if (n > MAXF) return -1;
    l->fmt[n] = 0;
    l->n = n;
    Py_ssize_t at = 0;
    for (int i = 0; i < n; i++) {
        l->off[i] = (int)at;
        switch (l->fmt[i]) {
            case 'q': case 'Q': at += 8; break;
            case 'I': case 'f': at += 4; break;
            case 'B': at += 1; break;
            default: return -1;
        }
    }
    l->size = at;
    return 0;
}

static void unpack(const layout_t *l, const unsigned char *p, rec_t *r) {
    for (int i = 0; i < l->n; i++) {
        const unsigned char *q = p + l->off[i];
        switch (l->fmt[i]) {
            case 'q': { int64_t v; memcpy(&v, q, 8); r->iv[i] = v; break; }
            case 'Q': { uint64_t v; memcpy(&v, q, 8); r->iv[i] = (int64_t)v; break; }
            case 'I': { uint32_t v; memcpy(&v, q, 4); r->iv[i] = v; break; }
            case 'B': r->iv[i] = *q; break;
            case 'f': { float v; memcpy(&v, q, 4); r->dv[i] = v; break; }
        }
    }
}

static void empty(rec_t *r) {
    memset(r, 0, sizeof(*r));
    r->iv[OFFSET] = -1;
}

/* 0 when every integer fits its field (struct.pack would raise otherwise: the caller falls back) */
static int fits(const layout_t *l, const rec_t *r) {
    for (int i = 0; i < l->n; i++) {
        int64_t v = r->iv[i];
        switch (l->fmt[i]) {
            case 'I': if (v < 0 || v > 0xFFFFFFFFLL) return -1; break;
            case 'B': if (v < 0 || v > 0xFF) return -1; break;
            case 'f': if (!isfinite(r->dv[i]) || fabs(r->dv[i]) > 3.4028234663852886e38) return -1; break;
            default: break;
        }
    }
    return 0;
}

static PyObject *pack(const layout_t *l, const rec_t *r) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, l->size);
    if (!out) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    for (int i = 0; i < l->n; i++) {
        unsigned char *q = p + l->off[i];
        switch (l->fmt[i]) {
            case 'q': case 'Q': { int64_t v = r->iv[i]; memcpy(q, &v, 8); break; }
            case 'I': { uint32_t v = (uint32_t)r->iv[i]; memcpy(q, &v, 4); break; }
            case 'B': *q = (unsigned char)r->iv[i]; break;
            case 'f': { float v = (float)r->dv[i]; memcpy(q, &v, 4); break; }
        }
    }
    return out;
}

static PyObject *to_list(const layout_t *l, const rec_t *r) {
    PyObject *out = PyList_New(l->n);
    if (!out) return NULL;
    for (int i = 0; i < l->n; i++) {
        PyObject *v;
        switch (l->fmt[i]) {
            case 'f': v = PyFloat_FromDouble(r->dv[i]); break;
            case 'Q': v = PyLong_FromUnsignedLongLong((unsigned long long)r->iv[i]); break;
            default: v = PyLong_FromLongLong(r->iv[i]); break;
        }
        if (!v) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

/* ---- view fields ------------------------------------------------------------------------- */

/* a new reference, or NULL with the error cleared (attribute missing: treated as unusual) */
static PyObject *attr(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (!v) PyErr_Clear();
    return v;
}

static int str_is(PyObject *s, const char *ascii) {
    return s && PyUnicode_Check(s) && PyUnicode_CompareWithASCIIString(s, ascii) == 0;
}

/* int(s[:digits], 16) or 1 for a str of at least `digits` ASCII hex digits; -1: unusual */
static int fingerprint(PyObject *s, int digits, uint64_t *out) {
    if (!s || !PyUnicode_Check(s) || PyUnicode_GET_LENGTH(s) < digits) return -1;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int d;
        if (c >= '0' && c <= '9') d = (int)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (int)(c - 'A' + 10);
        else return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v ? v : 1;
    return 0;
}

/* ---- the update (features.apply_number / apply_device) -------------------------------------- */

static void add(rec_t *r, int at, const double w[3]) {
    r->dv[at] += w[0];
    r->dv[at + 1] += w[1];
    r->dv[at + 2] += w[2];
}

static void start(rec_t *r, int64_t t_ms) {
    int64_t t_s = t_ms / 1000;
    if (!r->iv[FIRST_S] || t_s < r->iv[FIRST_S]) r->iv[FIRST_S] = t_s;
    r->iv[N_VIEWS] += 1;
}

static void advance(rec_t *r, int counters_end, int64_t t_ms, double w[3]) {
    int64_t base = r->iv[BASE_MS];
    if (!base) {
        r->iv[BASE_MS] = base = t_ms;
    } else if (t_ms - base > REBASE_MS) {
        double gap = (double)(-(t_ms - base));
        double f[3] = {exp(gap / TAU_5M), exp(gap / TAU_1H), exp(gap / TAU_24H)};
        for (int i = HEADER_LEN; i < counters_end; i++) r->dv[i] = r->dv[i] * f[(i - HEADER_LEN) % 3];
        r->iv[BASE_MS] = base = t_ms;
    }
    if (t_ms > r->iv[LAST_MS]) r->iv[LAST_MS] = t_ms;
    double gap = (double)(t_ms - base);
    w[0] = exp(gap / TAU_5M);
    w[1] = exp(gap / TAU_1H);
    w[2] = exp(gap / TAU_24H);
}

/* move fp to the front of the MRU set at [at, at+cap); 1 when it was not in it */
static int remember(rec_t *r, int at, int cap, uint64_t fp) {
    int64_t *s = r->iv + at;
    for (int k = 0; k < cap; k++) {
        if ((uint64_t)s[k] == fp) {
            if (k) {
                memmove(s + 1, s, (size_t)k * sizeof(int64_t));
                s[0] = (int64_t)fp;
            }
            return 0;
        }
    }
    int overflow = s[cap - 1] != 0;
    memmove(s + 1, s, (size_t)(cap - 1) * sizeof(int64_t));
    s[0] = (int64_t)fp;
    if (overflow && cap == RCPT_CAP) r->iv[EVICTED] |= 1;
    return 1;
}

/* is fp in the set (the set unchanged)? */
static int known(const rec_t *r, int at, int cap, uint64_t fp) {
    const int64_t *s = r->iv + at;
    for (int k = 0; k < cap; k++) if ((uint64_t)s[k] == fp) return 1;
    return 0;
}

/* an in-view from a recent recipient (a reply or call-back) adds to counter */
static int reply(rec_t *r, PyObject *peer, int set_at, int counter, const double w[3]) {
    if (peer == Py_None) return 0;
    uint64_t fp;
    if (fingerprint(peer, 8, &fp) < 0) return -1;
    if (known(r, set_at, RCPT_CAP, fp)) add(r, counter, w);
    return 0;
}

static void sketch_add(rec_t *r, int at, uint64_t fp) {
    unsigned bit = (unsigned)((fp >> 8) & 255);
    r->iv[at + (bit >> 6)] = (int64_t)((uint64_t)r->iv[at + (bit >> 6)] | (1ULL << (bit & 63)));
}

/* an outgoing view's recipient (None: nothing): the recent set, "never contacted", the sketch */
static int recipient(rec_t *r, PyObject *peer, int set_at, int sketch_at, int new_counter, const double w[3]) {
    if (peer == Py_None) return 0;
    uint64_t fp;
    if (fingerprint(peer, 8, &fp) < 0) return -1;
    if (remember(r, set_at, RCPT_CAP, fp)) add(r, new_counter, w);
    sketch_add(r, sketch_at, fp);
    return 0;
}

/* ---- link runs (features.link_run, link_runs_forget) ------------------------------------- */

/* seconds of a time in ms, rounded down (Python's //) */
static int64_t floor_s(int64_t t_ms) { return t_ms >= 0 ? t_ms / 1000 : -((999 - t_ms) / 1000); }

/* the full time of the latest run's SMS: at or before watermark_s, its time modulo 2**24 the stored one */
static int64_t latest_run_s(int64_t packed, int64_t watermark_s) {
    return watermark_s - ((watermark_s - packed) & LINK_RUN_TIME_MASK);
}

static void link_run(rec_t *r, int64_t t_s, int64_t watermark_s) {
    int at = NUMBER_L.tail_at + LINK_RUNS;
    int64_t packed = r->iv[at];
    int64_t units = (packed >> 24) & 255;
    if (!units) {     /* none held: a run starts at the SMS, unless it is a week before the watermark */
        if (watermark_s - t_s <= LINK_RUN_FORGET_S) r->iv[at] = (int64_t)LINK_RUN_ONE << 24 | (t_s & LINK_RUN_TIME_MASK);
        return;
    }
    int64_t gap = t_s - latest_run_s(packed, watermark_s);
    if (gap > RUN_GAP_MS / 1000) {
        units = (int64_t)((double)units * exp(-(double)gap / LINK_RUN_TAU_S) + (double)LINK_RUN_ONE + 0.5);
        if (units > 255) units = 255;
    }
    else if (gap < 0) return;         /* a late SMS counts nothing and moves nothing */
    r->iv[at] = units << 24 | (t_s & LINK_RUN_TIME_MASK);
}

/* clear a count whose latest run is more than a week before the watermark (after the view),
   its time rebuilt from the watermark before the view */
static void link_runs_forget(rec_t *r, int64_t before_s, int64_t watermark_s) {
    int at = NUMBER_L.tail_at + LINK_RUNS;
    int64_t packed = r->iv[at];
    if (packed && watermark_s - latest_run_s(packed, before_s) > LINK_RUN_FORGET_S) r->iv[at] = 0;
}

/* ---- the change tail (change_tail.update) ------------------------------------------------ */

static int64_t imax(int64_t a, int64_t b) { return b > a ? b : a; }

static void bump(rec_t *r, int at) { if (r->iv[at] < 255) r->iv[at] += 1; }

static int slots(int mask, int pos, int full) {
    if (pos < 0) return (mask << 1) & full;
    int bit = (mask >> pos) & 1;
    int lower = mask & ((1 << pos) - 1);
    return (mask & ~((1 << (pos + 1)) - 1) & full) | (lower << 1) | bit;
}

/* slot of fp in the set at [at, at+cap), -1 when absent */
static int position(const rec_t *r, int at, int cap, uint64_t fp) {
    for (int k = 0; k < cap; k++) if ((uint64_t)r->iv[at + k] == fp) return k;
    return -1;
}

static int occupied(const rec_t *r, int at, int cap) {
    int m = 0;
    for (int k = 0; k < cap; k++) if (r->iv[at + k]) m |= 1 << k;
    return m;
}

static void change_tail(rec_t *r, int64_t before_change, int rcpt_pos, int link, int code, int cell_pos) {
    int64_t change = imax(r->iv[SIM_CHANGED_S], r->iv[DEVICE_CHANGED_S]);
    if (!change) return;      /* a number that never changed keeps the tail at zero */
    int t = NUMBER_L.tail_at;
    int cells = (int)r->iv[t + CHG_CELLS];
    int mask = cells & 15;
    int rmask = (int)(r->iv[t + CHG_RCPT_LO] | (r->iv[t + CHG_RCPT_HI] << 8));
    if (cell_pos != -2) mask = slots(mask, cell_pos, 15);
    if (rcpt_pos != -2) rmask = slots(rmask, rcpt_pos, 0xFFFF);
    if (change > before_change && (!before_change || change - before_change > CHANGE_MERGE_S)) {
        r->iv[t + CHG_NEW_OUT] = r->iv[t + CHG_KNOWN_OUT] = r->iv[t + CHG_CODES] = r->iv[t + CHG_LINKS] = 0;
        mask = occupied(r, N_CELL_AT, CELL_CAP) & (cell_pos == -1 ? ~1 : 15);
        rmask = occupied(r, N_RCPT_AT, RCPT_CAP) & (rcpt_pos == -1 ? ~1 : 0xFFFF);
        cells = (mask ? CHG_HAD_CELLS : 0) | (rmask ? CHG_HAD_RCPTS : 0);
    }
    if (cell_pos == -1) cells |= CHG_SAW_NEW;
    else if (cell_pos >= 0 && (mask & 1)) cells |= CHG_SAW_OLD;
    r->iv[t + CHG_CELLS] = (cells & ~15) | mask;
    r->iv[t + CHG_RCPT_LO] = rmask & 255;
    r->iv[t + CHG_RCPT_HI] = rmask >> 8;
    if (rcpt_pos == -1) {
        bump(r, t + CHG_NEW_OUT);
        if (link) bump(r, t + CHG_LINKS);
    } else if (rcpt_pos >= 0 && (rmask & 1)) {
        bump(r, t + CHG_KNOWN_OUT);
    }
    if (code) bump(r, t + CHG_CODES);
}

/* tac: None/not all-ASCII-digits → nothing; 1..9 ASCII digits → its value; else unusual */
static int apply_tac(rec_t *r, PyObject *tac) {
    if (tac == Py_None) return 0;
    if (!PyUnicode_Check(tac)) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(tac);
    if (n == 0) return 0;
    int kind = PyUnicode_KIND(tac);
    const void *data = PyUnicode_DATA(tac);
    if (n > 9) return -1;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < '0' || c > '9') return c < 128 ? 0 : -1;   /* "12a": str.isdigit() is False */
        v = v * 10 + (int64_t)(c - '0');
    }
    r->iv[TAC] = v;
    return 0;
}

#define FAIL do { rc = -1; goto done; } while (0)

static int has_url(PyObject *view) {
    PyObject *sms = attr(view, S_sms);
    if (!sms) return -1;
    int rc = 0;
    if (sms != Py_None) {
        PyObject *u = attr(sms, S_has_url);
        if (!u) rc = -1;
        else { rc = PyObject_IsTrue(u); Py_DECREF(u); if (rc < 0) { PyErr_Clear(); rc = -1; } }
    }
    Py_DECREF(sms);
    return rc;
}

/* features.apply_line: a call-forwarding or subscription lifecycle change of a number's line */
static int apply_line(rec_t *r, PyObject *view, int64_t t_s) {
    int64_t bits = r->iv[EVICTED];
    PyObject *fwd = attr(view, S_forwarding);
    if (!fwd) return -1;
    if (fwd != Py_None) {
        PyObject *action = attr(fwd, S_action), *kind = action ? attr(fwd, S_kind) : NULL;
        Py_DECREF(fwd);
        if (!action || !kind) { Py_XDECREF(action); Py_XDECREF(kind); return -1; }
        int64_t bit = str_is(kind, "unconditional") ? FWD_UNCONDITIONAL : str_is(kind, "busy") ? FWD_BUSY
                      : str_is(kind, "no_answer") ? FWD_NO_ANSWER : str_is(kind, "not_reachable") ? FWD_NOT_REACHABLE : 0;
        if (str_is(action, "set")) bits |= bit;
        else if (str_is(action, "cleared")) bits &= ~bit;
        Py_DECREF(action); Py_DECREF(kind);
        r->iv[EVICTED] = bits;
        return 0;
    }
    Py_DECREF(fwd);
    PyObject *sub = attr(view, S_subscription);
    if (!sub) return -1;
    if (sub == Py_None) { Py_DECREF(sub); return 0; }
    PyObject *change = attr(sub, S_change);
    Py_DECREF(sub);
    if (!change) return -1;
    int64_t line = bits & LINE_MASK;
    if (str_is(change, "new")) {
        r->iv[ACTIVATED_S] = imax(r->iv[ACTIVATED_S], t_s);
        line = line == LINE_CEASED ? LINE_RECYCLED : (line ? line : LINE_ACTIVE);
    } else if (str_is(change, "ported_in")) {
        r->iv[SIM_CHANGED_S] = imax(r->iv[SIM_CHANGED_S], t_s);
        r->iv[ACTIVATED_S] = imax(r->iv[ACTIVATED_S], t_s);
        line = LINE_ACTIVE;
    } else if (str_is(change, "ceased") || str_is(change, "ported_out")) {
        line = LINE_CEASED;
        bits &= ~(int64_t)FORWARDING_MASK;
    }
    Py_DECREF(change);
    r->iv[EVICTED] = (bits & ~(int64_t)LINE_MASK) | line;
    return 0;
}

static int apply_number(rec_t *r, PyObject *view, int64_t t_ms, int night, double short_call_s, PyObject *a2p) {
    int rc = 0;
    double w[3];
    PyObject *role = NULL, *type = NULL, *peer = NULL, *cell = NULL, *tac = NULL, *device = NULL, *sub = NULL;
    start(r, t_ms);
    /* from the number's latest event before this one; a late event's own predecessor is not
       known, so it is judged by the 5-minute count alone (0), as in features.apply_number */
    int64_t gap_ms = t_ms - r->iv[LAST_MS];
    if (gap_ms < 0) gap_ms = 0;
    int64_t before_s = floor_s(r->iv[LAST_MS]);
    advance(r, CNT(N_COUNTERS), t_ms, w);
    int64_t t_s = t_ms / 1000;
    int64_t before_change = imax(r->iv[SIM_CHANGED_S], r->iv[DEVICE_CHANGED_S]);
    int rcpt_pos = -2, link = 0, code = 0, cell_pos = -2;
    if (!(role = attr(view, S_role)) || !(type = attr(view, S_type)) || !(peer = attr(view, S_peer))) FAIL;
    int is_out = str_is(role, "out"), is_in = !is_out && str_is(role, "in");
    if (is_out) {
        if (str_is(type, "sms")) {
            /* the 5-minute count at this SMS's time, before it (features.apply_number) */
            /* w[0] is 0 for a view ~62 h before the base (exp underflows): the count is then
               +inf (something stored) or NaN (nothing), as features._at_time mirrors */
            if (r->dv[CNT(N_SMS_OUT)] / w[0] >= BURST_PRIOR && gap_ms <= RUN_GAP_MS) add(r, CNT(N_BURST), w);
            add(r, CNT(N_SMS_OUT), w);
            int u = has_url(view);
            if (u < 0) FAIL;
            if (u) { add(r, CNT(N_URL), w); link = 1; }
        } else {
            add(r, CNT(N_CALL_OUT), w);
            PyObject *call = attr(view, S_call);
            if (!call) FAIL;
            if (call != Py_None) {
                PyObject *ans = attr(call, S_answered), *dur = ans ? attr(call, S_duration_s) : NULL;
                int answered = ans ? PyObject_IsTrue(ans) : -1;
                double d = dur ? PyFloat_AsDouble(dur) : -1.0;
                int bad = !ans || !dur || answered < 0 || (d == -1.0 && PyErr_Occurred())
                          || !(PyFloat_Check(dur) || PyLong_Check(dur));
                Py_XDECREF(ans); Py_XDECREF(dur); Py_DECREF(call);
                if (bad) { PyErr_Clear(); FAIL; }
                if (!answered) add(r, CNT(N_UNANS), w);
                else if (d < short_call_s) add(r, CNT(N_SHORT), w);
            } else {
                Py_DECREF(call);
            }
        }
        if (night) add(r, CNT(N_NIGHT), w);
        if (peer != Py_None) {
            uint64_t fp;
            if (fingerprint(peer, 8, &fp) < 0) FAIL;
            rcpt_pos = position(r, N_RCPT_AT, RCPT_CAP, fp);
        }
        if (recipient(r, peer, N_RCPT_AT, N_SKETCH_AT, CNT(N_NEW_RCPT), w) < 0) FAIL;
    } else if (is_in) {
        if (str_is(type, "sms")) {
            add(r, CNT(N_SMS_IN), w);
            PyObject *kind = attr(view, S_peer_kind);
            if (!kind) FAIL;
            int a2p_sender = str_is(kind, "alphanumeric") || str_is(kind, "short_code");
            Py_DECREF(kind);
            if (!a2p_sender) {
                a2p_sender = PySet_Contains(a2p, peer);
                if (a2p_sender < 0) { PyErr_Clear(); FAIL; }
            }
            if (a2p_sender) add(r, CNT(N_A2P), w);
            if (peer != Py_None && PySet_GET_SIZE(CODE_SENDERS)) {
                code = PySet_Contains(CODE_SENDERS, peer);
                if (code < 0) { PyErr_Clear(); FAIL; }
            }
        } else {
            add(r, CNT(N_CALL_IN), w);
        }
        if (reply(r, peer, N_RCPT_AT, CNT(N_REPLY), w) < 0) FAIL;
    } else {
        PyObject *sim = attr(view, S_sim);
        if (!sim) FAIL;
        if (sim != Py_None) {
            PyObject *change = attr(sim, S_change);
            Py_DECREF(sim);
            if (!change) FAIL;
            if (str_is(change, "swap") || str_is(change, "port_in"))
                r->iv[SIM_CHANGED_S] = imax(r->iv[SIM_CHANGED_S], t_s);
            else if (str_is(change, "activation"))
                r->iv[ACTIVATED_S] = imax(r->iv[ACTIVATED_S], t_s);
            else if (str_is(change, "device_change"))
                r->iv[DEVICE_CHANGED_S] = imax(r->iv[DEVICE_CHANGED_S], t_s);
            Py_DECREF(change);
        } else {
            Py_DECREF(sim);
            if (apply_line(r, view, t_s) < 0) FAIL;
        }
    }
    if (!(cell = attr(view, S_cell))) FAIL;
    if (cell != Py_None) {
        uint64_t fp;
        if (fingerprint(cell, 8, &fp) < 0) FAIL;
        cell_pos = position(r, N_CELL_AT, CELL_CAP, fp);
        if (remember(r, N_CELL_AT, CELL_CAP, fp)) add(r, CNT(N_NEW_CELL), w);
    }
    if (!(sub = attr(view, S_subscriber))) FAIL;
    int subscriber = PyObject_IsTrue(sub);
    if (subscriber < 0) { PyErr_Clear(); FAIL; }
    if (subscriber) r->iv[EVICTED] |= ON_NET;
    if (!(device = attr(view, S_device))) FAIL;
    if (device != Py_None && t_ms >= r->iv[LAST_MS]) {
        uint64_t fp;
        if (fingerprint(device, 16, &fp) < 0) FAIL;
        uint64_t known = (uint64_t)r->iv[DEVICE_FP];
        if (known && known != fp && !str_is(role, "change"))
            r->iv[DEVICE_CHANGED_S] = imax(r->iv[DEVICE_CHANGED_S], t_s);
        r->iv[DEVICE_FP] = (int64_t)fp;
    }
    if (!(tac = attr(view, S_tac))) FAIL;
    if (apply_tac(r, tac) < 0) FAIL;
    int64_t watermark_s = floor_s(r->iv[LAST_MS]);
    link_runs_forget(r, before_s, watermark_s);
    if (link && rcpt_pos == -1) link_run(r, t_s, watermark_s);
    change_tail(r, before_change, rcpt_pos, link, code, cell_pos);
done:
    Py_XDECREF(role); Py_XDECREF(type); Py_XDECREF(peer); Py_XDECREF(cell); Py_XDECREF(tac);
    Py_XDECREF(device); Py_XDECREF(sub);
    return rc;
}

static int remember_attr(rec_t *r, PyObject *view, PyObject *name, int at, int cap, const double w[3],
                         int counter) {
    PyObject *v = attr(view, name);
    if (!v) return -1;
    int rc = 0;
    if (v != Py_None) {
        uint64_t fp;
        if (fingerprint(v, 8, &fp) < 0) rc = -1;
        else if (remember(r, at, cap, fp)) add(r, counter, w);
    }
    Py_DECREF(v);
    return rc;
}

static int apply_device(rec_t *r, PyObject *view, int64_t t_ms, PyObject *a2p) {
    int rc = 0;
    double w[3];
    PyObject *role = NULL, *type = NULL, *peer = NULL, *tac = NULL;
    start(r, t_ms);
    advance(r, CNT(D_COUNTERS), t_ms, w);
    if (!r->iv[DEVICE_FP]) {
        PyObject *entity = attr(view, S_entity);
        uint64_t fp;
        int bad = fingerprint(entity, 16, &fp) < 0;
        Py_XDECREF(entity);
        if (bad) FAIL;
        r->iv[DEVICE_FP] = (int64_t)fp;
    }
    if (!(role = attr(view, S_role)) || !(type = attr(view, S_type)) || !(peer = attr(view, S_peer))) FAIL;
    if (str_is(role, "in")) {
        if (str_is(type, "sms") && peer != Py_None) {
            int hit = PySet_Contains(a2p, peer);
            if (hit < 0) { PyErr_Clear(); FAIL; }
            if (hit) add(r, CNT(D_A2P), w);
        }
        if (reply(r, peer, D_RCPT_AT, CNT(D_REPLY), w) < 0) FAIL;
    } else if (str_is(role, "out")) {
        add(r, CNT(D_OUT), w);
        if (str_is(type, "call")) {
            add(r, CNT(D_CALL), w);
        } else {
            int u = has_url(view);
            if (u < 0) FAIL;
            if (u) add(r, CNT(D_URL), w);
        }
        if (recipient(r, peer, D_RCPT_AT, D_SKETCH_AT, CNT(D_NEW_RCPT), w) < 0) FAIL;
    } else if (str_is(role, "change")) {
        add(r, CNT(D_CHANGE), w);
    }
    /* a SIM of the device coming back after another was used: features.apply_device */
    PyObject *imsi = attr(view, S_imsi);
    if (!imsi) FAIL;
    if (imsi != Py_None) {
        uint64_t fp;
        int bad = fingerprint(imsi, 8, &fp) < 0;
        if (!bad && (uint64_t)r->iv[D_IMSI_AT] != fp && known(r, D_IMSI_AT, IDS_CAP, fp)) add(r, CNT(D_IMSI_BACK), w);
        if (!bad && remember(r, D_IMSI_AT, IDS_CAP, fp)) add(r, CNT(D_NEW_IMSI), w);
        Py_DECREF(imsi);
        if (bad) FAIL;
    } else {
        Py_DECREF(imsi);
    }
    if (remember_attr(r, view, S_number, D_NUMBER_AT, IDS_CAP, w, CNT(D_NEW_NUMBER)) < 0
        || remember_attr(r, view, S_cell, D_CELL_AT, CELL_CAP, w, CNT(D_NEW_CELL)) < 0) FAIL;
    if (!(tac = attr(view, S_tac))) FAIL;
    if (apply_tac(r, tac) < 0) FAIL;
done:
    Py_XDECREF(role); Py_XDECREF(type); Py_XDECREF(peer); Py_XDECREF(tac);
    return rc;
}

static double out_activity(const rec_t *r, int is_number) {
    double gap = (double)(r->iv[LAST_MS] - r->iv[BASE_MS]);
    double f1 = exp(-gap / TAU_1H);
    if (is_number)
        return (r->dv[CNT(N_SMS_OUT) + 1] + r->dv[CNT(N_CALL_OUT) + 1] + r->dv[CNT(N_NEW_RCPT) + 1]) * f1;
    double f24 = exp(-gap / TAU_24H);
    double a = r->dv[CNT(D_NEW_IMSI) + 2] * f24 - 1.0, b = r->dv[CNT(D_NEW_NUMBER) + 2] * f24 - 1.0;
    double extra = (a > 0.0 ? a : 0.0) + (b > 0.0 ? b : 0.0);
    return r->dv[CNT(D_OUT) + 1] * f1 + 4.0 * extra;
}

/* ---- features (derived.number_features / device_features) ---------------------------------- */

static const double Z95 = 1.959963984540054;

static double share(double part, double whole) { return part / (whole + 2.0); }

static double share_lower_bound(double part, double whole) {
    if (whole <= 0.0) return 0.0;
    double p = part / whole;
    if (0.0 > p) p = 0.0;
    if (1.0 < p) p = 1.0;
    double z2 = Z95 * Z95;
    double centre = p + z2 / (2.0 * whole);
    double spread = Z95 * sqrt(p * (1.0 - p) / whole + z2 / (4.0 * whole * whole));
    double x = (centre - spread) / (1.0 + z2 / whole);
    return x > 0.0 ? x : 0.0;
}

static double recency(int64_t now_s, int64_t then_s, double scale_s) {
    if (!then_s || then_s > now_s + 60) return 0.0;
    return exp((double)(-(now_s - then_s)) / scale_s);
}

static double set_size(const rec_t *r, int at, int cap) {
    int n = 0;
    for (int k = 0; k < cap; k++) n += r->iv[at + k] != 0;
    return (double)n;
}

static double sketch_estimate(const rec_t *r, int at) {
    int ones = 0;
    for (int k = 0; k < SKETCH_WORDS; k++) ones += __builtin_popcountll((unsigned long long)r->iv[at + k]);
    int zeros = 256 - ones;
    if (zeros == 0) zeros = 1;
    return -256.0 * log((double)zeros / 256.0);
}

enum {
    /* numbers */
    K_SMS_OUT_5M, K_SMS_OUT_1H, K_SMS_OUT_24H, K_CALL_OUT_5M, K_CALL_OUT_1H, K_CALL_OUT_24H, K_NEW_RCPT_5M,
    K_NEW_RCPT_1H, K_NEW_RCPT_24H, K_NEW_RCPT_SHARE_1H, K_NEW_RCPT_SHARE_24H, K_DISTINCT_RCPT, K_URL_SHARE_1H,
    K_URL_SHARE_24H, K_URL_SHARE_LB_24H, K_URL_SMS_1H, K_URL_SMS_24H, K_OUT_IN_RATIO_24H, K_NIGHT_SHARE_24H,
    K_NEW_CELLS_24H, K_SHORT_CALL_SHARE_1H, K_UNANS_SHARE_1H, K_UNANS_1H, K_A2P_IN_5M, K_A2P_IN_1H, K_A2P_IN_24H,
    K_URL_SMS_5M, K_UNANS_5M, K_UNANS_24H, K_OBSERVED_H, K_SIM_CHANGE_RECENCY, K_DEVICE_CHANGE_RECENCY,
    K_SIM_NEWNESS, K_OFF_NET, K_ONE_WAY_24H, K_STRANGER_24H, K_NEW_CONTACTS_CHG, K_LINK_CONTACTS_CHG, K_CODES_CHG,
    K_NEW_AREA_CHG, K_CONTACTS_QUIET_CHG, K_TAKEOVER_EVIDENCE, K_FORWARDING_NEAR_CHG, K_RECYCLED_RECENT,
    K_PACED_24H, K_NEW_CONTACT_RATE_CHG, K_LINK_RUNS_24H, K_HISTORY_AT_CHG, K_STRANGERS_PER_RUN,
    N_NUMBER_FEATURES,
    /* devices */
    K_OUT_5M = N_NUMBER_FEATURES, K_OUT_1H, K_OUT_24H, K_NEW_IMSIS_5M, K_NEW_IMSIS_1H, K_NEW_IMSIS_24H,
    K_NEW_NUMBERS_5M, K_NEW_NUMBERS_1H, K_NEW_NUMBERS_24H, K_D_NEW_RCPT_5M, K_D_URL_SMS_5M, K_D_URL_SMS_1H,
    K_CALLS_OUT_5M, K_D_URL_SHARE_1H, K_D_URL_SHARE_24H, K_D_NEW_RCPT_SHARE_24H, K_D_A2P_IN_5M, K_D_A2P_IN_1H,
    K_D_OBSERVED_H, K_DISTINCT_IMSIS, K_DISTINCT_NUMBERS, K_D_NEW_CELLS_24H, K_D_NEW_RCPT_1H, K_D_NEW_RCPT_24H,
    K_D_DISTINCT_RCPT, K_CHANGES_24H, K_D_URL_SMS_24H, K_CALLS_OUT_1H, K_CALLS_OUT_24H, K_D_A2P_IN_24H, K_D_ONE_WAY_24H,
    K_D_STRANGER_24H, K_D_URL_SHARE_LB_24H, K_NO_SIM_RETURN_24H, N_KEYS
};
static const char *KEY_TEXT[N_KEYS] = {
    "sms_out_5m", "sms_out_1h", "sms_out_24h", "call_out_5m", "call_out_1h", "call_out_24h", "new_recipients_5m",
    "new_recipients_1h", "new_recipients_24h", "new_recipient_share_1h", "new_recipient_share_24h",
    "distinct_recipients", "url_share_1h", "url_share_24h", "url_share_lb_24h", "url_sms_1h", "url_sms_24h",
    "out_in_ratio_24h", "night_share_24h", "new_cells_24h", "short_call_share_1h", "unanswered_share_1h",
    "unanswered_1h", "a2p_in_5m", "a2p_in_1h", "a2p_in_24h", "url_sms_5m", "unanswered_5m", "unanswered_24h",
    "observed_h", "sim_change_recency", "device_change_recency", "sim_newness", "off_net", "one_way_share_24h",
    "stranger_share_24h", "new_contacts_since_change", "link_contacts_since_change", "codes_since_change",
    "new_area_since_change", "contacts_quiet_since_change", "takeover_evidence", "forwarding_near_change",
    "recycled_recent", "paced_share_24h", "new_contact_rate_since_change", "link_runs_24h", "history_at_change_h",
    "strangers_per_link_run_24h",
    "out_5m", "out_1h", "out_24h", "new_imsis_5m", "new_imsis_1h", "new_imsis_24h", "new_numbers_5m",
    "new_numbers_1h", "new_numbers_24h", "new_recipients_5m", "url_sms_5m", "url_sms_1h", "calls_out_5m",
    "url_share_1h", "url_share_24h", "new_recipient_share_24h", "a2p_in_5m", "a2p_in_1h", "observed_h",
    "distinct_imsis", "distinct_numbers", "new_cells_24h", "new_recipients_1h", "new_recipients_24h",
    "distinct_recipients", "changes_24h", "url_sms_24h", "calls_out_1h", "calls_out_24h", "a2p_in_24h",
    "one_way_share_24h", "stranger_share_24h", "url_share_lb_24h", "no_sim_return_24h",
};
static PyObject *KEYS[N_KEYS];

/* 1 - replies per message sent (two pseudo-messages): derived._one_way */
static double one_way(double replies, double out) {
    double q = replies / (out + 2.0);
    return 1.0 - (q < 1.0 ? q : 1.0);
}

/* contacts that were not returning recipients, two pseudo-contacts new: derived._strangers */
static double strangers(double fresh, double out) {
    double q = (fresh + 2.0) / (out + 2.0);
    return q < 1.0 ? q : 1.0;
}

static PyObject *features(const rec_t *r, int is_number) {
    /* current(): the counters as plain decayed counts at the watermark */
    double v[MAXF];
    int end = is_number ? CNT(N_COUNTERS) : CNT(D_COUNTERS);
    int64_t gap = r->iv[LAST_MS] - r->iv[BASE_MS];
    for (int i = HEADER_LEN; i < end; i++) v[i] = r->dv[i];
    if (gap && r->iv[BASE_MS]) {
        double g = (double)(-gap);
        double f[3] = {exp(g / TAU_5M), exp(g / TAU_1H), exp(g / TAU_24H)};
        for (int i = HEADER_LEN; i < end; i++) v[i] = v[i] * f[(i - HEADER_LEN) % 3];
    }
    int64_t now_s = r->iv[LAST_MS] / 1000;
    int evicted = (int)(r->iv[EVICTED] & 1);
    double observed = r->iv[FIRST_S] ? (double)(now_s - r->iv[FIRST_S]) / 3600.0 : 0.0;
    double x[N_KEYS];
    int first, last;
#define C(k, w) v[CNT(k) + (w)]
    if (is_number) {
        first = 0, last = N_NUMBER_FEATURES;
        double out_1h = C(N_SMS_OUT, 1) + C(N_CALL_OUT, 1), out_24h = C(N_SMS_OUT, 2) + C(N_CALL_OUT, 2);
        double in_24h = C(N_SMS_IN, 2) + C(N_CALL_IN, 2);
        x[K_SMS_OUT_5M] = C(N_SMS_OUT, 0); x[K_SMS_OUT_1H] = C(N_SMS_OUT, 1); x[K_SMS_OUT_24H] = C(N_SMS_OUT, 2);
        x[K_CALL_OUT_5M] = C(N_CALL_OUT, 0); x[K_CALL_OUT_1H] = C(N_CALL_OUT, 1); x[K_CALL_OUT_24H] = C(N_CALL_OUT, 2);
        x[K_NEW_RCPT_5M] = C(N_NEW_RCPT, 0); x[K_NEW_RCPT_1H] = C(N_NEW_RCPT, 1);
        x[K_NEW_RCPT_24H] = C(N_NEW_RCPT, 2);
        x[K_NEW_RCPT_SHARE_1H] = share(C(N_NEW_RCPT, 1), out_1h);
        x[K_NEW_RCPT_SHARE_24H] = share(C(N_NEW_RCPT, 2), out_24h);
        x[K_DISTINCT_RCPT] = evicted ? sketch_estimate(r, N_SKETCH_AT) : set_size(r, N_RCPT_AT, RCPT_CAP);
        x[K_URL_SHARE_1H] = share(C(N_URL, 1), C(N_SMS_OUT, 1));
        x[K_URL_SHARE_24H] = share(C(N_URL, 2), C(N_SMS_OUT, 2));
        x[K_URL_SHARE_LB_24H] = share_lower_bound(C(N_URL, 2), C(N_SMS_OUT, 2));
        x[K_URL_SMS_1H] = C(N_URL, 1); x[K_URL_SMS_24H] = C(N_URL, 2);
        x[K_OUT_IN_RATIO_24H] = (out_24h + 1.0) / (in_24h + 1.0);
        x[K_NIGHT_SHARE_24H] = share(C(N_NIGHT, 2), out_24h);
        x[K_NEW_CELLS_24H] = C(N_NEW_CELL, 2);
        x[K_SHORT_CALL_SHARE_1H] = share(C(N_SHORT, 1), C(N_CALL_OUT, 1));
        x[K_UNANS_SHARE_1H] = share(C(N_UNANS, 1), C(N_CALL_OUT, 1));
        x[K_UNANS_1H] = C(N_UNANS, 1);
        x[K_A2P_IN_5M] = C(N_A2P, 0); x[K_A2P_IN_1H] = C(N_A2P, 1); x[K_A2P_IN_24H] = C(N_A2P, 2);
        x[K_URL_SMS_5M] = C(N_URL, 0); x[K_UNANS_5M] = C(N_UNANS, 0); x[K_UNANS_24H] = C(N_UNANS, 2);
        x[K_OBSERVED_H] = observed;
        x[K_SIM_CHANGE_RECENCY] = recency(now_s, r->iv[SIM_CHANGED_S], 86400.0);
        x[K_DEVICE_CHANGE_RECENCY] = recency(now_s, r->iv[DEVICE_CHANGED_S], 86400.0);
        x[K_SIM_NEWNESS] = recency(now_s, r->iv[ACTIVATED_S], 7 * 86400.0);
        x[K_OFF_NET] = (r->iv[EVICTED] & ON_NET) ? 0.0 : 1.0;
        x[K_ONE_WAY_24H] = one_way(C(N_REPLY, 2), out_24h);
        x[K_STRANGER_24H] = strangers(C(N_NEW_RCPT, 2), out_24h);
        /* the change tail (derived._since_change, _new_area, _contacts_quiet, _takeover_evidence) */
        int t = NUMBER_L.tail_at;
        int64_t change = imax(r->iv[SIM_CHANGED_S], r->iv[DEVICE_CHANGED_S]);
        int since = change && now_s - change >= -60 && now_s - change <= CHANGE_WINDOW_S;
        int cells = (int)r->iv[t + CHG_CELLS];
        double area = since && (cells & CHG_HAD_CELLS) && (cells & CHG_SAW_NEW) && !(cells & CHG_SAW_OLD) ? 1.0 : 0.0;
        double quiet = since && (cells & CHG_HAD_RCPTS) && r->iv[t + CHG_NEW_OUT] >= 1 && r->iv[t + CHG_KNOWN_OUT] == 0
                       ? 1.0 : 0.0;
        x[K_NEW_CONTACTS_CHG] = since ? (double)r->iv[t + CHG_NEW_OUT] : 0.0;
        x[K_LINK_CONTACTS_CHG] = since ? (double)r->iv[t + CHG_LINKS] : 0.0;
        x[K_CODES_CHG] = since ? (double)r->iv[t + CHG_CODES] : 0.0;
        x[K_NEW_AREA_CHG] = area;
        x[K_CONTACTS_QUIET_CHG] = quiet;
        if (since) {
            int64_t sim = r->iv[SIM_CHANGED_S], dev = r->iv[DEVICE_CHANGED_S];
            double sim_recent = sim && now_s - sim >= -60 && now_s - sim <= CHANGE_WINDOW_S ? 1.0 : 0.0;
            double dev_recent = dev && now_s - dev >= -60 && now_s - dev <= CHANGE_WINDOW_S ? 1.0 : 0.0;
            x[K_TAKEOVER_EVIDENCE] = sim_recent + dev_recent + area + (r->iv[t + CHG_CODES] >= 1 ? 1.0 : 0.0) + quiet;
        } else {
            x[K_TAKEOVER_EVIDENCE] = 0.0;
        }
        /* derived._forwarding_near_change, _recycled_recent */
        x[K_FORWARDING_NEAR_CHG] = since && (r->iv[EVICTED] & FWD_UNCONDITIONAL) ? 1.0 : 0.0;
        int64_t activated = r->iv[ACTIVATED_S];
        x[K_RECYCLED_RECENT] = (r->iv[EVICTED] & LINE_MASK) == LINE_RECYCLED && activated
                               && now_s - activated >= -60 && now_s - activated <= CHANGE_WINDOW_S ? 1.0 : 0.0;
        /* derived._paced */
        double bq = C(N_BURST, 2) / (C(N_SMS_OUT, 2) + 2.0);
        x[K_PACED_24H] = 1.0 - (bq < 1.0 ? bq : 1.0);
        /* derived._new_contact_rate: new contacts since the change per hour since it (+1 pseudo-hour) */
        x[K_NEW_CONTACT_RATE_CHG] = since
            ? (double)r->iv[t + CHG_NEW_OUT] / ((double)(now_s > change ? now_s - change : 0) / 3600.0 + 1.0) : 0.0;
        /* derived._link_runs: the runs decayed to the watermark; 0 a week after the latest */
        int64_t runs_packed = r->iv[t + LINK_RUNS];
        int64_t runs_gap = (now_s - runs_packed) & LINK_RUN_TIME_MASK;
        x[K_LINK_RUNS_24H] = runs_gap > LINK_RUN_FORGET_S ? 0.0
            : (double)((runs_packed >> 24) & 255) / LINK_RUN_ONE * exp(-(double)runs_gap / LINK_RUN_TAU_S);
        /* derived._history_at_change: hours the number had been observed when its latest change came */
        int64_t first_s = r->iv[FIRST_S];
        x[K_HISTORY_AT_CHG] = since && first_s && change > first_s ? (double)(change - first_s) / 3600.0 : 0.0;
        /* derived._strangers_per_link_run: the day's never-contacted recipients per run of links (at least one) */
        x[K_STRANGERS_PER_RUN] = x[K_NEW_RCPT_24H] / (x[K_LINK_RUNS_24H] > 1.0 ? x[K_LINK_RUNS_24H] : 1.0);
    } else {
        first = N_NUMBER_FEATURES, last = N_KEYS;
        /* the day's SMS: originated events less calls, never below 0 (a damaged stored record) */
        double device_sms = C(D_OUT, 2) - C(D_CALL, 2);
        if (device_sms < 0.0) device_sms = 0.0;
        x[K_OUT_5M] = C(D_OUT, 0); x[K_OUT_1H] = C(D_OUT, 1); x[K_OUT_24H] = C(D_OUT, 2);
        x[K_NEW_IMSIS_5M] = C(D_NEW_IMSI, 0); x[K_NEW_IMSIS_1H] = C(D_NEW_IMSI, 1);
        x[K_NEW_IMSIS_24H] = C(D_NEW_IMSI, 2);
        x[K_NEW_NUMBERS_5M] = C(D_NEW_NUMBER, 0); x[K_NEW_NUMBERS_1H] = C(D_NEW_NUMBER, 1);
        x[K_NEW_NUMBERS_24H] = C(D_NEW_NUMBER, 2);
        x[K_D_NEW_RCPT_5M] = C(D_NEW_RCPT, 0);
        x[K_D_URL_SMS_5M] = C(D_URL, 0); x[K_D_URL_SMS_1H] = C(D_URL, 1); x[K_CALLS_OUT_5M] = C(D_CALL, 0);
        x[K_D_URL_SHARE_1H] = share(C(D_URL, 1), C(D_OUT, 1));
        x[K_D_URL_SHARE_24H] = share(C(D_URL, 2), device_sms);
        x[K_D_NEW_RCPT_SHARE_24H] = share(C(D_NEW_RCPT, 2), C(D_OUT, 2));
        x[K_D_A2P_IN_5M] = C(D_A2P, 0); x[K_D_A2P_IN_1H] = C(D_A2P, 1);
        x[K_D_OBSERVED_H] = observed;
        x[K_DISTINCT_IMSIS] = set_size(r, D_IMSI_AT, IDS_CAP);
        x[K_DISTINCT_NUMBERS] = set_size(r, D_NUMBER_AT, IDS_CAP);
        x[K_D_NEW_CELLS_24H] = C(D_NEW_CELL, 2);
        x[K_D_NEW_RCPT_1H] = C(D_NEW_RCPT, 1); x[K_D_NEW_RCPT_24H] = C(D_NEW_RCPT, 2);
        x[K_D_DISTINCT_RCPT] = evicted ? sketch_estimate(r, D_SKETCH_AT) : set_size(r, D_RCPT_AT, RCPT_CAP);
        x[K_CHANGES_24H] = C(D_CHANGE, 2);
        x[K_D_URL_SMS_24H] = C(D_URL, 2); x[K_CALLS_OUT_1H] = C(D_CALL, 1); x[K_CALLS_OUT_24H] = C(D_CALL, 2);
        x[K_D_A2P_IN_24H] = C(D_A2P, 2);
        x[K_D_ONE_WAY_24H] = one_way(C(D_REPLY, 2), C(D_OUT, 2));
        x[K_D_STRANGER_24H] = strangers(C(D_NEW_RCPT, 2), C(D_OUT, 2));
        x[K_D_URL_SHARE_LB_24H] = share_lower_bound(C(D_URL, 2), device_sms);
        x[K_NO_SIM_RETURN_24H] = 1.0 / (1.0 + C(D_IMSI_BACK, 2));
    }
#undef C
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    for (int k = first; k < last; k++) {
        PyObject *f = PyFloat_FromDouble(x[k]);
        if (!f || PyDict_SetItem(out, KEYS[k], f) < 0) { Py_XDECREF(f); Py_DECREF(out); return NULL; }
        Py_DECREF(f);
    }
    return out;
}

/* apply(is_number, packed, view, offset, night, short_call_s, a2p_allow, min_activity, modem_tacs,
 *       protected[, code_senders]) — see the top of this file */
static PyObject *apply(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 10 && nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "apply() takes 10 or 11 arguments");
        return NULL;
    }
    static PyObject *no_codes = NULL;
    if (!no_codes && !(no_codes = PyFrozenSet_New(NULL))) return NULL;
    CODE_SENDERS = nargs == 11 ? args[10] : no_codes;
    if (!PyAnySet_Check(CODE_SENDERS)) {
        PyErr_SetString(PyExc_TypeError, "code_senders must be a set");
        return NULL;
    }
    int is_number = PyObject_IsTrue(args[0]);
    PyObject *packed = args[1], *view = args[2], *offset_o = args[3];
    int night = PyObject_IsTrue(args[4]);
    double short_call_s = PyFloat_AsDouble(args[5]);
    PyObject *a2p = args[6];
    double min_activity = PyFloat_AsDouble(args[7]);
    PyObject *modem_tacs = args[8];
    int protected_ = PyObject_IsTrue(args[9]);
    if (is_number < 0 || night < 0 || protected_ < 0 || PyErr_Occurred()) return NULL;
    if (!PyAnySet_Check(a2p) || !PyAnySet_Check(modem_tacs)) {
        PyErr_SetString(PyExc_TypeError, "a2p_allow and modem_tacs must be sets");
        return NULL;
    }
    const layout_t *l = is_number ? &NUMBER_L : &DEVICE_L;
    rec_t r;
    if (packed == Py_None) {
        empty(&r);
    } else {
        if (!PyBytes_Check(packed) || PyBytes_GET_SIZE(packed) != l->size) Py_RETURN_NONE;
        unpack(l, (const unsigned char *)PyBytes_AS_STRING(packed), &r);
    }
    int has_offset = offset_o != Py_None;
    int64_t offset = 0;
    if (has_offset) {
        if (!PyLong_Check(offset_o)) Py_RETURN_NONE;
        int overflow = 0;
        offset = PyLong_AsLongLongAndOverflow(offset_o, &overflow);
        if (overflow || (offset == -1 && PyErr_Occurred())) { PyErr_Clear(); Py_RETURN_NONE; }
        if (offset <= r.iv[OFFSET]) return Py_BuildValue("(iL)", 0, (long long)r.iv[RISK_SCORE]);
    }
    PyObject *t_o = attr(view, S_occurred_ms);
    if (!t_o) Py_RETURN_NONE;
    int overflow = 0;
    int64_t t_ms = PyLong_Check(t_o) ? PyLong_AsLongLongAndOverflow(t_o, &overflow) : -1;
    Py_DECREF(t_o);
    if (overflow || t_ms < 0 || t_ms > 4294967295000LL) { PyErr_Clear(); Py_RETURN_NONE; }
    int64_t before_sim = r.iv[SIM_CHANGED_S], before_device = r.iv[DEVICE_CHANGED_S];
    int64_t before_activated = r.iv[ACTIVATED_S], before_line = r.iv[EVICTED] & LINE_STATE_MASK;
    int rc = is_number ? apply_number(&r, view, t_ms, night, short_call_s, a2p) : apply_device(&r, view, t_ms, a2p);
    if (rc < 0) { PyErr_Clear(); Py_RETURN_NONE; }
    if (has_offset) r.iv[OFFSET] = offset;
    if (fits(l, &r) < 0) Py_RETURN_NONE;
    int64_t now_ms = r.iv[LAST_MS], now_s = now_ms / 1000;
    /* an activation is a change too: it is the latest SIM change and first device association */
    int changed = r.iv[SIM_CHANGED_S] != before_sim || r.iv[DEVICE_CHANGED_S] != before_device
                  || r.iv[ACTIVATED_S] != before_activated;
    /* a forwarding or lifecycle change of the line is one as well (and never takes the quiet path) */
    int line_changed = (r.iv[EVICTED] & LINE_STATE_MASK) != before_line;
    changed = changed || line_changed;
    double activity = out_activity(&r, is_number);
    int modem = 0;
    if (PySet_GET_SIZE(modem_tacs)) {
        PyObject *t = PyLong_FromLongLong(r.iv[TAC]);
        if (!t) return NULL;
        modem = PySet_Contains(modem_tacs, t);
        Py_DECREF(t);
        if (modem < 0) return NULL;
    }
    int64_t changed_s = imax(imax(r.iv[SIM_CHANGED_S], r.iv[DEVICE_CHANGED_S]), r.iv[ACTIVATED_S]);
    if (activity < min_activity && !modem && !r.iv[RISK_LEVEL] && !r.iv[FLAG_EXPIRES_S]
        && now_s - changed_s > 86400 && !protected_ && !line_changed) {
        PyObject *out = pack(l, &r);
        if (!out) return NULL;
        return Py_BuildValue("(iNL)", 1, out, (long long)now_ms);
    }
    PyObject *values = to_list(l, &r);
    if (!values) return NULL;
    PyObject *feats = features(&r, is_number);
    if (!feats) { Py_DECREF(values); return NULL; }
    return Py_BuildValue("(iNOdON)", 2, values, changed ? Py_True : Py_False, activity,
                         modem ? Py_True : Py_False, feats);
}

/* scan(is_number, records, idle_before_ms, horizon_s) — features.scan_records: the sweep's one
 * pass over a table, (idle keys, expired keys) in the dict's order; None (the Python then scans)
 * when a value is not a record of the layout's size or a bound is not a 64-bit int. Reads three
 * fields at fixed offsets. */
static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 4 arguments");
        return NULL;
    }
    int is_number = PyObject_IsTrue(args[0]);
    PyObject *records = args[1];
    if (is_number < 0) return NULL;
    if (!PyDict_Check(records) || !PyLong_Check(args[2]) || !PyLong_Check(args[3])) Py_RETURN_NONE;
    int overflow_a = 0, overflow_b = 0;
    long long idle_before_ms = PyLong_AsLongLongAndOverflow(args[2], &overflow_a);
    long long horizon_s = PyLong_AsLongLongAndOverflow(args[3], &overflow_b);
    if (overflow_a || overflow_b || PyErr_Occurred()) {     /* beyond 64 bits: the Python compares exactly */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const layout_t *l = is_number ? &NUMBER_L : &DEVICE_L;
    const Py_ssize_t last_at = l->off[LAST_MS], flag_at = l->off[FLAG_EXPIRES_S];
    const Py_ssize_t link_at = l->off[l->link_at + LINK_EXPIRES_S];
    PyObject *idle = PyList_New(0), *expired = PyList_New(0);
    if (!idle || !expired) goto fail;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(records, &pos, &key, &value)) {
        if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) != l->size) {
            Py_DECREF(idle);
            Py_DECREF(expired);
            Py_RETURN_NONE;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(value);
        int64_t last_ms;
        uint32_t flag, link;
        memcpy(&last_ms, p + last_at, 8);
        memcpy(&flag, p + flag_at, 4);
        memcpy(&link, p + link_at, 4);
        PyObject *into = NULL;
        if (last_ms < idle_before_ms) into = idle;
        else if ((flag > 0 && (long long)flag < horizon_s) || (is_number && link > 0 && (long long)link < horizon_s))
            into = expired;
        if (into && PyList_Append(into, key) < 0) goto fail;
    }
    return Py_BuildValue("(NN)", idle, expired);
fail:
    Py_XDECREF(idle);
    Py_XDECREF(expired);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(is_number, records, idle_before_ms, horizon_s): features.scan_records, compiled"},
    {"apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL,
     "apply(is_number, packed, view, offset, night, short_call_s, a2p_allow, min_activity, modem_tacs, "
     "protected[, code_senders]): features.apply_view, compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastcore",
                                    "The scorer's per-view record update, compiled (see features.apply_view).",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastcore(void) {
    static const int number_sets[] = {RCPT_CAP, CELL_CAP};
    static const int device_sets[] = {RCPT_CAP, IDS_CAP, IDS_CAP, CELL_CAP};
    if (build_layout(&NUMBER_L, N_COUNTERS, number_sets, 2, CHANGE_TAIL) < 0
        || build_layout(&DEVICE_L, D_COUNTERS, device_sets, 4, "") < 0) {
        PyErr_SetString(PyExc_ImportError, "record layout too large");
        return NULL;
    }
#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL
    INTERN(S_occurred_ms, "occurred_ms"); INTERN(S_role, "role"); INTERN(S_type, "type"); INTERN(S_sms, "sms");
    INTERN(S_has_url, "has_url"); INTERN(S_call, "call"); INTERN(S_answered, "answered");
    INTERN(S_duration_s, "duration_s"); INTERN(S_peer, "peer"); INTERN(S_peer_kind, "peer_kind");
    INTERN(S_sim, "sim"); INTERN(S_change, "change"); INTERN(S_cell, "cell"); INTERN(S_subscriber, "subscriber");
    INTERN(S_device, "device"); INTERN(S_tac, "tac"); INTERN(S_entity, "entity"); INTERN(S_imsi, "imsi");
    INTERN(S_number, "number"); INTERN(S_forwarding, "forwarding"); INTERN(S_subscription, "subscription");
    INTERN(S_action, "action"); INTERN(S_kind, "kind");
    for (int k = 0; k < N_KEYS; k++) INTERN(KEYS[k], KEY_TEXT[k]);
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    /* what features.py checks before using this module */
    PyObject *sig = Py_BuildValue(
        "{s:(s,(sssssssssssss),i,i,i),s:(s,(sssssssssss),i,i,i,i,i)}",
        "number", NUMBER_L.fmt, "sms_out", "sms_in", "call_out", "call_in", "url_out", "new_rcpt", "night_out",
        "short_call", "unanswered", "new_cell", "a2p_in", "reply_in", "burst_sms", N_RCPT_AT, N_CELL_AT, N_SKETCH_AT,
        "device", DEVICE_L.fmt, "out", "new_imsi", "new_number", "new_cell", "new_rcpt", "change", "url_out",
        "call_out", "a2p_in", "reply_in", "imsi_back", D_RCPT_AT, D_IMSI_AT, D_NUMBER_AT, D_CELL_AT, D_SKETCH_AT);
    if (!sig || PyModule_AddObject(m, "LAYOUT_SIGNATURE", sig) < 0) { Py_XDECREF(sig); Py_DECREF(m); return NULL; }
    /* the feature names computed here, in order: features.FEATURE_SIGNATURE (the catalogue's) */
    PyObject *numbers = PyTuple_New(N_NUMBER_FEATURES), *devices = PyTuple_New(N_KEYS - N_NUMBER_FEATURES);
    if (!numbers || !devices) { Py_XDECREF(numbers); Py_XDECREF(devices); Py_DECREF(m); return NULL; }
    for (int k = 0; k < N_KEYS; k++) {
        Py_INCREF(KEYS[k]);
        if (k < N_NUMBER_FEATURES) PyTuple_SET_ITEM(numbers, k, KEYS[k]);
        else PyTuple_SET_ITEM(devices, k - N_NUMBER_FEATURES, KEYS[k]);
    }
    PyObject *names = Py_BuildValue("{s:N,s:N}", "number", numbers, "device", devices);
    if (!names || PyModule_AddObject(m, "FEATURE_SIGNATURE", names) < 0) { Py_XDECREF(names); Py_DECREF(m); return NULL; }
    return m;
}
