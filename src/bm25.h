/*
 * bm25.h
 *	  BM25 scoring of codevec_code tsvectors (src/bm25.c, issue 21).
 */
#ifndef CODEVEC_BM25_H
#define CODEVEC_BM25_H

#include "postgres.h"

#include "tsearch/ts_type.h"

/* BM25's parameters, checked by the SQL entry points */
typedef struct Bm25Params
{
	float4		weights[4];		/* per tsvector weight, ts_rank's order {D, C, B, A} */
	float4		k1;				/* term frequency saturation, >= 0 */
	float4		b;				/* length normalisation, 0..1 */
	double		avgdl;			/* the average document length impacts use, > 0 */
} Bm25Params;

/* dl(d): the sum over tsv's lexemes of their weighted term frequencies */
extern double Bm25DocLength(TSVector tsv, const float4 *weights);

/* impact(t, d) for weighted frequency tf in a document of length dl */
extern float4 Bm25Impact(double tf, double dl, const Bm25Params *p);

#endif							/* CODEVEC_BM25_H */
