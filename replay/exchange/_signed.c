/* The venue's signed requests in C: the accepting path of auth.verify (the parameters, the
   HMAC-SHA256 signature, the timestamp window) and of rest.new_order_args. Each function
   answers None wherever it is not sure: anything to percent-decode, a field outside the strict
   forms below, and every refusal. The Python definition then decides, so refusals keep their
   exact Binance errors and one definition stays the reference (property tests in
   tests/unit/replay/exchange/test_signed_fast_path.py hold these functions to it).

   Why: an order request cost the venue about twice what a ping costs, and these checks were
   the largest part of the difference that could leave the interpreter (docs/benchmarks.md,
   issue 4). The HMAC is computed with OpenSSL's SHA-256 from key states prepared once per
   secret (a `Key`): its EVP layer, which hashlib's HMAC objects go through, cost more per
   request than the hashing itself. Those low-level SHA-256 calls are deprecated in OpenSSL 3
   but kept, and they use the CPU's SHA instructions. */

#define _GNU_SOURCE /* memmem */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: see above */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

/* auth.MAX_PARAMS: more parameters than this are the definition's to refuse (-1101) */
#define MAX_PARAMS 64

static PyObject *key_signature, *key_timestamp, *key_recv_window, *key_symbol, *key_side, *key_type,
    *key_client_id, *key_resp_type, *key_quantity, *key_quote_qty, *key_price, *key_tif,
    *key_order_id, *key_orig_client_id;
static PyObject *out_symbol, *out_side, *out_order_type, *out_quantity, *out_quote_qty,
    *out_price, *out_tif, *out_client_id, *out_resp_type;

/* ---- the signed payload and its parameters ------------------------------------------------ */

/* auth.split_signature on [p, p+n): the span without its first `signature` parameter, as one or
   two pieces, and the signature's span (sig_n -1: none). */
typedef struct {
    const char *a;
    Py_ssize_t a_n;
    const char *b;
    Py_ssize_t b_n;
    const char *sig;
    Py_ssize_t sig_n;
} unsigned_t;

static void
split_signature(const char *p, Py_ssize_t n, unsigned_t *out)
{
    static const char key[] = "signature=";
    out->a = p;
    out->a_n = n;
    out->b = p;
    out->b_n = 0;
    out->sig = NULL;
    out->sig_n = -1;
    if (n == 0)
        return;
    Py_ssize_t at;
    if (n >= 10 && memcmp(p, key, 10) == 0)
        at = 0;
    else {
        const char *hit = memmem(p, n, "&signature=", 11);
        if (hit == NULL)
            return;
        at = hit - p + 1;
    }
    const char *amp = memchr(p + at, '&', n - at);
    if (amp == NULL) {
        out->a_n = at > 0 ? at - 1 : 0;
        out->sig = p + at + 10;
        out->sig_n = n - at - 10;
        return;
    }
    Py_ssize_t end = amp - p;
    out->a_n = at;
    out->b = p + end + 1;
    out->b_n = n - end - 1;
    out->sig = p + at + 10;
    out->sig_n = end - at - 10;
}

/* A str of [p, p+n): ASCII copied straight (most of a signed request), UTF-8 decoded. */
static PyObject *
text_of(const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return PyUnicode_DecodeUTF8(p, n, NULL);
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_DATA(text), p, (size_t)n);
    return text;
}

/* The parameters the venue reads, most frequent first. */
static PyObject **const known_names[] = {
    &key_symbol,    &key_timestamp,   &key_side,      &key_type,     &key_quantity,
    &key_price,     &key_tif,         &key_client_id, &key_resp_type, &key_recv_window,
    &key_quote_qty, &key_order_id,    &key_orig_client_id,
};

/* A parameter's name: the interned str for the names the venue reads (no new object, and its
   hash is known), else a new str. */
static PyObject *
name_of(const char *p, Py_ssize_t n)
{
    for (size_t i = 0; i < sizeof(known_names) / sizeof(known_names[0]); i++) {
        PyObject *known = *known_names[i];
        if (PyUnicode_GET_LENGTH(known) == n && memcmp(PyUnicode_DATA(known), p, (size_t)n) == 0) {
            Py_INCREF(known);
            return known;
        }
    }
    return text_of(p, n);
}

