/*
 * knn_i8.h — the int8 first pass of cuda/knn.cu: how a row is coded, the
 * lower bound of its true distance that the scan kernel computes from the
 * codes, and the proof that decides whether the re-ranked candidates are
 * the exact answer.  Plain C, compiled for the device by knn_kernels.cuh
 * and for the host by test/c/i8bound_test.c, which checks the very same
 * arithmetic against an fp64 reference on random and adversarial rows.
 *
 * Coding (upload)
 * ---------------
 * Row x (fp32, dim components) gets a scale s = fl(maxabs / 127) and codes
 * c_i = rint(fl(x_i / s)), stored as bytes c_i + 128 (1..255; the padding
 * past dim is 128, code 0).  A zero row has s = 0 and codes 0.
 *
 * Derivation of the bound (u = 2^-24, the fp32 unit roundoff; Higham,
 * "Accuracy and Stability of Numerical Algorithms", 2nd ed., ch. 2-3:
 * fl(a op b) = (a op b)(1 + d), |d| <= u, and a sum of m terms in any order
 * is off by at most gamma_m sum|terms|, gamma_m = m u / (1 - m u)).
 * Quantities with a hat are computed; D = q . x is the true dot product.
 *
 *  1. Coding error.  t_i = fl(x_i / s) = (x_i / s)(1 + d), so
 *     |x_i - s t_i| <= u |x_i| <= u maxabs, and maxabs <= 127 s / (1 - u)
 *     (s = fl(maxabs/127)), so |x_i - s t_i| <= 2^-17 s.  |t_i - c_i| <= 1/2
 *     (rint); t_i <= 127 (1+u)/(1-u) < 127.5, so no code leaves [-127, 127]
 *     (the clamp in the coder never acts).  Hence
 *         |x_i - s c_i| <= s (1/2 + 2^-17).
 *  2. Dot product.  A = sum q_i c_i (real).  |D - s A| <= sum |q_i| |x_i - s c_i|
 *         <= s (1/2 + 2^-17) ||q||_1.
 *  3. Accumulation.  The kernel sums q_i c_i with fmaf (c_i exact in fp32),
 *     each lane in order, then a butterfly over the lanes of a row: at most
 *     m = dim + 24 roundings on any path (dim padded to 16, log2 32 = 5
 *     shuffles), so |A^ - A| <= gamma_m sum |q_i c_i| <= 127 gamma_m ||q||_1.
 *     dot^ = fl(s A^): |dot^ - s A^| <= u s |A^| <= 127 u (1 + gamma_m) s ||q||_1.
 *  4. Together |dot^ - D| <= s ||q||_1 C_d, with
 *         C_d = 1/2 + 2^-17 + 127 (gamma_m + 1.01 u) + 2^-20,
 *     the last term covering underflow (each operation may lose 2^-150
 *     absolutely: at most (dim + 24) 2^-149 s + 2^-150 in all, far below
 *     2^-20 s ||q||_1 while s and ||q||_1 lie in [2^-32, 2^16], which the
 *     routing (index) and the proof (query) require; in that range no
 *     norm, product of norms or sum below overflows or underflows).
 *  5. The kernel needs e >= s ||q||_1 C_d.  The query preparation computes
 *     ||q||_1^ = fl(sum |q_i|) >= ||q||_1 (1 - gamma_m) (positive terms), and
 *     e = fl(s fl(||q||_1^ cq)) >= s ||q||_1^ cq (1 - u)^2, so
 *         cq = C_d / ((1 - gamma_m)(1 - u)^2), rounded up to fp32
 *     makes D lie in [dot^ - e, dot^ + e]; e >= 2^-65 is normal.
 *     Size: for 384 dims C_d = 0.503, so e ~ s ||q||_1 / 2; for Gaussian
 *     rows s ~ 3.2 |x| / (127 sqrt(d)) and ||q||_1 ~ 0.8 sqrt(d) |q|, so e ~
 *     0.01 |q||x|: a cosine distance is known to about +-0.01.
 *  6. Lower bounds of the true distance, with K = 1 + 2^-12 (|dot^| <= 127.1
 *     s ||q||_1 <= 255 e, so every fp32 rounding below is at most a few u
 *     times 256 e < 2^-14 e, which the K - 1 = 2^-12 margin on e absorbs;
 *     the terms with the norms carry their own 2^-20 margin):
 *     - IP (distance -D): lb = -dot^ - K e.
 *     - L2, squared (distance^2 = |q|^2 + |x|^2 - 2D): the canonical norms
 *       n^ = n (1 + t), |t| <= g = 1.01 (dim + 8) u, so
 *           lb2 = (n^_q + n^_x)(1 - g - 2^-20) - 2 dot^ - 2 K e.
 *     - cosine (1 - D / (|q||x|)): w = fl(rq rx), rq = rsqrtf(n^_q) (<= 2 ulp
 *       on the device, 1/sqrtf on the host), is 1 / (|q||x|) within a
 *       factor 1 +- R, R = 1.05 (dim + 24) u; z = fl(dot^ + K e) >= D; y =
 *       fl(z w), so D / (|q||x|) <= y + |y| (R + 2u)(1.01) and
 *           lb = (1 - y) - (|y| R3 + 2^-20),  R3 = 1.1 (dim + 32) u + 2^-20,
 *       the 2^-20 (1 + |y|) covering the three roundings of lb itself.
 *       A zero row gives rx = inf and lb NaN, which sorts after every
 *       number, as its canonical distance (NaN) does.
 *  7. The proof (codevec_i8_proof).  Candidates are kept by (lb, id); the
 *     first kc2 are re-ranked with the canonical distance; cut is lb of the
 *     (kc2+1)-th, so every row not re-ranked has true distance >= cut.  T is
 *     the k-th re-ranked canonical distance.  With |canonical - true| <=
 *     eps_r, a row not re-ranked has canonical >= cut - eps_r; if that is
 *     > T the row is after the k-th in (distance, id) order whatever its id,
 *     so the re-ranked top k is the exact one.
 *     - IP: eps_r = gamma_(dim+8) |q| maxnorm (both inflated by 1e-4 for the
 *       rounding of the norms); canonical IP = -fl(dot), fl(dot) within
 *       gamma_m sum|q_i x_i| <= gamma_m |q||x|.
 *     - L2: the canonical sum of squares C^ >= d2 (1 - g) - (dim + 8) 2^-149
 *       (non-negative terms, fl(q_i - x_i) relative u), and fl(sqrtf) is
 *       correctly rounded and monotone: if cut (1 - g)(1 - 2^-40) - ... >=
 *       nT^2 with nT = nextafterf(T, +inf) (exact in fp64), then the
 *       canonical distance >= nT > T.
 *     - cosine: canonical similarity within 2 g + 5u of the true one
 *       (dot within g, the denominator's relative error g + 2u, |sim| <= 1,
 *       the clamp only moves toward [-1, 1], 1 - sim rounds by 2u):
 *       eps_r = 1.05 (2 dim + 48) u.
 *     The comparisons are in fp64, whose rounding (2^-53 of quantities
 *     below 4 |q| maxnorm or 3) is far inside the 1e-4 / 1.05 margins.
 *     A query with ||q||_1^ outside [2^-32, 2^16] (zero, subnormal or huge
 *     components), a NaN cut or NaN T is never proven: the fp32 scan
 *     answers it.
 */
