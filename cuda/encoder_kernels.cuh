/*
 * encoder_kernels.cuh
 *	  The GPU encoder's device code (LayerNorm, embeddings, GELU, attention,
 *	  pooling), included by encoder.cu after its tile constants; the
 *	  algorithms are described at the top of encoder.cu.
 */
#ifndef CODEVEC_ENCODER_KERNELS_CUH
#define CODEVEC_ENCODER_KERNELS_CUH

/* ---------------------------------------------------------------------
 * Kernels
 * --------------------------------------------------------------------- */

/* Sum a float over the 32 lanes of a warp. */
__device__ __forceinline__ float
WarpSum(float v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * LayerNorm of one row held by a warp: V values per lane as V/2 half2 pairs
 * at columns 2*lane + 64*j.  Two-pass statistics in fp32 (values stay in
 * registers), as src/encoder.c computes them in double.
 */
template <int V>
__device__ __forceinline__ void
WarpLayerNormStore(float (&v)[V], const float *g, const float *b, float eps,
				   __half *row, int lane)
{
	const int	H = V * 32;
	float		mean = 0,
				var = 0;

#pragma unroll
	for (int i = 0; i < V; i++)
		mean += v[i];
	mean = WarpSum(mean) / H;
#pragma unroll
	for (int i = 0; i < V; i++)
	{
		float		d = v[i] - mean;

		var += d * d;
	}
	var = WarpSum(var) / H;
	float		inv = rsqrtf(var + eps);

#pragma unroll
	for (int j = 0; j < V / 2; j++)
	{
		int			c = 2 * lane + 64 * j;
		float2		gg = *reinterpret_cast<const float2 *>(g + c);
		float2		bb = *reinterpret_cast<const float2 *>(b + c);

		*reinterpret_cast<__half2 *>(row + c) =
			__floats2half2_rn((v[2 * j] - mean) * inv * gg.x + bb.x,
							  (v[2 * j + 1] - mean) * inv * gg.y + bb.y);
	}
}

/* x[t] = LN(word[ids[t]] + pos[pos[t]] + type[0]); one warp per token. */
template <int V>
__global__ void
embed_ln_kernel(const int32_t *__restrict__ ids, const int32_t *__restrict__ pos,
				const __half *__restrict__ word, const __half *__restrict__ pemb,
				const __half *__restrict__ temb, const float *__restrict__ g,
				const float *__restrict__ b, float eps, int T, __half *__restrict__ x)
{
	const int	H = V * 32;
	int			t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
	int			lane = threadIdx.x % 32;
	float		v[V];

	if (t >= T)
		return;
	const __half *w = word + (size_t) ids[t] * H;
	const __half *p = pemb + (size_t) pos[t] * H;

#pragma unroll
	for (int j = 0; j < V / 2; j++)
	{
		int			c = 2 * lane + 64 * j;
		float2		a = __half22float2(*reinterpret_cast<const __half2 *>(w + c));
		float2		bq = __half22float2(*reinterpret_cast<const __half2 *>(p + c));
		float2		cc = __half22float2(*reinterpret_cast<const __half2 *>(temb + c));

		v[2 * j] = a.x + bq.x + cc.x;
		v[2 * j + 1] = a.y + bq.y + cc.y;
	}
	WarpLayerNormStore<V>(v, g, b, eps, x + (size_t) t * H, lane);
}

/* x[t] = LN(y[t] + x[t]) in place (y already holds the GEMM's bias). */
template <int V>
__global__ void
add_ln_kernel(const __half *__restrict__ y, __half *__restrict__ x,
			  const float *__restrict__ g, const float *__restrict__ b,
			  float eps, int T)
{
	const int	H = V * 32;
	int			t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
	int			lane = threadIdx.x % 32;
	float		v[V];

	if (t >= T)
		return;
	const __half *yr = y + (size_t) t * H;
	__half	   *xr = x + (size_t) t * H;

#pragma unroll
	for (int j = 0; j < V / 2; j++)
	{
		int			c = 2 * lane + 64 * j;
		float2		a = __half22float2(*reinterpret_cast<const __half2 *>(yr + c));
		float2		r = __half22float2(*reinterpret_cast<const __half2 *>(xr + c));

		v[2 * j] = a.x + r.x;
		v[2 * j + 1] = a.y + r.y;
	}
	WarpLayerNormStore<V>(v, g, b, eps, xr, lane);
}

/* GELU(x) = x/2 (1 + erf(x/sqrt2)) in place on n8 groups of 8 halves. */
__global__ void
gelu_kernel(uint4 *__restrict__ f, size_t n8)
{
	size_t		i = blockIdx.x * (size_t) blockDim.x + threadIdx.x;

	for (; i < n8; i += (size_t) gridDim.x * blockDim.x)
	{
		uint4		u = f[i];
		__half2    *h = reinterpret_cast<__half2 *>(&u);

#pragma unroll
		for (int k = 0; k < 4; k++)
		{
			float2		a = __half22float2(h[k]);

			a.x = 0.5f * a.x * (1.0f + erff(a.x * 0.70710678118654752f));
			a.y = 0.5f * a.y * (1.0f + erff(a.y * 0.70710678118654752f));
			h[k] = __float22half2_rn(a);
		}
		f[i] = u;
	}
}

/* D += A(16x16, row) B(16x8, col): fp16 inputs, fp32 accumulators. */
__device__ __forceinline__ void
Mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
				 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
				 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
				 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t
PackHalf2(float lo, float hi)
{
	__half2		h = __floats2half2_rn(lo, hi);

	return *reinterpret_cast<uint32_t *>(&h);
}

/*
 * Flash-style attention over packed sequences.  Block = 8 warps = 128
 * queries of one head of one sequence (tiles[2 * blockIdx.x] = sequence,
 * [+1] = query tile); blockIdx.y = head.  qkv rows are [q | k | v], 3H
 * wide; ctx rows get head h's output at columns h*D .. h*D+D-1.
 *
 * The block first copies the head's whole K and V for the sequence into
 * shared memory - lpad rows each (D + 8 halves apart: conflict-free
 * fragment loads), zero-filled past len, lpad = len rounded up to 64, at
 * most ATT_MAX_SMEM bytes - with one barrier; then every warp runs over
 * the keys on its own, 64 at a time.  (v1 streamed 64-key tiles with two
 * barriers each and re-read K/V once per 64 queries; ENCODER.md.)
 *
 * Fragment layout of mma.m16n8k16 (g = lane/4, t = lane%4): A regs hold
 * (row g | g+8, cols 2t,2t+1 | 2t+8,2t+9); B regs (k rows 2t,2t+1 | 2t+8,
 * 2t+9, col g); C (row g: c0,c1 at cols 2t,2t+1; row g+8: c2,c3).  A C
 * fragment of two adjacent n-tiles is exactly an A fragment of the next
 * product, so P never leaves registers.
 */
template <int D>
__global__ void __launch_bounds__(ATT_WARPS * 32)
attention_kernel(const __half *__restrict__ qkv, const int32_t *__restrict__ seq_off,
				 const int32_t *__restrict__ tiles, int H, int lpad_max,
				 float scale_log2, __half *__restrict__ ctx)
{
	extern __shared__ __align__(16) __half smem[];
	const int	seq = tiles[2 * blockIdx.x];
	const int	q0 = tiles[2 * blockIdx.x + 1] * ATT_QTILE;
	const int	head = blockIdx.y;
	const int	base = seq_off[seq];
	const int	len = seq_off[seq + 1] - base;
	const int	lpad = (len + ATT_KTILE - 1) / ATT_KTILE * ATT_KTILE;
	const int	ks = D + 8;		/* K row stride (halves): conflict-free B loads */
	__half	   *Ks = smem;		/* [lpad_max][D + 8] */
	__half	   *Vs = smem + (size_t) lpad_max * ks;	/* [lpad_max][D + 8] */
	const int	warp = threadIdx.x / 32,
				lane = threadIdx.x % 32;
	const int	g = lane / 4,
				t = lane % 4;
	const size_t ld = 3 * (size_t) H;
	const __half *qh = qkv + (size_t) base * ld + head * D;
	const __half *kh = qh + H;
	const __half *vh = qh + 2 * H;
	const int	r0 = q0 + warp * 16 + g;	/* this lane's two query rows */
	const int	r1 = r0 + 8;

	/*
	 * K and V rows into shared memory with cp.async (16 bytes a copy, all
	 * in flight at once; src-size 0 zero-fills the keys past len).  v2
	 * loaded through registers, one 16-byte load pair at a time, and
	 * stored V transposed with 4-way bank conflicts.
	 */
	for (int c = threadIdx.x; c < lpad * (D / 8); c += blockDim.x)
	{
		int			key = c / (D / 8),
					d8 = (c % (D / 8)) * 8;
		int			nbytes = key < len ? 16 : 0;
		const __half *ksrc = key < len ? kh + (size_t) key * ld + d8 : kh;
		const __half *vsrc = key < len ? vh + (size_t) key * ld + d8 : vh;
		uint32_t	kdst = (uint32_t) __cvta_generic_to_shared(Ks + (size_t) key * ks + d8);
		uint32_t	vdst = (uint32_t) __cvta_generic_to_shared(Vs + (size_t) key * ks + d8);

		asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
					 :: "r"(kdst), "l"(ksrc), "r"(nbytes));
		asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
					 :: "r"(vdst), "l"(vsrc), "r"(nbytes));
	}
	asm volatile("cp.async.wait_all;\n" ::: "memory");
	__syncthreads();
	if (q0 + warp * 16 >= len)
		return;					/* no barrier follows */

	/* Q fragments, rows clamped into the sequence (extra rows are dropped) */
	uint32_t	qa[D / 16][4];
	{
		const __half *q_0 = qh + (size_t) min(r0, len - 1) * ld;
		const __half *q_1 = qh + (size_t) min(r1, len - 1) * ld;

#pragma unroll
		for (int kk = 0; kk < D / 16; kk++)
		{
			qa[kk][0] = *reinterpret_cast<const uint32_t *>(q_0 + kk * 16 + 2 * t);
			qa[kk][1] = *reinterpret_cast<const uint32_t *>(q_1 + kk * 16 + 2 * t);
			qa[kk][2] = *reinterpret_cast<const uint32_t *>(q_0 + kk * 16 + 8 + 2 * t);
			qa[kk][3] = *reinterpret_cast<const uint32_t *>(q_1 + kk * 16 + 8 + 2 * t);
		}
	}

	float		o[D / 8][4];
	float		m0 = -INFINITY,
				m1 = -INFINITY,
				l0 = 0,
				l1 = 0;

