/*
 * test_tokenizer.c
 *	  Compare cv_tokenize() with Hugging Face `tokenizers` on the committed
 *	  fixture (fixtures/tokenizer.jsonl, made by gen_tokenizer_fixture.py).
 *
 * Usage: test_tokenizer VOCAB_TXT FIXTURE_JSONL
 * Prints one "ok"/"not ok" line per string and "tokenizer: P passed, F failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "tokenizer.h"

/* Read one line of any length from f into a malloc'd buffer. */
static char *
ReadLine(FILE *f)
{
	size_t		cap = 4096,
				n = 0;
	char	   *buf = malloc(cap);
	int			c;

	while ((c = fgetc(f)) != EOF && c != '\n')
	{
		if (n + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		buf[n++] = (char) c;
	}
	if (c == EOF && n == 0)
	{
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Run every fixture line through the tokenizer and count agreements. */
int
main(int argc, char **argv)
{
	CvTokenizer tok;
	char		err[512];
	FILE	   *f;
	char	   *line;
	int			passed = 0,
				failed = 0,
				lineno = 0;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s VOCAB_TXT FIXTURE_JSONL\n", argv[0]);
		return 2;
	}
	if (cv_tokenizer_load(argv[1], 1, -1, &tok, err, sizeof(err)) != CV_TOK_OK)
	{
		fprintf(stderr, "%s\n", err);
		printf("tokenizer: 0 passed, 1 failed\n");
		return 1;
	}
	f = fopen(argv[2], "r");
	if (!f)
	{
		perror(argv[2]);
		printf("tokenizer: 0 passed, 1 failed\n");
		return 1;
	}
	while ((line = ReadLine(f)) != NULL)
	{
		cJSON	   *j = cJSON_Parse(line);
		cJSON	   *text = cJSON_GetObjectItem(j, "text");
		cJSON	   *maxt = cJSON_GetObjectItem(j, "max_tokens");
		cJSON	   *ids = cJSON_GetObjectItem(j, "ids");
		int32_t    *got;
		int			ngot,
					i,
					ok;

		lineno++;
		if (!j || !cJSON_IsString(text) || !cJSON_IsArray(ids) || !cJSON_IsNumber(maxt))
		{
			printf("not ok %d - bad fixture line\n", lineno);
			failed++;
			cJSON_Delete(j);
			free(line);
			continue;
		}
		if (cv_tokenize(tok, text->valuestring, strlen(text->valuestring),
						maxt->valueint, &got, &ngot) != CV_TOK_OK)
		{
			printf("not ok %d - tokenize failed\n", lineno);
			failed++;
			cJSON_Delete(j);
			free(line);
			continue;
		}
		ok = (ngot == cJSON_GetArraySize(ids));
		for (i = 0; ok && i < ngot; i++)
			ok = (got[i] == cJSON_GetArrayItem(ids, i)->valueint);
		if (ok)
		{
			passed++;
			printf("ok %d - %d ids\n", lineno, ngot);
		}
		else
		{
			failed++;
			printf("not ok %d - %.80s\n  want:", lineno, text->valuestring);
			for (i = 0; i < cJSON_GetArraySize(ids) && i < 40; i++)
				printf(" %d", cJSON_GetArrayItem(ids, i)->valueint);
			printf("\n  got: ");
			for (i = 0; i < ngot && i < 40; i++)
				printf(" %d", got[i]);
			printf("\n");
		}
		free(got);
		cJSON_Delete(j);
		free(line);
	}
	fclose(f);

	/* random bytes (mostly invalid UTF-8): never a crash, always well formed */
	{
		uint32_t	seed = 12345;
		int			iter,
					bad = 0;
		char		buf[512];

		for (iter = 0; iter < 20000; iter++)
		{
			int			len,
						maxt,
						i,
						n;
			int32_t    *ids;

			seed = seed * 1103515245u + 12345u;
			len = (seed >> 16) % 500;
			seed = seed * 1103515245u + 12345u;
			maxt = 2 + (seed >> 16) % 70;
			for (i = 0; i < len; i++)
			{
				seed = seed * 1103515245u + 12345u;
				buf[i] = (char) ((seed >> 16) & 0xFF);
				if (buf[i] == 0)
					buf[i] = ' ';
			}
			if (cv_tokenize(tok, buf, len, maxt, &ids, &n) != CV_TOK_OK ||
				n < 2 || n > maxt || ids[0] != tok->cls_id || ids[n - 1] != tok->sep_id)
				bad++;
			else
				for (i = 0; i < n; i++)
					if (ids[i] < 0 || ids[i] >= tok->vocab_size)
						bad++;
			free(ids);
		}
		printf("%s - random bytes: %d malformed results of 20000\n", bad ? "not ok" : "ok", bad);
		bad ? failed++ : passed++;
	}
	cv_tokenizer_free(tok);
	printf("tokenizer: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
