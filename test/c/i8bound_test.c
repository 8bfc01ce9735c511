/*
 * i8bound_test.c — the int8 first pass's error bound (cuda/knn_i8.h) on the
 * CPU: the same coder, lower bound and proof functions the GPU kernels
 * compile, fed with random and adversarial rows, against a reference that
 * is exact to about 2^-100 (double-double sums of exact products).
 *
 * For every (row, query, metric) it checks
 *   1. the coding error: |x_i - s c_i| <= s (1/2 + 2^-17);
 *   2. the lower bound: lb <= the true distance (L2: squared), for the
 *      accumulation orders a kernel may use (the kernel's lanes of 4, 8, 16
 *      and 32 with a butterfly, in order, reversed) and with 1/sqrt of the
 *      norms moved 2 ulp either way (the device's rsqrtf);
 *   3. the proof at its edge: T* = the largest float T the proof accepts
 *      for cut = lb (found by bisection on the float order) must be below
 *      the row's canonical distance (knn.h), i.e. a row the proof leaves
 *      out really comes after the k-th.
 * Adversarial rows: components at exactly half a step from a code with the
 * error's sign matching the query's (|D - s A| = s/2 ||q||_1, the bound's
 * own worst case), one maximal component, rows equal up to one step,
 * zero rows, scales near both ends of [2^-32, 2^16], subnormal components,
 * a row equal to the query (distance 0), its negation, and near-parallel
 * pairs.
 * Then the whole first pass on the CPU (Pipeline): every row's bound as a
 * (bound, id) key, the kc2 + 1 smallest kept (kc2 = 127 for k = 10, as
 * knn.cu), the first kc2 re-ranked with the canonical distance, the proof;
 * a proven answer must equal the canonical scan's top k (ids and
 * distances), and the proof rate is printed (random, uniform and
 * near-duplicate rows; I8_PIPELINE_N=1000000 in the environment sizes the
 * uniform set like bench_knn's).  Prints the counts; exit 1 on any
 * violation.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cuda/knn_i8.h"

#define MAXD 2048

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static long     checks, failures, proofs_tight;
static double   worst_ratio[3];    /* max over rows of |true - approx| / bound, per metric */

static double
Uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double) (rng >> 11) * (1.0 / 9007199254740992.0);
}

