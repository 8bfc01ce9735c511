#!/usr/bin/env python3
x = 1
# coding: latin-1
def f():
    return "é"
