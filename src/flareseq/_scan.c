/* flareseq._scan: a single-pass scanner for Kaggle BigData Cup JSON lines.
 *
 * Every line of a Kaggle file is one object of a rigid layout:
 *
 *     {"id": 1, "classNum": 0, "fold": 2, "values": {"TOTUSJH": {"0": 2843.56, ..., "59": NaN}, ...}}
 *
 * A generic JSON parser builds ~1,500 Python objects per line; this scanner walks the bytes
 * once and writes float32 values straight into the caller's (n, T, F) array. It accepts a
 * strict subset of what flareseq's strict parser (orjson + record_from_object) accepts and
 * must give bit-identical results on it; on anything else it *declines* (returns a reason
 * and the line) and the caller re-reads the chunk with the Python paths, which report
 * errors with their file, line and field. Declining is always safe, so every unusual case
 * (string ids, escapes in keys, unknown or repeated keys, blank lines, a header that differs
 * from the chunk's first line, numbers beyond the fast conversions' reach...) declines.
 *
 * Numbers: the strict parser reads a JSON number as the correctly rounded double and then
 * casts it to float32 (round to nearest even). Here:
 *   - mantissa m < 2^53 and |decimal exponent| <= 22: m and 10^k are exact doubles, one
 *     IEEE multiply or divide gives the correctly rounded double (Clinger's fast path);
 *   - up to 19 significant digits, |exponent| <= 22: the double is computed with at most
 *     ~2.5 ulp error; rounding it to float32 gives the same float32 as rounding the exact
 *     double unless a float32 rounding midpoint lies within that error, which the low 29
 *     mantissa bits show (a 1 in ~16 million chance): then, and for everything else,
 *     strtod (correctly rounded in glibc) in the "C" locale decides;
 *   - a JSON integer "-0" is the Python int 0 for the strict parser, so +0.0 (but "-0.0"
 *     and "-0e0" are floats: -0.0);
 *   - bare NaN and null are missing values (the canonical quiet NaN 0x7FC00000);
 *   - a value beyond the float32 range declines (the strict parser reports it).
 *
 * Built by setuptools at install (pyproject.toml). Fuzzed against the strict parser on
 * generated, mutated and random bytes (tests/test_scan_fuzz.py, benchmarks/fuzz_scan.py),
 * also under AddressSanitizer and UBSan (make sanitize).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__) || defined(__APPLE__)
#define HAVE_STRTOD_L 1
#if defined(__APPLE__)
#include <xlocale.h>
#endif
static locale_t c_locale = (locale_t)0;
#endif

#define HAS_ID 1
#define HAS_LABEL 2
#define HAS_FOLD 4
#define HAS_VALUES 8

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef struct {
    const char **names; /* parameter names, in output column order */
    Py_ssize_t *name_lengths;
    int n_features;
    int n_timesteps;
    unsigned char *seen_feature; /* scratch: one flag per feature / time step */
    unsigned char *seen_step;
} Layout;

typedef struct {
    int64_t id;
    int64_t fold;
    int label;
    int mask;
} Header;

static inline int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static inline int is_digit(char c) { return (unsigned char)(c - '0') < 10; }
#define SKIP_WS(p, end)                      \
    while ((p) < (end) && is_ws(*(p))) (p)++

/* Eight ASCII digits at once (SWAR, as in simdjson and fast_float): the digit loop's
 * multiply-add chain, not memory, is what a 17-digit number costs. */
static inline int is_eight_digits(uint64_t v) {
    return !(((v + UINT64_C(0x4646464646464646)) | (v - UINT64_C(0x3030303030303030))) & UINT64_C(0x8080808080808080));
}

static inline uint64_t eight_digits_value(uint64_t v) { /* v: 8 digits, first digit in the lowest byte */
    const uint64_t mask = UINT64_C(0x000000FF000000FF);
    const uint64_t mul1 = UINT64_C(0x000F424000000064); /* 100 + (1000000 << 32) */
    const uint64_t mul2 = UINT64_C(0x0000271000000001); /* 1 + (10000 << 32) */
    v -= UINT64_C(0x3030303030303030);
    v = (v * 10) + (v >> 8);
    return (((v & mask) * mul1) + (((v >> 16) & mask) * mul2)) >> 32;
}

