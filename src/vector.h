/*
 * vector.h
 *	  The codevec type: a dense vector of float4, its limits and helpers
 *	  (implemented in vector.c). Named for its source file, as pgvector's
 *	  vector.h: codevec.c is the module (_PG_init) above every part.
 *
 * On disk and in memory a codevec is a varlena:
 *
 *	  int32  vl_len_   varlena header (never touch directly)
 *	  int16  dim       number of elements, 1 .. CODEVEC_MAX_DIM
 *	  int16  unused    always 0 (reserved for a future storage kind)
 *	  float4 x[dim]    the elements, finite (no NaN, no infinity)
 *
 * The layout is the same as pgvector's `vector`, so a dump of one can be
 * read as the other through text, and sizes are directly comparable.
 */
#ifndef CODEVEC_VECTOR_H
#define CODEVEC_VECTOR_H

#include "postgres.h"

#include "fmgr.h"

#define CODEVEC_MAX_DIM 16000

/* Size in bytes of a codevec of dim elements, header included */
#define CODEVEC_SIZE(_dim)		(offsetof(Codevec, x) + sizeof(float4) * (_dim))
#define DatumGetCodevec(x)		((Codevec *) PG_DETOAST_DATUM(x))
#define PG_GETARG_CODEVEC_P(x)	DatumGetCodevec(PG_GETARG_DATUM(x))
#define PG_RETURN_CODEVEC_P(x)	PG_RETURN_POINTER(x)

typedef struct Codevec
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int16		dim;			/* number of dimensions */
	int16		unused;			/* reserved, always 0 */
	float4		x[FLEXIBLE_ARRAY_MEMBER];
} Codevec;

/*
 * InitCodevec: palloc a zeroed codevec of dim elements with its header set.
 * dim must already be validated (1 .. CODEVEC_MAX_DIM).
 */
extern Codevec *InitCodevec(int dim);

/*
 * CodevecCheckDim: raise 22000 if dim < 1, 54000 if dim > CODEVEC_MAX_DIM.
 */
extern void CodevecCheckDim(int dim);

/*
 * CodevecCheckSameDims: raise 22000 when two operands differ in dimensions;
 * what names the operation for the message ("l2_distance", "operator <->").
 */
extern void CodevecCheckSameDims(const Codevec *a, const Codevec *b, const char *what);

/*
 * CodevecCheckExpectedDim: raise 22000 when typmod (-1 = any) and dim differ.
 */
extern void CodevecCheckExpectedDim(int32 typmod, int dim);

/*
 * CodevecCheckElement: raise 22000 for a NaN or infinite element; index is
 * the 1-based position used in the message.
 */
extern void CodevecCheckElement(float4 value, int index);

#endif							/* CODEVEC_VECTOR_H */
