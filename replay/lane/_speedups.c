/* The replay's compiled hot path (issue 3): the max-speed loop over a block of recorded lines.
 *
 * `run(state, block, pos, budget)` does for the common records exactly what
 * `ReplayServer._process` does in Python, and stops at the first record it is not sure about,
 * which the Python path then handles: a disconnect, a snapshot, a message not in Binance's exact
 * layout, anything JSON it does not fully validate, a depth diff that is not the plain "continues
 * the synced book" case, a trade that a resting order or a due ticker push cares about, a rebase
 * it cannot do digit for digit. It never does half a record: every check comes before the first
 * side effect. The Python path is the reference; tests/unit/replay/lane/test_fast_lane.py holds
 * the two to byte-identical output.
 *
 * Everything it reads and writes besides the block is in one object, the lane's `LaneState`
 * (replay/lane/state.py, which documents each field): the owners of that state (the feed, the
 * market, the derived streams, the matching engine, the server's clock) hand it over there, and
 * this file knows no other class. The fields are read once per run.
 *
 * `frame_batch()` frames queued payloads as unmasked RFC 6455 text frames in one buffer.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---- run() results -------------------------------------------------------------------------- */

enum { STOP_BUDGET = 0, STOP_END = 1, STOP_SLOW = 2, STOP_CROWDED = 3, STOP_NOT_DUE = 4,
       STOP_ERROR = 5 };

/* ---- a strict reader for the flat JSON objects Binance sends -------------------------------- */

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

#define MAX_LEVELS 4096

typedef struct {
    int kind; /* 1 trade, 2 depth */
    int64_t E, T, t, U, u;
    int m;
    span s, p, q;
    unsigned seen;
    double *levels[2]; /* bids, asks: price, qty pairs */
    Py_ssize_t nlevels[2];
} parsed;

enum { K_E = 1, K_s = 2, K_t = 4, K_p = 8, K_q = 16, K_T = 32, K_m = 64, K_U = 128, K_u = 256,
       K_b = 512, K_a = 1024 };

static int
parse_string(const char **cur, const char *end, span *out)
{
    const char *c = *cur;
    if (c >= end || *c != '"')
        return -1;
    c++;
    const char *start = c;
    while (c < end && *c != '"') {
        unsigned char ch = (unsigned char)*c;
        if (ch == '\\' || ch < 0x20 || ch >= 0x80)
            return -1; /* escapes and non-ASCII: the Python path decides */
        c++;
    }
    if (c >= end)
        return -1;
    out->p = start;
    out->n = c - start;
    *cur = c + 1;
    return 0;
}

/* A JSON integer that msgspec decodes to the same int: no sign, no leading zero, <= 18 digits. */
static int
parse_uint(const char **cur, const char *end, int64_t *out)
{
    const char *c = *cur;
    int64_t v = 0;
    int digits = 0;
    while (c < end && *c >= '0' && *c <= '9') {
        if (++digits > 18)
            return -1; /* before the multiplication: 19 digits may not fit */
        v = v * 10 + (*c - '0');
        c++;
    }
    if (digits == 0 || (digits > 1 && **cur == '0'))
        return -1;
    if (c < end && (*c == '.' || *c == 'e' || *c == 'E'))
        return -1;
    *out = v;
    *cur = c;
    return 0;
}

/* Powers of ten that are exact doubles (up to 1e22). */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* float(s) for the strings Python's float() reads the same way (no spaces, no underscores).
   Binance's "61837.88000000" takes the exact path: with at most 15 digits the digits form an
   exact double, and so does 10^k for k <= 22, so one IEEE division is the correctly rounded
   value, the same double strtod gives. Anything else goes through CPython's own strtod. */
static int
to_double(span s, double *out)
{
    char buf[64];
    if (s.n <= 0 || s.n >= (Py_ssize_t)sizeof(buf))
        return -1;
    int64_t mantissa = 0;
    int digits = 0, fraction = -1, plain = 1;
    for (Py_ssize_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (ch >= '0' && ch <= '9') {
            mantissa = mantissa * 10 + (ch - '0');
            if (++digits > 15)
                plain = 0;
            if (fraction >= 0)
                fraction++;
        }
        else if (ch == '.' && fraction < 0)
            fraction = 0;
        else if (ch == '.' || ch == 'e' || ch == 'E' || ch == '+' || ch == '-')
            plain = 0;
        else
            return -1;
        if (!plain)
            break;
    }
    if (plain && digits > 0 && fraction <= 22) {
        *out = fraction > 0 ? (double)mantissa / POW10[fraction] : (double)mantissa;
        return 0;
    }
    for (Py_ssize_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == 'e' || ch == 'E' || ch == '+' ||
              ch == '-'))
            return -1;
    }
    memcpy(buf, s.p, s.n);
    buf[s.n] = 0;
    char *stop = NULL;
    double v = PyOS_string_to_double(buf, &stop, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (stop != buf + s.n)
        return -1;
    *out = v;
    return 0;
}