static inline uint64_t load8(const char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Slow but exact: the token [start, stop) (already checked to be a JSON number) by strtod. */
static int number_by_strtod(const char *start, const char *stop, double *out) {
    char buffer[512];
    size_t n = (size_t)(stop - start);
    if (n >= sizeof buffer) return -1;
    memcpy(buffer, start, n);
    buffer[n] = '\0';
    char *parsed_end;
#ifdef HAVE_STRTOD_L
    *out = strtod_l(buffer, &parsed_end, c_locale);
#else
    *out = strtod(buffer, &parsed_end);
#endif
    return parsed_end == buffer + n ? 0 : -1;
}

/* One JSON value that must be a number, NaN or null -> float32. Returns 0, or -1 to decline. */
static int parse_value(const char **pp, const char *end, float *out) {
    const char *p = *pp, *start = p;
    if (p >= end) return -1;
    char c = *p;
    if (c == 'N') {
        if (end - p >= 3 && p[1] == 'a' && p[2] == 'N') {
            *out = NAN;
            *pp = p + 3;
            return 0;
        }
        return -1;
    }
    if (c == 'n') {
        if (end - p >= 4 && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
            *out = NAN;
            *pp = p + 4;
            return 0;
        }
        return -1;
    }
    int negative = 0;
    if (c == '-') {
        negative = 1;
        if (++p >= end) return -1;
        c = *p;
    }
    uint64_t m = 0;
    int n_digits = 0, e10 = 0, is_integer = 1, inexact = 0;
    if (c == '0') {
        p++;
    } else if (c >= '1' && c <= '9') {
        while (end - p >= 8 && n_digits <= 11 && is_eight_digits(load8(p))) {
            m = m * 100000000 + eight_digits_value(load8(p));
            n_digits += 8;
            p += 8;
        }
        while (p < end && is_digit(*p)) {
            if (n_digits < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                n_digits++;
            } else {
                inexact = 1; /* digits beyond the 19th: strtod decides */
            }
            p++;
        }
    } else {
        return -1;
    }
    if (p < end && *p == '.') {
        is_integer = 0;
        p++;
        if (p >= end || !is_digit(*p)) return -1;
        /* leading zeros taken by eights count as digits: only the capacity check (19
         * digits fit in 64 bits) becomes conservative, the value and exponent stay exact */
        while (end - p >= 8 && n_digits <= 11 && is_eight_digits(load8(p))) {
            m = m * 100000000 + eight_digits_value(load8(p));
            n_digits += 8;
            e10 -= 8;
            p += 8;
        }
        while (p < end && is_digit(*p)) {
            int d = *p - '0';
            if (m == 0 && d == 0) {
                e10--; /* a leading zero of the fraction: scale only */
            } else if (n_digits < 19) {
                m = m * 10 + (uint64_t)d;
                n_digits++;
                e10--;
            } else {
                inexact = 1;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_integer = 0;
        p++;
        int exp_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) exp_negative = *p++ == '-';
        if (p >= end || !is_digit(*p)) return -1;
        int exponent = 0;
        while (p < end && is_digit(*p)) {
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
            p++;
        }
        e10 += exp_negative ? -exponent : exponent;
    }
    double d;
    if (m == 0 && !inexact) {
        d = (negative && !is_integer) ? -0.0 : 0.0;
    } else if (!inexact && e10 >= -22 && e10 <= 22) {
        d = (double)m;
        if (m <= (UINT64_C(1) << 53)) {
            d = e10 < 0 ? d / POW10[-e10] : d * POW10[e10]; /* exact inputs, one rounding */
        } else {
            d = e10 < 0 ? d / POW10[-e10] : d * POW10[e10]; /* within ~2.5 ulp: check below */
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            int exponent_bits = (int)((bits >> 52) & 0x7ff);
            uint64_t low = bits & ((UINT64_C(1) << 29) - 1);
            uint64_t half = UINT64_C(1) << 28;
            if (exponent_bits < 1023 - 125 || exponent_bits > 1023 + 127 || (low + 16 >= half && low <= half + 16)) {
                if (number_by_strtod(negative ? start + 1 : start, p, &d) != 0) return -1;
            }
        }
        if (negative) d = -d;
    } else {
        if (number_by_strtod(start, p, &d) != 0) return -1;
    }
    float f = (float)d;
    if (isinf(f)) return -1; /* beyond float32 (or float64): the strict parser reports it */
    *out = f;
    *pp = p;
    return 0;
}

/* A JSON integer that fits in 18 digits -> int64 (id, fold). */
static int parse_int(const char **pp, const char *end, int64_t *out) {
    const char *p = *pp;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || !is_digit(*p)) return -1;
    int64_t v = 0;
    int n = 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            if (++n > 18) return -1;
            v = v * 10 + (*p - '0');
            p++;
        }
    }
    if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E')) return -1; /* not a plain integer */
    *out = negative ? -v : v;
    *pp = p;
    return 0;
}

