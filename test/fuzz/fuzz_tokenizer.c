/*
 * fuzz_tokenizer.c
 *	  libFuzzer harness for the WordPiece tokenizer (src/tokenizer.c):
 *	  embed()'s text path up to the token ids.
 *
 * The vocabulary is all-MiniLM-L6-v2's when CODEVEC_FUZZ_VOCAB names its
 * vocab.txt (make model installs it), else the tiny fixture's
 * (test/embed/fixtures/tiny-bert/vocab.txt).  Byte 0 picks do_lower_case
 * and strip_accents (the six combinations tokenizer_config.json can ask
 * for), byte 1 max_tokens (2..257); the rest is the text, any bytes (the
 * server hands embed() valid UTF-8, but the tokenizer promises to read
 * invalid bytes as U+FFFD).
 *
 * Oracles, from the tokenizer's contract (tokenizer.h), not its code: the
 * call succeeds; [CLS] ... [SEP] with 2..max_tokens ids, each in the
 * vocabulary's range; the cut is "longest_first" for one sequence, so the
 * ids under a budget are the unlimited ids' first max_tokens - 1 then
 * [SEP] (or all of them when they fit); a second call gives the same ids.
 *
 *	  make -C test/fuzz && test/fuzz/build/fuzz_tokenizer -max_total_time=600
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#ifndef FUZZ_VOCAB
#error "FUZZ_VOCAB: the fixture vocabulary's path"
#endif

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CvTokenizer toks[6];

static void
Fail(const char *what)
{
	fprintf(stderr, "fuzz_tokenizer: %s\n", what);
	abort();
}

/* Load the vocabulary under the six option combinations, once. */
static void
Init(void)
{
	const char *vocab = getenv("CODEVEC_FUZZ_VOCAB");
	char		err[256];

	if (vocab == NULL || vocab[0] == '\0')
		vocab = FUZZ_VOCAB;
	for (int i = 0; i < 6; i++)
		if (cv_tokenizer_load(vocab, i & 1, (i >> 1) - 1, &toks[i], err, sizeof(err)) != CV_TOK_OK)
		{
			fprintf(stderr, "fuzz_tokenizer: %s: %s\n", vocab, err);
			abort();
		}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CvTokenizer tok;
	int			max_tokens;
	int			unlimited;
	int32_t    *full,
			   *cut,
			   *again;
	int			nfull,
				ncut,
				nagain;
	char	   *text;

	if (toks[0] == NULL)
		Init();
	if (size < 2)
		return 0;
	tok = toks[data[0] % 6];
	max_tokens = 2 + data[1];
	data += 2;
	size -= 2;
	text = malloc(size ? size : 1);	/* exactly size bytes: ASan sees overreads */
	memcpy(text, data, size);

	/*
	 * "unlimited": a budget the text cannot fill (each piece takes at least
	 * one input byte, except the two characters U+0130's lowercase makes)
	 */
	unlimited = 2 * (int) size + 4;
	if (cv_tokenize(tok, text, size, unlimited, &full, &nfull) != CV_TOK_OK)
		Fail("cv_tokenize failed (unlimited)");
	if (nfull >= unlimited)
		Fail("a text filled a budget of two ids a byte");
	if (cv_tokenize(tok, text, size, max_tokens, &cut, &ncut) != CV_TOK_OK)
		Fail("cv_tokenize failed (budget)");
	if (cv_tokenize(tok, text, size, max_tokens, &again, &nagain) != CV_TOK_OK)
		Fail("cv_tokenize failed (again)");

	if (nfull < 2 || full[0] != tok->cls_id || full[nfull - 1] != tok->sep_id)
		Fail("unlimited ids are not [CLS] ... [SEP]");
	for (int i = 0; i < nfull; i++)
		if (full[i] < 0 || full[i] >= tok->vocab_size)
			Fail("id outside the vocabulary");
	if (ncut < 2 || ncut > max_tokens || cut[0] != tok->cls_id || cut[ncut - 1] != tok->sep_id)
		Fail("budgeted ids are not [CLS] ... [SEP] within max_tokens");
	if (nfull <= max_tokens)
	{
		if (ncut != nfull || memcmp(cut, full, sizeof(int32_t) * nfull) != 0)
			Fail("ids that fit the budget differ from the unlimited ones");
	}
	else if (ncut != max_tokens || memcmp(cut, full, sizeof(int32_t) * (ncut - 1)) != 0)
		Fail("the budget does not cut the unlimited ids longest_first");
	if (nagain != ncut || memcmp(again, cut, sizeof(int32_t) * ncut) != 0)
		Fail("two calls on the same text differ");

	free(full);
	free(cut);
	free(again);
	free(text);
	return 0;
}