/* [["price","qty"],...] into pairs of doubles (tuple[str, str] per level, as msgspec wants). */
static int
parse_levels(const char **cur, const char *end, double **out, Py_ssize_t *count)
{
    const char *c = *cur;
    if (c >= end || *c != '[')
        return -1;
    c++;
    Py_ssize_t n = 0, cap = 0;
    double *levels = NULL;
    if (c < end && *c == ']') {
        *cur = c + 1;
        *out = NULL;
        *count = 0;
        return 0;
    }
    for (;;) {
        span price, qty;
        if (c >= end || *c != '[')
            goto fail;
        c++;
        if (parse_string(&c, end, &price) || c >= end || *c != ',')
            goto fail;
        c++;
        if (parse_string(&c, end, &qty) || c >= end || *c != ']')
            goto fail;
        c++;
        if (n == cap) {
            if (cap >= MAX_LEVELS)
                goto fail;
            cap = cap ? cap * 2 : 32;
            double *grown = PyMem_Realloc(levels, sizeof(double) * 2 * cap);
            if (grown == NULL)
                goto fail;
            levels = grown;
        }
        if (to_double(price, &levels[2 * n]) || to_double(qty, &levels[2 * n + 1]))
            goto fail;
        n++;
        if (c < end && *c == ',') {
            c++;
            continue;
        }
        if (c < end && *c == ']') {
            c++;
            break;
        }
        goto fail;
    }
    *cur = c;
    *out = levels;
    *count = n;
    return 0;
fail:
    PyMem_Free(levels);
    return -1;
}

static void
parsed_free(parsed *r)
{
    PyMem_Free(r->levels[0]);
    PyMem_Free(r->levels[1]);
    r->levels[0] = r->levels[1] = NULL;
}

static int
set_int(parsed *r, unsigned bit, int64_t *field, const char **c, const char *end)
{
    if (r->seen & bit)
        return -1; /* a repeated key: the Python path decides */
    r->seen |= bit;
    return parse_uint(c, end, field);
}

static int
set_str(parsed *r, unsigned bit, span *field, const char **c, const char *end)
{
    if (r->seen & bit)
        return -1;
    r->seen |= bit;
    return parse_string(c, end, field);
}

/* Any other value of a flat object: a string, an integer, true, false or null. */
static int
skip_value(const char **cur, const char *end)
{
    const char *c = *cur;
    span ignored;
    int64_t number;
    if (c >= end)
        return -1;
    if (*c == '"')
        return parse_string(cur, end, &ignored);
    if (*c >= '0' && *c <= '9')
        return parse_uint(cur, end, &number);
    if (end - c >= 4 && (memcmp(c, "true", 4) == 0 || memcmp(c, "null", 4) == 0)) {
        *cur = c + 4;
        return 0;
    }
    if (end - c >= 5 && memcmp(c, "false", 5) == 0) {
        *cur = c + 5;
        return 0;
    }
    return -1;
}

/* The data object of a trade (kind 1) or a depth diff (kind 2). 0 when every field the Python
   path reads was found, with the types msgspec requires. */
static int
parse_data(const char *data, Py_ssize_t n, int kind, parsed *r)
{
    const char *c = data, *end = data + n;
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    if (n < 2 || *c != '{' || end[-1] != '}')
        return -1;
    c++;
    for (;;) {
        span key;
        if (parse_string(&c, end, &key) || c >= end || *c != ':')
            return -1;
        c++;
        int rc;
        char k = key.n == 1 ? key.p[0] : 0;
        if (k == 'E')
            rc = set_int(r, K_E, &r->E, &c, end);
        else if (k == 's')
            rc = set_str(r, K_s, &r->s, &c, end);
        else if (kind == 1 && k == 't')
            rc = set_int(r, K_t, &r->t, &c, end);
        else if (kind == 1 && k == 'p')
            rc = set_str(r, K_p, &r->p, &c, end);
        else if (kind == 1 && k == 'q')
            rc = set_str(r, K_q, &r->q, &c, end);
        else if (kind == 1 && k == 'T')
            rc = set_int(r, K_T, &r->T, &c, end);
        else if (kind == 1 && k == 'm') {
            if (r->seen & K_m)
                return -1;
            r->seen |= K_m;
            if (end - c >= 4 && memcmp(c, "true", 4) == 0) {
                r->m = 1;
                c += 4;
                rc = 0;
            }
            else if (end - c >= 5 && memcmp(c, "false", 5) == 0) {
                r->m = 0;
                c += 5;
                rc = 0;
            }
            else
                rc = -1;
        }
        else if (kind == 2 && k == 'U')
            rc = set_int(r, K_U, &r->U, &c, end);
        else if (kind == 2 && k == 'u')
            rc = set_int(r, K_u, &r->u, &c, end);
        else if (kind == 2 && (k == 'b' || k == 'a')) {
            int side = k == 'a';
            unsigned bit = side ? K_a : K_b;
            if (r->seen & bit)
                return -1;
            r->seen |= bit;
            rc = parse_levels(&c, end, &r->levels[side], &r->nlevels[side]);
        }
        else
            rc = skip_value(&c, end);
        if (rc)
            return -1;
        if (c >= end)
            return -1;
        if (*c == ',') {
            c++;
            continue;
        }
        if (*c == '}' && c == end - 1)
            break;
        return -1;
    }
    unsigned need = kind == 1 ? (K_E | K_s | K_t | K_p | K_q | K_T | K_m)
                              : (K_E | K_s | K_U | K_u | K_b | K_a);
    return (r->seen & need) == need ? 0 : -1;
}

