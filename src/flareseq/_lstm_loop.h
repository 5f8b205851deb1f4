/* The time loop of flareseq._lstm, compiled once per instruction set (see _lstm.c).
 *
 * The including file defines ISA (a name suffix), VL (floats per native vector register: 16,
 * 8 or 4) and RB (rows per block), and puts this file under that instruction set's
 * `#pragma GCC target`. Everything here is static and force-inlined into forward_rows_ISA /
 * backward_rows_ISA, so each copy is compiled for its own instruction set only.
 *
 * Vectors are of the native width: a wider GCC vector type than the registers (a 64-byte
 * vector under AVX2) is lowered through memory, and such a loop ran 7x slower than with
 * AVX-512. A block of LANES = 16 floats is NV = 16 / VL native vectors (weights are
 * zero-padded to whole blocks; the gates and states are not, so their ragged ends are
 * read and written through load_vec/store_vec).
 */
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define KERNEL(name) CAT(name, ISA)

#define NV (LANES / VL)
typedef float KERNEL(vec) __attribute__((vector_size(VL * 4)));
typedef float KERNEL(vecu) __attribute__((vector_size(VL * 4), aligned(4)));

/* The VL floats at p, of which only the first n are read (n < VL: a row's ragged end; the
 * rest are zeros). By value, so that accumulators stay in registers. */
static inline INLINE KERNEL(vec) KERNEL(load_vec)(const float *p, Py_ssize_t n) {
    if (n >= VL) return *(const KERNEL(vecu) *)p;
    float tmp[VL] = {0};
    for (Py_ssize_t l = 0; l < n; l++) tmp[l] = p[l];
    return *(const KERNEL(vecu) *)tmp;
}

/* v to the VL floats at p, of which only the first n are written. */
static inline INLINE void KERNEL(store_vec)(float *p, KERNEL(vec) v, Py_ssize_t n) {
    if (n >= VL) {
        *(KERNEL(vecu) *)p = v;
        return;
    }
    float tmp[VL];
    *(KERNEL(vecu) *)tmp = v;
    for (Py_ssize_t l = 0; l < n; l++) p[l] = tmp[l];
}

/* exp(x) for x clamped to [-87.3, 88.3]: 2^n * p(r), r = x - n ln2 (two-part ln2). */
static inline INLINE float KERNEL(exp_poly)(float x) {
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

static inline INLINE float KERNEL(sigmoid)(float x) { return 1.0f / (1.0f + KERNEL(exp_poly)(-x)); }
static inline INLINE float KERNEL(tanh_poly)(float x) { return 2.0f / (1.0f + KERNEL(exp_poly)(-2.0f * x)) - 1.0f; }

/* c_t = f c_{t-1} + i g, tanh(c_t), h_t = o tanh(c_t) for one sample; g: activated i, f, g, o. */
static inline INLINE void KERNEL(cell_forward)(Py_ssize_t H, const float *restrict g, float *restrict c,
                                               float *restrict cells_prev, float *restrict tanh_cells,
                                               float *restrict hidden) {
    for (Py_ssize_t k = 0; k < H; k++) {
        const float i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k];
        cells_prev[k] = c[k];
        const float cn = f * c[k] + i * gg;
        c[k] = cn;
        const float tc = KERNEL(tanh_poly)(cn);
        tanh_cells[k] = tc;
        hidden[k] = o * tc;
    }
}

/* One step back: d (the gates' pre-activation gradients) from dh (output + recurrent) and
 * the cell gradient dc carried from step t+1, which becomes step t-1's. */