#pragma unroll
	for (int i = 0; i < D / 8; i++)
		o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0;

	for (int k0 = 0; k0 < len; k0 += ATT_KTILE)
	{
		/* S = Q K^T for 64 keys: 8 n-tiles of 8 keys */
		float		s[ATT_KTILE / 8][4];

#pragma unroll
		for (int n = 0; n < ATT_KTILE / 8; n++)
		{
			const __half *kr = Ks + (size_t) (k0 + n * 8 + g) * ks;

			s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
#pragma unroll
			for (int kk = 0; kk < D / 16; kk++)
			{
				uint32_t	b0 = *reinterpret_cast<const uint32_t *>(kr + kk * 16 + 2 * t);
				uint32_t	b1 = *reinterpret_cast<const uint32_t *>(kr + kk * 16 + 8 + 2 * t);

				Mma16816(s[n], qa[kk], b0, b1);
			}
		}
		/* scale (log2 domain), mask keys past the end, online softmax */
		float		mx0 = -INFINITY,
					mx1 = -INFINITY;

#pragma unroll
		for (int n = 0; n < ATT_KTILE / 8; n++)
		{
			int			key = k0 + n * 8 + 2 * t;

#pragma unroll
			for (int i = 0; i < 4; i++)
			{
				bool		valid = key + (i & 1) < len;

				s[n][i] = valid ? s[n][i] * scale_log2 : -INFINITY;
			}
			mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
			mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
		}
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));

		float		mn0 = fmaxf(m0, mx0),
					mn1 = fmaxf(m1, mx1);	/* finite: k0 < len */
		float		al0 = exp2f(m0 - mn0),
					al1 = exp2f(m1 - mn1);

		m0 = mn0;
		m1 = mn1;
		l0 *= al0;
		l1 *= al1;
