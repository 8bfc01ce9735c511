﻿# coding: latin-1
def bomlatin():
    pass
