/* flareseq._lstm: the time loop of an LSTM layer with a recurrent-dropout mask, in C.
 *
 * Keras's recurrent dropout multiplies h_{t-1} by a fixed per-sequence mask before the
 * recurrent matmul, which no fused kernel (oneDNN's, torch's) offers. Written as a Python
 * loop, each of the 60 steps costs ~14 tensor operations on (B, 32)-sized tensors, and
 * dispatch overhead, not arithmetic, dominates. Here each sample's whole sequence runs in
 * one C loop: per step a (4H x H) matrix-vector product and the gate arithmetic, with the
 * weights in L1 cache. Samples are independent, so the batch is split across threads with
 * no synchronisation inside the loop. The input projection and the weight gradients, big
 * matrix products, stay with torch (see models/recurrent.py).
 *
 * Layout (all float32, C-contiguous, batch-major; gate order i, f, g, o as torch's):
 *   gates      (B, T, 4H)  in: x W_ih^T + b; out: the gates' activations
 *   w_hh_t     (H, 4H')    the recurrent kernel, transposed (forward), zero-padded: 4H' = 4H
 *                          rounded up to a multiple of 16
 *   w_hh       (4H, H')    the recurrent kernel (backward), zero-padded: H' = H rounded up to 16
 *   mask       (B, H)      the scaled recurrent-dropout mask
 *   cells_prev (B, T, H)   c_{t-1} (zero at t = 0)
 *   tanh_cells (B, T, H)   tanh(c_t)
 *   hidden     (B, T, H)   h_t = o_t tanh(c_t)
 *   masked     (B, T, H)   h_{t-1} * mask, the recurrent input of step t (zero at t = 0)
 *
 * sigmoid and tanh use a polynomial exp (Cephes' expf: ~1 ulp on the clamped range) that the
 * compiler vectorises; results differ from torch's in the last bits, as any two LSTM kernels
 * do. Multi-versioned for AVX-512 / AVX2+FMA / baseline x86-64 where the compiler can.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Helpers are forced inline so that each clone compiles them for its own instruction set. */
#if defined(__GNUC__)
#define INLINE __attribute__((always_inline))
#else
#define INLINE
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define MULTIVERSION
#endif

/* exp(x) for x clamped to [-87.3, 88.3]: 2^n * p(r), r = x - n ln2 (two-part ln2). */
static inline INLINE float exp_poly(float x) {
    /* two selects the compiler maps to vector max/min; NaN passes through both */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* round to nearest through the 1.5 * 2^23 trick (no libm call, vectorises) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline INLINE float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }
static inline INLINE float tanh_poly(float x) { return 2.0f / (1.0f + exp_poly(-2.0f * x)) - 1.0f; }

/* c_t = f c_{t-1} + i g, tanh(c_t), h_t = o tanh(c_t) for one sample; g: activated i, f, g, o. */
static inline INLINE void cell_forward(Py_ssize_t H, const float *restrict g, float *restrict c, float *restrict cells_prev,
                                float *restrict tanh_cells, float *restrict hidden) {
    for (Py_ssize_t k = 0; k < H; k++) {
        const float i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k];
        cells_prev[k] = c[k];
        const float cn = f * c[k] + i * gg;
        c[k] = cn;
        const float tc = tanh_poly(cn);
        tanh_cells[k] = tc;
        hidden[k] = o * tc;
    }
}

/* One step back: d (the gates' pre-activation gradients) from dh (output + recurrent) and
 * the cell gradient dc carried from step t+1, which becomes step t-1's. */
static inline INLINE void cell_backward(Py_ssize_t H, const float *restrict g, const float *restrict tanh_cells,
                                 const float *restrict cells_prev, const float *restrict grad_hidden,
                                 const float *restrict dh_rec, float *restrict dc, float *restrict d) {
    for (Py_ssize_t k = 0; k < H; k++) {
        const float i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k], tc = tanh_cells[k];
        const float dh = grad_hidden[k] + dh_rec[k];
        const float dck = dc[k] + dh * o * (1.0f - tc * tc);
        d[k] = dck * gg * i * (1.0f - i);                 /* i */
        d[H + k] = dck * cells_prev[k] * f * (1.0f - f);  /* f */
        d[2 * H + k] = dck * i * (1.0f - gg * gg);        /* g */
        d[3 * H + k] = dh * tc * o * (1.0f - o);          /* o */
        dc[k] = dck * f;
    }
}

