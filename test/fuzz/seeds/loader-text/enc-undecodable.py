# coding: ascii
def undecodable():
    return "ÿ"
