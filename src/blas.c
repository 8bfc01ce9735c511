/*
 * blas.c
 *	  OpenBLAS, bound on first use instead of when the library loads.
 *
 * Every backend that reads or writes a codevec value loads codevec.so, but
 * only embed() and IVF index builds multiply matrices. Linking OpenBLAS
 * directly made each of those loads start OpenBLAS's thread pool: 3.8 ms
 * of a 4.4 ms LOAD on the development machine (bench/build/results.md).
 * So the extension does not link it: these definitions of the four OpenBLAS
 * entry points that src/encoder.c and src/gpuivfutils.c call (hidden, so
 * they never interpose on another library's) dlopen Debian's
 * libopenblas.so.0 the first time one of them runs and forward to it.
 * The standalone test and benchmark programs link OpenBLAS directly and do
 * not use this file.
 *
 * The thread count is applied lazily: openblas_set_num_threads() records
 * the count asked for, and cblas_sgemm() passes it on to OpenBLAS only when
 * it differs from the one OpenBLAS has, so every GEMM runs on the threads
 * it ran on before.  This matters after a fork: OpenBLAS's pthread_atfork
 * handler stops its pool, and any openblas_set_num_threads() in the child
 * starts the pool again, even one asking for a single thread.  The
 * postmaster that preloaded the model (CodevecEmbedPreload) last ran a
 * query's GEMMs on one thread, so each backend's embed() of a query, which
 * asks for one thread and gives the count back afterwards, never calls
 * OpenBLAS's setter and starts no pool: before, every session's first
 * embed() started one, whose threads then spun in sched_yield() for ~0.1 s
 * of CPU each (bench/keyword/README.md, "first call").
 */
#include "postgres.h"

#include <cblas.h>
#include <dlfcn.h>

#define OPENBLAS_SONAME "libopenblas.so.0"
#define HIDDEN __attribute__((visibility("hidden")))

typedef void (*sgemm_fn) (const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
						  const enum CBLAS_TRANSPOSE, const blasint, const blasint,
						  const blasint, const float, const float *, const blasint,
						  const float *, const blasint, const float, float *,
						  const blasint);
typedef void (*set_threads_fn) (int);
typedef int (*get_threads_fn) (void);
typedef char *(*corename_fn) (void);

static struct
{
	void	   *handle;
	sgemm_fn	sgemm;
	set_threads_fn set_threads;
	get_threads_fn get_threads;
	corename_fn corename;
	int			wanted;			/* the thread count codevec asked for last */
	int			applied;		/* the thread count OpenBLAS has */
}			blas;

/* Open OpenBLAS and resolve the entry points, or raise 58P01 */
static void
BindOpenBlas(void)
{
	if (blas.handle != NULL)
		return;
	blas.handle = dlopen(OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (blas.handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load OpenBLAS (%s): %s", OPENBLAS_SONAME, dlerror()),
				 errhint("Install Debian's libopenblas0 (tools/install-deps.sh does).")));
	blas.sgemm = (sgemm_fn) dlsym(blas.handle, "cblas_sgemm");
	blas.set_threads = (set_threads_fn) dlsym(blas.handle, "openblas_set_num_threads");
	blas.get_threads = (get_threads_fn) dlsym(blas.handle, "openblas_get_num_threads");
	blas.corename = (corename_fn) dlsym(blas.handle, "openblas_get_corename");
	if (blas.sgemm == NULL || blas.set_threads == NULL || blas.get_threads == NULL ||
		blas.corename == NULL)
	{
		dlclose(blas.handle);
		blas.handle = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("%s lacks an OpenBLAS entry point", OPENBLAS_SONAME)));
	}
	blas.wanted = blas.applied = blas.get_threads();
}

/* C = alpha op(A) op(B) + beta C, as OpenBLAS's cblas_sgemm */
HIDDEN void
cblas_sgemm(const enum CBLAS_ORDER Order, const enum CBLAS_TRANSPOSE TransA,
			const enum CBLAS_TRANSPOSE TransB, const blasint M, const blasint N,
			const blasint K, const float alpha, const float *A, const blasint lda,
			const float *B, const blasint ldb, const float beta, float *C,
			const blasint ldc)
{
	BindOpenBlas();
	if (blas.applied != blas.wanted)
	{
		blas.set_threads(blas.wanted);
		blas.applied = blas.get_threads();
		blas.wanted = blas.applied;
	}
	blas.sgemm(Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/*
 * Set the thread count of the GEMMs to come; OpenBLAS gets it at the next
 * GEMM that needs a change (a count below 1, OpenBLAS's own, at once)
 */
HIDDEN void
openblas_set_num_threads(int num_threads)
{
	BindOpenBlas();
	if (num_threads < 1)
	{
		blas.set_threads(num_threads);
		blas.wanted = blas.applied = blas.get_threads();
	}
	else
		blas.wanted = num_threads;
}

/* Get the thread count of the GEMMs to come */
HIDDEN int
openblas_get_num_threads(void)
{
	BindOpenBlas();
	return blas.wanted;
}

/* Name the CPU kernels OpenBLAS picked */
HIDDEN char *
openblas_get_corename(void)
{
	BindOpenBlas();
	return blas.corename();
}