static inline INLINE void KERNEL(cell_backward)(Py_ssize_t H, const float *restrict g, const float *restrict tanh_cells,
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

/* g_r[0:G4] += W_hh m_r for the RB rows; wt: W_hh^T zero-padded to (H, ROUND_UP(G4)). */
static inline INLINE void KERNEL(recurrent_forward)(Py_ssize_t H, Py_ssize_t G4, const float *restrict wt,
                                                    float *const g[RB], const float *restrict m /* (RB, H) */) {
    const Py_ssize_t G4p = ROUND_UP(G4);
    for (Py_ssize_t jb = 0; jb < G4; jb += LANES) {
        const Py_ssize_t n = G4 - jb < LANES ? G4 - jb : LANES;
        KERNEL(vec) acc[RB][NV];
        /* the check for a ragged end outside the loops over r and q, which must unroll for
         * acc to live in registers (as a stack array the block ran 1.6x slower) */
        if (n == LANES) {
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) acc[r][q] = *(const KERNEL(vecu) *)(g[r] + jb + q * VL);
        } else {
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) acc[r][q] = KERNEL(load_vec)(g[r] + jb + q * VL, n - q * VL);
        }
        for (Py_ssize_t k = 0; k < H; k++) {
            KERNEL(vec) w[NV];
            for (int q = 0; q < NV; q++) w[q] = *(const KERNEL(vecu) *)(wt + k * G4p + jb + q * VL);
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) acc[r][q] += m[r * H + k] * w[q];
        }
        if (n == LANES) {
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) *(KERNEL(vecu) *)(g[r] + jb + q * VL) = acc[r][q];
        } else {
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) KERNEL(store_vec)(g[r] + jb + q * VL, acc[r][q], n - q * VL);
        }
    }
}

/* dh_r[0:H] = (W_hh^T d_r) * mask_r for the RB rows; w: W_hh zero-padded to (G4, ROUND_UP(H)). */
static inline INLINE void KERNEL(recurrent_backward)(Py_ssize_t H, Py_ssize_t G4, const float *restrict w,
                                                     const float *const d[RB], const float *const mask[RB],
                                                     float *restrict dh /* (RB, H) */) {
    const Py_ssize_t Hp = ROUND_UP(H);
    for (Py_ssize_t kb = 0; kb < H; kb += LANES) {
        const Py_ssize_t n = H - kb < LANES ? H - kb : LANES;
        KERNEL(vec) acc[RB][NV];
        UNROLL for (int r = 0; r < RB; r++)
            UNROLL for (int q = 0; q < NV; q++) acc[r][q] = (KERNEL(vec)){0};
        for (Py_ssize_t j = 0; j < G4; j++) {
            KERNEL(vec) wj[NV];
            for (int q = 0; q < NV; q++) wj[q] = *(const KERNEL(vecu) *)(w + j * Hp + kb + q * VL);
            UNROLL for (int r = 0; r < RB; r++)
                UNROLL for (int q = 0; q < NV; q++) acc[r][q] += d[r][j] * wj[q];
        }
        UNROLL for (int r = 0; r < RB; r++) {
            UNROLL for (int q = 0; q < NV; q++)
                KERNEL(store_vec)(dh + r * H + kb + q * VL,
                                  acc[r][q] * KERNEL(load_vec)(mask[r] + kb + q * VL, n - q * VL), n - q * VL);
        }
    }
}

static inline INLINE void KERNEL(activate)(Py_ssize_t H, float *restrict g) {
    for (Py_ssize_t j = 0; j < 2 * H; j++) g[j] = KERNEL(sigmoid)(g[j]);        /* i, f */
    for (Py_ssize_t j = 2 * H; j < 3 * H; j++) g[j] = KERNEL(tanh_poly)(g[j]);  /* g */
    for (Py_ssize_t j = 3 * H; j < 4 * H; j++) g[j] = KERNEL(sigmoid)(g[j]);    /* o */
}

static void KERNEL(forward_rows)(Job *job) {
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
            if (t > 0) KERNEL(recurrent_forward)(H, G4, job->w_hh_t, g, m);
            for (int r = 0; r < nb; r++) {
                const Py_ssize_t row = (b0 + r) * T + t;
                KERNEL(activate)(H, g[r]);
                KERNEL(cell_forward)(H, g[r], c + r * H, job->cells_prev + row * H, job->tanh_cells + row * H,
                                     job->hidden + row * H);
            }
        }
    }
}

static void KERNEL(backward_rows)(Job *job) {
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
                KERNEL(cell_backward)(H, job->gates + row * G4, job->tanh_cells + row * H, job->cells_prev + row * H,
                                      job->grad_hidden + row * H, dh_rec + r * H, dc + r * H, out);
                d[r] = out;
            }
            if (t > 0) KERNEL(recurrent_backward)(H, G4, job->w_hh, d, mask, dh_rec);
        }
    }
}

#undef NV
#undef KERNEL
#undef CAT
#undef CAT2
