/*
 * qlinear.c
 *	  int8 linear layers for the CPU encoder, through oneDNN.
 *
 * The scheme is dynamic quantization as in Jacob et al., "Quantization and
 * Training of Neural Networks for Efficient Integer-Arithmetic-Only
 * Inference" (CVPR 2018), with finer scales and SmoothQuant's smoothing
 * (Xiao et al., ICML 2023): for y = x W^T + b, with W's input columns
 * first multiplied by t[k] and x's channels divided by it (QuantizeLinear),
 *
 *	  weights   W[n,k] ~ sw[n] * Wq[n,k],  Wq in [-127, 127], sw[n] = max_k |W[n,k]| / 127
 *	            (symmetric, one scale per output channel; done once per model)
 *	  inputs    x[i,k] ~ sx[i] * (xq[i,k] - zx[i]),  xq in [0, 255]
 *	            (asymmetric, one scale and zero point per row, on every call)
 *	  output    y[i,n] = sx[i] sw[n] (sum_k xq[i,k] Wq[n,k] - zx[i] c[n]) + b[n],
 *	            c[n] = sum_k Wq[n,k]
 *
 * The sum over k is an exact int32 GEMM (u8 x s8 -> s32), which oneDNN's
 * matmul runs with the best integer instructions the CPU has (AMX tiles,
 * AVX512-VNNI or AVX-VNNI vpdpbusd); the zero-point correction, both
 * scales and the bias are applied here in fp32.  A row's result depends on
 * that row alone, so a text embeds the same alone or in any batch.
 *
 * Why smoothing: BERT's activations have a few outlier channels, which
 * per-row quantization spreads over the whole row's 256 levels.  Without
 * it int8 gave mean cosine 0.99890 to fp32 on the 215 fixture strings
 * (min 0.99348); with it (alpha 0.4, picked from 0.15-0.85 on those
 * strings) 0.99927 (min 0.99673).  t[] comes from one fp32 pass over
 * pseudo-random tokens when a model is attached (Calibrate).
 *
 * oneDNN binds lazily: libdnnl.so.2 (Debian's libdnnl2) is dlopen'ed the
 * first time int8 is asked for, as blas.c does for OpenBLAS, so a process
 * that stays on fp32 never maps it or starts its OpenMP runtime.
 *
 * Primitives.  oneDNN's fast matmul kernels (brgemm) are generated for a
 * fixed M; with a run-time M it falls back to a generic GEMM ten times
 * slower.  So the row count is rounded up to a bucket (RowsBucket) and one
 * primitive per (in, out, bucket) is kept in a small cache; the extra rows
 * of the input buffer are zero and their results ignored.  The weights are
 * reordered once into the layout the primitives want (queried from a
 * primitive made with format "any"); it does not depend on M.
 */
#include "qlinear.h"
#include "encoder.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>

#define DNNL_SONAME "libdnnl.so.2"
#define QLINEAR_CACHE_SIZE 128	/* primitives kept (4 shapes x row buckets x thread counts) */
#define QLINEAR_MAX_THREADS 64	/* threads of one parallel_for; each has its own scratch */
#ifndef QLINEAR_SMOOTH_ALPHA
#define QLINEAR_SMOOTH_ALPHA 0.4f	/* SmoothQuant's migration strength (bench/embed) */
#endif
#define QLINEAR_CHUNK_ROWS 128		/* rows per thread per GEMM call (QLinearForward) */
#define QLINEAR_CALIB_SEQS 4		/* calibration: random-token sequences ... */
#define QLINEAR_CALIB_LEN 128		/* ... of up to this many tokens */

/* the oneDNN entry points used, bound by BindDnnl() */
static struct
{
	int			tried;			/* BindDnnl ran (ok tells how it went) */
	int			ok;
	char		why[256];		/* why int8 is unavailable */
	void	   *handle;
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	dnnl_cpu_isa_t isa;
	dnnl_status_t (*engine_create) (dnnl_engine_t *, dnnl_engine_kind_t, size_t);
	dnnl_status_t (*stream_create) (dnnl_stream_t *, dnnl_engine_t, unsigned);
	dnnl_status_t (*md_init_by_tag) (dnnl_memory_desc_t *, int, const dnnl_dims_t,
									 dnnl_data_type_t, dnnl_format_tag_t);
	size_t		(*md_get_size) (const dnnl_memory_desc_t *);
	dnnl_status_t (*matmul_desc_init) (dnnl_matmul_desc_t *, const dnnl_memory_desc_t *,
									   const dnnl_memory_desc_t *, const dnnl_memory_desc_t *,
									   const dnnl_memory_desc_t *);
	dnnl_status_t (*pd_create) (dnnl_primitive_desc_t *, const_dnnl_op_desc_t,
								const_dnnl_primitive_attr_t, dnnl_engine_t,
								const_dnnl_primitive_desc_t);
	const dnnl_memory_desc_t *(*pd_query_md) (const_dnnl_primitive_desc_t, dnnl_query_t, int);
	dnnl_status_t (*pd_destroy) (dnnl_primitive_desc_t);
	dnnl_status_t (*reorder_pd_create) (dnnl_primitive_desc_t *, const dnnl_memory_desc_t *,
										dnnl_engine_t, const dnnl_memory_desc_t *,
										dnnl_engine_t, const_dnnl_primitive_attr_t);
	dnnl_status_t (*prim_create) (dnnl_primitive_t *, const_dnnl_primitive_desc_t);
	dnnl_status_t (*prim_destroy) (dnnl_primitive_t);
	dnnl_status_t (*prim_execute) (const_dnnl_primitive_t, dnnl_stream_t, int,
								   const dnnl_exec_arg_t *);
	dnnl_status_t (*mem_create) (dnnl_memory_t *, const dnnl_memory_desc_t *,
								 dnnl_engine_t, void *);
	dnnl_status_t (*mem_destroy) (dnnl_memory_t);
	dnnl_status_t (*stream_wait) (dnnl_stream_t);
	dnnl_cpu_isa_t (*get_isa) (void);
	dnnl_status_t (*attr_create) (dnnl_primitive_attr_t *);
	dnnl_status_t (*attr_set_scratchpad_mode) (dnnl_primitive_attr_t, dnnl_scratchpad_mode_t);
	dnnl_status_t (*attr_destroy) (dnnl_primitive_attr_t);
	void		(*omp_set_threads) (int);	/* libgomp, oneDNN's threading */
	int			(*omp_max_threads) (void);	/* its nthreads-var, what a region gets */
	/* libgomp's entry for "#pragma omp parallel" (GCC's ABI) and its queries */
	void		(*gomp_parallel) (void (*fn) (void *), void *data, unsigned threads, unsigned flags);
	int			(*omp_thread_num) (void);
	int			(*omp_num_threads) (void);
}			dnnl;

