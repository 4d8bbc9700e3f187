/* The scan for one floating-point type; included by selective_scan.c with REAL, EXP and SUFFIX defined. */

/* y[b, l, e] = C_l . h_l with h_l = exp(delta_l A_e) h_{l-1} + delta_l u_l B_l; checkpoints may be NULL.
 * u, delta and y are length-major here ([B, L, E]) and At is A transposed ([N, E]): every step updates LANES
 * channels at once with vertical vector arithmetic, no horizontal sums. */
void NAME(scan_forward, SUFFIX)(const REAL *u, const REAL *delta, const REAL *At, const REAL *Bm, const REAL *Cm,
                                REAL *y, REAL *checkpoints, long batch, long inner, long length, long state,
                                int threads) {
    const long blocks = (inner + LANES - 1) / LANES;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long job = 0; job < batch * blocks; job++) {
        const long b = job / blocks, first = (job % blocks) * LANES;
        const long lanes = inner - first < LANES ? inner - first : LANES;
        REAL h[MAX_STATE][LANES], scale[LANES], out[LANES];
        for (long n = 0; n < state; n++)
            for (long j = 0; j < LANES; j++) h[n][j] = 0;
        for (long l = 0; l < length; l++) {
            if (checkpoints && l % CHUNK == 0)
                for (long j = 0; j < lanes; j++)
                    for (long n = 0; n < state; n++)
                        checkpoints[((l / CHUNK) * batch * inner + b * inner + first + j) * state + n] = h[n][j];
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
 * checkpoint (see _SelectiveScan in scan.py for the adjoint). grad_A, grad_B and grad_C are overwritten. */
void NAME(scan_backward, SUFFIX)(const REAL *u, const REAL *delta, const REAL *A, const REAL *Bm, const REAL *Cm,
                                 const REAL *grad_y, const REAL *checkpoints, REAL *grad_u, REAL *grad_delta,
                                 REAL *grad_A, REAL *grad_B, REAL *grad_C, long batch, long inner, long length,
                                 long state, int threads) {
    const long chunks = (length + CHUNK - 1) / CHUNK;
    memset(grad_A, 0, inner * state * sizeof(REAL));
    memset(grad_B, 0, batch * length * state * sizeof(REAL));
    memset(grad_C, 0, batch * length * state * sizeof(REAL));
#pragma omp parallel num_threads(threads)
    {
        /* this thread's share of the sums over rows: grad_A over sequences, grad_B and grad_C over channels */
        REAL *own_A = calloc(inner * state, sizeof(REAL));
        REAL *own_B = calloc(batch * length * state, sizeof(REAL));
        REAL *own_C = calloc(batch * length * state, sizeof(REAL));
#pragma omp for schedule(static)
        for (long row = 0; row < batch * inner; row++) {
            const long b = row / inner, e = row % inner;
            const REAL *u_row = u + row * length, *delta_row = delta + row * length, *A_row = A + e * state;
            const REAL *B_seq = Bm + b * length * state, *C_seq = Cm + b * length * state;
            const REAL *grad_y_row = grad_y + row * length;
            REAL *own_B_seq = own_B + b * length * state, *own_C_seq = own_C + b * length * state;
            REAL *own_A_row = own_A + e * state;
            REAL states[(CHUNK + 1) * MAX_STATE], decays[CHUNK * MAX_STATE];
            REAL adjoint[MAX_STATE], next_decay[MAX_STATE];
            for (long n = 0; n < state; n++) adjoint[n] = next_decay[n] = 0;
            for (long chunk = chunks - 1; chunk >= 0; chunk--) {
                const long start = chunk * CHUNK, size = length - start < CHUNK ? length - start : CHUNK;
                memcpy(states, checkpoints + (chunk * batch * inner + row) * state, state * sizeof(REAL));
                for (long i = 0; i < size; i++) {
                    const long l = start + i;
                    const REAL step = delta_row[l], scale = step * u_row[l];
                    const REAL *B_l = B_seq + l * state;
                    REAL *h = states + (i + 1) * state, *h_prev = states + i * state, *a = decays + i * state;
#pragma omp simd
                    for (long n = 0; n < state; n++) {
                        a[n] = EXP(step * A_row[n]);
                        h[n] = a[n] * h_prev[n] + scale * B_l[n];
                    }
                }
                for (long i = size - 1; i >= 0; i--) {
                    const long l = start + i;
                    const REAL step = delta_row[l], scale = step * u_row[l], g_y = grad_y_row[l];
                    const REAL *B_l = B_seq + l * state, *C_l = C_seq + l * state;
                    const REAL *h = states + (i + 1) * state, *h_prev = states + i * state, *a = decays + i * state;
                    REAL *own_B_l = own_B_seq + l * state, *own_C_l = own_C_seq + l * state;
                    REAL g_scale = 0, g_step = 0;
#pragma omp simd reduction(+ : g_scale, g_step)
                    for (long n = 0; n < state; n++) {
                        adjoint[n] = g_y * C_l[n] + next_decay[n] * adjoint[n];
                        own_C_l[n] += g_y * h[n];
                        g_scale += adjoint[n] * B_l[n];
                        own_B_l[n] += scale * adjoint[n];
                        const REAL g_decay = adjoint[n] * h_prev[n] * a[n];
                        own_A_row[n] += g_decay * step;
                        g_step += g_decay * A_row[n];
                        next_decay[n] = a[n];
                    }
                    grad_delta[row * length + l] = g_step + g_scale * u_row[l];
                    grad_u[row * length + l] = g_scale * step;
                }
            }
        }
#pragma omp critical
        {
            for (long i = 0; i < inner * state; i++) grad_A[i] += own_A[i];
            for (long i = 0; i < batch * length * state; i++) {
                grad_B[i] += own_B[i];
                grad_C[i] += own_C[i];
            }
        }
        free(own_A);
        free(own_B);
        free(own_C);
    }
}
