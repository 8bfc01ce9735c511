/*
 * tokenizer.h
 *	  BERT BasicTokenizer + WordPiece, as Hugging Face `tokenizers`
 *	  (BertNormalizer, BertPreTokenizer, WordPiece, BertProcessing) does it.
 *
 * Plain C with malloc: no server dependency, so the unit tests link it
 * directly.  Functions never abort; they return a CvTokStatus.
 */
#ifndef CODEVEC_TOKENIZER_H
#define CODEVEC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define CODEVEC_WORDPIECE_MAX_CHARS 100 /* max_input_chars_per_word */

typedef enum CvTokStatus
{
	CV_TOK_OK = 0,
	CV_TOK_NOMEM,
	CV_TOK_IO,					/* vocab file cannot be read */
	CV_TOK_BADVOCAB				/* vocab lacks a special token or is empty */
} CvTokStatus;

typedef struct CvVocabEntry
{
	uint32_t	off;			/* offset of the token text in CvTokenizerData.text */
	uint32_t	len;			/* length in bytes */
	int32_t		id;				/* line number in vocab.txt */
} CvVocabEntry;

typedef struct CvTokenizerData
{
	/* options, as tokenizer_config.json spells them */
	int			do_lower_case;
	int			strip_accents;	/* -1: follow do_lower_case (HF "null") */
	int			tokenize_chinese_chars;

	/* vocabulary: open-addressing hash table over token bytes */
	char	   *text;			/* all token texts, back to back */
	size_t		text_len;
	CvVocabEntry *slots;		/* nslots entries, id < 0 means empty */
	uint32_t	nslots;			/* power of two */
	int32_t		vocab_size;		/* number of lines */

	int32_t		cls_id;
	int32_t		sep_id;
	int32_t		unk_id;
	int32_t		pad_id;
} CvTokenizerData;

typedef CvTokenizerData *CvTokenizer;

/* Load vocab.txt (one token a line, id = line number); errbuf gets a message. */
extern CvTokStatus cv_tokenizer_load(const char *vocab_path, int do_lower_case,
									 int strip_accents, CvTokenizer *out,
									 char *errbuf, size_t errlen);

/* Free a tokenizer and everything it owns; NULL is fine. */
extern void cv_tokenizer_free(CvTokenizer tok);

/* Look up a token's id by its bytes; -1 when absent. */
extern int32_t cv_tokenizer_lookup(CvTokenizer tok, const char *s, size_t len);

/*
 * Tokenize UTF-8 text into ids: [CLS] pieces... [SEP], at most max_tokens ids
 * in all (>= 2; the pieces are cut at max_tokens - 2, HF "longest_first" for
 * one sequence).  *ids is malloc'd (caller frees); *n_ids its length.
 * Invalid UTF-8 bytes count as U+FFFD, which BERT's cleanup drops.
 */
extern CvTokStatus cv_tokenize(CvTokenizer tok, const char *text, size_t len,
							   int max_tokens, int32_t **ids, int *n_ids);

#endif							/* CODEVEC_TOKENIZER_H */