/* ---- the book: PriceLevels' sorted price list and price -> qty dict (replay/book.py) ------- */

static Py_ssize_t
bisect(PyObject *prices, double x, int right)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(prices);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        double v = PyFloat_AS_DOUBLE(PyList_GET_ITEM(prices, mid));
        if (right ? (x < v) : !(v < x))
            hi = mid; /* bisect_right: x < a[mid]; bisect_left: not a[mid] < x */
        else
            lo = mid + 1;
    }
    return lo;
}

/* PriceLevels.set(price, qty), on its own list and dict. */
static int
side_set(PyObject *prices, PyObject *qtys, double price, double qty)
{
    PyObject *key = PyFloat_FromDouble(price);
    if (key == NULL)
        return -1;
    int present = PyDict_Contains(qtys, key);
    int rc = 0;
    if (present < 0)
        rc = -1;
    else if (qty <= 0) {
        if (present) {
            if (PyDict_DelItem(qtys, key) < 0)
                rc = -1;
            else {
                Py_ssize_t i = bisect(prices, price, 0);
                rc = PyList_SetSlice(prices, i, i + 1, NULL);
            }
        }
    }
    else {
        if (!present) {
            Py_ssize_t i = bisect(prices, price, 1);
            rc = PyList_Insert(prices, i, key);
        }
        if (rc == 0) {
            PyObject *value = PyFloat_FromDouble(qty);
            rc = value == NULL ? -1 : PyDict_SetItem(qtys, key, value);
            Py_XDECREF(value);
        }
    }
    Py_DECREF(key);
    return rc;
}

/* Every price of the side a float, as PriceLevels keeps them (checked before the book is used). */
static int
all_floats(PyObject *prices)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(prices); i++)
        if (!PyFloat_CheckExact(PyList_GET_ITEM(prices, i)))
            return 0;
    return 1;
}

/* ---- run() -------------------------------------------------------------------------------- */

typedef struct {
    PyObject *subscribed;  /* dict: stream -> subscriber count */
    PyObject *clients;     /* list of (subscriptions set, combined bool, append, queue, half, max) */
    PyObject *quotes;      /* dict: symbol -> latest bookTicker data */
    PyObject *books;       /* dict: symbol -> (book, bid prices, bid qty, ask prices, ask qty) */
    PyObject *last_u;      /* dict: symbol -> last diff's final update id */
    PyObject *rolling;     /* dict: symbol -> derived statistics (add(), next_push_ms) */
    PyObject *busy;        /* set: trade symbols a resting order or the ticker push needs */
    int rebase;
    int have_map;          /* EventTimeMap: anchors and speed (0: max speed, a constant shift) */
    int64_t anchor_event_ms, anchor_wall_ms;
    double map_speed;
    int64_t last_ms;
    PyObject *on_crossed;  /* callable(symbol, update_id) */
    PyObject *symbols;     /* dict: stream -> symbol (a cache) */
} env_t;

static PyObject *str_add, *str_next_push_ms, *str_update_id;

/* LaneState's fields, in the order run() parses them (the "state" format below). */
static const char *const STATE_FIELDS[] = {"subscribed", "clients",  "quotes",     "books",
                                           "last_u",     "rolling",  "busy",       "rebase",
                                           "time_map",   "last_ms",  "on_crossed", "symbols",
                                           "pacing",     "recvs"};
#define N_STATE_FIELDS ((Py_ssize_t)(sizeof(STATE_FIELDS) / sizeof(STATE_FIELDS[0])))
static PyObject *state_names[N_STATE_FIELDS];

/* EventTimeMap.__call__: anchor + delta at max speed, anchor + round(delta / speed) when paced
   (Python's round() of a float is round-half-even, as nearbyint in the default rounding mode). */
static int64_t
map_time(env_t *env, int64_t event_ms)
{
    int64_t delta = event_ms - env->anchor_event_ms;
    if (env->map_speed <= 0)
        return env->anchor_wall_ms + delta;
    double scaled = nearbyint((double)delta / env->map_speed);
    if (!isfinite(scaled) || scaled > 1e16 || scaled < -1e16)
        return -1; /* no 13-digit time: the record is the Python path's */
    return env->anchor_wall_ms + (int64_t)scaled;
}