/* auth.parse_params for text with nothing to decode, into `params`. 0 read, 1 not ours (a name
   seen before, in this part or the query: the definition refuses the one and lets the query win
   the other), -1 error. */
static int
parse_into(PyObject *params, const char *p, Py_ssize_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p);
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', stop - p);
            const char *name_end = eq ? eq : stop;
            PyObject *name = name_of(p, name_end - p);
            PyObject *value = eq ? text_of(eq + 1, stop - eq - 1) : PyUnicode_New(0, 127);
            Py_ssize_t before = PyDict_GET_SIZE(params);
            int rc = (name && value) ? PyDict_SetItem(params, name, value) : -1;
            Py_XDECREF(name);
            Py_XDECREF(value);
            if (rc < 0)
                return -1;
            if (PyDict_GET_SIZE(params) == before)
                return 1;
        }
        p = stop + 1;
    }
    return 0;
}

/* A signed request read: the payload that was signed (query then body, each without its
   signature), the signature's span and where the query's part of the payload ends. */
typedef struct {
    char small[2048];
    char *joined;
    Py_ssize_t total;
    Py_ssize_t query_n;
    const char *sig;
    Py_ssize_t sig_n;
} signed_t;

/* 1 read, 0 not ours (something to decode, or text UTF-8 cannot hold), -1 error. */
static int
read_signed(PyObject *query_obj, PyObject *body_obj, signed_t *out)
{
    Py_ssize_t qn, bn;
    const char *q = PyUnicode_AsUTF8AndSize(query_obj, &qn);
    const char *b = q ? PyUnicode_AsUTF8AndSize(body_obj, &bn) : NULL;
    if (q == NULL || b == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear(); /* lone surrogates: the Python path */
        return 0;
    }
    if (memchr(q, '%', qn) || memchr(q, '+', qn) || memchr(b, '%', bn) || memchr(b, '+', bn))
        return 0;
    unsigned_t qs, bs;
    split_signature(q, qn, &qs);
    split_signature(b, bn, &bs);
    out->total = qs.a_n + qs.b_n + bs.a_n + bs.b_n;
    out->joined = out->total <= (Py_ssize_t)sizeof(out->small)
                      ? out->small
                      : PyMem_Malloc(out->total ? out->total : 1);
    if (out->joined == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0;
    memcpy(out->joined + at, qs.a, qs.a_n), at += qs.a_n;
    memcpy(out->joined + at, qs.b, qs.b_n), at += qs.b_n;
    out->query_n = at;
    memcpy(out->joined + at, bs.a, bs.a_n), at += bs.a_n;
    memcpy(out->joined + at, bs.b, bs.b_n);
    /* `query_sig or body_sig`: an empty signature counts as none */
    if (qs.sig_n > 0) {
        out->sig = qs.sig;
        out->sig_n = qs.sig_n;
    }
    else {
        out->sig = bs.sig;
        out->sig_n = bs.sig_n;
    }
    return 1;
}

static void
release_signed(signed_t *s)
{
    if (s->joined != s->small)
        PyMem_Free(s->joined);
}

/* The parameters of a signed request, or NULL: with an exception on error, without one when
   they are not ours (a repeated name, a second signature, more than MAX_PARAMS). */
static PyObject *
params_of(const signed_t *s)
{
    PyObject *params = PyDict_New();
    if (params == NULL)
        return NULL;
    int rc = parse_into(params, s->joined, s->query_n);
    if (rc == 0)
        rc = parse_into(params, s->joined + s->query_n, s->total - s->query_n);
    if (rc == 0 && PyDict_GET_SIZE(params) > MAX_PARAMS)
        rc = 1;
    if (rc == 0) {
        rc = PyDict_Contains(params, key_signature); /* a second signature in a part */
        rc = rc < 0 ? -1 : rc;
    }
    if (rc != 0) {
        Py_DECREF(params);
        return NULL;
    }
    return params;
}

/* The unsigned payload, the signature and the merged parameters of a signed request, as
   auth.signed_params_py computes them; None when a parameter needs percent-decoding. */
static PyObject *
signed_params(PyObject *module, PyObject *args)
{
    PyObject *query_obj, *body_obj;
    if (!PyArg_ParseTuple(args, "UU:signed_params", &query_obj, &body_obj))
        return NULL;
    signed_t s;
    int rc = read_signed(query_obj, body_obj, &s);
    if (rc <= 0) {
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *payload = PyUnicode_DecodeUTF8(s.joined, s.total, NULL);
    PyObject *params = payload ? params_of(&s) : NULL;
    PyObject *signature = NULL, *result = NULL;
    if (params == NULL) {
        if (!PyErr_Occurred()) {
            result = Py_None;
            Py_INCREF(result);
        }
        goto done;
    }
    if (s.sig_n >= 0)
        signature = PyUnicode_DecodeUTF8(s.sig, s.sig_n, NULL);
    else {
        signature = Py_None;
        Py_INCREF(signature);
    }
    if (signature != NULL)
        result = PyTuple_Pack(3, payload, signature, params);
done:
    release_signed(&s);
    Py_XDECREF(payload);
    Py_XDECREF(params);
    Py_XDECREF(signature);
    return result;
}

/* ---- accept(): auth.verify's accepting path --------------------------------------------- */

static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- Key: HMAC-SHA256 with its key states prepared (RFC 2104) -------------------------- */

typedef struct {
    PyObject_HEAD
    SHA256_CTX inner; /* after the key XOR ipad block */
    SHA256_CTX outer; /* after the key XOR opad block */
} Key;

static int
key_init(Key *self, PyObject *args, PyObject *kwds)
{
    Py_buffer secret;
    if (!PyArg_ParseTuple(args, "y*:Key", &secret))
        return -1;
    unsigned char block[SHA256_CBLOCK] = {0}, ipad[SHA256_CBLOCK], opad[SHA256_CBLOCK];
    if (secret.len > SHA256_CBLOCK) /* a long key is hashed first */
        SHA256(secret.buf, (size_t)secret.len, block);
    else
        memcpy(block, secret.buf, (size_t)secret.len);
    PyBuffer_Release(&secret);
    for (int i = 0; i < SHA256_CBLOCK; i++) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
    int ok = SHA256_Init(&self->inner) && SHA256_Update(&self->inner, ipad, sizeof(ipad)) &&
             SHA256_Init(&self->outer) && SHA256_Update(&self->outer, opad, sizeof(opad));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(ipad, sizeof(ipad));
    OPENSSL_cleanse(opad, sizeof(opad));
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        return -1;
    }
    return 0;
}

static void
key_dealloc(Key *self)
{
    OPENSSL_cleanse(&self->inner, sizeof(self->inner));
    OPENSSL_cleanse(&self->outer, sizeof(self->outer));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The MAC of [p, p+n) into out. 0 done, -1 OpenSSL failed. */
static int
key_mac(const Key *key, const char *p, Py_ssize_t n, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX ctx = key->inner;
    unsigned char inner[SHA256_DIGEST_LENGTH];
    int ok = SHA256_Update(&ctx, p, (size_t)n) && SHA256_Final(inner, &ctx);
    ctx = key->outer;
    ok = ok && SHA256_Update(&ctx, inner, sizeof(inner)) && SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
    return ok ? 0 : -1;
}

static PyObject *
key_mac_method(Key *self, PyObject *arg)
{
    Py_buffer message;
    if (PyObject_GetBuffer(arg, &message, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned char mac[SHA256_DIGEST_LENGTH];
    int rc = key_mac(self, message.buf, message.len, mac);
    PyBuffer_Release(&message);
    if (rc < 0) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)mac, sizeof(mac));
}

static PyMethodDef key_methods[] = {
    {"mac", (PyCFunction)key_mac_method, METH_O, "mac(message) -> the 32-byte HMAC-SHA256"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "replay.exchange._signed.Key",
    .tp_doc = "Key(secret: bytes): an HMAC-SHA256 key with its states prepared",
    .tp_basicsize = sizeof(Key),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)key_init,
    .tp_dealloc = (destructor)key_dealloc,
    .tp_methods = key_methods,
};

/* 1 when the signature is the HMAC of the payload (in hex, either case), 0 not, -1 error. */
static int
signature_matches(const Key *key, const signed_t *s)
{
    unsigned char supplied[SHA256_DIGEST_LENGTH], expected[SHA256_DIGEST_LENGTH];
    if (s->sig_n != 2 * SHA256_DIGEST_LENGTH)
        return 0;
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        int hi = hex_value((unsigned char)s->sig[2 * i]);
        int lo = hex_value((unsigned char)s->sig[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        supplied[i] = (unsigned char)(hi << 4 | lo);
    }
    if (key_mac(key, s->joined, s->total, expected) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        return -1;
    }
    return CRYPTO_memcmp(expected, supplied, sizeof(expected)) == 0;
}

/* A str of 1 to 18 ASCII digits (int64 holds it), as auth.ascii_digits and int() read it.
   1 read, 0 anything else, -1 error. */
static int
digits_of(PyObject *value, int64_t *out)
{
    if (!PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *p = (const char *)PyUnicode_DATA(value);
    if (n < 1 || n > 18)
        return 0;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* auth.check_timing's accepting path: 1 within the window, 0 not sure or refused, -1 error. */
static int
timing_ok(PyObject *params, int64_t now_ms)
{
    int64_t timestamp, recv_window = 5000;
    PyObject *raw = PyDict_GetItemWithError(params, key_timestamp);
    if (raw == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!digits_of(raw, &timestamp))
        return 0;
    raw = PyDict_GetItemWithError(params, key_recv_window);
    if (raw == NULL && PyErr_Occurred())
        return -1;
    if (raw != NULL && (!digits_of(raw, &recv_window) || recv_window > 60000))
        return 0;
    if (timestamp > now_ms + 1000)
        return 0;
    return now_ms - timestamp <= recv_window;
}

/* The parameters of a request whose signature and timestamp are good, as auth.verify returns
   them; None for anything else (the Python definition then finds the fault and words it). */
static PyObject *
accept(PyObject *module, PyObject *args)
{
    PyObject *query_obj, *body_obj;
    Key *key;
    long long now_ms;
    if (!PyArg_ParseTuple(args, "UUO!L:accept", &query_obj, &body_obj, &KeyType, &key, &now_ms))
        return NULL;
    signed_t s;
    int rc = read_signed(query_obj, body_obj, &s);
    if (rc <= 0) {
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *params = NULL;
    rc = signature_matches(key, &s);
    if (rc > 0) {
        params = params_of(&s);
        rc = params ? timing_ok(params, (int64_t)now_ms) : (PyErr_Occurred() ? -1 : 0);
    }
    release_signed(&s);
    if (rc > 0)
        return params;
    Py_XDECREF(params);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- order_args(): rest.new_order_args's accepting path --------------------------------- */

enum { ABSENT, TEXT, OTHER };

/* params[key], borrowed, when it is a str; *kind says ABSENT, TEXT or OTHER (not a str).
   NULL with an exception on error. */
static PyObject *
param(PyObject *params, PyObject *key, int *kind)
{
    PyObject *value = PyDict_GetItemWithError(params, key);
    if (value == NULL) {
        *kind = ABSENT;
        return NULL;
    }
    *kind = PyUnicode_Check(value) ? TEXT : OTHER;
    return *kind == TEXT ? value : NULL;
}

/* The ASCII upper case of an ASCII str, or NULL (no error) when it is not ASCII. */
static PyObject *
ascii_upper(PyObject *value)
{
    if (!PyUnicode_IS_ASCII(value))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *p = (const char *)PyUnicode_DATA(value);
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL)
        return NULL;
    char *q = (char *)PyUnicode_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++)
        q[i] = (p[i] >= 'a' && p[i] <= 'z') ? (char)(p[i] - 32) : p[i];
    return out;
}

/* Which of `choices` the ASCII upper case of `value` is, or -1 (a non-ASCII value too: str.upper
   maps some of those onto ASCII letters, and the Python definition judges them). */
static int
choice_of(PyObject *value, const char *const *choices, int count)
{
    if (!PyUnicode_IS_ASCII(value))
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *p = (const char *)PyUnicode_DATA(value);
    for (int c = 0; c < count; c++) {
        const char *choice = choices[c];
        if ((Py_ssize_t)strlen(choice) != n)
            continue;
        Py_ssize_t i = 0;
        while (i < n && ((p[i] >= 'a' && p[i] <= 'z') ? (char)(p[i] - 32) : p[i]) == choice[i])
            i++;
        if (i == n)
            return c;
    }
    return -1;
}

/* ^[0-9]{1,20}(\.[0-9]{1,20})?$ without the `$` that also takes a final newline. */
static int
is_plain_decimal(PyObject *value)
{
    if (!PyUnicode_IS_ASCII(value))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *p = (const char *)PyUnicode_DATA(value);
    Py_ssize_t i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i < 1 || i > 20)
        return 0;
    if (i == n)
        return 1;
    if (p[i] != '.')
        return 0;
    Py_ssize_t start = ++i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    return i == n && i - start >= 1 && i - start <= 20;
}

/* ^[a-zA-Z0-9-_]{1,36}$, again without the final newline `$` takes. */
static int
is_client_id(PyObject *value)
{
    if (!PyUnicode_IS_ASCII(value))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *p = (const char *)PyUnicode_DATA(value);
    if (n < 1 || n > 36)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static const char *const SIDES[] = {"BUY", "SELL"};
static const char *const TYPES[] = {"LIMIT", "MARKET", "LIMIT_MAKER"};
static const char *const RESP_TYPES[] = {"ACK", "RESULT", "FULL"};
static PyObject *side_names[2], *type_names[3], *resp_type_names[3];
enum { LIMIT, MARKET, LIMIT_MAKER };
enum { FULL = 2 };

/* A decimal parameter into *out (a new reference; None when absent or empty): 1 read, 0 not
   ours, -1 error. */
static int
decimal_param(PyObject *params, PyObject *key, PyObject *decimal, PyObject **out)
{
    int kind;
    PyObject *raw = param(params, key, &kind);
    if (raw == NULL && PyErr_Occurred())
        return -1;
    if (kind == OTHER)
        return 0;
    if (kind == ABSENT || PyUnicode_GET_LENGTH(raw) == 0) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 1;
    }
    if (!is_plain_decimal(raw))
        return 0;
    *out = PyObject_CallOneArg(decimal, raw);
    return *out ? 1 : -1;
}

/* The order's arguments, as rest.new_order_args returns them, when every field is plainly
   right; None for anything else, including an order without its own client id (the Python
   definition numbers those). */
static PyObject *
order_args(PyObject *module, PyObject *args)
{
    PyObject *params, *symbols, *decimal;
    if (!PyArg_ParseTuple(args, "O!O!O:order_args", &PyDict_Type, &params, &PyDict_Type,
                          &symbols, &decimal))
        return NULL;
    int k_symbol, k_side, k_type, k_client, k_resp, k_tif;
    PyObject *raw_symbol = param(params, key_symbol, &k_symbol);
    PyObject *raw_side = param(params, key_side, &k_side);
    PyObject *raw_type = param(params, key_type, &k_type);
    PyObject *client_id = param(params, key_client_id, &k_client);
    PyObject *raw_resp = param(params, key_resp_type, &k_resp);
    PyObject *tif = param(params, key_tif, &k_tif);
    if (PyErr_Occurred())
        return NULL;
    if (k_symbol != TEXT || k_side != TEXT || k_type != TEXT || k_client != TEXT ||
        k_resp == OTHER || k_tif == OTHER)
        Py_RETURN_NONE;
    int side = choice_of(raw_side, SIDES, 2);
    int type = choice_of(raw_type, TYPES, 3);
    int resp = raw_resp == NULL ? FULL : choice_of(raw_resp, RESP_TYPES, 3);
    if (side < 0 || type < 0 || resp < 0 || !is_client_id(client_id))
        Py_RETURN_NONE;
    if (type == LIMIT && (tif == NULL || PyUnicode_GET_LENGTH(tif) == 0))
        Py_RETURN_NONE;
    PyObject *symbol = ascii_upper(raw_symbol);
    if (symbol == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *quantity = NULL, *quote_qty = NULL, *price = NULL, *result = NULL;
    int rc = PyUnicode_GET_LENGTH(symbol) > 0 ? PyDict_Contains(symbols, symbol) : 0;
    if (rc > 0)
        rc = decimal_param(params, key_quantity, decimal, &quantity);
    if (rc > 0)
        rc = decimal_param(params, key_quote_qty, decimal, &quote_qty);
    if (rc > 0)
        rc = decimal_param(params, key_price, decimal, &price);
    if (rc > 0 && type != MARKET && (price == Py_None || quantity == Py_None))
        rc = 0;
    if (rc > 0 && type == MARKET && quantity == Py_None && quote_qty == Py_None)
        rc = 0;
    if (rc > 0) {
        PyObject *fields[][2] = {
            {out_symbol, symbol},
            {out_side, side_names[side]},
            {out_order_type, type_names[type]},
            {out_quantity, quantity},
            {out_quote_qty, quote_qty},
            {out_price, price},
            {out_tif, tif ? tif : Py_None},
            {out_client_id, client_id},
            {out_resp_type, resp_type_names[resp]},
        };
        result = PyDict_New();
        for (size_t i = 0; result != NULL && i < sizeof(fields) / sizeof(fields[0]); i++)
            if (PyDict_SetItem(result, fields[i][0], fields[i][1]) < 0)
                Py_CLEAR(result);
        if (result == NULL)
            rc = -1;
    }
    Py_DECREF(symbol);
    Py_XDECREF(quantity);
    Py_XDECREF(quote_qty);
    Py_XDECREF(price);
    if (rc < 0)
        return NULL;
    if (result != NULL)
        return result;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"signed_params", signed_params, METH_VARARGS,
     "signed_params(query, body) -> (payload, signature, params) | None"},
    {"accept", accept, METH_VARARGS,
     "accept(query, body, key, now_ms) -> params | None: auth.verify's accepting path"},
    {"order_args", order_args, METH_VARARGS,
     "order_args(params, symbols, Decimal) -> dict | None: rest.new_order_args's accepting "
     "path"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "replay.exchange._signed",
    .m_size = -1,
    .m_methods = methods,
};

static int
intern_all(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&key_signature, "signature"},
        {&key_timestamp, "timestamp"},
        {&key_recv_window, "recvWindow"},
        {&key_symbol, "symbol"},
        {&key_side, "side"},
        {&key_type, "type"},
        {&key_client_id, "newClientOrderId"},
        {&key_resp_type, "newOrderRespType"},
        {&key_quantity, "quantity"},
        {&key_quote_qty, "quoteOrderQty"},
        {&key_price, "price"},
        {&key_tif, "timeInForce"},
        {&key_order_id, "orderId"},
        {&key_orig_client_id, "origClientOrderId"},
        {&out_symbol, "symbol"},
        {&out_side, "side"},
        {&out_order_type, "order_type"},
        {&out_quantity, "quantity"},
        {&out_quote_qty, "quote_order_qty"},
        {&out_price, "price"},
        {&out_tif, "time_in_force"},
        {&out_client_id, "client_order_id"},
        {&out_resp_type, "resp_type"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (i < 2 && (side_names[i] = PyUnicode_InternFromString(SIDES[i])) == NULL)
            return -1;
        if ((type_names[i] = PyUnicode_InternFromString(TYPES[i])) == NULL ||
            (resp_type_names[i] = PyUnicode_InternFromString(RESP_TYPES[i])) == NULL)
            return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__signed(void)
{
    if (intern_all() < 0 || PyType_Ready(&KeyType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KeyType);
    if (PyModule_AddObject(m, "Key", (PyObject *)&KeyType) < 0) {
        Py_DECREF(&KeyType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
