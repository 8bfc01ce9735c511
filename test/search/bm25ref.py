#!/usr/bin/env python3
"""test/search/bm25ref.py -- BM25 of codevec_code tsvectors in plain Python,
written from the definition (src/bm25.c's header; Robertson and Zaragoza
2009), independent of the extension: the reference the pruned top-k of
code.bm25_search is checked against, and the scorer bench/quality/bm25_tune.py
tunes k1, b and the field weights with.

Input is PostgreSQL's text form of a tsvector ('lex':1A,2 'other' ...):
a position without a letter has weight D.  Arithmetic follows the
definition to the bit: tf and dl are sums of float32 weights in double, in
tsvector order; impact is computed in double and rounded to float32; a
document's score adds idf * impact over the query's lexemes in byte order.
"""
import math
import re
import struct

_LEX = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")


def f32(x):
    """x rounded to IEEE single precision (PostgreSQL's real)."""
    return struct.unpack('f', struct.pack('f', x))[0]


def parse_tsvector(text):
    """{lexeme: [weight index 0..3 (D, C, B, A) per position] or None (no positions)}."""
    out = {}
    for m in _LEX.finditer(text):
        lex = m.group(1).replace("''", "'").replace('\\\\', '\\')
        pos = m.group(2)
        if pos is None:
            out[lex] = None
        else:
            out[lex] = ['DCBA'.index(p[-1]) if p[-1] in 'ABCD' else 0 for p in pos.split(',')]
    return out


def byte_order(lexemes):
    """Lexemes sorted as tsvector and COLLATE "C" sort them (UTF-8 bytes)."""
    return sorted(lexemes, key=lambda s: s.encode('utf-8'))


def term_tf(pos, weights):
    """Weighted term frequency of one lexeme's positions (None: once at D)."""
    if pos is None:
        return weights[0]
    tf = 0.0
    for w in pos:
        tf += weights[w]
    return tf


def doc_length(doc, weights):
    """dl: the sum of the weighted tf of every lexeme, in tsvector (byte) order."""
    dl = 0.0
    for lex in byte_order(doc):
        dl += term_tf(doc[lex], weights)
    return dl


def impact(tf, dl, k1, b, avgdl):
    """BM25's term impact rounded to real, as the extension stores it."""
    if tf <= 0:
        return 0.0
    norm = k1 * (1.0 - b + b * dl / avgdl)
    return f32(tf * (k1 + 1.0) / (tf + norm))


def idf(n, df):
    """ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


class Corpus:
    """Documents {id: parsed tsvector} with BM25's statistics."""

    def __init__(self, docs, weights, k1, b, avgdl):
        self.weights = [f32(w) for w in weights]
        self.k1, self.b, self.avgdl = f32(k1), f32(b), avgdl
        self.docs = docs
        self.dl = {i: doc_length(d, self.weights) for i, d in docs.items()}
        self.df = {}
        for d in docs.values():
            for lex in d:
                self.df[lex] = self.df.get(lex, 0) + 1

    def score(self, doc_id, lexemes, idfs):
        d = self.docs[doc_id]
        s = 0.0
        for lex, w in zip(lexemes, idfs):
            if lex in d:
                s += w * impact(term_tf(d[lex], self.weights), self.dl[doc_id],
                                self.k1, self.b, self.avgdl)
        return s

    def query_terms(self, lexemes):
        """The query's lexemes some document has, in byte order, and their idf."""
        lex = byte_order(l for l in set(lexemes) if self.df.get(l, 0) > 0)
        return lex, [idf(len(self.docs), self.df[l]) for l in lex]

    def top(self, lexemes, k):
        """Full scoring of every document with a query lexeme: [(id, score)] best first, ties by id."""
        lex, idfs = self.query_terms(lexemes)
        qs = set(lex)
        hits = [(i, self.score(i, lex, idfs)) for i, d in self.docs.items() if qs & d.keys()]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]
