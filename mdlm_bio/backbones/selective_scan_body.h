/* The scan for one floating-point type; included by selective_scan.c with REAL, EXP and SUFFIX defined. */

/* y[b, l, e] = C_l . h_l with h_l = exp(delta_l A_e) h_{l-1} + delta_l u_l B_l; checkpoints may be NULL.
 * u, delta and y are length-major here ([B, L, E]) and At is A transposed ([N, E]): every step updates LANES
 * channels at once with vertical vector arithmetic, no horizontal sums. */
void NAME(scan_forward, SUFFIX)(const REAL *u, const REAL *delta, const REAL *At, const REAL *Bm, const REAL *Cm,
                                REAL *y, REAL *checkpoints, long batch, long inner, long length, long state,
                                long chunk, int threads) {
    const long blocks = (inner + LANES - 1) / LANES;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long job = 0; job < batch * blocks; job++) {
        const long b = job / blocks, first = (job % blocks) * LANES;
        const long lanes = inner - first < LANES ? inner - first : LANES;
        REAL h[MAX_STATE][LANES], scale[LANES], out[LANES];
        for (long n = 0; n < state; n++)
            for (long j = 0; j < LANES; j++) h[n][j] = 0;
        for (long l = 0; l < length; l++) {
            if (checkpoints && l % chunk == 0)
                for (long j = 0; j < lanes; j++)
                    for (long n = 0; n < state; n++)
                        checkpoints[((l / chunk) * batch * inner + b * inner + first + j) * state + n] = h[n][j];
            const long at = (b * length + l) * inner + first;
            const REAL *u_l = u + at, *delta_l = delta + at;
            const REAL *B_l = Bm + (b * length + l) * state, *C_l = Cm + (b * length + l) * state;
            for (long j = 0; j < lanes; j++) {
                scale[j] = delta_l[j] * u_l[j];
                out[j] = 0;
            }
            for (long n = 0; n < state; n++) {
                const REAL B_n = B_l[n], C_n = C_l[n], *A_n = At + n * inner + first;
                REAL *h_n = h[n];
#pragma omp simd
                for (long j = 0; j < lanes; j++) {
                    h_n[j] = EXP(delta_l[j] * A_n[j]) * h_n[j] + scale[j] * B_n;
                    out[j] += h_n[j] * C_n;
                }
            }
            for (long j = 0; j < lanes; j++) y[at + j] = out[j];
        }
    }
}

/* Gradients of the scan given grad_y, chunk by chunk from the last, each chunk's states rebuilt from its
 * checkpoint (see _SelectiveScan in scan.py for the adjoint). Length-major and vectorised across channels like
 * the forward; grad_At is [N, E]. grad_At, grad_B and grad_C are overwritten. */
