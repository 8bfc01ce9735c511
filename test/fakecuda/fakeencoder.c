/*
 * test/fakecuda/fakeencoder.c
 *	  A host stand-in for codevec_cuda_encoder.so (cuda/encoder.h's C
 *	  interface) for test/fakecuda/run.sh: the GPU service loads it with
 *	  dlopen as it loads the real one, so its EMBED requests, started
 *	  (codevec_cuda_encode_start) and answered later, or run synchronously,
 *	  go through the service's real code without a GPU.
 *
 * The "embedding" of a sequence of n token ids is not a model's: element
 * j of it is the id at position j mod n, as a float. A test computes the
 * same from codevec_tokenize(text) in SQL, so every answer can be checked
 * against the request it belongs to.
 *
 * Timing: a started encode is "on the device" until
 * $CODEVEC_FAKE_EMBED_US microseconds after its start (default 1000):
 * codevec_cuda_encode_ready says 0 until then and
 * codevec_cuda_encode_finish sleeps until then; codevec_cuda_encode
 * sleeps as long. As the real library, it holds three pinned pairs (a
 * fourth start starts nothing and codevec_cuda_encode refuses while all
 * three are held), and a batch of more than FAKE_MAX_SEQS sequences
 * "needs several launches": it starts nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encoder.h"

#define FAKE_BUFFERS	3
#define FAKE_MAX_SEQS	64

struct CodevecCudaEncoderData
{
	CodevecCudaEncoderConfig cfg;
	float	   *out[FAKE_BUFFERS];	/* a started encode's answer */
	int			seqs[FAKE_BUFFERS];
	int			pending[FAKE_BUFFERS];
	double		done_at[FAKE_BUFFERS];	/* microseconds, CLOCK_MONOTONIC */
	long		launches;
};