/* Python's rebase() for these keys when every mapped time has 13 digits, as recorded ones do:
   the same bytes at the same places. 1 done (*out set), 0 not ours (a mapped time would not have
   13 digits: the Python path), -1 error. */
static int
rebase(const char *data, Py_ssize_t n, const char *const *keys, int nkeys, env_t *env,
       int64_t *last_ms, PyObject **out)
{
    PyObject *copy = PyBytes_FromStringAndSize(data, n);
    if (copy == NULL)
        return -1;
    char *buf = PyBytes_AS_STRING(copy);
    int64_t last = *last_ms;
    for (int k = 0; k < nkeys; k++) {
        const char *key = keys[k];
        Py_ssize_t at = 0;
        while (at < n) {
            const char *hit = memmem(buf + at, n - at, key, 4);
            if (hit == NULL)
                break;
            Py_ssize_t digits = hit - buf + 4, stop = digits + 13;
            int ok = stop <= n;
            for (Py_ssize_t i = digits; ok && i < stop; i++)
                ok = buf[i] >= '0' && buf[i] <= '9';
            if (ok && stop < n && buf[stop] >= '0' && buf[stop] <= '9')
                ok = 0;
            if (ok) {
                int64_t v = 0;
                for (Py_ssize_t i = digits; i < stop; i++)
                    v = v * 10 + (buf[i] - '0');
                int64_t mapped = map_time(env, v);
                if (mapped < 1000000000000LL || mapped > 9999999999999LL) {
                    Py_DECREF(copy);
                    return 0;
                }
                for (Py_ssize_t i = stop - 1; i >= digits; i--) {
                    buf[i] = (char)('0' + mapped % 10);
                    mapped /= 10;
                }
                int64_t written = map_time(env, v);
                if (written > last)
                    last = written;
            }
            at = stop;
        }
    }
    *last_ms = last;
    *out = copy;
    return 1;
}

/* replay.stream_messages.combined(): {"stream":"<stream>","data":<data>} */
static PyObject *
combined(PyObject *stream, PyObject *data)
{
    Py_ssize_t name_n, data_n = PyBytes_GET_SIZE(data);
    const char *name = PyUnicode_AsUTF8AndSize(stream, &name_n);
    if (name == NULL)
        return NULL;
    static const char head[] = "{\"stream\":\"", mid[] = "\",\"data\":";
    Py_ssize_t h = sizeof(head) - 1, m = sizeof(mid) - 1;
    PyObject *out = PyBytes_FromStringAndSize(NULL, h + name_n + m + data_n + 1);
    if (out == NULL)
        return NULL;
    char *dst = PyBytes_AS_STRING(out);
    memcpy(dst, head, h);
    memcpy(dst + h, name, name_n);
    memcpy(dst + h + name_n, mid, m);
    memcpy(dst + h + name_n + m, PyBytes_AS_STRING(data), data_n);
    dst[h + name_n + m + data_n] = '}';
    return out;
}

static PyObject *
symbol_of(env_t *env, PyObject *stream, const char *name, Py_ssize_t n)
{
    PyObject *symbol = PyDict_GetItemWithError(env->symbols, stream);
    if (symbol != NULL || PyErr_Occurred())
        return symbol;
    char buf[256];
    Py_ssize_t len = 0;
    while (len < n && name[len] != '@' && len < (Py_ssize_t)sizeof(buf)) {
        char ch = name[len];
        buf[len++] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    if (len == (Py_ssize_t)sizeof(buf))
        return NULL;
    symbol = PyUnicode_FromStringAndSize(buf, len);
    if (symbol == NULL)
        return NULL;
    int rc = PyDict_SetItem(env->symbols, stream, symbol);
    Py_DECREF(symbol);
    return rc < 0 ? NULL : symbol; /* borrowed from the cache */
}

/* Whether the record can be delivered without going over any client's limit. */
static int
clients_have_room(env_t *env)
{
    Py_ssize_t n = PyList_GET_SIZE(env->clients);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(env->clients, i);
        Py_ssize_t queued = PyObject_Size(PyTuple_GET_ITEM(c, 3));
        if (queued < 0)
            return -1;
        if (queued >= PyLong_AsSsize_t(PyTuple_GET_ITEM(c, 5)))
            return 0;
    }
    return 1;
}

/* FeedServer.broadcast without faults. Returns 1 when a queue reached half its limit. */
static int
broadcast(env_t *env, PyObject *stream, PyObject *data, PyObject *wrapped_in)
{
    PyObject *wrapped = wrapped_in;
    Py_XINCREF(wrapped);
    int crowded = 0;
    Py_ssize_t n = PyList_GET_SIZE(env->clients);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(env->clients, i);
        int member = PySet_Contains(PyTuple_GET_ITEM(c, 0), stream);
        if (member < 0)
            goto error;
        if (!member)
            continue;
        PyObject *payload = data;
        if (PyTuple_GET_ITEM(c, 1) == Py_True) {
            if (wrapped == NULL) {
                wrapped = combined(stream, data);
                if (wrapped == NULL)
                    goto error;
            }
            payload = wrapped;
        }
        PyObject *res = PyObject_CallOneArg(PyTuple_GET_ITEM(c, 2), payload);
        if (res == NULL)
            goto error;
        Py_DECREF(res);
        Py_ssize_t queued = PyObject_Size(PyTuple_GET_ITEM(c, 3));
        if (queued < 0)
            goto error;
        if (queued >= PyLong_AsSsize_t(PyTuple_GET_ITEM(c, 4)))
            crowded = 1;
    }
    Py_XDECREF(wrapped);
    return crowded;