/* the CPU has AVX-512 (set by BindDnnl): the sixteen-lane dequantization */
static int	have_avx512 = 0;

/* One linear layer, quantized. */
typedef struct QLinear
{
	int			in,
				out;
	int8_t	   *w;				/* Wq in oneDNN's layout for the matmul */
	float	   *w_scale;		/* [out] sw */
	int32_t    *w_sum;			/* [out] c = row sums of Wq */
	const float *bias;			/* [out], the fp32 model's */
	float	   *x_mul;			/* [in] 1 / t[k]: the smoothing of input channel k */
	float	   *x_max;			/* [in] max |x[., k]| seen while calibrating */
} QLinear;

/* The per-call scratch of one linear: one per OpenMP thread number. */
typedef struct QScratch
{
	unsigned char *xq;			/* quantized input, rows x in */
	int32_t    *acc;			/* int32 results, rows x out */
	float	   *xs;				/* per-row scales */
	int		   *xz;				/* per-row zero points */
	void	   *pad;			/* oneDNN's scratchpad for the matmul */
	size_t		xq_cap,
				acc_cap,
				row_cap,
				pad_cap;
} QScratch;

/*
 * A model's quantized layers and the scratch of their calls.  Linears run
 * on several threads at once when the encoder gives each thread its own
 * sequences (encoder.c, RunGroups): a call made from thread t of a
 * parallel_for region (omp_get_thread_num() = t; 0 outside any) uses
 * scratch[t], so concurrent calls never share a buffer.
 */
typedef struct QModel
{
	int			layers;
	int			calibrating;	/* observe() records input ranges */
	QLinear    *lin;			/* [layers * 4]: QKV, attention out, FFN in, FFN out */
	dnnl_memory_desc_t wmd[4];	/* weights layout of each of the four shapes */
	QScratch	scratch[QLINEAR_MAX_THREADS];
	void	   *shared;			/* cv_qlinear_share's mapping of every w, w_scale, w_sum, x_mul */
	size_t		shared_len;
} QModel;

/*
 * The primitive cache: one matmul per (in, out, row bucket, threads), the
 * thread count being the one oneDNN plans the primitive's work split for
 * (omp_get_max_threads() when it is made).  Shared by the threads that run
 * linears at once, so under cache_lock; a primitive being executed (busy)
 * is never evicted.  The primitives are made with a user-managed
 * scratchpad (each thread passes its own, QScratch.pad): oneDNN's own is
 * shared by every execution of a primitive, and two threads running the
 * same matmul at once got wrong results through it.
 */