#ifndef CODEVEC_KNN_I8_H
#define CODEVEC_KNN_I8_H

#include <math.h>

#include "knn.h"

#if defined(__CUDACC__)
#define I8_FN static __host__ __device__ __forceinline__
#else
#define I8_FN static inline
#endif

#define CODEVEC_I8_U          5.9604644775390625e-08      /* 2^-24 */
#define CODEVEC_I8_K          1.000244140625f             /* 1 + 2^-12 */
#define CODEVEC_I8_TINY       9.5367431640625e-07         /* 2^-20 */
#define CODEVEC_I8_LO         2.3283064365386963e-10      /* 2^-32 */
#define CODEVEC_I8_HI         65536.0                     /* 2^16 */

/* Per-dimension constants of the bound (codevec_i8_consts). */
typedef struct CodevecI8Consts
{
    float cq;       /* e = s * fl(||q||_1^ * cq) bounds |dot^ - D| */
    float keep;     /* L2: 1 - g - 2^-20, rounded down */
    float r3;       /* cosine: relative slack of y, rounded up */
} CodevecI8Consts;

/* Round a double up to the nearest float at or above it. */
I8_FN float
codevec_i8_up(double v)
{
    float f = (float) v;

    return (double) f < v ? nextafterf(f, INFINITY) : f;
}

/* Round a double down to the nearest float at or below it. */
I8_FN float
codevec_i8_down(double v)
{
    float f = (float) v;

    return (double) f > v ? nextafterf(f, -INFINITY) : f;
}

