def capture(m):
    m.cache["kept"] = True
    return {"lookup": m.lookup, "cache": m.cache}


def verify(m, refs):
    assert refs["lookup"](2) == 6
    assert m.cache is refs["cache"] and m.cache == {"kept": True}