static struct
{
	int			in,
				out,
				rows,
				threads;
	int			busy;			/* executions under way */
	dnnl_primitive_t prim;
	dnnl_memory_desc_t pad_md;	/* its scratchpad */
	unsigned long used;
}			cache[QLINEAR_CACHE_SIZE];
static unsigned long cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* a stream per OpenMP thread number (oneDNN's streams are not for concurrent use); [0] is dnnl.stream */
static dnnl_stream_t thread_stream[QLINEAR_MAX_THREADS];

/* Give the stream of OpenMP thread tid, creating it on first use; NULL on failure. */
static dnnl_stream_t
ThreadStream(int tid)
{
	if (tid == 0)
		return dnnl.stream;
	if (thread_stream[tid] == NULL &&
		dnnl.stream_create(&thread_stream[tid], dnnl.engine, dnnl_stream_default_flags) != dnnl_success)
		thread_stream[tid] = NULL;
	return thread_stream[tid];
}

#define BIND(field, name) \
	do { \
		*(void **) &dnnl.field = dlsym(dnnl.handle, name); \
		if (dnnl.field == NULL) \
		{ \
			snprintf(dnnl.why, sizeof(dnnl.why), "%s has no %s", DNNL_SONAME, name); \
			return; \
		} \
	} while (0)

/* Open oneDNN, resolve what is used, make the engine and stream, check the ISA. */
static void
BindDnnl(void)
{
	dnnl.tried = 1;

	/*
	 * libgomp reads this when it loads (with libdnnl, just below).  Its
	 * default spins idle threads between parallel regions; on a database
	 * server's shared cores that burnt as much CPU as the work (2 threads,
	 * 215 strings: 6.8 CPU-s instead of 2.9) and was slower in wall time
	 * too (39 s instead of 18 s, the machine busy).  A setting already in
	 * the environment wins.
	 */
	setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
	dnnl.handle = dlopen(DNNL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (dnnl.handle == NULL)
	{
		snprintf(dnnl.why, sizeof(dnnl.why),
				 "could not load %s (Debian's libdnnl2): %s", DNNL_SONAME, dlerror());
		return;
	}
	BIND(engine_create, "dnnl_engine_create");
	BIND(stream_create, "dnnl_stream_create");
	BIND(md_init_by_tag, "dnnl_memory_desc_init_by_tag");
	BIND(md_get_size, "dnnl_memory_desc_get_size");
	BIND(matmul_desc_init, "dnnl_matmul_desc_init");
	BIND(pd_create, "dnnl_primitive_desc_create");
	BIND(pd_query_md, "dnnl_primitive_desc_query_md");
	BIND(pd_destroy, "dnnl_primitive_desc_destroy");
	BIND(reorder_pd_create, "dnnl_reorder_primitive_desc_create");
	BIND(prim_create, "dnnl_primitive_create");
	BIND(prim_destroy, "dnnl_primitive_destroy");
	BIND(prim_execute, "dnnl_primitive_execute");
	BIND(mem_create, "dnnl_memory_create");
	BIND(mem_destroy, "dnnl_memory_destroy");
	BIND(stream_wait, "dnnl_stream_wait");
	BIND(get_isa, "dnnl_get_effective_cpu_isa");
	BIND(attr_create, "dnnl_primitive_attr_create");
	BIND(attr_set_scratchpad_mode, "dnnl_primitive_attr_set_scratchpad_mode");
	BIND(attr_destroy, "dnnl_primitive_attr_destroy");
	/* libgomp comes with libdnnl (its threading runtime); optional */
	*(void **) &dnnl.omp_set_threads = dlsym(dnnl.handle, "omp_set_num_threads");
	*(void **) &dnnl.omp_max_threads = dlsym(dnnl.handle, "omp_get_max_threads");
	*(void **) &dnnl.gomp_parallel = dlsym(dnnl.handle, "GOMP_parallel");
	*(void **) &dnnl.omp_thread_num = dlsym(dnnl.handle, "omp_get_thread_num");
	*(void **) &dnnl.omp_num_threads = dlsym(dnnl.handle, "omp_get_num_threads");
	if (!dnnl.gomp_parallel || !dnnl.omp_thread_num || !dnnl.omp_num_threads)
		dnnl.gomp_parallel = NULL;	/* then everything of ours runs on one thread */

	dnnl.isa = dnnl.get_isa();
	have_avx512 = __builtin_cpu_supports("avx512f");
	if (dnnl.isa != dnnl_cpu_isa_avx512_core_amx &&
		dnnl.isa != dnnl_cpu_isa_avx512_core_bf16 &&
		dnnl.isa != dnnl_cpu_isa_avx512_core_vnni &&
		dnnl.isa != dnnl_cpu_isa_avx2_vnni)
	{
		snprintf(dnnl.why, sizeof(dnnl.why),
				 "the CPU has no integer dot-product instruction (AMX-INT8, AVX512-VNNI or AVX-VNNI) that oneDNN uses");
		return;
	}
	if (dnnl.engine_create(&dnnl.engine, dnnl_cpu, 0) != dnnl_success ||
		dnnl.stream_create(&dnnl.stream, dnnl.engine, dnnl_stream_default_flags) != dnnl_success)
	{
		snprintf(dnnl.why, sizeof(dnnl.why), "oneDNN could not create a CPU engine");
		return;
	}
	dnnl.ok = 1;
}

/* See qlinear.h. */
CvStatus
cv_int8_available(char *errbuf, size_t errlen)
{
	if (!dnnl.tried)
		BindDnnl();
	if (dnnl.ok)
		return CV_OK;
	snprintf(errbuf, errlen, "%s", dnnl.why);
	return CV_ERR_UNSUPPORTED;
}

/* See qlinear.h. */
const char *
cv_int8_isa(void)
{
	if (!dnnl.tried)
		BindDnnl();
	if (!dnnl.ok)
		return "none";
	switch (dnnl.isa)
	{
		case dnnl_cpu_isa_avx512_core_amx:
			return "amx";
		case dnnl_cpu_isa_avx512_core_bf16:
		case dnnl_cpu_isa_avx512_core_vnni:
			return "avx512_vnni";
		case dnnl_cpu_isa_avx2_vnni:
			return "avx_vnni";
		default:
			return "none";
	}
}

/* See qlinear.h. */
int
cv_int8_omp_threads(int n)
{
	int			prev;

	if (!dnnl.tried)
		BindDnnl();
	if (!dnnl.ok || dnnl.omp_set_threads == NULL || dnnl.omp_max_threads == NULL)
		return 0;
	prev = dnnl.omp_max_threads();
	if (n >= 1)
		dnnl.omp_set_threads(n);
	return prev;
}

/*
 * Round a row count up to the bucket its primitive is made for: multiples
 * of 16 up to 128 rows, of 64 up to 1024, then of 256 (at most 1/8 extra
 * rows above 128, a few hundred distinct primitives at most in practice).
 */
static int
RowsBucket(int n)
{
	if (n <= 128)
		return (n + 15) & ~15;
	if (n <= 1024)
		return (n + 63) & ~63;
	return (n + 255) & ~255;
}

/* Describe src (rows x in, u8), weights (in x out, s8, given tag) and dst (rows x out, s32). */
static int
MatmulDesc(int rows, int in, int out, const dnnl_memory_desc_t *wmd,
		   dnnl_matmul_desc_t *desc)
{
	dnnl_memory_desc_t src,
				wany,
				dst;
	dnnl_dims_t sd = {rows, in},
				wd = {in, out},
				dd = {rows, out};

	if (dnnl.md_init_by_tag(&src, 2, sd, dnnl_u8, dnnl_ab) != dnnl_success ||
		dnnl.md_init_by_tag(&dst, 2, dd, dnnl_s32, dnnl_ab) != dnnl_success)
		return 0;
	if (wmd == NULL)
	{
		if (dnnl.md_init_by_tag(&wany, 2, wd, dnnl_s8, dnnl_format_tag_any) != dnnl_success)
			return 0;
		wmd = &wany;
	}
	return dnnl.matmul_desc_init(desc, &src, wmd, NULL, &dst) == dnnl_success;
}

/*
 * Give the cached matmul primitive for (in, out, rows) planned for
 * `threads` threads (the caller has set omp_set_num_threads(threads) in
 * its thread), creating it on a miss, marked busy until ReleasePrimitive;
 * *slot receives its cache entry.  NULL on failure (or when every entry is
 * busy, which takes more than QLINEAR_CACHE_SIZE threads).
 */
static dnnl_primitive_t
GetPrimitive(const dnnl_memory_desc_t *wmd, int in, int out, int rows, int threads, int *slot)
{
	int			i,
				victim = -1;
	dnnl_matmul_desc_t desc;
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t prim;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_memory_desc_t pad_md;

	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < QLINEAR_CACHE_SIZE; i++)
	{
		if (cache[i].prim && cache[i].in == in && cache[i].out == out &&
			cache[i].rows == rows && cache[i].threads == threads)
		{
			cache[i].used = ++cache_clock;
			cache[i].busy++;
			*slot = i;
			pthread_mutex_unlock(&cache_lock);
			return cache[i].prim;
		}
		if (cache[i].busy == 0 && (victim < 0 || cache[i].used < cache[victim].used))
			victim = i;
	}
	/* made under the lock: rare (a few dozen per process), and simplest */
	prim = NULL;
	if (victim >= 0 && MatmulDesc(rows, in, out, wmd, &desc) &&
		dnnl.attr_create(&attr) == dnnl_success &&
		dnnl.attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
		dnnl.pd_create(&pd, &desc, attr, dnnl.engine, NULL) == dnnl_success)
	{
		const dnnl_memory_desc_t *q = dnnl.pd_query_md(pd, dnnl_query_scratchpad_md, 0);

		if (q)
			pad_md = *q;
		if (q == NULL || dnnl.prim_create(&prim, pd) != dnnl_success)
			prim = NULL;
		dnnl.pd_destroy(pd);
	}
	if (attr)
		dnnl.attr_destroy(attr);
	if (prim == NULL)
	{
		pthread_mutex_unlock(&cache_lock);
		return NULL;
	}
	if (cache[victim].prim)
		dnnl.prim_destroy(cache[victim].prim);
	cache[victim].in = in;
	cache[victim].out = out;
	cache[victim].rows = rows;
	cache[victim].threads = threads;
	cache[victim].prim = prim;
	cache[victim].pad_md = pad_md;
	cache[victim].busy = 1;
	cache[victim].used = ++cache_clock;
	*slot = victim;
	pthread_mutex_unlock(&cache_lock);
	return prim;
}

/* Mark the primitive GetPrimitive gave in *slot as no longer executing. */
static void
ReleasePrimitive(int slot)
{
	pthread_mutex_lock(&cache_lock);
	cache[slot].busy--;
	pthread_mutex_unlock(&cache_lock);
}

/*
 * Quantize one row of k floats to u8 (see cv_quantize_rows_u8) with AVX2,
 * eight lanes at a time.  Every CPU int8 runs on has AVX2 (AVX-VNNI and
 * AVX512-VNNI CPUs do), so only cv_qlinear_attach's callers reach it.
 * _mm256_cvtps_epi32 rounds to nearest even, as nearbyintf does.
 */
__attribute__((target("avx2,fma")))
static void
QuantizeRowAvx2(const float *r, const float *mul, int k, unsigned char *o,
				float *scale, int *zp)
{
	__m256		vlo = _mm256_setzero_ps(),
				vhi = _mm256_setzero_ps();
	float		lo,
				hi,
				s,
				inv,
				z,
				buf[8];
	int			j = 0;

#define LOAD8(p) (mul ? _mm256_mul_ps(_mm256_loadu_ps(r + (p)), _mm256_loadu_ps(mul + (p))) \
				  : _mm256_loadu_ps(r + (p)))
#define LOAD1(p) (mul ? r[p] * mul[p] : r[p])
	for (; j + 8 <= k; j += 8)
	{
		__m256		v = LOAD8(j);

		vlo = _mm256_min_ps(vlo, v);
		vhi = _mm256_max_ps(vhi, v);
	}
	_mm256_storeu_ps(buf, vlo);
	lo = 0;
	for (int t = 0; t < 8; t++)
		lo = buf[t] < lo ? buf[t] : lo;
	_mm256_storeu_ps(buf, vhi);
	hi = 0;
	for (int t = 0; t < 8; t++)
		hi = buf[t] > hi ? buf[t] : hi;
	for (int t = j; t < k; t++)
	{
		float		v = LOAD1(t);

		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	s = (hi - lo) / 255.0f;
	if (!(s > 0) || !isfinite(s))
		s = 1.0f;				/* an all-zero row (or non-finite input) */
	inv = 1.0f / s;
	z = nearbyintf(-lo * inv);
	z = z < 0 ? 0 : (z > 255 ? 255 : z);
	{
		__m256		vinv = _mm256_set1_ps(inv);
		__m256i		vz = _mm256_set1_epi32((int) z);

		for (j = 0; j + 16 <= k; j += 16)
		{
			__m256i		a = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(LOAD8(j), vinv)), vz);
			__m256i		b = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(LOAD8(j + 8), vinv)), vz);
			/* saturate to 0..255: packs (i32 -> i16), then packus (i16 -> u8) */
			__m256i		w = _mm256_packs_epi32(a, b);	/* a0-3 b0-3 a4-7 b4-7 */
			__m128i		lo128 = _mm256_castsi256_si128(w),
						hi128 = _mm256_extracti128_si256(w, 1);
			__m128i		u8 = _mm_packus_epi16(lo128, hi128);	/* a0-3 b0-3 a4-7 b4-7 */

			u8 = _mm_shuffle_epi32(u8, _MM_SHUFFLE(3, 1, 2, 0));	/* a0-7 b0-7 */
			_mm_storeu_si128((__m128i *) (o + j), u8);
		}
	}
	for (; j < k; j++)
	{
		float		v = nearbyintf(LOAD1(j) * inv) + z;

		v = v < 0 ? 0 : (v > 255 ? 255 : v);
		o[j] = (unsigned char) v;
	}