error:
    Py_XDECREF(wrapped);
    return -1;
}

static const char *const TRADE_KEYS[] = {"\"E\":", "\"T\":"};
static const char *const DEPTH_KEYS[] = {"\"E\":"};

/* One record. 1 done, 0 not ours (nothing was changed), -1 error. *crowded set on half queue. */
static int
process(env_t *env, const char *payload, Py_ssize_t n, int *crowded)
{
    static const char prefix[] = "{\"stream\":\"";
    const Py_ssize_t plen = sizeof(prefix) - 1;
    if (n < plen + 2 || memcmp(payload, prefix, plen) != 0 || payload[n - 1] != '}')
        return 0;
    const char *sep = memmem(payload + plen, n - plen, "\",\"data\":", 9);
    if (sep == NULL)
        return 0;
    const char *name = payload + plen;
    Py_ssize_t name_n = sep - name;
    for (Py_ssize_t i = 0; i < name_n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch >= 0x80)
            return 0;
    }
    const char *data = sep + 9;
    Py_ssize_t data_n = payload + n - 1 - data;
    int kind;
    if (name_n >= 6 && memcmp(name + name_n - 6, "@trade", 6) == 0)
        kind = 1;
    else if (name_n >= 11 && memcmp(name + name_n - 11, "@bookTicker", 11) == 0)
        kind = 3;
    else if (memmem(name, name_n, "@depth", 6) != NULL)
        kind = 2;
    else
        return 0;

    parsed r;
    memset(&r, 0, sizeof(r));
    if (kind != 3) {
        if (parse_data(data, data_n, kind, &r)) {
            parsed_free(&r);
            return 0;
        }
    }
    else if (data_n < 2 || data[0] != '{') {
        return 0; /* the Python path decodes nothing either, but says what it is */
    }

    int result = 0;
    PyObject *stream = NULL, *data_obj = NULL, *rebased = NULL, *wrapped = NULL;
    PyObject *trade_symbol = NULL, *book = NULL, *rolling = NULL, *symbol = NULL;
    double price = 0, qty = 0;
    stream = PyUnicode_DecodeASCII(name, name_n, NULL);
    if (stream == NULL)
        goto error;
    symbol = symbol_of(env, stream, name, name_n);
    if (symbol == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto not_ours;
    }
    Py_INCREF(symbol);
    int wanted = PyDict_Contains(env->subscribed, stream);
    if (wanted < 0)
        goto error;
    int room = clients_have_room(env);
    if (room < 0)
        goto error;
    if (!room)
        goto not_ours;
    int do_rebase = wanted && env->rebase && kind != 3;
    if (do_rebase && !env->have_map)
        goto not_ours;

    /* checks before any change */
    if (kind == 1) {
        trade_symbol = PyUnicode_DecodeASCII(r.s.p, r.s.n, NULL);
        if (trade_symbol == NULL)
            goto error;
        int busy = PySet_Contains(env->busy, trade_symbol);
        if (busy < 0)
            goto error;
        if (busy)
            goto not_ours;
        rolling = PyDict_GetItemWithError(env->rolling, trade_symbol);
        if (rolling == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto not_ours;
        }
        Py_INCREF(rolling); /* held across calls into Python code below */
        PyObject *next = PyObject_GetAttr(rolling, str_next_push_ms);
        if (next == NULL)
            goto error;
        int overflow = 0;
        long long due_at = PyLong_AsLongLongAndOverflow(next, &overflow);
        Py_DECREF(next);
        if (due_at == -1 && PyErr_Occurred())
            goto error;
        if (overflow)
            goto not_ours; /* set from a record only Python reads: the Python path compares */
        if (due_at <= r.E)
            goto not_ours; /* a ticker push is due: the Python path builds it */
        if (to_double(r.p, &price) || to_double(r.q, &qty))
            goto not_ours; /* float() reads what the strict reader does not, or fails */
    }
    else if (kind == 2) {
        book = PyDict_GetItemWithError(env->books, symbol);
        if (book == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto not_ours;
        }
        Py_INCREF(book);
        PyObject *id = PyObject_GetAttr(PyTuple_GET_ITEM(book, 0), str_update_id);
        if (id == NULL)
            goto error;
        int overflow = 0;
        long long update_id = PyLong_AsLongLongAndOverflow(id, &overflow);
        Py_DECREF(id);
        if (update_id == -1 && PyErr_Occurred())
            goto error;
        if (overflow || update_id < 0 || update_id >= LLONG_MAX - 1)
            goto not_ours;
        /* only the plain case: the diff continues the book (DiffDepthSync's APPLIED) */
        if (r.u <= update_id || r.U > update_id + 1)
            goto not_ours;
    }

    data_obj = PyBytes_FromStringAndSize(data, data_n);
    if (data_obj == NULL)
        goto error;
    int64_t last_ms = env->last_ms;
    if (do_rebase) {
        int rc = kind == 1 ? rebase(data, data_n, TRADE_KEYS, 2, env, &last_ms, &rebased)
                           : rebase(data, data_n, DEPTH_KEYS, 1, env, &last_ms, &rebased);
        if (rc < 0)
            goto error;
        if (rc == 0)
            goto not_ours;
    }

    /* from here on, the record is ours: the market first, then the subscribers */
    if (kind == 3) {
        if (PyDict_SetItem(env->quotes, symbol, data_obj) < 0)
            goto error;
    }
    else if (kind == 2) {
        PyObject *u = PyLong_FromLongLong(r.u);
        if (u == NULL)
            goto error;
        int rc = PyDict_SetItem(env->last_u, symbol, u);
        if (rc == 0) {
            for (int side = 0; side < 2 && rc == 0; side++) {
                PyObject *prices = PyTuple_GET_ITEM(book, 1 + 2 * side);
                PyObject *qtys = PyTuple_GET_ITEM(book, 2 + 2 * side);
                for (Py_ssize_t i = 0; i < r.nlevels[side] && rc == 0; i++)
                    rc = side_set(prices, qtys, r.levels[side][2 * i], r.levels[side][2 * i + 1]);
            }
        }
        if (rc == 0)
            rc = PyObject_SetAttr(PyTuple_GET_ITEM(book, 0), str_update_id, u);
        if (rc == 0) {
            PyObject *bids = PyTuple_GET_ITEM(book, 1), *asks = PyTuple_GET_ITEM(book, 3);
            Py_ssize_t nb = PyList_GET_SIZE(bids);
            if (nb && PyList_GET_SIZE(asks) &&
                PyFloat_AS_DOUBLE(PyList_GET_ITEM(bids, nb - 1)) >=
                    PyFloat_AS_DOUBLE(PyList_GET_ITEM(asks, 0))) {
                PyObject *res = PyObject_CallFunctionObjArgs(env->on_crossed, symbol, u, NULL);
                if (res == NULL)
                    rc = -1;
                Py_XDECREF(res);
                /* the book waits for a snapshot now: its next diffs are the Python path's */
                if (rc == 0)
                    rc = PyDict_DelItem(env->books, symbol);
            }
        }
        Py_DECREF(u);
        if (rc < 0)
            goto error;
    }

    if (wanted) {
        PyObject *served = rebased ? rebased : data_obj;
        if (!rebased) {
            wrapped = PyBytes_FromStringAndSize(payload, n);
            if (wrapped == NULL)
                goto error;
        }
        int c = broadcast(env, stream, served, wrapped);
        if (c < 0)
            goto error;
        *crowded = c;
        env->last_ms = last_ms;
    }

    if (kind == 1) {
        PyObject *args[5] = {rolling, NULL, NULL, NULL, NULL};
        args[1] = PyLong_FromLongLong(r.T);
        args[2] = PyFloat_FromDouble(price);
        args[3] = PyFloat_FromDouble(qty);
        args[4] = PyLong_FromLongLong(r.t);
        PyObject *res = NULL;
        if (args[1] && args[2] && args[3] && args[4])
            res = PyObject_VectorcallMethod(str_add, args,
                                            5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        for (int i = 1; i < 5; i++)
            Py_XDECREF(args[i]);
        if (res == NULL)
            goto error;
        Py_DECREF(res);
    }
    result = 1;
    goto done;
not_ours:
    result = 0;
    goto done;
error:
    result = -1;
done:
    parsed_free(&r);
    Py_XDECREF(stream);
    Py_XDECREF(data_obj);
    Py_XDECREF(rebased);
    Py_XDECREF(wrapped);
    Py_XDECREF(trade_symbol);
    Py_XDECREF(symbol);
    Py_XDECREF(book);
    Py_XDECREF(rolling);
    return result;
}