static float
Gauss(void)
{
    double u1 = Uniform() + 1e-300, u2 = Uniform();

    return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#define FAILF(...) do { if (failures++ < 40) { printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* double-double accumulator: error-free products and sums (Knuth, Dekker) */
typedef struct DD { double hi, lo; } DD;

static void
DDAdd(DD *a, double b)
{
    double s = a->hi + b;
    double bb = s - a->hi;
    double err = (a->hi - (s - bb)) + (b - bb);

    a->hi = s;
    a->lo += err;
}

static void
DDAddProd(DD *a, double x, double y)
{
    double p = x * y;
    double e = fma(x, y, -p);

    DDAdd(a, p);
    DDAdd(a, e);
}

static long double
DDValue(DD a)
{
    return (long double) a.hi + (long double) a.lo;
}

/* The true distance (L2: squared) of q and x, to ~2^-100 relative. */
static long double
TrueDist(int metric, const float *q, const float *x, int dim)
{
    DD d = {0, 0}, qq = {0, 0}, xx = {0, 0};

    for (int i = 0; i < dim; i++)
    {
        if (metric == CODEVEC_METRIC_L2)
        {
            /* q_i - x_i is exact in double-double: split it */
            double hi = (double) q[i] - (double) x[i];
            double lo = ((double) q[i] - hi) - (double) x[i];

            DDAddProd(&d, hi, hi);
            DDAddProd(&d, 2.0 * hi, lo);
            DDAddProd(&d, lo, lo);
        }
        else
            DDAddProd(&d, q[i], x[i]);
        DDAddProd(&qq, q[i], q[i]);
        DDAddProd(&xx, x[i], x[i]);
    }
    if (metric == CODEVEC_METRIC_L2)
        return DDValue(d);
    if (metric == CODEVEC_METRIC_IP)
        return -DDValue(d);
    return 1.0L - DDValue(d) / sqrtl(DDValue(qq) * DDValue(xx));
}

/* Code a row as the upload kernel does: scale, bytes. */
static float
Encode(const float *x, int dim, unsigned char *b)
{
    float mx = 0.0f;

    for (int i = 0; i < dim; i++)
        mx = fmaxf(mx, fabsf(x[i]));
    float s = codevec_i8_scale(mx);

    for (int i = 0; i < dim; i++)
        b[i] = codevec_i8_code(x[i], s);
    return s;
}

/*
 * fl(sum q_i c_i) in one of the orders a kernel may use: order 0..3 the
 * kernel's (g = 4, 8, 16, 32 lanes a row; lane l sums 16-code chunks
 * l, l+g, ... in order, then a butterfly), 4 in order, 5 reversed.
 */
static float
Acc(const float *q, const unsigned char *b, int dim, int order)
{
    if (order < 4)
    {
        int   g = 4 << order;
        float lane[32];

        for (int l = 0; l < g; l++)
        {
            float a = 0.0f;

            for (int c = l; 16 * c < dim; c += g)
                for (int j = 0; j < 16; j++)
                {
                    int i = 16 * c + j;

                    if (i < dim)
                        a = fmaf(q[i], (float) ((int) b[i] - 128), a);
                }
            lane[l] = a;
        }
        for (int off = g / 2; off > 0; off >>= 1)
            for (int l = 0; l < off; l++)
                lane[l] = lane[l] + lane[l + off];
        return lane[0];
    }
    float a = 0.0f;

    for (int t = 0; t < dim; t++)
    {
        int i = order == 4 ? t : dim - 1 - t;

        a = fmaf(q[i], (float) ((int) b[i] - 128), a);
    }
    return a;
}

/* ||q||_1 as query_prep_kernel computes it: 32 lanes, then a butterfly. */
static float
Q1(const float *q, int dim)
{
    float lane[32];

    for (int l = 0; l < 32; l++)
    {
        float a = 0.0f;

        for (int i = l; i < dim; i += 32)
            a += fabsf(q[i]);
        lane[l] = a;
    }
    for (int off = 16; off > 0; off >>= 1)
        for (int l = 0; l < off; l++)
            lane[l] = lane[l] + lane[l + off];
    return lane[0];
}

/* The order-preserving integer of a float (NaN excluded). */
static int64_t
Ord(float f)
{
    int32_t i;

    memcpy(&i, &f, 4);
    return i >= 0 ? (int64_t) i : -(int64_t) (i & 0x7fffffff);
}

static float
FromOrd(int64_t o)
{
    int32_t i = o >= 0 ? (int32_t) o : (int32_t) ((-o) | 0x80000000u);
    float   f;

    memcpy(&f, &i, 4);
    return f;
}

/* Check one (query, row) pair for every metric. */
static void
CheckPair(const float *q, const float *x, int dim, const char *what)
{
    static unsigned char b[MAXD];
    CodevecI8Consts c = codevec_i8_consts(dim);
#ifdef I8_MUTATE
    c.cq *= (float) I8_MUTATE;          /* a weaker bound must be caught */
#endif
    float  s = Encode(x, dim, b);
    float  q1 = Q1(q, dim);
    float  e1 = q1 * c.cq;
    float  qn2 = codevec_canonical_sum(q, q, dim, 0);
    float  xn2 = codevec_canonical_sum(x, x, dim, 0);
    float  maxnorm = sqrtf(xn2);

    /* 1. coding error */
    for (int i = 0; i < dim; i++)
    {
        double err = fabs((double) x[i] - (double) s * ((int) b[i] - 128));

        checks++;
        if (err > (double) s * (0.5 + 7.62939453125e-06))
            FAILF("%s dim %d: coding error %.9g > s/2 (s %.9g, x %.9g, code %d)", what, dim, err,
                  s, x[i], (int) b[i] - 128);
    }
    if (!(q1 >= CODEVEC_I8_LO && q1 <= CODEVEC_I8_HI))
        return;                         /* never proven: nothing to check */

    for (int metric = 0; metric < 3; metric++)
    {
        long double truth = TrueDist(metric, q, x, dim);
        float       lbmin = INFINITY;

        if (metric == CODEVEC_METRIC_COSINE && !(xn2 > 0.0f))
            continue;                   /* zero row: NaN, sorts last */
        for (int order = 0; order < 6; order++)
        {
            float acc = Acc(q, b, dim, order);

            for (int wig = -2; wig <= 2; wig += 2)
            {
                float rq = 1.0f / sqrtf(qn2), rx = 1.0f / sqrtf(xn2);

                for (int w = 0; w < abs(wig); w++)
                {
                    rq = nextafterf(rq, wig > 0 ? INFINITY : 0.0f);
                    rx = nextafterf(rx, wig > 0 ? 0.0f : INFINITY);
                }
                float lb = codevec_i8_lower_bound(metric, acc, s, e1, qn2, xn2, rq, rx, c);

                checks++;
                if (!((long double) lb <= truth))
                    FAILF("%s dim %d metric %d order %d: lower bound %.9g > true %.12Lg", what,
                          dim, metric, order, lb, truth);
                lbmin = fminf(lbmin, lb);
                if (order == 1 && wig == 0)
                {
                    /* how close the row comes to the bound: |approx - true| / (truth - lb) */
                    CodevecI8Consts c0 = c;
                    float       approx;

                    c0.keep = 1.0f;         /* the approximate value: no margin at all */
                    approx = codevec_i8_lower_bound(metric, acc, s, 0.0f, qn2, xn2, rq, rx, c0);
                    long double gap = (long double) approx - (long double) lb;

                    if (gap > 0)
                    {
                        double r = (double) (fabsl((long double) approx - truth) / gap);

                        if (r > worst_ratio[metric])
                            worst_ratio[metric] = r;
                    }
                }
            }
        }

        /* 3. the proof at its edge, for cut = the smallest lb of any order */
        float canon = codevec_canonical_distance(metric, q, x, dim);
        int64_t lo = metric == CODEVEC_METRIC_L2 ? Ord(0.0f) : Ord(-3.4028235e38f), hi = Ord(metric == CODEVEC_METRIC_L2 ? sqrtf(fmaxf(lbmin, 0.0f)) + 1.0f
                                                                      : lbmin + 1.0f);

        if (!codevec_i8_proof(metric, lbmin, FromOrd(lo), qn2, q1, maxnorm, dim))
            continue;                   /* nothing provable (e.g. L2 lb <= 0) */
        while (hi - lo > 1)
        {
            int64_t mid = lo + (hi - lo) / 2;

            if (codevec_i8_proof(metric, lbmin, FromOrd(mid), qn2, q1, maxnorm, dim))
                lo = mid;
            else
                hi = mid;
        }
        float tstar = FromOrd(lo);

        checks++;
        proofs_tight++;
        if (!(canon > tstar))
            FAILF("%s dim %d metric %d: proof accepts T %.9g but the canonical distance is %.9g "
                  "(cut %.9g)", what, dim, metric, tstar, canon, lbmin);
    }
}

/* Fill a Gaussian vector times scale. */
static void
GaussVec(float *v, int dim, float scale)
{
    for (int i = 0; i < dim; i++)
        v[i] = Gauss() * scale;
}

/*
 * A row whose components sit exactly half a step from their codes, on the
 * side of sign(q_i) (sgn = +1) or against it (-1): the coding error is then
 * exactly s/2 per component, all of one sign in q . x.  Codes are even so
 * that rint (half to even) keeps them; component 0 is 127 s and sets s.
 */
static void
HalfStepRow(const float *q, float *x, int dim, float s, int sgn)
{
    x[0] = 127.0f * s;
    for (int i = 1; i < dim; i++)
    {
        int   c = 2 * (int) (Uniform() * 63.0) - 62;    /* even, |c| <= 62 */
        float h = (q[i] >= 0 ? 0.5f : -0.5f) * sgn;

        x[i] = ((float) c + h) * s;
    }
}

/* The GPU's key: the distance's order-preserving bits (NaN last), then the id. */
static uint64_t
Key(float f, uint32_t id)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    if (f != f)
        u = 0x7fc00000u;
    else if (f == 0.0f)
        u = 0;
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t) u << 32) | id;
}