#undef LOAD8
#undef LOAD1
	*scale = s;
	*zp = (int) z;
}

/* See qlinear.h. */
void
cv_quantize_rows_u8(const float *x, int n, int k, unsigned char *q, float *scale, int *zp)
{
	int			i;

	for (i = 0; i < n; i++)
		QuantizeRowAvx2(x + (size_t) i * k, NULL, k, q + (size_t) i * k, &scale[i], &zp[i]);
}

/* Compute one output row y = sx sw (acc - zx c) + b with AVX2 (see QuantizeRowAvx2). */
__attribute__((target("avx2,fma")))
static void
DequantRowAvx2(const int32_t *a, int out, float sx, int32_t zx, const int32_t *wsum,
			   const float *wscale, const float *bias, float *o)
{
	__m256		vsx = _mm256_set1_ps(sx);
	__m256i		vzx = _mm256_set1_epi32(zx);
	int			j = 0;

	for (; j + 8 <= out; j += 8)
	{
		__m256i		c = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *) (a + j)),
										 _mm256_mullo_epi32(vzx, _mm256_loadu_si256((const __m256i *) (wsum + j))));
		__m256		s = _mm256_mul_ps(vsx, _mm256_loadu_ps(wscale + j));

		_mm256_storeu_ps(o + j, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), s, _mm256_loadu_ps(bias + j)));
	}
	for (; j < out; j++)
		o[j] = (float) (a[j] - zx * wsum[j]) * (sx * wscale[j]) + bias[j];
}

/* DequantRowAvx2 sixteen lanes wide, for CPUs with AVX-512 (all AMX and AVX512-VNNI ones). */
__attribute__((target("avx512f")))
static void
DequantRowAvx512(const int32_t *a, int out, float sx, int32_t zx, const int32_t *wsum,
				 const float *wscale, const float *bias, float *o)
{
	__m512		vsx = _mm512_set1_ps(sx);
	__m512i		vzx = _mm512_set1_epi32(zx);
	int			j = 0;

	for (; j + 16 <= out; j += 16)
	{
		__m512i		c = _mm512_sub_epi32(_mm512_loadu_si512(a + j),
										 _mm512_mullo_epi32(vzx, _mm512_loadu_si512(wsum + j)));
		__m512		s = _mm512_mul_ps(vsx, _mm512_loadu_ps(wscale + j));

		_mm512_storeu_ps(o + j, _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), s, _mm512_loadu_ps(bias + j)));
	}
	for (; j < out; j++)
		o[j] = (float) (a[j] - zx * wsum[j]) * (sx * wscale[j]) + bias[j];
}

