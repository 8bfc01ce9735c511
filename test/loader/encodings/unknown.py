# coding: no-such-codec
def unknown():
    pass
