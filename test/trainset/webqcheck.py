#!/usr/bin/env python3
"""test/trainset/webqcheck.py ROOT — checks of tools/train-model/webquery.py,
the web-query rewrite train.py's --webq trains with: each rule of its module
doc on doc sentences of the kinds the pairs hold, with the random draws
fixed (a stand-in rng that returns given numbers in turn). Standard library
only. Prints one line per check: "ok DESCRIPTION" or "not ok DESCRIPTION:
DETAIL"; run.sh counts them.
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(sys.argv[1], 'tools/train-model'))
import webquery  # noqa: E402


class Draws:
    """rng.random() returns these numbers in turn (then 0.99: no option)."""
    def __init__(self, *xs):
        self.xs = list(xs)

    def random(self):
        return self.xs.pop(0) if self.xs else 0.99


def check(cond, desc, detail=''):
    print(('ok %s' % desc) if cond else ('not ok %s: %s' % (desc, detail)), flush=True)


def same(got, want, desc):
    check(got == want, desc, 'got %r, want %r' % (got, want))


R = webquery.rewrite
same(R('Returns the number of bytes left in the buffer.', 'c', Draws(0.1)),
     'get number of bytes left in buffer',
     'leading "Returns" becomes "get" (draw < 0.5); articles and the full stop go')
same(R('Returns the number of bytes left in the buffer.', 'c', Draws(0.7)),
     'number of bytes left in buffer', 'leading "Returns" goes (draw >= 0.5)')
same(R('Checks whether the given path exists (following symlinks).', 'python', Draws()),
     'check whether path exists', 'third-person verb to imperative; "given" and the aside go')
same(R('Returns true if this list contains no elements.', 'java', Draws()),
     'check if list contains no elements', '"Returns true if" becomes "check if"')
same(R('Returns whether the stream is closed.', 'java', Draws()),
     'check if stream is closed', '"Returns whether" becomes "check if"')
same(R('Tries to parse `s` as an integer; returns None on failure.', 'rust', Draws()),
     'try to parse s as integer', 'markup keeps its words; the text after ";" goes; "tries" -> "try"')
same(R('Creates a new {@code HashMap} with the specified capacity.', 'java', Draws()),
     'create new hashmap with capacity', 'Javadoc {@code x} keeps x, lower case')
same(R('Processes all pending events.', 'cpp', Draws(0.9, 0.1)),
     'c++ process all pending events', 'language first (draw < 0.45), spelled as typed (c++)')
same(R('Processes all pending events.', 'go', Draws(0.9, 0.5)),
     'process all pending events golang', 'language last (0.45 <= draw < 0.80)')
same(R('Processes all pending events.', 'go', Draws(0.9, 0.5, 0.2)),
     'process all pending events in golang', 'language last as "in golang" (then draw < 0.5)')
same(R('Checks whether the value is an array.', 'python', Draws(0.9, 0.9, 0.1)),
     'check whether the value is an array', 'articles kept when the last draw is < 0.3')
same(R('Processes all pending events.', 'python', Draws(0.1, 0.9)),
     'how to process all pending events', '"how to" before an imperative (draw < 0.2)')
same(R('Status of the connection pool after a reset.', 'python', Draws(0.1)),
     'python status of connection pool after reset', 'no "how to" before a noun ("status" is not a verb)')
same(R('Processes all pending events.', 'python', Draws(0.1, 0.1)),
     'python how to process all pending events', 'the language before "how to" ("python how to ...")')
got = R('Writes every entry of the table to the file descriptor and then flushes '
        'the output buffer twice.', 'c', Draws())
same(got and len(got.split()), 10, 'at most 10 words are kept')
same(R('Returns.', 'python', Draws()), None, 'None when fewer than two words are left')
same(R('Return the', 'python', Draws(0.7)), None, 'None when only articles follow a dropped verb')
same([webquery.imperative(w) for w in ('tries', 'pushes', 'has', 'does', 'class', 'pass', 'bytes', 'adds')],
     ['try', 'push', 'have', 'do', 'class', 'pass', 'bytes', 'add'], 'imperative(): -ies, -shes, irregulars, nouns left alone')
same(R('Returns the largest value in the dict.', 'python', random.Random(5)),
     R('Returns the largest value in the dict.', 'python', random.Random(5)),
     'the same seed gives the same rewrite')
seen = {R('Returns the largest value in the dict.', 'python', random.Random(s)) for s in range(200)}
check(len(seen) >= 6 and all(q and q.islower() for q in seen),
      'different draws give the rule\'s variants (%d, all lower case)' % len(seen), sorted(seen))