static float
KeyDist(uint64_t key)
{
    uint32_t o = (uint32_t) (key >> 32);
    uint32_t u = (o & 0x80000000u) ? (o ^ 0x80000000u) : ~o;
    float    f;

    memcpy(&f, &u, 4);
    return f;
}

static int
CmpU64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}

/*
 * The first pass of knn.cu on the CPU for nq queries over n rows (kind 0
 * Gaussian, 1 uniform in [-1, 1) as bench_knn's, 2 near-duplicates of 8
 * centres): keys (lower bound, id), the kc2 + 1 smallest, the canonical
 * re-rank of the first kc2 and the proof; a proven answer must be the
 * canonical scan's top k.  Returns the number proven (of nq x 3).
 */
static int
Pipeline(int64_t n, int dim, int nq, int k, int kind)
{
    const int kc2 = codevec_i8_kc2(k);     /* as knn.cu */
    CodevecI8Consts c = codevec_i8_consts(dim);
    float    *X = malloc(sizeof(float) * n * dim);
    unsigned char *B = malloc((size_t) n * dim);
    float    *S = malloc(sizeof(float) * n), *XN = malloc(sizeof(float) * n);
    uint64_t *keys = malloc(sizeof(uint64_t) * n), *ref = malloc(sizeof(uint64_t) * n);
    float     q[MAXD], maxnorm = 0.0f, cen[8][64];
    int       proven = 0;

    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 64; i++)
            cen[j][i] = Gauss();
    for (int64_t r = 0; r < n; r++)
    {
        float *x = X + (size_t) r * dim;

        for (int i = 0; i < dim; i++)
            x[i] = kind == 0 ? Gauss() : kind == 1 ? (float) (Uniform() * 2.0 - 1.0)
                : cen[r % 8][i % 64] + 1e-4f * Gauss();
        S[r] = Encode(x, dim, B + (size_t) r * dim);
        XN[r] = codevec_canonical_sum(x, x, dim, 0);
        maxnorm = fmaxf(maxnorm, sqrtf(XN[r]));
    }
    for (int qi = 0; qi < nq; qi++)
    {
        for (int i = 0; i < dim; i++)
            q[i] = kind == 1 ? (float) (Uniform() * 2.0 - 1.0) : Gauss();
        if (kind == 2)
            memcpy(q, X + (size_t) (qi % 8) * dim, sizeof(float) * dim);
        float q1 = Q1(q, dim), e1 = q1 * c.cq, qn2 = codevec_canonical_sum(q, q, dim, 0);
        float rq = 1.0f / sqrtf(qn2);

        for (int metric = 0; metric < 3; metric++)
        {
            uint64_t top[2048];

            for (int64_t r = 0; r < n; r++)
            {
                const float *x = X + (size_t) r * dim;
                float acc = Acc(q, B + (size_t) r * dim, dim, 1);
                float lb = codevec_i8_lower_bound(metric, acc, S[r], e1, qn2, XN[r], rq,
                                                  1.0f / sqrtf(XN[r]), c);

                keys[r] = Key(lb, (uint32_t) r);
                ref[r] = Key(codevec_canonical_distance(metric, q, x, dim), (uint32_t) r);
            }
            qsort(keys, n, sizeof(uint64_t), CmpU64);
            qsort(ref, n, sizeof(uint64_t), CmpU64);
            int m = n < kc2 ? (int) n : kc2;

            for (int i = 0; i < m; i++)
            {
                uint32_t id = (uint32_t) keys[i];

                top[i] = Key(codevec_canonical_distance(metric, q, X + (size_t) id * dim, dim), id);
            }
            qsort(top, m, sizeof(uint64_t), CmpU64);
            int ok = n <= kc2 ? 1
                : m >= k && codevec_i8_proof(metric, KeyDist(keys[kc2]), KeyDist(top[k - 1]), qn2,
                                             q1, maxnorm, dim);

            checks++;
            if (!ok)
                continue;
            proven++;
            for (int i = 0; i < k && i < m; i++)
                if (top[i] != ref[i])
                {
                    FAILF("pipeline kind %d dim %d metric %d query %d rank %d: proven id %u (%.9g) "
                          "but the scan has %u (%.9g)", kind, dim, metric, qi, i, (uint32_t) top[i],
                          KeyDist(top[i]), (uint32_t) ref[i], KeyDist(ref[i]));
                    break;
                }
        }
    }
    printf("i8bound pipeline: %s n=%lld dim=%d k=%d: %d of %d (query, metric) proven\n",
           kind == 0 ? "gaussian" : kind == 1 ? "uniform" : "near-duplicates", (long long) n, dim, k,
           proven, nq * 3);
    free(X);
    free(B);
    free(S);
    free(XN);
    free(keys);
    free(ref);
    return proven;
}

