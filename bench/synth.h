/*
 * synth.h: the synthetic Douyu stream shared by bench/fts_cost.c and bench/gen_db.c, so that
 * the database gen_db fills holds the chat fts_cost measures: a deterministic xorshift64
 * generator, Zipf-distributed picks, and chat lines of 2..30 characters, mostly CJK (the
 * character ranks Zipf(1.0) over SYNTH_CHARS, spread over the CJK block) with some ASCII
 * such as "666". Header-only (static functions): each benchmark is one cc command.
 */
#ifndef DANMAKUD_BENCH_SYNTH_H
#define DANMAKUD_BENCH_SYNTH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SYNTH_CHARS 3000
#define SYNTH_SEED UINT64_C(0x9e3779b97f4a7c15)

static uint64_t synth_rng = SYNTH_SEED;

static uint64_t next(void)
{
	synth_rng ^= synth_rng << 13;
	synth_rng ^= synth_rng >> 7;
	synth_rng ^= synth_rng << 17;
	return synth_rng;
}

static double uniform(void)
{
	return (double)(next() >> 11) / (double)(UINT64_C(1) << 53);
}

/* cdf[0..n) of Zipf(s) over ranks 1..n. */
static void zipf(double *cdf, int n, double s)
{
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += 1.0 / pow(i + 1, s);
	double acc = 0;
	for (int i = 0; i < n; i++) {
		acc += 1.0 / pow(i + 1, s) / sum;
		cdf[i] = acc;
	}
	cdf[n - 1] = 1.0;
}

/* A rank drawn from cdf[0..n), by inverse CDF. */
static int pick(const double *cdf, int n)
{
	double u = uniform();
	int lo = 0, hi = n - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* One chat line of 2..30 characters into out (UTF-8, NUL-terminated); chars is
 * zipf(chars, SYNTH_CHARS, 1.0). */
static void chat_text(const double *chars, char *out, size_t cap)
{
	size_t o = 0;
	int n = 2 + (int)(next() % 29);
	for (int i = 0; i < n && o + 4 < cap; i++) {
		if (next() % 10 == 0) {
			out[o++] = "6ahgGOk1?!"[next() % 10];
			continue;
		}
		unsigned cp = 0x4e00 + (unsigned)pick(chars, SYNTH_CHARS) * 7;
		out[o++] = (char)(0xe0 | (cp >> 12));
		out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[o++] = (char)(0x80 | (cp & 0x3f));
	}
	out[o] = '\0';
}

#endif
