/* Mamba's selective scan on the CPU, forward and backward, compiled on the user's machine by scan_native.py.
 *
 * The same algorithm as the chunk-sequential torch path in scan.py, with the same checkpoints (the state
 * entering every chunk of `chunk` positions, scan.CHUNK, passed in), but each block of LANES channels of one sequence runs its
 * recurrence with vertical vector arithmetic on a state that stays in cache. Blocks are independent and
 * shared across OpenMP threads; sums over blocks (the gradients of A, B and C) go to per-thread buffers.
 *
 * Layouts (all contiguous and length-major, so that LANES channels of one position are adjacent and one
 * position's N values are too): u, delta, y, grad_y, grad_u, grad_delta: [B, L, E]; A and its gradient
 * transposed, [N, E]; Bm, Cm, grad_B, grad_C: [B, L, N]; checkpoints: [num_chunks, B, E, N]. Compiled twice,
 * for float (suffix _f32) and double (_f64).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* glibc's libmvec has vector versions of exp (4 ulp at most); declaring them lets the loops over the state
 * vectorise without -ffast-math, which would also switch the whole process to flush-to-zero. */
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern double exp(double);

#define MAX_STATE 64
#define LANES 16 /* channels per vector step */

#define CAT(a, b) a##b
#define NAME(base, suffix) CAT(base, suffix)

#define REAL float
#define EXP expf
#define SUFFIX _f32
#include "selective_scan_body.h"
#undef REAL
#undef EXP
#undef SUFFIX

#define REAL double
#define EXP exp
#define SUFFIX _f64
#include "selective_scan_body.h"
