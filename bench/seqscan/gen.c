/*
 * gen.c
 *	  Write N random D-dimension vectors as a PostgreSQL binary COPY stream
 *	  of (id int4, emb) rows. codevec and pgvector's vector share the binary
 *	  form (int16 dim, int16 0, D float4, network order), so the same file
 *	  loads into either type: both tables hold bit-identical vectors.
 *
 *	  gen N D SEED > file.bin     (elements uniform in [-1, 1))
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: seeded, so every run writes the same file */
static uint64_t state;

static uint64_t
next(void)
{
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ULL;
}

/* Write a 32-bit big-endian value */
static void
put32(uint32_t v, FILE *f)
{
	v = htonl(v);
	fwrite(&v, 4, 1, f);
}

int
main(int argc, char **argv)
{
	long		n;
	int			d;
	static const char sig[11] = "PGCOPY\n\377\r\n\0";

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s N D SEED > file.bin\n", argv[0]);
		return 2;
	}
	n = atol(argv[1]);
	d = atoi(argv[2]);
	state = strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1;
	if (n < 1 || d < 1 || d > 16000)
		return 2;

	fwrite(sig, 1, 11, stdout);
	put32(0, stdout);			/* flags */
	put32(0, stdout);			/* header extension length */
	for (long i = 1; i <= n; i++)
	{
		uint16_t	fields = htons(2),
					dim = htons((uint16_t) d),
					zero = 0;

		fwrite(&fields, 2, 1, stdout);
		put32(4, stdout);
		put32((uint32_t) i, stdout);
		put32(4 + 4 * d, stdout);
		fwrite(&dim, 2, 1, stdout);
		fwrite(&zero, 2, 1, stdout);
		for (int j = 0; j < d; j++)
		{
			float		x = (float) ((double) (next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
			uint32_t	bits;

			memcpy(&bits, &x, 4);
			put32(bits, stdout);
		}
	}
	{
		uint16_t	trailer = htons(0xFFFF);

		fwrite(&trailer, 2, 1, stdout);
	}
	return 0;
}