static PyObject *
speedups_run(PyObject *module, PyObject *args)
{
    Py_buffer block;
    Py_ssize_t pos, budget;
    env_t env;
    PyObject *state, *time_map, *pacing, *recvs;
    long long last_ms;
    if (!PyArg_ParseTuple(args, "Oy*nn:run", &state, &block, &pos, &budget))
        return NULL;
    /* the state's fields, held for the run (env borrows them from this tuple) */
    PyObject *fields = PyTuple_New(N_STATE_FIELDS);
    if (fields == NULL) {
        PyBuffer_Release(&block);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < N_STATE_FIELDS; i++) {
        PyObject *value = PyObject_GetAttr(state, state_names[i]);
        if (value == NULL)
            goto fail;
        PyTuple_SET_ITEM(fields, i, value);
    }
    if (!PyArg_ParseTuple(fields, "O!O!O!O!O!O!O!pOLOO!OO:LaneState", &PyDict_Type,
                          &env.subscribed, &PyList_Type, &env.clients, &PyDict_Type, &env.quotes,
                          &PyDict_Type, &env.books, &PyDict_Type, &env.last_u, &PyDict_Type,
                          &env.rolling, &PySet_Type, &env.busy, &env.rebase, &time_map, &last_ms,
                          &env.on_crossed, &PyDict_Type, &env.symbols, &pacing, &recvs))
        goto fail;
    env.last_ms = last_ms;
    env.have_map = time_map != Py_None;
    if (env.have_map &&
        !PyArg_ParseTuple(time_map, "LLd:time_map", &env.anchor_event_ms, &env.anchor_wall_ms,
                          &env.map_speed))
        goto fail;
    /* paced: only records due by now (Pacer.due_ns), each receive time appended to recvs */
    long long anchor_recv = 0, anchor_mono = 0, now = 0;
    double pace_speed = 0;
    int paced = pacing != Py_None;
    if (paced) {
        if (!PyArg_ParseTuple(pacing, "LLdL:pacing", &anchor_recv, &anchor_mono, &pace_speed,
                              &now))
            goto fail;
        if (pace_speed <= 0 || !PyList_Check(recvs)) {
            PyErr_SetString(PyExc_ValueError, "pacing needs a positive speed and a recvs list");
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(env.clients); i++) {
        PyObject *c = PyList_GET_ITEM(env.clients, i);
        if (!PyTuple_CheckExact(c) || PyTuple_GET_SIZE(c) != 6 ||
            !PyAnySet_Check(PyTuple_GET_ITEM(c, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(c, 4)) ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(c, 5))) {
            PyErr_SetString(PyExc_TypeError, "clients: (set, bool, append, queue, half, max)");
            goto fail;
        }
        if (PyLong_AsSsize_t(PyTuple_GET_ITEM(c, 4)) == -1 ||
            PyLong_AsSsize_t(PyTuple_GET_ITEM(c, 5)) == -1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "clients: queue limits must be >= 0");
            goto fail;
        }
    }
    /* once per run, not per diff: nothing but the lane changes a book while it runs, and it
       inserts only floats. A side holding anything else leaves its book to the Python path. */
    PyObject *key, *value, *unusable = NULL;
    Py_ssize_t at = 0;
    while (PyDict_Next(env.books, &at, &key, &value)) {
        if (!PyTuple_CheckExact(value) || PyTuple_GET_SIZE(value) != 5 ||
            !PyList_CheckExact(PyTuple_GET_ITEM(value, 1)) ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(value, 2)) ||
            !PyList_CheckExact(PyTuple_GET_ITEM(value, 3)) ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(value, 4))) {
            PyErr_SetString(PyExc_TypeError, "books: (book, list, dict, list, dict)");
            Py_XDECREF(unusable);
            goto fail;
        }
        if (!all_floats(PyTuple_GET_ITEM(value, 1)) || !all_floats(PyTuple_GET_ITEM(value, 3))) {
            if ((unusable == NULL && (unusable = PyList_New(0)) == NULL) ||
                PyList_Append(unusable, key) < 0) {
                Py_XDECREF(unusable);
                goto fail;
            }
        }
    }
    for (Py_ssize_t i = 0; unusable != NULL && i < PyList_GET_SIZE(unusable); i++) {
        if (PyDict_DelItem(env.books, PyList_GET_ITEM(unusable, i)) < 0) {
            Py_DECREF(unusable);
            goto fail;
        }
    }
    Py_XDECREF(unusable);
    const char *buf = block.buf;
    Py_ssize_t size = block.len;
    Py_ssize_t records = 0;
    long long last_recv = -1;
    int stop = STOP_END;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos outside the block");
        goto fail;
    }
    while (pos < size) {
        if (records >= budget) {
            stop = STOP_BUDGET;
            break;
        }
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', size - pos);
        if (nl == NULL) {
            stop = STOP_SLOW; /* a block ends with a newline; the Python path says what is wrong */
            break;
        }
        const char *end = nl;
        while (end > line && end[-1] == '\r')
            end--;
        /* "<recv_ns> <payload>": digits, one space, a payload */
        const char *c = line;
        unsigned long long recv = 0;
        int digits = 0;
        while (c < end && *c >= '0' && *c <= '9' && digits < 19) {
            recv = recv * 10 + (unsigned)(*c - '0');
            c++;
            digits++;
        }
        if (digits == 0 || c >= end || *c != ' ' || c + 1 >= end ||
            recv > (unsigned long long)LLONG_MAX) {
            stop = STOP_SLOW;
            break;
        }
        if (paced) {
            double offset = (double)((long long)recv - anchor_recv) / pace_speed;
            if (!isfinite(offset) || offset > 4e18 || offset < -4e18 ||
                anchor_mono + (long long)offset > now) {
                stop = STOP_NOT_DUE;
                break;
            }
        }
        int crowded = 0;
        int done = process(&env, c + 1, end - (c + 1), &crowded);
        if (done < 0) {
            stop = STOP_ERROR; /* the records before it are done: the caller accounts, raises */
            break;
        }
        if (done == 0) {
            stop = STOP_SLOW;
            break;
        }
        records++;
        last_recv = (long long)recv;
        if (paced) {
            PyObject *r = PyLong_FromLongLong(last_recv);
            int rc = r == NULL ? -1 : PyList_Append(recvs, r);
            Py_XDECREF(r);
            if (rc < 0) {
                stop = STOP_ERROR;
                pos = nl + 1 - buf;
                break;
            }
        }
        pos = nl + 1 - buf;
        if (crowded) {
            stop = STOP_CROWDED;
            break;
        }
    }
    PyBuffer_Release(&block);
    PyObject *error = Py_None;
    Py_INCREF(error);
    if (stop == STOP_ERROR) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL)
            PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        Py_SETREF(error, value);
    }
    PyObject *out = Py_BuildValue("nnLLiN", pos, records, last_recv, (long long)env.last_ms,
                                  stop, error);
    Py_DECREF(fields);
    return out;