/* one parallel_for call: the function and its item count */
typedef struct ParallelJob
{
	void		(*fn) (void *arg, int begin, int end, int tid);
	void	   *arg;
	int			n;
} ParallelJob;

/* Run this OpenMP thread's contiguous share of a ParallelJob. */
static void
ParallelTrampoline(void *data)
{
	ParallelJob *job = data;
	int			tid = dnnl.omp_thread_num(),
				nt = dnnl.omp_num_threads();
	int			begin = (int) ((long) job->n * tid / nt),
				end = (int) ((long) job->n * (tid + 1) / nt);

	if (begin < end)
		job->fn(job->arg, begin, end, tid);
}

/*
 * Run fn over [0, n) split into contiguous ranges on up to `threads`
 * threads of the OpenMP pool oneDNN already uses (libgomp, reached through
 * the dlopen'ed handle, so codevec.so never links it); in this thread when
 * threads <= 1.  fn must not raise errors or allocate server memory.
 */
static void
QParallelFor(int threads, int n, void (*fn) (void *arg, int begin, int end, int tid), void *arg)
{
	ParallelJob job = {fn, arg, n};

	if (threads > QLINEAR_MAX_THREADS)
		threads = QLINEAR_MAX_THREADS;	/* each thread number has its own scratch */
	if (threads <= 1 || n <= 1 || dnnl.gomp_parallel == NULL)
	{
		if (n > 0)
			fn(arg, 0, n, 0);
		return;
	}
	dnnl.gomp_parallel(ParallelTrampoline, &job, (unsigned) (threads < n ? threads : n), 0);
}

/* Grow one thread's scratch buffers for rows x in inputs (in > 0) and rows x out results (out > 0). */
static int
EnsureScratch(QScratch *qm, size_t rows, size_t in, size_t out)
{
	if (in > 0 && rows * in > qm->xq_cap)
	{
		free(qm->xq);
		qm->xq = calloc(rows * in, 1);	/* padding rows stay zero */
		qm->xq_cap = qm->xq ? rows * in : 0;
	}
	if (out > 0 && rows * out > qm->acc_cap)
	{
		free(qm->acc);
		qm->acc = malloc(rows * out * sizeof(int32_t));
		qm->acc_cap = qm->acc ? rows * out : 0;
	}
	if (in > 0 && rows > qm->row_cap)
	{
		free(qm->xs);
		free(qm->xz);
		qm->xs = malloc(rows * sizeof(float));
		qm->xz = malloc(rows * sizeof(int));
		qm->row_cap = (qm->xs && qm->xz) ? rows : 0;
	}
	return (in == 0 || (qm->xq && qm->xs && qm->xz)) && (out == 0 || qm->acc);
}

/* what QuantizeRows / DequantRows work on */
typedef struct RowsArgs
{
	QScratch   *qm;				/* the calling thread's scratch */
	const QLinear *L;
	const float *x;
	float	   *y;
	int			r0;				/* DequantRows: the chunk's first row (acc holds rows r0 ...) */
	void		(*epilogue) (float *y, size_t count);
} RowsArgs;

/* Quantize rows [begin, end) of a linear's input into the scratch. */
static void
QuantizeRows(void *arg, int begin, int end, int tid)
{
	RowsArgs   *a = arg;

	for (int i = begin; i < end; i++)
		QuantizeRowAvx2(a->x + (size_t) i * a->L->in, a->L->x_mul, a->L->in,
						a->qm->xq + (size_t) i * a->L->in, &a->qm->xs[i], &a->qm->xz[i]);
}

/* Dequantize rows r0 + [begin, end) of a linear's int32 results into y, then run the epilogue on them. */
static void
DequantRows(void *arg, int begin, int end, int tid)
{
	RowsArgs   *a = arg;
	const QLinear *L = a->L;

	for (int i = begin; i < end; i++)
	{
		int			r = a->r0 + i;

		if (have_avx512)
			DequantRowAvx512(a->qm->acc + (size_t) i * L->out, L->out, a->qm->xs[r], a->qm->xz[r],
							 L->w_sum, L->w_scale, L->bias, a->y + (size_t) r * L->out);
		else
			DequantRowAvx2(a->qm->acc + (size_t) i * L->out, L->out, a->qm->xs[r], a->qm->xz[r],
						   L->w_sum, L->w_scale, L->bias, a->y + (size_t) r * L->out);
	}
	if (a->epilogue && begin < end)
		a->epilogue(a->y + (size_t) (a->r0 + begin) * L->out, (size_t) (end - begin) * L->out);
}

/*
 * Run linear `which` of `layer` on n rows; see CvInt8Ops in model.h.
 *
 * All rows are quantized first, then the GEMM runs chunk by chunk of
 * QLINEAR_CHUNK_ROWS rows per thread, each chunk's int32 results
 * dequantized (and given to the epilogue) right after its GEMM: the
 * results of a chunk (at most 128 x 1536 x 4 bytes per thread) stay in the
 * core's L2 instead of a whole batch's going out to memory and back (a
 * batch of 32 snippets is 3,000 rows: 19 MB for FFN in).  Each row's
 * result is the same whatever the chunking: the GEMM is exact.
 *
 * May be called from several threads of one parallel_for region at once
 * (the encoder's groups of sequences, threads = 1 each): each uses the
 * scratch, stream and oneDNN scratchpad of its OpenMP thread number.
 */