#pragma unroll
		for (int i = 0; i < D / 8; i++)
		{
			o[i][0] *= al0;
			o[i][1] *= al0;
			o[i][2] *= al1;
			o[i][3] *= al1;
		}
#pragma unroll
		for (int n = 0; n < ATT_KTILE / 8; n++)
		{
			s[n][0] = exp2f(s[n][0] - m0);
			s[n][1] = exp2f(s[n][1] - m0);
			s[n][2] = exp2f(s[n][2] - m1);
			s[n][3] = exp2f(s[n][3] - m1);
			l0 += s[n][0] + s[n][1];
			l1 += s[n][2] + s[n][3];
		}

		/* O += P V: 4 k-steps of 16 keys, D/8 n-tiles */
#pragma unroll
		for (int j = 0; j < ATT_KTILE / 16; j++)
		{
			uint32_t	pa[4];

			pa[0] = PackHalf2(s[2 * j][0], s[2 * j][1]);
			pa[1] = PackHalf2(s[2 * j][2], s[2 * j][3]);
			pa[2] = PackHalf2(s[2 * j + 1][0], s[2 * j + 1][1]);
			pa[3] = PackHalf2(s[2 * j + 1][2], s[2 * j + 1][3]);
			/*
			 * B = V[keys][d cols] from row-major V with ldmatrix.trans:
			 * lane l addresses key k0 + 16j + (l & 15), column block
			 * dn + (l >> 4); the four 8x8 matrices come back transposed
			 * as b0, b1 of n-tile dn and b0, b1 of n-tile dn + 1.
			 */
#pragma unroll
			for (int dn = 0; dn < D / 8; dn += 2)
			{
				uint32_t	b[4];
				uint32_t	addr = (uint32_t) __cvta_generic_to_shared(
					Vs + (size_t) (k0 + j * 16 + (lane & 15)) * ks + (dn + (lane >> 4)) * 8);

				asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
							 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(addr));
				Mma16816(o[dn], pa, b[0], b[1]);
				Mma16816(o[dn + 1], pa, b[2], b[3]);
			}
		}
	}
	l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
	l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 2);

	float		inv0 = 1.0f / l0,
				inv1 = 1.0f / l1;

