# -*- coding: latin-1 -*-
def café(prix):
    """Ça coûte 5 ¤, déjà payé."""
    return "naïve"