/* A key string: '"' ... '"' without escapes or control characters; returns its span. */
static int parse_key(const char **pp, const char *end, const char **key, Py_ssize_t *length) {
    const char *p = *pp;
    if (p >= end || *p != '"') return -1;
    const char *s = ++p;
    while (p < end && *p != '"') {
        if (*p == '\\' || (unsigned char)*p < 0x20) return -1;
        p++;
    }
    if (p >= end) return -1;
    *key = s;
    *length = p - s;
    p++;
    SKIP_WS(p, end);
    if (p >= end || *p != ':') return -1;
    p++;
    SKIP_WS(p, end);
    *pp = p;
    return 0;
}

/* After an object member: ',' (1: another member follows) or '}' (0: the object ends),
   each consumed with the whitespace before it; -1 for anything else. */
static int after_member(const char **pp, const char *end) {
    const char *p = *pp;
    SKIP_WS(p, end);
    if (p < end && (*p == ',' || *p == '}')) {
        *pp = p + 1;
        return *p == ',';
    }
    return -1;
}

static int key_is(const char *key, Py_ssize_t length, const char *word) {
    return (Py_ssize_t)strlen(word) == length && memcmp(key, word, (size_t)length) == 0;
}

/* "values": {PARAM: {"0": v, ...}, ...} -> row (T, F) of X. Keys may come in any order, each once. */
static int parse_values(const char **pp, const char *end, const Layout *L, float *row, const char **why) {
    const char *p = *pp;
    const int F = L->n_features, T = L->n_timesteps;
    if (p >= end || *p != '{') {
        *why = "'values' is not an object";
        return -1;
    }
    p++;
    memset(L->seen_feature, 0, (size_t)F);
    int n_features = 0;
    for (;;) {
        SKIP_WS(p, end);
        const char *key;
        Py_ssize_t length;
        if (parse_key(&p, end, &key, &length) != 0) {
            *why = "malformed parameter key";
            return -1;
        }
        int j = n_features < F ? n_features : 0; /* the usual order first, then a search */
        if (!(L->name_lengths[j] == length && memcmp(L->names[j], key, (size_t)length) == 0)) {
            for (j = 0; j < F; j++)
                if (L->name_lengths[j] == length && memcmp(L->names[j], key, (size_t)length) == 0) break;
            if (j == F) {
                *why = "unknown parameter";
                return -1;
            }
        }
        if (L->seen_feature[j]) {
            *why = "repeated parameter";
            return -1;
        }
        L->seen_feature[j] = 1;
        n_features++;
        if (p >= end || *p != '{') {
            *why = "a parameter series is not an object";
            return -1;
        }
        p++;
        memset(L->seen_step, 0, (size_t)T);
        int n_steps = 0;
        for (;;) {
            SKIP_WS(p, end);
            if (p >= end || *p != '"') {
                *why = "malformed time-step key";
                return -1;
            }
            p++;
            /* canonical decimal key: "0" or [1-9][0-9]* */
            int k = 0;
            const char *digits = p;
            while (p < end && is_digit(*p) && p - digits < 9) k = k * 10 + (*p++ - '0');
            if (p == digits || p >= end || *p != '"' || (*digits == '0' && p - digits > 1) || k >= T) {
                *why = "unexpected time-step key";
                return -1;
            }
            p++;
            SKIP_WS(p, end);
            if (p >= end || *p != ':') {
                *why = "malformed time-step entry";
                return -1;
            }
            p++;
            SKIP_WS(p, end);
            if (L->seen_step[k]) {
                *why = "repeated time-step key";
                return -1;
            }
            L->seen_step[k] = 1;
            n_steps++;
            if (parse_value(&p, end, &row[(size_t)k * F + j]) != 0) {
                *why = "a value that is not a plain number, NaN or null";
                return -1;
            }
            int more = after_member(&p, end);
            if (more < 0) {
                *why = "malformed series";
                return -1;
            }
            if (!more) break;
        }
        if (n_steps != T) {
            *why = "a series with another number of time steps";
            return -1;
        }
        int more = after_member(&p, end);
        if (more < 0) {
            *why = "malformed 'values' object";
            return -1;
        }
        if (!more) break;
    }
    if (n_features != F) {
        *why = "missing parameters";
        return -1;
    }
    *pp = p;
    return 0;
}