int
main(void)
{
    static float q[MAXD], x[MAXD], y[MAXD];
    static const int dims[] = {1, 4, 7, 16, 64, 100, 384, 385, 1024, 2048};
    int ndims = (int) (sizeof(dims) / sizeof(dims[0]));

    /* the kernel's byte -> float conversion (bits 0x4B0000bb - (2^23 + 128)) */
    for (int v = 0; v < 256; v++)
    {
        uint32_t bits = 0x4B000000u | (uint32_t) v;
        float    f;

        memcpy(&f, &bits, 4);
        checks++;
        if (f - 8388736.0f != (float) (v - 128))
            FAILF("byte %d converts to %.9g", v, f - 8388736.0f);
    }

    for (int di = 0; di < ndims; di++)
    {
        int dim = dims[di];
        int reps = dim >= 1024 ? 40 : 300;

        for (int r = 0; r < reps; r++)
        {
            float qs = r % 7 == 0 ? 1e-4f : r % 7 == 1 ? 3000.0f : 1.0f;

            GaussVec(q, dim, qs);

            /* random rows, several magnitudes */
            GaussVec(x, dim, r % 5 == 0 ? 1e-6f : r % 5 == 1 ? 1e4f : 1.0f);
            CheckPair(q, x, dim, "gauss");
            for (int i = 0; i < dim; i++)
                x[i] = (float) (Uniform() * 2.0 - 1.0);
            CheckPair(q, x, dim, "uniform");

            /* adversarial: exactly half a step, both signs, several scales */
            {
                float s = r % 4 == 0 ? 0x1p-30f : r % 4 == 1 ? 0x1p+15f : r % 4 == 2 ? 0.0078125f
                                                                          : 3.0517578125e-05f;

                HalfStepRow(q, x, dim, s, +1);
                CheckPair(q, x, dim, "half-step +");
                HalfStepRow(q, x, dim, s, -1);
                CheckPair(q, x, dim, "half-step -");
            }

            /* one maximal component, the rest tiny (some subnormal) */
            for (int i = 0; i < dim; i++)
                x[i] = (float) (Uniform() - 0.5) * (i % 3 == 0 ? 1e-40f : 1e-3f);
            x[(int) (Uniform() * dim)] = r % 2 ? 50.0f : -50.0f;
            CheckPair(q, x, dim, "one spike");

            /* rows equal up to one step: x and x + s e_j */
            GaussVec(x, dim, 1.0f);
            memcpy(y, x, sizeof(float) * dim);
            {
                float mx = 0.0f;

                for (int i = 0; i < dim; i++)
                    mx = fmaxf(mx, fabsf(x[i]));
                int j = (int) (Uniform() * dim);

                if (fabsf(y[j]) < mx)
                    y[j] += codevec_i8_scale(mx) * (r % 2 ? 1.0f : -1.0f);
            }
            CheckPair(q, x, dim, "step pair a");
            CheckPair(q, y, dim, "step pair b");

            /* the query itself, its negation, a near-parallel copy, a zero row */
            CheckPair(q, q, dim, "row = query");
            for (int i = 0; i < dim; i++)
                y[i] = -q[i];
            CheckPair(q, y, dim, "row = -query");
            for (int i = 0; i < dim; i++)
                y[i] = q[i] * 1.0001f + 1e-6f * qs * Gauss();
            CheckPair(q, y, dim, "near-parallel");
            memset(y, 0, sizeof(float) * dim);
            CheckPair(q, y, dim, "zero row");

            /* query with components at exactly +-1 and the row a half-step row */
            for (int i = 0; i < dim; i++)
                q[i] = Uniform() < 0.5 ? 1.0f : -1.0f;
            HalfStepRow(q, x, dim, 0.0078125f, +1);
            CheckPair(q, x, dim, "sign query, half-step");
        }
    }
    {
        const char *pn = getenv("I8_PIPELINE_N");
        int64_t     un = pn ? atoll(pn) : 30000;
        int         pg = Pipeline(30000, 384, 6, 10, 0);
        int         pu = Pipeline(un, 384, 6, 10, 1);

        Pipeline(6000, 384, 4, 10, 2);              /* crowded: mostly unproven, must stay exact */
        Pipeline(100, 100, 4, 10, 0);               /* n <= kc2: every row re-ranked */
        checks++;
        if (pg + pu == 0)
            FAILF("pipeline: no random query was proven (the first pass would always fall back)");
    }
    printf("i8bound: %ld checks, %ld proofs at their edge, %ld failures\n", checks, proofs_tight,
           failures);
    printf("i8bound: largest |approx - true| / bound: L2 %.3f, IP %.3f, cosine %.3f (<= 1 by the bound)\n",
           worst_ratio[0], worst_ratio[1], worst_ratio[2]);
    printf(failures ? "RESULT: FAIL\n" : "RESULT: PASS\n");
    return failures ? 1 : 0;
}