typedef struct {
    Py_ssize_t B, T, H, first, last; /* rows [first, last) */
    float *gates, *cells_prev, *tanh_cells, *hidden, *masked, *grad_gates;
    const float *w_hh_t, *w_hh, *mask, *grad_hidden;
    float *scratch; /* scratch_size(H) floats of this job's own */
} Job;

/* Rows (samples) advance through time together in blocks of RB, so that each weight vector
 * loaded feeds RB independent accumulators kept in registers: one sample alone would chain
 * every multiply-add of the matrix-vector product on the latency of the one before. */
#define RB 8
#define LANES 16
#define ROUND_UP(n) (((n) + LANES - 1) / LANES * LANES)

/* 16 floats as one value: GCC/clang lower it to whatever each clone has (one AVX-512
 * register, two AVX2 registers, four SSE registers), so the blocks below are vector code
 * whatever the auto-vectoriser decides. v16u: the same at any float alignment. */
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline INLINE v16 load_partial(const float *p, Py_ssize_t n) {
    float tmp[LANES] = {0};
    for (Py_ssize_t l = 0; l < n; l++) tmp[l] = p[l];
    return *(const v16u *)tmp;
}

static inline INLINE void store_partial(float *p, v16 v, Py_ssize_t n) {
    float tmp[LANES];
    *(v16u *)tmp = v;
    for (Py_ssize_t l = 0; l < n; l++) p[l] = tmp[l];
}

/* g_r[0:G4] += W_hh m_r for the RB rows; wt: W_hh^T zero-padded to (H, ROUND_UP(G4)). */
static inline INLINE void recurrent_forward(Py_ssize_t H, Py_ssize_t G4, const float *restrict wt, float *const g[RB],
                                     const float *restrict m /* (RB, H) */) {
    const Py_ssize_t G4p = ROUND_UP(G4);
    for (Py_ssize_t jb = 0; jb < G4; jb += LANES) {
        const Py_ssize_t n = G4 - jb < LANES ? G4 - jb : LANES;
        v16 acc[RB];
        for (int r = 0; r < RB; r++) acc[r] = n == LANES ? *(const v16u *)(g[r] + jb) : load_partial(g[r] + jb, n);
        for (Py_ssize_t k = 0; k < H; k++) {
            const v16 w = *(const v16u *)(wt + k * G4p + jb);
            for (int r = 0; r < RB; r++) acc[r] += m[r * H + k] * w;
        }
        for (int r = 0; r < RB; r++) {
            if (n == LANES)
                *(v16u *)(g[r] + jb) = acc[r];
            else
                store_partial(g[r] + jb, acc[r], n);
        }
    }
}

/* dh_r[0:H] = (W_hh^T d_r) * mask_r for the RB rows; w: W_hh zero-padded to (G4, ROUND_UP(H)). */
static inline INLINE void recurrent_backward(Py_ssize_t H, Py_ssize_t G4, const float *restrict w, const float *const d[RB],
                                      const float *const mask[RB], float *restrict dh /* (RB, H) */) {
    const Py_ssize_t Hp = ROUND_UP(H);
    for (Py_ssize_t kb = 0; kb < H; kb += LANES) {
        const Py_ssize_t n = H - kb < LANES ? H - kb : LANES;
        v16 acc[RB];
        for (int r = 0; r < RB; r++) acc[r] = (v16){0};
        for (Py_ssize_t j = 0; j < G4; j++) {
            const v16 wj = *(const v16u *)(w + j * Hp + kb);
            for (int r = 0; r < RB; r++) acc[r] += d[r][j] * wj;
        }
        for (int r = 0; r < RB; r++) {
            const v16 scale = n == LANES ? *(const v16u *)(mask[r] + kb) : load_partial(mask[r] + kb, n);
            store_partial(dh + r * H + kb, acc[r] * scale, n);
        }
    }
}

