def capture(m):
    return {"gone": m.gone}


def verify(m, refs):
    assert not hasattr(m, "gone")
    assert refs["gone"]() == 2
