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
 * do.
 *
 * Instruction sets: the loop (_lstm_loop.h) is compiled once per instruction set, each
 * with its own block height RB (rows whose accumulators stay in vector registers: 8 with
 * AVX-512's 32 registers, 4 with AVX2's 16, 2 with SSE2's 16 narrower ones), and the best one
 * the CPU has is chosen at import by its feature bits (__builtin_cpu_supports). Not
 * GCC's target_clones("arch=haswell"): its resolver tests the CPU *model* (Intel Haswell),
 * so every AMD CPU without AVX-512 ran the baseline SSE2 copy, 1.8x slower than the Python
 * loop on an AVX2-only EPYC. variants() lists the copies this CPU can run, best first; the
 * caller passes the one to use (tests run each against the reference).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Helpers are forced inline so that each copy compiles them for its own instruction set. */
#if defined(__GNUC__)
#define INLINE __attribute__((always_inline))
#else
#define INLINE
#endif
/* Loops over a block's rows and vectors: unrolled, so that their accumulators are registers. */
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define UNROLL _Pragma("GCC unroll 16")
#else
#define UNROLL
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define X86_COPIES 1
#endif

typedef struct {
    Py_ssize_t B, T, H, first, last; /* rows [first, last) */
    float *gates, *cells_prev, *tanh_cells, *hidden, *masked, *grad_gates;
    const float *w_hh_t, *w_hh, *mask, *grad_hidden;
    float *scratch; /* scratch_size(H) floats of this job's own */
} Job;

#define RB_MAX 8
#define LANES 16 /* floats per block of a weight row (rows are zero-padded to a multiple) */
#define ROUND_UP(n) (((n) + LANES - 1) / LANES * LANES)

/* Scratch floats one job needs (for the largest block height). */
static Py_ssize_t scratch_size(Py_ssize_t H) { return 4 * RB_MAX * H + 2 * ROUND_UP(4 * H) + ROUND_UP(H); }

/* Rows (samples) advance through time together in blocks of RB, so that each weight vector
 * loaded feeds RB independent accumulators kept in registers: one sample alone would chain
 * every multiply-add of the matrix-vector product on the latency of the one before. RB x 16
 * floats of accumulators must fit in the vector registers with room for a weight vector. */
#if X86_COPIES
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define ISA avx512
#define VL 16
#define RB 8
#include "_lstm_loop.h"
#undef RB
#undef VL
#undef ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ISA avx2
#define VL 8
#define RB 4
#include "_lstm_loop.h"
#undef RB
#undef VL
#undef ISA
#pragma GCC pop_options
#endif

#define ISA generic
#define VL 4
#define RB 2
#include "_lstm_loop.h"
#undef RB
#undef VL
#undef ISA

typedef struct {
    const char *name;
    void (*forward)(Job *);
    void (*backward)(Job *);
} Variant;

/* Best first. */
static const Variant VARIANTS[] = {
#if X86_COPIES
    {"avx512", forward_rows_avx512, backward_rows_avx512},
    {"avx2", forward_rows_avx2, backward_rows_avx2},
#endif
    {"generic", forward_rows_generic, backward_rows_generic},
};
#define N_VARIANTS ((int)(sizeof VARIANTS / sizeof VARIANTS[0]))

static int variant_usable(int v) {
#if X86_COPIES
    __builtin_cpu_init();
    if (VARIANTS[v].forward == forward_rows_avx512) return __builtin_cpu_supports("avx512f");
    if (VARIANTS[v].forward == forward_rows_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return v >= 0 && v < N_VARIANTS;
}

typedef struct {
    Job job;
    void (*fn)(Job *);
} Task;

static void *run_task(void *arg) {
    Task *task = arg;
    task->fn(&task->job);
    return NULL;
}

/* Split rows [0, B) over n threads (this one included) and wait for all; -1: no memory. */
static int run_split(const Job *base, int n_threads, void (*fn)(Job *)) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > base->B) n_threads = (int)(base->B > 0 ? base->B : 1);
    if (n_threads > 64) n_threads = 64;
    Task tasks[64];
    pthread_t threads[64];
    int started[64] = {0};
    const Py_ssize_t per_job = scratch_size(base->H);
    float *scratch = malloc(sizeof(float) * (size_t)per_job * (size_t)n_threads);
    if (scratch == NULL) return -1;
    for (int i = 0; i < n_threads; i++) {
        tasks[i].job = *base;
        tasks[i].job.first = base->B * i / n_threads;
        tasks[i].job.last = base->B * (i + 1) / n_threads;
        tasks[i].job.scratch = scratch + per_job * i;
        tasks[i].fn = fn;
    }
    for (int i = 1; i < n_threads; i++) started[i] = pthread_create(&threads[i], NULL, run_task, &tasks[i]) == 0;
    run_task(&tasks[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            run_task(&tasks[i]); /* no thread: do it here */
    }
    free(scratch);
    return 0;
}

#define PTR(x) ((float *)(uintptr_t)(x))

/* The variant `v`'s forward or backward over the batch, threads split, the GIL released (the
   loop touches no Python object); None, ValueError for a variant this CPU cannot run, or
   MemoryError when the threads' scratch could not be allocated. */
static PyObject *run_variant(Job *job, int v, int n_threads, int backward) {
    if (v < 0 || v >= N_VARIANTS || !variant_usable(v)) {
        PyErr_Format(PyExc_ValueError, "variant %d is not one this CPU can run (see variants())", v);
        return NULL;
    }
    if (job->B < 0 || job->T < 1 || job->H < 1) {
        PyErr_SetString(PyExc_ValueError, "B must be >= 0, T and H >= 1");
        return NULL;
    }
    int status;
    void (*fn)(Job *) = backward ? VARIANTS[v].backward : VARIANTS[v].forward;
    Py_BEGIN_ALLOW_THREADS
    status = run_split(job, n_threads, fn);
    Py_END_ALLOW_THREADS
    if (status != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(variants_doc,
             "variants() -> tuple of (index, name)\n\n"
             "The compiled copies of the loop this CPU can run, best first (avx512, avx2, generic).");

static PyObject *variants(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!variant_usable(v)) continue;
        PyObject *item = Py_BuildValue("(is)", v, VARIANTS[v].name);
        if (item == NULL || PyList_Append(out, item) != 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    PyObject *tuple = PyList_AsTuple(out);
    Py_DECREF(out);
    return tuple;
}

PyDoc_STRVAR(forward_doc,
             "forward(variant, n_threads, B, T, H, gates, w_hh_t, mask, cells_prev, tanh_cells, hidden, masked)\n\n"
             "The masked LSTM's time loop; arguments after H are data pointers (int) of float32\n"
             "C-contiguous tensors laid out as in this module's notes. The caller checks them.");

static PyObject *forward(PyObject *self, PyObject *args) {
    (void)self;
    Job job = {0};
    int variant, n_threads;
    unsigned long long gates, w_hh_t, mask, cells_prev, tanh_cells, hidden, masked;
    if (!PyArg_ParseTuple(args, "iinnnKKKKKKK", &variant, &n_threads, &job.B, &job.T, &job.H, &gates, &w_hh_t,
                          &mask, &cells_prev, &tanh_cells, &hidden, &masked))
        return NULL;
    job.gates = PTR(gates);
    job.w_hh_t = PTR(w_hh_t);
    job.mask = PTR(mask);
    job.cells_prev = PTR(cells_prev);
    job.tanh_cells = PTR(tanh_cells);
    job.hidden = PTR(hidden);
    job.masked = PTR(masked);
    return run_variant(&job, variant, n_threads, 0);
}

PyDoc_STRVAR(backward_doc,
             "backward(variant, n_threads, B, T, H, grad_hidden, gates, cells_prev, tanh_cells, w_hh, mask, grad_gates)\n\n"
             "Gradients of the gates' pre-activations (B, T, 4H) from those of the hidden states.");

static PyObject *backward(PyObject *self, PyObject *args) {
    (void)self;
    Job job = {0};
    int variant, n_threads;
    unsigned long long grad_hidden, gates, cells_prev, tanh_cells, w_hh, mask, grad_gates;
    if (!PyArg_ParseTuple(args, "iinnnKKKKKKK", &variant, &n_threads, &job.B, &job.T, &job.H, &grad_hidden, &gates,
                          &cells_prev, &tanh_cells, &w_hh, &mask, &grad_gates))
        return NULL;
    job.grad_hidden = PTR(grad_hidden);
    job.gates = PTR(gates);
    job.cells_prev = PTR(cells_prev);
    job.tanh_cells = PTR(tanh_cells);
    job.w_hh = PTR(w_hh);
    job.mask = PTR(mask);
    job.grad_gates = PTR(grad_gates);
    return run_variant(&job, variant, n_threads, 1);
}

static PyMethodDef methods[] = {
    {"variants", variants, METH_NOARGS, variants_doc},
    {"forward", forward, METH_VARARGS, forward_doc},
    {"backward", backward, METH_VARARGS, backward_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lstm", "The masked LSTM time loop in C (see models/recurrent.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lstm(void) { return PyModule_Create(&module); }