/* One line from *pp -> header and row; *pp moves past its newline. `end` is the end of the
 * chunk, not of the line: no token spans a newline (is_ws excludes it, keys refuse control
 * characters), so a newline inside an object makes it decline, and no separate pass is
 * needed to find each line's end. */
static int parse_line(const char **pp, const char *end, const Layout *L, Header *h, float *row, const char **why) {
    const char *p = *pp;
    SKIP_WS(p, end);
    if (p >= end || *p == '\n') {
        *why = "blank line";
        return -1;
    }
    if (*p != '{') {
        *why = "not an object";
        return -1;
    }
    p++;
    h->mask = 0;
    for (;;) {
        SKIP_WS(p, end);
        const char *key;
        Py_ssize_t length;
        if (parse_key(&p, end, &key, &length) != 0) {
            *why = "malformed top-level key";
            return -1;
        }
        int bit;
        if (key_is(key, length, "values")) {
            bit = HAS_VALUES;
        } else if (key_is(key, length, "id")) {
            bit = HAS_ID;
        } else if (key_is(key, length, "classNum")) {
            bit = HAS_LABEL;
        } else if (key_is(key, length, "fold")) {
            bit = HAS_FOLD;
        } else {
            *why = "another top-level key";
            return -1;
        }
        if (h->mask & bit) {
            *why = "repeated top-level key";
            return -1;
        }
        h->mask |= bit;
        if (bit == HAS_VALUES) {
            if (parse_values(&p, end, L, row, why) != 0) return -1;
        } else if (bit == HAS_ID) {
            if (parse_int(&p, end, &h->id) != 0) {
                *why = "an id that is not a plain integer";
                return -1;
            }
        } else if (bit == HAS_FOLD) {
            if (parse_int(&p, end, &h->fold) != 0) {
                *why = "a fold that is not a plain integer";
                return -1;
            }
        } else {
            if (p < end && (*p == '0' || *p == '1') && (p + 1 >= end || !(is_digit(p[1]) || p[1] == '.' || p[1] == 'e' || p[1] == 'E'))) {
                h->label = *p - '0';
                p++;
            } else {
                *why = "a classNum other than 0 or 1";
                return -1;
            }
        }
        int more = after_member(&p, end);
        if (more < 0) {
            *why = "malformed object";
            return -1;
        }
        if (!more) break;
    }
    SKIP_WS(p, end);
    if (p < end && *p != '\n') {
        *why = "text after the object";
        return -1;
    }
    if (!(h->mask & HAS_ID) || !(h->mask & HAS_VALUES)) {
        *why = "no id or no values";
        return -1;
    }
    *pp = p < end ? p + 1 : p;
    return 0;
}

