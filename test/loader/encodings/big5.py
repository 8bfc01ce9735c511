# coding: big5
def 說明():
    """中文說明：讀取設定檔"""
    return "繁體"