static CvStatus
QLinearForward(void *q, int layer, int which, const float *x, int n, float *y,
			   void (*epilogue) (float *y, size_t count), int threads,
			   char *errbuf, size_t errlen)
{
	QModel	   *qmodel = q;
	const QLinear *L = &qmodel->lin[layer * 4 + which];
	int			tid = dnnl.gomp_parallel ? dnnl.omp_thread_num() : 0;
	QScratch   *qm = &qmodel->scratch[tid < QLINEAR_MAX_THREADS ? tid : 0];
	int			chunk = QLINEAR_CHUNK_ROWS * (threads > 1 ? threads : 1);
	int			last = n > 0 ? (n - 1) / chunk * chunk : 0; /* first row of the last chunk */
	int			rows_alloc = last + RowsBucket(n - last);
	int			acc_rows = RowsBucket(n < chunk ? n : chunk);
	RowsArgs	ra;

	if (tid >= QLINEAR_MAX_THREADS)
	{
		snprintf(errbuf, errlen, "int8 linear called from OpenMP thread %d (at most %d)",
				 tid, QLINEAR_MAX_THREADS);
		return CV_ERR_UNSUPPORTED;
	}
	if (!EnsureScratch(qm, rows_alloc, L->in, 0) || !EnsureScratch(qm, acc_rows, 0, L->out))
	{
		snprintf(errbuf, errlen, "out of memory for int8 buffers of %d rows", rows_alloc);
		return CV_ERR_NOMEM;
	}
	/* rows past n of the last chunk's bucket are read by the GEMM and their results ignored */
	ra.qm = qm;
	ra.L = L;
	ra.x = x;
	ra.y = y;
	ra.r0 = 0;
	ra.epilogue = epilogue;
	QParallelFor(threads, n, QuantizeRows, &ra);
	if (dnnl.omp_set_threads && threads >= 1)
		dnnl.omp_set_threads(threads);

	for (int r0 = 0; r0 < n; r0 += chunk)
	{
		int			cn = n - r0 < chunk ? n - r0 : chunk;
		int			rows = RowsBucket(cn);
		int			slot = 0;
		dnnl_stream_t stream = ThreadStream(tid);
		dnnl_primitive_t prim = GetPrimitive(&qmodel->wmd[which], L->in, L->out, rows,
											 threads >= 1 ? threads : 1, &slot);
		dnnl_memory_desc_t smd,
					dmd;
		dnnl_dims_t sd = {rows, L->in},
					dd = {rows, L->out};
		dnnl_memory_t src = NULL,
					wts = NULL,
					dst = NULL,
					pad = NULL;
		dnnl_exec_arg_t args[4];
		size_t		pad_bytes;
		int			ok;

		if (prim && stream == NULL)
		{
			ReleasePrimitive(slot);
			prim = NULL;
		}
		if (prim == NULL)
		{
			snprintf(errbuf, errlen, "oneDNN has no int8 matmul for %d x %d by %d x %d",
					 rows, L->in, L->in, L->out);
			return CV_ERR_UNSUPPORTED;
		}
		/* this thread's scratchpad, grown to what the primitive asks for (cache[] is stable while busy) */
		pad_bytes = dnnl.md_get_size(&cache[slot].pad_md);
		if (pad_bytes > qm->pad_cap)
		{
			free(qm->pad);
			qm->pad = aligned_alloc(64, (pad_bytes + 63) & ~(size_t) 63);
			qm->pad_cap = qm->pad ? pad_bytes : 0;
		}
		ok = (pad_bytes == 0 || qm->pad != NULL) &&
			dnnl.md_init_by_tag(&smd, 2, sd, dnnl_u8, dnnl_ab) == dnnl_success &&
			dnnl.md_init_by_tag(&dmd, 2, dd, dnnl_s32, dnnl_ab) == dnnl_success &&
			dnnl.mem_create(&src, &smd, dnnl.engine, qm->xq + (size_t) r0 * L->in) == dnnl_success &&
			dnnl.mem_create(&wts, &qmodel->wmd[which], dnnl.engine, L->w) == dnnl_success &&
			dnnl.mem_create(&dst, &dmd, dnnl.engine, qm->acc) == dnnl_success &&
			dnnl.mem_create(&pad, &cache[slot].pad_md, dnnl.engine, qm->pad) == dnnl_success;
		if (ok)
		{
			args[0].arg = DNNL_ARG_SRC;
			args[0].memory = src;
			args[1].arg = DNNL_ARG_WEIGHTS;
			args[1].memory = wts;
			args[2].arg = DNNL_ARG_DST;
			args[2].memory = dst;
			args[3].arg = DNNL_ARG_SCRATCHPAD;
			args[3].memory = pad;
			ok = dnnl.prim_execute(prim, stream, 4, args) == dnnl_success &&
				dnnl.stream_wait(stream) == dnnl_success;
		}
		ReleasePrimitive(slot);
		if (src)
			dnnl.mem_destroy(src);
		if (wts)
			dnnl.mem_destroy(wts);
		if (dst)
			dnnl.mem_destroy(dst);
		if (pad)
			dnnl.mem_destroy(pad);
		if (!ok)
		{
			snprintf(errbuf, errlen, "oneDNN int8 matmul failed (%d x %d by %d x %d)",
					 rows, L->in, L->in, L->out);
			return CV_ERR_UNSUPPORTED;
		}

		/* y = sx sw (acc - zx c) + b for this chunk's rows, then the epilogue */
		ra.r0 = r0;
		QParallelFor(threads, cn, DequantRows, &ra);
	}
	return CV_OK;
}

/* Record the range of each input channel of a linear while calibrating; see CvInt8Ops. */
static void
QLinearObserve(void *q, int layer, int which, const float *x, int n)
{
	QModel	   *qm = q;
	QLinear    *L = &qm->lin[layer * 4 + which];

	if (!qm->calibrating)
		return;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < L->in; k++)
		{
			float		a = fabsf(x[(size_t) i * L->in + k]);

			L->x_max[k] = a > L->x_max[k] ? a : L->x_max[k];
		}
}

/* Free a QModel and everything it owns. */
static void
QModelFree(void *q)
{
	QModel	   *qm = q;
	int			i;

	if (!qm)
		return;
	for (i = 0; qm->lin && i < qm->layers * 4; i++)
	{
		if (qm->shared == NULL)
		{
			free(qm->lin[i].w);
			free(qm->lin[i].w_scale);
			free(qm->lin[i].w_sum);
			free(qm->lin[i].x_mul);
		}
		free(qm->lin[i].x_max);
	}
	if (qm->shared)
		munmap(qm->shared, qm->shared_len);
	free(qm->lin);
	for (i = 0; i < QLINEAR_MAX_THREADS; i++)
	{
		free(qm->scratch[i].xq);
		free(qm->scratch[i].acc);
		free(qm->scratch[i].xs);
		free(qm->scratch[i].xz);
		free(qm->scratch[i].pad);
	}
	free(qm);
}

static const CvInt8Ops qlinear_ops = {QLinearForward, QLinearObserve, QParallelFor, QModelFree};

/*
 * Find the weights layout oneDNN's matmul wants for in x out (asked with
 * format "any" at 64 rows) into *wmd.
 */
static int
WeightsLayout(int in, int out, dnnl_memory_desc_t *wmd)
{
	dnnl_matmul_desc_t desc;
	dnnl_primitive_desc_t pd;
	const dnnl_memory_desc_t *q;

	if (!MatmulDesc(64, in, out, NULL, &desc) ||
		dnnl.pd_create(&pd, &desc, NULL, dnnl.engine, NULL) != dnnl_success)
		return 0;
	q = dnnl.pd_query_md(pd, dnnl_query_weights_md, 0);
	if (q)
		*wmd = *q;
	dnnl.pd_destroy(pd);
	return q != NULL;
}