static int get_writable(PyObject *obj, Py_buffer *view, Py_ssize_t min_bytes, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) return -1;
    if (view->len < min_bytes) {
        PyErr_Format(PyExc_ValueError, "%s: a buffer of at least %zd bytes is needed, got %zd", name, min_bytes,
                     view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_kaggle_doc,
             "scan_kaggle(data, names, n_timesteps, X, ids, labels, folds) -> (n, mask, line, reason)\n\n"
             "Parse whole Kaggle JSON lines ``data`` into the caller's C-contiguous buffers: X float32\n"
             "(n_lines, n_timesteps, len(names)), ids int64, labels int8, folds int64 (n_lines each;\n"
             "count_lines(data) gives n_lines; a buffer too small makes it decline).\n"
             "Every line must have the first line's top-level keys. Returns the number of samples and\n"
             "the key mask (1 id, 2 classNum, 4 fold, 8 values) with line 0 and reason None, or\n"
             "(-1, 0, line, reason) when it declines (line: 1-based within data).");

static PyObject *scan_kaggle(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, X, ids, labels, folds;
    PyObject *names_obj, *X_obj, *ids_obj, *labels_obj, *folds_obj;
    int T;
    if (!PyArg_ParseTuple(args, "y*O!iOOOO", &data, &PyTuple_Type, &names_obj, &T, &X_obj, &ids_obj, &labels_obj,
                          &folds_obj))
        return NULL;
    PyObject *result = NULL;
    Layout L = {0};
    int F = (int)PyTuple_GET_SIZE(names_obj);
    int got = 0;
    if (T < 1 || F < 1) {
        PyErr_SetString(PyExc_ValueError, "n_timesteps and the number of names must be positive");
        PyBuffer_Release(&data);
        return NULL;
    }
    const char *begin = (const char *)data.buf, *stop = begin + data.len;
    Py_ssize_t row_floats = (Py_ssize_t)T * F;
    if (get_writable(X_obj, &X, 0, "X") != 0) goto release_data;
    got = 1;
    if (get_writable(ids_obj, &ids, 0, "ids") != 0) goto release;
    got = 2;
    if (get_writable(labels_obj, &labels, 0, "labels") != 0) goto release;
    got = 3;
    if (get_writable(folds_obj, &folds, 0, "folds") != 0) goto release;
    got = 4;
    /* rows the buffers hold (the caller sizes them by counting lines) */
    Py_ssize_t capacity = X.len / (row_floats * (Py_ssize_t)sizeof(float));
    if (ids.len / 8 < capacity) capacity = ids.len / 8;
    if (labels.len < capacity) capacity = labels.len;
    if (folds.len / 8 < capacity) capacity = folds.len / 8;
    L.n_features = F;
    L.n_timesteps = T;
    L.names = PyMem_Malloc(sizeof(char *) * (size_t)F);
    L.name_lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)F);
    L.seen_feature = PyMem_Malloc((size_t)F);
    L.seen_step = PyMem_Malloc((size_t)T);
    if (!L.names || !L.name_lengths || !L.seen_feature || !L.seen_step) {
        PyErr_NoMemory();
        goto release;
    }
    for (int j = 0; j < F; j++) {
        PyObject *name = PyTuple_GET_ITEM(names_obj, j);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "names must be a tuple of bytes");
            goto release;
        }
        L.names[j] = PyBytes_AS_STRING(name);
        L.name_lengths[j] = PyBytes_GET_SIZE(name);
    }

    Py_ssize_t n = 0, bad_line = 0;
    int first_mask = -1;
    const char *why = NULL;
    float *X_out = (float *)X.buf;
    int64_t *id_out = (int64_t *)ids.buf, *fold_out = (int64_t *)folds.buf;
    int8_t *label_out = (int8_t *)labels.buf;
    Py_BEGIN_ALLOW_THREADS
    const char *p = begin;
    while (p < stop) {
        Header h = {0, -1, -1, 0};
        if (n >= capacity) {
            why = "more lines than the buffers hold";
            bad_line = n + 1;
            break;
        }
        if (parse_line(&p, stop, &L, &h, X_out + n * row_floats, &why) != 0) {
            bad_line = n + 1;
            break;
        }
        if (first_mask < 0) {
            first_mask = h.mask;
        } else if (h.mask != first_mask) {
            why = "top-level keys differ from the chunk's first line";
            bad_line = n + 1;
            break;
        }
        id_out[n] = h.id;
        label_out[n] = (int8_t)h.label;
        fold_out[n] = h.fold;
        n++;
    }
    Py_END_ALLOW_THREADS
    if (bad_line) {
        result = Py_BuildValue("(nins)", (Py_ssize_t)-1, 0, bad_line, why);
    } else {
        result = Py_BuildValue("(ninO)", n, first_mask < 0 ? 0 : first_mask, (Py_ssize_t)0, Py_None);
    }
release:
    PyMem_Free(L.names);
    PyMem_Free(L.name_lengths);
    PyMem_Free(L.seen_feature);
    PyMem_Free(L.seen_step);
    if (got >= 4) PyBuffer_Release(&folds);
    if (got >= 3) PyBuffer_Release(&labels);
    if (got >= 2) PyBuffer_Release(&ids);
    if (got >= 1) PyBuffer_Release(&X);
release_data:
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(count_lines_doc,
             "count_lines(data) -> int\n\n"
             "Lines in ``data``: its newlines, plus one when it does not end with a newline\n"
             "(memchr: several times faster than bytes.count).");

static PyObject *count_lines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    const char *begin = (const char *)data.buf, *stop = begin + data.len;
    Py_ssize_t n_lines = 0;
    Py_BEGIN_ALLOW_THREADS
    for (const char *q = begin; q < stop;) {
        const char *nl = memchr(q, '\n', (size_t)(stop - q));
        n_lines++;
        if (nl == NULL) break;
        q = nl + 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(n_lines);
}

static PyMethodDef methods[] = {
    {"scan_kaggle", scan_kaggle, METH_VARARGS, scan_kaggle_doc},
    {"count_lines", count_lines, METH_VARARGS, count_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Single-pass scanner for Kaggle JSON lines (see data/kaggle_fast.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
#ifdef HAVE_STRTOD_L
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) {
        PyErr_SetString(PyExc_OSError, "newlocale(\"C\") failed");
        return NULL;
    }
#endif
    return PyModule_Create(&module);
}
