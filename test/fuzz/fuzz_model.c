/*
 * fuzz_model.c
 *	  libFuzzer harness for the model-folder readers (src/model.c and the
 *	  vocabulary reader of src/tokenizer.c): config.json, vocab.txt,
 *	  model.safetensors (its JSON header and tensor table), modules.json,
 *	  1_Pooling/config.json, tokenizer_config.json, sentence_bert_config.json.
 *
 * An input is a whole model folder: up to seven parts separated by the line
 * "\n--codevec-fuzz-file--\n", written in that order as config.json,
 * vocab.txt, model.safetensors, tokenizer_config.json, modules.json,
 * 1_Pooling/config.json and sentence_bert_config.json into a temporary
 * folder (a part left out: the file is absent).  make_model_seeds.py turns
 * the fixtures of test/embed into such inputs.
 *
 * Oracles, from model.h's contract: cv_model_load either succeeds or
 * returns one of its statuses with a message and *out NULL; a model it
 * returns has sizes within the documented maxima, heads dividing hidden,
 * every weight pointer inside its one block with room for its shape, and
 * a tokenizer whose [CLS]/[SEP]/[UNK]/[PAD] ids are in the vocabulary; the
 * NO_WEIGHTS load (what a backend with the GPU service does) succeeds
 * whenever the full load does, with the same configuration.  A crash or a
 * sanitizer report is a finding.
 *
 *	  make -C test/fuzz && test/fuzz/build/fuzz_model -max_total_time=600
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"

#define SEP "\n--codevec-fuzz-file--\n"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const files[] = {
	"config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json",
	"modules.json", "1_Pooling/config.json", "sentence_bert_config.json"
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static char dir[64];

static void
Fail(const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_model: %s (%s)\n", what, msg);
	abort();
}

/* Remove the temporary folder at exit */
static void
Cleanup(void)
{
	char		path[256];

	for (size_t i = 0; i < NFILES; i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/1_Pooling", dir);
	rmdir(path);
	rmdir(dir);
}

/* Write [p, p + n) as file i of the folder, or remove it when p is NULL */
static void
WritePart(size_t i, const uint8_t *p, size_t n)
{
	char		path[256];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
	if (p == NULL)
	{
		unlink(path);
		return;
	}
	f = fopen(path, "wb");
	if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
	{
		perror(path);
		Fail("cannot write", path);
	}
}

/* Is [p, p + n * elems floats) inside the model's block? */
static int
Inside(CvModel m, const float *p, size_t elems)
{
	const char *b = (const char *) m->block;
	const char *q = (const char *) p;

	return p != NULL && q >= b && (size_t) (q - b) + elems * sizeof(float) <= m->weight_bytes;
}

/* Check a model cv_model_load returned against model.h's promises */
static void
CheckModel(CvModel m, int weights)
{
	size_t		H,
				I;

	if (m->hidden < 1 || m->hidden > CODEVEC_MODEL_MAX_HIDDEN ||
		m->layers < 1 || m->layers > CODEVEC_MODEL_MAX_LAYERS ||
		m->heads < 1 || m->hidden % m->heads != 0 ||
		m->intermediate < 1 || m->max_positions < 1 ||
		m->max_positions > CODEVEC_MODEL_MAX_POSITIONS ||
		m->type_vocab < 1 || m->vocab_size < 1 || !(m->ln_eps > 0))
		Fail("a loaded model's configuration is out of range", m->path);
	if (m->tok == NULL || m->tok->vocab_size < 1 ||
		m->tok->cls_id < 0 || m->tok->cls_id >= m->tok->vocab_size ||
		m->tok->sep_id < 0 || m->tok->sep_id >= m->tok->vocab_size ||
		m->tok->unk_id < 0 || m->tok->unk_id >= m->tok->vocab_size)
		Fail("a loaded model's tokenizer is incomplete", m->path);
	if (m->tok->vocab_size > m->vocab_size)
		Fail("vocab.txt has ids past the embedding matrix", m->path);
	if (!weights)
	{
		if (m->block != NULL || m->weight_bytes != 0 || m->layer != NULL)
			Fail("NO_WEIGHTS loaded weights", m->path);
		return;
	}
	H = m->hidden;
	I = m->intermediate;
	if (!Inside(m, m->word_emb, (size_t) m->vocab_size * H) ||
		!Inside(m, m->pos_emb, (size_t) m->max_positions * H) ||
		!Inside(m, m->type_emb, (size_t) m->type_vocab * H) ||
		!Inside(m, m->emb_ln_g, H) || !Inside(m, m->emb_ln_b, H) || m->layer == NULL)
		Fail("an embedding tensor lies outside the weight block", m->path);
	for (int l = 0; l < m->layers; l++)
	{
		CvLayerWeights *w = &m->layer[l];

		if (!Inside(m, w->qkv_w, 3 * H * H) || !Inside(m, w->qkv_b, 3 * H) ||
			!Inside(m, w->ao_w, H * H) || !Inside(m, w->ao_b, H) ||
			!Inside(m, w->ln1_g, H) || !Inside(m, w->ln1_b, H) ||
			!Inside(m, w->ffn_in_w, I * H) || !Inside(m, w->ffn_in_b, I) ||
			!Inside(m, w->ffn_out_w, H * I) || !Inside(m, w->ffn_out_b, H) ||
			!Inside(m, w->ln2_g, H) || !Inside(m, w->ln2_b, H))
			Fail("a layer tensor lies outside the weight block", m->path);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	const uint8_t *end = data + size;
	size_t		seplen = strlen(SEP);
	CvModel		m = NULL,
				light = NULL;
	CvStatus	st,
				st2;
	char		err[1024],
				err2[1024];

	if (dir[0] == '\0')
	{
		char		sub[128];

		strcpy(dir, "/tmp/codevec-fuzz-model.XXXXXX");
		if (mkdtemp(dir) == NULL)
			Fail("mkdtemp", dir);
		snprintf(sub, sizeof(sub), "%s/1_Pooling", dir);
		if (mkdir(sub, 0700) != 0)
			Fail("mkdir", sub);
		atexit(Cleanup);
	}
	if (size > 4 * 1024 * 1024)
		return 0;
	for (size_t i = 0; i < NFILES; i++)
	{
		const uint8_t *q;

		if (p == NULL)
		{
			WritePart(i, NULL, 0);
			continue;
		}
		q = memmem(p, end - p, SEP, seplen);
		WritePart(i, p, (q ? q : end) - p);
		p = q ? q + seplen : NULL;
	}

	err[0] = '\0';
	st = cv_model_load(dir, &m, err, sizeof(err));
	if (st == CV_OK)
	{
		if (m == NULL)
			Fail("CV_OK without a model", err);
		CheckModel(m, 1);
	}
	else if (st < CV_ERR_NOT_FOUND || st > CV_ERR_NOMEM || m != NULL || err[0] == '\0')
		Fail("a failed load without a status, with a model or without a message", err);

	err2[0] = '\0';
	st2 = cv_model_load_ex(dir, CV_MODEL_NO_WEIGHTS, &light, err2, sizeof(err2));
	if (st2 == CV_OK)
		CheckModel(light, 0);
	else if (light != NULL || err2[0] == '\0')
		Fail("a failed NO_WEIGHTS load with a model or without a message", err2);
	if (st == CV_OK && st2 != CV_OK)
		Fail("the full load succeeds but the NO_WEIGHTS load fails", err2);
	if (st == CV_OK &&
		(light->hidden != m->hidden || light->layers != m->layers ||
		 light->vocab_size != m->vocab_size || light->pooling != m->pooling ||
		 light->normalize != m->normalize || light->tok->vocab_size != m->tok->vocab_size))
		Fail("NO_WEIGHTS reads another configuration", err2);
	cv_model_free(m);
	cv_model_free(light);
	return 0;
}