static void
SetError(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static double
NowUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double
DelayUs(void)
{
	const char *s = getenv("CODEVEC_FAKE_EMBED_US");

	return s ? atof(s) : 1000;
}

static void
SleepUntil(double t)
{
	double		left = t - NowUs();

	if (left > 0)
	{
		struct timespec ts = {(time_t) (left / 1e6), (long) ((left - (time_t) (left / 1e6) * 1e6) * 1e3)};

		nanosleep(&ts, NULL);
	}
}

/* The fake embeddings of batch sequences into out (batch x hidden) */
static int
Compute(CodevecCudaEncoder e, int batch, const int32_t *const *ids, const int *lens, float *out,
		char *errbuf, size_t errlen)
{
	int			H = e->cfg.hidden;

	for (int b = 0; b < batch; b++)
	{
		if (lens[b] < 1 || lens[b] > e->cfg.max_positions)
		{
			SetError(errbuf, errlen, "sequence %d has %d tokens, outside 1 .. %d", b + 1, lens[b],
					 e->cfg.max_positions);
			return CODEVEC_CUDA_ERR_ARG;
		}
		for (int i = 0; i < lens[b]; i++)
			if (ids[b][i] < 0 || ids[b][i] >= e->cfg.vocab_size)
			{
				SetError(errbuf, errlen, "token id %d of sequence %d is outside the vocabulary (%d)",
						 ids[b][i], b + 1, e->cfg.vocab_size);
				return CODEVEC_CUDA_ERR_ARG;
			}
		for (int j = 0; j < H; j++)
			out[(size_t) b * H + j] = (float) ids[b][j % lens[b]];
	}
	e->launches++;
	return 0;
}

int
codevec_cuda_encoder_use_device(int dev, char *errbuf, size_t errlen)
{
	(void) errbuf;
	(void) errlen;
	return dev >= 0 ? 0 : CODEVEC_CUDA_ERR_NODEVICE;
}

int
codevec_cuda_encoder_create(const CodevecCudaEncoderConfig *cfg, const CodevecCudaEncoderWeights *w,
							CodevecCudaEncoder *out, char *errbuf, size_t errlen)
{
	CodevecCudaEncoder e;

	(void) w;
	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
	{
		SetError(errbuf, errlen, "out of host memory for the fake encoder");
		return CODEVEC_CUDA_ERR_NOMEM;
	}
	e->cfg = *cfg;
	for (int i = 0; i < FAKE_BUFFERS; i++)
		if ((e->out[i] = malloc(sizeof(float) * FAKE_MAX_SEQS * cfg->hidden)) == NULL)
		{
			codevec_cuda_encoder_free(e);
			SetError(errbuf, errlen, "out of host memory for the fake encoder");
			return CODEVEC_CUDA_ERR_NOMEM;
		}
	*out = e;
	return 0;
}

int
codevec_cuda_encode(CodevecCudaEncoder e, int batch, const int32_t *const *ids, const int *lens,
					float *out, char *errbuf, size_t errlen)
{
	int			held = 0;

	if (e == NULL || batch < 0 || (batch > 0 && (ids == NULL || lens == NULL || out == NULL)))
	{
		SetError(errbuf, errlen, "codevec_cuda_encode: invalid arguments");
		return CODEVEC_CUDA_ERR_ARG;
	}
	for (int i = 0; i < FAKE_BUFFERS; i++)
		held += e->pending[i];
	if (held == FAKE_BUFFERS)
	{
		SetError(errbuf, errlen, "every pinned buffer of the encoder holds a started encode (finish one first)");
		return CODEVEC_CUDA_ERR_ARG;
	}
	SleepUntil(NowUs() + DelayUs());
	return Compute(e, batch, ids, lens, out, errbuf, errlen);
}

int
codevec_cuda_encode_start(CodevecCudaEncoder e, int batch, const int32_t *const *ids,
						  const int *lens, int *ticket, char *errbuf, size_t errlen)
{
	int			b = -1,
				rc;

	if (ticket == NULL || e == NULL || batch < 0 || (batch > 0 && (ids == NULL || lens == NULL)))
	{
		SetError(errbuf, errlen, "codevec_cuda_encode_start: invalid arguments");
		return CODEVEC_CUDA_ERR_ARG;
	}
	*ticket = -1;
	for (int i = 0; i < FAKE_BUFFERS && b < 0; i++)
		if (!e->pending[i])
			b = i;
	if (batch < 1 || batch > FAKE_MAX_SEQS || b < 0)
		return 0;
	if ((rc = Compute(e, batch, ids, lens, e->out[b], errbuf, errlen)) != 0)
		return rc;
	e->pending[b] = 1;
	e->seqs[b] = batch;
	e->done_at[b] = NowUs() + DelayUs();
	*ticket = b;
	return 0;
}

int
codevec_cuda_encode_ready(CodevecCudaEncoder e, int ticket)
{
	if (e == NULL || ticket < 0 || ticket >= FAKE_BUFFERS || !e->pending[ticket])
		return 1;
	return NowUs() >= e->done_at[ticket];
}

int
codevec_cuda_encode_finish(CodevecCudaEncoder e, int ticket, float *out, char *errbuf, size_t errlen)
{
	if (e == NULL || ticket < 0 || ticket >= FAKE_BUFFERS || !e->pending[ticket])
	{
		SetError(errbuf, errlen, "codevec_cuda_encode_finish: no encode started under this ticket");
		return CODEVEC_CUDA_ERR_ARG;
	}
	e->pending[ticket] = 0;
	SleepUntil(e->done_at[ticket]);
	if (out != NULL)
		memcpy(out, e->out[ticket], sizeof(float) * (size_t) e->seqs[ticket] * e->cfg.hidden);
	return 0;
}

void
codevec_cuda_encoder_free(CodevecCudaEncoder e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < FAKE_BUFFERS; i++)
		free(e->out[i]);
	free(e);
}

int
codevec_cuda_encoder_info(CodevecCudaEncoder e, CodevecCudaEncoderInfo *info)
{
	if (e == NULL || info == NULL)
		return CODEVEC_CUDA_ERR_ARG;
	memset(info, 0, sizeof(*info));
	info->weight_bytes = (size_t) 1 << 20;
	info->work_bytes = sizeof(float) * FAKE_BUFFERS * FAKE_MAX_SEQS * e->cfg.hidden;
	info->max_batch_tokens = FAKE_MAX_SEQS * e->cfg.max_positions;
	info->max_batch_seqs = FAKE_MAX_SEQS;
	info->launches = e->launches;
	return 0;
}