fail:
    PyBuffer_Release(&block);
    Py_DECREF(fields);
    return NULL;
}

/* ---- frame_batch() ------------------------------------------------------------------------ */

static PyObject *
speedups_frame_batch(PyObject *module, PyObject *args)
{
    PyObject *popleft;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "On:frame_batch", &popleft, &count))
        return NULL;
    if (count <= 0)
        return PyBytes_FromStringAndSize(NULL, 0);
    PyObject **items = PyMem_Calloc(count, sizeof(PyObject *));
    if (items == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    Py_ssize_t total = 0, got = 0;
    for (; got < count; got++) {
        items[got] = PyObject_CallNoArgs(popleft);
        if (items[got] == NULL)
            goto done;
        if (!PyBytes_Check(items[got])) {
            PyErr_SetString(PyExc_TypeError, "queued payloads must be bytes");
            got++;
            goto done;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[got]);
        total += len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        *dst++ = 0x81;
        if (len < 126)
            *dst++ = (unsigned char)len;
        else if (len < 65536) {
            *dst++ = 126;
            *dst++ = (unsigned char)(len >> 8);
            *dst++ = (unsigned char)len;
        }
        else {
            *dst++ = 127;
            for (int shift = 56; shift >= 0; shift -= 8)
                *dst++ = (unsigned char)((uint64_t)len >> shift);
        }
        memcpy(dst, PyBytes_AS_STRING(items[i]), len);
        dst += len;
    }
done:
    for (Py_ssize_t i = 0; i < got; i++)
        Py_XDECREF(items[i]);
    PyMem_Free(items);
    return out;
}