static inline INLINE void activate(Py_ssize_t H, float *restrict g) {
    for (Py_ssize_t j = 0; j < 2 * H; j++) g[j] = sigmoid(g[j]);         /* i, f */
    for (Py_ssize_t j = 2 * H; j < 3 * H; j++) g[j] = tanh_poly(g[j]);   /* g */
    for (Py_ssize_t j = 3 * H; j < 4 * H; j++) g[j] = sigmoid(g[j]);     /* o */
}

/* Scratch floats one job needs. */
static Py_ssize_t scratch_size(Py_ssize_t H) { return 4 * RB * H + 2 * ROUND_UP(4 * H) + ROUND_UP(H); }

MULTIVERSION
static void forward_rows(Job *job) {
    const Py_ssize_t T = job->T, H = job->H, G4 = 4 * H;
    float *restrict c = job->scratch;            /* (RB, H) cell states */
    float *restrict m = c + RB * H;              /* (RB, H) masked previous states */
    float *dummy = m + RB * H;                   /* gates of the rows past a short last block */
    for (Py_ssize_t k = 0; k < ROUND_UP(G4); k++) dummy[k] = 0.0f;
    for (Py_ssize_t b0 = job->first; b0 < job->last; b0 += RB) {
        const int nb = (int)(job->last - b0 < RB ? job->last - b0 : RB);
        float *g[RB];
        for (Py_ssize_t k = 0; k < RB * H; k++) c[k] = m[k] = 0.0f;
        for (Py_ssize_t t = 0; t < T; t++) {
            for (int r = 0; r < RB; r++) g[r] = r < nb ? job->gates + ((b0 + r) * T + t) * G4 : dummy;
            for (int r = 0; r < nb; r++) {
                const Py_ssize_t row = (b0 + r) * T + t;
                float *out = job->masked + row * H;
                if (t == 0) {
                    for (Py_ssize_t k = 0; k < H; k++) out[k] = 0.0f;
                } else {
                    const float *prev_h = job->hidden + (row - 1) * H, *mask = job->mask + (b0 + r) * H;
                    for (Py_ssize_t k = 0; k < H; k++) out[k] = m[r * H + k] = prev_h[k] * mask[k];
                }
            }
            if (t > 0) recurrent_forward(H, G4, job->w_hh_t, g, m);
            for (int r = 0; r < nb; r++) {
                const Py_ssize_t row = (b0 + r) * T + t;
                activate(H, g[r]);
                cell_forward(H, g[r], c + r * H, job->cells_prev + row * H, job->tanh_cells + row * H,
                             job->hidden + row * H);
            }
        }
    }
}

MULTIVERSION
static void backward_rows(Job *job) {
    const Py_ssize_t T = job->T, H = job->H, G4 = 4 * H;
    float *restrict dh_rec = job->scratch;       /* (RB, H) */
    float *restrict dc = dh_rec + RB * H;        /* (RB, H) */
    float *zeros = dc + RB * H;                  /* d and mask of the rows past a short last block */
    for (Py_ssize_t k = 0; k < ROUND_UP(G4); k++) zeros[k] = 0.0f;
    for (Py_ssize_t b0 = job->first; b0 < job->last; b0 += RB) {
        const int nb = (int)(job->last - b0 < RB ? job->last - b0 : RB);
        const float *d[RB], *mask[RB];
        for (int r = 0; r < RB; r++) mask[r] = r < nb ? job->mask + (b0 + r) * H : zeros;
        for (Py_ssize_t k = 0; k < RB * H; k++) dh_rec[k] = dc[k] = 0.0f;
        for (Py_ssize_t t = T - 1; t >= 0; t--) {
            for (int r = 0; r < RB; r++) {
                if (r >= nb) {
                    d[r] = zeros;
                    continue;
                }
                const Py_ssize_t row = (b0 + r) * T + t;
                float *out = job->grad_gates + row * G4;
                cell_backward(H, job->gates + row * G4, job->tanh_cells + row * H, job->cells_prev + row * H,
                              job->grad_hidden + row * H, dh_rec + r * H, dc + r * H, out);
                d[r] = out;
            }
            if (t > 0) recurrent_backward(H, G4, job->w_hh, d, mask, dh_rec);
        }
    }
}