/*
 * Quantize W [out, in] (PyTorch's layout) into L, whose in, out and
 * calibrated x_max are set: first smooth (SmoothQuant, Xiao et al. 2023,
 * arXiv:2211.10438): input channel k is divided by t[k] = (max|x_k| /
 * max_n |W[n,k]|)^alpha and W's column k multiplied by it, which leaves
 * x W^T unchanged but moves the range of the few outlier channels that
 * BERT's activations have from the (per row) activation scale into the
 * (per channel) weight scales; then quantize per output channel and
 * reorder into wmd's layout.  Returns 0 when out of memory or oneDNN fails.
 */
static int
QuantizeLinear(const float *W, const float *bias, const dnnl_memory_desc_t *wmd,
			   QLinear *L, size_t *bytes)
{
	int			out = L->out,
				in = L->in;
	int8_t	   *plain = malloc((size_t) out * in);
	float	   *t = malloc(sizeof(float) * in);
	dnnl_memory_desc_t pmd;
	dnnl_dims_t wd = {in, out};
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t reorder = NULL;
	dnnl_memory_t from = NULL,
				to = NULL;
	dnnl_exec_arg_t args[2];
	size_t		wbytes = dnnl.md_get_size(wmd);
	int			n,
				k,
				ok;

	L->bias = bias;
	L->w = malloc(wbytes);
	L->w_scale = malloc(sizeof(float) * out);
	L->w_sum = malloc(sizeof(int32_t) * out);
	L->x_mul = malloc(sizeof(float) * in);
	if (!plain || !t || !L->w || !L->w_scale || !L->w_sum || !L->x_mul)
	{
		free(plain);
		free(t);
		return 0;
	}
	for (k = 0; k < in; k++)
	{
		float		wmax = 0;

		for (n = 0; n < out; n++)
			wmax = fabsf(W[(size_t) n * in + k]) > wmax ? fabsf(W[(size_t) n * in + k]) : wmax;
		t[k] = 1.0f;
		if (wmax > 0 && L->x_max[k] > 0)
			t[k] = powf(L->x_max[k] / wmax, QLINEAR_SMOOTH_ALPHA);
		t[k] = t[k] < 1e-3f ? 1e-3f : (t[k] > 1e3f ? 1e3f : t[k]);
		L->x_mul[k] = 1.0f / t[k];
	}
	for (n = 0; n < out; n++)
	{
		const float *r = W + (size_t) n * in;
		int8_t	   *o = plain + (size_t) n * in;
		float		amax = 0,
					inv;
		int32_t		sum = 0;

		for (k = 0; k < in; k++)
			amax = fabsf(r[k] * t[k]) > amax ? fabsf(r[k] * t[k]) : amax;
		L->w_scale[n] = amax > 0 ? amax / 127.0f : 1.0f;
		inv = 1.0f / L->w_scale[n];
		for (k = 0; k < in; k++)
		{
			float		v = nearbyintf(r[k] * t[k] * inv);

			v = v < -127 ? -127 : (v > 127 ? 127 : v);
			o[k] = (int8_t) v;
			sum += o[k];
		}
		L->w_sum[n] = sum;
	}
	free(t);
	/* plain is W^T (in x out) stored column by column: oneDNN's tag "ba" */
	ok = dnnl.md_init_by_tag(&pmd, 2, wd, dnnl_s8, dnnl_ba) == dnnl_success &&
		dnnl.reorder_pd_create(&rpd, &pmd, dnnl.engine, wmd, dnnl.engine, NULL) == dnnl_success &&
		dnnl.prim_create(&reorder, rpd) == dnnl_success &&
		dnnl.mem_create(&from, &pmd, dnnl.engine, plain) == dnnl_success &&
		dnnl.mem_create(&to, wmd, dnnl.engine, L->w) == dnnl_success;
	if (ok)
	{
		args[0].arg = DNNL_ARG_FROM;
		args[0].memory = from;
		args[1].arg = DNNL_ARG_TO;
		args[1].memory = to;
		ok = dnnl.prim_execute(reorder, dnnl.stream, 2, args) == dnnl_success &&
			dnnl.stream_wait(dnnl.stream) == dnnl_success;
	}
	if (from)
		dnnl.mem_destroy(from);
	if (to)
		dnnl.mem_destroy(to);
	if (reorder)
		dnnl.prim_destroy(reorder);
	if (rpd)
		dnnl.pd_destroy(rpd);
	free(plain);
	*bytes += wbytes + (sizeof(float) + sizeof(int32_t)) * out + sizeof(float) * in;
	return ok;
}

/*
 * Calibrate: run the fp32 encoder on a few sequences of pseudo-random
 * tokens (a fixed seed, so every backend quantizes a model the same way)
 * with qm observing, to learn each linear's input channel ranges.  BERT's
 * outlier channels are properties of the weights, not of the text, so
 * random tokens find them (checked on real snippets: bench/embed).
 */
static CvStatus
Calibrate(CvModel m, QModel *qm, char *errbuf, size_t errlen)
{
	int32_t    *ids[QLINEAR_CALIB_SEQS];
	int			lens[QLINEAR_CALIB_SEQS];
	float	   *out = malloc(sizeof(float) * QLINEAR_CALIB_SEQS * m->hidden);
	uint32_t	seed = 20261203;
	int			lo = m->vocab_size > 2000 ? 1000 : 0;	/* BERT: ids below 1000 are [unused] */
	CvStatus	st = CV_OK;
	int			b;

	for (b = 0; b < QLINEAR_CALIB_SEQS; b++)
	{
		lens[b] = QLINEAR_CALIB_LEN >> b;
		if (lens[b] > m->max_positions)
			lens[b] = m->max_positions;
		if (lens[b] < 3)
			lens[b] = 3 <= m->max_positions ? 3 : m->max_positions;
		ids[b] = malloc(sizeof(int32_t) * lens[b]);
		if (!ids[b])
			st = CV_ERR_NOMEM;
		for (int p = 0; ids[b] && p < lens[b]; p++)
		{
			seed = seed * 1664525u + 1013904223u;	/* Numerical Recipes' LCG */
			ids[b][p] = lo + (int32_t) ((seed >> 8) % (uint32_t) (m->vocab_size - lo));
		}
		if (ids[b] && lens[b] >= 2)
		{
			ids[b][0] = m->tok->cls_id;
			ids[b][lens[b] - 1] = m->tok->sep_id;
		}
	}
	if (!out)
		st = CV_ERR_NOMEM;
	if (st == CV_OK)
	{
		CvPrecision saved = m->precision;

		m->int8 = qm;
		m->int8_ops = &qlinear_ops;
		m->precision = CV_PRECISION_FP32;
		qm->calibrating = 1;
		st = cv_encode(m, QLINEAR_CALIB_SEQS, (const int32_t *const *) ids, lens, out,
					   NULL, errbuf, errlen);
		qm->calibrating = 0;
		m->int8 = NULL;
		m->int8_ops = NULL;
		m->precision = saved;
	}
	else
		snprintf(errbuf, errlen, "out of memory");
	for (b = 0; b < QLINEAR_CALIB_SEQS; b++)
		free(ids[b]);
	free(out);
	return st;
}