static PyObject *
speedups_read_decimal(PyObject *module, PyObject *arg)
{
    char *text;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &text, &n) < 0)
        return NULL;
    span s = {text, n};
    double value;
    if (to_double(s, &value))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(value);
}

static PyMethodDef methods[] = {
    {"read_decimal", speedups_read_decimal, METH_O,
     "read_decimal(text) -> float | None: a price or quantity as the lane reads it (tests)"},
    {"run", speedups_run, METH_VARARGS,
     "run(state, block, pos, budget) -> (pos, records, last_recv_ns, last_ms, stop, error or None)"},
    {"frame_batch", speedups_frame_batch, METH_VARARGS,
     "frame_batch(popleft, count) -> bytes: count payloads as unmasked text frames"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "replay.lane._speedups",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_add = PyUnicode_InternFromString("add");
    str_next_push_ms = PyUnicode_InternFromString("next_push_ms");
    str_update_id = PyUnicode_InternFromString("update_id");
    if (!str_add || !str_next_push_ms || !str_update_id)
        return NULL;
    for (Py_ssize_t i = 0; i < N_STATE_FIELDS; i++) {
        state_names[i] = PyUnicode_InternFromString(STATE_FIELDS[i]);
        if (state_names[i] == NULL)
            return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "STOP_BUDGET", STOP_BUDGET) ||
        PyModule_AddIntConstant(m, "STOP_END", STOP_END) ||
        PyModule_AddIntConstant(m, "STOP_SLOW", STOP_SLOW) ||
        PyModule_AddIntConstant(m, "STOP_CROWDED", STOP_CROWDED) ||
        PyModule_AddIntConstant(m, "STOP_NOT_DUE", STOP_NOT_DUE) ||
        PyModule_AddIntConstant(m, "STOP_ERROR", STOP_ERROR)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