void NAME(scan_backward, SUFFIX)(const REAL *u, const REAL *delta, const REAL *At, const REAL *Bm, const REAL *Cm,
                                 const REAL *grad_y, const REAL *checkpoints, REAL *grad_u, REAL *grad_delta,
                                 REAL *grad_At, REAL *grad_B, REAL *grad_C, long batch, long inner, long length,
                                 long state, long chunk, int threads) {
    const long chunks = (length + chunk - 1) / chunk, blocks = (inner + LANES - 1) / LANES;
    memset(grad_At, 0, inner * state * sizeof(REAL));
    memset(grad_B, 0, batch * length * state * sizeof(REAL));
    memset(grad_C, 0, batch * length * state * sizeof(REAL));
#pragma omp parallel num_threads(threads)
    {
        /* this thread's share of the sums: grad_A over sequences, grad_B and grad_C over channels */
        REAL *own_A = calloc(inner * state, sizeof(REAL));
        REAL *own_B = calloc(batch * length * state, sizeof(REAL));
        REAL *own_C = calloc(batch * length * state, sizeof(REAL));
        /* one chunk's states (with the one entering it) and decays, [position][n][lane] */
        REAL *states = malloc((chunk + 1) * state * LANES * sizeof(REAL));
        REAL *decays = malloc(chunk * state * LANES * sizeof(REAL));
#pragma omp for schedule(static)
        for (long job = 0; job < batch * blocks; job++) {
            const long b = job / blocks, first = (job % blocks) * LANES;
            const long lanes = inner - first < LANES ? inner - first : LANES;
            REAL adjoint[MAX_STATE][LANES], next_decay[MAX_STATE][LANES], scale[LANES], g_scale[LANES], g_step[LANES];
            for (long n = 0; n < state; n++)
                for (long j = 0; j < LANES; j++) adjoint[n][j] = next_decay[n][j] = 0;
            for (long c = chunks - 1; c >= 0; c--) {
                const long start = c * chunk, size = length - start < chunk ? length - start : chunk;
                for (long j = 0; j < lanes; j++)
                    for (long n = 0; n < state; n++)
                        states[n * LANES + j] = checkpoints[(c * batch * inner + b * inner + first + j) * state + n];
                for (long i = 0; i < size; i++) {
                    const long at = (b * length + start + i) * inner + first;
                    const REAL *B_l = Bm + (b * length + start + i) * state;
                    for (long j = 0; j < lanes; j++) scale[j] = delta[at + j] * u[at + j];
                    for (long n = 0; n < state; n++) {
                        const REAL *A_n = At + n * inner + first, *h_prev = states + (i * state + n) * LANES;
                        REAL *h = states + ((i + 1) * state + n) * LANES, *a = decays + (i * state + n) * LANES;
                        const REAL B_n = B_l[n];
#pragma omp simd
                        for (long j = 0; j < lanes; j++) {
                            a[j] = EXP(delta[at + j] * A_n[j]);
                            h[j] = a[j] * h_prev[j] + scale[j] * B_n;
                        }
                    }
                }
                for (long i = size - 1; i >= 0; i--) {
                    const long l = start + i, at = (b * length + l) * inner + first;
                    const REAL *B_l = Bm + (b * length + l) * state, *C_l = Cm + (b * length + l) * state;
                    const REAL *g_y = grad_y + at, *step = delta + at;
                    for (long j = 0; j < lanes; j++) {
                        scale[j] = step[j] * u[at + j];
                        g_scale[j] = g_step[j] = 0;
                    }
                    for (long n = 0; n < state; n++) {
                        const REAL *A_n = At + n * inner + first, *h = states + ((i + 1) * state + n) * LANES;
                        const REAL *h_prev = states + (i * state + n) * LANES, *a = decays + (i * state + n) * LANES;
                        const REAL B_n = B_l[n], C_n = C_l[n];
                        REAL *adjoint_n = adjoint[n], *next_n = next_decay[n], *own_A_n = own_A + n * inner + first;
                        REAL sum_B = 0, sum_C = 0;
#pragma omp simd reduction(+ : sum_B, sum_C)
                        for (long j = 0; j < lanes; j++) {
                            adjoint_n[j] = g_y[j] * C_n + next_n[j] * adjoint_n[j];
                            sum_C += g_y[j] * h[j];
                            g_scale[j] += adjoint_n[j] * B_n;
                            sum_B += scale[j] * adjoint_n[j];
                            const REAL g_decay = adjoint_n[j] * h_prev[j] * a[j];
                            own_A_n[j] += g_decay * step[j];
                            g_step[j] += g_decay * A_n[j];
                            next_n[j] = a[j];
                        }
                        own_B[(b * length + l) * state + n] += sum_B;
                        own_C[(b * length + l) * state + n] += sum_C;
                    }
                    for (long j = 0; j < lanes; j++) {
                        grad_delta[at + j] = g_step[j] + g_scale[j] * u[at + j];
                        grad_u[at + j] = g_scale[j] * step[j];
                    }
                }
            }
        }
#pragma omp critical
        {
            for (long i = 0; i < inner * state; i++) grad_At[i] += own_A[i];
            for (long i = 0; i < batch * length * state; i++) {
                grad_B[i] += own_B[i];
                grad_C[i] += own_C[i];
            }
        }
        free(own_A);
        free(own_B);
        free(own_C);
        free(states);
        free(decays);
    }
}