/* See qlinear.h. */
CvStatus
cv_qlinear_attach(CvModel m, char *errbuf, size_t errlen)
{
	QModel	   *qm;
	int			H = m->hidden,
				FF = m->intermediate;
	int			l,
				s;
	size_t		bytes = 0;
	CvStatus	st;
	static const int shape_in_h[4] = {1, 1, 1, 0};	/* in = H, except FFN out (FF) */

	if (m->int8)
		return CV_OK;
	if ((st = cv_int8_available(errbuf, errlen)) != CV_OK)
		return st;
	if (m->block == NULL)
	{
		snprintf(errbuf, errlen, "the model's weights are not loaded");
		return CV_ERR_INVALID;
	}
	qm = calloc(1, sizeof(QModel));
	if (!qm || !(qm->lin = calloc((size_t) m->layers * 4, sizeof(QLinear))))
	{
		free(qm);
		snprintf(errbuf, errlen, "out of memory");
		return CV_ERR_NOMEM;
	}
	qm->layers = m->layers;
	for (s = 0; s < 4; s++)
	{
		int			in = shape_in_h[s] ? H : FF;
		int			out = s == 0 ? 3 * H : (s == 2 ? FF : H);

		if (!WeightsLayout(in, out, &qm->wmd[s]))
		{
			QModelFree(qm);
			snprintf(errbuf, errlen, "oneDNN has no int8 matmul for %d x %d weights", in, out);
			return CV_ERR_UNSUPPORTED;
		}
	}
	for (l = 0; l < m->layers * 4; l++)
	{
		QLinear    *L = &qm->lin[l];

		L->in = l % 4 == 3 ? FF : H;
		L->out = l % 4 == 0 ? 3 * H : (l % 4 == 2 ? FF : H);
		if (!(L->x_max = calloc(L->in, sizeof(float))))
		{
			QModelFree(qm);
			snprintf(errbuf, errlen, "out of memory");
			return CV_ERR_NOMEM;
		}
	}
	if ((st = Calibrate(m, qm, errbuf, errlen)) != CV_OK)
	{
		QModelFree(qm);
		return st;
	}
	for (l = 0; l < m->layers; l++)
	{
		const CvLayerWeights *w = &m->layer[l];
		QLinear    *L = &qm->lin[l * 4];

		if (!QuantizeLinear(w->qkv_w, w->qkv_b, &qm->wmd[0], &L[0], &bytes) ||
			!QuantizeLinear(w->ao_w, w->ao_b, &qm->wmd[1], &L[1], &bytes) ||
			!QuantizeLinear(w->ffn_in_w, w->ffn_in_b, &qm->wmd[2], &L[2], &bytes) ||
			!QuantizeLinear(w->ffn_out_w, w->ffn_out_b, &qm->wmd[3], &L[3], &bytes))
		{
			QModelFree(qm);
			snprintf(errbuf, errlen, "could not quantize layer %d (out of memory or oneDNN failed)", l);
			return CV_ERR_NOMEM;
		}
	}
	m->int8 = qm;
	m->int8_ops = &qlinear_ops;
	m->int8_bytes = bytes;
	return CV_OK;
}

/* Bytes of one QLinear's weights, scales, sums and smoothing, each part 64-byte aligned. */
static size_t
SharedBytes(const QModel *qm, int l, size_t *parts)
{
	const QLinear *L = &qm->lin[l];

	parts[0] = (dnnl.md_get_size(&qm->wmd[l % 4]) + 63) & ~(size_t) 63;
	parts[1] = (sizeof(float) * L->out + 63) & ~(size_t) 63;
	parts[2] = (sizeof(int32_t) * L->out + 63) & ~(size_t) 63;
	parts[3] = (sizeof(float) * L->in + 63) & ~(size_t) 63;
	return parts[0] + parts[1] + parts[2] + parts[3];
}

/* See qlinear.h. */
CvStatus
cv_qlinear_share(CvModel m, char *errbuf, size_t errlen)
{
	QModel	   *qm = m->int8;
	size_t		total = 0,
				parts[4];
	char	   *base,
			   *p;
	int			l;

	if (qm == NULL || m->int8_ops != &qlinear_ops || qm->shared != NULL)
		return CV_OK;
	for (l = 0; l < qm->layers * 4; l++)
		total += SharedBytes(qm, l, parts);
	base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
	{
		snprintf(errbuf, errlen, "could not map %zu bytes of shared memory: %s", total, strerror(errno));
		return CV_ERR_NOMEM;
	}
	p = base;
	for (l = 0; l < qm->layers * 4; l++)
	{
		QLinear    *L = &qm->lin[l];

		SharedBytes(qm, l, parts);
		memcpy(p, L->w, dnnl.md_get_size(&qm->wmd[l % 4]));
		memcpy(p + parts[0], L->w_scale, sizeof(float) * L->out);
		memcpy(p + parts[0] + parts[1], L->w_sum, sizeof(int32_t) * L->out);
		memcpy(p + parts[0] + parts[1] + parts[2], L->x_mul, sizeof(float) * L->in);
		free(L->w);
		free(L->w_scale);
		free(L->w_sum);
		free(L->x_mul);
		L->w = (int8_t *) p;
		L->w_scale = (float *) (p + parts[0]);
		L->w_sum = (int32_t *) (p + parts[0] + parts[1]);
		L->x_mul = (float *) (p + parts[0] + parts[1] + parts[2]);
		p += parts[0] + parts[1] + parts[2] + parts[3];
	}
	/* read-only from here on: nothing writes weights, and a bug that did would fault, not corrupt every backend */
	mprotect(base, total, PROT_READ);
	qm->shared = base;
	qm->shared_len = total;
	return CV_OK;
}