#pragma unroll
	for (int dn = 0; dn < D / 8; dn++)
	{
		int			c = head * D + dn * 8 + 2 * t;

		if (r0 < len)
			*reinterpret_cast<__half2 *>(ctx + (size_t) (base + r0) * H + c) =
				__floats2half2_rn(o[dn][0] * inv0, o[dn][1] * inv0);
		if (r1 < len)
			*reinterpret_cast<__half2 *>(ctx + (size_t) (base + r1) * H + c) =
				__floats2half2_rn(o[dn][2] * inv1, o[dn][3] * inv1);
	}
}

/*
 * out[s] = mean over the sequence's rows of x (or its first row), then
 * divided by max(||.||_2, 1e-12) when normalize; one block per sequence,
 * each thread owns column pairs, fp32 sums.
 */
__global__ void
pool_kernel(const __half *__restrict__ x, const int32_t *__restrict__ seq_off,
			int H, int cls, int normalize, float *__restrict__ out)
{
	__shared__ float red[32];
	const int	s = blockIdx.x;
	const int	base = seq_off[s];
	const int	len = cls ? 1 : seq_off[s + 1] - base;
	float		acc[8][2];		/* H/2 pairs over blockDim threads: <= 8 each */
	float		sq = 0;
	int			np = 0;

	for (int c = 2 * threadIdx.x; c < H && np < 8; c += 2 * blockDim.x, np++)
	{
		float		a0 = 0,
					a1 = 0;

		for (int r = 0; r < len; r++)
		{
			float2		v = __half22float2(*reinterpret_cast<const __half2 *>(x + (size_t) (base + r) * H + c));

			a0 += v.x;
			a1 += v.y;
		}
		acc[np][0] = a0 / len;
		acc[np][1] = a1 / len;
		sq += acc[np][0] * acc[np][0] + acc[np][1] * acc[np][1];
	}
	float		scale = 1.0f;

	if (normalize)
	{
		sq = WarpSum(sq);
		if (threadIdx.x % 32 == 0)
			red[threadIdx.x / 32] = sq;
		__syncthreads();
		if (threadIdx.x < 32)
		{
			float		v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0;

			v = WarpSum(v);
			if (threadIdx.x == 0)
				red[0] = v;
		}
		__syncthreads();
		scale = 1.0f / fmaxf(sqrtf(red[0]), 1e-12f);
	}
	np = 0;
	for (int c = 2 * threadIdx.x; c < H && np < 8; c += 2 * blockDim.x, np++)
	{
		out[(size_t) s * H + c] = acc[np][0] * scale;
		out[(size_t) s * H + c + 1] = acc[np][1] * scale;
	}
}

#endif							/* CODEVEC_ENCODER_KERNELS_CUH */
