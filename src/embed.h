/*
 * embed.h
 *	  SQL surface of the CPU encoder: embed(text), embed(text[]),
 *	  codevec_model_info(), GUCs codevec.model, codevec.max_tokens and
 *	  codevec.cpu_precision.
 */
#ifndef CODEVEC_EMBED_H
#define CODEVEC_EMBED_H

#define CODEVEC_DEFAULT_MODEL		"default"	/* installed model name */
#define CODEVEC_MODELS_SUBDIR		"extension/codevec_models"	/* under sharedir */
#define CODEVEC_DEFAULT_MAX_TOKENS	256
#define CODEVEC_MIN_MAX_TOKENS		2	/* [CLS] and [SEP] */
#define CODEVEC_MAX_MAX_TOKENS		8192
#define CODEVEC_EMBED_BATCH			32	/* sequences per encoder call */
#define CODEVEC_DEFAULT_CPU_PRECISION CV_PRECISION_INT8	/* codevec.cpu_precision (bench/embed) */

/* Define the GUCs codevec.model, codevec.max_tokens and codevec.cpu_precision; called by _PG_init. */
extern void CodevecEmbedInit(void);

/* Preload the model in the postmaster (codevec.preload_model); called by _PG_init last. */
extern void CodevecEmbedPreload(void);

#endif							/* CODEVEC_EMBED_H */