static void *run_forward(void *arg) {
    forward_rows((Job *)arg);
    return NULL;
}

static void *run_backward(void *arg) {
    backward_rows((Job *)arg);
    return NULL;
}

/* Split rows [0, B) over n threads (this one included) and wait for all; -1: no memory. */
static int run_split(Job *base, int n_threads, void *(*fn)(void *)) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > base->B) n_threads = (int)(base->B > 0 ? base->B : 1);
    if (n_threads > 64) n_threads = 64;
    Job jobs[64];
    pthread_t threads[64];
    int started[64] = {0};
    const Py_ssize_t per_job = scratch_size(base->H);
    float *scratch = malloc(sizeof(float) * (size_t)per_job * (size_t)n_threads);
    if (scratch == NULL) return -1;
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = *base;
        jobs[i].first = base->B * i / n_threads;
        jobs[i].last = base->B * (i + 1) / n_threads;
        jobs[i].scratch = scratch + per_job * i;
    }
    for (int i = 1; i < n_threads; i++) started[i] = pthread_create(&threads[i], NULL, fn, &jobs[i]) == 0;
    fn(&jobs[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            fn(&jobs[i]); /* no thread: do it here */
    }
    free(scratch);
    return 0;
}

#define PTR(x) ((float *)(uintptr_t)(x))

/* run_split with the GIL released (the loop touches no Python object); None, or MemoryError
   when a thread's scratch could not be allocated. */
static PyObject *run_without_gil(Job *job, int n_threads, void *(*fn)(void *)) {
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = run_split(job, n_threads, fn);
    Py_END_ALLOW_THREADS
    if (status != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(forward_doc,
             "forward(n_threads, B, T, H, gates, w_hh_t, mask, cells_prev, tanh_cells, hidden, masked)\n\n"
             "The masked LSTM's time loop; arguments after H are data pointers (int) of float32\n"
             "C-contiguous tensors laid out as in this module's notes. The caller checks them.");

static PyObject *forward(PyObject *self, PyObject *args) {
    (void)self;
    Job job = {0};
    int n_threads;
    unsigned long long gates, w_hh_t, mask, cells_prev, tanh_cells, hidden, masked;
    if (!PyArg_ParseTuple(args, "innnKKKKKKK", &n_threads, &job.B, &job.T, &job.H, &gates, &w_hh_t, &mask,
                          &cells_prev, &tanh_cells, &hidden, &masked))
        return NULL;
    job.gates = PTR(gates);
    job.w_hh_t = PTR(w_hh_t);
    job.mask = PTR(mask);
    job.cells_prev = PTR(cells_prev);
    job.tanh_cells = PTR(tanh_cells);
    job.hidden = PTR(hidden);
    job.masked = PTR(masked);
    return run_without_gil(&job, n_threads, run_forward);
}

PyDoc_STRVAR(backward_doc,
             "backward(n_threads, B, T, H, grad_hidden, gates, cells_prev, tanh_cells, w_hh, mask, grad_gates)\n\n"
             "Gradients of the gates' pre-activations (B, T, 4H) from those of the hidden states.");

static PyObject *backward(PyObject *self, PyObject *args) {
    (void)self;
    Job job = {0};
    int n_threads;
    unsigned long long grad_hidden, gates, cells_prev, tanh_cells, w_hh, mask, grad_gates;
    if (!PyArg_ParseTuple(args, "innnKKKKKKK", &n_threads, &job.B, &job.T, &job.H, &grad_hidden, &gates,
                          &cells_prev, &tanh_cells, &w_hh, &mask, &grad_gates))
        return NULL;
    job.grad_hidden = PTR(grad_hidden);
    job.gates = PTR(gates);
    job.cells_prev = PTR(cells_prev);
    job.tanh_cells = PTR(tanh_cells);
    job.w_hh = PTR(w_hh);
    job.mask = PTR(mask);
    job.grad_gates = PTR(grad_gates);
    return run_without_gil(&job, n_threads, run_backward);
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS, forward_doc},
    {"backward", backward, METH_VARARGS, backward_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lstm", "The masked LSTM time loop in C (see models/recurrent.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lstm(void) { return PyModule_Create(&module); }