/* The constants of the bound for rows of dim components (steps 4-6 above). */
I8_FN CodevecI8Consts
codevec_i8_consts(int dim)
{
    CodevecI8Consts c;
    double u = CODEVEC_I8_U;
    double m = dim + 24.0;
    double gm = m * u / (1.0 - m * u);
    double cd = 0.5 + 7.62939453125e-06 /* 2^-17 */ + 127.0 * (gm + 1.01 * u) + CODEVEC_I8_TINY;
    double g = 1.01 * (dim + 8.0) * u;

    c.cq = codevec_i8_up(cd / ((1.0 - gm) * (1.0 - u) * (1.0 - u)) * (1.0 + 1e-12));
    c.keep = codevec_i8_down(1.0 - g - CODEVEC_I8_TINY);
    c.r3 = codevec_i8_up(1.1 * (dim + 32.0) * u + CODEVEC_I8_TINY);
    return c;
}

/*
 * Candidates the int8 pass re-ranks for k (kc2): its bounds are looser
 * than fp16 scores, so about a hundred rows more than k, a power of two
 * minus one (127 for k <= 27, 2047 from k = 1024 down to 919).  On the CPU
 * model of the pass (test/c/i8bound_test.c) 1M Gaussian or uniform rows of
 * 384 dims needed at most 31 for k = 10: the margin keeps crowded data
 * off the fp32 fallback.
 */
I8_FN int
codevec_i8_kc2(int k)
{
    int want = k + (k / 4 > 100 ? k / 4 : 100), p = 1;

    while (p < want + 1)
        p <<= 1;
    return p - 1 < 2047 ? p - 1 : 2047;
}

/* The scale of a row whose largest |component| is maxabs (0 for a zero row). */
I8_FN float
codevec_i8_scale(float maxabs)
{
    return maxabs / 127.0f;
}

/* The stored byte of component x under scale s: rint(x / s) + 128. */
I8_FN unsigned char
codevec_i8_code(float x, float s)
{
    float t = s > 0.0f ? rintf(x / s) : 0.0f;

    t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;   /* never acts (step 1) */
    return (unsigned char) (int) (t + 128.0f);
}

/*
 * The lower bound of the true distance (L2: of its square) of one row
 * from acc = fl(sum q_i c_i) (step 3), the row's scale s, e1 = fl(||q||_1^ *
 * cq) of the query, the canonical squared norms qn2 and xn2, and, for
 * cosine, rq ~ 1/sqrt(qn2) and rx ~ 1/sqrt(xn2) (each within 2 ulp).
 * Compiled on the device and the host alike (step 6).
 */
I8_FN float
codevec_i8_lower_bound(int metric, float acc, float s, float e1, float qn2, float xn2,
                       float rq, float rx, CodevecI8Consts c)
{
    float dot = s * acc;
    float ek = (s * e1) * CODEVEC_I8_K;

    if (metric == CODEVEC_METRIC_IP)
        return -dot - ek;
    if (metric == CODEVEC_METRIC_L2)
        return (qn2 + xn2) * c.keep - 2.0f * dot - 2.0f * ek;
    {
        float y = (dot + ek) * (rq * rx);

        return (1.0f - y) - (fabsf(y) * c.r3 + (float) CODEVEC_I8_TINY);
    }
}

/*
 * Whether the re-ranked top k is proven exact (step 7): cut is the lower
 * bound of the first row not re-ranked (squared for L2), T the k-th
 * canonical distance, qn2 and q1 the query's canonical |q|^2 and computed
 * ||q||_1, maxnorm the largest row norm of the index.
 */
I8_FN int
codevec_i8_proof(int metric, float cut, float T, float qn2, float q1, float maxnorm, int dim)
{
    double u = CODEVEC_I8_U;
    double g = 1.01 * (dim + 8.0) * u;

    if (isnan(cut) || isinf(cut) || isnan(T) || !(q1 >= CODEVEC_I8_LO && q1 <= CODEVEC_I8_HI) ||
        !(qn2 > 0.0f))
        return 0;
    if (metric == CODEVEC_METRIC_IP)
    {
        double eps = g * sqrt((double) qn2) * 1.0001 * (double) maxnorm * 1.0001;

        return (double) cut - 1.001 * eps > (double) T;
    }
    if (metric == CODEVEC_METRIC_L2)
    {
        double nt = (double) nextafterf(T, INFINITY);
        double lb = (double) cut * (1.0 - g) * (1.0 - 9.094947017729282e-13 /* 2^-40 */)
            - (dim + 8.0) * 1.401298464324817e-45 /* 2^-149 */;

        return cut > 0.0f && !isinf(nt) && lb >= nt * nt;
    }
    return (double) cut - 1.05 * (2.0 * dim + 48.0) * u > (double) T;
}

#endif                          /* CODEVEC_KNN_I8_H */
