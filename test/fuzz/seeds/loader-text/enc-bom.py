﻿def bom():
    """Mit BOM: äöü."""
    return 1
